"""Quantized RESIZE_BILINEAR as XNNPACK computes it (uint8 and int8; raw values, no rescaling).

XNNPACK precomputes, per output row and column, two source indices and an 11-bit weight
(xnn_indirection_init_resize_bilinear2d_hwc_q11, src/indirection.c), in float32:

    scale = (in - a) / (out - a)                       a = 1 with align_corners and out != 1, else 0
    s = min(v * scale, in - 1)                         align_corners, or TensorFlow's legacy mode
    s = clamp(v * scale + (scale / 2 - 1/2), 0, in-1)  half_pixel_centers
    lo = int(s), hi = min(lo + 1, in - 1), alpha = lrintf((s - lo) * 2048)

and blends in integers (the u8/s8 "ibilinear" microkernels): horizontally with alpha_x in Q11,
vertically with alpha_y in Q22, then rounds with +2**21 and an arithmetic shift by 22. LiteRT's
reference kernel blends in float32 and truncates after adding 0.5 (uint8) or uses 10-bit weights
(int8), so the two differ by one in some elements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

F32 = np.float32
ROWS_PER_BAND = 64  # output rows blended at a time: bounds the int32 temporaries


@dataclass(frozen=True, eq=False)
class XnnBilinearParams:
    top: np.ndarray  # int64 [OH]
    bottom: np.ndarray
    alpha_y: np.ndarray  # int32 [OH], Q11
    left: np.ndarray  # int64 [OW]
    right: np.ndarray
    alpha_x: np.ndarray  # int32 [OW], Q11


def indirection_q11(in_size: int, out_size: int, align_corners: bool, legacy: bool) -> tuple[np.ndarray, ...]:
    """One axis of xnn_indirection_init_resize_bilinear2d_hwc_q11: (lo, hi, alpha in Q11)."""
    adjustment = int(align_corners and out_size != 1)
    scale = F32(in_size - adjustment) / F32(out_size - adjustment)
    v = np.arange(out_size, dtype=np.int32).astype(F32)
    last = F32(in_size - 1)
    if legacy or align_corners:
        s = np.minimum(v * scale, last)
    else:
        offset = F32(0.5) * scale - F32(0.5)
        s = np.minimum(np.maximum(v * scale + offset, F32(0)), last)
    lo = s.astype(np.int32)  # s >= 0: truncation is floor
    hi = np.minimum(lo + 1, in_size - 1)
    alpha = np.rint((s - lo.astype(F32)) * F32(2048)).astype(np.int32)  # lrintf
    return lo.astype(np.int64), hi.astype(np.int64), alpha


def bilinear_params(in_h: int, in_w: int, out_h: int, out_w: int, align_corners: bool,
                    half_pixel_centers: bool) -> XnnBilinearParams:
    """The delegate's flags: ALIGN_CORNERS, else TENSORFLOW_LEGACY_MODE unless half_pixel_centers."""
    legacy = not align_corners and not half_pixel_centers
    top, bottom, alpha_y = indirection_q11(in_h, out_h, align_corners, legacy)
    left, right, alpha_x = indirection_q11(in_w, out_w, align_corners, legacy)
    return XnnBilinearParams(top, bottom, alpha_y, left, right, alpha_x)


def resize_bilinear(p: XnnBilinearParams, x: np.ndarray) -> np.ndarray:
    """xnn_u8_ibilinear_ukernel / xnn_s8_ibilinear_ukernel over x [N,H,W,C]."""
    n, _, _, c = x.shape
    out = np.empty((n, p.top.size, p.left.size, c), dtype=x.dtype)
    ah = p.alpha_x[None, None, :, None]
    for start in range(0, p.top.size, ROWS_PER_BAND):
        rows = slice(start, start + ROWS_PER_BAND)
        av = p.alpha_y[None, rows, None, None]
        upper = x[:, p.top[rows]].astype(np.int32)
        lower = x[:, p.bottom[rows]].astype(np.int32)
        tl, tr = upper[:, :, p.left], upper[:, :, p.right]
        bl, br = lower[:, :, p.left], lower[:, :, p.right]
        vt = (tl << 11) + (tr - tl) * ah
        vb = (bl << 11) + (br - bl) * ah
        acc = (vt << 11) + (vb - vt) * av
        acc += 1 << 21
        acc >>= 22
        out[:, rows] = acc
    return out


KERNELS: dict[str, Callable] = {"xnnpack_resize_bilinear": resize_bilinear}

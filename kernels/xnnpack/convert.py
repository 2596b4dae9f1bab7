"""QUANTIZE from a quantized type to the same type (a requantization) as XNNPACK computes it: the
qu8/qs8 "vcvt" microkernels (src/qu8-vcvt, src/qs8-vcvt), an 8.8 fixed-point multiply

    multiplier = lrintf(256 * float32(s_in / s_out))                   (xnn_init_q*8_cvt_scalar_params)
    out = clamp((z_out * 256 - multiplier * z_in + 128 + q * multiplier) >> 8)

so the ratio is rounded to 1/256: LiteRT's reference requantize (a 31-bit multiplier) differs by
one wherever that matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

F32 = np.float32
SMALLEST_RATIO, LARGEST_RATIO = 2.0**-8, 2.0**7  # the ratios XNNPACK's params init accepts


@dataclass(frozen=True)
class XnnConvertParams:
    multiplier: int
    bias: int  # z_out * 256 - multiplier * z_in + 0x80
    dtype: np.dtype


def convert_params(x: tuple[float, int], out: tuple[float, int], dtype: np.dtype) -> XnnConvertParams | None:
    """xnn_init_qu8_cvt_scalar_params / xnn_init_qs8_cvt_scalar_params; None outside the ratios
    XNNPACK accepts."""
    with np.errstate(all="ignore"):
        ratio = F32(x[0]) / F32(out[0])
    if not SMALLEST_RATIO <= ratio <= LARGEST_RATIO:
        return None
    multiplier = int(np.rint(F32(256) * ratio))
    return XnnConvertParams(multiplier, (out[1] << 8) - multiplier * x[1] + 0x80, np.dtype(dtype))


def convert(p: XnnConvertParams, x: np.ndarray) -> np.ndarray:
    """xnn_qu8_vcvt_ukernel / xnn_qs8_vcvt_ukernel: arithmetic shift (floor), clamp to the type."""
    acc = x.astype(np.int64) * p.multiplier
    acc += p.bias
    acc >>= 8
    info = np.iinfo(p.dtype)
    return np.clip(acc, info.min, info.max).astype(p.dtype)


KERNELS: dict[str, Callable] = {"xnnpack_convert": convert}

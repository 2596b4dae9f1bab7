"""Quantized CONV_2D and DEPTHWISE_CONV_2D as XNNPACK computes them (uint8 "qu8", int8 "qs8" with
per-channel "qc8w" filters), NHWC.

The accumulator is the reference kernels' exact one: XNNPACK packs the filter with its zero point
taken out and the input zero point folded into the bias, and pads with the input zero point, so
its int32 sum is the same integer (kernels.integer.conv computes it). Only the rescaling differs,
and it is requantization.requantize_fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.conv import padding_fits
from npdeeplab.kernels.fixed_point import wrap_int32
from npdeeplab.kernels.integer.conv import (
    FLOAT32_EXACT,
    QuantizedConvParams,
    _depthwise_sums_by_taps,
    conv_sums,
    shift_filter,
)
from npdeeplab.kernels.windows import pad_for_window, window_patches
from npdeeplab.kernels.xnnpack.requantization import requantize_fp32


@dataclass(frozen=True, eq=False)
class XnnConvParams:
    """The reference prepare's params (window, offsets, shifted filter) and XNNPACK's own
    requantization: one float32 scale per output channel and the clamp from xnn_q*8_quantize."""

    conv: QuantizedConvParams
    scale: np.ndarray  # float32 [Cout]
    zero_point: int  # output zero point
    out_min: int
    out_max: int


def conv2d(p: XnnConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """xnn_qu8_igemm_minmax_fp32 / xnn_qs8_qc8w_igemm_minmax_fp32 (via xnn_create_convolution2d_nhwc_*).

    x [N,H,W,Cin], w [Cout,KH,KW,Cin/groups], b [Cout] int32 or None."""
    return _requantize(p, conv_sums(p.conv, x, w), b, x.dtype)  # the reference's exact accumulators


def depthwise_conv2d(p: XnnConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """xnn_qu8_dwconv_minmax_fp32 / xnn_qs8_qc8w_dwconv_minmax_fp32 (the "up" and multipass
    depthwise microkernels; every tile size gives the same integers).

    x [N,H,W,Cin], w [1,KH,KW,Cin*m]: output channel c reads input channel c // m."""
    c = p.conv
    f = c.filter or shift_filter(c, w, True, x.dtype)
    win = c.window
    cout = w.shape[3]
    if cout > x.shape[3]:
        x = np.repeat(x, cout // x.shape[3], axis=3)
    exact = np.float32 if f.bound < FLOAT32_EXACT else np.float64
    taps = f.matrix.reshape(win.filter_h, win.filter_w, cout).astype(exact)
    if not padding_fits(win, x.shape):
        sums = _depthwise_sums_by_taps(win, taps, np.add(x, exact(c.input_offset), dtype=exact))
        return _requantize(p, sums, b, x.dtype)
    padded = np.add(pad_for_window(x, win, value=-c.input_offset), exact(c.input_offset), dtype=exact)
    windows = window_patches(padded, win)  # [N, OH, OW, KH, KW, C], a view
    sums = np.zeros((x.shape[0], win.out_h, win.out_w, cout), dtype=exact)
    for ky in range(win.filter_h):
        for kx in range(win.filter_w):
            sums += windows[:, :, :, ky, kx] * taps[ky, kx]
    return _requantize(p, sums, b, x.dtype)


def _requantize(p: XnnConvParams, sums: np.ndarray, b: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """acc = sums + bias as int32 (wrapping like C where prepare could not bound it), then
    XNNPACK's fp32 requantization, row band by row band."""
    out = np.empty(sums.shape, dtype=dtype)
    for rows in row_bands(sums):
        acc = sums[:, rows].astype(np.int64)
        if b is not None:
            acc += b
        if p.conv.wraps:
            acc = wrap_int32(acc)
        requantize_fp32(acc, p.scale, p.zero_point, p.out_min, p.out_max, out[:, rows])
    return out


KERNELS: dict[str, Callable] = {
    "xnnpack_conv2d": conv2d,
    "xnnpack_depthwise_conv2d": depthwise_conv2d,
}

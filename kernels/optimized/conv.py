"""Quantized CONV_2D and int8 per-channel DEPTHWISE_CONV_2D as LiteRT's optimized builtin kernels
compute them (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), NHWC.

The accumulator is the reference kernels' exact int32 sum (kernels.integer.conv computes it):
im2col plus a GEMM, or the depthwise kernels' tap loops, add the same integers in another order.
Only the rescaling differs: rounding.multiply_by_quantized_multiplier_upward (in some depthwise
channels the reference's MultiplyByQuantizedMultiplier), then the output offset and the fused
activation's clamp as in the reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.conv import padding_fits
from npdeeplab.kernels.fixed_point import multiply_by_quantized_multiplier, wrap_int32
from npdeeplab.kernels.integer.conv import (
    FLOAT32_EXACT,
    QuantizedConvParams,
    _depthwise_sums_by_taps,
    conv_sums,
    shift_filter,
)
from npdeeplab.kernels.optimized.rounding import multiply_by_quantized_multiplier_upward
from npdeeplab.kernels.windows import pad_for_window, window_patches


def conv2d(p: QuantizedConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """optimized_ops::Conv (uint8) / optimized_integer_ops::ConvPerChannel (int8): im2col, then
    cpu_backend_gemm::Gemm, which on x86 runs ruy with the multiplier as its output stage.

    x [N,H,W,Cin], w [Cout,KH,KW,Cin], b [Cout] int32 or None. Grouped convolutions run
    reference_ops in LiteRT (conv.cc), so npdeeplab.ops.optimized leaves them to the reference."""
    return _requantize(p, conv_sums(p, x, w), b, x.dtype)


def depthwise_conv2d_per_channel(p: QuantizedConvParams, x: np.ndarray, w: np.ndarray,
                                 b: np.ndarray | None) -> np.ndarray:
    """optimized_integer_ops::DepthwiseConvPerChannel (int8; optimized/integer_ops/depthwise_conv.h).
    Its general kernel rescales with optimized_ops::Quantize (optimized_ops.h, double rounding):
    NEON blocks of 8 output channels with vqrdmulhq_s32 and vrshlq_s32 (halves upward), then the
    channels left over one by one with MultiplyByQuantizedMultiplier (the reference's rounding).
    Its 3x3 kernel (input depth a multiple of 8) rounds every channel with kUpward: the same.

    x [N,H,W,Cin], w [1,KH,KW,Cin*m]: output channel c reads input channel c // m."""
    f = p.filter or shift_filter(p, w, True, x.dtype)
    win = p.window
    cout = w.shape[3]
    if cout > x.shape[3]:
        x = np.repeat(x, cout // x.shape[3], axis=3)
    exact = np.float32 if f.bound < FLOAT32_EXACT else np.float64  # every partial sum exact
    taps = f.matrix.reshape(win.filter_h, win.filter_w, cout).astype(exact)
    if not padding_fits(win, x.shape):
        sums = _depthwise_sums_by_taps(win, taps, np.add(x, exact(p.input_offset), dtype=exact))
        return _requantize(p, sums, b, x.dtype, _upward_channels(cout))
    padded = np.add(pad_for_window(x, win, value=-p.input_offset), exact(p.input_offset), dtype=exact)
    windows = window_patches(padded, win)  # [N, OH, OW, KH, KW, C], a view
    sums = np.zeros((x.shape[0], win.out_h, win.out_w, cout), dtype=exact)
    for ky in range(win.filter_h):
        for kx in range(win.filter_w):
            sums += windows[:, :, :, ky, kx] * taps[ky, kx]
    return _requantize(p, sums, b, x.dtype, _upward_channels(cout))


def _upward_channels(channels: int) -> int:
    """How many leading output channels optimized_ops::Quantize rescales in its NEON blocks of 8."""
    return channels - channels % 8


def _requantize(p: QuantizedConvParams, sums: np.ndarray, b: np.ndarray | None, dtype: np.dtype,
                upward: int | None = None) -> np.ndarray:
    """acc = sums + bias in int32 (wrapping where prepare could not bound it), then
    clamp(MultiplyByQuantizedMultiplier(acc) + output_offset), row band by row band, rounding
    halves upward in the first `upward` output channels (all by default), as the reference after."""
    out = np.empty(sums.shape, dtype=dtype)
    channels = sums.shape[3]
    upward = channels if upward is None else upward
    multiplier = np.broadcast_to(p.multiplier, (channels,))
    shift = np.broadcast_to(p.shift, (channels,))
    for rows in row_bands(sums):
        acc = sums[:, rows].astype(np.int64)
        if b is not None:
            acc += b
        if p.wraps:
            acc = wrap_int32(acc)
        scaled = np.empty(acc.shape, dtype=np.int64)
        scaled[..., :upward] = multiply_by_quantized_multiplier_upward(acc[..., :upward], multiplier[:upward],
                                                                       shift[:upward])
        scaled[..., upward:] = multiply_by_quantized_multiplier(acc[..., upward:], multiplier[upward:], shift[upward:])
        scaled += p.output_offset
        out[:, rows] = np.clip(scaled, p.act_min, p.act_max)
    return out


KERNELS: dict[str, Callable] = {
    "optimized_conv2d": conv2d,
    "optimized_depthwise_conv2d_per_channel": depthwise_conv2d_per_channel,
}

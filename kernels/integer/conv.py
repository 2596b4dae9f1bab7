"""Quantized CONV_2D and DEPTHWISE_CONV_2D (uint8 per tensor, int8 per channel), NHWC.

The specification of LiteRT's reference kernels: reference_ops::Conv (reference/conv.h, uint8),
reference_integer_ops::ConvPerChannel (reference/integer_ops/conv.h), reference_ops::DepthwiseConv
(reference/depthwiseconv_uint8.h) and reference_integer_ops::DepthwiseConvPerChannel
(reference/integer_ops/depthwise_conv.h). All four compute, for every output value,

    acc = sum over the window's taps inside the input of (w + filter_offset) * (x + input_offset)
    out = clamp(MultiplyByQuantizedMultiplier(acc + bias[c], M[c], shift[c]) + output_offset, act_min, act_max)

in int32; uint8 has one (M, shift) for all channels and a filter offset, int8 one (M, shift) per
output channel and filter offset 0. Taps outside the input are skipped; with zero-point-shifted
values, padding the shifted input with zeros is the same thing, which the im2col path uses.

Exact arithmetic in floats: shifted 8-bit values lie in [-255, 255], so a product is at most
255 * 255 < 2**16 in magnitude and an integer. A float32 sum of such products is exact while
every partial sum stays below 2**24, whatever order BLAS adds them in; `ShiftedFilter.chunks`
splits the reduction axis so that, for the actual weights, each chunk's sums are bounded by 2**24
(the shared dm05 model never needs two chunks). Chunk sums are added in float64, exact below 2**53.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.conv import padding_fits
from npdeeplab.kernels.fixed_point import (
    multiply_by_quantized_multiplier_float64,
    multiply_by_quantized_multiplier_floor,
    wrap_int32,
)
from npdeeplab.kernels.windows import Window, pad_for_window, window_patches, window_taps

FLOAT32_EXACT = 2**24  # integers up to here are exact in float32


@dataclass(frozen=True, eq=False)
class ShiftedFilter:
    """A filter with its zero point taken out, in the layouts the kernels use, and the bounds
    that make float sums of its products exact. Worked out once at prepare for constant filters.

    CONV_2D: matrix [K, Cout] = (w + filter_offset) reshaped, K = KH*KW*Cin/groups in the filter's
    (ky, kx, ci) order; DEPTHWISE_CONV_2D: matrix [KH*KW, Cout], one row per tap.
    """

    matrix: np.ndarray  # float32 [K, Cout], exact small integers
    chunks: tuple[tuple[int, int], ...]  # K ranges whose products sum exactly in float32
    bound: int  # the largest |sum over K of products| any input can give, over output channels


@dataclass(frozen=True, eq=False)
class QuantizedConvParams:
    """Everything Prepare works out for a quantized CONV_2D or DEPTHWISE_CONV_2D (LiteRT's OpData)."""

    window: Window
    input_offset: int  # -(input zero point)
    filter_offset: int  # -(filter zero point): uint8; 0 for int8
    output_offset: int  # output zero point
    multiplier: np.ndarray  # int64 [Cout], QuantizeMultiplier's significands
    shift: np.ndarray  # int64 [Cout], and exponents
    act_min: int  # the fused activation's clamp, quantized
    act_max: int
    wraps: bool  # acc + bias may leave int32 (it wraps in C); False when prepare bounded it
    float64_exact: bool  # the rescaling may run in float64 (fixed_point.float64_rescaling_is_exact)
    filter: ShiftedFilter | None = None  # for constant filters


def shift_filter(p: QuantizedConvParams, w: np.ndarray, depthwise: bool, input_dtype: np.dtype) -> ShiftedFilter:
    """The filter minus its zero point as a float32 [K, Cout] matrix, with exact-sum chunks."""
    if depthwise:
        matrix = w.reshape(-1, w.shape[3]).astype(np.float32)  # [KH*KW, Cout]
    else:
        matrix = w.reshape(w.shape[0], -1).T.astype(np.float32)  # [K, Cout]
    matrix = np.ascontiguousarray(matrix + np.float32(p.filter_offset))
    x_max = largest_shifted_input(p.input_offset, input_dtype)
    magnitude = np.abs(matrix).astype(np.int64) * x_max  # the largest |product| of each weight
    chunks, start, total = [], 0, np.zeros(matrix.shape[1], dtype=np.int64)
    for k in range(matrix.shape[0]):  # greedy: extend a chunk while every channel's sum stays exact
        if (total + magnitude[k]).max() >= FLOAT32_EXACT:
            chunks.append((start, k))
            start, total = k, np.zeros_like(total)
        total += magnitude[k]
    chunks.append((start, matrix.shape[0]))
    matrix.flags.writeable = False
    return ShiftedFilter(matrix, tuple(chunks), int(magnitude.sum(axis=0).max(initial=0)))


def largest_shifted_input(input_offset: int, dtype: np.dtype) -> int:
    """max |x + input_offset| over the input type's values (and 0, the padding)."""
    info = np.iinfo(dtype)
    return max(abs(int(info.min) + input_offset), abs(int(info.max) + input_offset))


def conv2d_quantized(p: QuantizedConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """reference_ops::Conv / reference_integer_ops::ConvPerChannel.

    x [N,H,W,Cin], w [Cout,KH,KW,Cin/groups], b [Cout] int32 or None (zeros). With groups > 1,
    the Cout/groups filters of group g see input channels g*Cin/groups and on.
    """
    f = p.filter or shift_filter(p, w, False, x.dtype)
    groups = x.shape[3] // w.shape[3]
    per_group = w.shape[0] // groups
    xs = np.add(x, np.float32(p.input_offset), dtype=np.float32)  # exact
    sums = [
        _conv_sums(p.window, f, xs[..., g * w.shape[3] : (g + 1) * w.shape[3]], g * per_group, (g + 1) * per_group)
        for g in range(groups)
    ]
    return requantize(p, sums[0] if groups == 1 else np.concatenate(sums, axis=3), b, x.dtype)


def _conv_sums(win: Window, f: ShiftedFilter, xs: np.ndarray, first: int, last: int) -> np.ndarray:
    """sum over (ky, kx, ci) of shifted filter * shifted input, as exact floats [N, OH, OW, last-first]."""
    n = xs.shape[0]
    matrix = f.matrix[:, first:last]
    if not padding_fits(win, xs.shape):
        return _conv_sums_by_taps(win, matrix, xs)
    if (win.filter_h, win.filter_w, win.stride_h, win.stride_w) == (1, 1, 1, 1):
        patches = xs
    else:  # [N, OH, OW, KH, KW, Cin]: padded with shifted zeros, i.e. the input's zero point
        patches = window_patches(pad_for_window(xs, win), win)
    rows = patches.reshape(n * win.out_h * win.out_w, -1)
    total = None
    for start, stop in f.chunks:
        part = rows[:, start:stop] @ matrix[start:stop]  # float32, every partial sum exact
        total = part if total is None else total + part.astype(np.float64)
    return total.reshape(n, win.out_h, win.out_w, last - first)


def _conv_sums_by_taps(win: Window, matrix: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The same sums tap by tap, over only the outputs whose tap lands inside the input, in
    float64 (exact): for dilations so large that padding the input would not fit in memory."""
    cin = xs.shape[3]
    out = np.zeros((xs.shape[0], win.out_h, win.out_w, matrix.shape[1]), dtype=np.float64)
    for ky, kx, rows, columns in window_taps(win, xs.shape[1], xs.shape[2]):
        tap = (ky * win.filter_w + kx) * cin
        inside = xs[:, rows.inputs, columns.inputs].astype(np.float64)
        out[:, rows.outputs, columns.outputs] += inside @ matrix[tap : tap + cin].astype(np.float64)
    return out


def depthwise_conv2d_quantized(
    p: QuantizedConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
) -> np.ndarray:
    """reference_ops::DepthwiseConv / reference_integer_ops::DepthwiseConvPerChannel.

    x [N,H,W,Cin], w [1,KH,KW,Cin*m]: output channel c reads input channel c // m. The taps are
    summed in float32 when the filter's bound keeps every partial sum exact, else in float64.
    """
    f = p.filter or shift_filter(p, w, True, x.dtype)
    win = p.window
    taps = f.matrix.reshape(win.filter_h, win.filter_w, -1)
    multiplier = w.shape[3] // x.shape[3]
    exact = np.float32 if f.bound < FLOAT32_EXACT else np.float64
    xs = np.add(x, exact(p.input_offset), dtype=exact)
    if multiplier > 1:
        xs = np.repeat(xs, multiplier, axis=3)
    out = np.empty((x.shape[0], win.out_h, win.out_w, w.shape[3]), dtype=x.dtype)
    bands = row_bands(np.broadcast_to(exact(0), (1, win.out_h, win.out_w, w.shape[3])))  # by shape alone
    sums = np.empty((x.shape[0], bands[0].stop, win.out_w, w.shape[3]), dtype=exact)
    product = np.empty_like(sums)
    # Each tap's weights repeated along a whole output row: every multiply below then runs over
    # rows of OW*C contiguous values instead of C at a time (NumPy's inner loops are short otherwise).
    row_taps = np.repeat(taps[:, :, None, :], win.out_w, axis=2)  # [KH, KW, OW, C]
    taps_inside = window_taps(win, x.shape[1], x.shape[2])
    for band_rows in bands:  # band by band: from the first tap to the rescaling, a band stays in cache
        band = sums[:, : band_rows.stop - band_rows.start]
        band[...] = 0
        for ky, kx, rows, columns in taps_inside:
            part = rows.within(band_rows.start, band_rows.stop)
            if part is not None:
                term = product[:, : part.out_stop - part.out_start, : columns.out_stop - columns.out_start]
                np.multiply(xs[:, part.inputs, columns.inputs], row_taps[ky, kx, columns.outputs], out=term)
                band[:, part.outputs, columns.outputs] += term
        rescale(p, band, b, out[:, band_rows])
    return out


def requantize(p: QuantizedConvParams, sums: np.ndarray, b: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + output_offset), the
    kernels' last step, row band by row band; acc arrives as exact integers in floats."""
    out = np.empty(sums.shape, dtype=dtype)
    for rows in row_bands(sums):
        rescale(p, sums[:, rows], b, out[:, rows])
    return out


def rescale(p: QuantizedConvParams, acc: np.ndarray, b: np.ndarray | None, out: np.ndarray) -> None:
    """out[...] = requantize's result for one band: in float64 where prepare proved that exact
    (the usual case), else in int64."""
    multiplier, shift = _same_or_each(p.multiplier), _same_or_each(p.shift)  # uint8: one for all channels
    if p.float64_exact:
        scaled = multiply_by_quantized_multiplier_float64(acc, multiplier, shift, 0 if b is None else b,
                                                          p.output_offset, low=p.act_min)
    else:
        acc = acc.astype(np.int64)
        if b is not None:
            acc += b
        if p.wraps:
            acc = wrap_int32(acc)  # int32 `acc += bias` in C
        scaled = multiply_by_quantized_multiplier_floor(acc, multiplier, shift)
        scaled += p.output_offset
    out[...] = np.clip(scaled, p.act_min, p.act_max, out=scaled)


def _same_or_each(values: np.ndarray) -> np.ndarray | int:
    """One value when all channels share it (cheaper to broadcast), else the array."""
    return int(values[0]) if values.size and (values == values[0]).all() else values


KERNELS: dict[str, Callable] = {
    "conv2d_quantized": conv2d_quantized,
    "depthwise_conv2d_quantized": depthwise_conv2d_quantized,
}

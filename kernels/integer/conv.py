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
    float64_rescaling_constants,
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
    rescaling: FloatRescaling | None = None  # for constant biases, where float64_exact


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
    return requantize(p, conv_sums(p, x, w), b, x.dtype)


def conv_sums(p: QuantizedConvParams, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The accumulators before bias, sum over (ky, kx, ci) of (w + filter_offset)(x + input_offset),
    as exact integers in floats [N, OH, OW, Cout], group by group."""
    f = p.filter or shift_filter(p, w, False, x.dtype)
    groups = x.shape[3] // w.shape[3]
    per_group = w.shape[0] // groups
    xs = np.add(x, np.float32(p.input_offset), dtype=np.float32)  # exact
    sums = [
        _conv_sums(p.window, f, xs[..., g * w.shape[3] : (g + 1) * w.shape[3]], g * per_group, (g + 1) * per_group)
        for g in range(groups)
    ]
    return sums[0] if groups == 1 else np.concatenate(sums, axis=3)


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

    The input, shifted by its zero point and padded with zeros (so that a tap outside the input
    adds 0, as the reference skips it), is read through a strided view of every window,
    [KH, KW, OH, OW, C]; np.einsum multiplies it by the taps and sums over (ky, kx) in one pass
    per tap. Any order of those additions gives the same sums: all are exact integers. Without a
    horizontal stride a row's OW*C values are one run in memory, and the view is flattened to it.
    """
    f = p.filter or shift_filter(p, w, True, x.dtype)
    win = p.window
    cout = w.shape[3]
    if cout > x.shape[3]:
        x = np.repeat(x, cout // x.shape[3], axis=3)  # output channel c reads input channel c // m
    exact = np.float32 if f.bound < FLOAT32_EXACT else np.float64
    taps = f.matrix.reshape(win.filter_h, win.filter_w, cout).astype(exact)
    if not padding_fits(win, x.shape):
        return requantize(p, _depthwise_sums_by_taps(win, taps, np.add(x, exact(p.input_offset), dtype=exact)),
                          b, x.dtype)
    padded = pad_for_window(x, win, value=-p.input_offset)  # the zero point: 0 once shifted
    windows = window_patches(np.add(padded, exact(p.input_offset), dtype=exact), win).transpose(0, 3, 4, 1, 2, 5)
    # Each tap's weights repeated along a whole output row: einsum's inner loop then runs over a
    # row of OW*C contiguous values instead of C at a time.
    row_taps = np.repeat(taps[:, :, None, :], win.out_w, axis=2)  # [KH, KW, OW, C]
    subscripts = "yxhwc,yxwc->hwc"
    if win.stride_w == 1:
        windows = windows.reshape(*windows.shape[:4], -1)  # a view: (ow, c) are one run of memory
        row_taps = row_taps.reshape(win.filter_h, win.filter_w, -1)
        subscripts = "yxhj,yxj->hj"
    out = np.empty((x.shape[0], win.out_h, win.out_w, cout), dtype=x.dtype)
    bands = row_bands(np.broadcast_to(exact(0), (1, win.out_h, win.out_w, cout)))  # by shape alone
    sums = np.empty((bands[0].stop, *windows.shape[4:]), dtype=exact)
    rescaling = float_rescaling(p, b, win.out_w, cout)
    for n in range(x.shape[0]):
        for rows in bands:  # band by band: from the first tap to the rescaling, a band stays in cache
            band = sums[: rows.stop - rows.start]
            np.einsum(subscripts, windows[n, :, :, rows], row_taps, out=band)
            rescale(p, band.reshape(-1, win.out_w, cout), b, out[n, rows], rescaling)
    return out


def _depthwise_sums_by_taps(win: Window, taps: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The depthwise sums tap by tap, over only the outputs whose tap lands inside the input:
    for dilations so large that padding the input would not fit in memory."""
    sums = np.zeros((xs.shape[0], win.out_h, win.out_w, xs.shape[3]), dtype=taps.dtype)
    for ky, kx, rows, columns in window_taps(win, xs.shape[1], xs.shape[2]):
        sums[:, rows.outputs, columns.outputs] += xs[:, rows.inputs, columns.inputs] * taps[ky, kx]
    return sums


@dataclass(frozen=True, eq=False)
class FloatRescaling:
    """fixed_point.multiply_by_quantized_multiplier_float64's constants for output channel c, with
    the bias and the output zero point folded in (M = multiplier[c], r = -shift[c] >= 0):

        y = acc * scale + start,       scale = M * 2**-(31+r),
                                       start = bias[c] * scale + 2**-(r+1) + 1/2 [r > 0] + output_offset
        y -= step where y < threshold  (step = 2**-r [r > 0], threshold = 1/2 + output_offset)
        out = clamp(floor(y), act_min, act_max)

    is clamp(MultiplyByQuantizedMultiplier(acc + bias[c], M, -r) + output_offset, act_min, act_max)
    where prepare proved it (QuantizedConvParams.float64_exact): every value above is then a
    multiple of 2**-(31+r) below 2**53 of them, exact in float64, and |y| < 2**22. The second line,
    RoundingDivideByPOT's negative case, only changes results <= output_offset; step is None when
    act_min clamps those away. The constants are laid out along a whole output row (width x
    channels), so that every pass runs over rows, not over C values at a time.
    """

    scale: np.ndarray | float  # float64 [W*C], or one value for all channels
    start: np.ndarray  # float64 [W*C]
    step: np.ndarray | float | None
    threshold: float
    width: int  # W
    bias: np.ndarray | None  # the bias folded into start


def float_rescaling(p: QuantizedConvParams, b: np.ndarray | None, width: int, channels: int) -> FloatRescaling | None:
    """The float64 rescaling's constants for rows of `width` pixels: worked out at prepare for a
    constant bias (p.rescaling), else here; None where they are not exact (the int64 form runs)."""
    if not p.float64_exact:
        return None
    if p.rescaling is not None and p.rescaling.bias is b and p.rescaling.width == width:
        return p.rescaling
    scale, start, step, threshold = float64_rescaling_constants(
        _same_or_each(p.multiplier), _same_or_each(p.shift), 0 if b is None else b, p.output_offset)
    start = np.broadcast_to(start, (channels,))

    def along_row(value: np.ndarray) -> np.ndarray | float:
        return float(value) if value.ndim == 0 else np.tile(value, width)

    negative = p.act_min < p.output_offset  # else the clamp hides RoundingDivideByPOT's negative case
    return FloatRescaling(along_row(scale), along_row(start), along_row(step) if negative else None,
                          threshold, width, b)


def requantize(p: QuantizedConvParams, sums: np.ndarray, b: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + output_offset), the
    kernels' last step, row band by row band; acc arrives as exact integers in floats."""
    out = np.empty(sums.shape, dtype=dtype)
    rescaling = float_rescaling(p, b, sums.shape[2], sums.shape[3])
    for rows in row_bands(sums):
        rescale(p, sums[:, rows], b, out[:, rows], rescaling)
    return out


def rescale(p: QuantizedConvParams, acc: np.ndarray, b: np.ndarray | None, out: np.ndarray,
            rescaling: FloatRescaling | None) -> None:
    """out[...] = requantize's result for one band, acc and out [..., W, C] with (W, C) contiguous:
    in float64 where prepare proved that exact (`rescaling`, see FloatRescaling), else in int64."""
    if rescaling is None:
        _rescale_int64(p, acc, b, out)
        return
    acc, out = _rows(acc), _rows(out)
    y = np.multiply(acc, rescaling.scale, dtype=np.float64)
    y += rescaling.start
    _round_and_clamp(p, y, rescaling, out)


def _round_and_clamp(p: QuantizedConvParams, y: np.ndarray, rescaling: FloatRescaling, out: np.ndarray) -> None:
    """out = clamp(floor(y - step [y < threshold])), FloatRescaling's last two lines, y in place."""
    if rescaling.step is not None:
        y -= rescaling.step * (y < rescaling.threshold)
    if p.act_min < 0:
        np.floor(y, out=y)
    # To int32, which truncates toward zero: floor(y) for y >= 0, and for act_min >= 0 every y
    # below 0 clamps to act_min either way. Then the clamp, into the output type.
    whole = np.empty(y.shape, dtype=np.int32)
    np.copyto(whole, y, casting="unsafe")
    np.clip(whole, p.act_min, p.act_max, out=out, casting="unsafe")


def _rescale_int64(p: QuantizedConvParams, acc: np.ndarray, b: np.ndarray | None, out: np.ndarray) -> None:
    multiplier, shift = _same_or_each(p.multiplier), _same_or_each(p.shift)  # uint8: one for all channels
    acc = acc.astype(np.int64)
    if b is not None:
        acc += b
    if p.wraps:
        acc = wrap_int32(acc)  # int32 `acc += bias` in C
    scaled = multiply_by_quantized_multiplier_floor(acc, multiplier, shift)
    scaled += p.output_offset
    out[...] = np.clip(scaled, p.act_min, p.act_max, out=scaled)


def _rows(a: np.ndarray) -> np.ndarray:
    """[..., W, C] as [..., W*C]: a view, as the kernels' bands keep (W, C) contiguous."""
    return a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])


def _same_or_each(values: np.ndarray) -> np.ndarray | int:
    """One value when all channels share it (cheaper to broadcast), else the array."""
    return int(values[0]) if values.size and (values == values[0]).all() else values


KERNELS: dict[str, Callable] = {
    "conv2d_quantized": conv2d_quantized,
    "depthwise_conv2d_quantized": depthwise_conv2d_quantized,
}

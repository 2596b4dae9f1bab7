"""Quantized TRANSPOSE_CONV (uint8 per tensor, int8 per channel), NHWC.

The specification of LiteRT's reference kernels: reference_ops::TransposeConv's uint8 overload
(reference/transpose_conv.h) and reference_integer_ops::TransposeConv (reference/integer_ops/
transpose_conv.h). Both scatter, into an int32 scratch buffer zeroed first,

    acc[n, iy*sh - pad_top + ky, ix*sw - pad_left + kx, co] += (x + input_offset) * (w + filter_offset)

over every input value and every tap landing inside the output, then

    out = clamp(MultiplyByQuantizedMultiplier(acc + bias[co], M[co], shift[co]) + output_offset, act_min, act_max)

uint8 with one (M, shift) and a filter offset, int8 with one (M, shift) per output channel and
filter offset 0. The accumulation wraps in int32 as C's does (QuantizedConvParams.wraps).

Exact arithmetic in floats, as kernels/integer/conv.py argues it: shifted 8-bit values are
integers in [-255, 255], so every product, and every sum of products, is an integer, exact in
float32 while below 2**24 (in float64 below 2**53) whatever order the additions take. The input
is multiplied by the shifted weights in one matrix product, input [N*H*W, Cin] @ weights
[Cin, KH*KW*Cout], whose sums (over Cin, one tap each) TransposedFilter.tap_bound bounds; the taps'
blocks are then added into the output (col2im), whose sums TransposedFilter.bound bounds. Each
step runs in float32 where its bound is below 2**24, else in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.integer.conv import FLOAT32_EXACT, QuantizedConvParams, largest_shifted_input, requantize
from npdeeplab.kernels.transpose_conv import TransposeWindow, flat_bias, input_bands, scatter_taps


@dataclass(frozen=True, eq=False)
class TransposedFilter:
    """The weights minus their zero point as a matrix [Cin, KH*KW*Cout] (columns in (ky, kx, co)
    order), and the bounds that make float sums of their products exact. Worked out once at
    prepare for constant weights."""

    matrix: np.ndarray  # float32 (or float64 where tap_bound needs it), exact small integers
    tap_bound: int  # the largest |sum over Cin of products| any input can give: one tap, one channel
    bound: int  # the largest |sum| one output can get (its taps: one stride phase, over Cin), over channels


@dataclass(frozen=True, eq=False)
class QuantizedTransposeConvParams:
    """Everything Prepare works out for a quantized TRANSPOSE_CONV (LiteRT's OpData).

    conv holds the offsets, the per-channel (multiplier, shift), the clamp and the rescaling's
    proofs, as for a convolution (its window is window.dual), so that the convolutions'
    requantization serves unchanged."""

    window: TransposeWindow
    conv: QuantizedConvParams
    filter: TransposedFilter | None = None  # for constant weights


def transpose_filter(p: QuantizedTransposeConvParams, w: np.ndarray, input_dtype: np.dtype) -> TransposedFilter:
    """The shifted weights [Cin, (ky, kx, co)] with their bounds, from w [Cout, KH, KW, Cin]."""
    cin = w.shape[3]
    shifted = w.astype(np.int64) + p.conv.filter_offset
    x_max = largest_shifted_input(p.conv.input_offset, input_dtype)
    per_tap = np.abs(shifted).sum(axis=3)  # [Cout, KH, KW]: sum over Cin of |w|
    tap_bound = int(per_tap.max(initial=0)) * x_max
    # The taps that reach one output row are those ky = oy + pad_top (mod stride_h), each once: an
    # output's sum has at most one stride phase (ry, rx) of the taps' terms.
    win = p.window
    phases = [per_tap[:, ry :: win.stride_h, rx :: win.stride_w].sum(axis=(1, 2)).max(initial=0)
              for ry in range(min(win.stride_h, win.filter_h)) for rx in range(min(win.stride_w, win.filter_w))]
    bound = int(max(phases)) * x_max
    exact = np.float32 if tap_bound < FLOAT32_EXACT else np.float64
    matrix = np.ascontiguousarray(shifted.transpose(3, 1, 2, 0).reshape(cin, -1).astype(exact))
    matrix.flags.writeable = False
    return TransposedFilter(matrix, tap_bound, bound)


def transpose_conv_quantized(
    p: QuantizedTransposeConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
) -> np.ndarray:
    """reference_ops::TransposeConv (uint8) / reference_integer_ops::TransposeConv (int8).

    x [N, H, W, Cin], w [Cout, KH, KW, Cin] (OHWI), b [Cout] int32 or None (zeros).
    """
    f = p.filter or transpose_filter(p, w, x.dtype)
    win = p.window
    n, cin, cout = x.shape[0], x.shape[3], w.shape[0]
    exact = f.matrix.dtype.type
    sums = np.zeros((n, win.out_h, win.out_w, cout), dtype=np.float32 if f.bound < FLOAT32_EXACT else np.float64)
    for rows in input_bands(n, win, cout, f.matrix.itemsize):
        shifted = np.add(x[:, rows], exact(p.conv.input_offset), dtype=exact).reshape(-1, cin)
        products = (shifted @ f.matrix).reshape(n, rows.stop - rows.start, win.in_w, win.filter_h, win.filter_w, cout)
        scatter_taps(sums, products, win, rows)
    return requantize(p.conv, sums, flat_bias(b), x.dtype)


KERNELS: dict[str, Callable] = {"transpose_conv_quantized": transpose_conv_quantized}

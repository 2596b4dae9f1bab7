"""Quantized FULLY_CONNECTED: uint8 per tensor, int8 per tensor or per channel.

The specification of LiteRT's reference kernels: reference_ops::FullyConnected (uint8,
reference/fully_connected.h), reference_integer_ops::FullyConnected (int8 per tensor) and
reference_integer_ops::FullyConnectedPerChannel (reference/integer_ops/fully_connected.h), the
overloads that take the scales. Unlike the convolutions they rescale in double, not through
MultiplyByQuantizedMultiplier (LiteRT's optimized kernels do that, and differ from these by one
on rare elements). For each row b of the input matrix (kernels/fully_connected.input_rows) and unit u:

    acc    = sum over d of (w[u, d] + filter_offset) * (x[b, d] + input_offset) + bias[u]   (int32, wraps)
    scaled = static_cast<int32_t>(round(double(acc) * scale[u]))                           (fixed_point.round_to_int32)
    out    = clamp(scaled + output_offset, act_min, act_max)                               (int32 add, wraps)

scale[u] = double(s_in) * double(s_w[u]) / double(s_out), one value for all units per tensor.
The filter offset is -(filter zero point) per tensor, 0 per channel. C's int32 arithmetic wraps
where it overflows (a bias near INT32_MAX; a huge scale, whose INT32_MIN plus a negative output
zero point wraps up to act_max): checked against LiteRT, and written out here.

Exact arithmetic in floats, as kernels/integer/conv.py does: the products are integers below
2**16 in magnitude; the filter's ShiftedFilter.chunks keep every float32 partial sum below 2**24,
and chunk sums are added in float64, exact below 2**53.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.fixed_point import round_to_int32, wrap_int32
from npdeeplab.kernels.fully_connected import input_rows
from npdeeplab.kernels.integer.conv import ShiftedFilter, shift_filter


@dataclass(frozen=True, eq=False)
class QuantizedFullyConnectedParams:
    """Everything Prepare works out for a quantized FULLY_CONNECTED."""

    batch: int  # rows of the input matrix
    depth: int  # values per row: the filter's input size
    output_shape: tuple[int, ...]
    input_offset: int  # -(input zero point)
    filter_offset: int  # -(filter zero point) per tensor; 0 per channel
    output_offset: int  # output zero point
    scale: np.ndarray  # float64 [units]: double(s_in) * double(s_w[u]) / double(s_out)
    act_min: int  # the fused activation's clamp, quantized
    act_max: int
    wraps: bool  # acc + bias may leave int32 (it wraps in C); False when prepare bounded it
    filter: ShiftedFilter | None = None  # for constant filters


def shifted_filter(p: QuantizedFullyConnectedParams, w: np.ndarray, dtype: np.dtype) -> ShiftedFilter:
    """The filter plus its offset as a float32 [depth, units] matrix, with exact-sum chunks: the
    convolutions' ShiftedFilter of a [units, depth] filter (it reads p's two offsets only)."""
    return p.filter or shift_filter(p, w, False, dtype)


def fully_connected_quantized(
    p: QuantizedFullyConnectedParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
) -> np.ndarray:
    """reference_ops::FullyConnected / reference_integer_ops::FullyConnected(PerChannel).

    x any rank, w [units, depth] of x's type, b int32 with `units` values (any shape) or None.
    """
    f = shifted_filter(p, w, x.dtype)
    xs = np.add(input_rows(x, p.batch, p.depth), np.float32(p.input_offset), dtype=np.float32)  # exact
    sums = None
    for start, stop in f.chunks:
        part = xs[:, start:stop] @ f.matrix[start:stop]  # float32, every partial sum exact
        sums = part.astype(np.float64) if sums is None else sums + part
    return requantize(p, sums, b, x.dtype).reshape(p.output_shape)


def requantize(p: QuantizedFullyConnectedParams, sums: np.ndarray, b: np.ndarray | None,
               dtype: np.dtype) -> np.ndarray:
    """The kernels' last three lines, for sums [batch, units] arriving as exact float64 integers."""
    acc = sums.astype(np.int64)
    if b is not None:
        acc += b.reshape(-1)
    if p.wraps:
        acc = wrap_int32(acc)  # int32 `acc += ...` in C
    scaled = round_to_int32(acc * p.scale)  # double(acc) * scale: acc is below 2**31, exact in float64
    out = wrap_int32(scaled + p.output_offset)  # int32 `acc_scaled += output_offset` in C
    return np.clip(out, p.act_min, p.act_max).astype(dtype)


KERNELS: dict[str, Callable] = {"fully_connected_quantized": fully_connected_quantized}

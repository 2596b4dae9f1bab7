"""QUANTIZE (float32 -> int, int -> int) and DEQUANTIZE (int -> float32), as LiteRT's reference
kernels compute them (reference/quantize.h, requantize.h, dequantize.h, integer_ops/dequantize.h).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from npdeeplab.kernels.fixed_point import (
    INT32_MIN,
    multiply_by_quantized_multiplier,
    round_half_away,
    saturate,
    wrap_int32,
)


@dataclass(frozen=True, eq=False)
class AffineParams:
    """One scale and zero point per tensor (axis None, arrays of one value) or per channel along axis."""

    dtype: np.dtype  # the quantized type: QUANTIZE's output, DEQUANTIZE's input
    scale: np.ndarray = field(repr=False)  # float32
    zero_point: np.ndarray = field(repr=False)  # int64
    axis: int | None = None

    def along(self, values: np.ndarray, rank: int) -> np.ndarray:
        """values shaped to broadcast against a rank-`rank` tensor (per channel: along axis)."""
        if self.axis is None:
            return values.reshape(())
        shape = [1] * rank
        shape[self.axis] = -1
        return values.reshape(shape)


def float_to_int32(x: np.ndarray) -> np.ndarray:
    """static_cast<int32_t> of integral float32 values as x86-64 does it (cvttss2si): NaN and values
    outside [-2**31, 2**31) become INT32_MIN."""
    inside = (x >= -(2.0**31)) & (x < 2.0**31)  # False for NaN
    return np.where(inside, np.where(inside, x, 0).astype(np.int64), INT32_MIN)


def quantize(p: AffineParams, x: np.ndarray) -> np.ndarray:
    """AffineQuantize / PerChannelQuantize: clamp(int32(round(x / scale)) + zero_point), the division
    in float32, halves away from zero; the int32 conversion and the addition as C does them (a huge,
    infinite or NaN input is INT32_MIN, and INT32_MIN plus a negative zero point wraps)."""
    rank = x.ndim
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        rounded = round_half_away(x / p.along(p.scale, rank))
    unclamped = wrap_int32(float_to_int32(rounded) + p.along(p.zero_point, rank))
    return saturate(unclamped, p.dtype)


@dataclass(frozen=True)
class RequantizeParams:
    input_zero_point: int
    multiplier: int  # QuantizeMultiplier(double(s_in) / double(s_out))
    shift: int
    output_zero_point: int
    dtype: np.dtype  # the output type
    flip_sign_bit: bool  # the ratio is exactly 1 and uint8 <-> int8 differ by 128 in zero point


def requantize(p: RequantizeParams, x: np.ndarray) -> np.ndarray:
    """reference_ops::Requantize: requantize_formula. An input with at least as many elements as its
    type has values is looked up in the formula's table of them all (cached per params): the same
    integers, in one pass instead of a dozen."""
    if x.size >= 1 << (8 * x.dtype.itemsize):
        return np.take(requantize_table(p, x.dtype), x.view(_UNSIGNED[x.dtype.itemsize]))
    return requantize_formula(p, x)


def requantize_formula(p: RequantizeParams, x: np.ndarray) -> np.ndarray:
    """clamp(MultiplyByQuantizedMultiplier(q - z_in) + z_out), the int32 subtraction wrapping, or
    q ^ 0x80 for the uint8 <-> int8 case that only moves the zero point by 128."""
    if p.flip_sign_bit:
        return (x.view(np.uint8) ^ np.uint8(0x80)).view(p.dtype)
    shifted = wrap_int32(x.astype(np.int64) - p.input_zero_point)
    return saturate(multiply_by_quantized_multiplier(shifted, p.multiplier, p.shift) + p.output_zero_point, p.dtype)


_UNSIGNED = {1: np.uint8, 2: np.uint16}  # an input's raw bits, as a table index


@functools.lru_cache(maxsize=256)
def requantize_table(p: RequantizeParams, dtype: np.dtype) -> np.ndarray:
    """requantize_formula of every value of the input type (8 or 16 bits), indexed by its raw bits
    (an int8 -1 is entry 255). Read-only, shared by every call (and by the Numba twin)."""
    unsigned = _UNSIGNED[dtype.itemsize]
    table = requantize_formula(p, np.arange(np.iinfo(unsigned).max + 1, dtype=unsigned).view(dtype))
    table.flags.writeable = False
    return table


def dequantize(p: AffineParams, x: np.ndarray) -> np.ndarray:
    """Dequantize / PerChannelDequantize: float32(scale * (q - zero_point)). Per tensor TFLite
    multiplies in double and rounds to float32, per channel it multiplies in float32: both are the
    exact product rounded once, since a float32 times an integer below 2**24 is exact in double."""
    rank = x.ndim
    return (x.astype(np.int64) - p.along(p.zero_point, rank)).astype(np.float32) * p.along(p.scale, rank)


KERNELS: dict[str, Callable] = {
    "quantized_quantize": quantize,
    "quantized_requantize": requantize,
    "quantized_dequantize": dequantize,
}

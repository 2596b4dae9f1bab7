"""Quantized SOFTMAX, LOGISTIC and TANH (uint8, int8), as LiteRT's reference kernels compute them.

LOGISTIC and TANH look every input up in a 256-entry table that Prepare builds (activations.cc's
SigmoidPrepare/TanhPrepare with LUTPopulate, common.h): table[q] = clamp(round(f(s_in * (q - z_in))
/ s_out) + z_out) in float32, f the C library's expf- or tanhf-based function. SOFTMAX does not
use a table under the reference resolver: reference_ops::Softmax (reference/softmax.h) works in
gemmlowp fixed point, exp(beta * s_in * (x - max)) in Q5.26, the sum in Q12.19, its reciprocal by
Newton-Raphson, the output in units of 1/256.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from npdeeplab.kernels.fixed_point import (
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    saturate,
    saturating_rounding_doubling_high_mul,
    saturating_rounding_multiply_by_pot,
)

# --- LOGISTIC, TANH: lookup tables ---------------------------------------------------------------


# LiteRT calls std::tanh and std::exp on floats, i.e. the C library's tanhf and expf. glibc's tanhf
# is not correctly rounded (it differs from float64-then-float32 for ~1 in 5 inputs) and those
# last bits move table entries (tests/test_quantized_activation.py keeps such a case): so the
# tables call the same functions. Where no C math library loads, NumPy's float64 stands in.


@functools.cache
def c_math(name: str) -> Callable[[float], float] | None:
    """float name(float) from the C math library, or None where there is none to load."""
    for library in ("libm.so.6", ctypes.util.find_library("m")):
        try:
            function = getattr(ctypes.CDLL(library), name)
        except (OSError, AttributeError, TypeError):
            continue
        function.argtypes, function.restype = [ctypes.c_float], ctypes.c_float
        return function
    return None


def _map_float32(name: str, fallback: Callable, x: np.ndarray) -> np.ndarray:
    function = c_math(name)
    if function is None:
        return fallback(x.astype(np.float64)).astype(np.float32)
    return np.array([function(float(v)) for v in x], dtype=np.float32)


def tanhf(x: np.ndarray) -> np.ndarray:
    """std::tanh on float32 values: TanhPrepare's transform."""
    return _map_float32("tanhf", np.tanh, x)


def logisticf(x: np.ndarray) -> np.ndarray:
    """1.0f / (1.0f + std::exp(-x)) in float32: SigmoidPrepare's transform."""
    e = _map_float32("expf", np.exp, -x)
    with np.errstate(over="ignore"):
        return np.float32(1) / (np.float32(1) + e)


@dataclass(frozen=True, eq=False)
class LookupParams:
    """A 256-entry table in the order of the raw bytes: int8 -128 sits at index 0x80, as in LiteRT."""

    table: np.ndarray = field(repr=False)


def table_int32_values(transform: Callable[[np.ndarray], np.ndarray], input_scale: float, input_zero_point: int,
                       output_scale: float, output_zero_point: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """LUTPopulateInt8 up to its int32 cast: (every value q of dtype, round(f(dequantized) / s_out) + z_out
    as the float32 the C code casts to int32). Out of int32's range that cast is undefined in C."""
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1)
    dequantized = np.float32(input_scale) * (q - input_zero_point).astype(np.float32)
    inverse_scale = np.float32(1) / np.float32(output_scale)
    with np.errstate(over="ignore", invalid="ignore"):
        rescaled = round_half_away(transform(dequantized) * inverse_scale)  # TfLiteRound: roundf
        return q, rescaled + np.float32(output_zero_point)


def lut_populate(transform: Callable[[np.ndarray], np.ndarray], input_scale: float, input_zero_point: int,
                 output_scale: float, output_zero_point: int, dtype: np.dtype) -> LookupParams:
    """LiteRT's LUTPopulate<uint8_t/int8_t>: the table of transform over every input value,
    clamped to dtype and stored by raw byte. The caller has checked that the values fit int32."""
    q, quantized = table_int32_values(transform, input_scale, input_zero_point, output_scale, output_zero_point,
                                      dtype)
    table = np.empty(256, dtype=dtype)
    table[q.astype(dtype).view(np.uint8)] = saturate(quantized.astype(np.int64), dtype)
    table.flags.writeable = False
    return LookupParams(table)


def quantized_lookup(p: LookupParams, x: np.ndarray) -> np.ndarray:
    """reference_integer_ops::LookupTable: each value replaced by its table entry."""
    return p.table[x.view(np.uint8)]


# --- SOFTMAX: gemmlowp fixed point ---------------------------------------------------------------

SCALED_DIFF_INTEGER_BITS = 5  # the input of exp(), Q5.26
ACCUMULATION_INTEGER_BITS = 12  # the sum of exps, Q12.19


@dataclass(frozen=True)
class QuantizedSoftmaxParams:
    input_multiplier: int  # QuantizeMultiplierGreaterThanOne(beta * s_in * 2**26), capped at 2**31 - 1
    input_left_shift: int
    diff_min: int  # -CalculateInputRadius(5, left_shift): differences below it give exp 0


def quantized_softmax(p: QuantizedSoftmaxParams, x: np.ndarray) -> np.ndarray:
    """reference_ops::Softmax<uint8/int8, uint8/int8> over the last axis; the output is in units of
    1/256 from the type's minimum (zero point 0 for uint8, -128 for int8), whatever the output
    tensor declares.

    A row whose exps sum to 512 or more (as many values at the maximum) makes REF's final shift 32
    or more, and its TFLITE_CHECK abort the process; the same arithmetic carried on (the shift is
    exact in int64) gives the type's minimum there. Prepare keeps the sum inside int32.
    """
    info = np.iinfo(x.dtype)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    counted = diff >= p.diff_min
    # MultiplyByQuantizedMultiplierGreaterThanOne: the left shift in (wrapping) int32, then SRDHM
    rescaled = multiply_by_quantized_multiplier(np.where(counted, diff, 0), p.input_multiplier, p.input_left_shift)
    exps = np.where(counted, exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS), 0)  # Q0.31
    total = saturating_rounding_multiply_by_pot(exps, -ACCUMULATION_INTEGER_BITS).sum(axis=1, keepdims=True)
    reciprocal, bits_over_unit = get_reciprocal(total, ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8  # 8 output bits
    unsaturated = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps), exponent)
    out = np.where(counted, unsaturated + info.min, info.min)
    return saturate(out, x.dtype).reshape(x.shape)


KERNELS: dict[str, Callable] = {"quantized_lookup": quantized_lookup, "quantized_softmax": quantized_softmax}

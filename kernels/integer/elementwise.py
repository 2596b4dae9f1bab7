"""Quantized ADD, SUB and MUL (uint8, int8, per tensor), NumPy broadcasting, fused activation.

Mirrors TFLite's reference_ops::AddElementwise / BroadcastAdd6DSlow, BroadcastQuantSubSlow and
MulElementwise / BroadcastMul6DSlow (reference/add.h, sub.h, mul.h) and their int8 twins in
reference/integer_ops/. Every value is a function of one element of each input, so broadcasting
is NumPy's. Values are int64 arrays holding int32 quantities.

The functions below are the specification. An 8-bit op meets only 256 x 256 input pairs, so on
a large output each kernel evaluates its formula once on all of them (`lookup_table`, cached per
params) and gathers table[a, b]: the same integers by construction, some 30x cheaper per element
than the formula's dozen int64 passes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.fixed_point import multiply_by_quantized_multiplier


@dataclass(frozen=True)
class AddSubParams:
    """ADD's and SUB's OpData: each input is rescaled to a common scale with 20 bits of headroom,
    then the sum (difference) to the output's. All shifts are <= 0 (right shifts)."""

    left_shift: int  # 20 for 8-bit types
    input1_offset: int  # -zero point of input 0
    input1_multiplier: int
    input1_shift: int
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int  # the output's zero point
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class MulParams:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int  # may be positive (a left shift, in wrapping int32)
    act_min: int
    act_max: int


TABLE_MIN_SIZE = 1 << 14  # outputs from a quarter of the table's 65536 entries on are looked up


def quantized_add(p: AddSubParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's quantized AddElementwise: add_formula, looked up in its table on large outputs."""
    if _tabulated(a, b):
        return look_up(lookup_table(add_formula, p, a.dtype), a, b)
    return add_formula(p, a, b)


def quantized_sub(p: AddSubParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's quantized SubElementwise: sub_formula, looked up in its table on large outputs."""
    if _tabulated(a, b):
        return look_up(lookup_table(sub_formula, p, a.dtype), a, b)
    return sub_formula(p, a, b)


def quantized_mul(p: MulParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's MulElementwise: mul_formula, looked up in its table on large outputs."""
    if _tabulated(a, b):
        return look_up(lookup_table(mul_formula, p, a.dtype), a, b)
    return mul_formula(p, a, b)


def add_formula(p: AddSubParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's AddFunc: rescale both inputs, add, rescale to the output, clamp."""
    total = _rescaled(a, p.input1_offset, p.input1_multiplier, p.input1_shift, p.left_shift) + _rescaled(
        b, p.input2_offset, p.input2_multiplier, p.input2_shift, p.left_shift
    )
    return _requantized(total, p, a.dtype)


def sub_formula(p: AddSubParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """As add_formula, with the rescaled inputs subtracted."""
    difference = _rescaled(a, p.input1_offset, p.input1_multiplier, p.input1_shift, p.left_shift) - _rescaled(
        b, p.input2_offset, p.input2_multiplier, p.input2_shift, p.left_shift
    )
    return _requantized(difference, p, a.dtype)


def mul_formula(p: MulParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - z1)(b - z2) (exact in int32 for 8-bit inputs), rescaled by
    MultiplyByQuantizedMultiplier, plus the output zero point, clamped."""
    product = (a.astype(np.int64) + p.input1_offset) * (b.astype(np.int64) + p.input2_offset)
    out = multiply_by_quantized_multiplier(product, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, p.act_min, p.act_max).astype(a.dtype)


def _rescaled(x: np.ndarray, offset: int, multiplier: int, shift: int, left_shift: int) -> np.ndarray:
    """(x + offset) * 2**left_shift, times the input's multiplier (shift <= 0: MultiplyByQuantized
    MultiplierSmallerThanOneExp). |x + offset| <= 255, so the shifted value fits int32."""
    shifted = (x.astype(np.int64) + offset) << left_shift
    return multiply_by_quantized_multiplier(shifted, multiplier, shift)


def _requantized(raw: np.ndarray, p: AddSubParams, dtype: np.dtype) -> np.ndarray:
    """The raw sum (|raw| < 2**29, no int32 overflow) to the output scale, offset and clamped."""
    out = multiply_by_quantized_multiplier(raw, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, p.act_min, p.act_max).astype(dtype)


@functools.lru_cache(maxsize=128)
def lookup_table(formula: Callable, p: AddSubParams | MulParams, dtype: np.dtype) -> np.ndarray:
    """formula(p, a, b) for every pair of 8-bit values, flat: entry 256 * a + b for the bytes a and
    b (an int8 -1 is byte 255). Read-only, shared by every call (and by the Numba twin)."""
    values = np.arange(256, dtype=np.uint8).view(dtype)
    table = np.ascontiguousarray(formula(p, values[:, None], values[None, :])).reshape(-1)
    table.flags.writeable = False
    return table


def look_up(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """table[256 * a + b] for the bytes of a and b, broadcast (a 16-bit index: one pass to build)."""
    index = a.view(np.uint8).astype(np.uint16)
    index <<= 8
    index = index | b.view(np.uint8)  # not in place: b may broadcast index up
    return np.take(table, index)


def _tabulated(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether to look the output up: large enough that the table (built once per params) pays."""
    return math.prod(np.broadcast_shapes(a.shape, b.shape)) >= TABLE_MIN_SIZE


KERNELS: dict[str, Callable] = {
    "quantized_add": quantized_add,
    "quantized_sub": quantized_sub,
    "quantized_mul": quantized_mul,
}

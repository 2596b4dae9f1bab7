"""Quantized ADD, SUB and MUL (uint8, int8, per tensor), NumPy broadcasting, fused activation.

Mirrors TFLite's reference_ops::AddElementwise / BroadcastAdd6DSlow, BroadcastQuantSubSlow and
MulElementwise / BroadcastMul6DSlow (reference/add.h, sub.h, mul.h) and their int8 twins in
reference/integer_ops/. Every value is a function of one element of each input, so broadcasting
is NumPy's. Values are int64 arrays holding int32 quantities.
"""

from __future__ import annotations

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


def quantized_add(p: AddSubParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's AddFunc: rescale both inputs, add, rescale to the output, clamp."""
    total = _rescaled(a, p.input1_offset, p.input1_multiplier, p.input1_shift, p.left_shift) + _rescaled(
        b, p.input2_offset, p.input2_multiplier, p.input2_shift, p.left_shift
    )
    return _requantized(total, p, a.dtype)


def quantized_sub(p: AddSubParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's quantized SubElementwise: as ADD, with the rescaled inputs subtracted."""
    difference = _rescaled(a, p.input1_offset, p.input1_multiplier, p.input1_shift, p.left_shift) - _rescaled(
        b, p.input2_offset, p.input2_multiplier, p.input2_shift, p.left_shift
    )
    return _requantized(difference, p, a.dtype)


def quantized_mul(p: MulParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's MulElementwise: (a - z1)(b - z2) (exact in int32 for 8-bit inputs), rescaled by
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


KERNELS: dict[str, Callable] = {
    "quantized_add": quantized_add,
    "quantized_sub": quantized_sub,
    "quantized_mul": quantized_mul,
}

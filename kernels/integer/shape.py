"""Quantized CONCATENATION (uint8) with inputs whose scale or zero point differ from the output's:
reference_ops::ConcatenationWithScaling (reference/concatenation.h).

Inputs quantized as the output are copied; the others are requantized in float32:
f = s_in * (1 / s_out), bias = -zp_in * f, q' = round_half_away(q * f + bias) + zp_out, clamped
to [0, 255].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.fixed_point import INT32_MIN, round_half_away


@dataclass(frozen=True)
class Requantize:
    scale: np.float32  # s_in * float32(1 / s_out), in float32
    bias: np.float32  # -zp_in * scale, in float32


@dataclass(frozen=True)
class QuantizedConcatParams:
    axis: int  # non-negative
    requantize: tuple[Requantize | None, ...]  # per input; None: copied as is
    output_zero_point: int


def quantized_concatenation(p: QuantizedConcatParams, *xs: np.ndarray) -> np.ndarray:
    parts = [x if rule is None else requantized(x, rule, p.output_zero_point) for x, rule in zip(xs, p.requantize,
                                                                                                   strict=True)]
    return np.concatenate(parts, axis=p.axis)


def requantized(x: np.ndarray, rule: Requantize, output_zero_point: int) -> np.ndarray:
    """One input in the output's quantization, float32 throughout as in TFLite.

    The rounded float goes to int32 by static_cast, which on x86 gives INT32_MIN for values out of
    int32's range (or NaN), so those clamp to 0.
    """
    value = round_half_away(x.astype(np.float32) * rule.scale + rule.bias)
    with np.errstate(invalid="ignore"):
        in_range = np.abs(value) < np.float32(2**31)
    integer = np.where(in_range, value, np.float32(0)).astype(np.int64)
    integer = np.where(in_range, integer, INT32_MIN)
    return np.clip(integer + output_zero_point, 0, 255).astype(np.uint8)


KERNELS: dict[str, Callable] = {"quantized_concatenation": quantized_concatenation}

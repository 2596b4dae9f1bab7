"""Quantized MEAN (uint8, int8) over any axes: reference_ops::QuantizedMeanOrSum (reference/reduce.h).

The raw values are summed in int32, the input zero point taken off N times, and the sum rescaled
once by a multiplier that folds in 1/N (worked out at prepare), plus the output zero point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.fixed_point import multiply_by_quantized_multiplier, saturate, wrap_int32


@dataclass(frozen=True)
class QuantizedMeanParams:
    axes: tuple[int, ...]  # non-negative, unique, sorted
    keep_dims: bool
    count: int  # N, the number of values averaged into each output
    input_zero_point: int
    multiplier: int  # QuantizeMultiplier(s_in / s_out), with 1/N folded in
    shift: int
    output_zero_point: int


def quantized_mean(p: QuantizedMeanParams, x: np.ndarray) -> np.ndarray:
    """Mean over p.axes in x's quantized type."""
    total = np.sum(x, axis=p.axes, keepdims=p.keep_dims, dtype=np.int64)
    return mean_from_sums(p, total, x.dtype)


def mean_from_sums(p: QuantizedMeanParams, total: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The sums of the raw values (int64, exact) to the output: TFLite accumulates in int32 and
    takes off zero_point * N in 64 bits, cast back to int32 (both wrap as C does), then
    MultiplyByQuantizedMultiplier, the output zero point, the type's range."""
    shifted = wrap_int32(wrap_int32(total) - p.input_zero_point * p.count)
    out = multiply_by_quantized_multiplier(shifted, p.multiplier, p.shift) + p.output_zero_point
    return saturate(out, dtype)


KERNELS: dict[str, Callable] = {"quantized_mean": quantized_mean}

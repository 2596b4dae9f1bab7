"""HARD_SWISH, LEAKY_RELU and PRELU on float32, as LiteRT's reference kernels compute them.

HARD_SWISH: reference_ops::HardSwish (reference/hard_swish.h), x * min(6, max(0, x + 3)) / 6 in
that order (LiteRT's optimized kernel multiplies by 1/6 instead, and differs in the last bit).
LEAKY_RELU: reference/leaky_relu.h, x > 0 ? x : x * alpha (the only float kernel LiteRT has).
PRELU: activations.cc's ApplyPrelu, x >= 0 ? x : x * alpha, alpha broadcast against x
(reference_ops::BinaryFunction / BroadcastBinaryFunction4DSlow).
A NaN stays NaN; HARD_SWISH(-inf) is NaN in LiteRT too (-inf * 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LeakyReluParams:
    alpha: float  # as the float32 the options table holds


def hard_swish(params: None, x: np.ndarray) -> np.ndarray:
    """x * min(6, max(0, x + 3)) / 6, in float32, multiplying before dividing."""
    reluish = np.minimum(np.maximum(x + np.float32(3), np.float32(0)), np.float32(6))
    with np.errstate(over="ignore", invalid="ignore"):  # |x| near FLT_MAX overflows to inf; -inf * 0 is NaN
        return x * reluish / np.float32(6)


def leaky_relu(p: LeakyReluParams, x: np.ndarray) -> np.ndarray:
    """x where x > 0, else x * alpha (alpha may be negative or above 1)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x > 0, x, x * np.float32(p.alpha))


def prelu(params: None, x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """x where x >= 0, else x * alpha, alpha broadcast to x's shape (Prepare checked it does)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x >= 0, x, x * alpha)

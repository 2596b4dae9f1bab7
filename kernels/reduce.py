"""MEAN, ARG_MAX and ARG_MIN (TFLite reference/reduce.h, reference/arg_min_max.h)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReduceParams:
    axes: tuple[int, ...]  # non-negative, unique
    keep_dims: bool


@dataclass(frozen=True)
class ArgParams:
    axis: int  # non-negative
    output_dtype: np.dtype


def mean(p: ReduceParams, x: np.ndarray) -> np.ndarray:
    """Sum over the axes divided by the number of elements summed, in x's float dtype."""
    count = math.prod(x.shape[a] for a in p.axes)
    total = np.sum(x, axis=p.axes, keepdims=p.keep_dims, dtype=x.dtype)
    return (total / x.dtype.type(count)).astype(x.dtype, copy=False)


def arg_max(p: ArgParams, x: np.ndarray) -> np.ndarray:
    """Index of the largest value along the axis; ties go to the first index."""
    return np.argmax(x, axis=p.axis).astype(p.output_dtype)


def arg_min(p: ArgParams, x: np.ndarray) -> np.ndarray:
    """Index of the smallest value along the axis; ties go to the first index."""
    return np.argmin(x, axis=p.axis).astype(p.output_dtype)

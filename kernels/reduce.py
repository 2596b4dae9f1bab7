"""MEAN, ARG_MAX and ARG_MIN (TFLite reference/reduce.h, reference/arg_min_max.h)."""

from __future__ import annotations

import math
from collections.abc import Callable
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
    if x.dtype.kind == "f":
        return _first_index_of_best(x, np.max, -np.inf, p)
    return np.argmax(x, axis=p.axis).astype(p.output_dtype, copy=False)


def arg_min(p: ArgParams, x: np.ndarray) -> np.ndarray:
    """Index of the smallest value along the axis; ties go to the first index."""
    if x.dtype.kind == "f":
        return _first_index_of_best(x, np.min, np.inf, p)
    return np.argmin(x, axis=p.axis).astype(p.output_dtype, copy=False)


def _first_index_of_best(x: np.ndarray, best_of: Callable, fill: float, p: ArgParams) -> np.ndarray:
    """The first index holding the best number, NaNs passed over, and 0 where all are NaN: what
    LiteRT's reference kernel gives (np.argmax would pick the first NaN)."""
    numbers = ~np.isnan(x)
    best = best_of(np.where(numbers, x, x.dtype.type(fill)), axis=p.axis, keepdims=True)
    return np.argmax((x == best) & numbers, axis=p.axis).astype(p.output_dtype)

"""Numba twin of kernels/integer/reduce.py for the case DeepLab uses: the spatial MEAN of NHWC.
The sums are exact int64 in both; the rescaling of the (few) sums is the NumPy kernel's own."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.integer import reduce as reference
from npdeeplab.kernels.integer.reduce import QuantizedMeanParams, mean_from_sums


def quantized_mean(p: QuantizedMeanParams, x: np.ndarray) -> np.ndarray:
    if x.ndim != 4 or p.axes != (1, 2):
        return reference.quantized_mean(p, x)
    sums = np.empty((x.shape[0], x.shape[3]), dtype=np.int64)
    _spatial_sum(np.ascontiguousarray(x), sums)
    result = mean_from_sums(p, sums, x.dtype)
    return result.reshape(x.shape[0], 1, 1, x.shape[3]) if p.keep_dims else result


@parallel
def _spatial_sum(x, sums):  # noqa: ANN001, ANN202
    n, height, width, channels = x.shape
    partial = np.zeros((n * height, channels), dtype=np.int64)
    for row in prange(n * height):  # rows in parallel, each into its own partial sums
        b, y = row // height, row % height
        for i in range(width):
            for c in range(channels):
                partial[row, c] += x[b, y, i, c]
    for b in range(n):
        for c in range(channels):
            total = 0
            for y in range(height):
                total += partial[b * height + y, c]
            sums[b, c] = total


KERNELS: dict[str, Callable] = {"quantized_mean": quantized_mean}
ACCEPTS_OUT: frozenset[str] = frozenset()


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) this module's kernels for the argument types the engine passes."""
    p = QuantizedMeanParams((1, 2), True, 4, 0, 1 << 30, 0, 0)
    for dtype in dtypes:
        quantized_mean(p, np.zeros((1, 2, 2, 3), dtype=dtype))

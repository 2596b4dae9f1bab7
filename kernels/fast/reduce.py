"""Numba twins of kernels/reduce.py for the cases DeepLab uses: the spatial MEAN of NHWC
(image pooling) and ARG_MAX/ARG_MIN over the last axis (per-pixel class). Other axes use the
NumPy kernels."""

from __future__ import annotations

import numpy as np
from numba import prange

from npdeeplab.kernels import reduce as reference
from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.reduce import ArgParams, ReduceParams


def mean(p: ReduceParams, x: np.ndarray) -> np.ndarray:
    if x.ndim != 4 or p.axes != (1, 2) or x.dtype != np.float32:
        return reference.mean(p, x)
    sums = np.empty((x.shape[0], x.shape[3]), dtype=np.float32)
    _spatial_sum(x, sums)
    result = sums / np.float32(x.shape[1] * x.shape[2])
    return result.reshape(x.shape[0], 1, 1, x.shape[3]) if p.keep_dims else result


def arg_max(p: ArgParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _arg(p, x, True, reference.arg_max, out)


def arg_min(p: ArgParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _arg(p, x, False, reference.arg_min, out)


def _arg(p: ArgParams, x: np.ndarray, largest: bool, fallback: object, out: np.ndarray | None) -> np.ndarray:
    if p.axis != x.ndim - 1:
        return fallback(p, x)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = output(out, x.shape[:-1], p.output_dtype)
    _arg_last_axis(rows, largest, out.reshape(-1))
    return out


@parallel
def _spatial_sum(x, sums):  # noqa: ANN001, ANN202
    n, height, width, channels = x.shape
    for b in range(n):
        for c in prange(channels):
            total = np.float32(0)
            for y in range(height):
                for i in range(width):
                    total += x[b, y, i, c]
            sums[b, c] = total


@parallel
def _arg_last_axis(rows, largest, out):  # noqa: ANN001, ANN202
    for r in prange(rows.shape[0]):
        best = 0
        for c in range(1, rows.shape[1]):
            value, best_value = rows[r, c], rows[r, best]
            if (value > best_value) if largest else (value < best_value):
                best = c  # strictly better only: ties keep the first index, as TFLite
            elif best_value != best_value and value == value:
                best = c  # the best so far is a NaN and this is a number: NaNs are passed over
        out[r] = best

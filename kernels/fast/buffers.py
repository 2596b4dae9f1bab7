"""Output and scratch buffers, so that a steady-state invoke allocates nothing.

The interpreter hands each kernel the buffer its output lives in (`out=`); kernels called
without one allocate, as the NumPy kernels do. Numba does not bounds-check, so a buffer of the
wrong shape or dtype is refused here rather than written past.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

_local = threading.local()  # scratch arrays per thread: two interpreters may run at once
_zeros: dict[int, np.ndarray] = {}


def output(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"output buffer {out.shape} {out.dtype} does not fit {tuple(shape)} {np.dtype(dtype)}")
    return out


def output_rows(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(the output, its pixels as rows [N*H*W, C]) for a kernel whose every row of channels is
    written whole: besides what output() takes, `out` may be a slice along the last axis of a
    larger buffer (a concatenation's, which the planner lets its producers fill in place), whose
    rows are then a stride apart."""
    if out is not None and not out.flags.c_contiguous and _rows_apart(out, shape, dtype):
        return out, as_strided(out, (math.prod(shape[:-1]), shape[-1]), out.strides[-2:])
    out = output(out, shape, dtype)
    return out, out.reshape(-1, shape[-1])


def _rows_apart(out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether out's pixels are rows of contiguous channels, each the same stride after the last."""
    if out.shape != tuple(shape) or out.dtype != dtype or out.ndim < 2 or out.strides[-1] != out.itemsize:
        return False
    return all(out.strides[k] == out.strides[k + 1] * out.shape[k + 1] for k in range(out.ndim - 2))


def flat_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """(a flat view from rows' first element to its last, the row stride in elements) of a 2-D
    array of contiguous rows: what the register tiles write through."""
    ldc = rows.strides[0] // rows.itemsize if rows.shape[0] > 1 else rows.shape[1]
    if rows.flags.c_contiguous:
        return rows.reshape(-1), ldc
    return as_strided(rows, (max(0, rows.shape[0] - 1) * ldc + rows.shape[1],), (rows.itemsize,)), ldc


def scratch(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A work array (float32 unless said), reused between calls with the same shape and dtype on
    the same thread."""
    arrays = _local.__dict__.setdefault("arrays", {})
    key = (shape, np.dtype(dtype))
    if key not in arrays:
        arrays[key] = np.empty(shape, dtype=dtype)
    return arrays[key]


def zeros(size: int) -> np.ndarray:
    """A read-only float32 zero vector, e.g. the bias of a convolution that has none."""
    if size not in _zeros:
        _zeros[size] = np.zeros(size, dtype=np.float32)
        _zeros[size].flags.writeable = False
    return _zeros[size]

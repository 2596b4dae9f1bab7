"""Output and scratch buffers, so that a steady-state invoke allocates nothing.

The interpreter hands each kernel the buffer its output lives in (`out=`); kernels called
without one allocate, as the NumPy kernels do. Numba does not bounds-check, so a buffer of the
wrong shape or dtype is refused here rather than written past.
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()  # scratch arrays per thread: two interpreters may run at once
_zeros: dict[int, np.ndarray] = {}


def output(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"output buffer {out.shape} {out.dtype} does not fit {tuple(shape)} {np.dtype(dtype)}")
    return out


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

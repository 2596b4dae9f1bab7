"""Numba twins of kernels/rectifiers.py (float32 HARD_SWISH, LEAKY_RELU, PRELU): one parallel pass
each, the reference's float32 operations in its order (x * reluish first, then / 6)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.fast.integer.elementwise import broadcast_strides
from npdeeplab.kernels.rectifiers import LeakyReluParams

CHUNK = 16384  # output elements per parallel task when alpha broadcasts


def hard_swish(params: None, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = output(out, x.shape, x.dtype)
    _hard_swish(np.ascontiguousarray(x).reshape(-1), np.float32(3), np.float32(6), out.reshape(-1))
    return out


@parallel
def _hard_swish(x, three, six, out):  # noqa: ANN001, ANN202
    zero = np.float32(0)
    for i in prange(x.size):
        v = x[i]
        out[i] = v * min(max(v + three, zero), six) / six


def leaky_relu(p: LeakyReluParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = output(out, x.shape, x.dtype)
    _leaky_relu(np.ascontiguousarray(x).reshape(-1), np.float32(p.alpha), out.reshape(-1))
    return out


@parallel
def _leaky_relu(x, alpha, out):  # noqa: ANN001, ANN202
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * alpha


def prelu(params: None, x: np.ndarray, alpha: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    assert np.broadcast_shapes(x.shape, alpha.shape) == x.shape  # Prepare's rule; the loops rely on it
    out = output(out, x.shape, x.dtype)
    flat_x, flat_alpha = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(alpha).reshape(-1)
    if out.size == 0:
        return out
    if alpha.shape == x.shape:
        _prelu_same_shape(flat_x, flat_alpha, out.reshape(-1))
    else:
        dims, _, alpha_strides = broadcast_strides(x.shape, x.shape, alpha.shape)
        _prelu_broadcast(flat_x, flat_alpha, dims, alpha_strides, out.reshape(-1))
    return out


@parallel
def _prelu_same_shape(x, alpha, out):  # noqa: ANN001, ANN202
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v >= 0 else v * alpha[i]


@parallel
def _prelu_broadcast(x, alpha, dims, alpha_strides, out):  # noqa: ANN001, ANN202
    """x and out whole, alpha walked with its strides (0 along broadcast axes), in C order."""
    rank = dims.size
    total = out.size
    for chunk in prange((total + CHUNK - 1) // CHUNK):
        start = chunk * CHUNK
        stop = min(start + CHUNK, total)
        index = np.empty(rank, dtype=np.int64)
        rest, ia = start, 0
        for d in range(rank - 1, -1, -1):
            index[d] = rest % dims[d]
            rest //= dims[d]
            ia += index[d] * alpha_strides[d]
        for k in range(start, stop):
            v = x[k]
            out[k] = v if v >= 0 else v * alpha[ia]
            d = rank - 1  # step the index on, C order
            index[d] += 1
            ia += alpha_strides[d]
            while d > 0 and index[d] == dims[d]:
                ia -= dims[d] * alpha_strides[d]
                index[d] = 0
                d -= 1
                index[d] += 1
                ia += alpha_strides[d]


KERNELS: dict[str, Callable] = {"hard_swish": hard_swish, "leaky_relu": leaky_relu, "prelu": prelu}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(kernels: tuple[str, ...] = tuple(KERNELS)) -> None:
    """Compile (or load) these kernels for the argument types the engine passes."""
    x = np.ones((2, 3), dtype=np.float32)
    if "hard_swish" in kernels:
        hard_swish(None, x)
    if "leaky_relu" in kernels:
        leaky_relu(LeakyReluParams(0.2), x)
    if "prelu" in kernels:
        constant = np.ones((2, 3), dtype=np.float32)
        constant.flags.writeable = False  # a constant alpha: Numba types read-only arrays apart
        for alpha in (x, constant):
            prelu(None, x, alpha)
            prelu(None, x, alpha[:1])

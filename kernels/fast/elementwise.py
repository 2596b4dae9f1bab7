"""Numba twins of kernels/elementwise.py and kernels/activation.py: one pass, activation fused."""

from __future__ import annotations

import numpy as np
from numba import prange

from npdeeplab.kernels import elementwise as reference
from npdeeplab.kernels.activation import SoftmaxParams
from npdeeplab.kernels.elementwise import BinaryParams
from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel

ADD, SUB, MUL = 0, 1, 2


def add(p: BinaryParams, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(p, a, b, ADD, reference.add, out)


def sub(p: BinaryParams, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(p, a, b, SUB, reference.sub, out)


def mul(p: BinaryParams, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(p, a, b, MUL, reference.mul, out)


def _binary(
    p: BinaryParams, a: np.ndarray, b: np.ndarray, operation: int, fallback: object, out: np.ndarray | None
) -> np.ndarray:
    if a.shape != b.shape or a.dtype != np.float32:
        return fallback(p, a, b)  # broadcasting and integer arithmetic: NumPy's own loops
    out = output(out, a.shape, a.dtype)
    _binary_same_shape(a.reshape(-1), b.reshape(-1), operation, np.float32(p.act_min), np.float32(p.act_max),
                       out.reshape(-1))
    return out


@parallel
def _binary_same_shape(a, b, operation, low, high, out):  # noqa: ANN001, ANN202
    for i in prange(a.size):
        if operation == 0:
            value = a[i] + b[i]
        elif operation == 1:
            value = a[i] - b[i]
        else:
            value = a[i] * b[i]
        out[i] = min(max(value, low), high)


def relu(params: None, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _clamped(out, x, 0.0, np.inf)


def relu6(params: None, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _clamped(out, x, 0.0, 6.0)


def relu_n1_to_1(params: None, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _clamped(out, x, -1.0, 1.0)


def _clamped(out: np.ndarray | None, x: np.ndarray, low: float, high: float) -> np.ndarray:
    out = output(out, x.shape, x.dtype)
    _clamp(np.ascontiguousarray(x).reshape(-1), np.float32(low), np.float32(high), out.reshape(-1))
    return out


@parallel
def _clamp(x, low, high, out):  # noqa: ANN001, ANN202
    for i in prange(x.size):
        out[i] = min(max(x[i], low), high)


def softmax(p: SoftmaxParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = output(out, x.shape, x.dtype)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    _softmax_rows(rows, np.float32(p.beta), out.reshape(rows.shape))
    return out


@parallel
def _softmax_rows(x, beta, out):  # noqa: ANN001, ANN202
    for r in prange(x.shape[0]):
        largest = x[r].max()
        total = np.float32(0)
        for c in range(x.shape[1]):
            out[r, c] = np.exp((x[r, c] - largest) * beta)
            total += out[r, c]
        for c in range(x.shape[1]):
            out[r, c] /= total

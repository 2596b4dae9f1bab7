"""Numba twins of kernels/integer/rectifiers.py: quantized RELU (and RELU6, RELU_N1_TO_1),
LEAKY_RELU, HARD_SWISH and PRELU by table lookup.

An 8-bit unary op meets only 256 input values: the twin tabulates the NumPy kernel's own formula
over all of them once per params (cached) and gathers table[q] in one parallel pass, so its
integers are the reference's by construction. PRELU has two 8-bit inputs and goes through the
256 x 256 table and broadcasting gather of the quantized ADD/SUB/MUL twins (elementwise.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.fast.integer import elementwise
from npdeeplab.kernels.integer import rectifiers as reference
from npdeeplab.kernels.integer.rectifiers import HardSwishParams, LeakyReluParams, PreluParams, ReluParams


@functools.lru_cache(maxsize=256)
def unary_table(formula: Callable, p: object, dtype: np.dtype) -> np.ndarray:
    """formula(p, q) for every 8-bit value q, as raw bytes indexed by q's byte (int8 -1 is entry
    255). Read-only, shared by every call."""
    table = formula(p, np.arange(256, dtype=np.uint8).view(dtype)).view(np.uint8)
    table.flags.writeable = False
    return table


def _unary(formula: Callable, p: object, x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    out = output(out, x.shape, x.dtype)
    table = unary_table(formula, p, x.dtype)
    _gather(table, np.ascontiguousarray(x).reshape(-1).view(np.uint8), out.reshape(-1).view(np.uint8))
    return out


@parallel
def _gather(table, x, out):  # noqa: ANN001, ANN202
    for i in prange(x.size):
        out[i] = table[x[i]]


def quantized_relu_x(p: ReluParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _unary(reference.relu_x, p, x, out)


def quantized_leaky_relu(p: LeakyReluParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _unary(reference.quantize_leaky_relu, p, x, out)


def quantized_hard_swish(p: HardSwishParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _unary(reference.hard_swish, p, x, out)


def quantized_prelu(p: PreluParams, x: np.ndarray, alpha: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    assert np.broadcast_shapes(x.shape, alpha.shape) == x.shape  # Prepare's rule: the output is x's shape
    return elementwise._binary(reference.prelu, p, x, alpha, out)


KERNELS: dict[str, Callable] = {
    "quantized_relu_x": quantized_relu_x,
    "quantized_leaky_relu": quantized_leaky_relu,
    "quantized_hard_swish": quantized_hard_swish,
    "quantized_prelu": quantized_prelu,
}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) this module's kernels for the argument types the engine passes."""
    relu = ReluParams(0, 0, 1 << 30, 1, 0, 127)
    prelu = PreluParams(0, 0, 0, 1 << 30, 1, 1 << 30, -7)
    for dtype in dtypes:
        x = np.zeros((2, 3), dtype=dtype)
        quantized_relu_x(relu, x)
        constant = np.zeros((2, 3), dtype=dtype)
        constant.flags.writeable = False  # a constant alpha: Numba types read-only arrays apart
        for alpha in (x, constant):
            quantized_prelu(prelu, x, alpha)
            quantized_prelu(prelu, x, alpha[:1])

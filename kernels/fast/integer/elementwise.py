"""Numba twins of kernels/integer/elementwise.py: quantized ADD, SUB and MUL by table lookup.

An 8-bit op has only 256 x 256 possible input pairs, so each op's whole function is tabulated
once (per params, cached) by the NumPy kernel's own formula (the table the NumPy kernel looks
large outputs up in), and the twin gathers table[a, b] in one parallel pass, whatever the size:
bit-identical by construction. Broadcasting walks the output in C order with
per-input strides (0 along broadcast axes), adjacent axes merged where both inputs agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.integer import elementwise as reference
from npdeeplab.kernels.integer.elementwise import AddSubParams, MulParams, lookup_table

CHUNK = 16384  # output elements per parallel task when broadcasting


def quantized_add(p: AddSubParams, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(reference.add_formula, p, a, b, out)


def quantized_sub(p: AddSubParams, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(reference.sub_formula, p, a, b, out)


def quantized_mul(p: MulParams, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(reference.mul_formula, p, a, b, out)


def _binary(formula: Callable, p: AddSubParams | MulParams, a: np.ndarray, b: np.ndarray,
            out: np.ndarray | None) -> np.ndarray:
    shape = np.broadcast_shapes(a.shape, b.shape)
    out = output(out, shape, a.dtype)
    if out.size == 0:
        return out
    lookup = lookup_table(formula, p, a.dtype).view(np.uint8).reshape(256, 256)  # as raw bytes
    a_bytes = np.ascontiguousarray(a).view(np.uint8)
    b_bytes = np.ascontiguousarray(b).view(np.uint8)
    out_bytes = out.reshape(-1).view(np.uint8)
    if a.shape == b.shape:
        _gather_same_shape(lookup, a_bytes.reshape(-1), b_bytes.reshape(-1), out_bytes)
    else:
        dims, a_strides, b_strides = broadcast_strides(shape, a.shape, b.shape)
        _gather_broadcast(lookup, a_bytes.reshape(-1), b_bytes.reshape(-1), dims, a_strides, b_strides, out_bytes)
    return out


def broadcast_strides(
    shape: tuple[int, ...], a_shape: tuple[int, ...], b_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The output's axes (size-1 axes dropped, runs where each input is either whole or broadcast
    merged) with each input's element stride along them (0 where it is broadcast)."""
    rank = len(shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in (a_shape, b_shape)]
    groups: list[list[int]] = []  # [size, a whole?, b whole?]
    for axis, size in enumerate(shape):
        if size == 1:
            continue
        whole = [int(p[axis] == size) for p in padded]
        if groups and groups[-1][1:] == whole:
            groups[-1][0] *= size
        else:
            groups.append([size, *whole])
    if not groups:
        groups = [[1, 1, 1]]
    dims = np.array([g[0] for g in groups], dtype=np.int64)
    strides = []
    for k in (1, 2):
        stride, column = 1, np.zeros(len(groups), dtype=np.int64)
        for g in range(len(groups) - 1, -1, -1):
            if groups[g][k]:
                column[g] = stride
                stride *= groups[g][0]
        strides.append(column)
    return dims, strides[0], strides[1]


@parallel
def _gather_same_shape(lookup, a, b, out):  # noqa: ANN001, ANN202
    for i in prange(out.size):
        out[i] = lookup[a[i], b[i]]


@parallel
def _gather_broadcast(lookup, a, b, dims, a_strides, b_strides, out):  # noqa: ANN001, ANN202
    rank = dims.size
    total = out.size
    for chunk in prange((total + CHUNK - 1) // CHUNK):
        start = chunk * CHUNK
        stop = min(start + CHUNK, total)
        index = np.empty(rank, dtype=np.int64)
        rest, ia, ib = start, 0, 0
        for d in range(rank - 1, -1, -1):
            index[d] = rest % dims[d]
            rest //= dims[d]
            ia += index[d] * a_strides[d]
            ib += index[d] * b_strides[d]
        for k in range(start, stop):
            out[k] = lookup[a[ia], b[ib]]
            d = rank - 1  # step the output index on, C order
            index[d] += 1
            ia += a_strides[d]
            ib += b_strides[d]
            while d > 0 and index[d] == dims[d]:
                ia -= dims[d] * a_strides[d]
                ib -= dims[d] * b_strides[d]
                index[d] = 0
                d -= 1
                index[d] += 1
                ia += a_strides[d]
                ib += b_strides[d]


KERNELS: dict[str, Callable] = {
    "quantized_add": quantized_add,
    "quantized_sub": quantized_sub,
    "quantized_mul": quantized_mul,
}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) this module's kernels for the argument types the engine passes."""
    p = AddSubParams(20, 0, 1 << 30, 0, 0, 1 << 30, 0, 0, 1 << 30, -19, 0, 255)
    for dtype in dtypes:
        x = np.zeros((2, 3), dtype=dtype)
        constant = np.zeros((2, 3), dtype=dtype)
        constant.flags.writeable = False  # a constant operand: Numba types read-only arrays apart
        for b in (x, constant):
            quantized_add(p, x, b)
            quantized_add(p, x, b[:1])

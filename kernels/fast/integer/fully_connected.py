"""Numba twin of kernels/integer/fully_connected.py: quantized FULLY_CONNECTED, same integers.

As the quantized CONV_2D twin does: the zero-point-shifted input goes to float32 (exact), the float
register-tiled GEMM multiplies it by the shifted filter matrix chunk by chunk (exact:
ShiftedFilter.chunks keeps every partial sum below 2**24), and one parallel Numba pass adds the
chunks in float64, adds the bias and rescales to the output type with C's int32 semantics (wrap
on overflow, INT32_MIN for a rounded value outside int32). The shapes come from prepare's params
and the filter: `output` refuses a buffer that does not fit them, and the bias has the `units`
values prepare checked.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.fast.gemm import gemm_bias_clamp
from npdeeplab.kernels.fast.integer.conv import chunk_filters, constant_chunk_filters
from npdeeplab.kernels.fully_connected import input_rows
from npdeeplab.kernels.integer.fully_connected import QuantizedFullyConnectedParams, shifted_filter

_local = threading.local()  # work buffers per thread: two interpreters may run at once
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def fully_connected_quantized(
    p: QuantizedFullyConnectedParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    f = shifted_filter(p, w, x.dtype)
    units = f.matrix.shape[1]
    out = output(out, p.output_shape, x.dtype)
    shifted = _work("shifted", (p.batch, p.depth))
    np.add(input_rows(x, p.batch, p.depth), np.float32(p.input_offset), out=shifted)  # exact
    sums = _work("sums", (len(f.chunks), p.batch, units))
    filters = constant_chunk_filters(f) if f is p.filter else chunk_filters(f)
    for k, (start, stop) in enumerate(f.chunks):
        a = shifted if len(f.chunks) == 1 else np.ascontiguousarray(shifted[:, start:stop])
        gemm_bias_clamp(a, filters[k], None, -np.inf, np.inf, sums[k])
    bias = np.zeros(units, np.int64) if b is None else b.reshape(-1).astype(np.int64)
    _requantize(sums, bias, p.scale, p.wraps, p.output_offset, p.act_min, p.act_max, out.reshape(p.batch, units))
    return out


def _work(role: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 work array for one role, shared by every op of this thread, grown as needed."""
    size = math.prod(shape)
    buffers = _local.__dict__.setdefault("buffers", {})
    if buffers.get(role, np.empty(0, np.float32)).size < size:
        buffers[role] = np.empty(size, dtype=np.float32)
    return buffers[role][:size].reshape(shape)


@parallel
def _requantize(sums, bias, scale, wraps, output_offset, low, high, out):  # noqa: ANN001, ANN202
    """out[r, u] = clamp(int32(round(double(acc) * scale[u])) + output_offset), acc = the sum of the
    chunks' sums[k, r, u] plus bias[u], with every int32 step of the C kernel wrapping as in C."""
    chunks, rows, units = sums.shape
    for r in prange(rows):
        for u in range(units):
            total = 0.0  # float64: exact, each chunk's sums are below 2**24
            for k in range(chunks):
                total += sums[k, r, u]
            acc = np.int64(total) + bias[u]
            if wraps:
                acc = ((acc + 2**31) & 0xFFFFFFFF) - 2**31  # int32 `acc += ...` in C
            y = acc * scale[u]
            whole = np.trunc(y)
            if abs(y - whole) >= 0.5:  # C's round: halves away from zero
                whole += 1.0 if y > 0 else -1.0
            scaled = np.int64(whole) if INT32_MIN <= whole <= INT32_MAX else np.int64(INT32_MIN)  # cvttsd2si
            scaled = ((scaled + output_offset + 2**31) & 0xFFFFFFFF) - 2**31  # int32 `+= output_offset` in C
            out[r, u] = min(max(scaled, low), high)


KERNELS: dict[str, Callable] = {"fully_connected_quantized": fully_connected_quantized}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) this module's rescaling for uint8 and int8 data, as the engine calls it (a
    read-only scale); the sums are the float tiles', compiled in their own units."""
    scale = np.full(2, 0.5)
    scale.flags.writeable = False
    for dtype in dtypes:
        _requantize(np.zeros((1, 1, 2), np.float32), np.zeros(2, np.int64), scale, False, 0, 0, 127,
                    np.zeros((1, 2), dtype))

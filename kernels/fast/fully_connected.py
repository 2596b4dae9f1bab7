"""Numba twin of kernels/fully_connected.py: same signature, same results (to float rounding).

The product is BLAS's sgemm through NumPy, written straight into the output buffer (the filter's
transpose is a view BLAS reads without a copy); one parallel Numba pass then adds the bias and
clamps, row by row. The shapes come from prepare's params: `output` refuses a buffer that does
not fit them, and the bias has the `units` values prepare checked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output, zeros
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.fully_connected import FullyConnectedParams, input_rows


def fully_connected(
    p: FullyConnectedParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    units = w.shape[0]
    out = output(out, p.output_shape, np.float32)
    rows = out.reshape(p.batch, units)  # a view: the buffer is C-contiguous
    np.matmul(input_rows(x, p.batch, p.depth), w.T, out=rows)
    bias = zeros(units) if b is None else b.reshape(-1)
    _bias_clamp(rows, bias, np.float32(p.act_min), np.float32(p.act_max))
    return out


@parallel
def _bias_clamp(out, bias, low, high):  # noqa: ANN001, ANN202
    """out[r, u] = min(max(out[r, u] + bias[u], low), high), rows in parallel."""
    for r in prange(out.shape[0]):
        for u in range(out.shape[1]):
            out[r, u] = min(max(out[r, u] + bias[u], low), high)


KERNELS: dict[str, Callable] = {"fully_connected": fully_connected}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up() -> None:
    """Compile (or load) this module's kernel for the argument types the engine passes: no bias
    (a read-only zero vector), a constant (read-only) bias, a bias computed at run time."""
    x = np.ones((2, 3), dtype=np.float32)
    w = np.ones((4, 3), dtype=np.float32)
    p = FullyConnectedParams(2, 3, (2, 4), 0.0, 6.0)
    constant = np.ones(4, dtype=np.float32)
    constant.flags.writeable = False
    for b in (None, constant, np.ones(4, dtype=np.float32)):
        fully_connected(p, x, w, b)

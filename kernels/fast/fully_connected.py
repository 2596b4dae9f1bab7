"""Numba twin of kernels/fully_connected.py: same signature, same results (to float rounding).

The product runs on the register-tiled GEMM of kernels/fast/gemm.py, as a 1x1 convolution does:
the filter [units, depth] packed once into panels (a constant's; one computed at run time at each
call), bias and clamp in the epilogue, the result written straight into the output buffer. The
shapes come from prepare's params: `output` refuses a buffer that does not fit them, and the bias
has the `units` values prepare checked (in any shape, as LiteRT only counts them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.gemm import gemm_bias_clamp
from npdeeplab.kernels.fully_connected import FullyConnectedParams, input_rows


def fully_connected(
    p: FullyConnectedParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    units = w.shape[0]
    out = output(out, p.output_shape, np.float32)
    rows = np.ascontiguousarray(input_rows(x, p.batch, p.depth))
    gemm_bias_clamp(rows, w, b, p.act_min, p.act_max, out.reshape(p.batch, units))  # a view: out is C-contiguous
    return out


KERNELS: dict[str, Callable] = {"fully_connected": fully_connected}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)

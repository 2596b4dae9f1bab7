"""FULLY_CONNECTED, float32 (TFLite reference/fully_connected.h, reference_ops::FullyConnected).

The input, of any rank, is read as a matrix of `batch` rows of `depth` values, depth being the
filter's second dimension: LiteRT's Prepare takes batch = (number of input values) // depth, so
when depth does not divide the input's size the values past batch * depth are not read. The
output is that matrix times the filter's transpose, plus the bias, clamped:

    out[b, u] = clamp(sum over d of in[b * depth + d] * w[u, d] + bias[u], act_min, act_max)

laid out as [batch, units], or, with keep_num_dims, as the input's shape with its last dimension
(then equal to depth) replaced by units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.activation import clamp


@dataclass(frozen=True)
class FullyConnectedParams:
    batch: int  # rows of the input matrix
    depth: int  # values per row: the filter's input size
    output_shape: tuple[int, ...]  # [batch, units], or the input's shape with units last (keep_num_dims)
    act_min: float
    act_max: float


def input_rows(x: np.ndarray, batch: int, depth: int) -> np.ndarray:
    """The input as the [batch, depth] matrix LiteRT reads: its first batch * depth values in
    row-major order (a view where x is contiguous)."""
    return x.reshape(-1)[: batch * depth].reshape(batch, depth)


def fully_connected(p: FullyConnectedParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """reference_ops::FullyConnected: x any rank, w [units, depth], b with `units` values (any
    shape, as LiteRT only counts them) or None. The reference sums each row in float32, in order;
    here BLAS does, in its own order (the results agree to float32 rounding)."""
    out = input_rows(x, p.batch, p.depth) @ w.T
    if b is not None:
        out += b.reshape(-1)
    return clamp(out, p.act_min, p.act_max).reshape(p.output_shape)

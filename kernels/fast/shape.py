"""Data movement for the Numba backend: NumPy already copies memory in C, so these only add
writing into the caller's buffer."""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.shape import ConcatParams


def concatenation(p: ConcatParams, *xs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The inputs along p.axis, into `out`; those p.in_place marks are there already (their
    producers wrote them into their slices of `out`), so only the others are copied."""
    if out is None or not any(p.in_place):
        return np.concatenate(xs, axis=p.axis, out=out)
    start = 0
    for x, in_place in zip(xs, p.in_place, strict=True):
        width = x.shape[p.axis]
        if not in_place:
            out[(slice(None),) * p.axis + (slice(start, start + width),)] = x
        start += width
    return out

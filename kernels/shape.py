"""Ops that move data without arithmetic: RESHAPE (also SQUEEZE, EXPAND_DIMS), CONCATENATION, PAD,
SLICE, STRIDED_SLICE, TILE, TRANSPOSE. Their index arithmetic is resolved when the op is prepared;
the kernels only apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReshapeParams:
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ConcatParams:
    axis: int  # non-negative
    # per input: already in its slice of the output, written there by its producer (an arena
    # plan's in-place concatenation, npdeeplab.runtime.plan.in_place_concatenations); () for none
    in_place: tuple[bool, ...] = ()


@dataclass(frozen=True)
class PadParams:
    paddings: tuple[tuple[int, int], ...]  # (before, after) per axis
    value: float | int


@dataclass(frozen=True)
class SliceParams:
    index: tuple[Any, ...]  # a NumPy basic index: slices, ints, None (new axis)


@dataclass(frozen=True)
class TileParams:
    multiples: tuple[int, ...]


@dataclass(frozen=True)
class TransposeParams:
    perm: tuple[int, ...]


def reshape(p: ReshapeParams, x: np.ndarray, *unused: np.ndarray) -> np.ndarray:
    return x.reshape(p.shape)


def concatenation(p: ConcatParams, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=p.axis)


def pad(p: PadParams, x: np.ndarray) -> np.ndarray:
    return np.pad(x, p.paddings, constant_values=np.asarray(p.value, dtype=x.dtype))


def slice_(p: SliceParams, x: np.ndarray) -> np.ndarray:
    """SLICE and STRIDED_SLICE alike: begin/end/stride and masks were turned into an index at prepare.

    np.array, not np.ascontiguousarray, which turns the 0-d result of an all-shrink slice into 1-d.
    """
    return np.array(x[p.index], order="C", copy=True)


def tile(p: TileParams, x: np.ndarray) -> np.ndarray:
    return np.tile(x, p.multiples)


def transpose(p: TransposeParams, x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, p.perm))

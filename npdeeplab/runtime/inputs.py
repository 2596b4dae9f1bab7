"""Random inputs of the right shape and dtype, for runs without an image (trace, compare, extract, bench)."""

from __future__ import annotations

import numpy as np

from npdeeplab.model.ir import Model


def random_inputs(model: Model, seed: int = 0) -> list[np.ndarray]:
    """One random array per graph input: floats in [-1, 1], integers over their type's range."""
    rng = np.random.default_rng(seed)
    return [random_array(rng, model.main.tensors[i].shape, model.main.tensors[i].dtype) for i in model.main.inputs]


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    return rng.integers(0, 2, shape).astype(dtype)

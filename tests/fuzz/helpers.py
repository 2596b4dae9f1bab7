"""Small helpers: random draws from a numpy Generator, and a message's shape for grouping."""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def pick(rng: np.random.Generator, choices: Any) -> Any:
    choices = list(choices)
    return choices[int(rng.integers(len(choices)))]


def chance(rng: np.random.Generator, probability: float) -> bool:
    return bool(rng.random() < probability)


def weighted(rng: np.random.Generator, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def random_shape(rng: np.random.Generator, rank: int, low: int = 1, high: int = 4) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(low, high + 1, rank))


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Floats in [-1, 1], integers over their type's range, bools 0/1 (as npdeeplab's own inputs)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.integers(0, 2, shape).astype(dtype)


def normalise_message(message: str, limit: int = 110) -> str:
    """A message's shape: numbers, quoted names and lists replaced, so that similar errors group."""
    text = message.split("\n", 1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\[[^\[\]]*\]", "[…]", text)
    text = re.sub(r"(?<!\w)-?\d+(\.\d+)?(e[-+]?\d+)?(?!\w)", "N", text)
    return text[:limit]

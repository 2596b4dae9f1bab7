"""ADD, SUB, MUL with NumPy broadcasting and a fused activation (TFLite reference/add.h, sub.h, mul.h)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.activation import clamp


@dataclass(frozen=True)
class BinaryParams:
    act_min: float
    act_max: float


def add(p: BinaryParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _activated(np.add(a, b), p)


def sub(p: BinaryParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _activated(np.subtract(a, b), p)


def mul(p: BinaryParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _activated(np.multiply(a, b), p)


def _activated(out: np.ndarray, p: BinaryParams) -> np.ndarray:
    if out.dtype.kind == "f":
        return clamp(out, p.act_min, p.act_max)
    return np.clip(out, max(p.act_min, np.iinfo(out.dtype).min), min(p.act_max, np.iinfo(out.dtype).max)).astype(
        out.dtype
    )

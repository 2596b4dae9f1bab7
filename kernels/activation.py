"""Activation functions, standalone and fused (TFLite kernel_util.cc, reference/logistic.h...)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOAT_MAX = float(np.finfo(np.float32).max)

# Fused activation -> clamp range. TANH and SIGN_BIT are accepted as fused codes but ignored,
# as TFLite does.
FUSED_RANGES = {
    "NONE": (-FLOAT_MAX, FLOAT_MAX),
    "RELU": (0.0, FLOAT_MAX),
    "RELU_N1_TO_1": (-1.0, 1.0),
    "RELU6": (0.0, 6.0),
    "TANH": (-FLOAT_MAX, FLOAT_MAX),
    "SIGN_BIT": (-FLOAT_MAX, FLOAT_MAX),
}


def clamp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """min(max(x, low), high) in x's dtype, in place (x is a fresh temporary).

    Always applied, also for no activation, whose range is [-FLT_MAX, FLT_MAX]: TFLite clamps
    there too, so an Inf becomes +-3.4e38 while a NaN stays NaN.
    """
    x = np.asarray(x)  # arithmetic on 0-d arrays gives NumPy scalars, which cannot be written into
    return np.clip(x, np.float32(low), np.float32(high), out=x)


@dataclass(frozen=True)
class SoftmaxParams:
    beta: float


def relu(params: None, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0))


def relu6(params: None, x: np.ndarray) -> np.ndarray:
    return np.clip(x, np.float32(0), np.float32(6))


def relu_n1_to_1(params: None, x: np.ndarray) -> np.ndarray:
    return np.clip(x, np.float32(-1), np.float32(1))


def tanh(params: None, x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def logistic(params: None, x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), with TFLite's cut-offs: 1 above 16.619047, exp(x) below -9."""
    x = x.astype(np.float32, copy=False)
    with np.errstate(over="ignore"):  # exp overflows where the cut-offs apply; those values are discarded
        middle = np.float32(1) / (np.float32(1) + np.exp(-x))
        result = np.where(x < np.float32(-9.0), np.exp(x), middle)
    return np.where(x > np.float32(16.619047), np.float32(1), result).astype(np.float32)


def softmax(params: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    """exp((x - max) * beta) / sum, over the last axis, in float32."""
    shifted = (x - x.max(axis=-1, keepdims=True)) * np.float32(params.beta)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True, dtype=np.float32)

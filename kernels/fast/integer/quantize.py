"""Fast twins of kernels/integer/quantize.py.

QUANTIZE float32 -> int per tensor is one Numba pass doing the reference's steps per element.
Requantizing 8-bit values can only meet 256 inputs: the twin looks every input up in the
reference's table of them all (requantize_table), the same integers by construction.
DEQUANTIZE is already a single NumPy pass and stays NumPy's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.integer import quantize as reference


def quantized_quantize(p: reference.AffineParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    if p.axis is not None:  # per channel: rare, and NumPy's broadcast is the clearest
        result = reference.quantize(p, x)
        if out is None:
            return result
        np.copyto(out, result)
        return out
    out = output(out, x.shape, p.dtype)
    info = np.iinfo(p.dtype)
    _quantize(x.reshape(-1), np.float32(p.scale[0]), int(p.zero_point[0]), int(info.min), int(info.max),
              out.reshape(-1))
    return out


def quantized_requantize(p: reference.RequantizeParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    if x.dtype.itemsize != 1:
        result = reference.requantize(p, x)
        if out is None:
            return result
        np.copyto(out, result)
        return out
    out = output(out, x.shape, p.dtype)
    np.take(reference.requantize_table(p, x.dtype), x.view(np.uint8), out=out)
    return out


@parallel
def _quantize(x, scale, zero_point, low, high, out):  # noqa: ANN001, ANN202
    for i in prange(x.size):
        v = x[i] / scale  # float32
        whole = np.trunc(v)
        if abs(v - whole) >= 0.5:
            whole += np.float32(1) if v > 0 else np.float32(-1)
        # static_cast<int32_t> as on x86-64: NaN and out-of-range values give INT32_MIN
        q = np.int64(whole) if -(2.0**31) <= whole < 2.0**31 else np.int64(-(2**31))
        q = ((q + zero_point + 2**31) & 0xFFFFFFFF) - 2**31  # the int32 addition wraps
        out[i] = min(max(q, low), high)


KERNELS: dict[str, Callable] = {
    "quantized_quantize": quantized_quantize,
    "quantized_requantize": quantized_requantize,
}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up() -> None:
    """Compile the float -> int pass for each output type."""
    for dtype in (np.uint8, np.int8, np.int16):
        params = reference.AffineParams(np.dtype(dtype), np.array([0.5], np.float32), np.array([0], np.int64))
        quantized_quantize(params, np.array([0.25, -1.5, np.nan], np.float32))

"""Numba twins of kernels/integer/pool.py: windows clipped to the input, raw values summed in int64
(or compared), the average's quotient rounded halves away from zero."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.integer.pool import QuantizedPoolParams
from npdeeplab.kernels.windows import Window


def quantized_average_pool2d(p: QuantizedPoolParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _pool(p, x, True, out)


def quantized_max_pool2d(p: QuantizedPoolParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _pool(p, x, False, out)


def _pool(p: QuantizedPoolParams, x: np.ndarray, average: bool, out: np.ndarray | None) -> np.ndarray:
    win = p.window
    out = output(out, (x.shape[0], win.out_h, win.out_w, x.shape[3]), x.dtype)
    _pool2d(np.ascontiguousarray(x), win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top,
            win.pad_left, average, p.act_min, p.act_max, out)
    return out


@parallel
def _pool2d(x, fh, fw, sh, sw, pad_top, pad_left, average, low, high, out):  # noqa: ANN001, ANN202
    n, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        acc = np.empty(channels, dtype=np.int64)
        y_start = max(oy * sh - pad_top, 0)
        y_end = min(oy * sh - pad_top + fh, height)
        for ox in range(out_w):
            x_start = max(ox * sw - pad_left, 0)
            x_end = min(ox * sw - pad_left + fw, width)
            acc[:] = 0 if average else -(2**31)
            for iy in range(y_start, y_end):
                for ix in range(x_start, x_end):
                    for c in range(channels):
                        if average:
                            acc[c] += x[b, iy, ix, c]
                        else:
                            acc[c] = max(acc[c], x[b, iy, ix, c])
            count = (y_end - y_start) * (x_end - x_start)
            half = count // 2
            for c in range(channels):
                value = acc[c]
                if average:
                    value = (value + half) // count if value > 0 else -((half - value) // count)
                out[b, oy, ox, c] = min(max(value, low), high)


KERNELS: dict[str, Callable] = {
    "quantized_average_pool2d": quantized_average_pool2d,
    "quantized_max_pool2d": quantized_max_pool2d,
}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) this module's kernels for the argument types the engine passes."""
    window = Window(3, 3, 1, 1, 1, 1, 1, 1, 3, 3)
    for dtype in dtypes:
        x = np.zeros((1, 3, 3, 2), dtype=dtype)
        quantized_average_pool2d(QuantizedPoolParams(window, 0, 127), x)
        quantized_max_pool2d(QuantizedPoolParams(window, 0, 127), x)

"""Numba twins of kernels/pool.py: windows clipped to the input, sums in (ky, kx) order."""

from __future__ import annotations

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.pool import PoolParams


def average_pool2d(p: PoolParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _pool(p, x, True, out)


def max_pool2d(p: PoolParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _pool(p, x, False, out)


def _pool(p: PoolParams, x: np.ndarray, average: bool, out: np.ndarray | None) -> np.ndarray:
    win = p.window
    out = output(out, (x.shape[0], win.out_h, win.out_w, x.shape[3]), x.dtype)
    _pool2d(x, win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top, win.pad_left,
            average, np.float32(p.act_min), np.float32(p.act_max), out)
    return out


@parallel
def _pool2d(x, fh, fw, sh, sw, pad_top, pad_left, average, low, high, out):  # noqa: ANN001, ANN202
    n, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        acc = np.empty(channels, dtype=np.float32)
        y_start = max(oy * sh - pad_top, 0)
        y_end = min(oy * sh - pad_top + fh, height)
        for ox in range(out_w):
            x_start = max(ox * sw - pad_left, 0)
            x_end = min(ox * sw - pad_left + fw, width)
            acc[:] = 0 if average else -np.inf
            for iy in range(y_start, y_end):
                for ix in range(x_start, x_end):
                    for c in range(channels):
                        if average:
                            acc[c] += x[b, iy, ix, c]
                        else:
                            acc[c] = max(acc[c], x[b, iy, ix, c])
            count = np.float32((y_end - y_start) * (x_end - x_start))
            for c in range(channels):
                value = acc[c] / count if average else acc[c]
                out[b, oy, ox, c] = min(max(value, low), high)

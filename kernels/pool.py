"""AVERAGE_POOL_2D and MAX_POOL_2D, float32, NHWC (TFLite reference/pooling.h).

The window is clipped to the input: padding never takes part, and the average divides by the
number of in-bounds cells only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.activation import clamp
from npdeeplab.kernels.windows import Window, pad_for_window, window_patches


@dataclass(frozen=True)
class PoolParams:
    window: Window
    act_min: float
    act_max: float


def average_pool2d(p: PoolParams, x: np.ndarray) -> np.ndarray:
    """Mean of the in-bounds cells of each window."""
    win = p.window
    if _tiles_exactly(win, x.shape):
        # Windows side by side with no padding (e.g. global pooling): one reshape and a mean.
        blocks = x.reshape(x.shape[0], win.out_h, win.filter_h, win.out_w, win.filter_w, x.shape[3])
        return clamp(blocks.mean(axis=(2, 4), dtype=np.float32), p.act_min, p.act_max)
    values = window_patches(pad_for_window(x, win, 0.0), win)
    inside = window_patches(pad_for_window(np.ones((1, *x.shape[1:3], 1), dtype=np.float32), win, 0.0), win)
    total = np.zeros((x.shape[0], win.out_h, win.out_w, x.shape[3]), dtype=np.float32)
    count = np.zeros((1, win.out_h, win.out_w, 1), dtype=np.float32)
    for ky in range(win.filter_h):
        for kx in range(win.filter_w):
            total += values[:, :, :, ky, kx]
            count += inside[:, :, :, ky, kx]
    return clamp(total / count, p.act_min, p.act_max)


def max_pool2d(p: PoolParams, x: np.ndarray) -> np.ndarray:
    """Largest in-bounds cell of each window."""
    win = p.window
    values = window_patches(pad_for_window(x, win, -np.inf), win)
    out = np.full((x.shape[0], win.out_h, win.out_w, x.shape[3]), -np.inf, dtype=x.dtype)
    for ky in range(win.filter_h):
        for kx in range(win.filter_w):
            np.maximum(out, values[:, :, :, ky, kx], out=out)
    return clamp(out, p.act_min, p.act_max)


def _tiles_exactly(win: Window, shape: tuple[int, ...]) -> bool:
    return (
        (win.stride_h, win.stride_w) == (win.filter_h, win.filter_w)
        and (win.pad_top, win.pad_left) == (0, 0)
        and (win.out_h * win.filter_h, win.out_w * win.filter_w) == tuple(shape[1:3])
    )

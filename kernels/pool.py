"""AVERAGE_POOL_2D and MAX_POOL_2D, float32, NHWC (TFLite reference/pooling.h).

The window is clipped to the input: padding never takes part, and the average divides by the
number of in-bounds cells only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.activation import FLOAT_MAX, clamp
from npdeeplab.kernels.windows import Window, tap_spans, window_taps


@dataclass(frozen=True)
class PoolParams:
    window: Window
    act_min: float
    act_max: float


def average_pool2d(p: PoolParams, x: np.ndarray) -> np.ndarray:
    """Mean of the in-bounds cells of each window, summed in (ky, kx) order."""
    win = p.window
    if _tiles_exactly(win, x.shape):
        # Windows side by side with no padding (e.g. global pooling): one reshape and a mean.
        blocks = x.reshape(x.shape[0], win.out_h, win.filter_h, win.out_w, win.filter_w, x.shape[3])
        return clamp(blocks.mean(axis=(2, 4), dtype=np.float32), p.act_min, p.act_max)
    total = np.zeros((x.shape[0], win.out_h, win.out_w, x.shape[3]), dtype=np.float32)
    for _, _, rows, columns in window_taps(win, x.shape[1], x.shape[2]):
        total[:, rows.outputs, columns.outputs] += x[:, rows.inputs, columns.inputs]
    return clamp(total / cells_inside(win, x.shape[1], x.shape[2]), p.act_min, p.act_max)


def max_pool2d(p: PoolParams, x: np.ndarray) -> np.ndarray:
    """Largest in-bounds cell of each window; a NaN loses to any number, as std::max in TFLite."""
    win = p.window
    out = np.full((x.shape[0], win.out_h, win.out_w, x.shape[3]), -FLOAT_MAX, dtype=x.dtype)
    for _, _, rows, columns in window_taps(win, x.shape[1], x.shape[2]):
        window = out[:, rows.outputs, columns.outputs]
        np.fmax(window, x[:, rows.inputs, columns.inputs], out=window)
    return clamp(out, p.act_min, p.act_max)


def cells_inside(win: Window, height: int, width: int) -> np.ndarray:
    """How many cells of each output's window lie inside the input, [1, OH, OW, 1]: the divisor
    of the average (padding never counts)."""
    per_axis = []
    for out_size, in_size, filter_size, stride, pad in (
        (win.out_h, height, win.filter_h, win.stride_h, win.pad_top),
        (win.out_w, width, win.filter_w, win.stride_w, win.pad_left),
    ):
        counts = np.zeros(out_size, dtype=np.float32)
        for _, span in tap_spans(out_size, in_size, filter_size, stride, 1, pad):
            counts[span.outputs] += 1
        per_axis.append(counts)
    return (per_axis[0][:, None] * per_axis[1][None, :])[None, :, :, None]


def _tiles_exactly(win: Window, shape: tuple[int, ...]) -> bool:
    return (
        (win.stride_h, win.stride_w) == (win.filter_h, win.filter_w)
        and (win.pad_top, win.pad_left) == (0, 0)
        and (win.out_h * win.filter_h, win.out_w * win.filter_w) == tuple(shape[1:3])
    )

"""Quantized AVERAGE_POOL_2D and MAX_POOL_2D (uint8, int8), NHWC.

Mirrors reference_ops::AveragePool / MaxPool for uint8 (reference/pooling.h) and
reference_integer_ops::AveragePool / MaxPool for int8 (reference/integer_ops/pooling.h). Input and
output share scale and zero point, so the raw values are averaged or compared directly; the
window is clipped to the input and the average divides by the cells inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.windows import Window, tap_spans


@dataclass(frozen=True)
class QuantizedPoolParams:
    window: Window
    act_min: int  # the fused activation's clamp, in the quantized domain
    act_max: int


def quantized_average_pool2d(p: QuantizedPoolParams, x: np.ndarray) -> np.ndarray:
    """Sum of the in-bounds cells, divided by their count rounding halves away from zero.

    uint8 computes (acc + count/2) / count; int8 the same for acc > 0 and (acc - count/2) / count
    otherwise, in C's truncating division: both are the rounded quotient, halves away from zero.
    The sums are exact integers, so their order is free: each window's rows are summed first
    (one pass per filter row), then the columns of those (one per filter column), filter_h +
    filter_w passes rather than one per cell.
    """
    win = p.window
    n, height, width, channels = x.shape
    row_sums = np.zeros((n, win.out_h, width, channels), dtype=np.int64)
    for _, rows in tap_spans(win.out_h, height, win.filter_h, win.stride_h, win.dilation_h, win.pad_top):
        row_sums[:, rows.outputs] += x[:, rows.inputs]
    total = np.zeros((n, win.out_h, win.out_w, channels), dtype=np.int64)
    for _, columns in tap_spans(win.out_w, width, win.filter_w, win.stride_w, win.dilation_w, win.pad_left):
        total[:, :, columns.outputs] += row_sums[:, :, columns.inputs]
    count = cell_counts(win, x.shape[1], x.shape[2])
    average = divide_rounding_half_away(total, count)
    return np.clip(average, p.act_min, p.act_max).astype(x.dtype)


def quantized_max_pool2d(p: QuantizedPoolParams, x: np.ndarray) -> np.ndarray:
    """Largest in-bounds cell of each window, then the activation's clamp; the largest of each
    window's rows first, then of their columns (a maximum is one in any order)."""
    win = p.window
    n, height, width, channels = x.shape
    lowest = np.iinfo(x.dtype).min
    row_max = np.full((n, win.out_h, width, channels), lowest, dtype=x.dtype)
    for _, rows in tap_spans(win.out_h, height, win.filter_h, win.stride_h, win.dilation_h, win.pad_top):
        window = row_max[:, rows.outputs]
        np.maximum(window, x[:, rows.inputs], out=window)
    out = np.full((n, win.out_h, win.out_w, channels), lowest, dtype=x.dtype)
    for _, columns in tap_spans(win.out_w, width, win.filter_w, win.stride_w, win.dilation_w, win.pad_left):
        window = out[:, :, columns.outputs]
        np.maximum(window, row_max[:, :, columns.inputs], out=window)
    return np.clip(out, p.act_min, p.act_max).astype(x.dtype)


def cell_counts(win: Window, height: int, width: int) -> np.ndarray:
    """How many cells of each output's window lie inside the input, [1, OH, OW, 1] int64: TFLite's
    filter_count."""
    per_axis = []
    for out_size, in_size, filter_size, stride, pad in (
        (win.out_h, height, win.filter_h, win.stride_h, win.pad_top),
        (win.out_w, width, win.filter_w, win.stride_w, win.pad_left),
    ):
        counts = np.zeros(out_size, dtype=np.int64)
        for _, span in tap_spans(out_size, in_size, filter_size, stride, 1, pad):
            counts[span.outputs] += 1
        per_axis.append(counts)
    return (per_axis[0][:, None] * per_axis[1][None, :])[None, :, :, None]


def divide_rounding_half_away(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count (count > 0) to the nearest integer, halves away from zero, as the pools'
    `acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count` with C division."""
    half = count // 2
    return np.where(total > 0, (total + half) // count, -((half - total) // count))


KERNELS: dict[str, Callable] = {
    "quantized_average_pool2d": quantized_average_pool2d,
    "quantized_max_pool2d": quantized_max_pool2d,
}

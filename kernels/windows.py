"""Sliding-window helpers shared by convolutions and pools (NHWC)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class Window:
    """Where each output pixel's window lies in the input.

    Output pixel (oy, ox) reads input rows oy*stride_h - pad_top + ky*dilation_h for ky in
    range(filter_h) (columns likewise). Taps outside the input are skipped (or, equivalently, read
    a neutral padding value). TFLite puts any odd padding pixel at the bottom/right, which this
    captures by storing only pad_top/pad_left.
    """

    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int


def pad_for_window(x: np.ndarray, w: Window, value: float = 0.0) -> np.ndarray:
    """Pad x [N,H,W,C] so that every tap of every window lies inside the result."""
    _, height, width, _ = x.shape
    needed_h = (w.out_h - 1) * w.stride_h + (w.filter_h - 1) * w.dilation_h + 1
    needed_w = (w.out_w - 1) * w.stride_w + (w.filter_w - 1) * w.dilation_w + 1
    bottom = max(needed_h - height - w.pad_top, 0)
    right = max(needed_w - width - w.pad_left, 0)
    pads = ((0, 0), (w.pad_top, bottom), (w.pad_left, right), (0, 0))
    return np.pad(x, pads, constant_values=np.asarray(value, dtype=x.dtype))


def window_patches(padded: np.ndarray, w: Window) -> np.ndarray:
    """Every output pixel's window, as a strided view of padded: [N, out_h, out_w, KH, KW, C].

    patches[:, :, :, ky, kx] is what filter tap (ky, kx) meets at every output pixel; a reshape
    to [N*out_h*out_w, KH*KW*C] gives the rows of im2col in the filter's (ky, kx, c) order.
    """
    span_h = (w.filter_h - 1) * w.dilation_h + 1
    span_w = (w.filter_w - 1) * w.dilation_w + 1
    windows = sliding_window_view(padded, (span_h, span_w), axis=(1, 2))  # [N, H', W', C, span_h, span_w]
    windows = windows[:, :: w.stride_h, :: w.stride_w, :, :: w.dilation_h, :: w.dilation_w]
    return windows[:, : w.out_h, : w.out_w].transpose(0, 1, 2, 4, 5, 3)

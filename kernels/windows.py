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


@dataclass(frozen=True)
class Span:
    """One filter tap along one axis: output indices out_start..out_stop-1 read input indices
    in_start, in_start + stride, ... (the outputs whose tap falls outside the input are not in it)."""

    out_start: int
    out_stop: int
    in_start: int
    stride: int

    @property
    def outputs(self) -> slice:
        return slice(self.out_start, self.out_stop)

    @property
    def inputs(self) -> slice:
        return slice(self.in_start, self.in_start + (self.out_stop - self.out_start - 1) * self.stride + 1, self.stride)

    def within(self, start: int, stop: int) -> Span | None:
        """The part of this span whose outputs lie in [start, stop), re-based to start."""
        low, high = max(self.out_start, start), min(self.out_stop, stop)
        if low >= high:
            return None
        return Span(low - start, high - start, self.in_start + (low - self.out_start) * self.stride, self.stride)


def tap_spans(
    out_size: int, in_size: int, filter_size: int, stride: int, dilation: int, pad: int
) -> list[tuple[int, Span]]:
    """(k, span) for every filter tap k along one axis that lands inside the input for some output.

    Output o's tap k reads input o*stride + k*dilation - pad; taps outside the input are skipped,
    as TFLite's reference kernels skip them. Only the taps that can land are visited, so a window
    far larger than its input (a global pool written as a huge filter) costs no more than one
    that fits.
    """
    found = []
    first_k = max(0, _ceil_div(pad - (out_size - 1) * stride, dilation))
    last_k = min(filter_size - 1, (pad + in_size - 1) // dilation)
    for k in range(first_k, last_k + 1):
        offset = k * dilation - pad  # the input index output 0 reads
        first = max(0, _ceil_div(-offset, stride))  # the first output whose tap is inside
        last = min(out_size - 1, (in_size - 1 - offset) // stride)  # and the last
        if first <= last:
            found.append((k, Span(first, last + 1, first * stride + offset, stride)))
    return found


def window_taps(w: Window, height: int, width: int) -> list[tuple[int, int, Span, Span]]:
    """(ky, kx, rows, columns) of every filter tap that lands inside an height x width input, in
    (ky, kx) order: the order TFLite's reference kernels sum them in."""
    rows = tap_spans(w.out_h, height, w.filter_h, w.stride_h, w.dilation_h, w.pad_top)
    columns = tap_spans(w.out_w, width, w.filter_w, w.stride_w, w.dilation_w, w.pad_left)
    return [(ky, kx, r, c) for ky, r in rows for kx, c in columns]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)

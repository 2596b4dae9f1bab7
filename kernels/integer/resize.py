"""Quantized RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR on raw values, NHWC, as LiteRT's reference
kernels compute them (reference/resize_bilinear.h, resize_nearest_neighbor.h). Scales and zero
points play no part: the ops blend or copy raw values.

uint8 goes through the float kernel, ResizeBilinear<uint8_t>: the float32 coordinates and weights
of kernels/resize.py, the four-term sum in TFLite's order, + 0.5, truncated. int8 (and int16) go
through ResizeBilinearInteger: coordinates in 10-bit fixed point, the blend in Q20, rounded half
away from zero. Nearest neighbour copies the source pixel GetNearestNeighbor picks. Prepare works
out the taps and indices once per shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.fixed_point import truncating_divide_by_pot
from npdeeplab.kernels.resize import bilinear_taps

ONE_10 = 1 << 10  # 1.0 in the integer kernel's coordinates


@dataclass(frozen=True, eq=False)
class QuantizedBilinearParams:
    """Per output row (y) and column (x): the lower and upper source index and the weight of the
    upper one: float32 in [0, 1) for the uint8 kernel, in 1/1024 units for the integer kernel (at
    the edges of half-pixel upsampling a weight may leave that range with both taps on one pixel)."""

    out_h: int
    out_w: int
    y0: np.ndarray = field(repr=False)
    y1: np.ndarray = field(repr=False)
    wy: np.ndarray = field(repr=False)
    x0: np.ndarray = field(repr=False)
    x1: np.ndarray = field(repr=False)
    wx: np.ndarray = field(repr=False)


def float_taps(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> tuple[np.ndarray, ...]:
    """ComputeInterpolationValues: the float kernel's taps, shared with the float op."""
    return bilinear_taps(in_size, out_size, align_corners, half_pixel_centers)


def integer_taps(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> tuple[np.ndarray, ...]:
    """ComputeInterpolationValuesInteger: scale10 = round(1024 * in / out) in integers (with in - 1
    and out - 1 under align_corners), s = v * scale10 (+ scale10 / 2 - 512 for half-pixel centres),
    lower = max(s / 1024, 0), upper = min((s + 1023) / 1024, in - 1), C's truncating division.

    lower is not clamped above: for extreme upsampling (1 -> 600 rows) it reaches in, where the C
    kernel reads past the input; prepare refuses those.
    """
    numerator, denominator = (in_size - 1, out_size - 1) if align_corners and out_size > 1 else (in_size, out_size)
    scale10 = (ONE_10 * numerator + denominator // 2) // denominator
    s = np.arange(out_size, dtype=np.int64) * scale10
    if half_pixel_centers:
        s += scale10 // 2 - (1 << 9)
    lower = np.maximum(truncating_divide_by_pot(s, 10), 0)
    upper = np.minimum(truncating_divide_by_pot(s + ONE_10 - 1, 10), in_size - 1)
    return lower, upper, s - ONE_10 * lower


def quantized_resize_bilinear(p: QuantizedBilinearParams, x: np.ndarray) -> np.ndarray:
    """ResizeBilinear<uint8_t>: in float32, v00 (1-dy)(1-dx) + v10 dy (1-dx) + v01 (1-dy) dx + v11 dy dx
    + 0.5, left to right, then truncated to uint8; band by band of output rows."""
    n, _, _, channels = x.shape
    out = np.empty((n, p.out_h, p.out_w, channels), dtype=x.dtype)
    one = np.float32(1)
    dx = p.wx[None, None, :, None]
    for band in row_bands(out):
        top, bottom = x[:, p.y0[band]], x[:, p.y1[band]]
        dy = p.wy[band][None, :, None, None]
        total = top[:, :, p.x0] * (one - dy) * (one - dx)
        total += bottom[:, :, p.x0] * dy * (one - dx)
        total += top[:, :, p.x1] * (one - dy) * dx
        total += bottom[:, :, p.x1] * dy * dx
        total += np.float32(0.5)
        out[:, band] = total.astype(x.dtype)  # truncation: total is in [0, 256)
    return out


def quantized_resize_bilinear_integer(p: QuantizedBilinearParams, x: np.ndarray) -> np.ndarray:
    """ResizeBilinearInteger<int8_t/int16_t>: sum of v * wy * wx over the four taps with weights in
    1/1024 (Q20 in all), then (sum ± 2**19) / 2**20 truncated, + for sums above 0, - otherwise."""
    n, _, _, channels = x.shape
    out = np.empty((n, p.out_h, p.out_w, channels), dtype=x.dtype)
    dx = p.wx[None, None, :, None]
    for band in row_bands(out):
        top, bottom = x[:, p.y0[band]].astype(np.int64), x[:, p.y1[band]].astype(np.int64)
        dy = p.wy[band][None, :, None, None]
        total = (top[:, :, p.x0] * (ONE_10 - dy) * (ONE_10 - dx) + bottom[:, :, p.x0] * dy * (ONE_10 - dx)
                 + top[:, :, p.x1] * (ONE_10 - dy) * dx + bottom[:, :, p.x1] * dy * dx)
        rounded = truncating_divide_by_pot(total + np.where(total > 0, 1 << 19, -(1 << 19)), 20)
        out[:, band] = rounded.astype(x.dtype)  # static_cast<T>: in range, the weights sum to 2**20
    return out


@dataclass(frozen=True, eq=False)
class QuantizedNearestParams:
    out_h: int
    out_w: int
    rows: np.ndarray = field(repr=False)  # source row of each output row
    cols: np.ndarray = field(repr=False)


def quantized_resize_nearest_neighbor(p: QuantizedNearestParams, x: np.ndarray) -> np.ndarray:
    """reference_ops::ResizeNearestNeighbor: out[b, y, x] = in[b, rows[y], cols[x]]."""
    return np.take(np.take(x, p.rows, axis=1), p.cols, axis=2)


KERNELS: dict[str, Callable] = {
    "quantized_resize_bilinear": quantized_resize_bilinear,
    "quantized_resize_bilinear_integer": quantized_resize_bilinear_integer,
    "quantized_resize_nearest_neighbor": quantized_resize_nearest_neighbor,
}

"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR, NHWC (TFLite reference/resize_bilinear.h,
reference/resize_nearest_neighbor.h). Coordinates are computed in float32, as TFLite does:
computing them in float64 moves boundary pixels and flips argmax labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.fixed_point import round_half_away


@dataclass(frozen=True)
class ResizeParams:
    out_h: int
    out_w: int
    align_corners: bool
    half_pixel_centers: bool


def resize_scale(in_size: int, out_size: int, align_corners: bool) -> np.float32:
    """Input pixels per output pixel; align_corners maps corner centres onto corner centres."""
    if align_corners and out_size > 1:
        return np.float32(in_size - 1) / np.float32(out_size - 1)
    return np.float32(in_size) / np.float32(out_size)


def bilinear_taps(
    in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the lower and upper source index and the weight of the upper one."""
    scale = resize_scale(in_size, out_size, align_corners)
    v = np.arange(out_size, dtype=np.float32)
    if half_pixel_centers:
        source = (v + np.float32(0.5)) * scale - np.float32(0.5)
    else:
        source = v * scale
    lower = np.maximum(np.floor(source), 0).astype(np.int64)
    upper = np.minimum(np.ceil(source).astype(np.int64), in_size - 1)
    return lower, upper, source - lower.astype(np.float32)


def resize_bilinear(p: ResizeParams, x: np.ndarray) -> np.ndarray:
    """Blend the two nearest source columns, then the two nearest rows of that result.

    TFLite's reference evaluates the same polynomial as one four-term sum,
    v00*(1-dy)*(1-dx) + v10*dy*(1-dx) + v01*(1-dy)*dx + v11*dy*dx; doing columns first works on
    an array a fraction of the output's size, and the row blend then scales whole rows of W*C
    values by one weight each, band by band. It differs from TFLite only in float rounding; the
    Numba twin keeps TFLite's order exactly.
    """
    n, height, width, channels = x.shape
    y0, y1, dy = bilinear_taps(height, p.out_h, p.align_corners, p.half_pixel_centers)
    x0, x1, dx = bilinear_taps(width, p.out_w, p.align_corners, p.half_pixel_centers)
    one = np.float32(1)
    dx = dx[None, None, :, None]
    columns = np.take(x, x0, axis=2) * (one - dx) + np.take(x, x1, axis=2) * dx
    rows = columns.reshape(n, height, p.out_w * channels)  # each source row as one long vector
    out = np.empty((n, p.out_h, p.out_w * channels), dtype=x.dtype)
    for band in row_bands(out):
        upper = np.take(rows, y0[band], axis=1)
        upper *= (one - dy[band])[None, :, None]
        lower = np.take(rows, y1[band], axis=1)
        lower *= dy[band][None, :, None]
        np.add(upper, lower, out=out[:, band])
    return out.reshape(n, p.out_h, p.out_w, channels)


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """Source index of each output index (GetNearestNeighbor): s = (v + 0.5 with half-pixel
    centres, else v) * scale in float32; round(s), halves away from zero, with align_corners, else
    floor(s); at most in - 1, and at least 0 with half-pixel centres. Both flags may be set.

    Rounded from s's exact fraction: trunc(s + 0.5) gives 1 for s = 0.49999997 (2 -> 62 with both
    flags), because the sum rounds up in float32; LiteRT gives 0.
    """
    offset = np.float32(0.5) if half_pixel_centers else np.float32(0)
    source = (np.arange(out_size, dtype=np.float32) + offset) * resize_scale(in_size, out_size, align_corners)
    index = np.minimum((round_half_away(source) if align_corners else np.floor(source)).astype(np.int64), in_size - 1)
    return np.maximum(index, 0) if half_pixel_centers else index


def resize_nearest_neighbor(p: ResizeParams, x: np.ndarray) -> np.ndarray:
    rows = nearest_indices(x.shape[1], p.out_h, p.align_corners, p.half_pixel_centers)
    cols = nearest_indices(x.shape[2], p.out_w, p.align_corners, p.half_pixel_centers)
    return np.take(np.take(x, rows, axis=1), cols, axis=2)

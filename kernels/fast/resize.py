"""Numba twins of kernels/resize.py. Index and weight tables come from the reference code, once
per shape; the loops evaluate TFLite's reference formula in the same order. The bilinear resize
writes each output pixel's channels as one run, so its output may be a concatenation's slice
(buffers.output_rows), as ASPP's image-pooling branch is."""

from __future__ import annotations

import functools

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import flat_rows, output, output_rows
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.resize import ResizeParams, bilinear_taps, nearest_indices

bilinear_table = functools.lru_cache(maxsize=64)(bilinear_taps)
nearest_table = functools.lru_cache(maxsize=64)(nearest_indices)


def resize_bilinear(p: ResizeParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    y0, y1, dy = bilinear_table(x.shape[1], p.out_h, p.align_corners, p.half_pixel_centers)
    x0, x1, dx = bilinear_table(x.shape[2], p.out_w, p.align_corners, p.half_pixel_centers)
    out, rows = output_rows(out, (x.shape[0], p.out_h, p.out_w, x.shape[3]), x.dtype)
    _bilinear(x, y0, y1, dy, x0, x1, dx, *flat_rows(rows), p.out_h, p.out_w)
    return out


def resize_nearest_neighbor(p: ResizeParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    rows = nearest_table(x.shape[1], p.out_h, p.align_corners, p.half_pixel_centers)
    cols = nearest_table(x.shape[2], p.out_w, p.align_corners, p.half_pixel_centers)
    out = output(out, (x.shape[0], p.out_h, p.out_w, x.shape[3]), x.dtype)
    _nearest(x, rows, cols, out)
    return out


@parallel
def _bilinear(x, y0, y1, dy, x0, x1, dx, out, ldc, out_h, out_w):  # noqa: ANN001, ANN202
    """out (flat) at (pixel * ldc + channel): its pixels' channels may be a slice of longer rows."""
    n, channels = x.shape[0], x.shape[3]
    one = np.float32(1)
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        top, bottom, wy = y0[oy], y1[oy], dy[oy]
        for ox in range(out_w):
            left, right, wx = x0[ox], x1[ox], dx[ox]
            at = np.uint64((row * out_w + ox) * ldc)
            for c in range(channels):
                out[at + np.uint64(c)] = (
                    x[b, top, left, c] * (one - wy) * (one - wx)
                    + x[b, bottom, left, c] * wy * (one - wx)
                    + x[b, top, right, c] * (one - wy) * wx
                    + x[b, bottom, right, c] * wy * wx
                )


@parallel
def _nearest(x, rows, cols, out):  # noqa: ANN001, ANN202
    n, out_h, out_w, channels = out.shape
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        for ox in range(out_w):
            for c in range(channels):
                out[b, oy, ox, c] = x[b, rows[oy], cols[ox], c]

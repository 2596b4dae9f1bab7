"""Numba twins of kernels/integer/resize.py: the same taps from the params, one pass over the output
evaluating TFLite's per-element formula in its order."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import flat_rows, output, output_rows
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.integer.resize import (
    QuantizedBilinearParams,
    QuantizedNearestParams,
    float_taps,
    integer_taps,
)
from npdeeplab.kernels.resize import nearest_indices


def quantized_resize_bilinear(p: QuantizedBilinearParams, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out, rows = output_rows(out, (x.shape[0], p.out_h, p.out_w, x.shape[3]), x.dtype)
    _bilinear_uint8(x, p.y0, p.y1, p.wy, p.x0, p.x1, p.wx, *flat_rows(rows), p.out_h, p.out_w)
    return out


def quantized_resize_bilinear_integer(
    p: QuantizedBilinearParams, x: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    out = output(out, (x.shape[0], p.out_h, p.out_w, x.shape[3]), x.dtype)
    _bilinear_integer(x, p.y0, p.y1, p.wy, p.x0, p.x1, p.wx, out)
    return out


def quantized_resize_nearest_neighbor(
    p: QuantizedNearestParams, x: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    out = output(out, (x.shape[0], p.out_h, p.out_w, x.shape[3]), x.dtype)
    _nearest(x, p.rows, p.cols, out)
    return out


@parallel
def _bilinear_uint8(x, y0, y1, dy, x0, x1, dx, out, ldc, out_h, out_w):  # noqa: ANN001, ANN202
    """TFLite's float formula per element, x00*(1-wy)*(1-wx) + x10*wy*(1-wx) + x01*(1-wy)*wx +
    x11*wy*wx + 1/2, truncated. Upsampling (out_w >= the input's width), each output row first
    takes the products by (1 - wy) and wy of its two input rows, once per input pixel, rounded
    as the formula's first multiplies are; every output then needs only the multiplies by its wx.
    out is flat, pixel p's channel c at p * ldc + c (its channels may be a slice of longer rows)."""
    n, width, channels = x.shape[0], x.shape[2], x.shape[3]
    one, half = np.float32(1), np.float32(0.5)
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        top, bottom, wy = y0[oy], y1[oy], dy[oy]
        if out_w >= width:
            upper = np.empty((width, channels), dtype=np.float32)  # x[top] * (1 - wy)
            lower = np.empty((width, channels), dtype=np.float32)  # x[bottom] * wy
            for i in range(width):
                for c in range(channels):
                    upper[i, c] = np.float32(x[b, top, i, c]) * (one - wy)
                    lower[i, c] = np.float32(x[b, bottom, i, c]) * wy
            for ox in range(out_w):
                left, right, wx = x0[ox], x1[ox], dx[ox]
                at = np.uint64((row * out_w + ox) * ldc)
                for c in range(channels):
                    total = (upper[left, c] * (one - wx) + lower[left, c] * (one - wx) + upper[right, c] * wx
                             + lower[right, c] * wx + half)
                    out[at + np.uint64(c)] = np.int32(total)  # truncation; total is in [0, 256)
            continue
        for ox in range(out_w):
            left, right, wx = x0[ox], x1[ox], dx[ox]
            at = np.uint64((row * out_w + ox) * ldc)
            for c in range(channels):
                total = (
                    np.float32(x[b, top, left, c]) * (one - wy) * (one - wx)
                    + np.float32(x[b, bottom, left, c]) * wy * (one - wx)
                    + np.float32(x[b, top, right, c]) * (one - wy) * wx
                    + np.float32(x[b, bottom, right, c]) * wy * wx
                    + half
                )
                out[at + np.uint64(c)] = np.int32(total)


@parallel
def _bilinear_integer(x, y0, y1, dy, x0, x1, dx, out):  # noqa: ANN001, ANN202
    n, out_h, out_w, channels = out.shape
    one = np.int64(1 << 10)
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        top, bottom, wy = y0[oy], y1[oy], dy[oy]
        for ox in range(out_w):
            left, right, wx = x0[ox], x1[ox], dx[ox]
            for c in range(channels):
                total = (
                    np.int64(x[b, top, left, c]) * (one - wy) * (one - wx)
                    + np.int64(x[b, bottom, left, c]) * wy * (one - wx)
                    + np.int64(x[b, top, right, c]) * (one - wy) * wx
                    + np.int64(x[b, bottom, right, c]) * wy * wx
                )
                total += (1 << 19) if total > 0 else -(1 << 19)
                out[b, oy, ox, c] = total // (1 << 20) if total >= 0 else -((-total) // (1 << 20))


@parallel
def _nearest(x, rows, cols, out):  # noqa: ANN001, ANN202
    n, out_h, out_w, channels = out.shape
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        for ox in range(out_w):
            for c in range(channels):
                out[b, oy, ox, c] = x[b, rows[oy], cols[ox], c]


KERNELS: dict[str, Callable] = {
    "quantized_resize_bilinear": quantized_resize_bilinear,
    "quantized_resize_bilinear_integer": quantized_resize_bilinear_integer,
    "quantized_resize_nearest_neighbor": quantized_resize_nearest_neighbor,
}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8, np.int16)) -> None:
    """Compile the kernels for the types the engine hands them (uint8, int8, int16)."""
    for dtype in dtypes:
        x = np.ones((1, 2, 3, 2), dtype=dtype)
        taps = float_taps if dtype == np.uint8 else integer_taps
        params = QuantizedBilinearParams(3, 4, *taps(2, 3, False, True), *taps(3, 4, False, True))
        KERNELS["quantized_resize_bilinear" if dtype == np.uint8 else "quantized_resize_bilinear_integer"](params, x)
        rows, cols = nearest_indices(2, 3, True, True), nearest_indices(3, 4, True, True)
        quantized_resize_nearest_neighbor(QuantizedNearestParams(3, 4, rows, cols), x)

"""Numba twin of kernels/integer/transpose_conv.py: quantized TRANSPOSE_CONV, same integers.

One loop nest over output rows (parallel: each thread writes its own rows), as the float twin in
kernels/fast/transpose_conv.py: an output row gathers, from the input rows whose taps reach it,
(x + input_offset) times the shifted weights of the tap landing there, channels innermost. The
sums run in float32 where TransposedFilter.bound keeps every one below 2**24, else in float64:
exact integers either way, so fused multiply-adds change nothing and are allowed. Each output
pixel is rescaled as soon as its row is summed, by the convolutions' rescaling
(kernels/fast/integer/conv.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.fast.integer.conv import EXACT, _rescale_into, _rescaling
from npdeeplab.kernels.integer.conv import FLOAT32_EXACT, QuantizedConvParams
from npdeeplab.kernels.integer.transpose_conv import (
    QuantizedTransposeConvParams,
    TransposedFilter,
    transpose_filter,
)
from npdeeplab.kernels.transpose_conv import TransposeWindow, flat_bias


def transpose_conv_quantized(
    p: QuantizedTransposeConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """reference_ops::TransposeConv (uint8) / reference_integer_ops::TransposeConv (int8). The
    shapes are checked against p before any Numba code runs (it does not bounds-check)."""
    win = p.window
    win.check(x, w, b)
    f = p.filter or transpose_filter(p, w, x.dtype)
    cout = w.shape[0]
    if f.matrix.shape != (w.shape[3], win.filter_h * win.filter_w * cout):
        raise ValueError(f"TRANSPOSE_CONV weights {list(w.shape)} do not match their prepared matrix {f.matrix.shape}")
    if p.conv.multiplier.shape != (cout,) or p.conv.shift.shape != (cout,):
        raise ValueError(f"TRANSPOSE_CONV prepared for {p.conv.multiplier.size} output channels, got {cout}")
    out = output(out, (x.shape[0], win.out_h, win.out_w, cout), x.dtype)
    exact = np.float32 if f.bound < FLOAT32_EXACT else np.float64
    bias = flat_bias(b)
    taps = _kept_taps(f, win) if f is p.filter else _taps(f, win)
    _transpose_conv(np.ascontiguousarray(x), taps, exact(p.conv.input_offset), exact(0),
                    *_window_args(win), _rescaling(p.conv, bias, cout), out)
    return out


def _taps(f: TransposedFilter, win: TransposeWindow) -> np.ndarray:
    """The shifted weights as [KH, KW, Cin, Cout], each tap's block one run of memory (the loop
    below reads it row by row)."""
    cin = f.matrix.shape[0]
    taps = np.ascontiguousarray(f.matrix.reshape(cin, win.filter_h, win.filter_w, -1).transpose(1, 2, 0, 3))
    taps.flags.writeable = False
    return taps


_kept_taps = functools.lru_cache(maxsize=512)(_taps)  # for prepared (constant) weights: one layout per op


def _window_args(win: TransposeWindow) -> tuple[int, ...]:
    return (win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top, win.pad_left)


@parallel(fastmath=EXACT)
def _transpose_conv(x, taps, offset, zero, kh, kw, sh, sw, pad_top, pad_left, q, out):  # noqa: ANN001, ANN202
    """out[n, oy, ox, co] = the rescaled sum of (x[n, iy, ix, ci] + offset) * shifted w[co, ky, kx, ci]
    over the (iy, ix, ky, kx) with iy*sh - pad_top + ky = oy and ix*sw - pad_left + kx = ox; the
    sums in the type of zero (float32 or float64), the products exact in it."""
    n, in_h, in_w, cin = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    cout = taps.shape[3]
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        acc = np.full((out_w, cout), zero)
        first = max(0, -(-(oy + pad_top - kh + 1) // sh))
        last = min(in_h - 1, (oy + pad_top) // sh)
        for iy in range(first, last + 1):
            ky = oy + pad_top - iy * sh
            for ix in range(in_w):
                left = ix * sw - pad_left
                for kx in range(max(0, -left), min(kw, out_w - left)):
                    ox = left + kx
                    for ci in range(cin):
                        value = x[b, iy, ix, ci] + offset
                        for c in range(cout):
                            acc[ox, c] += value * taps[ky, kx, ci, c]
        for ox in range(out_w):
            _rescale_into(acc, ox, q, out, b, oy, ox)


KERNELS: dict[str, Callable] = {"transpose_conv_quantized": transpose_conv_quantized}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) the kernel for the argument types the engine passes: uint8 and int8 data,
    float32 and float64 sums, both rescalings, read-only constant biases."""
    win = TransposeWindow(2, 2, 3, 3, 2, 2, 1, 1, 4, 4)
    one = np.ones(2, dtype=np.int64)
    bias = np.zeros(2, np.int32)
    bias.flags.writeable = False
    for dtype in dtypes:
        x = np.zeros((1, 2, 2, 2), dtype=dtype)
        for wraps, exact in ((False, True), (True, False)):
            conv = QuantizedConvParams(win.dual, 1, 1, 0, one << 30, -one, 0, 127, wraps, exact)
            p = QuantizedTransposeConvParams(win, conv)
            transpose_conv_quantized(p, x, np.zeros((2, 3, 3, 2), dtype), bias)
        big = TransposeWindow(2, 2, 3, 3, 1, 1, 1, 1, 2, 2)  # sums beyond float32's exact range: float64
        conv = QuantizedConvParams(big.dual, 1, 1, 0, one << 30, -one, 0, 127, False, True)
        w = np.full((2, 3, 3, 600), np.iinfo(dtype).max, dtype)
        transpose_conv_quantized(QuantizedTransposeConvParams(big, conv), np.zeros((1, 2, 2, 600), dtype), w, bias)

"""Numba twin of kernels/transpose_conv.py: TRANSPOSE_CONV, float32, same signature.

One loop nest over output rows (parallel: each thread writes its own rows). An output row gathers
what the reference kernel scatters into it: for the input rows whose taps reach it, in ascending
order, every input pixel's products with the tap landing there, channels innermost. That adds each
output value's terms in the reference's own order (input row, input column, input channel), so
the sums are the reference's float32 sums, not just close to them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output, zeros
from npdeeplab.kernels.fast.config import parallel
from npdeeplab.kernels.transpose_conv import TransposeConvParams, TransposeWindow, flat_bias


def transpose_conv(
    p: TransposeConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    """reference_ops::TransposeConv; x [N, H, W, Cin], w [Cout, KH, KW, Cin], b [Cout] or None.
    The shapes are checked against p before any Numba code runs (it does not bounds-check)."""
    win = p.window
    win.check(x, w, b)
    cout = w.shape[0]
    out = output(out, (x.shape[0], win.out_h, win.out_w, cout), np.float32)
    bias = zeros(cout) if b is None else flat_bias(b)
    taps = np.ascontiguousarray(w.transpose(1, 2, 3, 0))  # [KH, KW, Cin, Cout]: each tap's block one run
    if taps.flags.writeable:  # a copy; read-only like a view of the model's constant: one Numba signature
        taps.flags.writeable = False
    low, high = np.float32(p.act_min), np.float32(p.act_max)
    _transpose_conv(np.ascontiguousarray(x), taps, bias, *_window_args(win), p.bias_first, low, high, out)
    return out


def _window_args(win: TransposeWindow) -> tuple[int, ...]:
    return (win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top, win.pad_left)


@parallel
def _transpose_conv(x, taps, bias, kh, kw, sh, sw, pad_top, pad_left, bias_first, low, high, out):  # noqa: ANN001, ANN202
    """out[n, oy, ox, co] = clamp(sum, in input raster order, of x[n, iy, ix, ci] * w[co, ky, kx, ci]
    over the (iy, ix, ky, kx) with iy*sh - pad_top + ky = oy, ix*sw - pad_left + kx = ox, plus bias)."""
    n, in_h, in_w, cin = x.shape
    out_h, out_w, cout = out.shape[1], out.shape[2], out.shape[3]
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        acc = np.empty((out_w, cout), dtype=np.float32)
        for ox in range(out_w):
            for c in range(cout):
                acc[ox, c] = bias[c] if bias_first else np.float32(0)
        first = max(0, -(-(oy + pad_top - kh + 1) // sh))
        last = min(in_h - 1, (oy + pad_top) // sh)
        for iy in range(first, last + 1):
            ky = oy + pad_top - iy * sh
            for ix in range(in_w):
                left = ix * sw - pad_left
                for kx in range(max(0, -left), min(kw, out_w - left)):
                    ox = left + kx
                    for ci in range(cin):
                        value = x[b, iy, ix, ci]
                        for c in range(cout):
                            acc[ox, c] += value * taps[ky, kx, ci, c]
        for ox in range(out_w):
            for c in range(cout):
                total = acc[ox, c] if bias_first else acc[ox, c] + bias[c]
                out[b, oy, ox, c] = min(max(total, low), high)


KERNELS: dict[str, Callable] = {"transpose_conv": transpose_conv}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up() -> None:
    """Compile (or load) the kernel for the argument types the engine passes: a read-only bias (a
    constant, or the zeros of a missing one), MediaPipe's bias-first order and TFLite's."""
    win = TransposeWindow(2, 2, 3, 3, 2, 2, 1, 1, 4, 4)
    x = np.ones((1, 2, 2, 2), dtype=np.float32)
    w = np.ones((3, 3, 3, 2), dtype=np.float32)
    bias = np.ones(3, np.float32)
    bias.flags.writeable = False
    for first in (False, True):
        transpose_conv(TransposeConvParams(win, 0.0, 6.0, first), x, w, bias)

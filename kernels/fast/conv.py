"""Numba twins of kernels/conv.py: same signatures, same results (to float rounding).

Convolutions with a K x K window gather patches (im2col, in Numba) and multiply them with the
register-tiled GEMM of kernels/fast/gemm.py; 1x1 stride-1 convolutions go straight to it.

Depthwise convolutions accumulate taps in TFLite's reference order, skipping those outside the
input: 3x3 filters of at least a vector of channels run the register kernel of kernels/fast/tiles.py,
in blocks of a vector's lanes (the last block overlapping the one before); other windows and
multipliers, and narrower layers, run NHWC loops with channels innermost.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from npdeeplab.kernels import conv as reference
from npdeeplab.kernels.conv import ConvParams
from npdeeplab.kernels.fast.buffers import output, scratch, zeros
from npdeeplab.kernels.fast.config import parallel, serial
from npdeeplab.kernels.fast.gemm import gemm_bias_clamp, generated
from npdeeplab.kernels.fast.tiles import depthwise_lanes, machine_tiles


def conv2d(
    p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    win = p.window
    if x.shape[3] != w.shape[3] or not reference.has_finite_filter(p, w):
        return reference.conv2d(p, x, w, b)  # grouped, or Inf/NaN weights: rare, keep the reference
    n, cout = x.shape[0], w.shape[0]
    rows = n * win.out_h * win.out_w
    out = output(out, (n, win.out_h, win.out_w, cout), np.float32)
    if is_pointwise(win):
        a = np.ascontiguousarray(x).reshape(rows, -1)
    else:
        a = scratch((n, win.out_h, win.out_w, w.shape[1] * w.shape[2] * x.shape[3]))
        _im2col(x, w.shape[1], w.shape[2], *window_args(win), a)
        a = a.reshape(rows, -1)
    gemm_bias_clamp(a, w, b, p.act_min, p.act_max, out.reshape(rows, cout))
    return out


def depthwise_conv2d(
    p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    win = p.window
    cout = w.shape[3]
    out = output(out, (x.shape[0], win.out_h, win.out_w, cout), np.float32)
    bias, low, high = _bias(b, cout), np.float32(p.act_min), np.float32(p.act_max)
    if uses_register_kernel(w.shape, x.shape[3]):
        kernel = getattr(generated(), f"depthwise3x3_{depthwise_lanes(machine_tiles())}")
        kernel(np.ascontiguousarray(x), w[0], bias, low, high, out, *window_args(win))
    else:
        _depthwise(x, w[0], bias, cout // x.shape[3], *window_args(win), low, high, out)
    return out


def uses_register_kernel(filter_shape: tuple[int, ...], in_channels: int) -> bool:
    """Whether a depthwise filter [1, KH, KW, Cout] runs the register kernel (3x3, multiplier 1, at
    least a vector of channels) rather than the loops."""
    _, kh, kw, cout = filter_shape
    return (kh, kw) == (3, 3) and cout == in_channels and cout >= depthwise_lanes(machine_tiles())


def is_pointwise(win: object) -> bool:
    return (win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top, win.pad_left) == (1, 1, 1, 1, 0, 0)


def window_args(win: object) -> tuple[int, ...]:
    return (win.stride_h, win.stride_w, win.dilation_h, win.dilation_w, win.pad_top, win.pad_left)


def _bias(b: np.ndarray | None, channels: int) -> np.ndarray:
    return zeros(channels) if b is None else b


@parallel
def _im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, patches):  # noqa: ANN001, ANN202
    """patches[n, oy, ox, (ky*kw + kx)*cin + ci] = x[n, oy*sh+ky*dh-pad, ox*sw+kx*dw-pad, ci], 0 outside.

    Without horizontal dilation a filter row's taps are kw neighbouring pixels: one contiguous
    run of kw*cin input values, copied as one.
    """
    n, height, width, cin = x.shape
    out_h, out_w = patches.shape[1], patches.shape[2]
    x_rows = x.reshape(n, height, width * cin)
    span = kw * cin
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        for ox in range(out_w):
            left = ox * sw - pad_left
            for ky in range(kh):
                iy = oy * sh - pad_top + ky * dh
                base = ky * span
                if iy < 0 or iy >= height:
                    for j in range(span):
                        patches[b, oy, ox, base + j] = 0
                elif dw == 1 and left >= 0 and left + kw <= width:
                    start = left * cin
                    for j in range(span):
                        patches[b, oy, ox, base + j] = x_rows[b, iy, start + j]
                else:
                    for kx in range(kw):
                        ix = left + kx * dw
                        inside = 0 <= ix < width
                        for ci in range(cin):
                            patches[b, oy, ox, base + kx * cin + ci] = x[b, iy, ix, ci] if inside else 0


@parallel
def _depthwise(x, w, bias, multiplier, sh, sw, dh, dw, pad_top, pad_left, low, high, out):  # noqa: ANN001, ANN202
    """Any window and multiplier (the register kernel takes 3x3 filters of a vector of channels or more)."""
    n, height, width, _ = x.shape
    kh, kw, cout = w.shape
    out_h, out_w = out.shape[1], out.shape[2]
    three_by_three = kh == 3 and kw == 3 and multiplier == 1
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        top = oy * sh - pad_top
        acc = np.empty(cout, dtype=np.float32)
        for ox in range(out_w):
            left = ox * sw - pad_left
            if three_by_three and top >= 0 and top + 2 * dh < height and left >= 0 and left + 2 * dw < width:
                _depthwise_3x3_inside(x, w, b, top, left, dh, dw, acc)
            else:
                _depthwise_taps(x, w, b, top, left, dh, dw, multiplier, acc)
            for c in range(cout):
                out[b, oy, ox, c] = min(max(acc[c] + bias[c], low), high)


@serial(inline="always")
def _depthwise_3x3_inside(x, w, b, top, left, dh, dw, acc):  # noqa: ANN001, ANN202
    """The nine taps of a 3x3 window that lies inside the input, written out: the sum stays in a
    register from the first tap to the last (a loop over taps would store and reload it)."""
    y0, y1, y2 = top, top + dh, top + 2 * dh
    x0, x1, x2 = left, left + dw, left + 2 * dw
    for c in range(acc.size):
        total = np.float32(0)
        total += x[b, y0, x0, c] * w[0, 0, c]
        total += x[b, y0, x1, c] * w[0, 1, c]
        total += x[b, y0, x2, c] * w[0, 2, c]
        total += x[b, y1, x0, c] * w[1, 0, c]
        total += x[b, y1, x1, c] * w[1, 1, c]
        total += x[b, y1, x2, c] * w[1, 2, c]
        total += x[b, y2, x0, c] * w[2, 0, c]
        total += x[b, y2, x1, c] * w[2, 1, c]
        total += x[b, y2, x2, c] * w[2, 2, c]
        acc[c] = total


@serial(inline="always")
def _depthwise_taps(x, w, b, top, left, dh, dw, multiplier, acc):  # noqa: ANN001, ANN202
    """Any window, any multiplier: the taps that land inside the input, in (ky, kx) order."""
    height, width = x.shape[1], x.shape[2]
    kh, kw, cout = w.shape
    acc[:] = 0
    for ky in range(kh):
        iy = top + ky * dh
        if iy < 0 or iy >= height:
            continue
        for kx in range(kw):
            ix = left + kx * dw
            if ix < 0 or ix >= width:
                continue
            if multiplier == 1:
                for c in range(cout):
                    acc[c] += x[b, iy, ix, c] * w[ky, kx, c]
            else:
                for c in range(cout):
                    acc[c] += x[b, iy, ix, c // multiplier] * w[ky, kx, c]

"""Numba twins of kernels/conv.py: same signatures, same results (to float rounding).

1x1 stride-1 convolutions are the register-tiled GEMM of kernels/fast/gemm.py; those with a K x K
window run its direct twin, which reads each tile's rows of A from a zero-padded copy of the input
(no im2col matrix: for the seed model's stem that was 1.8 MB written and read back per inference).
Both write each output pixel's channels as one row, so `out` may be a slice of a concatenation's
buffer along the channels (buffers.output_rows): the concatenation then copies nothing.

Depthwise convolutions accumulate taps in TFLite's reference order, skipping those outside the
input: 3x3 filters of at least a vector of channels run the register kernel of kernels/fast/tiles.py,
in blocks of a vector's lanes (the last block overlapping the one before); other windows and
multipliers, narrower layers, and on AVX2 layers of 64 channels or more (faster there: see
tiles.MachineTiles.depthwise_loops_from), run NHWC loops with channels innermost.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import prange

from npdeeplab.kernels import conv as reference
from npdeeplab.kernels.conv import ConvParams
from npdeeplab.kernels.fast.buffers import output, output_rows, scratch, zeros
from npdeeplab.kernels.fast.config import contract_parallel, contract_serial, serial
from npdeeplab.kernels.fast.gemm import direct_bias_clamp, gemm_bias_clamp, generated
from npdeeplab.kernels.fast.tiles import depthwise_lanes, machine_tiles


def conv2d(
    p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    win = p.window
    if not on_tiles(win, x.shape, w.shape) or not reference.has_finite_filter(p, w):
        return reference.conv2d(p, x, w, b)  # grouped, a huge border, or Inf/NaN weights: rare
    out, rows = output_rows(out, (x.shape[0], win.out_h, win.out_w, w.shape[0]), np.float32)
    if is_pointwise(win):
        gemm_bias_clamp(np.ascontiguousarray(x).reshape(rows.shape[0], -1), w, b, p.act_min, p.act_max, rows)
    else:
        padded = zero_padded(x, win, w.shape[1], w.shape[2])
        offsets = tap_offsets(w.shape[1], w.shape[2], win.dilation_h, win.dilation_w, padded.shape[2], x.shape[3])
        direct_bias_clamp(padded, offsets, w, b, p.act_min, p.act_max, rows, (win.out_h, win.out_w),
                          (win.stride_h, win.stride_w))
    return out


def on_tiles(win: object, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> bool:
    """Whether a convolution's sums run on the register tiles: not grouped, and a zero border no
    bigger than im2col's matrix would be (a huge dilation on a small input keeps the reference)."""
    return x_shape[3] == w_shape[3] and reference.padding_fits(win, x_shape)


def zero_padded(x: np.ndarray, win: object, kh: int, kw: int, offset: float | None = None) -> np.ndarray:
    """x (plus `offset`, in float32: a quantized input's zero point taken out) in a zero border wide
    enough for every tap of every window, as a float32 scratch array: the padding before, and
    after as far as the last window reaches."""
    n, height, width, channels = x.shape
    hp = max(height + win.pad_top, (win.out_h - 1) * win.stride_h + (kh - 1) * win.dilation_h + 1)
    wp = max(width + win.pad_left, (win.out_w - 1) * win.stride_w + (kw - 1) * win.dilation_w + 1)
    padded = scratch((n, hp, wp, channels))
    top, left = win.pad_top, win.pad_left
    padded[:, :top] = 0
    padded[:, top + height:] = 0
    padded[:, top:top + height, :left] = 0
    padded[:, top:top + height, left + width:] = 0
    inside = padded[:, top:top + height, left:left + width]
    if offset is None:
        inside[...] = x
    else:
        np.add(x, np.float32(offset), out=inside)  # exact: 8-bit integers plus a zero point
    return padded


@functools.lru_cache(maxsize=256)
def tap_offsets(kh: int, kw: int, dh: int, dw: int, padded_width: int, channels: int) -> np.ndarray:
    """offsets[(ky*kw + kx)*C + ci] = (ky*dh*Wp + kx*dw)*C + ci: each tap's place in the flat padded
    input relative to its window's corner, in the filter's (ky, kx, ci) order (read-only, uint64)."""
    ky, kx, ci = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(channels), indexing="ij")
    offsets = ((ky * dh * padded_width + kx * dw) * channels + ci).reshape(-1).astype(np.uint64)
    offsets.flags.writeable = False
    return offsets


def depthwise_conv2d(
    p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    win = p.window
    cout = w.shape[3]
    out = output(out, (x.shape[0], win.out_h, win.out_w, cout), np.float32)
    bias, low, high = _bias(b, cout), np.float32(p.act_min), np.float32(p.act_max)
    if runs_register_kernel(w.shape, x.shape[3]):
        kernel = getattr(generated(), f"depthwise3x3_{depthwise_lanes(machine_tiles())}")
        kernel(np.ascontiguousarray(x), w[0], bias, low, high, out, *window_args(win))
    else:
        taps = np.ascontiguousarray(w[0])
        _depthwise(np.ascontiguousarray(x), taps, bias, cout // x.shape[3], *window_args(win), low, high, out)
    return out


def fits_register_kernel(filter_shape: tuple[int, ...], in_channels: int) -> bool:
    """Whether a depthwise filter [1, KH, KW, Cout] fits the register kernels (3x3, multiplier 1, at
    least a vector of channels)."""
    _, kh, kw, cout = filter_shape
    return (kh, kw) == (3, 3) and cout == in_channels and cout >= depthwise_lanes(machine_tiles())


def runs_register_kernel(filter_shape: tuple[int, ...], in_channels: int) -> bool:
    """Whether a float depthwise convolution runs the register kernel rather than the loops: where
    it fits, and the layer is narrower than the machine's `depthwise_loops_from` (see tiles.py)."""
    wide = machine_tiles().depthwise_loops_from
    return fits_register_kernel(filter_shape, in_channels) and (wide is None or filter_shape[3] < wide)


def is_pointwise(win: object) -> bool:
    return (win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top, win.pad_left) == (1, 1, 1, 1, 0, 0)


def window_args(win: object) -> tuple[int, ...]:
    return (win.stride_h, win.stride_w, win.dilation_h, win.dilation_w, win.pad_top, win.pad_left)


def _bias(b: np.ndarray | None, channels: int) -> np.ndarray:
    return zeros(channels) if b is None else b


@contract_parallel
def _depthwise(x, w, bias, multiplier, sh, sw, dh, dw, pad_top, pad_left, low, high, out):  # noqa: ANN001, ANN202
    """Any window and multiplier, one task per output row, channels innermost: a 3x3 window inside
    the input sums its nine taps written out, reading x, w and out through flat views at unsigned
    offsets (signed ones cost a wrap-around check per element), other pixels tap by tap."""
    n, height, width, channels = x.shape
    kh, kw, cout = w.shape
    out_h, out_w = out.shape[1], out.shape[2]
    three_by_three = kh == 3 and kw == 3 and multiplier == 1
    flat_x, flat_w, flat_out = x.reshape(x.size), w.reshape(w.size), out.reshape(out.size)
    row_step, column_step = np.uint64(dh * width * channels), np.uint64(dw * channels)
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        top = oy * sh - pad_top
        acc = np.empty(cout, dtype=np.float32)
        for ox in range(out_w):
            left = ox * sw - pad_left
            at = np.uint64(((b * out_h + oy) * out_w + ox) * cout)
            if three_by_three and top >= 0 and top + 2 * dh < height and left >= 0 and left + 2 * dw < width:
                corner = np.uint64(((b * height + top) * width + left) * channels)
                _depthwise_3x3_inside(flat_x, flat_w, bias, low, high, flat_out, at, corner, row_step, column_step)
                continue
            _depthwise_taps(x, w, b, top, left, dh, dw, multiplier, acc)
            for c in range(cout):
                flat_out[at + np.uint64(c)] = min(max(acc[c] + bias[c], low), high)


@contract_serial(inline="always")
def _depthwise_3x3_inside(x, w, bias, low, high, out, at, corner, row_step, column_step):  # noqa: ANN001, ANN202
    """The nine taps of a 3x3 window that lies inside the input, written out, in (ky, kx) order from
    zero: the sum stays in a register from the first tap to the last (a loop over taps would store
    and reload it). x, w and out are flat; the window's corner is at `corner`, its output at `at`."""
    channels = bias.size
    r0 = corner
    r1 = r0 + row_step
    r2 = r1 + row_step
    c1 = column_step
    c2 = c1 + c1
    k = np.uint64(channels)
    for c in range(channels):
        i = np.uint64(c)
        total = np.float32(0)
        total += x[r0 + i] * w[i]
        total += x[r0 + c1 + i] * w[k + i]
        total += x[r0 + c2 + i] * w[np.uint64(2) * k + i]
        total += x[r1 + i] * w[np.uint64(3) * k + i]
        total += x[r1 + c1 + i] * w[np.uint64(4) * k + i]
        total += x[r1 + c2 + i] * w[np.uint64(5) * k + i]
        total += x[r2 + i] * w[np.uint64(6) * k + i]
        total += x[r2 + c1 + i] * w[np.uint64(7) * k + i]
        total += x[r2 + c2 + i] * w[np.uint64(8) * k + i]
        out[at + i] = min(max(total + bias[c], low), high)


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

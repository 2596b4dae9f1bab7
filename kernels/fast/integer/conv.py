"""Numba twins of kernels/integer/conv.py: quantized CONV_2D and DEPTHWISE_CONV_2D, same integers.

CONV_2D: the zero-point-shifted input goes to float32 (a cast; for K x K windows into a border of
shifted zero points, read in place by the GEMM's direct twin, as float convolutions are), the
float register-tiled GEMM (kernels/fast/gemm.py) multiplies it by the shifted filter matrix
(exact: ShiftedFilter.chunks keeps every partial sum below 2**24, and a fused multiply-add of
exact integers is exact). With one K chunk and the float64 rescaling (dm05's every convolution)
the tiles rescale in their epilogue (tiles.RESCALE) and store 8-bit values; otherwise they store
float32 sums and one Numba pass rescales them (the fused epilogue saved 1-2.5 ms of dm05's ~17
and the 12.7 MB sums array of its op 3, peak RSS 361 -> 189 MB). Measured on the dm05 shapes,
float32 sums beat int32-accumulating Numba loops 1.5-4x even where K is 8; float64 3x slower.
BLAS's sgemm did the same sums as fast, but its threads and Numba's took turns on the two cores:
a 0.2 ms product took 1.6 ms inside the model (dm05: 28 ms against 14 with the tiles).
DEPTHWISE_CONV_2D with a 3x3 filter of at least a vector of channels (multiplier 1, the float64
rescaling) runs the register kernel of kernels/fast/tiles.py (`qdepthwise3x3_<lanes>`), which reads
the 8-bit input and rescales in its epilogue: dm05's first depthwise layer went from 1.4 to 0.3 ms.
Others run one Numba loop nest over output rows, channels innermost, reading the 8-bit
input directly: 3x3 windows inside the input sum x * (w - zp_w) with the nine taps written out,
plus zp-dependent per-channel constants; other windows go tap by tap (in float64 for filters
whose sums float32 cannot hold exactly). Each pixel is rescaled as soon as it is summed.

The rescaling is fixed_point.multiply_by_quantized_multiplier_float64 where prepare proved it exact
(p.float64_exact, the usual case), else multiply_by_quantized_multiplier_floor, written for one
value. Every float operation here is on exact integers, so fused multiply-adds (fastmath
"contract") change nothing and are allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable

import numpy as np
from numba import prange

from npdeeplab.kernels.fast.buffers import output, output_rows
from npdeeplab.kernels.fast.config import parallel, serial
from npdeeplab.kernels.fast.conv import fits_register_kernel, on_tiles, tap_offsets, zero_padded
from npdeeplab.kernels.fast.gemm import direct_bias_clamp, direct_rescale, gemm_bias_clamp, gemm_rescale, generated
from npdeeplab.kernels.fast.tiles import depthwise_lanes, machine_tiles, panel_width
from npdeeplab.kernels.fixed_point import float64_rescaling_constants
from npdeeplab.kernels.integer import conv as reference
from npdeeplab.kernels.integer.conv import QuantizedConvParams, ShiftedFilter, shift_filter
from npdeeplab.kernels.windows import Window

EXACT = {"contract"}  # fused multiply-adds only: exact on exact integers
_local = threading.local()  # work buffers per thread: two interpreters may run at once


def conv2d_quantized(
    p: QuantizedConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    win = p.window
    if not on_tiles(win, x.shape, w.shape):
        return _into(out, reference.conv2d_quantized(p, x, w, b))  # grouped, or a huge border: rare
    f = p.filter or shift_filter(p, w, False, x.dtype)
    n, cout = x.shape[0], w.shape[0]
    rows, depth = n * win.out_h * win.out_w, f.matrix.shape[0]
    filters = constant_chunk_filters(f) if f is p.filter else chunk_filters(f)
    q = _rescaling(p, b, cout)
    fused = len(f.chunks) == 1 and q[0]  # the rescaling in the tiles' epilogue
    if fused:  # the tiles write rows, so `out` may be a concatenation's slice (see fast/conv.py)
        out, out_rows = output_rows(out, (n, win.out_h, win.out_w, cout), x.dtype)
    else:  # _requantize writes C-contiguous rows: for a slice, a fresh array the interpreter copies in
        out = output(out if out is None or out.flags.c_contiguous else None, (n, win.out_h, win.out_w, cout), x.dtype)
        out_rows = out.reshape(rows, cout)
    if rows == 0:
        return out
    sums = None if fused else _work("sums", (len(f.chunks), rows, cout))
    if _is_pointwise(win):
        patches = _work("patches", (rows, depth))
        _shift(np.ascontiguousarray(x).reshape(rows, depth), np.float32(p.input_offset), patches)
        if fused:
            gemm_rescale(patches, filters[0], _epilogue(q), out_rows)
            return out
        for k, (start, stop) in enumerate(f.chunks):
            a = patches if len(f.chunks) == 1 else np.ascontiguousarray(patches[:, start:stop])
            gemm_bias_clamp(a, filters[k], None, -np.inf, np.inf, sums[k])
    else:  # the shifted input in a border of shifted zero points (0.0), read in place by the direct GEMM
        padded = zero_padded(x, win, w.shape[1], w.shape[2], p.input_offset)
        offsets = tap_offsets(w.shape[1], w.shape[2], win.dilation_h, win.dilation_w, padded.shape[2], x.shape[3])
        strides = (win.stride_h, win.stride_w)
        if fused:
            direct_rescale(padded, offsets, filters[0], _epilogue(q), out_rows, (win.out_h, win.out_w), strides)
            return out
        for k, (start, stop) in enumerate(f.chunks):
            direct_bias_clamp(padded, offsets[start:stop], filters[k], None, -np.inf, np.inf, sums[k],
                              (win.out_h, win.out_w), strides)
    _requantize(sums, q, out_rows)
    return out


def fuses_rescaling(p: QuantizedConvParams) -> bool | None:
    """Whether conv2d_quantized rescales in the tiles' epilogue (one K chunk, the float64
    rescaling); None when that depends on a filter known only at run time."""
    if not p.float64_exact:
        return False
    return None if p.filter is None else len(p.filter.chunks) == 1


def _epilogue(q: tuple) -> tuple:
    """(scale, start, step, threshold, low, high) from a float64 rescaling's constants: what the
    tiles' RESCALE epilogue and the register depthwise kernel take."""
    return (*q[1:5], *q[6:8])


def chunk_filters(f: ShiftedFilter) -> list[np.ndarray]:
    """The shifted filter's K chunks as the GEMM takes weights, [Cout, K chunk] each (a filter
    computed at run time: writable, so the GEMM packs them afresh at each call)."""
    return [np.ascontiguousarray(f.matrix[start:stop].T) for start, stop in f.chunks]


@functools.lru_cache(maxsize=512)
def constant_chunk_filters(f: ShiftedFilter) -> list[np.ndarray]:
    """A constant filter's chunks, read-only: the GEMM keeps their packed panels while they live."""
    filters = chunk_filters(f)
    for w in filters:
        w.flags.writeable = False
    return filters


def depthwise_conv2d_quantized(
    p: QuantizedConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    win = p.window
    f = p.filter or shift_filter(p, w, True, x.dtype)
    n, cin, cout = x.shape[0], x.shape[3], w.shape[3]
    out = output(out, (n, win.out_h, win.out_w, cout), x.dtype)
    if out.size == 0:
        return out
    taps, offset_sums = _taps(f, win, p.input_offset)
    q = _rescaling(p, b, cout)
    if on_register_kernel(p, x.shape, w.shape):
        kernel = getattr(generated(), f"qdepthwise3x3_{depthwise_lanes(machine_tiles())}")
        kernel(np.ascontiguousarray(x), taps, offset_sums, np.float32(p.input_offset), *_epilogue(q), out,
               *_window_args(win))
        return out
    _depthwise(np.ascontiguousarray(x), taps, taps.dtype.type(p.input_offset), offset_sums, cout // cin,
               *_window_args(win), *_inner_columns(win, x.shape[2]), q, out)
    return out


def on_register_kernel(p: QuantizedConvParams, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> bool:
    """Whether a quantized depthwise convolution runs the register kernel: a 3x3 filter of at least
    a vector of channels, multiplier 1, and the float64 rescaling (its 9 taps' sums are always
    exact in float32: 9 * 255 * 255 is far below 2**24)."""
    return fits_register_kernel(w_shape, x_shape[3]) and p.float64_exact


def _work(role: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 work array for one role (patches, sums...), shared by every op of this thread: a
    buffer that grows to the largest op's need, not one per shape (that kept ~100 MB for dm05)."""
    size = math.prod(shape)
    buffers = _local.__dict__.setdefault("buffers", {})
    if buffers.get(role, np.empty(0, np.float32)).size < size:
        buffers[role] = np.empty(size, dtype=np.float32)
    return buffers[role][:size].reshape(shape)


def _into(out: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    if out is None:
        return result
    out[...] = result
    return out


def _is_pointwise(win: Window) -> bool:
    return (win.filter_h, win.filter_w, win.stride_h, win.stride_w, win.pad_top, win.pad_left) == (1, 1, 1, 1, 0, 0)


def _window_args(win: Window) -> tuple[int, ...]:
    return (win.stride_h, win.stride_w, win.dilation_h, win.dilation_w, win.pad_top, win.pad_left)


def _inner_columns(win: Window, width: int) -> tuple[int, int]:
    """The output columns [first, last) whose every tap lies inside the input's width."""
    first = -(-win.pad_left // win.stride_w)
    last = (width - 1 - (win.filter_w - 1) * win.dilation_w + win.pad_left) // win.stride_w + 1
    return min(first, win.out_w), max(min(last, win.out_w), min(first, win.out_w))


@functools.lru_cache(maxsize=512)
def _taps(f: ShiftedFilter, win: Window, input_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The shifted depthwise filter [KH, KW, C], float32 when its sums are exact there, else
    float64, and input_offset * (sum of each channel's taps): inside the input, the sum of
    (x + offset) * w is the sum of x * w plus that (exact: both are below the filter's bound)."""
    exact = np.float32 if f.bound < reference.FLOAT32_EXACT else np.float64
    taps = f.matrix.reshape(win.filter_h, win.filter_w, -1).astype(exact)
    offset_sums = (input_offset * f.matrix.astype(np.float64).sum(axis=0)).astype(exact)
    taps.flags.writeable = offset_sums.flags.writeable = False
    return taps, offset_sums


_RESCALINGS: dict[tuple[int, int], tuple] = {}


def _rescaling(p: QuantizedConvParams, b: np.ndarray | None, channels: int) -> tuple:
    """_rescaling_constants, kept for read-only biases (constant tensors, whose values cannot
    change between invokes): a few dozen small NumPy operations saved per op and invoke."""
    if b is not None and b.flags.writeable:
        return _rescaling_constants(p, b, channels)
    key = (id(p), id(b))
    found = _RESCALINGS.get(key)
    if found is None:
        if len(_RESCALINGS) >= 4096:
            _RESCALINGS.clear()
        found = _RESCALINGS[key] = (p, b, _rescaling_constants(p, b, channels))  # p, b kept: their ids stay theirs
    return found[2]


def _rescaling_constants(p: QuantizedConvParams, b: np.ndarray | None, channels: int) -> tuple:
    """The rescaling's constants (see _rescale), per output channel, as one flat tuple: not a named
    one, so that Numba's on-disk cache never has to unpickle a class of this module, and not nested,
    which Numba's parallel kernels do not take."""
    shift = p.shift.astype(np.int64)
    right = np.maximum(-shift, 0)
    bias = np.zeros(channels, np.int64) if b is None else b.astype(np.int64)
    floats, ints = np.zeros(0, np.float64), np.zeros(0, np.int64)
    if p.float64_exact:  # fixed_point.multiply_by_quantized_multiplier_float64, bias and zero point folded
        scale, start, step, threshold = (
            _padded(v, channels) if np.ndim(v) else v
            for v in float64_rescaling_constants(p.multiplier, p.shift, bias, p.output_offset))
        negative = p.act_min < p.output_offset  # else the negative case is clamped away
        floating = (scale, start, step, threshold, negative, float(p.act_min), float(p.act_max))
        return (True, *floating, ints, ints, ints, ints, ints, ints, 0, 0, 0, False)
    up = (1 << 30) + np.where(right > 0, np.int64(1) << (30 + right), 0)  # fixed_point's _floor form
    down = up - np.where(right > 0, 1 << 31, 0)
    integer = (bias, p.multiplier.astype(np.int64), np.maximum(shift, 0), up, down, 31 + right, p.output_offset,
               p.act_min, p.act_max, p.wraps)
    return (False, floats, floats, floats, 0.0, False, 0.0, 0.0, *integer)


def _padded(values: np.ndarray, channels: int) -> np.ndarray:
    """Per-channel constants with zeros after the last channel, as far as the GEMM's last panel
    reaches (its epilogue reads a whole panel's columns)."""
    width = panel_width(machine_tiles(), channels)
    padded = np.zeros(-(-channels // width) * width, np.float64)
    padded[:channels] = np.broadcast_to(values, channels)
    return padded


@serial(inline="always", fastmath=EXACT)
def _rescale_float(acc, c, q):  # noqa: ANN001, ANN202
    """clamp(MultiplyByQuantizedMultiplier(acc + bias[c], M[c], shift[c]) + zero point) for an exact
    integer acc: fixed_point.multiply_by_quantized_multiplier_float64, bias and zero point folded
    into start, for a clamp that hides the negative case (low >= zero point)."""
    y = acc * q[1][c] + q[2][c]
    return np.int32(min(max(np.floor(y), q[6]), q[7]))


@serial(inline="always", fastmath=EXACT)
def _rescale_float_negative(acc, c, q):  # noqa: ANN001, ANN202
    """The same with RoundingDivideByPOT's negative case: one step 2**-r less below the threshold
    (written without a branch, which would keep the loop over channels from vectorizing)."""
    y = acc * q[1][c] + q[2][c]
    y -= q[3][c] * (y < q[4])
    return np.int32(min(max(np.floor(y), q[6]), q[7]))


@serial(inline="always")
def _rescale_int(acc, c, q):  # noqa: ANN001, ANN202
    """The same in int64: fixed_point.multiply_by_quantized_multiplier_floor, after C's int32 wrap."""
    bias, multiplier, left, up, down, right, zero_point, low, high, wraps = q[8:]
    a = np.int64(acc) + bias[c]
    if wraps:
        a = ((a + 2**31) & 0xFFFFFFFF) - 2**31  # int32 `acc += bias` in C
    if left[c] > 0:
        a = (((a << left[c]) + 2**31) & 0xFFFFFFFF) - 2**31
    u = a * multiplier[c]
    u += down[c] if u < -(2**30) else up[c]
    return np.int32(min(max((u >> right[c]) + zero_point, low), high))


@serial(inline="always", fastmath=EXACT)
def _rescale_into(acc, i, q, out, b, y, x):  # noqa: ANN001, ANN202
    """out[b, y, x, c] = the rescaled acc[i, c] for every channel c: one loop per form, chosen
    outside it, so that each vectorizes (no array views: each would cost a reference count)."""
    channels = acc.shape[1]
    if q[0] and not q[5]:
        for c in range(channels):
            out[b, y, x, c] = _rescale_float(acc[i, c], c, q)
    elif q[0]:
        for c in range(channels):
            out[b, y, x, c] = _rescale_float_negative(acc[i, c], c, q)
    else:
        for c in range(channels):
            out[b, y, x, c] = _rescale_int(acc[i, c], c, q)


@parallel
def _shift(x, offset, out):  # noqa: ANN001, ANN202
    """out = x + offset in out's float type, row by row."""
    for i in prange(x.shape[0]):
        for k in range(x.shape[1]):
            out[i, k] = x[i, k] + offset


@parallel(fastmath=EXACT)
def _requantize(sums, q, out):  # noqa: ANN001, ANN202
    """out[row, c] = the rescaled sum over the K chunks of sums[k, row, c] (exact integers)."""
    chunks, rows, channels = sums.shape
    first = sums[0]
    image = out.reshape(1, 1, rows, channels)
    for row in prange(rows):
        if chunks == 1:
            _rescale_into(first, row, q, image, 0, 0, row)
        else:
            acc = np.zeros((1, channels), dtype=np.float64)  # exact: each chunk's sums are below 2**24
            for k in range(chunks):
                for c in range(channels):
                    acc[0, c] += sums[k, row, c]
            _rescale_into(acc, 0, q, image, 0, 0, row)


@parallel(fastmath=EXACT)
def _depthwise(x, taps, offset, offset_sums, multiplier, sh, sw, dh, dw, pad_top, pad_left, first, last, q,  # noqa: ANN001, ANN202
               out):  # noqa: ANN001
    """Every output: the sum over the taps inside the input of taps[ky, kx, c] * (x[.., c // m] +
    offset), in the taps' float type, rescaled. 3x3 windows inside the input (columns first..last
    of the rows whose taps are all inside) sum their nine taps written out, unshifted input times
    shifted filter plus offset_sums, in registers; the other windows go tap by tap."""
    n, height, width, _ = x.shape
    kh, kw, channels = taps.shape
    out_h, out_w = out.shape[1], out.shape[2]
    three_by_three = kh == 3 and kw == 3 and multiplier == 1
    w = taps
    for row in prange(n * out_h):
        b, oy = row // out_h, row % out_h
        y0 = oy * sh - pad_top
        inside = three_by_three and y0 >= 0 and y0 + 2 * dh < height
        begin, end = (first, last) if inside else (out_w, out_w)
        acc = np.empty((1, channels), dtype=taps.dtype)
        for ox in range(out_w):
            if ox < begin or ox >= end:
                _depthwise_taps(x, taps, offset, b, y0, ox * sw - pad_left, dh, dw, multiplier, acc)
                _rescale_into(acc, 0, q, out, b, oy, ox)
        y1, y2 = y0 + dh, y0 + 2 * dh
        for ox in range(begin, end):
            x0 = ox * sw - pad_left
            x1, x2 = x0 + dw, x0 + 2 * dw
            for c in range(channels):  # indices written out: Numba then keeps the sum in a register
                total = x[b, y0, x0, c] * w[0, 0, c] + x[b, y0, x1, c] * w[0, 1, c] + x[b, y0, x2, c] * w[0, 2, c]
                total += x[b, y1, x0, c] * w[1, 0, c] + x[b, y1, x1, c] * w[1, 1, c] + x[b, y1, x2, c] * w[1, 2, c]
                total += x[b, y2, x0, c] * w[2, 0, c] + x[b, y2, x1, c] * w[2, 1, c] + x[b, y2, x2, c] * w[2, 2, c]
                acc[0, c] = total + offset_sums[c]
            _rescale_into(acc, 0, q, out, b, oy, ox)


@serial(inline="always", fastmath=EXACT)
def _depthwise_taps(x, taps, offset, b, top, left, dh, dw, multiplier, acc):  # noqa: ANN001, ANN202
    """Any window, any multiplier: the taps that land inside the input, (x + offset) * w."""
    height, width = x.shape[1], x.shape[2]
    kh, kw, channels = taps.shape
    acc[0, :] = 0
    for ky in range(kh):
        iy = top + ky * dh
        if iy < 0 or iy >= height:
            continue
        for kx in range(kw):
            ix = left + kx * dw
            if ix < 0 or ix >= width:
                continue
            if multiplier == 1:
                for c in range(channels):
                    acc[0, c] += (x[b, iy, ix, c] + offset) * taps[ky, kx, c]
            else:
                for ci in range(channels // multiplier):
                    value = x[b, iy, ix, ci] + offset
                    for j in range(multiplier):
                        acc[0, ci * multiplier + j] += value * taps[ky, kx, ci * multiplier + j]


KERNELS: dict[str, Callable] = {
    "conv2d_quantized": conv2d_quantized,
    "depthwise_conv2d_quantized": depthwise_conv2d_quantized,
}
ACCEPTS_OUT: frozenset[str] = frozenset(KERNELS)


def warm_up(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """Compile (or load) this module's kernels for the argument types the engine passes."""
    warm_up_conv2d(dtypes)
    warm_up_depthwise(dtypes)


def _constant_bias() -> np.ndarray:
    bias = np.zeros(2, np.int32)
    bias.flags.writeable = False
    return bias


def warm_up_conv2d(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """conv2d_quantized's own kernels (the shift and the rescaling, both forms) for uint8 and int8
    data; its sums are the float tiles', compiled in their own units."""
    one = np.ones(2, dtype=np.int64)
    for dtype in dtypes:
        _shift(np.zeros((3, 2), dtype), np.float32(1), np.zeros((3, 2), np.float32))
        for wraps, exact in ((False, True), (True, False)):
            p = QuantizedConvParams(Window(1, 1, 1, 1, 1, 1, 0, 0, 3, 1), 1, 1, 0, one << 30, -one, 0, 127, wraps,
                                    exact)
            _requantize(np.zeros((1, 3, 2), np.float32), _rescaling_constants(p, _constant_bias(), 2),
                        np.zeros((3, 2), dtype))


def warm_up_rescaling_tile(kind: str, channels: int, dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """conv2d_quantized on a tile with the rescaling in its epilogue ("gemm": 1x1, "direct": 3x3),
    as a model calls it: a constant filter of `channels` outputs (the tile's width), the float64
    rescaling."""
    size = 3 if kind == "direct" else 1
    window = Window(size, size, 1, 1, 1, 1, size // 2, size // 2, 3, 3)
    one = np.ones(channels, dtype=np.int64)
    for dtype in dtypes:
        p = QuantizedConvParams(window, 1, 1, 0, one << 30, -one, 0, 127, False, True)
        w = np.ones((channels, size, size, 2), dtype)
        w.flags.writeable = False
        p = dataclasses.replace(p, filter=shift_filter(p, w, False, np.dtype(dtype)))
        conv2d_quantized(p, np.zeros((1, 3, 3, 2), dtype), w, None)


def warm_up_register_depthwise(lanes: int, dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """depthwise_conv2d_quantized on the register kernel (`lanes` channels), constant filter and bias."""
    one = np.ones(lanes, dtype=np.int64)
    bias = np.zeros(lanes, np.int32)
    bias.flags.writeable = False
    window = Window(3, 3, 1, 1, 1, 1, 1, 1, 3, 3)
    for dtype in dtypes:
        p = QuantizedConvParams(window, 1, 1, 0, one << 30, -one, 0, 127, False, True)
        w = np.ones((1, 3, 3, lanes), dtype)
        w.flags.writeable = False
        depthwise_conv2d_quantized(p, np.zeros((1, 3, 3, lanes), dtype=dtype), w, bias)


def warm_up_depthwise(dtypes: tuple[type, ...] = (np.uint8, np.int8)) -> None:
    """depthwise_conv2d_quantized for the same types, float32 and float64 taps."""
    one = np.ones(2, dtype=np.int64)
    bias = _constant_bias()
    for dtype in dtypes:
        x = np.zeros((1, 3, 3, 2), dtype=dtype)
        for wraps, exact in ((False, True), (True, False)):
            for size in (3, 33):  # 33 x 33 taps: sums beyond float32's exact range, float64 taps
                big = Window(size, size, 1, 1, 1, 1, size // 2, size // 2, 3, 3)
                p = QuantizedConvParams(big, 1, 1, 0, one << 30, -one, 0, 127, wraps, exact)
                depthwise_conv2d_quantized(p, x, np.full((1, size, size, 2), np.iinfo(dtype).max, dtype), bias)

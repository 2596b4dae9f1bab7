"""Quantized RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR on raw values, NHWC, as LiteRT's reference
kernels compute them (reference/resize_bilinear.h, resize_nearest_neighbor.h). Scales and zero
points play no part: the ops blend or copy raw values.

uint8 goes through the float kernel, ResizeBilinear<uint8_t>: the float32 coordinates and weights
of kernels/resize.py, the four-term sum in TFLite's order, + 0.5, truncated. int8 (and int16) go
through ResizeBilinearInteger: coordinates in 10-bit fixed point, the blend in Q20, rounded half
away from zero. Nearest neighbour copies the source pixel GetNearestNeighbor picks. Prepare works
out the taps and indices once per shape.

When every uint8 weight is a multiple of a small power of two (33 -> 513 with align_corners:
sixteenths), each float32 operation of the four-term formula is exact (exact_blend_bits, proved
at prepare), so its value does not depend on the order of evaluation: the kernel then blends in
integers, columns first on the small input, then rows, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.fixed_point import truncating_divide_by_pot
from npdeeplab.kernels.resize import bilinear_taps

ONE_10 = 1 << 10  # 1.0 in the integer kernel's coordinates
FLOAT32_SIGNIFICAND_BITS = 24
UINT8_MAX = 255


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
    # uint8: (ky, kx) from exact_blend_bits when the float32 formula is exact, else None
    blend_bits: tuple[int, int] | None = None


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


def exact_blend_bits(wy: np.ndarray, wx: np.ndarray) -> tuple[int, int] | None:
    """(ky, kx) if the uint8 kernel's float32 formula is exact for these row and column weights:
    every row weight a multiple of 2**-ky and every column weight of 2**-kx (ky, kx >= 1), and
    every value of the formula within 2**(24 - ky - kx) in magnitude. Else None.

    Each value the formula computes (a weight and its complement, a raw value in [0, 255] times
    one and then the other, the partial sums, + 0.5) is then an integer multiple of 2**-(ky+kx)
    of at most 24 significant bits, so float32 represents it and every operation is exact. The
    products are at most 255 * |a| * |b| for a in {1 - dy, dy} and b in {1 - dx, dx}, the partial
    sums at most the sum of their magnitudes, 255 * (|1 - dy| + |dy|) * (|1 - dx| + |dx|), the
    final sum that (it is the blend, in [0, 255]) plus 0.5. With weights in [0, 1): ky + kx <= 16.
    """
    ky, kx = _power_of_two_denominator(wy), _power_of_two_denominator(wx)
    if ky is None or kx is None:
        return None
    spread_y = float(np.max(np.abs(1 - wy.astype(np.float64)) + np.abs(wy)))
    spread_x = float(np.max(np.abs(1 - wx.astype(np.float64)) + np.abs(wx)))
    largest = UINT8_MAX * spread_y * spread_x + 0.5
    return (ky, kx) if largest * 2.0 ** (ky + kx) <= 2.0**FLOAT32_SIGNIFICAND_BITS else None


def _power_of_two_denominator(weights: np.ndarray) -> int | None:
    """The least k >= 1 with every weight a multiple of 2**-k, None if there is none below 24."""
    for k in range(1, FLOAT32_SIGNIFICAND_BITS):
        scaled = np.ldexp(weights.astype(np.float64), k)  # exact
        if np.array_equal(scaled, np.floor(scaled)):
            return k
    return None


def quantized_resize_bilinear(p: QuantizedBilinearParams, x: np.ndarray) -> np.ndarray:
    """ResizeBilinear<uint8_t>: in float32, v00 (1-dy)(1-dx) + v10 dy (1-dx) + v01 (1-dy) dx + v11 dy dx
    + 0.5, left to right, then truncated to uint8; band by band of output rows. Where prepare proved
    that formula exact (p.blend_bits), its values are computed separably in integers instead."""
    if p.blend_bits is not None:
        return _blend_in_integers(p, x)
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


def _blend_in_integers(p: QuantizedBilinearParams, x: np.ndarray) -> np.ndarray:
    """The exact four-term blend times 2**K (K = ky + kx), in integers: with the weights in units of
    2**-ky and 2**-kx, Wy = dy * 2**ky and Wx = dx * 2**kx,

        S = (2**ky - Wy) * H[y0] + Wy * H[y1],   H = (2**kx - Wx) * v[x0] + Wx * v[x1],

    H on the input's rows (the small array), S row by row; then trunc(S / 2**K + 0.5), the
    formula's value truncated, is (S + 2**(K-1)) >> K. The 2**(K-1) is added to H as 2**(kx-1)
    (the row weights sum to 2**ky). S is the blend of raw values, in [0, 255 * 2**K], so
    S + 2**(K-1) fits 16 bits for K <= 8 and 32 bits up to the exactness limit of 16. A weight
    pair outside [0, 1] (the clamped edges of half-pixel centres) reads one pixel twice; negative
    weights wrap in the unsigned arithmetic, which is exact modulo 2**16 (2**32), and so gives S
    itself."""
    ky, kx = p.blend_bits
    bits = ky + kx
    dtype = np.uint16 if bits <= 8 else np.uint32
    n, height, _, channels = x.shape
    wx = np.ldexp(p.wx.astype(np.float64), kx).astype(np.int64)
    wy = np.ldexp(p.wy.astype(np.float64), ky).astype(np.int64)
    values = x.astype(dtype)
    columns = np.take(values, p.x0, axis=2)
    columns *= ((1 << kx) - wx).astype(dtype)[None, None, :, None]
    right = np.take(values, p.x1, axis=2)
    right *= wx.astype(dtype)[None, None, :, None]
    columns += right
    columns += dtype(1 << (kx - 1))  # the rounding half, 2**(K-1) once the rows are blended
    rows = columns.reshape(n, height, p.out_w * channels)  # each source row as one long vector
    top_weight = ((1 << ky) - wy).astype(dtype)[None, :, None]
    bottom_weight = wy.astype(dtype)[None, :, None]
    out = np.empty((n, p.out_h, p.out_w * channels), dtype=x.dtype)
    for band in row_bands(out):
        total = np.take(rows, p.y0[band], axis=1)
        total *= top_weight[:, band]
        bottom = np.take(rows, p.y1[band], axis=1)
        bottom *= bottom_weight[:, band]
        total += bottom
        np.right_shift(total, bits, out=out[:, band], casting="unsafe")  # < 256: the cast keeps it
    return out.reshape(n, p.out_h, p.out_w, channels)


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

"""TRANSPOSE_CONV, float32, NHWC (TFLite reference/transpose_conv.h, reference_ops::TransposeConv).

The reference kernel scatters: every input value x[n, iy, ix, ci] adds x * w[co, ky, kx, ci] to
output pixel (iy*stride_h - pad_top + ky, ix*stride_w - pad_left + kx) for every filter tap that
lands inside the output, into an output zeroed first; then the bias is added and the fused
activation's clamp applied. Here the products come from one matrix product,
input [N*H*W, Cin] @ weights [Cin, KH*KW*Cout], and each tap's block of columns is added into the
output pixels it lands on (col2im): for one tap, distinct input pixels land on distinct output
pixels, so each tap is one strided slice-add. The products are exactly the reference's (a tap
that lands outside the output is computed and dropped, never added), so Inf and NaN weights
behave as there; only the order of the float32 additions differs (BLAS sums over Cin).

TransposeWindow is also the geometry of MediaPipe's Convolution2DTransposeBias, whose output
size and padding come from its own formula (npdeeplab.ops.transpose_conv.transpose_conv_params
builds the params from shapes and options, for either op).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.activation import clamp
from npdeeplab.kernels.windows import Span, Window, window_taps

COLUMN_BYTES = 8 * 1024 * 1024  # the matrix product's output is made input-row band by band, about this size


@dataclass(frozen=True)
class TransposeWindow:
    """Where each input pixel's products land: input pixel (iy, ix), tap (ky, kx) goes to output
    pixel (iy*stride_h - pad_top + ky, ix*stride_w - pad_left + kx), skipped outside the output
    [out_h, out_w]. pad_top/pad_left are LiteRT's padding_values.height/width (the offsets, an odd
    padding pixel's side, play no part in the reference kernel).

    It is the window of the convolution this op is the transpose of, seen from the other side: that
    convolution reads our output as its input and writes our input as its output (`dual`).
    """

    in_h: int
    in_w: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int

    @property
    def dual(self) -> Window:
        """The convolution window whose output pixel (iy, ix) reads, at tap (ky, kx), input pixel
        (iy*stride_h - pad_top + ky, ...): exactly where our input pixel (iy, ix) writes."""
        return Window(self.filter_h, self.filter_w, self.stride_h, self.stride_w, 1, 1, self.pad_top, self.pad_left,
                      self.in_h, self.in_w)

    def taps(self) -> list[tuple[int, int, Span, Span]]:
        """(ky, kx, rows, columns) of every tap that lands inside the output for some input pixel:
        rows.outputs are input rows, rows.inputs the output rows they land on (one stride apart)."""
        return window_taps(self.dual, self.out_h, self.out_w)

    def check(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
        """ValueError unless x [N, in_h, in_w, Cin], w [Cout, filter_h, filter_w, Cin] and b (None or
        Cout values) are the shapes this window was made for: the Numba kernels do not bounds-check."""
        expected = (self.in_h, self.in_w, self.filter_h, self.filter_w)
        if x.ndim != 4 or w.ndim != 4 or (*x.shape[1:3], *w.shape[1:3]) != expected or x.shape[3] != w.shape[3]:
            raise ValueError(f"TRANSPOSE_CONV prepared for input [N, {self.in_h}, {self.in_w}, C] and weights "
                             f"[O, {self.filter_h}, {self.filter_w}, C], got {list(x.shape)} and {list(w.shape)}")
        if b is not None and b.size != w.shape[0]:
            raise ValueError(f"TRANSPOSE_CONV bias has {b.size} values for {w.shape[0]} output channels")


@dataclass(frozen=True)
class TransposeConvParams:
    """LiteRT's ConvParams for TransposeConv: the geometry and the fused activation's clamp.
    bias_first: start every sum from the bias instead of adding it at the end (MediaPipe's
    Convolution2DTransposeBias does; the results differ only in float rounding)."""

    window: TransposeWindow
    act_min: float
    act_max: float
    bias_first: bool = False


def transpose_conv(p: TransposeConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """reference_ops::TransposeConv (reference/transpose_conv.h):

        out[n, iy*sh - pad_top + ky, ix*sw - pad_left + kx, co] += x[n, iy, ix, ci] * w[co, ky, kx, ci]

    over every input value and every tap landing inside the output, from zero; then
    out = clamp(out + b[co]). x [N, H, W, Cin], w [Cout, KH, KW, Cin] (OHWI), b [Cout] or None.
    The taps are added in the reverse of (ky, kx) order: in the reference, an output's terms come
    in input raster order, which is the taps' reverse.
    """
    win = p.window
    n, cin, cout = x.shape[0], x.shape[3], w.shape[0]
    bias = flat_bias(b)
    out = np.zeros((n, win.out_h, win.out_w, cout), dtype=np.float32)
    if p.bias_first and bias is not None:
        out += bias
    columns = np.ascontiguousarray(w.transpose(3, 1, 2, 0)).reshape(cin, -1)  # [Cin, (ky, kx, co)]
    for rows in input_bands(n, win, cout, 4):
        products = (x[:, rows].reshape(-1, cin) @ columns).reshape(n, rows.stop - rows.start, win.in_w,
                                                                       win.filter_h, win.filter_w, cout)
        scatter_taps(out, products, win, rows)
    if bias is not None and not p.bias_first:
        out += bias
    return clamp(out, p.act_min, p.act_max)


def flat_bias(b: np.ndarray | None) -> np.ndarray | None:
    """The bias as a vector: LiteRT checks only its element count, so [1, Cout] is a bias too. A
    vector comes back as the same object (the quantized kernels key constants on it)."""
    return b if b is None or b.ndim == 1 else b.reshape(-1)


def input_bands(n: int, win: TransposeWindow, cout: int, itemsize: int) -> list[slice]:
    """Bands of input rows whose products [N, rows, W, KH, KW, Cout] take about COLUMN_BYTES."""
    row_bytes = max(n * win.in_w * win.filter_h * win.filter_w * cout * itemsize, 1)
    rows = max(1, COLUMN_BYTES // row_bytes)
    return [slice(y, min(y + rows, win.in_h)) for y in range(0, win.in_h, rows)]


def scatter_taps(out: np.ndarray, products: np.ndarray, win: TransposeWindow, band: slice) -> None:
    """col2im: out[:, oy, ox] += products[:, iy - band.start, ix, ky, kx] for every tap (ky, kx) and
    every input pixel (iy in band, ix) whose tap lands at (oy, ox) inside the output. Taps go in
    reverse (ky, kx) order, the reference's order of an output's terms."""
    for ky, kx, rows, columns in reversed(win.taps()):
        part = rows.within(band.start, band.stop)
        if part is None:
            continue
        out[:, part.inputs, columns.inputs] += products[:, part.outputs, columns.outputs, ky, kx]

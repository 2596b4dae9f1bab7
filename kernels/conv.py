"""CONV_2D and DEPTHWISE_CONV_2D, float32, NHWC (TFLite reference/conv.h, depthwiseconv_float.h)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.activation import clamp
from npdeeplab.kernels.bands import row_bands
from npdeeplab.kernels.windows import Window, pad_for_window, window_patches, window_taps


@dataclass(frozen=True)
class ConvParams:
    window: Window
    act_min: float
    act_max: float
    finite_filter: bool | None = None  # known at prepare for constant filters; None: look at run time


def has_finite_filter(p: ConvParams, w: np.ndarray) -> bool:
    return p.finite_filter if p.finite_filter is not None else bool(np.isfinite(w).all())


def conv2d(p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """out[n,y,x,co] = clamp(sum over (ky,kx,ci) of in[n, y*s+ky*d-pad, x*s+kx*d-pad, ci] * w[co,ky,kx,ci] + b[co]).

    x [N,H,W,Cin], w [Cout,KH,KW,Cin/groups], b [Cout] or None. With groups > 1 each group of
    Cout/groups filters sees its own Cin/groups slice of the input. Taps outside the input are
    skipped, not multiplied by a zero of padding: they differ where a weight is Inf or NaN.
    """
    groups = x.shape[3] // w.shape[3]
    one_product = has_finite_filter(p, w) and padding_fits(p.window, x.shape)
    convolve = _conv2d_group if one_product else _conv2d_group_by_taps
    outputs = [
        convolve(p, x[..., g * w.shape[3] : (g + 1) * w.shape[3]], w_g)
        for g, w_g in enumerate(np.split(w, groups, axis=0))
    ]
    out = outputs[0] if groups == 1 else np.concatenate(outputs, axis=3)
    if b is not None:
        out += b
    return clamp(out, p.act_min, p.act_max)


def padding_fits(win: Window, x_shape: tuple[int, ...]) -> bool:
    """Whether the padded input is no larger than the patches it yields. A large dilation on a
    small input (32767 on a 10x10 image) would otherwise pad it to gigabytes of zeros."""
    padded_h = (win.out_h - 1) * win.stride_h + (win.filter_h - 1) * win.dilation_h + 1
    padded_w = (win.out_w - 1) * win.stride_w + (win.filter_w - 1) * win.dilation_w + 1
    patches = win.out_h * win.out_w * win.filter_h * win.filter_w
    return max(padded_h, x_shape[1]) * max(padded_w, x_shape[2]) <= max(patches, x_shape[1] * x_shape[2])


def _conv2d_group(p: ConvParams, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The convolution as one matrix product: patches [N*OH*OW, KH*KW*Cin] @ filters.T.

    The padding's zeros take part in the product, which is exact for finite weights only.
    """
    win = p.window
    if (win.filter_h, win.filter_w, win.stride_h, win.stride_w) == (1, 1, 1, 1):
        patches = x  # a 1x1 convolution is already a matrix product over channels
    else:
        # [N, OH, OW, KH, KW, Cin]: the filter's own (ky, kx, ci) order. The reshape below copies
        # it once; without dilation each filter row's kw pixels are one contiguous run.
        patches = window_patches(pad_for_window(x, win), win)
    n = x.shape[0]
    cout = w.shape[0]
    out = patches.reshape(n * win.out_h * win.out_w, -1) @ w.reshape(cout, -1).T
    return out.reshape(n, win.out_h, win.out_w, cout)


def _conv2d_group_by_taps(p: ConvParams, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The convolution as a sum over filter taps of 1x1 convolutions, each over just the outputs
    whose tap lands inside the input: for filters with Inf or NaN, where 0 * Inf would be NaN."""
    win = p.window
    out = np.zeros((x.shape[0], win.out_h, win.out_w, w.shape[0]), dtype=np.float32)
    for ky, kx, rows, columns in window_taps(win, x.shape[1], x.shape[2]):
        out[:, rows.outputs, columns.outputs] += x[:, rows.inputs, columns.inputs] @ w[:, ky, kx, :].T
    return out


def depthwise_conv2d(p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """out[n,y,x,c*m+k] = clamp(sum over (ky,kx) of in[n, y*s+ky*d-pad, x*s+kx*d-pad, c] * w[0,ky,kx,c*m+k] + b).

    x [N,H,W,Cin], w [1,KH,KW,Cin*m]: each input channel c feeds m output channels. The taps that
    land inside the input are accumulated in (ky, kx) order in float32, as TFLite's reference
    kernel does; those outside are skipped.
    """
    win = p.window
    multiplier = w.shape[3] // x.shape[3]
    if multiplier > 1:
        x = np.repeat(x, multiplier, axis=3)  # output channel oc reads input channel oc // m
    out = np.zeros((x.shape[0], win.out_h, win.out_w, w.shape[3]), dtype=np.float32)
    # Each tap's weights repeated along a whole output row, so that every multiply below runs
    # over rows of W*C contiguous values instead of C at a time.
    row_weights = np.repeat(w[0, :, :, None, :], win.out_w, axis=2)  # [KH, KW, OW, C]
    taps = window_taps(win, x.shape[1], x.shape[2])
    bands = row_bands(out)
    product = np.empty_like(out[:, bands[0]])
    for band_rows in bands:  # band by band: each band stays in cache from the first tap to the clamp
        band = out[:, band_rows]
        for ky, kx, rows, columns in taps:
            part = rows.within(band_rows.start, band_rows.stop)
            if part is None:
                continue
            scratch = product[:, : part.out_stop - part.out_start, : columns.out_stop - columns.out_start]
            np.multiply(x[:, part.inputs, columns.inputs], row_weights[ky, kx, columns.outputs], out=scratch)
            band[:, part.outputs, columns.outputs] += scratch
        if b is not None:
            band += b
        clamp(band, p.act_min, p.act_max)
    return out

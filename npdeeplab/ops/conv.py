"""Prepare CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D and MAX_POOL_2D (TFLite kernels/padding.h)."""

from __future__ import annotations

import math

import numpy as np

from npdeeplab.kernels.conv import ConvParams
from npdeeplab.kernels.pool import PoolParams
from npdeeplab.kernels.windows import Window
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register

MAX_DILATION = 2**15 - 1  # LiteRT: dilation_*_factor <= INT16_MAX


def output_size_and_padding(
    size: int, filter_size: int, stride: int, dilation: int, padding: str
) -> tuple[int, int]:
    """(output size, padding before) along one axis, as TFLite computes them.

    SAME: out = ceil(in / stride); the total padding is split with the odd pixel after.
    VALID: out = (in - effective filter) // stride + 1, no padding.
    """
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        out = (size + stride - 1) // stride
    else:
        out = (size + stride - effective) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


def make_window(
    ctx: OpContext, height: int, width: int, filter_h: int, filter_w: int, dilation_h: int = 1, dilation_w: int = 1
) -> Window:
    o = ctx.options
    if o.padding not in ("SAME", "VALID"):
        ctx.fail(f"unknown padding {o.padding}")
    if max(dilation_h, dilation_w) > MAX_DILATION:
        ctx.fail(f"dilation ({dilation_h}, {dilation_w}) is over {MAX_DILATION}, the most LiteRT accepts")
    if min(o.stride_h, o.stride_w, dilation_h, dilation_w, filter_h, filter_w) < 1:
        ctx.fail(
            f"strides ({o.stride_h}, {o.stride_w}), dilations ({dilation_h}, {dilation_w}) and filter size "
            f"({filter_h}, {filter_w}) must be at least 1"
        )
    out_h, pad_top = output_size_and_padding(height, filter_h, o.stride_h, dilation_h, o.padding)
    out_w, pad_left = output_size_and_padding(width, filter_w, o.stride_w, dilation_w, o.padding)
    if out_h < 1 or out_w < 1:
        ctx.fail(
            f"a {filter_h}x{filter_w} window (dilation {dilation_h}x{dilation_w}) does not fit a {height}x{width} "
            f"input with {o.padding} padding"
        )
    return Window(filter_h, filter_w, o.stride_h, o.stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w)


def convolution_macs(kind: str, input_shape: tuple[int, ...], filter_shape: tuple[int, ...],
                     output_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of a convolution, from its shapes alone (so also for models npdeeplab
    cannot run): every output value of CONV_2D sums KH*KW*Cin/groups products, of DEPTHWISE_CONV_2D
    KH*KW, of FULLY_CONNECTED the filter's input size; TRANSPOSE_CONV spreads every input value
    over KH*KW*Cout outputs."""
    if kind == "CONV_2D":
        return math.prod(output_shape) * math.prod(filter_shape[1:])
    if kind == "DEPTHWISE_CONV_2D":
        return math.prod(output_shape) * math.prod(filter_shape[1:3])
    if kind == "FULLY_CONNECTED":
        return math.prod(output_shape) * filter_shape[-1]
    if kind in ("TRANSPOSE_CONV", "CUSTOM:Convolution2DTransposeBias"):
        return math.prod(input_shape) * math.prod(filter_shape[:3])
    return 0


@register("CONV_2D")
def prepare_conv2d(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2, 3)
    x = ctx.input(0, rank=4)
    w = ctx.input(1, rank=4)
    b = ctx.optional_input(2, rank=1)
    n, height, width, cin = x.shape
    cout, kh, kw, filter_cin = w.shape
    if filter_cin == 0 or cin < filter_cin or cin % filter_cin or cout % (cin // filter_cin):
        ctx.fail(
            f"input has {cin} channels but the filter ({ctx.label(w)}) expects {filter_cin} per group "
            f"for {cout} output channels"
        )
    _check_bias(ctx, b, cout)
    o = ctx.options
    window = make_window(ctx, height, width, kh, kw, o.dilation_h_factor, o.dilation_w_factor)
    low, high = ctx.activation_range()
    shape = (n, window.out_h, window.out_w, cout)
    macs = convolution_macs("CONV_2D", x.shape, w.shape, shape)
    finite = bool(np.isfinite(w.data).all()) if w.is_constant else None
    return ctx.prepared("conv2d", ConvParams(window, low, high, finite), [x, w, b], shape, x.dtype, macs)


@register("DEPTHWISE_CONV_2D")
def prepare_depthwise_conv2d(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2, 3)
    x = ctx.input(0, rank=4)
    w = ctx.input(1, rank=4)
    b = ctx.optional_input(2, rank=1)
    n, height, width, cin = x.shape
    one, kh, kw, cout = w.shape
    # TFLite takes the multiplier from the shapes, not from the depth_multiplier option.
    if one != 1 or cin == 0 or cout % cin:
        ctx.fail(
            f"filter {ctx.label(w)} has shape {list(w.shape)}; expected [1, KH, KW, {cin} x multiplier] "
            f"for an input with {cin} channels"
        )
    _check_bias(ctx, b, cout)
    o = ctx.options
    window = make_window(ctx, height, width, kh, kw, o.dilation_h_factor, o.dilation_w_factor)
    low, high = ctx.activation_range()
    shape = (n, window.out_h, window.out_w, cout)
    macs = convolution_macs("DEPTHWISE_CONV_2D", x.shape, w.shape, shape)
    return ctx.prepared("depthwise_conv2d", ConvParams(window, low, high), [x, w, b], shape, x.dtype, macs)


@register("AVERAGE_POOL_2D", "MAX_POOL_2D")
def prepare_pool2d(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, rank=4)
    n, height, width, channels = x.shape
    o = ctx.options
    window = make_window(ctx, height, width, o.filter_height, o.filter_width)
    low, high = ctx.activation_range()
    kernel = "average_pool2d" if ctx.op.kind == "AVERAGE_POOL_2D" else "max_pool2d"
    shape = (n, window.out_h, window.out_w, channels)
    return ctx.prepared(kernel, PoolParams(window, low, high), [x], shape, x.dtype)


def _check_bias(ctx: OpContext, bias: TensorInfo | None, channels: int) -> None:
    if bias is not None and bias.shape != (channels,):
        ctx.fail(f"bias {ctx.label(bias)} has shape {list(bias.shape)}, expected [{channels}]")

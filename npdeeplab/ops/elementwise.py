"""Prepare ADD/SUB/MUL, the standalone activations (LEAKY_RELU, PRELU, HARD_SWISH too), SOFTMAX, the resizes."""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.activation import SoftmaxParams
from npdeeplab.kernels.elementwise import BinaryParams
from npdeeplab.kernels.rectifiers import LeakyReluParams
from npdeeplab.kernels.resize import ResizeParams
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import FLOAT32, OpContext, PreparedOp, register

ARITHMETIC_DTYPES = (FLOAT32, np.dtype(np.int32), np.dtype(np.int64))
# BroadcastBinaryOpSimple (reference/broadcast_loop.h) aborts the process above rank 8 when the
# shapes differ (checked: rank 9 aborts for ADD, SUB and MUL); equal shapes run flat at any rank.
MAX_BROADCAST_RANK = 8
UNARY_KERNELS = {
    "RELU": "relu",
    "RELU6": "relu6",
    "RELU_N1_TO_1": "relu_n1_to_1",
    "TANH": "tanh",
    "LOGISTIC": "logistic",
    "HARD_SWISH": "hard_swish",
}


@register("ADD", "SUB", "MUL")
def prepare_binary(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    a = ctx.input(0, dtypes=ARITHMETIC_DTYPES)
    b = ctx.input(1, dtypes=(a.dtype,))
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        ctx.fail(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast")
    if a.shape != b.shape and len(shape) > MAX_BROADCAST_RANK:
        ctx.fail(f"broadcasting supports rank up to {MAX_BROADCAST_RANK}, got rank {len(shape)}")
    low, high = ctx.activation_range()
    return ctx.prepared(ctx.op.kind.lower(), BinaryParams(low, high), [a, b], shape, a.dtype)


@register(*UNARY_KERNELS)
def prepare_unary(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0)
    return ctx.prepared(UNARY_KERNELS[ctx.op.kind], None, [x], x.shape, x.dtype)


@register("LEAKY_RELU")
def prepare_leaky_relu(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0)
    alpha = float(np.float32(getattr(ctx.options, "alpha", 0.0)))  # no options table: LiteRT's alpha is 0
    return ctx.prepared("leaky_relu", LeakyReluParams(alpha), [x], x.shape, x.dtype)


@register("PRELU")
def prepare_prelu(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0)
    alpha = ctx.input(1)  # LiteRT reads alpha as floats whatever its type: float32 only
    prelu_output_shape(ctx, x, alpha)
    return ctx.prepared("prelu", None, [x, alpha], x.shape, x.dtype)


def prelu_output_shape(ctx: OpContext, x: TensorInfo, alpha: TensorInfo) -> None:
    """PreluPrepare's shape rule: x and alpha broadcast to x's own shape (BroadcastBinaryOpSimple
    takes rank up to MAX_BROADCAST_RANK unless the shapes are equal)."""
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(x.shape, alpha.shape))
    except ValueError:
        ctx.fail(f"input shape {list(x.shape)} and alpha shape {list(alpha.shape)} do not broadcast")
    if shape != tuple(x.shape):
        ctx.fail(f"alpha shape {list(alpha.shape)} broadcasts the input {list(x.shape)} to {list(shape)}, "
                 "not to the input's shape")
    if x.shape != alpha.shape and len(shape) > MAX_BROADCAST_RANK:
        ctx.fail(f"broadcasting supports rank up to {MAX_BROADCAST_RANK}, got rank {len(shape)}")


@register("SOFTMAX")
def prepare_softmax(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, rank=(1, 2, 3, 4))
    return ctx.prepared("softmax", SoftmaxParams(float(ctx.options.beta)), [x], x.shape, x.dtype)


@register("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
def prepare_resize(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    bilinear = ctx.op.kind == "RESIZE_BILINEAR"
    x = ctx.input(0, rank=4, dtypes=(FLOAT32,) if bilinear else None)
    size = ctx.input(1, rank=1, dtypes=(np.dtype(np.int32),), constant=True)
    if size.shape != (2,):
        ctx.fail(f"size ({ctx.label(size)}) must hold 2 values, got shape {list(size.shape)}")
    out_h, out_w = (int(v) for v in size.data)
    if out_h < 1 or out_w < 1:
        ctx.fail(f"output size must be positive, got {out_h}x{out_w}")
    o = ctx.options
    if bilinear and o.align_corners and o.half_pixel_centers:  # LiteRT's nearest neighbour takes both
        ctx.fail("align_corners and half_pixel_centers cannot both be set")
    params = ResizeParams(out_h, out_w, bool(o.align_corners), bool(o.half_pixel_centers))
    shape = (x.shape[0], out_h, out_w, x.shape[3])
    return ctx.prepared(ctx.op.kind.lower(), params, [x], shape, x.dtype)

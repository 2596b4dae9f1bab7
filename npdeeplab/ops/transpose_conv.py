"""Prepare TRANSPOSE_CONV, float32: transpose_conv.cc's Prepare and the shape checks of its Eval.

Inputs: output_shape (int32 [4], constant), weights [Cout, KH, KW, Cin] (OHWI), input
[N, H, W, Cin], and an optional bias [Cout] (absent, or index -1). The output size is the
output_shape tensor's; LiteRT then checks it against the input: the input's height must be what
padding.h's ComputeOutSize gives for a convolution from the output (ceil(OH / stride) for SAME,
(OH + stride - KH) / stride for VALID, C division), the same for the width, and the padding is that
convolution's (max((H - 1)*stride + KH - OH, 0) // 2 before). LiteRT does the shape checks in
Eval; npdeeplab at load, where every shape is known.

Where npdeeplab is stricter than LiteRT, on purpose: output_shape must be a constant. LiteRT's
reference kernel takes a computed one too, making the output a dynamic tensor resized at every
invoke; npdeeplab plans every shape at load, so it refuses that model.

`transpose_conv_params` is the public half: the geometry and clamp from shapes and options alone,
for any op that computes a transpose convolution (MediaPipe's Convolution2DTransposeBias).
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.activation import FUSED_RANGES
from npdeeplab.kernels.transpose_conv import TransposeConvParams, TransposeWindow
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import FLOAT32, OpContext, PreparedOp, register
from npdeeplab.ops.conv import convolution_macs

INT32 = np.dtype(np.int32)
MAX_STRIDE = 2**15 - 1  # transpose_conv.cc: 0 < stride <= INT16_MAX


def transpose_conv_params(
    ctx: OpContext,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    padding: str,
    stride_h: int,
    stride_w: int,
    output_hw: tuple[int, int],
    activation: str = "NONE",
    bias_first: bool = False,
) -> TransposeConvParams:
    """The params of kernels.transpose_conv.transpose_conv (and of its Numba twin) from shapes and
    options, checked as LiteRT's TRANSPOSE_CONV checks them; anything it refuses raises a one-line
    ModelError through ctx.fail.

    x_shape: the input, [N, H, W, Cin]; w_shape: the weights, [Cout, KH, KW, Cin] (OHWI);
    padding: "SAME" or "VALID"; strides: 1 to 32767; output_hw: (OH, OW), the output's height and
    width, which must map back to (H, W) as a convolution from the output would (see the module
    docstring); activation: a fused activation name ("NONE", "RELU", "RELU6", ...); bias_first:
    start the sums from the bias (MediaPipe's order) instead of adding it last (TFLite's).

    MediaPipe's Convolution2DTransposeBias sizes its output itself: OH = stride*(H - 1) + KH - P
    with P = max(0, KH - (H - 1) % stride - 1) for SAME, 0 for VALID, padding P // 2 before. That
    output always passes the checks here, and the padding computed here is that one: a custom op
    computes output_hw so and calls this with it.
    """
    if len(x_shape) != 4 or len(w_shape) != 4:
        ctx.fail(f"input {list(x_shape)} and weights {list(w_shape)} must both have rank 4")
    if padding not in ("SAME", "VALID"):
        ctx.fail(f"unknown padding {padding}")
    if not (0 < stride_h <= MAX_STRIDE and 0 < stride_w <= MAX_STRIDE):
        ctx.fail(f"strides ({stride_h}, {stride_w}) must be 1 to {MAX_STRIDE}")
    _, height, width, cin = x_shape
    cout, kh, kw, filter_cin = w_shape
    if min(height, width, cin, cout, kh, kw) < 1:
        ctx.fail(f"input {list(x_shape)} and weights {list(w_shape)} must have no empty dimension")
    if filter_cin != cin:
        ctx.fail(f"input has {cin} channels but the weights [Cout, KH, KW, Cin] {list(w_shape)} expect {filter_cin}")
    out_h, out_w = (int(v) for v in output_hw)
    if out_h < 1 or out_w < 1:
        ctx.fail(f"output height and width ({out_h}, {out_w}) must be positive")
    pad_top = _padding(ctx, "height", height, out_h, kh, stride_h, padding)
    pad_left = _padding(ctx, "width", width, out_w, kw, stride_w, padding)
    if activation not in FUSED_RANGES:
        ctx.fail(f"unknown fused activation {activation}")
    low, high = FUSED_RANGES[activation]
    window = TransposeWindow(height, width, kh, kw, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    return TransposeConvParams(window, low, high, bias_first)


def _padding(ctx: OpContext, axis: str, size: int, out: int, kernel: int, stride: int, padding: str) -> int:
    """padding.h's ComputePaddingHeightWidthChecked for a convolution from the output (size out) to
    the input (size): the input size it gives must be the input's; returns the padding before."""
    if padding == "SAME":
        computed = (out + stride - 1) // stride
    else:
        numerator = out + stride - kernel
        computed = -(-numerator // stride) if numerator < 0 else numerator // stride  # C division truncates
        if computed < 0:
            computed = None
    if computed != size:
        ctx.fail(
            f"output {axis} {out} does not fit the input's {size}: with {padding} padding, stride {stride} and a "
            f"kernel of {kernel}, LiteRT needs an output {axis} whose convolution gives {size}, got {computed}"
        )
    return max((size - 1) * stride + kernel - out, 0) // 2


def transpose_conv_inputs(ctx: OpContext) -> tuple[tuple[int, ...], TensorInfo, TensorInfo, TensorInfo | None]:
    """(output shape, input, weights, bias or None), the output shape read from its constant
    tensor and checked against the batch and the weights; dtypes are the caller's to check."""
    ctx.expect_inputs(3, 4)
    if len(ctx.op.outputs) != 1:
        ctx.fail(f"expected 1 output, got {len(ctx.op.outputs)}")
    shape_tensor = ctx.input(0, rank=1, dtypes=None)
    w = ctx.input(1, rank=4, dtypes=None)
    x = ctx.input(2, rank=4, dtypes=None)
    b = ctx.optional_input(3, dtypes=None)
    ctx.check(shape_tensor, "output_shape", dtypes=(INT32,))
    if not shape_tensor.is_constant:
        ctx.fail(
            f"output_shape ({ctx.label(shape_tensor)}) is computed by the graph; npdeeplab needs it constant "
            f"(LiteRT would make the output a dynamic tensor)"
        )
    shape = tuple(int(v) for v in np.asarray(shape_tensor.data).reshape(-1))
    if len(shape) != 4 or shape[0] != x.shape[0] or shape[3] != w.shape[0]:
        ctx.fail(
            f"output_shape {list(shape)} must be [N, OH, OW, Cout] = [{x.shape[0]}, OH, OW, {w.shape[0]}] for "
            f"input {list(x.shape)} and weights {list(w.shape)}"
        )
    if b is not None and b.size != w.shape[0]:
        ctx.fail(f"bias {ctx.label(b)} has shape {list(b.shape)}; expected {w.shape[0]} values, one per output channel")
    return shape, x, w, b


@register("TRANSPOSE_CONV")
def prepare_transpose_conv(ctx: OpContext) -> PreparedOp:
    shape, x, w, b = transpose_conv_inputs(ctx)
    # The output's declared dtype is checked against the one prepared (x's) by the graph, after
    # prepare: GraphBuilder's provisional output carries its first input's, output_shape's int32.
    for tensor, role in ((x, "input"), (w, "weights")):
        ctx.check(tensor, role, dtypes=(FLOAT32,))
    if b is not None:
        ctx.check(b, "bias", dtypes=(FLOAT32,))
    o = ctx.options
    params = transpose_conv_params(ctx, x.shape, w.shape, o.padding, o.stride_h, o.stride_w, shape[1:3],
                                   o.fused_activation_function)
    macs = convolution_macs("TRANSPOSE_CONV", x.shape, w.shape, shape)
    return ctx.prepared("transpose_conv", params, [x, w, b], shape, x.dtype, macs)

"""MediaPipe's custom op Convolution2DTransposeBias, which stock LiteRT cannot run
(mediapipe/util/tflite/operations/transpose_conv_bias.cc; the Selfie and hair segmentation models
end in it).

Inputs: input [N, H, W, Cin], weights [Cout, KH, KW, Cin] (OHWI), bias [Cout], all float32. The
custom options are a raw C struct TfLiteTransposeConvParams, little-endian int32s: padding (1 SAME,
2 VALID), stride_w, stride_h (newer headers add fields after these; MediaPipe reads only these).
Unlike the builtin TRANSPOSE_CONV it sizes its output itself:

    OH = stride_h * (H - 1) + KH - P_h,   P_h = max(0, KH - (H - 1) % stride_h - 1) for SAME, 0 for VALID

(the same for the width), with padding P_h // 2 before; each output starts from the bias and
gathers input * weight over the taps that land on it. That is the builtin TRANSPOSE_CONV with a
bias input and output_shape [N, OH, OW, Cout], summed in another order: npdeeplab runs it with the
builtin's kernel (bias first), and `compare` holds it against LiteRT running that rewrite.

npdeeplab is stricter than MediaPipe: padding other than SAME or VALID (MediaPipe treats any
non-SAME value as VALID), strides below 1 (a division by zero there) and options shorter than
the three fields are refused.
"""

from __future__ import annotations

import struct

import numpy as np

from npdeeplab.model.ir import OpNode, Subgraph, TensorInfo
from npdeeplab.model.options import TransposeConvOptions
from npdeeplab.ops.base import FLOAT32, OpContext, PreparedOp
from npdeeplab.ops.conv import convolution_macs
from npdeeplab.ops.custom import register_custom_op
from npdeeplab.ops.transpose_conv import transpose_conv_params

NAME = "Convolution2DTransposeBias"
PADDINGS = {1: "SAME", 2: "VALID"}  # TfLitePadding: 0 is kTfLitePaddingUnknown
OPTIONS = struct.Struct("<iii")  # padding, stride_width, stride_height


def read_options(options: bytes) -> tuple[str, int, int]:
    """(padding, stride_h, stride_w) from the raw TfLiteTransposeConvParams bytes; ValueError when
    they cannot be one."""
    if len(options) < OPTIONS.size:
        raise ValueError(f"custom options are {len(options)} bytes; expected at least {OPTIONS.size} "
                         f"(TfLiteTransposeConvParams: int32 padding, stride_w, stride_h)")
    padding, stride_w, stride_h = OPTIONS.unpack_from(options)
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding} in the custom options is neither SAME (1) nor VALID (2)")
    return PADDINGS[padding], stride_h, stride_w


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """MediaPipe's Prepare: stride * (size - 1) + kernel, less the SAME padding."""
    total = max(0, kernel - (size - 1) % stride - 1) if padding == "SAME" else 0
    return stride * (size - 1) + kernel - total


def prepare(ctx: OpContext, options: bytes) -> PreparedOp:
    ctx.expect_inputs(3)
    x = ctx.input(0, rank=4, dtypes=(FLOAT32,))
    w = ctx.input(1, rank=4, dtypes=(FLOAT32,))
    b = ctx.input(2, rank=1, dtypes=(FLOAT32,))
    ctx.check(ctx.output(0), "output", dtypes=(FLOAT32,))
    if b.shape[0] != w.shape[0]:
        ctx.fail(f"bias {ctx.label(b)} has {b.shape[0]} values for weights with {w.shape[0]} output channels")
    try:
        padding, stride_h, stride_w = read_options(options)
    except ValueError as error:
        ctx.fail(str(error))
    if stride_h < 1 or stride_w < 1:
        ctx.fail(f"strides ({stride_h}, {stride_w}) in the custom options must be 1 or more")
    out_hw = (output_size(x.shape[1], w.shape[1], stride_h, padding),
              output_size(x.shape[2], w.shape[2], stride_w, padding))
    params = transpose_conv_params(ctx, x.shape, w.shape, padding, stride_h, stride_w, out_hw, bias_first=True)
    shape = (x.shape[0], *out_hw, w.shape[0])
    macs = convolution_macs("TRANSPOSE_CONV", x.shape, w.shape, shape)
    return ctx.prepared("transpose_conv", params, [x, w, b], shape, FLOAT32, macs)


def describe(options: bytes) -> str:
    padding, stride_h, stride_w = read_options(options)
    return f"s{stride_h}" + ("" if stride_h == stride_w else f"x{stride_w}") + f" {padding} (custom options)"


def as_builtin(graph: Subgraph, op: OpNode, first_free: int) -> tuple[OpNode, list[TensorInfo]]:
    """The builtin TRANSPOSE_CONV with a bias input that computes the same: output_shape as a new
    int32 constant; inputs (output_shape, weights, input, bias)."""
    x, w, b = (graph.tensors[i] for i in op.inputs)
    padding, stride_h, stride_w = read_options(op.custom_options)
    shape = np.array([x.shape[0], output_size(x.shape[1], w.shape[1], stride_h, padding),
                      output_size(x.shape[2], w.shape[2], stride_w, padding), w.shape[0]], np.int32)
    shape.flags.writeable = False
    output_shape = TensorInfo(first_free, f"{graph.tensors[op.outputs[0]].name}/output_shape", (4,), (4,),
                              np.dtype(np.int32), data=shape)
    options = TransposeConvOptions(padding=padding, stride_w=stride_w, stride_h=stride_h)
    builtin = OpNode(op.index, "TRANSPOSE_CONV", 1, (first_free, w.index, x.index, b.index), op.outputs, options)
    return builtin, [output_shape]


register_custom_op(NAME, prepare=prepare, describe=describe, litert_rewrite=as_builtin)

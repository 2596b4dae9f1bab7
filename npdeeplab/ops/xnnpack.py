"""Which prepared ops XNNPACK takes over in LiteRT's default interpreter, and their XNNPACK params:
the "xnnpack" numerics personality (npdeeplab.runtime.numerics).

LiteRT's XNNPACK delegate (tflite/delegates/xnnpack/xnnpack_delegate.cc) decides per op and per
quantization scheme; an op it declines runs LiteRT's optimized builtin kernel. On uint8 and int8
models it takes, among others:

- CONV_2D, DEPTHWISE_CONV_2D with a constant filter, a constant int32 bias (an op without bias
  stays builtin), a fused NONE/RELU/RELU_N1_TO_1/RELU6, uint8 per tensor or int8 with per-channel
  (or per-tensor) symmetric filters: kernels.xnnpack.conv. With a requantization scale of 256
  or more XNNPACK's convolution-nhwc.c refuses the op after the delegate took it, and LiteRT AUTO
  fails to build its runtime (the model does not run); npdeeplab runs the reference kernel then.
- ADD of one quantized type, per tensor, rank <= 6 and no empty dimension, with input/output
  scale ratios in [2**-10, 2**8) and a fused NONE/RELU/RELU_N1_TO_1/RELU6 (XNNPACK clamps to
  xnn_q*8_quantize of its limits): kernels.xnnpack.elementwise.
- QUANTIZE from a quantized type to the same type with a scale ratio in [2**-8, 2**7]:
  kernels.xnnpack.convert (uint8 <-> int8 and other ratios stay builtin).
- RESIZE_BILINEAR, uint8 and int8, rank 4: kernels.xnnpack.resize (11-bit weights; on dm05 its
  three resizes happen to equal the reference kernel's, elsewhere they differ by one).
- CONCATENATION: delegated too, moving raw values as the reference kernel does where the
  quantizations agree (as on dm05); it keeps the reference kernel.

It declines uint8 AVERAGE_POOL_2D and ARG_MAX (they run LiteRT's optimized builtins, which equal
the reference ones for these). Every other op keeps npdeeplab's reference kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from npdeeplab.kernels.xnnpack.conv import XnnConvParams
from npdeeplab.kernels.xnnpack.convert import convert_params
from npdeeplab.kernels.xnnpack.elementwise import add_params
from npdeeplab.kernels.xnnpack.requantization import quantize_limit, requantization_scale
from npdeeplab.kernels.xnnpack.resize import bilinear_params
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import PreparedOp

QUANTIZED_8BIT = (np.dtype(np.uint8), np.dtype(np.int8))
# ConvertActivationToOutputRange: the fused activations XNNPACK accepts, as float limits
ACTIVATION_LIMITS = {
    "NONE": (-np.inf, np.inf), "RELU": (0.0, np.inf), "RELU_N1_TO_1": (-1.0, 1.0), "RELU6": (0.0, 6.0),
}
MAX_RANK = 6  # XNN_MAX_TENSOR_DIMS
LARGEST_SCALE = 256.0  # convolution-nhwc.c: a requantization scale of 256 or more is refused


def xnnpack_step(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp:
    """The step as XNNPACK runs it, or the step unchanged where XNNPACK declines the op."""
    taker = TAKERS.get(step.kernel)
    replaced = taker(step, tensors) if taker is not None else None
    return replaced if replaced is not None else step


def _per_tensor(t: TensorInfo) -> tuple[float, int] | None:
    q = t.quantization
    if q is None or q.scale.size != 1:
        return None
    return float(q.scale[0]), int(q.zero_point[0])


def _xnnpack_shapes(*operands: TensorInfo) -> bool:
    """CheckTensorShape: at most XNN_MAX_TENSOR_DIMS dimensions, none of them empty."""
    return all(len(t.shape) <= MAX_RANK and all(d > 0 for d in t.shape) for t in operands)


def _conv(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    op = step.op
    x, w = tensors[op.inputs[0]], tensors[op.inputs[1]]
    b = tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] != -1 else None
    y = tensors[op.outputs[0]]
    limits = ACTIVATION_LIMITS.get(op.options.fused_activation_function)
    if limits is None or x.dtype not in QUANTIZED_8BIT or not w.is_constant or b is None or not b.is_constant:
        return None
    if not _xnnpack_shapes(x, w, y):
        return None
    if b.dtype != np.int32 or w.quantization is None:
        return None
    input_q, output_q = _per_tensor(x), _per_tensor(y)
    if input_q is None or output_q is None:
        return None
    scales = requantization_scale(input_q[0], w.quantization.scale, output_q[0])
    channels = step.output_shapes[0][3]
    scales = np.ascontiguousarray(np.broadcast_to(scales, (channels,)) if scales.size == 1 else scales)
    if scales.size != channels or not np.all(scales < LARGEST_SCALE):
        return None
    low, high = (quantize_limit(limit, output_q[0], output_q[1], y.dtype) for limit in limits)
    params = XnnConvParams(step.params, scales, output_q[1], low, high)
    kernel = "xnnpack_depthwise_conv2d" if op.kind == "DEPTHWISE_CONV_2D" else "xnnpack_conv2d"
    return dataclasses.replace(step, kernel=kernel, params=params)


def _add(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    op = step.op
    limits = ACTIVATION_LIMITS.get(op.options.fused_activation_function)
    if op.kind != "ADD" or limits is None:
        return None
    a, b, y = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    if a.dtype not in QUANTIZED_8BIT or not a.dtype == b.dtype == y.dtype or not _xnnpack_shapes(a, b, y):
        return None
    pairs = [_per_tensor(t) for t in (a, b, y)]
    if any(pair is None for pair in pairs):
        return None
    low, high = (quantize_limit(limit, pairs[2][0], pairs[2][1], y.dtype) for limit in limits)
    params = add_params(*pairs, low, high)
    return None if params is None else dataclasses.replace(step, kernel="xnnpack_add", params=params)


def _requantize(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    op = step.op
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if op.kind != "QUANTIZE" or x.dtype not in QUANTIZED_8BIT or x.dtype != y.dtype:
        return None
    pairs = _per_tensor(x), _per_tensor(y)
    if None in pairs:
        return None
    params = convert_params(*pairs, y.dtype)
    return None if params is None else dataclasses.replace(step, kernel="xnnpack_convert", params=params)


def _resize_bilinear(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    op = step.op
    x = tensors[op.inputs[0]]
    if op.kind != "RESIZE_BILINEAR" or x.dtype not in QUANTIZED_8BIT or not _xnnpack_shapes(x):
        return None
    out_h, out_w = step.output_shapes[0][1:3]
    o = op.options
    params = bilinear_params(x.shape[1], x.shape[2], out_h, out_w, bool(o.align_corners), bool(o.half_pixel_centers))
    return dataclasses.replace(step, kernel="xnnpack_resize_bilinear", params=params)


TAKERS = {
    "conv2d_quantized": _conv,
    "depthwise_conv2d_quantized": _conv,
    "quantized_add": _add,
    "quantized_requantize": _requantize,
    "quantized_resize_bilinear": _resize_bilinear,
    "quantized_resize_bilinear_integer": _resize_bilinear,
}

"""Which prepared ops LiteRT's optimized builtin kernels (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
compute differently from its reference kernels: the "optimized" numerics personality
(npdeeplab.runtime.numerics). Measured on ai-edge-litert 2.3.0, x86-64.

- CONV_2D, uint8 and int8, one group: optimized_ops::Conv / optimized_integer_ops::ConvPerChannel
  round the rescaled accumulator's negative halves upward (kernels.optimized.conv.conv2d). Grouped
  convolutions run reference_ops in LiteRT's conv.cc and keep the reference kernel.
- DEPTHWISE_CONV_2D, int8: optimized_integer_ops::DepthwiseConvPerChannel, the same rounding in
  whole blocks of 8 output channels and the reference's in the channels left over
  (kernels.optimized.conv.depthwise_conv2d_per_channel). uint8 depthwise equals the reference on
  x86 (every dm05 depthwise op, and the builder cases).

- QUANTIZE float32 -> uint8/int8/int16 per tensor: optimized_ops::AffineQuantize, a float32
  product rounded half to even in whole blocks of 8 elements (kernels.optimized.quantize).
- QUANTIZE uint8/int8 -> uint8/int8: optimized_ops::Requantize, negative halves upward in whole
  blocks of 16 elements (kernels.optimized.quantize.requantize).

Every other op keeps npdeeplab's reference kernel. Where that is known to differ from LiteRT's
optimized kernels (DEQUANTIZE, SOFTMAX, FULLY_CONNECTED, quantized MEAN, some uint8 bilinear
resizes: docs/coverage.md), the personality does not imitate it yet; on the shared dm05 model none
of those ops differ. Float models keep reference numerics (the optimized float kernels reorder sums).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import PreparedOp

QUANTIZED_8BIT = (np.dtype(np.uint8), np.dtype(np.int8))


def optimized_step(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp:
    """The step as LiteRT's optimized kernel runs it, or unchanged where that equals the reference."""
    taker = TAKERS.get(step.kernel)
    replaced = taker(step, tensors) if taker is not None else None
    return replaced if replaced is not None else step


def _conv(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    x, w = tensors[step.op.inputs[0]], tensors[step.op.inputs[1]]
    if x.dtype not in QUANTIZED_8BIT or x.shape[3] != w.shape[3]:  # grouped: reference_ops in LiteRT
        return None
    return dataclasses.replace(step, kernel="optimized_conv2d")


def _depthwise(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    if tensors[step.op.inputs[0]].dtype != np.int8:  # uint8: optimized_ops::DepthwiseConv equals REF on x86
        return None
    return dataclasses.replace(step, kernel="optimized_depthwise_conv2d_per_channel")


def _quantize(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    if step.params.axis is not None:  # per channel: reference_ops::PerChannelQuantize
        return None
    return dataclasses.replace(step, kernel="optimized_affine_quantize")


def _requantize(step: PreparedOp, tensors: Sequence[TensorInfo]) -> PreparedOp | None:
    x, y = tensors[step.op.inputs[0]], tensors[step.op.outputs[0]]
    if x.dtype not in QUANTIZED_8BIT or y.dtype not in QUANTIZED_8BIT:  # int16: reference_ops::Requantize
        return None
    return dataclasses.replace(step, kernel="optimized_requantize")


TAKERS = {
    "conv2d_quantized": _conv,
    "depthwise_conv2d_quantized": _depthwise,
    "quantized_quantize": _quantize,
    "quantized_requantize": _requantize,
}

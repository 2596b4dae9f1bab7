"""Quantized data movement: the checks LiteRT makes on quantized tensors, then the float preparer.

- CONCATENATION (concatenation.cc): uint8 inputs quantized unlike the output are requantized
  (reference_ops::ConcatenationWithScaling); int8 inputs must match the output exactly.
- EXPAND_DIMS (expand_dims.cc): input and output scale and zero point must be equal.
- PAD (pad.cc): fills with the output's zero point, except int8/int16 inputs without
  quantization, which LiteRT pads with 0.
The other raw-value kinds (RESHAPE, SQUEEZE, SLICE, STRIDED_SLICE, TILE, TRANSPOSE, ARG_MAX,
ARG_MIN) check nothing of the kind in LiteRT and keep their float preparers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from npdeeplab.kernels.integer.shape import QuantizedConcatParams, Requantize
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.quantized.common import INT8, UINT8, per_tensor
from npdeeplab.ops.shape import prepare_concatenation, prepare_expand_dims, prepare_pad


@register("CONCATENATION", quantized=True)
def prepare_quantized_concatenation(ctx: OpContext) -> PreparedOp:
    if not ctx.op.inputs:
        ctx.fail("expected at least 1 input, got 0")
    first = ctx.input(0, dtypes=None)
    if first.dtype not in (UINT8, INT8):
        return prepare_concatenation(ctx)  # int16 and unquantized types: as before
    inputs = [ctx.input(i, dtypes=(first.dtype,)) for i in range(len(ctx.op.inputs))]
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(first.dtype,))
    s_out, z_out = per_tensor(ctx, out, "output")
    params = [per_tensor(ctx, t, f"input {i}") for i, t in enumerate(inputs)]
    differ = [i for i, q in enumerate(params) if q != (s_out, z_out)]  # float32 scales compared exactly
    if differ and first.dtype == INT8:
        i = differ[0]
        ctx.fail(
            f"int8 input {i} ({ctx.label(inputs[i])}) is quantized {params[i]}, the output ({ctx.label(out)}) "
            f"{(s_out, z_out)}; LiteRT's int8 CONCATENATION does not rescale"
        )
    prepared = prepare_concatenation(_without_input_quantization(ctx, inputs, out))  # shapes, axis, activation
    if not differ:
        return prepared
    inverse = np.float32(1) / np.float32(s_out)
    rules = []
    for i, (scale, zero_point) in enumerate(params):
        if i not in differ:
            rules.append(None)
            continue
        factor = np.float32(scale) * inverse
        rules.append(Requantize(factor, np.float32(-zero_point) * factor))
    axis = prepared.params.axis
    return ctx.prepared("quantized_concatenation", QuantizedConcatParams(axis, tuple(rules), z_out), inputs,
                        prepared.output_shapes[0], first.dtype)


def _without_input_quantization(ctx: OpContext, inputs: list[TensorInfo], out: TensorInfo) -> OpContext:
    """The op as the float preparer should see it: every input quantized as the output, so that
    its equal-quantization rule (which this preparer replaces) passes."""
    tensors = list(ctx.tensors)
    for tensor in inputs:
        tensors[tensor.index] = dataclasses.replace(tensor, quantization=out.quantization)
    return OpContext(ctx.op, tensors)


@register("EXPAND_DIMS", quantized=True)
def prepare_quantized_expand_dims(ctx: OpContext) -> PreparedOp:
    x = ctx.input(0, dtypes=None)
    out = ctx.output(0)
    if _legacy_params(x) != _legacy_params(out):
        (s_in, z_in), (s_out, z_out) = _legacy_params(x), _legacy_params(out)
        ctx.fail(
            f"input ({ctx.label(x)}) and output ({ctx.label(out)}) must share scale and zero point, got scale "
            f"{_listed(s_in)}, zero point {_listed(z_in)} and scale {_listed(s_out)}, zero point {_listed(z_out)}"
        )
    return prepare_expand_dims(ctx)


@register("PAD", quantized=True)
def prepare_quantized_pad(ctx: OpContext) -> PreparedOp:
    prepared = prepare_pad(ctx)
    x = ctx.input(0, dtypes=None)
    if x.dtype != UINT8 and x.quantization is None:  # pad.cc pads unquantized int8/int16 with 0
        prepared = dataclasses.replace(prepared, params=dataclasses.replace(prepared.params, value=0))
    return prepared


def _listed(values: tuple) -> str:
    return str(values[0]) if len(values) == 1 else str(list(values))


def _legacy_params(tensor: TensorInfo) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """A tensor's scale(s) and zero point(s) as compared by LiteRT's TF_LITE_ENSURE_EQ on
    tensor->params: (0, 0) without quantization."""
    q = tensor.quantization
    if q is None:
        return (0.0,), (0,)
    return tuple(float(s) for s in q.scale), tuple(int(z) for z in q.zero_point)

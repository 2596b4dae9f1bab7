"""Prepare QUANTIZE (float32 -> int, int -> int) and DEQUANTIZE (int -> float32): quantize.cc and
dequantize.cc. Float16 DEQUANTIZE is the float preparer's.

Types as LiteRT allows them: QUANTIZE float32 -> uint8, int8, int16 (per tensor or per channel);
uint8 and int8 -> uint8, int8, int16; int16 -> int8, int16 (zero points 0 for int16 -> int16).
DEQUANTIZE uint8, int8 (per tensor or per channel), int16 (zero point 0) -> float32.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from npdeeplab.kernels.fixed_point import quantize_multiplier
from npdeeplab.kernels.integer.quantize import AffineParams, RequantizeParams
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import FLOAT32, OpContext, PreparedOp, normalize_axis, register
from npdeeplab.ops.quantized.common import INT8, INT16, QUANTIZED, UINT8, per_channel, per_tensor

REQUANTIZE_OUTPUTS = {UINT8: (UINT8, INT8, INT16), INT8: (UINT8, INT8, INT16), INT16: (INT8, INT16)}


def _affine(ctx: OpContext, tensor: TensorInfo, role: str) -> AffineParams:
    """Per-tensor or (more than one scale) per-channel parameters, checked."""
    q = tensor.quantization
    if q is not None and q.scale.size > 1:
        axis = normalize_axis(ctx, q.quantized_dimension, len(tensor.shape), f"{role}'s quantized dimension")
        scales, zero_points = per_channel(ctx, tensor, role, axis)
        return AffineParams(tensor.dtype, np.array(scales, np.float32), np.array(zero_points, np.int64), axis)
    scale, zero_point = per_tensor(ctx, tensor, role)
    return AffineParams(tensor.dtype, np.array([scale], np.float32), np.array([zero_point], np.int64))


@register("QUANTIZE", quantized=True)
def prepare_quantize(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, dtypes=(FLOAT32, *REQUANTIZE_OUTPUTS))
    out = ctx.output(0)
    if out.quantization is None:
        ctx.fail(f"output ({ctx.label(out)}) has no quantization parameters")
    if x.dtype == FLOAT32:
        ctx.check(out, "output", dtypes=(UINT8, INT8, INT16))
        # Per-channel scales are counted against the shape the op produces (the input's), which
        # a dynamic declared output shape need not match.
        produced = dataclasses.replace(out, shape=x.shape)
        return ctx.prepared("quantized_quantize", _affine(ctx, produced, "output"), [x], x.shape, out.dtype)
    ctx.check(out, "output", dtypes=REQUANTIZE_OUTPUTS[x.dtype])
    (s_in, z_in), (s_out, z_out) = per_tensor(ctx, x, "input"), per_tensor(ctx, out, "output")
    if x.dtype == INT16 and out.dtype == INT16 and (z_in, z_out) != (0, 0):
        ctx.fail(f"int16 to int16 needs zero points 0, got {z_in} and {z_out}")
    multiplier, shift = quantize_multiplier(float(np.float64(s_in) / np.float64(s_out)))
    if shift > 31:
        ctx.fail(
            f"the input scale {s_in!r} is 2**31 or more times the output's {s_out!r}: LiteRT's result is undefined"
        )
    same_scale = (multiplier, shift) == (1 << 30, 1)
    flip = same_scale and {x.dtype, out.dtype} == {UINT8, INT8} and z_in - z_out == (128 if x.dtype == UINT8 else -128)
    params = RequantizeParams(z_in, multiplier, shift, z_out, out.dtype, flip)
    return ctx.prepared("quantized_requantize", params, [x], x.shape, out.dtype)


@register("DEQUANTIZE", quantized=True)
def prepare_dequantize(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, dtypes=(*QUANTIZED, INT16))
    params = _affine(ctx, x, "input")
    if x.dtype == INT16:
        if params.axis is not None:
            ctx.fail(f"input ({ctx.label(x)}): int16 cannot be dequantized per channel")
        if params.zero_point[0] != 0:
            ctx.fail(f"input ({ctx.label(x)}) is int16 with zero point {int(params.zero_point[0])}; it must be 0")
    return ctx.prepared("quantized_dequantize", params, [x], x.shape, FLOAT32)

"""Prepare quantized SOFTMAX, LOGISTIC and TANH (uint8, int8), as activations.cc's SoftmaxPrepare,
SigmoidPrepare and TanhPrepare do under the reference resolver.

What LiteRT requires of the output (and what it does not, checked against the wheel):
- LOGISTIC: output scale exactly 1/256; any zero point (the table adds it).
- TANH: nothing; the table rescales to whatever scale and zero point the output has.
- SOFTMAX int8: zero point -128 and scale within 0.1% of 1/256. uint8: nothing, although the
  kernel writes units of 1/256 from 0 whatever the output declares.
Beyond LiteRT, a scale must be positive and finite, and ops where LiteRT aborts or its C code is
undefined are refused (a softmax multiplier of at most 1, a table value beyond int32).
"""

from __future__ import annotations

import math

import numpy as np

from npdeeplab.kernels.fixed_point import INT32_MAX, quantize_multiplier
from npdeeplab.kernels.integer.activation import (
    SCALED_DIFF_INTEGER_BITS,
    QuantizedSoftmaxParams,
    logisticf,
    lut_populate,
    table_int32_values,
    tanhf,
)
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.quantized.common import INT8, QUANTIZED, per_tensor

MAX_SOFTMAX_DEPTH = 4095  # 4096 exps of 1.0 (2**19 each in Q12.19) overflow LiteRT's int32 sum
TRANSFORMS = {"LOGISTIC": logisticf, "TANH": tanhf}


def _same_type_output(ctx: OpContext, x: TensorInfo) -> TensorInfo:
    out = ctx.output(0)
    if out.dtype != x.dtype:
        ctx.fail(f"output ({ctx.label(out)}) must have the input's type {x.dtype.name}, got {out.dtype.name}")
    return out


@register("LOGISTIC", "TANH", quantized=True)
def prepare_quantized_lookup(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, dtypes=QUANTIZED)
    out = _same_type_output(ctx, x)
    (s_in, z_in), (s_out, z_out) = per_tensor(ctx, x, "input"), per_tensor(ctx, out, "output")
    if ctx.op.kind == "LOGISTIC" and s_out != 1 / 256:
        ctx.fail(f"output ({ctx.label(out)}) must have scale 1/256 (0.00390625), got {s_out!r}")
    transform = TRANSFORMS[ctx.op.kind]
    _, values = table_int32_values(transform, s_in, z_in, s_out, z_out, x.dtype)
    if not np.all((values >= -(2.0**31)) & (values < 2.0**31)):
        ctx.fail(
            f"output ({ctx.label(out)}) scale {s_out!r} with zero point {z_out}: LiteRT's table values reach "
            f"{float(np.max(np.abs(values))):.4g}, past int32 (undefined in its C code)"
        )
    params = lut_populate(transform, s_in, z_in, s_out, z_out, x.dtype)
    return ctx.prepared("quantized_lookup", params, [x], x.shape, x.dtype)


@register("SOFTMAX", quantized=True)
def prepare_quantized_softmax(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, dtypes=QUANTIZED)
    if not x.shape:
        ctx.fail(f"input ({ctx.label(x)}) must have at least one dimension")
    out = _same_type_output(ctx, x)
    (s_in, _), (s_out, z_out) = per_tensor(ctx, x, "input"), per_tensor(ctx, out, "output")
    if x.dtype == INT8:
        if z_out != -128:
            ctx.fail(f"output ({ctx.label(out)}) must have zero point -128, got {z_out}")
        target = np.float32(1) / np.float32(256)
        if abs(np.float32(s_out) - target) > np.float32(0.001) * target:
            ctx.fail(f"output ({ctx.label(out)}) must have scale 1/256 (within 0.1%), got {s_out!r}")
    depth = x.shape[-1]
    if depth > MAX_SOFTMAX_DEPTH:
        ctx.fail(f"softmax over {depth} values: LiteRT's int32 sum of exponentials can overflow above "
                 f"{MAX_SOFTMAX_DEPTH} (undefined in its C code)")
    beta = float(ctx.options.beta)
    # PreprocessSoftmaxScaling: beta * s_in * 2**(31 - 5) in double, capped; its QuantizeMultiplierGreaterThanOne
    # aborts the process (TFLITE_CHECK) unless that exceeds 1.
    real = min(beta * s_in * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)), float(INT32_MAX))
    if not real > 1:
        ctx.fail(f"beta {beta!r} times the input scale {s_in!r} must exceed 2**-26 (LiteRT aborts otherwise)")
    multiplier, shift = quantize_multiplier(real)
    # CalculateInputRadius(5, shift): floor((2**5 - 1) * 2**26 / 2**shift).
    integer_bits = SCALED_DIFF_INTEGER_BITS
    radius = math.floor(((1 << integer_bits) - 1) * float(1 << (31 - integer_bits)) / 2.0**shift)
    params = QuantizedSoftmaxParams(multiplier, shift, -radius)
    return ctx.prepared("quantized_softmax", params, [x], x.shape, x.dtype)

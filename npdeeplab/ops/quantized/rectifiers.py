"""Prepare quantized RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, PRELU and HARD_SWISH (uint8, int8), as
activations.cc's ReluPrepare (with QuantizedReluX's clamp), LeakyReluPrepare, PreluPrepare and
HardSwishPrepare do.

LiteRT computes every real multiplier in float32 (its scales are floats) and quantizes it with
QuantizeMultiplier. It checks little else: input and output types equal (PRELU sets the output's),
PRELU's broadcast shape equal to the input's, HARD_SWISH's output multiplier below 1. Beyond
LiteRT, scales must be positive and finite and alpha finite, PRELU's alpha must have the input's
type (LiteRT reads its bytes as that type), and ops whose C code is undefined are refused: a
multiplier of 2**31 or more (MBQM shifts left by 32 or more), a clamp limit past int32, a
HARD_SWISH input scale past about 2.5e7 (a 16-bit left shift by 31 or more).
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.fixed_point import (
    down_scale_int32_to_int16_multiplier,
    quantize_multiplier,
    quantized_activation_range,
    round_half_away,
)
from npdeeplab.kernels.integer.rectifiers import HardSwishParams, LeakyReluParams, PreluParams, ReluParams
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.elementwise import prelu_output_shape
from npdeeplab.ops.quantized.common import ACTIVATION_LIMITS, QUANTIZED, per_tensor


def _unary(ctx: OpContext) -> tuple[TensorInfo, TensorInfo, tuple[float, int], tuple[float, int]]:
    """The 8-bit input, the output of its type, and their (scale, zero point)s."""
    ctx.expect_inputs(1)
    x = ctx.input(0, dtypes=QUANTIZED)
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(x.dtype,))
    return x, out, per_tensor(ctx, x, "input"), per_tensor(ctx, out, "output")


def _multiplier(ctx: OpContext, real: np.floating, what: str) -> tuple[int, int]:
    """QuantizeMultiplier of a float32 real multiplier, refusing one MBQM cannot apply in C."""
    if not np.isfinite(real):
        ctx.fail(f"the {what} multiplier overflows float32")
    multiplier, shift = quantize_multiplier(float(real))
    if shift > 31:  # MBQM computes x * (1 << shift)
        ctx.fail(f"the {what} multiplier {float(real):.6g} is 2**31 or more in magnitude; LiteRT's result is "
                 "undefined")
    return multiplier, shift


@register("RELU", "RELU6", "RELU_N1_TO_1", quantized=True)
def prepare_quantized_relu(ctx: OpContext) -> PreparedOp:
    x, out, (s_in, z_in), (s_out, z_out) = _unary(ctx)
    with np.errstate(over="ignore"):
        multiplier, shift = _multiplier(ctx, np.float32(s_in) / np.float32(s_out), "input-to-output")
    for limit in ACTIVATION_LIMITS[ctx.op.kind]:  # QuantizedReluX: static_cast<int32>(roundf(limit / s_out))
        with np.errstate(over="ignore"):
            steps = round_half_away(np.float32(limit) / np.float32(s_out))
        if not np.float32(-(2**31)) <= steps < np.float32(2**31):
            ctx.fail(f"the limit {limit} is {float(steps):.6g} steps of the output ({ctx.label(out)}) scale "
                     f"{s_out}, more than int32 holds")
    low, high = quantized_activation_range(ctx.op.kind, s_out, z_out, x.dtype)
    params = ReluParams(z_in, z_out, multiplier, shift, low, high)
    return ctx.prepared("quantized_relu_x", params, [x], x.shape, x.dtype)


@register("LEAKY_RELU", quantized=True)
def prepare_quantized_leaky_relu(ctx: OpContext) -> PreparedOp:
    x, _, (s_in, z_in), (s_out, z_out) = _unary(ctx)
    alpha = np.float32(getattr(ctx.options, "alpha", 0.0))  # no options table: LiteRT's alpha is 0
    if not np.isfinite(alpha):
        ctx.fail(f"alpha must be finite, got {float(alpha)}")
    with np.errstate(over="ignore", under="ignore"):
        alpha_multiplier = _multiplier(ctx, np.float32(s_in) * alpha / np.float32(s_out), "alpha")
        identity_multiplier = _multiplier(ctx, np.float32(s_in) / np.float32(s_out), "identity")
    params = LeakyReluParams(z_in, z_out, *alpha_multiplier, *identity_multiplier)
    return ctx.prepared("quantized_leaky_relu", params, [x], x.shape, x.dtype)


@register("PRELU", quantized=True)
def prepare_quantized_prelu(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=QUANTIZED)
    alpha = ctx.input(1, dtypes=(x.dtype,))
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(x.dtype,))
    prelu_output_shape(ctx, x, alpha)
    (s_in, z_in), (s_alpha, z_alpha) = per_tensor(ctx, x, "input"), per_tensor(ctx, alpha, "alpha")
    s_out, z_out = per_tensor(ctx, out, "output")
    with np.errstate(over="ignore", under="ignore"):
        positive = _multiplier(ctx, np.float32(s_in) / np.float32(s_out), "input-to-output")
        negative = _multiplier(ctx, np.float32(s_in) * np.float32(s_alpha) / np.float32(s_out), "alpha")
    params = PreluParams(-z_in, -z_alpha, z_out, *positive, *negative)
    return ctx.prepared("quantized_prelu", params, [x, alpha], x.shape, x.dtype)


RELUISH_SCALE = np.float32(3) / np.float32(32768)  # 3.0 is 32768 on the reluish scale
MAX_RELUISH_EXPONENT = 31  # SaturatingLeftShift(v, exponent - 1) computes 1 << (exponent - 1)


@register("HARD_SWISH", quantized=True)
def prepare_quantized_hard_swish(ctx: OpContext) -> PreparedOp:
    x, out, (s_in, z_in), (s_out, z_out) = _unary(ctx)
    with np.errstate(over="ignore", under="ignore"):
        hires_input_scale = np.float32(1 / 128) * np.float32(s_in)
        output_real = hires_input_scale / np.float32(s_out)
        reluish_real = hires_input_scale / RELUISH_SCALE
    if not output_real < 1:  # also catches an overflow to inf
        ctx.fail(f"input scale {s_in} / (128 x output scale {s_out}) = {float(output_real):.6g} must be below 1 "
                 f"(LiteRT requires an output multiplier exponent <= 0)")
    output_multiplier, output_exponent = quantize_multiplier(float(output_real))
    if output_exponent > 0:  # rounded up to exactly 1
        ctx.fail(f"input scale {s_in} / (128 x output scale {s_out}) rounds to 1; LiteRT requires less")
    reluish_multiplier, reluish_exponent = 0, MAX_RELUISH_EXPONENT + 1  # an overflow to inf: refused
    if np.isfinite(reluish_real):
        reluish_multiplier, reluish_exponent = quantize_multiplier(float(reluish_real))
    if reluish_exponent > MAX_RELUISH_EXPONENT:
        ctx.fail(f"input scale {s_in} is too large: the reluish multiplier {float(reluish_real):.6g} needs a "
                 f"16-bit left shift by {reluish_exponent - 1} (undefined in LiteRT's C code)")
    params = HardSwishParams(
        z_in, z_out, down_scale_int32_to_int16_multiplier(reluish_multiplier), reluish_exponent,
        down_scale_int32_to_int16_multiplier(output_multiplier), output_exponent,
    )
    return ctx.prepared("quantized_hard_swish", params, [x], x.shape, x.dtype)

"""Prepare quantized ADD, SUB and MUL (uint8, int8, per tensor): add.cc, sub.cc and mul.cc's Prepare.

ADD/SUB: with L = 20, tw = 2 * max(s1, s2) (float32), m1 = s1 / tw, m2 = s2 / tw and
mo = tw / (2**L * s_out) (2**L * s_out in float32, the divisions in double), each through
QuantizeMultiplier. MUL: QuantizeMultiplier(s1 * s2 / s_out), evaluated in float32.
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.fixed_point import quantize_multiplier
from npdeeplab.kernels.integer.elementwise import AddSubParams, MulParams
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.elementwise import MAX_BROADCAST_RANK
from npdeeplab.ops.quantized.common import QUANTIZED, activation_bounds, per_tensor

LEFT_SHIFT = 20  # add.cc / sub.cc, 8-bit types


@register("ADD", "SUB", quantized=True)
def prepare_add_sub(ctx: OpContext) -> PreparedOp:
    a, b, out, shape = _binary_operands(ctx)
    (s1, z1), (s2, z2) = per_tensor(ctx, a, "input 0"), per_tensor(ctx, b, "input 1")
    s_out, z_out = per_tensor(ctx, out, "output")
    with np.errstate(over="ignore"):  # float32 products, as in add.cc; an overflow is refused below
        twice_max = float(np.float32(2) * np.float32(max(s1, s2)))
        scaled_output = float(np.float32(1 << LEFT_SHIFT) * np.float32(s_out))
    real_output = twice_max / scaled_output if scaled_output else np.inf
    if not 0 < real_output < 1:
        # LiteRT's QuantizeMultiplierSmallerThanOneExp aborts outside (0, 1) (checked for ADD); SUB
        # quantizes a multiplier over 1 with a positive shift, which its kernel hands to
        # RoundingDivideByPOT as a negative exponent: undefined behaviour (x86 gives the zero
        # point +- 1 whatever the inputs, checked).
        undefined = ctx.op.kind == "SUB" and 1 < real_output < np.inf
        consequence = "LiteRT's result is undefined" if undefined else "LiteRT aborts"
        ctx.fail(
            f"output ({ctx.label(out)}) scale {s_out} does not fit the input scales {s1} and {s2}: the output "
            f"multiplier 2*max(s1, s2) / (2**{LEFT_SHIFT} * s_out) = {real_output:.6g} must lie strictly between "
            f"0 and 1 ({consequence} otherwise)"
        )
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(real_output)
    low, high = activation_bounds(ctx, out)
    params = AddSubParams(LEFT_SHIFT, -z1, m1, sh1, -z2, m2, sh2, z_out, mo, sho, low, high)
    return ctx.prepared(f"quantized_{ctx.op.kind.lower()}", params, [a, b], shape, a.dtype)


@register("MUL", quantized=True)
def prepare_mul(ctx: OpContext) -> PreparedOp:
    a, b, out, shape = _binary_operands(ctx)
    (s1, z1), (s2, z2) = per_tensor(ctx, a, "input 0"), per_tensor(ctx, b, "input 1")
    s_out, z_out = per_tensor(ctx, out, "output")
    with np.errstate(over="ignore", under="ignore"):
        real = float(np.float32(s1) * np.float32(s2) / np.float32(s_out))  # float arithmetic in mul.cc
    if not np.isfinite(real):
        ctx.fail(f"the multiplier s1 * s2 / s_out = {s1} * {s2} / {s_out} overflows float32")
    multiplier, shift = quantize_multiplier(real)
    if shift > 31:
        # MultiplyByQuantizedMultiplier computes x * (1 << shift): undefined from 32 on.
        ctx.fail(
            f"the multiplier s1 * s2 / s_out = {s1} * {s2} / {s_out} = {real:.6g} is 2**31 or more; LiteRT's "
            "result is undefined"
        )
    low, high = activation_bounds(ctx, out)
    params = MulParams(-z1, -z2, z_out, multiplier, shift, low, high)
    return ctx.prepared("quantized_mul", params, [a, b], shape, a.dtype)


def _binary_operands(ctx: OpContext) -> tuple[TensorInfo, TensorInfo, TensorInfo, tuple[int, ...]]:
    """The two inputs (same 8-bit type), the output (that type too) and the broadcast shape."""
    ctx.expect_inputs(2)
    a = ctx.input(0, dtypes=QUANTIZED)
    b = ctx.input(1, dtypes=(a.dtype,))
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(a.dtype,))
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        ctx.fail(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast")
    rank = len(shape)
    extended = [(1,) * (rank - len(t.shape)) + tuple(t.shape) for t in (a, b)]
    if extended[0] != extended[1] and rank > MAX_BROADCAST_RANK:
        ctx.fail(f"broadcasting supports rank up to {MAX_BROADCAST_RANK}, got rank {rank}")
    return a, b, out, shape

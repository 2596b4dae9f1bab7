"""Prepare quantized MEAN (uint8, int8): reduce.cc's PrepareMeanOrSum, with the 1/N folding that
reference_ops::QuantizedMeanOrSum does per call done here once.

(M, sh) = QuantizeMultiplier(s_in / s_out) in double; k = min(floor(log2 N), 32, 31 + sh);
M' = (M << k) // N, sh' = sh - k.
"""

from __future__ import annotations

import math

import numpy as np

from npdeeplab.kernels.fixed_point import quantize_multiplier
from npdeeplab.kernels.integer.reduce import QuantizedMeanParams
from npdeeplab.ops.base import OpContext, PreparedOp, normalize_axis, register
from npdeeplab.ops.quantized.common import INT32, QUANTIZED, per_tensor


@register("MEAN", quantized=True)
def prepare_quantized_mean(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=QUANTIZED)
    ctx.input(1, dtypes=(INT32,), constant=True)  # reduce.cc: the axis tensor must be int32
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(x.dtype,))
    (s_in, z_in), (s_out, z_out) = per_tensor(ctx, x, "input"), per_tensor(ctx, out, "output")
    rank = len(x.shape)
    axes = tuple(sorted({normalize_axis(ctx, a, rank) for a in ctx.constant_ints(1)}))
    keep_dims = bool(ctx.options.keep_dims) if ctx.options is not None else False
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep_dims or i not in axes)
    count = math.prod(x.shape[a] for a in axes)
    multiplier, shift = quantize_multiplier(float(np.float64(s_in) / np.float64(s_out)))
    if count > 0:  # empty inputs are refused before this; kept total for the arithmetic's sake
        k = min(count.bit_length() - 1, 32, 31 + shift)
        multiplier, shift = (multiplier << k) // count, shift - k
    if shift > 31:
        # MultiplyByQuantizedMultiplier computes x * (1 << shift): undefined from 32 on.
        ctx.fail(
            f"the input scale {s_in} is 2**31 or more times the output's ({ctx.label(out)}) {s_out}; LiteRT's "
            "result is undefined"
        )
    params = QuantizedMeanParams(axes, keep_dims, count, z_in, multiplier, shift, z_out)
    return ctx.prepared("quantized_mean", params, [x], shape, x.dtype)

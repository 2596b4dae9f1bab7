"""Prepare MEAN, ARG_MAX and ARG_MIN."""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.reduce import ArgParams, ReduceParams
from npdeeplab.ops.base import FLOAT32, OpContext, PreparedOp, normalize_axis, register

ARG_INPUT_DTYPES = (FLOAT32, np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8), np.dtype(np.int8))
ARG_OUTPUT_DTYPES = {"INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64)}


@register("MEAN")
def prepare_mean(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0)
    ctx.input(1, dtypes=(np.dtype(np.int32),), constant=True)  # LiteRT refuses int64 axes for MEAN
    axes = sorted({normalize_axis(ctx, a, len(x.shape)) for a in ctx.constant_ints(1)})
    keep_dims = bool(ctx.options.keep_dims) if ctx.options is not None else False
    shape = tuple(
        1 if i in axes else d for i, d in enumerate(x.shape) if keep_dims or i not in axes
    )
    return ctx.prepared("mean", ReduceParams(tuple(axes), keep_dims), [x], shape, x.dtype)


@register("ARG_MAX", "ARG_MIN")
def prepare_arg(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=ARG_INPUT_DTYPES)
    axes = ctx.constant_ints(1)
    if len(axes) != 1:
        ctx.fail(f"axis must hold exactly one value, got {len(axes)}")
    axis = normalize_axis(ctx, axes[0], len(x.shape))
    if x.shape[axis] == 0:
        ctx.fail(f"cannot take {ctx.op.kind} over an empty axis {axis}")
    type_name = ctx.options.output_type if ctx.options is not None else "INT64"
    if type_name not in ARG_OUTPUT_DTYPES:
        ctx.fail(f"output_type must be INT32 or INT64, got {type_name}")
    dtype = ARG_OUTPUT_DTYPES[type_name]
    shape = x.shape[:axis] + x.shape[axis + 1 :]
    return ctx.prepared(ctx.op.kind.lower(), ArgParams(axis, dtype), [x], shape, dtype)

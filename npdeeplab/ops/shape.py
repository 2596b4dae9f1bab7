"""Prepare the data-movement ops. All index arithmetic happens here; the kernels only apply it."""

from __future__ import annotations

from typing import Any

import numpy as np

from npdeeplab.kernels.shape import ConcatParams, PadParams, ReshapeParams, SliceParams, TileParams, TransposeParams
from npdeeplab.ops.base import OpContext, PreparedOp, normalize_axis, register


@register("RESHAPE")
def prepare_reshape(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1, 2)
    x = ctx.input(0, dtypes=None)
    shape_input = ctx.optional_input(1, dtypes=None)
    if shape_input is not None and len(shape_input.shape) == 1:
        requested = ctx.constant_ints(1)
    else:
        requested = tuple(ctx.options.new_shape) if ctx.options is not None else ()
    shape = _infer_shape(ctx, x.size, requested)
    return ctx.prepared("reshape", ReshapeParams(shape), [x], shape, x.dtype)


def _infer_shape(ctx: OpContext, size: int, requested: tuple[int, ...]) -> tuple[int, ...]:
    unknown = [i for i, d in enumerate(requested) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in requested):
        ctx.fail(f"new shape {list(requested)} may hold at most one -1 and no other negative value")
    known = int(np.prod([d for d in requested if d != -1], dtype=np.int64))
    shape = list(requested)
    if unknown:
        if known == 0 or size % known:
            ctx.fail(f"cannot reshape {size} elements into {list(requested)}")
        shape[unknown[0]] = size // known
    if int(np.prod(shape, dtype=np.int64)) != size:
        ctx.fail(f"cannot reshape {size} elements into {list(requested)}")
    return tuple(shape)


@register("SQUEEZE")
def prepare_squeeze(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, dtypes=None)
    dims = ctx.options.squeeze_dims if ctx.options is not None else ()
    axes = {normalize_axis(ctx, d, len(x.shape), "squeeze dim") for d in dims}
    if not axes:
        axes = {i for i, d in enumerate(x.shape) if d == 1}
    for axis in axes:
        if x.shape[axis] != 1:
            ctx.fail(f"cannot squeeze dimension {axis} of size {x.shape[axis]} in shape {list(x.shape)}")
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return ctx.prepared("reshape", ReshapeParams(shape), [x], shape, x.dtype)


@register("EXPAND_DIMS")
def prepare_expand_dims(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=None)
    axes = ctx.constant_ints(1)
    if len(axes) != 1:
        ctx.fail(f"axis must hold exactly one value, got {len(axes)}")
    axis = normalize_axis(ctx, axes[0], len(x.shape) + 1)
    shape = x.shape[:axis] + (1,) + x.shape[axis:]
    return ctx.prepared("reshape", ReshapeParams(shape), [x], shape, x.dtype)


@register("CONCATENATION")
def prepare_concatenation(ctx: OpContext) -> PreparedOp:
    if not ctx.op.inputs:
        ctx.fail("expected at least 1 input, got 0")
    first = ctx.input(0, dtypes=None)
    rank = len(first.shape)
    axis = normalize_axis(ctx, ctx.options.axis, rank)
    inputs = [ctx.input(i, rank=rank, dtypes=(first.dtype,)) for i in range(len(ctx.op.inputs))]
    for position, tensor in enumerate(inputs):
        others = [d for i, d in enumerate(tensor.shape) if i != axis]
        expected = [d for i, d in enumerate(first.shape) if i != axis]
        if others != expected:
            ctx.fail(
                f"input {position} ({ctx.label(tensor)}) has shape {list(tensor.shape)}, which does not match "
                f"input 0's {list(first.shape)} outside axis {axis}"
            )
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in inputs)
    return ctx.prepared("concatenation", ConcatParams(axis), inputs, tuple(shape), first.dtype)


@register("PAD")
def prepare_pad(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=None)
    values = ctx.constant_ints(1)
    rank = len(x.shape)
    if len(values) != 2 * rank or ctx.tensors[ctx.op.inputs[1]].shape[0] != rank:
        ctx.fail(f"paddings must have shape [{rank}, 2] for a rank-{rank} input")
    paddings = tuple((values[2 * i], values[2 * i + 1]) for i in range(rank))
    if any(v < 0 for v in values):
        ctx.fail(f"paddings must not be negative, got {[list(p) for p in paddings]}")
    value: Any = 0
    if x.quantization is not None and x.dtype.kind in "iu":
        value = int(x.quantization.zero_point[0])
    shape = tuple(d + before + after for d, (before, after) in zip(x.shape, paddings, strict=True))
    return ctx.prepared("pad", PadParams(paddings, value), [x], shape, x.dtype)


@register("SLICE")
def prepare_slice(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(3)
    x = ctx.input(0, dtypes=None)
    begin, size = ctx.constant_ints(1), ctx.constant_ints(2)
    rank = len(x.shape)
    if len(begin) != rank or len(size) != rank:
        ctx.fail(f"begin and size must hold {rank} values, got {len(begin)} and {len(size)}")
    index = []
    for axis, (start, length, dim) in enumerate(zip(begin, size, x.shape, strict=True)):
        stop = dim if length == -1 else start + length
        if not (0 <= start <= dim and start <= stop <= dim):
            ctx.fail(f"slice [{start}, {stop}) along axis {axis} is outside its size {dim}")
        index.append(slice(start, stop))
    return _prepared_index(ctx, x, tuple(index))


@register("STRIDED_SLICE")
def prepare_strided_slice(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(4)
    x = ctx.input(0, dtypes=None)
    begin, end, strides = ctx.constant_ints(1), ctx.constant_ints(2), ctx.constant_ints(3)
    if not len(begin) == len(end) == len(strides):
        ctx.fail(f"begin, end and strides must have equal lengths, got {len(begin)}, {len(end)}, {len(strides)}")
    if 0 in strides:
        ctx.fail("strides must not be 0")
    o = ctx.options
    index: list[Any] = []
    for i, (start, stop, step) in enumerate(zip(begin, end, strides, strict=True)):
        bit = 1 << i
        if o.ellipsis_mask & bit:
            index.append(Ellipsis)
        elif o.new_axis_mask & bit:
            index.append(None)
        elif o.shrink_axis_mask & bit:
            index.append(start)
        else:
            stop = start + stop if o.offset else stop
            index.append(slice(None if o.begin_mask & bit else start, None if o.end_mask & bit else stop, step))
    return _prepared_index(ctx, x, tuple(index))


def _prepared_index(ctx: OpContext, x: Any, index: tuple[Any, ...]) -> PreparedOp:
    """Work out the result shape by indexing a zero-size-in-memory stand-in of the input."""
    try:
        shape = np.broadcast_to(np.zeros((), x.dtype), x.shape)[index].shape
    except IndexError as error:
        ctx.fail(f"cannot slice shape {list(x.shape)}: {error}")
    return ctx.prepared("slice", SliceParams(index), [x], shape, x.dtype)


@register("TILE")
def prepare_tile(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=None)
    multiples = ctx.constant_ints(1)
    if len(multiples) != len(x.shape) or any(m < 0 for m in multiples):
        ctx.fail(f"multiples must be {len(x.shape)} non-negative values, got {list(multiples)}")
    shape = tuple(d * m for d, m in zip(x.shape, multiples, strict=True))
    return ctx.prepared("tile", TileParams(multiples), [x], shape, x.dtype)


@register("TRANSPOSE")
def prepare_transpose(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2)
    x = ctx.input(0, dtypes=None)
    perm = tuple(normalize_axis(ctx, p, len(x.shape), "permutation entry") for p in ctx.constant_ints(1))
    if sorted(perm) != list(range(len(x.shape))):
        ctx.fail(f"permutation {list(perm)} is not a permutation of the {len(x.shape)} axes")
    shape = tuple(x.shape[p] for p in perm)
    return ctx.prepared("transpose", TransposeParams(perm), [x], shape, x.dtype)

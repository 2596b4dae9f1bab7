"""Prepare the data-movement ops. All index arithmetic happens here; the kernels only apply it."""

from __future__ import annotations

import math
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
    known = math.prod(d for d in requested if d != -1)
    shape = list(requested)
    if unknown:
        if known == 0 or size % known:
            ctx.fail(f"cannot reshape {size} elements into {list(requested)}")
        shape[unknown[0]] = size // known
    if math.prod(shape) != size:
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
    if ctx.options.fused_activation_function != "NONE":  # LiteRT refuses these in Prepare
        ctx.fail(f"a fused activation ({ctx.options.fused_activation_function}) is not allowed on CONCATENATION")
    output_quantization = ctx.output(0).quantization
    for position, tensor in enumerate(inputs):
        if first.dtype in (np.uint8, np.int8) and not _same_quantization(tensor.quantization, output_quantization):
            ctx.fail(
                f"input {position} ({ctx.label(tensor)}) is quantized differently from the output; "
                "npdeeplab does not requantize"
            )
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


def _same_quantization(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point)


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
    output_quantization = ctx.output(0).quantization  # LiteRT pads with the output's zero point
    if output_quantization is not None and x.dtype.kind in "iu":
        value = int(output_quantization.zero_point[0])
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
    """LiteRT's STRIDED_SLICE (kernels/strided_slice.cc), which is not NumPy slicing at the edges.

    A begin outside the axis is clamped, also on shrink axes (-7 on a size-5 axis reads index 0);
    begin_mask applies to shrink axes too; with `offset`, end counts from the clamped begin; spec
    entries beyond the input's rank are ignored. Slices whose output LiteRT leaves partly
    unwritten (a shrink axis with a negative stride or a begin past the axis, an offset end past
    the axis) are rejected.
    """
    ctx.expect_inputs(4)
    x = ctx.input(0, dtypes=None)
    begin, end, strides = ctx.constant_ints(1), ctx.constant_ints(2), ctx.constant_ints(3)
    if not len(begin) == len(end) == len(strides):
        ctx.fail(f"begin, end and strides must have equal lengths, got {len(begin)}, {len(end)}, {len(strides)}")
    if 0 in strides:
        ctx.fail("strides must not be 0")
    o = ctx.options
    if bin(o.ellipsis_mask & (2 ** len(begin) - 1)).count("1") > 1:
        ctx.fail(f"ellipsis_mask {o.ellipsis_mask} marks more than one ellipsis")
    axes = _strided_slice_axes(o, len(x.shape), len(begin))
    if sum(entry != "new" for entry in axes) > len(x.shape):
        ctx.fail(f"the slice's masks address more axes than the input's {len(x.shape)} (shape {list(x.shape)})")
    sizes = iter(x.shape)
    index: list[Any] = []
    kept, unwritten = [], ""
    for axis, entry in enumerate(axes):
        size = 1 if entry == "new" else next(sizes)
        if isinstance(entry, str):  # a new axis, or one the spec leaves whole: LiteRT takes [0, size)
            start, stop, step, shrink = 0, size, 1, False
        else:
            bit, step = 1 << entry, strides[entry]
            shrink = bool(o.shrink_axis_mask & bit)
            start = _clamped(begin[entry], size, step, 0 if step > 0 else size - 1, bool(o.begin_mask & bit))
            if shrink:
                stop = start if start >= size else start + 1
            else:
                stop = end[entry] + start if o.offset else end[entry]
                stop = _clamped(stop, size, step, size if step > 0 else -1, bool(o.end_mask & bit))
        taken = len(range(start, stop, step))
        if shrink and taken == 0:
            unwritten = unwritten or f"shrink axis {axis} (size {size}) selects nothing"
        elif not shrink and o.offset and taken != _offset_length(end, axis, step):
            ctx.fail(f"LiteRT's output shape for this offset slice does not follow the slice (axis {axis})")
        if not shrink:
            kept.append(taken)
        if entry == "new":
            index.append(None)
        elif shrink:
            index.append(min(max(start, 0), size - 1))  # out of range only when the output is empty
        else:
            index.append(slice(start, stop if stop >= 0 else None, step) if taken else slice(0, 0))
    if unwritten and 0 not in kept:
        ctx.fail(f"LiteRT leaves the output of this slice unwritten: {unwritten}")
    return _prepared_index(ctx, x, tuple(index))


def _strided_slice_axes(o: Any, rank: int, count: int) -> list[int | str]:
    """LiteRT's effective axes (the input's, plus new ones): a spec index, "new" or "full" for each.

    The ellipsis covers the axes no other spec entry names; axes after the spec are "full".
    """
    added = sum(1 for j in range(count) if o.new_axis_mask >> j & 1 and not o.ellipsis_mask >> j & 1)
    dims = rank + added
    axes: list[int | str] = []
    j = 0
    while len(axes) < dims:
        if j < count and o.ellipsis_mask >> j & 1:
            axes += ["full"] * max(1, min(1 + added + rank - count, dims - len(axes)))
        else:
            axes.append(("new" if o.new_axis_mask >> j & 1 else j) if j < count else "full")
        j += 1
    return axes


def _clamped(value: int, size: int, step: int, masked_value: int, masked: bool) -> int:
    """A begin or end as LiteRT resolves it: negative counts from the end, then clamped."""
    if masked:
        return masked_value
    value = value + size if value < 0 else value
    return min(max(value, 0), size) if step > 0 else min(max(value, -1), size - 1)


def _offset_length(end: tuple[int, ...], axis: int, step: int) -> int:
    """The length LiteRT declares for an offset slice: end[axis] / stride (its effective axis index)."""
    if axis >= len(end):
        return -1  # LiteRT would read past the end tensor
    length = end[axis]
    if (length < 0) != (step < 0):
        return 0
    if step < 0:
        return int((length + 1) / step) + 1  # C division: truncates toward zero
    return 0 if length == 0 else (length - 1) // step + 1


def _prepared_index(ctx: OpContext, x: Any, index: tuple[Any, ...]) -> PreparedOp:
    """The result shape of x[index], worked out from the shape alone (slices, ints, None)."""
    shape: list[int] = []
    sizes = iter(x.shape)
    for entry in index:
        if entry is None:
            shape.append(1)
            continue
        size = next(sizes, None)
        if size is None:
            ctx.fail(f"the slice addresses more axes than the input's {len(x.shape)} (shape {list(x.shape)})")
        if isinstance(entry, slice):
            shape.append(len(range(*entry.indices(size))))
        elif not -size <= entry < size:
            ctx.fail(f"index {entry} is out of range for an axis of size {size}")
    shape.extend(sizes)  # axes the index does not name are kept whole
    return ctx.prepared("slice", SliceParams(index), [x], tuple(shape), x.dtype)


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

"""Prepare a whole subgraph: find unsupported ops, then check and shape every op in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from npdeeplab.errors import ModelError
from npdeeplab.model.ir import OpNode, Subgraph, TensorInfo
from npdeeplab.model.options import OPTIONS_FOR_KIND, OPTIONS_REQUIRED
from npdeeplab.ops import PREPARERS, SUPPORTED_OPS, OpContext, PreparedOp


def check_supported(graph: Subgraph) -> None:
    """One ModelError listing every unsupported op kind with the indices of its ops."""
    missing: dict[str, list[int]] = {}
    for op in graph.ops:
        if op.kind not in PREPARERS:
            missing.setdefault(op.kind, []).append(op.index)
    if missing:
        listed = "; ".join(
            f"{kind} (op{'s' if len(ops) > 1 else ''} {', '.join(map(str, ops))})" for kind, ops in missing.items()
        )
        raise ModelError(
            f"the model uses {len(missing)} op kind{'s' if len(missing) > 1 else ''} npdeeplab does not support: "
            f"{listed}. Supported: {', '.join(SUPPORTED_OPS)}"
        )


def prepare_graph(
    graph: Subgraph, input_shapes: Mapping[int, tuple[int, ...]] | None = None
) -> tuple[list[PreparedOp], list[TensorInfo]]:
    """Prepare every op in execution order.

    Returns the prepared ops and the tensors with their shapes as they will be at run time. With
    no resized inputs, each inferred output shape must equal the declared one (dynamic
    dimensions, -1 in the shape signature, excepted); after a resize the inferred shapes win.
    """
    check_supported(graph)
    input_shapes = dict(input_shapes or {})
    tensors = list(graph.tensors)
    for index, shape in input_shapes.items():
        tensors[index] = dataclasses.replace(tensors[index], shape=tuple(shape))
    resized = any(graph.tensors[i].shape != tuple(s) for i, s in input_shapes.items())
    ready = {t.index for t in tensors if t.is_constant} | set(graph.inputs)
    prepared = []
    for op in graph.ops:
        _check_inputs_ready(op, tensors, ready)
        step = PREPARERS[op.kind](OpContext(with_options(op), tensors))
        if len(step.output_shapes) != len(op.outputs):
            raise ModelError(f"{op.describe()}: expected {len(step.output_shapes)} outputs, got {len(op.outputs)}")
        for position, (index, shape, dtype) in enumerate(
            zip(op.outputs, step.output_shapes, step.output_dtypes, strict=True)
        ):
            declared = tensors[index]
            where = f"{op.describe()}: output {position} (tensor {index} {declared.name!r})"
            if declared.dtype != dtype:
                raise ModelError(f"{where} is declared {declared.dtype.name}, but the op produces {dtype.name}")
            if not resized and not _shape_matches(declared, shape):
                raise ModelError(
                    f"{where} is declared with shape {list(declared.shape)}, but the op produces {list(shape)}"
                )
            tensors[index] = dataclasses.replace(declared, shape=tuple(shape))
            ready.add(index)
        prepared.append(step)
    for index in graph.outputs:
        if index not in ready:
            raise ModelError(f"graph output tensor {index} {tensors[index].name!r} is not computed by any op")
    return prepared, tensors


def with_options(op: OpNode) -> OpNode:
    """The op with the options table its kind needs: defaults where the file has none and they
    make a valid op (as LiteRT's parser does), a ModelError where they do not or the table is
    another kind's."""
    expected = OPTIONS_FOR_KIND.get(op.kind)
    if expected is None or isinstance(op.options, expected):
        return op
    if op.options is None and op.kind not in OPTIONS_REQUIRED:
        return dataclasses.replace(op, options=expected())
    got = "no options table" if op.options is None else f"a {type(op.options).__name__} table"
    raise ModelError(f"{op.describe()}: expected {expected.__name__}, the file has {got}")


def _check_inputs_ready(op: OpNode, tensors: list[TensorInfo], ready: set[int]) -> None:
    for position, index in enumerate(op.inputs):
        if index != -1 and index not in ready:
            raise ModelError(
                f"{op.describe()}: input {position} (tensor {index} {tensors[index].name!r}) is neither a constant, "
                "a graph input, nor the output of an earlier op"
            )


def _shape_matches(declared: TensorInfo, shape: tuple[int, ...]) -> bool:
    if len(declared.shape) != len(shape):
        return False
    signature = declared.shape_signature if len(declared.shape_signature) == len(shape) else declared.shape
    return all(s == -1 or d == got for d, s, got in zip(declared.shape, signature, shape, strict=True))

"""Small edits of the IR for the structure mutations: a graph, tensor or op replaced with changes,
a tensor or op picked at random, tensor indices worth trying, activations made dynamic."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from npdeeplab.model.ir import Model, OpNode, TensorInfo

from .helpers import pick


def replace_graph(model: Model, **changes: Any) -> Model:
    return dataclasses.replace(model, subgraphs=(dataclasses.replace(model.main, **changes), *model.subgraphs[1:]))


def replace_tensor(model: Model, index: int, **changes: Any) -> Model:
    tensors = list(model.main.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return replace_graph(model, tensors=tuple(tensors))


def replace_op(model: Model, position: int, **changes: Any) -> Model:
    ops = list(model.main.ops)
    ops[position] = dataclasses.replace(ops[position], **changes)
    return replace_graph(model, ops=tuple(ops))


def tensor_label(tensor: TensorInfo) -> str:
    return f"tensor {tensor.index} {tensor.name[:40]!r} {list(tensor.shape)} {tensor.dtype.name}"


def pick_tensor(rng: np.random.Generator, model: Model, constant: bool | None = None) -> TensorInfo | None:
    tensors = [t for t in model.main.tensors if constant is None or t.is_constant == constant]
    return pick(rng, tensors) if tensors else None


def pick_op(rng: np.random.Generator, model: Model) -> tuple[int, OpNode] | None:
    if not model.main.ops:
        return None
    position = int(rng.integers(len(model.main.ops)))
    return position, model.main.ops[position]


def any_tensor_index(rng: np.random.Generator, model: Model) -> int:
    """A tensor index: usually a real one (a constant, a graph input, anything), sometimes out of range."""
    graph = model.main
    count = len(graph.tensors)
    constants = [t.index for t in graph.tensors if t.is_constant]
    choices = [int(rng.integers(count))] * 4 + list(graph.inputs[:1]) * 2 + constants[:1] * 2
    choices += [-1, count, count + 7, 2**31 - 1, -2]
    return pick(rng, choices)


def input_dims(model: Model) -> list[int]:
    """The first graph input's dimensions and their neighbours: values an index constant may meet."""
    inputs = graph_inputs(model)
    return [d + k for d in inputs[0].shape for k in (-1, 0, 1)] if inputs else []


def graph_inputs(model: Model) -> list[TensorInfo]:
    """The graph inputs that are real tensors (a mutation may have put an index out of range)."""
    tensors = model.main.tensors
    return [tensors[i] for i in model.main.inputs if 0 <= i < len(tensors)]


def dynamic_signatures(model: Model) -> Model:
    """Every activation's dimensions marked dynamic (-1): prepare then keeps the shapes it infers."""
    keep = {t.index for t in model.main.tensors if t.is_constant} | set(model.main.inputs)
    tensors = tuple(
        t if t.index in keep else dataclasses.replace(t, shape_signature=(-1,) * len(t.shape))
        for t in model.main.tensors
    )
    return replace_graph(model, tensors=tensors)

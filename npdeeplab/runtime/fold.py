"""Work done once at load instead of at every invoke: the DEQUANTIZE of constant float16 weights
(GPU models store their weights as float16 and widen them in the graph)."""

from __future__ import annotations

import dataclasses

import numpy as np

from npdeeplab.model.ir import OpNode, Subgraph, TensorInfo


def fold_float16_weights(graph: Subgraph) -> tuple[Subgraph, tuple[int, ...]]:
    """The graph with each DEQUANTIZE of a constant float16 tensor done: its output becomes a
    float32 constant (an exact widening, as LiteRT's kernel does) and the op leaves the graph.
    Returns the graph and the indices of the ops folded away."""
    tensors = list(graph.tensors)
    folded = []
    for op in graph.ops:
        if is_float16_weight_dequantize(op, tensors):
            source, target = tensors[op.inputs[0]], tensors[op.outputs[0]]
            widened = source.data.astype(np.float32)
            widened.flags.writeable = False
            tensors[target.index] = dataclasses.replace(target, data=widened)
            folded.append(op.index)
    if not folded:
        return graph, ()
    kept = tuple(op for op in graph.ops if op.index not in folded)
    return dataclasses.replace(graph, tensors=tuple(tensors), ops=kept), tuple(folded)


def is_float16_weight_dequantize(op: OpNode, tensors: list[TensorInfo]) -> bool:
    if op.kind != "DEQUANTIZE" or len(op.inputs) != 1 or len(op.outputs) != 1 or op.inputs[0] == -1:
        return False
    source, target = tensors[op.inputs[0]], tensors[op.outputs[0]]
    return (
        source.is_constant and source.dtype == np.float16 and target.dtype == np.float32
        and not target.is_constant and source.shape == target.shape
    )

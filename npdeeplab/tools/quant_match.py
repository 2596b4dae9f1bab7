"""Which op of a quantized model is which op of its float original (for quant_diff).

By output tensor name first; then by graph position: an op of the same kind whose activation
inputs are the partners of the quantized op's, else the float op at the same place among the ops
of that kind ("op order": one unmatched layer does not lose every layer after it). Either way the
kind, the options (strides, dilations, fused activation) and the output shape must agree, and so
must the constant operands (weights, biases): the same shapes, and dequantized within cosine
MIN_WEIGHT_COSINE of the float ones, so that two different networks with layers of the same
shapes are not taken for a pair. The QUANTIZE and DEQUANTIZE ops a converter inserts pass their
input's partner on and are not layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import PreparedOp
from npdeeplab.runtime.interpreter import Interpreter

BOUNDARY_KINDS = frozenset({"QUANTIZE", "DEQUANTIZE"})
MIN_WEIGHT_COSINE = 0.9  # dequantized weights this close to the float ones: the same layer


@dataclass(frozen=True)
class Match:
    quant_op: int  # positions in Interpreter.ops
    float_op: int
    how: str


@dataclass
class Matching:
    matches: list[Match]
    partner: dict[int, int]  # quantized tensor index -> float tensor index
    unmatched: list[str]


def activation_inputs(step: PreparedOp, tensors: tuple[TensorInfo, ...]) -> tuple[int, ...]:
    return tuple(t for t in step.op.inputs if t != -1 and not tensors[t].is_constant)


@dataclass(frozen=True)
class _FloatIndex:
    """The float model's ops, looked up by output name, by (kind, activation inputs) and by kind."""

    steps: tuple[PreparedOp, ...]
    tensors: tuple[TensorInfo, ...]
    by_name: dict[str, int]
    by_inputs: dict[tuple[str, tuple[int, ...]], list[int]]
    by_kind: dict[str, list[int]]

    @classmethod
    def of(cls, side: Interpreter) -> _FloatIndex:
        steps, tensors = side.ops, side.tensors
        names: dict[str, list[int]] = {}
        by_inputs: dict[tuple[str, tuple[int, ...]], list[int]] = {}
        by_kind: dict[str, list[int]] = {}
        for position, step in enumerate(steps):
            names.setdefault(tensors[step.op.outputs[0]].name, []).append(position)
            by_inputs.setdefault((step.op.kind, activation_inputs(step, tensors)), []).append(position)
            by_kind.setdefault(step.op.kind, []).append(position)
        by_name = {name: found[0] for name, found in names.items() if name and len(found) == 1}
        return cls(steps, tensors, by_name, by_inputs, by_kind)


def match_ops(float_side: Interpreter, quant_side: Interpreter) -> Matching:
    """Pair the quantized model's ops with the float model's: by name, then by graph position (the
    same inputs' partners, else the same place among the ops of its kind)."""
    index = _FloatIndex.of(float_side)
    q_steps, q_tensors = quant_side.ops, quant_side.tensors
    partner = dict(zip(quant_side.model.main.inputs, float_side.model.main.inputs, strict=False))
    taken: set[int] = set()
    matches: list[Match] = []
    seen_of_kind: dict[str, int] = {}
    for position, step in enumerate(q_steps):
        op = step.op
        if op.kind in BOUNDARY_KINDS:
            if op.inputs[0] in partner:
                partner[op.outputs[0]] = partner[op.inputs[0]]
            continue
        ordinal = seen_of_kind[op.kind] = seen_of_kind.get(op.kind, -1) + 1
        found = _find_partner(step, q_tensors, index, partner, taken, ordinal)
        if found is not None:
            taken.add(found.float_op)
            matches.append(Match(position, found.float_op, found.how))
            partner[op.outputs[0]] = index.steps[found.float_op].op.outputs[0]
    unmatched = _unmatched(q_steps, q_tensors, index.steps, index.tensors, matches)
    return Matching(matches, partner, unmatched)


def _find_partner(step: PreparedOp, q_tensors: tuple[TensorInfo, ...], index: _FloatIndex, partner: dict[int, int],
                  taken: set[int], ordinal: int) -> Match | None:
    output = q_tensors[step.op.outputs[0]]

    def fits(position: int) -> bool:
        other = index.steps[position]
        return (position not in taken and other.op.kind == step.op.kind and other.op.options == step.op.options
                and index.tensors[other.op.outputs[0]].shape == output.shape
                and same_constants(step, q_tensors, other, index.tensors))

    named = index.by_name.get(output.name)
    if named is not None and fits(named):
        return Match(-1, named, "name")
    inputs = activation_inputs(step, q_tensors)
    if inputs and all(t in partner for t in inputs):
        key = (step.op.kind, tuple(partner[t] for t in inputs))
        candidate = next((p for p in index.by_inputs.get(key, []) if fits(p)), None)
        if candidate is not None:
            return Match(-1, candidate, "graph position")
    same_kind = index.by_kind.get(step.op.kind, [])
    if ordinal < len(same_kind) and fits(same_kind[ordinal]):
        return Match(-1, same_kind[ordinal], "op order")
    return None


def same_constants(q_step: PreparedOp, q_tensors: tuple[TensorInfo, ...], f_step: PreparedOp,
                   f_tensors: tuple[TensorInfo, ...]) -> bool:
    """Whether the two ops' constant operands (weights, biases) agree: the same shapes and, dequantized,
    cosine similarity at least MIN_WEIGHT_COSINE. Two different networks' layers of the same shape
    are no pair."""
    for q_index, f_index in zip(q_step.inputs, f_step.inputs, strict=False):
        if -1 in (q_index, f_index) or not (q_tensors[q_index].is_constant and f_tensors[f_index].is_constant):
            continue
        q_real, f_real = constant_real(q_tensors[q_index]), f_tensors[f_index].data.astype(np.float64)
        if q_real.shape != f_real.shape:
            return False
        norms = float(np.linalg.norm(q_real) * np.linalg.norm(f_real))
        if q_real.size and norms and float(q_real.ravel() @ f_real.ravel()) / norms < MIN_WEIGHT_COSINE:
            return False
    return True


def constant_real(tensor: TensorInfo) -> np.ndarray:
    """A constant's real values, per tensor or per channel along its quantized dimension."""
    data, q = tensor.data, tensor.quantization
    if data.dtype.kind == "f" or q is None or q.scale.size == 0:
        return data.astype(np.float64)
    shape = [1] * data.ndim
    if q.per_channel and data.ndim:
        shape[q.quantized_dimension] = -1
    return (data.astype(np.float64) - q.zero_point.reshape(shape)) * q.scale.astype(np.float64).reshape(shape)


def _unmatched(q_steps: tuple[PreparedOp, ...], q_tensors: tuple[TensorInfo, ...], f_steps: tuple[PreparedOp, ...],
               f_tensors: tuple[TensorInfo, ...], matches: list[Match]) -> list[str]:
    q_done = {m.quant_op for m in matches}
    f_done = {m.float_op for m in matches}
    lines = [
        f"quantized op {s.op.index} {s.op.kind} ({q_tensors[s.op.outputs[0]].name!r}, "
        f"{list(q_tensors[s.op.outputs[0]].shape)}): no float op of that name, or of that kind, options, shape, "
        "inputs and weights"
        for p, s in enumerate(q_steps) if p not in q_done and s.op.kind not in BOUNDARY_KINDS
    ]
    lines += [
        f"float op {s.op.index} {s.op.kind} ({f_tensors[s.op.outputs[0]].name!r}): no quantized partner"
        for p, s in enumerate(f_steps) if p not in f_done
    ]
    return lines

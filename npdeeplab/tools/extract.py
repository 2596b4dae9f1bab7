"""Cut one op, or a contiguous range of ops, out of a model as a standalone .tflite model.

The small model keeps the ops' weights (constant inputs) and options; its inputs are the ops'
non-constant inputs that the range does not compute itself, its outputs the tensors the range
computes for later ops or as graph outputs. Tensor names are kept, so the arrays dumped from a full
run (`capture`) can be fed to the small model by name: a numerical mismatch with LiteRT becomes two
small files to attach to a bug report.

    >>> from npdeeplab.model.loader import load_model
    >>> from npdeeplab.tools.extract import extract_ops
    >>> model = load_model("deeplabv3_257_mv_gpu.tflite")        # doctest: +SKIP
    >>> part = extract_ops(model, 37, 37)                          # doctest: +SKIP
    >>> [t.name for t in part.model.main.tensors]                  # doctest: +SKIP
    ['MobilenetV2/expanded_conv_10/expand/Relu6', ..., 'MobilenetV2/expanded_conv_10/depthwise/Relu6']

Op ranges are inclusive at both ends: ops 3..5 are ops 3, 4 and 5. Weights stored as float16 and
widened by a DEQUANTIZE earlier in the graph (GPU and MediaPipe models) stay weights: that
DEQUANTIZE comes along, ahead of the range, so the small model stores them as the file did.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npdeeplab.errors import InputError, ModelError
from npdeeplab.model.ir import Model, OpNode, Subgraph, TensorInfo
from npdeeplab.model.writer import write_atomically
from npdeeplab.runtime.fold import is_float16_weight_dequantize
from npdeeplab.runtime.interpreter import Interpreter, OpCall


@dataclass(frozen=True)
class Extraction:
    """A standalone model for ops first..last and how its tensors map back to the source model."""

    model: Model
    first: int
    last: int
    source_tensors: tuple[int, ...]  # source tensor index of each tensor of the small model
    widening: tuple[int, ...] = ()  # source indices of the float16-weight DEQUANTIZE ops brought along

    @property
    def source_inputs(self) -> tuple[int, ...]:
        return tuple(self.source_tensors[i] for i in self.model.main.inputs)

    @property
    def source_outputs(self) -> tuple[int, ...]:
        return tuple(self.source_tensors[i] for i in self.model.main.outputs)

    def input_names(self) -> list[str]:
        return [self.model.main.tensors[i].name for i in self.model.main.inputs]

    def output_names(self) -> list[str]:
        return [self.model.main.tensors[i].name for i in self.model.main.outputs]


def parse_op_range(text: str, op_count: int) -> tuple[int, int]:
    """The ops an --op value names: "N" is op N, "M:K" (or "M..K") ops M to K inclusive; checked against op_count."""
    parts = text.replace("..", ":", 1).split(":")  # M..K is M:K
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"--op takes an op index N or an inclusive range M:K (or M..K), got {text!r}")
    first, last = int(parts[0]), int(parts[-1])
    for index in (first, last):
        if index >= op_count:
            raise InputError(f"op {index} is out of range: the model has {op_count} ops (0..{op_count - 1})")
    if last < first:
        raise InputError(f"op range {text!r} is empty: M:K needs M <= K (both included)")
    return first, last


def extract_ops(model: Model, first: int, last: int) -> Extraction:
    """Ops first..last (inclusive) of the main subgraph, with their weights, as a standalone model."""
    graph = model.main
    if not 0 <= first <= last < len(graph.ops):
        raise InputError(f"op range {first}..{last} is not within the model's {len(graph.ops)} ops")
    span = graph.ops[first : last + 1]
    chosen = [*_widening(graph, span), *span]
    produced = {t for op in chosen for t in op.outputs}
    inputs = _unique(
        t for op in chosen for t in op.inputs if t != -1 and t not in produced and not graph.tensors[t].is_constant
    )
    read_later = {t for op in graph.ops[last + 1 :] for t in op.inputs}
    used_anywhere = {t for op in graph.ops for t in op.inputs}
    outputs = _unique(
        t for op in span for t in op.outputs if t in read_later or t in graph.outputs or t not in used_anywhere
    ) or list(span[-1].outputs)
    kept = sorted({t for op in chosen for t in (*op.inputs, *op.outputs) if t != -1})
    new_index = {old: new for new, old in enumerate(kept)}
    names = _unique_names([graph.tensors[t] for t in kept])
    tensors = tuple(
        dataclasses.replace(graph.tensors[old], index=new_index[old], name=names[k], buffer=0)
        for k, old in enumerate(kept)
    )
    ops = tuple(
        OpNode(
            index=k,
            kind=op.kind,
            version=op.version,
            inputs=tuple(-1 if t == -1 else new_index[t] for t in op.inputs),
            outputs=tuple(new_index[t] for t in op.outputs),
            options=op.options,
            custom_options=op.custom_options,
        )
        for k, op in enumerate(chosen)
    )
    what = f"op {first}" if first == last else f"ops {first}..{last}"
    small = Model(
        version=model.version,
        description=f"npdeeplab extract: {what} of {Path(model.source).name}",
        subgraphs=(Subgraph(0, graph.name, tensors, ops, _mapped(inputs, new_index), _mapped(outputs, new_index)),),
        metadata=dict(model.metadata),
        signatures=(),
    )
    widening = tuple(op.index for op in chosen[: len(chosen) - len(span)])
    return Extraction(small, first, last, tuple(kept), widening)


def _widening(graph: Subgraph, span: Sequence[OpNode]) -> list[OpNode]:
    """The DEQUANTIZE ops before the span that widen float16 weights the span reads, in graph order."""
    producer = {t: op for op in graph.ops[: span[0].index] for t in op.outputs}
    found = {
        producer[t].index: producer[t]
        for op in span
        for t in op.inputs
        if t in producer and is_float16_weight_dequantize(producer[t], graph.tensors)
    }
    return [found[i] for i in sorted(found)]


def capture(
    model: Model, feeds: Sequence[np.ndarray], tensors: Sequence[int], backend: str | None = None,
    numerics: str | None = None,
) -> dict[int, np.ndarray]:
    """Run the whole model with npdeeplab and keep copies of the given tensors (source indices)."""
    interpreter = Interpreter(model=model, backend=backend, numerics=numerics)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    if len(feeds) != len(details):
        raise InputError(f"the model takes {len(details)} inputs, got {len(feeds)}")
    wanted = set(tensors)
    kept: dict[int, np.ndarray] = {}
    for detail, value in zip(details, feeds, strict=True):
        interpreter.set_tensor(detail["index"], value)
        if detail["index"] in wanted:
            kept[detail["index"]] = np.array(value, copy=True)

    def keep(call: OpCall) -> None:
        for index, array in zip(call.op.outputs, call.outputs, strict=True):
            if index in wanted:
                kept[index] = np.array(array, copy=True)  # the arena reuses the buffer later

    interpreter.add_hook(keep)
    interpreter.invoke()
    missing = wanted - set(kept)
    if missing:
        raise ModelError(f"tensors {sorted(missing)} were not computed by the full run")
    return kept


def dumped_arrays(extraction: Extraction, captured: Mapping[int, np.ndarray]) -> dict[str, np.ndarray]:
    """The small model's inputs and outputs as captured in the full run, by tensor name."""
    arrays = {}
    for small, source in zip(extraction.model.main.inputs, extraction.source_inputs, strict=True):
        arrays[extraction.model.main.tensors[small].name] = captured[source]
    for small, source in zip(extraction.model.main.outputs, extraction.source_outputs, strict=True):
        arrays[extraction.model.main.tensors[small].name] = captured[source]
    return arrays


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """np.savez to path, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomically(path, buffer.getvalue())


def _mapped(indices: list[int], new_index: dict[int, int]) -> tuple[int, ...]:
    return tuple(new_index[t] for t in indices)


def _unique(values: Any) -> list[int]:
    return list(dict.fromkeys(values))


def _unique_names(tensors: list[TensorInfo]) -> list[str]:
    """Tensor names, made unique and non-empty (they become .npz keys)."""
    names = []
    seen: set[str] = set()
    for tensor in tensors:
        name = tensor.name or f"tensor_{tensor.index}"
        if name in seen:
            name = f"{name}:{tensor.index}"
        seen.add(name)
        names.append(name)
    return names

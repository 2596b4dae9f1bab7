"""A model at a glance: one row per op (shapes, key options, parameters, MACs), totals, inputs, outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npdeeplab.errors import ModelError
from npdeeplab.model.ir import Model, OpNode, TensorInfo
from npdeeplab.model.loader import load_model
from npdeeplab.ops.conv import convolution_macs
from npdeeplab.ops.custom import describe_options as describe_custom_options
from npdeeplab.runtime.fold import is_float16_weight_dequantize
from npdeeplab.runtime.graph import model_numerics
from npdeeplab.runtime.interpreter import Interpreter

SHORT_ACTIVATIONS = {"NONE": "", "RELU": "relu", "RELU6": "relu6", "RELU_N1_TO_1": "relu_n1_to_1"}


@dataclass(frozen=True)
class OpRow:
    index: int
    kind: str
    version: int
    inputs: tuple[tuple[int, ...], ...]  # shapes of the non-constant inputs
    outputs: tuple[tuple[int, ...], ...]
    options: str
    parameters: int
    macs: int
    output_dtype: str


@dataclass(frozen=True)
class TensorRow:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: str
    constant: bool = False


@dataclass
class ModelSummary:
    source: str
    sha256: str | None
    subgraphs: int
    ops: list[OpRow]
    inputs: list[TensorRow]
    outputs: list[TensorRow]
    parameter_bytes: int
    peak_activation_bytes: int | None
    tensors: list[TensorRow] = field(default_factory=list)  # every tensor of subgraph 0, as the file declares it
    signatures: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    problem: str | None = None  # why the ops could not be prepared (shapes are then the declared ones)
    numerics: str = "float32"  # "uint8-quantized", "int8-quantized", "float16-weight"...
    float16_weights: int = 0  # weight tensors stored as float16 (DEQUANTIZE of a constant)

    @property
    def parameters(self) -> int:
        return sum(row.parameters for row in self.ops)

    @property
    def macs(self) -> int:
        return sum(row.macs for row in self.ops)

    def kinds(self) -> dict[str, int]:
        return dict(Counter(row.kind for row in self.ops).most_common())

    def to_text(self) -> str:
        lines = [f"model   {self.source}"]
        if self.sha256:
            lines.append(f"sha256  {self.sha256}")
        lines.append(f"graph   {len(self.ops)} ops in subgraph 0 of {self.subgraphs}, {self.numerics}")
        lines.append("")
        width = max([22, *(len(row.kind) + 2 for row in self.ops)])  # custom op names run long
        lines.append(f"{'#':>3}  {'op':<{width}}{'input':<20}{'output':<20}{'options':<28}{'params':>9}{'MACs':>9}")
        for row in self.ops:
            first = _shape(row.inputs[0]) if row.inputs else "-"
            more = f" +{len(row.inputs) - 1}" if len(row.inputs) > 1 else ""
            lines.append(
                f"{row.index:>3}  {row.kind:<{width}}{first + more:<20}{_shape(row.outputs[0]):<20}"
                f"{row.options:<28}{_count(row.parameters):>9}{_count(row.macs):>9}"
            )
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.kinds().items())
        lines += [
            "",
            f"ops         {kinds}",
            f"parameters  {_count(self.parameters)} ({self.parameter_bytes / 1e6:.2f} MB)",
            f"MACs        {_count(self.macs)} per inference",
        ]
        if self.float16_weights:
            count = self.float16_weights
            lines.append(f"float16     {count} weight tensors stored as float16, widened to float32 once at load")
        if self.peak_activation_bytes is not None:
            lines.append(f"activations {self.peak_activation_bytes / 1e6:.2f} MB at peak, buffers shared by lifetime")
        for title, rows in (("inputs", self.inputs), ("outputs", self.outputs)):
            for row in rows:
                lines.append(
                    f"{title:<11} {row.index:>3} {row.name!r} {_shape(row.shape)} {row.dtype} "
                    f"quantization: {row.quantization}"
                )
                title = ""
        if self.signatures:
            lines.append(f"signatures  {', '.join(self.signatures)}")
        if self.metadata:
            lines.append(f"metadata    {', '.join(self.metadata)}")
        if self.problem:
            lines.append(f"runs        no, shapes as declared in the file: {self.problem}")
        return "\n".join(lines)

    def tensors_text(self) -> str:
        """One row per tensor: index, dtype, shape, constant or not, quantization, name."""
        lines = [f"{'#':>4}  {'dtype':<8}{'shape':<20}{'kind':<12}{'quantization':<58}name"]
        for row in self.tensors:
            kind = "constant" if row.constant else "activation"
            lines.append(
                f"{row.index:>4}  {row.dtype:<8}{_shape(row.shape):<20}{kind:<12}{row.quantization:<58}{row.name}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(parameters=self.parameters, macs=self.macs, kinds=self.kinds())
        return data

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("#", "op", "inputs", "output", "options", "params", "MACs"))
        body = "".join(
            f"<tr><td>{r.index}</td><td>{html.escape(r.kind)}</td>"
            f"<td>{html.escape(', '.join(_shape(s) for s in r.inputs))}</td><td>{_shape(r.outputs[0])}</td>"
            f"<td>{html.escape(r.options)}</td><td align='right'>{_count(r.parameters)}</td>"
            f"<td align='right'>{_count(r.macs)}</td></tr>"
            for r in self.ops
        )
        totals = (
            f"<p><b>{html.escape(Path(self.source).name)}</b>: {len(self.ops)} ops, "
            f"{_count(self.parameters)} parameters, {_count(self.macs)} MACs</p>"
        )
        return f"{totals}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summarize(model: str | os.PathLike | Model | Interpreter) -> ModelSummary:
    """Summarise a model given as a path or registry name, an IR Model, or an Interpreter."""
    sha = None
    if isinstance(model, Interpreter):
        interpreter, ir = model, model.model
    else:
        if isinstance(model, Model):
            ir = model
        else:
            from npdeeplab.zoo import resolve_model

            path = resolve_model(model)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            ir = load_model(path)
        try:
            interpreter = Interpreter(model=ir, backend="numpy")
        except ModelError as error:
            return _declared_summary(ir, sha, str(error))
    tensors = interpreter.tensors
    prepared = {step.op.index: step for step in interpreter.ops}
    folded = frozenset(o for op in ir.main.ops if op.index not in prepared for o in op.outputs)
    rows = [
        _row(op, tensors, prepared[op.index].macs, folded) if op.index in prepared else _folded_row(op, tensors)
        for op in ir.main.ops
    ]
    return _summary(ir, sha, rows, tensors, interpreter.memory_plan.peak_bytes, None)


def _folded_row(op: OpNode, tensors: Any) -> OpRow:
    """An op done once at load (DEQUANTIZE of float16 weights): shown, marked, costing nothing per run."""
    return dataclasses.replace(_row(op, tensors, 0), options="float16 weights, folded at load")


def _declared_summary(ir: Model, sha: str | None, problem: str) -> ModelSummary:
    """For a model npdeeplab cannot run: the shapes the file declares, MACs from them, and why."""
    tensors = ir.main.tensors
    rows = [_row(op, tensors, declared_macs(op, tensors)) for op in ir.main.ops]
    return _summary(ir, sha, rows, tensors, None, problem)


def declared_macs(op: OpNode, tensors: Any) -> int:
    """A convolution's MACs from the shapes the file declares (0 for other ops, or missing inputs)."""
    positions = (2, 1) if op.kind == "TRANSPOSE_CONV" else (0, 1)  # (activation, weights) among the inputs
    if max(positions) >= len(op.inputs) or not op.outputs:
        return 0
    activation, weights = (op.inputs[p] for p in positions)
    if -1 in (activation, weights):
        return 0
    shapes = [tensors[activation].shape, tensors[weights].shape, tensors[op.outputs[0]].shape]
    try:
        return convolution_macs(op.kind, *shapes)
    except IndexError:  # a filter of too low a rank: the model is malformed, and says so elsewhere
        return 0


def _summary(
    ir: Model, sha: str | None, rows: list[OpRow], tensors: Any, peak: int | None, problem: str | None
) -> ModelSummary:
    graph = ir.main
    stored = graph.tensors  # as the file holds them: float16 weights count at their stored size
    used = {i for op in graph.ops for i in op.inputs if i != -1 and stored[i].is_constant}
    return ModelSummary(
        source=ir.source,
        sha256=sha,
        subgraphs=len(ir.subgraphs),
        ops=rows,
        inputs=[_tensor_row(tensors[i]) for i in graph.inputs],
        outputs=[_tensor_row(tensors[i]) for i in graph.outputs],
        tensors=[_tensor_row(t) for t in stored],
        parameter_bytes=sum(stored[i].data.nbytes for i in used),
        float16_weights=sum(1 for op in graph.ops if is_float16_weight_dequantize(op, list(stored))),
        peak_activation_bytes=peak,
        signatures=[s.key for s in ir.signatures],
        metadata=sorted(ir.metadata),
        problem=problem,
        numerics=model_numerics(graph),
    )


def _row(op: OpNode, tensors: Any, macs: int, folded: frozenset[int] = frozenset()) -> OpRow:
    """folded: tensors that are constants only because a float16 DEQUANTIZE was folded at load
    (its weights count as parameters once, at the DEQUANTIZE)."""
    present = [tensors[i] for i in op.inputs if i != -1]
    weights = [
        t for t in present if t.is_constant and t.index not in folded and t.dtype.kind in "fiu" and _is_parameter(op, t)
    ]
    return OpRow(
        index=op.index,
        kind=op.kind,
        version=op.version,
        inputs=tuple(t.shape for t in present if not t.is_constant),
        outputs=tuple(tensors[i].shape for i in op.outputs),
        options=describe_options(op, tensors),
        parameters=sum(t.size for t in weights),
        macs=macs,
        output_dtype=tensors[op.outputs[0]].dtype.name if op.outputs else "-",
    )


def _is_parameter(op: OpNode, tensor: TensorInfo) -> bool:
    """Weights and biases count as parameters (float16 ones where they are dequantized); shape,
    axis and size operands do not."""
    if op.kind == "DEQUANTIZE" or op.kind.startswith("CUSTOM:"):
        return tensor.dtype.kind == "f"
    return op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV") or (
        op.kind in ("ADD", "SUB", "MUL", "CONCATENATION") and tensor.dtype.kind == "f"
    )


def describe_options(op: OpNode, tensors: Any) -> str:
    """The options that matter, compactly: `3x3 s2 d2 SAME relu6`, `align_corners 257x257`; a
    custom op's as its registration describes them, else their size."""
    o = op.options
    if op.kind.startswith("CUSTOM:"):
        described = describe_custom_options(op.kind, op.custom_options)
        if described is not None:
            return described
        return f"{len(op.custom_options)} bytes of options" if op.custom_options else ""
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and o is not None:
        filters = tensors[op.inputs[1]].shape
        parts = [f"{filters[1]}x{filters[2]}", _pair("s", o.stride_h, o.stride_w)]
        if (o.dilation_h_factor, o.dilation_w_factor) != (1, 1):
            parts.append(_pair("d", o.dilation_h_factor, o.dilation_w_factor))
        parts.append(o.padding)
        if op.kind == "DEPTHWISE_CONV_2D":
            x = tensors[op.inputs[0]].shape
            if x and x[-1] and filters[3] // x[-1] > 1:
                parts.append(f"x{filters[3] // x[-1]}")
        parts.append(SHORT_ACTIVATIONS.get(o.fused_activation_function, o.fused_activation_function.lower()))
        return " ".join(p for p in parts if p)
    if op.kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and o is not None:
        act = SHORT_ACTIVATIONS.get(o.fused_activation_function, o.fused_activation_function.lower())
        return " ".join(p for p in (f"{o.filter_height}x{o.filter_width}", f"s{o.stride_h}", o.padding, act) if p)
    if op.kind in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR") and o is not None:
        size = tensors[op.inputs[1]].data if len(op.inputs) > 1 else None
        flags = [name for name in ("align_corners", "half_pixel_centers") if getattr(o, name)]
        if size is not None:
            flags.append("x".join(str(int(v)) for v in np.asarray(size).reshape(-1)))
        return " ".join(flags)
    if op.kind in ("ARG_MAX", "ARG_MIN", "MEAN", "EXPAND_DIMS") and len(op.inputs) > 1:
        axis = tensors[op.inputs[1]].data
        text = f"axis {np.asarray(axis).reshape(-1).tolist()}" if axis is not None else ""
        extra = _non_default_fields(o)
        return " ".join(p for p in (text, extra) if p)
    return _non_default_fields(o)


def _pair(prefix: str, height: int, width: int) -> str:
    return f"{prefix}{height}" if height == width else f"{prefix}{height}x{width}"


def _non_default_fields(options: Any) -> str:
    if options is None or not dataclasses.is_dataclass(options):
        return ""
    defaults = type(options)()
    parts = []
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if value != getattr(defaults, f.name):
            if f.name == "fused_activation_function":
                parts.append(SHORT_ACTIVATIONS.get(value, value.lower()))
            else:
                parts.append(f"{f.name}={value}")
    return " ".join(parts)


def _tensor_row(tensor: TensorInfo) -> TensorRow:
    q = tensor.quantization
    if q is None:
        quantization = "none"
    elif q.per_channel:
        zero_points = sorted({int(z) for z in q.zero_point})
        zeros = (f"zero point {zero_points[0]}" if len(zero_points) == 1
                 else f"zero points {zero_points[0]}..{zero_points[-1]}")
        quantization = (
            f"per channel ({q.scale.size} scales {float(q.scale.min()):.3g}..{float(q.scale.max()):.3g}, {zeros}, "
            f"axis {q.quantized_dimension})"
        )
    else:
        quantization = f"scale {float(q.scale[0]):.6g}, zero point {int(q.zero_point[0])}"
    return TensorRow(tensor.index, tensor.name, tensor.shape, tensor.dtype.name, quantization, tensor.is_constant)


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}G"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)

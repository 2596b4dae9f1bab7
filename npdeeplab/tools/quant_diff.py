"""Where quantization loses accuracy: a quantized model held against its float original, layer by layer.

The quantized model's ops are matched to the float model's as npdeeplab.tools.quant_match says (by
output tensor name, then by graph position; kind, options, shape and weights must agree); the ops
that match nothing are listed, on both sides.

Per matched layer, with e = dequantized quantized output - float output over every input given:
mean and max |e| in units of the output's scale (LSBs), SNR = 10 log10(sum f^2 / sum e^2) in dB,
and cosine similarity. Twice: accumulated (the whole quantized model run) and isolated (the
quantized op alone, run with the engine's prepared kernel on the float model's own activations
quantized with the op's own input parameters), so a layer's own loss is told apart from what it
inherited. Layers are ranked by isolated SNR, lowest first. An op's input parameters are its
producer's output parameters, so the consumer of a badly quantized tensor loses accuracy in
isolation too, at its input: it usually ranks close behind the producer.

Keep in float (what a converter's selective quantization takes, e.g. a denylist of nodes): the
layers whose isolated SNR is more than `margin_db` (default 10 dB, noise power 10x the typical
layer's) below the median isolated SNR of all layers compared.

Model Explorer overlay: `model_explorer_node_data` writes the node-data format of
ai-edge-model-explorer's model_explorer/node_data_builder.py (ModelNodeData, GraphNodeData,
NodeDataResult, ThresholdItem), as read at google-ai-edge/model-explorer commit 0609144:
{graph id: {"results": {node key: {"value": isolated SNR dB}}, "thresholds": [{"value", "bgColor",
"textColor"}]}}. The graph id is the subgraph's name, else "main", and a node key is the op's
output tensor name (matched against the node's `tensor_name` output metadata), else its op index,
which is the node id Model Explorer's TFLite flatbuffer adapter gives an op.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npdeeplab.errors import InputError
from npdeeplab.kernels.integer.quantize import AffineParams, quantize
from npdeeplab.model.ir import Model, TensorInfo
from npdeeplab.ops.base import PreparedOp
from npdeeplab.runtime.interpreter import Interpreter, OpCall
from npdeeplab.tools.quant_match import BOUNDARY_KINDS, Match, Matching, match_ops

DEFAULT_MARGIN_DB = 10.0
EXPLORER_CAP_DB = 200.0  # an exact layer's infinite SNR, as Model Explorer needs a number


@dataclass(frozen=True)
class Figures:
    mean_lsb: float | None  # mean |e| in units of the output scale (None: the output is float)
    max_lsb: float | None
    snr_db: float  # inf where the layer is exact
    cosine: float


@dataclass(frozen=True)
class LayerDiff:
    index: int  # the quantized model's op index
    kind: str
    tensor: str  # its output tensor's name
    float_index: int  # the float model's op index
    matched_by: str  # "name" or "graph position"
    scale: float | None
    accumulated: Figures
    isolated: Figures | None  # None: an input has no float partner
    keep_float: bool = False

    @property
    def rank_snr(self) -> float:
        return self.isolated.snr_db if self.isolated is not None else math.inf


@dataclass
class QuantDiff:
    float_model: str
    quant_model: str
    layers: list[LayerDiff]  # worst isolated SNR first
    inputs: int
    margin_db: float
    median_db: float | None
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    graph_id: str = "main"
    problem: str | None = None  # fewer than half the quantized layers matched: no pair, no ranking

    @property
    def threshold_db(self) -> float | None:
        return None if self.median_db is None else self.median_db - self.margin_db

    @property
    def keep_float(self) -> list[LayerDiff]:
        return [layer for layer in self.layers if layer.keep_float]

    def rule(self) -> str:
        if self.median_db is None:
            return "no layer could be isolated: nothing to choose"
        return (f"keep in float: isolated SNR more than {self.margin_db:g} dB below the median "
                f"{self.median_db:.1f} dB (below {self.threshold_db:.1f} dB)")

    def to_text(self) -> str:
        figures = f"{'mean lsb':>10}{'max lsb':>9}{'SNR dB':>8}{'cosine':>9}"
        groups = f"{'':55}{'isolated (own loss)':<38}accumulated (whole run)"
        head = f"{'rank':>4} {'#':>4}  {'op':<20}{'output':<24}{figures}  {figures}"
        title = (f"{self.quant_model} vs {self.float_model}, {self.inputs} input(s); {len(self.layers)} layers "
                 f"matched, {len(self.unmatched)} ops unmatched")
        if self.problem is not None:
            return f"{title}\n{self.problem}"
        lines = [title, groups.rstrip(), head]
        lines += [_text_row(rank, layer) for rank, layer in enumerate(self.layers, 1)]
        lines += [f"unmatched: {line}" for line in self.unmatched]
        lines += [f"note: {line}" for line in self.notes]
        lines.append(self.rule())
        kept = ", ".join(f"op {layer.index} {layer.kind} {layer.tensor!r}" for layer in self.keep_float)
        lines.append(f"keep in float: {kept or 'none'}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "float_model": self.float_model, "quant_model": self.quant_model, "inputs": self.inputs,
            "rule": self.rule(), "median_db": _finite(self.median_db), "threshold_db": _finite(self.threshold_db),
            "margin_db": self.margin_db, "keep_float": [layer.index for layer in self.keep_float],
            "layers": [_layer_json(rank, layer) for rank, layer in enumerate(self.layers, 1)],
            "unmatched": self.unmatched, "notes": self.notes, "problem": self.problem,
        }


def _text_row(rank: int, layer: LayerDiff) -> str:
    mark = "*" if layer.keep_float else " "
    return (f"{mark}{rank:>3} {layer.index:>4}  {layer.kind:<20}{layer.tensor[:23]:<24}"
            f"{_figures_text(layer.isolated)}  {_figures_text(layer.accumulated)}")


def _figures_text(figures: Figures | None) -> str:
    if figures is None:
        return f"{'-':>10}{'-':>9}{'-':>8}{'-':>9}"
    mean = "-" if figures.mean_lsb is None else f"{figures.mean_lsb:.3f}"
    top = "-" if figures.max_lsb is None else f"{figures.max_lsb:.3g}"
    return f"{mean:>10}{top:>9}{figures.snr_db:>8.1f}{figures.cosine:>9.5f}"


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an exact layer's SNR is null."""
    return None if value is None or not math.isfinite(value) else value


def _figures_json(figures: Figures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {"mean_error_lsb": figures.mean_lsb, "max_error_lsb": figures.max_lsb,
            "snr_db": _finite(figures.snr_db), "cosine": figures.cosine}


def _layer_json(rank: int, layer: LayerDiff) -> dict[str, Any]:
    return {"rank": rank, "op_index": layer.index, "kind": layer.kind, "output_tensor": layer.tensor,
            "float_op_index": layer.float_index, "matched_by": layer.matched_by, "scale": layer.scale,
            "keep_float": layer.keep_float, "isolated": _figures_json(layer.isolated),
            "accumulated": _figures_json(layer.accumulated)}


# --- statistics ----------------------------------------------------------------------------------


@dataclass
class _Sums:
    """Running sums of one layer's error over every input, so that several inputs make one figure."""

    signal: float = 0.0  # sum f^2
    noise: float = 0.0  # sum e^2
    abs_lsb: float = 0.0
    max_lsb: float = 0.0
    count: int = 0
    dot: float = 0.0
    norm_q: float = 0.0

    def add(self, real: np.ndarray, reference: np.ndarray, scale: float | None) -> None:
        f = reference.astype(np.float64).ravel()
        q = real.astype(np.float64).ravel()
        e = q - f
        self.signal += float(f @ f)
        self.noise += float(e @ e)
        self.dot += float(q @ f)
        self.norm_q += float(q @ q)
        self.count += e.size
        if scale and e.size:
            lsb = np.abs(e) / scale
            self.abs_lsb += float(lsb.sum())
            self.max_lsb = max(self.max_lsb, float(lsb.max()))

    def figures(self, integer: bool) -> Figures:
        if self.noise == 0:
            snr = math.inf
        elif self.signal == 0:
            snr = -math.inf
        else:
            snr = 10 * math.log10(self.signal / self.noise)
        norms = math.sqrt(self.signal * self.norm_q)
        cosine = self.dot / norms if norms else (1.0 if self.noise == 0 else 0.0)
        mean = self.abs_lsb / self.count if integer and self.count else None
        return Figures(mean, self.max_lsb if integer else None, snr, cosine)


# --- running -------------------------------------------------------------------------------------


def tensor_values(interpreter: Interpreter, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every op output and graph input of one run, by tensor index (copies: the arena reuses memory)."""
    found: dict[int, np.ndarray] = {}

    def record(call: OpCall) -> None:
        for index, array in zip(call.op.outputs, call.outputs, strict=True):
            found[index] = np.array(array, copy=True)

    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
        found[detail["index"]] = np.array(value, copy=True)
    remove = interpreter.add_hook(record)
    try:
        interpreter.invoke()
    finally:
        remove()
    return found


def real_values(tensor: TensorInfo, values: np.ndarray) -> np.ndarray:
    """A quantized tensor's real values, scale * (q - zero_point), in float64 (floats as they are)."""
    if values.dtype.kind == "f" or tensor.quantization is None:
        return values.astype(np.float64)
    q = tensor.quantization
    return (values.astype(np.float64) - float(q.zero_point[0])) * float(q.scale[0])


def quantize_like(tensor: TensorInfo, real: np.ndarray) -> np.ndarray:
    """real values as the tensor holds them: quantized with its own parameters (as QUANTIZE does)."""
    if tensor.dtype.kind == "f" or tensor.quantization is None:
        return real.astype(tensor.dtype)
    q = tensor.quantization
    params = AffineParams(tensor.dtype, q.scale[:1].astype(np.float32), q.zero_point[:1].astype(np.int64))
    return quantize(params, real.astype(np.float32))


def isolated_output(quant_side: Interpreter, step: PreparedOp, partner: dict[int, int],
                    float_values: dict[int, np.ndarray]) -> np.ndarray | None:
    """The quantized op alone on the float model's activations, quantized with the op's input parameters."""
    tensors = quant_side.tensors
    arguments: list[np.ndarray | None] = []
    for t in step.inputs:
        if t == -1 or tensors[t].is_constant:
            arguments.append(None if t == -1 else tensors[t].data)
        elif t in partner and partner[t] in float_values:
            arguments.append(quantize_like(tensors[t], float_values[partner[t]].astype(np.float64)))
        else:
            return None
    result = quant_side.kernels[step.kernel](step.params, *arguments)
    return result[0] if isinstance(result, tuple) else result


def _scale(tensor: TensorInfo) -> float | None:
    if tensor.dtype.kind == "f" or tensor.quantization is None:
        return None
    return float(tensor.quantization.scale[0])


# --- the whole comparison ------------------------------------------------------------------------


ModelLike = str | os.PathLike | Model | Interpreter


def quant_diff(float_model: ModelLike, quant_model: ModelLike,
               inputs: list[tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray], *,
               margin_db: float = DEFAULT_MARGIN_DB, backend: str | None = None) -> QuantDiff:
    """Compare quant_model with float_model layer by layer.

    inputs: (float model's input, quantized model's input) pairs, the same picture or values
    prepared for each (see paired_random_inputs, paired_image_inputs); one pair or a list.
    """
    pairs = [inputs] if isinstance(inputs, tuple) else list(inputs)
    if not pairs:
        raise InputError("quant-diff needs at least one input")
    f_side, q_side = _interpreter(float_model, backend), _interpreter(quant_model, backend)
    matching = match_ops(f_side, q_side)
    if not matching.matches:
        raise InputError(f"no op of {q_side.model.source} matched one of {f_side.model.source} by name or graph "
                         "position: not a float/quantized pair")
    sums = {m.quant_op: (_Sums(), _Sums()) for m in matching.matches}
    isolable = set(sums)
    for float_input, quant_input in pairs:
        f_values = tensor_values(f_side, [float_input])
        q_values = tensor_values(q_side, [quant_input])
        isolable &= _accumulate(f_side, q_side, matching, f_values, q_values, sums)
    layers = [_layer(f_side, q_side, m, sums[m.quant_op], m.quant_op in isolable) for m in matching.matches]
    return _ranked(f_side, q_side, layers, matching, len(pairs), margin_db)


def _accumulate(f_side: Interpreter, q_side: Interpreter, matching: Matching, f_values: dict[int, np.ndarray],
                q_values: dict[int, np.ndarray], sums: dict[int, tuple[_Sums, _Sums]]) -> set[int]:
    """Add one input's errors to every layer's sums; return the layers that could be isolated."""
    isolated_ok: set[int] = set()
    for m in matching.matches:
        step = q_side.ops[m.quant_op]
        tensor = q_side.tensors[step.op.outputs[0]]
        reference = f_values[f_side.ops[m.float_op].op.outputs[0]]
        accumulated, isolated = sums[m.quant_op]
        accumulated.add(real_values(tensor, q_values[step.op.outputs[0]]), reference, _scale(tensor))
        alone = isolated_output(q_side, step, matching.partner, f_values)
        if alone is not None:
            isolated.add(real_values(tensor, alone), reference, _scale(tensor))
            isolated_ok.add(m.quant_op)
    return isolated_ok


def _layer(f_side: Interpreter, q_side: Interpreter, m: Match, sums: tuple[_Sums, _Sums], isolable: bool) -> LayerDiff:
    step = q_side.ops[m.quant_op]
    tensor = q_side.tensors[step.op.outputs[0]]
    integer = _scale(tensor) is not None
    accumulated, isolated = sums
    return LayerDiff(step.op.index, step.op.kind, tensor.name, f_side.ops[m.float_op].op.index, m.how, _scale(tensor),
                     accumulated.figures(integer), isolated.figures(integer) if isolable else None)


def _ranked(f_side: Interpreter, q_side: Interpreter, layers: list[LayerDiff], matching: Matching, inputs: int,
            margin_db: float) -> QuantDiff:
    finite = [layer.rank_snr for layer in layers if math.isfinite(layer.rank_snr)]
    median = float(np.median(finite)) if finite else None
    marked = [dataclasses.replace(layer, keep_float=median is not None and layer.rank_snr < median - margin_db)
              for layer in layers]
    marked.sort(key=lambda layer: (layer.rank_snr, layer.index))
    counts = {how: sum(m.how == how for m in matching.matches) for how in ("name", "graph position", "op order")}
    notes = [f"{count} matched by {how}" for how, count in counts.items() if count]
    notes += [f"op {layer.index} {layer.kind}: an input has no float partner, not isolated"
              for layer in marked if layer.isolated is None]
    return QuantDiff(f_side.model.source, q_side.model.source, marked, inputs, margin_db, median,
                     matching.unmatched, notes, q_side.model.main.name or "main", _too_few(q_side, matching))


def _too_few(q_side: Interpreter, matching: Matching) -> str | None:
    """The problem when fewer than half the quantized layers found a float partner."""
    layers = sum(step.op.kind not in BOUNDARY_KINDS for step in q_side.ops)
    if 2 * len(matching.matches) >= layers:
        return None
    return (f"only {len(matching.matches)} of {layers} quantized layers matched a float op by name or graph position "
            "(kind, options, shape, weights): the models do not correspond layer by layer, so no ranking is given")


def _interpreter(model: ModelLike, backend: str | None) -> Interpreter:
    if isinstance(model, Interpreter):
        return model
    if isinstance(model, Model):
        return Interpreter(model=model, backend=backend)
    from npdeeplab.zoo import resolve_model

    return Interpreter(model_path=resolve_model(model), backend=backend)


# --- inputs --------------------------------------------------------------------------------------


def paired_random_inputs(float_side: Interpreter, quant_side: Interpreter, count: int,
                         seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """count seeded random float inputs in [-1, 1], the same real values for both models: quantized
    with the quantized model's input parameters where its input is integer."""
    f_detail, q_detail = float_side.get_input_details()[0], quant_side.get_input_details()[0]
    shape = tuple(int(d) for d in f_detail["shape"])
    if shape != tuple(int(d) for d in q_detail["shape"]):
        q_shape = [int(d) for d in q_detail["shape"]]
        raise InputError(f"the models' inputs differ in shape ({list(shape)} float, {q_shape} "
                         "quantized): random inputs cannot be the same for both")
    rng = np.random.default_rng(seed)
    q_input = quant_side.tensors[q_detail["index"]]
    pairs = []
    for _ in range(count):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        pairs.append((x.astype(f_detail["dtype"]), quantize_like(q_input, x)))
    return pairs


def paired_image_inputs(float_side: Interpreter, quant_side: Interpreter,
                        images: list[str | os.PathLike]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each image preprocessed for each model as the segmentation pipeline does."""
    from npdeeplab.segmentation import model_input

    return [(model_input(float_side, image), model_input(quant_side, image)) for image in images]


# --- Model Explorer ------------------------------------------------------------------------------


def model_explorer_node_data(result: QuantDiff, quant_side: Interpreter) -> dict[str, Any]:
    """The ranking as Model Explorer node data for the quantized model's graph (format: module docstring):
    each layer's isolated SNR in dB; red at or below the keep-in-float threshold, orange up to the
    median, green above."""
    keys = _node_keys(quant_side)
    results = {keys[layer.index]: {"value": round(min(layer.rank_snr, EXPLORER_CAP_DB), 3)}
               for layer in result.layers if layer.isolated is not None}
    graph: dict[str, Any] = {"results": results}
    if result.median_db is not None:
        graph["thresholds"] = [
            {"value": round(result.threshold_db, 3), "bgColor": "#d32f2f", "textColor": "#ffffff"},
            {"value": round(result.median_db, 3), "bgColor": "#ffb74d"},
            {"value": EXPLORER_CAP_DB, "bgColor": "#aed581"},
        ]
    return {result.graph_id: graph}


def _node_keys(interpreter: Interpreter) -> dict[int, str]:
    """op index -> its output tensor's name where that names one op only, else the op index."""
    names = [interpreter.tensors[op.outputs[0]].name for op in interpreter.model.main.ops]
    return {i: name if name and names.count(name) == 1 else str(i) for i, name in enumerate(names)}

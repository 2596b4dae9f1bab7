"""Compare npdeeplab op by op with LiteRT, or one model with another, and find the first op that
goes wrong.

Per op: max absolute error, max relative error (max |a - b| / max |b|, the error against the
tensor's own scale), the error in ULPs for floats or the max LSB difference for integers, and
cosine similarity. The ULP column is max |a - b| divided by the float32 spacing at the reference
tensor's largest magnitude, np.spacing(float32(max |b|)): how many of the smallest steps a value
of the tensor's own size can take the error spans. It depends on the two arrays only, never on
the tolerances. An op is over tolerance where any element has |a - b| > atol + rtol * |b|. The
defaults, atol = rtol = 1e-4, sit above float32 reordering noise through a whole DeepLab
(LiteRT's own optimised and reference kernels differ by up to 3.5e-5 on the seed model's logits)
and far below a real bug.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npdeeplab.errors import InputError, NpDeepLabError
from npdeeplab.model.ir import Model
from npdeeplab.model.writer import write_model
from npdeeplab.ops.custom import has_custom_ops, rewrite_for_litert
from npdeeplab.runtime.interpreter import Interpreter, OpCall

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4
REFERENCES = ("litert", "litert-ref")


@dataclass(frozen=True)
class CompareRow:
    index: int
    kind: str
    tensor: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    max_units: float  # ULPs at the reference's scale (float) or max LSB difference (integer)
    unit: str  # "ulp" or "lsb"
    cosine: float
    within: bool
    off_by: tuple[int, int, int] | None = None  # integer outputs: elements off by 1, by 2, by more


@dataclass
class Comparison:
    model: str
    reference: str
    rows: list[CompareRow]
    atol: float
    rtol: float
    isolate: bool = False
    notes: list[str] = field(default_factory=list)

    problem: str | None = None  # the two sides could not be compared op by op (too few ops matched)

    @property
    def first_divergence(self) -> CompareRow | None:
        return next((row for row in self.rows if not row.within), None)

    @property
    def exceeded(self) -> bool:
        """An op over tolerance, or no meaningful comparison at all: the CLI exits 1 for both."""
        return self.problem is not None or self.first_divergence is not None

    def summary(self) -> str:
        if self.problem is not None:
            return self.problem
        first = self.first_divergence
        if first is None:
            return f"all {len(self.rows)} ops within tolerance"
        return (
            f"first divergence: op {first.index} {first.kind} (tensor {first.tensor!r}): max abs error "
            f"{first.max_abs:.3g}, max rel error {first.max_rel:.3g}, {first.max_units:.3g} {first.unit}"
        )

    def to_text(self) -> str:
        if self.problem is not None:
            return self.problem  # no table: its rows would compare ops that do not correspond
        mode = "each op fed the reference's inputs" if self.isolate else "whole model"
        width = max([20, *(len(r.kind) + 2 for r in self.rows)])  # custom op names run long
        lines = [
            f"npdeeplab vs {self.reference} ({mode}); tolerance |a-b| <= {self.atol:g} + {self.rtol:g}*|b|",
            f"{'':2}{'#':>3}  {'op':<{width}}{'output':<18}{'max abs':>10}{'max rel':>10}{'ulp/lsb':>10}{'cosine':>12}",
        ]
        if any(r.off_by is not None for r in self.rows):
            lines[1] += f"  {'off by 1/2/>2 lsb':>18}"
        first = self.first_divergence
        for r in self.rows:
            mark = "!!" if r is first else (" !" if not r.within else "  ")
            shape = "[" + ",".join(map(str, r.shape)) + "]"
            off_by = f"  {'/'.join(map(str, r.off_by)):>18}" if r.off_by is not None else ""
            lines.append(
                f"{mark}{r.index:>3}  {r.kind:<{width}}{shape:<18}{r.max_abs:>10.3g}{r.max_rel:>10.3g}"
                f"{r.max_units:>10.4g} {r.cosine:>11.8f}{off_by}"
            )
        lines += [f"note: {n}" for n in self.notes]
        lines.append(self.summary())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        first = self.first_divergence
        body = "".join(
            f"<tr style='{'background:#fdd' if not r.within else ''}{';font-weight:bold' if r is first else ''}'>"
            f"<td>{r.index}</td><td>{html.escape(r.kind)}</td><td>{r.max_abs:.3g}</td><td>{r.max_rel:.3g}</td>"
            f"<td>{r.max_units:.4g} {r.unit}</td><td>{r.cosine:.8f}</td></tr>"
            for r in self.rows
        )
        head = "".join(f"<th>{h}</th>" for h in ("#", "op", "max abs", "max rel", "ulp/lsb", "cosine"))
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<p>{html.escape(self.summary())}</p>" + (f"<ul class='notes'>{notes}</ul>" if notes else "")
            + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


Metrics = tuple[float, float, float, str, float, bool]


def ulps_at_scale(max_abs: float, theirs: np.ndarray) -> float:
    """max |a - b| in units of the float32 spacing at the reference's largest magnitude.

    Element by element ULP counts say nothing around zero, where neighbouring floats are so dense
    that a difference of 1e-12 spans a billion of them; the spacing at the tensor's own scale is
    the step its large values can take, so 1 means "as close as float32 allows for this tensor".
    """
    finite = np.abs(theirs[np.isfinite(theirs)])
    scale = np.float32(finite.max()) if finite.size else np.float32(0)
    spacing = float(np.spacing(scale if scale > 0 else np.float32(1)))
    return max_abs / spacing if np.isfinite(max_abs) else float("inf")


def measure(ours: np.ndarray, theirs: np.ndarray, atol: float, rtol: float) -> Metrics:
    """(max abs, max rel, ulp/lsb, unit, cosine, within tolerance) of ours against theirs."""
    if ours.shape != theirs.shape:
        raise InputError(f"shapes differ: {list(ours.shape)} vs {list(theirs.shape)}")
    a, b = ours.astype(np.float64), theirs.astype(np.float64)
    difference = element_errors(a, b)
    max_abs = float(difference.max()) if difference.size else 0.0
    finite = np.abs(b[np.isfinite(b)])
    scale = float(finite.max()) if finite.size else 0.0
    max_rel = max_abs / scale if scale else (0.0 if max_abs == 0 else float("inf"))
    if ours.dtype.kind == "f":
        units, unit = ulps_at_scale(max_abs, theirs), "ulp"
    else:
        units, unit = float(max_abs), "lsb"
    with np.errstate(invalid="ignore"):
        within = bool(np.all((difference == 0) | (difference <= atol + rtol * np.abs(b))))
    return max_abs, max_rel, units, unit, cosine_similarity(a, b, max_abs), within


def element_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| per element, 0 where both hold the same value (also the same infinity, or both NaN),
    inf where only one is NaN: a NaN or Inf that both engines produce is agreement."""
    with np.errstate(invalid="ignore"):
        difference = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    difference[same] = 0.0
    difference[np.isnan(difference)] = np.inf
    return difference


def cosine_similarity(a: np.ndarray, b: np.ndarray, max_abs: float) -> float:
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norms) if norms else (1.0 if max_abs == 0 else 0.0)


def collect_outputs(interpreter: Interpreter, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every op's first output from one npdeeplab run, by op index (copies: the arena reuses memory)."""
    found: dict[int, np.ndarray] = {}

    def record(call: OpCall) -> None:
        found[call.index] = call.outputs[0].copy()

    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    remove = interpreter.add_hook(record)
    try:
        interpreter.invoke()
    finally:
        remove()
    return found


LiteRTSource = str | os.PathLike | bytes  # a model file, or the bytes of one


def litert_source(model: Model, reference_model: str | os.PathLike | None = None) -> tuple[LiteRTSource, list[str]]:
    """What LiteRT runs to be held against model, and a note per custom op rewritten: reference_model
    if given, else the model's own file, or, for a model with custom ops (which LiteRT cannot run),
    the model with their registered builtin equivalents in their place, as bytes. Tensor indices
    are the model's in all three. A custom op with no registered rewrite is an NpDeepLabError."""
    if reference_model is None and has_custom_ops(model):
        rewritten, notes = rewrite_for_litert(model)
        return write_model(rewritten), notes
    source = reference_model if reference_model is not None else model.source
    if not Path(str(source)).is_file():
        raise InputError("LiteRT needs the model as a file: give reference_model=")
    return source, []


def litert_tensors(model: LiteRTSource, inputs: list[np.ndarray], reference: str) -> dict[int, np.ndarray]:
    """Every tensor LiteRT computed, intermediates preserved, with its optimised or reference kernels
    (model: a file or the bytes of one; litert_source says which, for a model with custom ops)."""
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        raise NpDeepLabError("comparing against LiteRT needs it installed: pip install ai-edge-litert") from None
    resolver = {
        "litert": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "litert-ref": OpResolverType.BUILTIN_REF,
    }[reference]
    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    interpreter = LiteRT(**source, experimental_op_resolver_type=resolver, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return {
        i: interpreter.get_tensor(i)
        for op in interpreter._get_ops_details()
        for i in [*op["inputs"], *op["outputs"]]
        if i != -1
    }


def compare_with_litert(
    model: str | os.PathLike | Model,
    inputs: np.ndarray | list[np.ndarray],
    *,
    reference: str = "litert",
    reference_model: str | os.PathLike | None = None,
    isolate: bool = False,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    backend: str | None = None,
    reference_tensors: dict[int, np.ndarray] | None = None,
) -> Comparison:
    """npdeeplab against LiteRT op by op. LiteRT runs reference_model (default: the same file),
    unless reference_tensors already holds its tensors from litert_tensors() on these inputs.

    isolate: each npdeeplab op gets LiteRT's own input arrays, so an op's error is its own and not
    inherited from the ops before it.
    """
    if reference not in REFERENCES:
        raise InputError(f"unknown reference {reference!r}; choose one of {', '.join(REFERENCES)}")
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    ours = model if isinstance(model, Interpreter) else _interpreter(model, backend)
    source, rewritten = litert_source(ours.model, reference_model)
    theirs = reference_tensors if reference_tensors is not None else litert_tensors(source, inputs, reference)
    if isolate:
        kernels = ours.kernels
        outputs = {}
        for step in ours.ops:
            # The reference's activations, but our own constants: a changed weight must show.
            arguments = [
                None if i == -1 else ours.tensors[i].data if ours.tensors[i].is_constant else theirs[i]
                for i in step.inputs
            ]
            outputs[step.op.index] = kernels[step.kernel](step.params, *arguments)
    else:
        outputs = collect_outputs(ours, inputs)
    rows, notes = [], list(rewritten)
    for step in ours.ops:
        index = step.op.outputs[0]
        if step.op.index not in outputs or index not in theirs:
            continue
        if outputs[step.op.index].shape != theirs[index].shape:
            notes.append(f"op {step.op.index}: shapes differ from LiteRT's tensor {index}, not compared")
            continue
        rows.append(_row(step.op.index, step.op.kind, ours.tensors[index].name, outputs[step.op.index],
                         theirs[index], atol, rtol))
    name = "LiteRT (reference kernels)" if reference == "litert-ref" else "LiteRT (optimised kernels, no delegate)"
    problem = too_few_matched(len(rows), len(ours.ops), "by tensor index")
    return Comparison(ours.model.source, name, rows, atol, rtol, isolate, notes, problem)


def too_few_matched(matched: int, ops: int, how: str) -> str | None:
    """The problem when fewer than half the ops found a partner: then the graphs do not
    correspond, and "all ops within tolerance" would say nothing."""
    if 2 * matched >= ops:
        return None
    return (
        f"only {matched} of {ops} ops matched {how}: the two sides do not correspond op by op, so they were "
        "not compared"
    )


def compare_models(
    model_a: str | os.PathLike | Model,
    model_b: str | os.PathLike | Model,
    inputs: np.ndarray | list[np.ndarray],
    *,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    backend: str | None = None,
    numerics: str | None = None,
) -> Comparison:
    """Two graphs in npdeeplab on the same input, op by op: matched by op index when both have
    the same op kinds in the same order, else by output tensor name (B is the reference); both
    run under numerics (npdeeplab.runtime.numerics)."""
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    a, b = _interpreter(model_a, backend, numerics), _interpreter(model_b, backend, numerics)
    out_a, out_b = collect_outputs(a, inputs), collect_outputs(b, inputs)
    same_structure = [s.op.kind for s in a.ops] == [s.op.kind for s in b.ops]
    b_by_name = {b.tensors[s.op.outputs[0]].name: s.op.index for s in b.ops}
    rows, notes = [], []
    for step in a.ops:
        name = a.tensors[step.op.outputs[0]].name
        partner = step.op.index if same_structure else b_by_name.get(name)
        if partner is None or partner not in out_b or step.op.index not in out_a:
            continue
        if out_a[step.op.index].shape != out_b[partner].shape:
            notes.append(f"op {step.op.index} ({name!r}): shapes differ, not compared")
            continue
        rows.append(_row(step.op.index, step.op.kind, name, out_a[step.op.index], out_b[partner], atol, rtol))
    matching = "op index" if same_structure else f"tensor name ({len(rows)} of {len(a.ops)} ops matched)"
    notes.insert(0, f"ops matched by {matching}")
    problem = too_few_matched(len(rows), len(a.ops), "by op index" if same_structure else "by tensor name")
    return Comparison(a.model.source, f"{b.model.source} (npdeeplab)", rows, atol, rtol, False, notes, problem)


def _row(
    index: int, kind: str, name: str, ours: np.ndarray, theirs: np.ndarray, atol: float, rtol: float
) -> CompareRow:
    max_abs, max_rel, units, unit, cosine, within = measure(ours, theirs, atol, rtol)
    off_by = lsb_counts(ours, theirs) if ours.dtype.kind in "iu" else None
    return CompareRow(index, kind, name, tuple(ours.shape), max_abs, max_rel, units, unit, cosine, within, off_by)


def lsb_counts(ours: np.ndarray, theirs: np.ndarray) -> tuple[int, int, int]:
    """How many integer elements differ by exactly 1, exactly 2, and by more."""
    gap = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    return int(np.count_nonzero(gap == 1)), int(np.count_nonzero(gap == 2)), int(np.count_nonzero(gap > 2))


def _interpreter(model: str | os.PathLike | Model, backend: str | None, numerics: str | None = None) -> Interpreter:
    if isinstance(model, Model):
        return Interpreter(model=model, backend=backend, numerics=numerics)
    from npdeeplab.zoo import resolve_model

    return Interpreter(model_path=resolve_model(model), backend=backend, numerics=numerics)

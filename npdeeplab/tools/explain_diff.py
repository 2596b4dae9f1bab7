"""Which numerics personality explains LiteRT's default interpreter (XNNPACK on), op by op.

LiteRT's default resolver (OpResolverType.AUTO) hands ops to XNNPACK, whose intermediates are not
kept, so the whole run cannot be held against npdeeplab op by op. Instead every op is cut out alone
(npdeeplab.tools.extract) and fed LiteRT's reference kernels' own tensors for its inputs (one
BUILTIN_REF run of the whole model, intermediates preserved); the op then runs in LiteRT AUTO and in
npdeeplab under each personality (npdeeplab.runtime.numerics), and a personality explains the op when
it gives AUTO's output bit for bit (integer outputs) or within the tolerance (float outputs).

    >>> from npdeeplab.tools.explain_diff import explain_diff          # doctest: +SKIP
    >>> result = explain_diff("deeplabv3_mnv2_dm05_pascal_quant.tflite", x)  # doctest: +SKIP
    >>> result.explained("xnnpack"), len(result.ops)                   # doctest: +SKIP
    (72, 72)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npdeeplab.errors import NpDeepLabError
from npdeeplab.model.ir import Model
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.runtime.fold import is_float16_weight_dequantize
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.runtime.numerics import NUMERICS, resolve_numerics
from npdeeplab.tools.comparison import DEFAULT_ATOL, DEFAULT_RTOL, litert_source, litert_tensors
from npdeeplab.tools.extract import extract_ops


@dataclass(frozen=True)
class OpVerdict:
    """One op alone: how far each personality is from LiteRT AUTO."""

    index: int
    kind: str
    dtype: str
    elements: int
    delegated: bool  # AUTO gave the op to XNNPACK
    gaps: dict[str, tuple[float, int]]  # personality -> (max |ours - AUTO| (LSBs for integers), elements off)
    explained_by: tuple[str, ...]
    problem: str | None = None  # why the op was not compared (then gaps is empty)


@dataclass(frozen=True)
class ExplainDiff:
    source: str
    personalities: tuple[str, ...]
    ops: tuple[OpVerdict, ...]
    atol: float
    rtol: float

    def explained(self, name: str) -> int:
        return sum(name in op.explained_by for op in self.ops)

    @property
    def compared(self) -> int:
        return sum(op.problem is None for op in self.ops)

    @property
    def unexplained(self) -> list[OpVerdict]:
        return [op for op in self.ops if op.problem is None and not op.explained_by]

    def to_text(self) -> str:
        width = max(len(", ".join(self.personalities)), len("reproduces AUTO")) + 2
        lines = [
            f"{self.source}: each op alone on LiteRT REF's inputs, LiteRT AUTO (XNNPACK on) against npdeeplab's "
            f"numerics {', '.join(self.personalities)} (integers bit for bit, floats within atol {self.atol:g} + "
            f"rtol {self.rtol:g})",
            f"{'#':>4}  {'op':<22}{'dtype':<9}{'AUTO ran':<10}{'reproduces AUTO':<{width}}"
            "others: max lsb (or |diff|) / elements differing",
        ]
        for op in self.ops:
            head = f"{op.index:>4}  {op.kind:<22}{op.dtype:<9}{'XNNPACK' if op.delegated else 'builtin':<10}"
            if op.problem is not None:
                lines.append(f"{head}not compared: {op.problem}")
                continue
            others = [f"{name} {_amount(*op.gaps[name], op.dtype)}" for name in self.personalities
                      if name not in op.explained_by]
            lines.append(f"{head}{', '.join(op.explained_by) or '-':<{width}}{'; '.join(others) or '-'}")
        lines.append("; ".join(f"{name} explains {self.explained(name)} of {self.compared} ops"
                               for name in self.personalities))
        skipped = len(self.ops) - self.compared
        if skipped:
            lines.append(f"{skipped} op(s) not compared")
        if self.unexplained:
            lines.append(f"explained by none: ops {', '.join(str(op.index) for op in self.unexplained)}")
        return "\n".join(lines)


def _amount(gap: float, count: int, dtype: str) -> str:
    size = f"{gap:.0f} lsb" if np.dtype(dtype).kind in "iu" else f"{gap:.3g}"
    return f"{size} / {count}"


def explain_diff(
    model: str | os.PathLike | Model,
    inputs: np.ndarray | Sequence[np.ndarray],
    *,
    numerics: Sequence[str] | None = None,
    backend: str | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> ExplainDiff:
    """Every op of the model alone, LiteRT AUTO against npdeeplab under each personality (default:
    all of npdeeplab.runtime.numerics.NUMERICS), fed LiteRT REF's tensors from a run on inputs."""
    from npdeeplab.zoo import resolve_model

    names = tuple(resolve_numerics(name) for name in (numerics or NUMERICS))
    model = model if isinstance(model, Model) else load_model(resolve_model(model))
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    source, _ = litert_source(model)
    reference = litert_tensors(source, inputs, "litert-ref")
    verdicts = []
    for op in model.main.ops:
        verdicts.append(_verdict(model, op.index, reference, names, backend, atol, rtol))
    return ExplainDiff(str(model.source), names, tuple(verdicts), atol, rtol)


def _verdict(model: Model, index: int, reference: dict[int, np.ndarray], names: tuple[str, ...],
             backend: str | None, atol: float, rtol: float) -> OpVerdict:
    op = model.main.ops[index]
    out = model.main.tensors[op.outputs[0]]
    if is_float16_weight_dequantize(op, model.main.tensors):
        return OpVerdict(index, op.kind, out.dtype.name, 0, False, {}, (), "widens float16 weights (runs with the op "
                         "it feeds)")
    part = extract_ops(model, index, index)
    data = write_model(part.model)
    missing = [t for t in part.source_inputs if t not in reference]
    if missing:
        return OpVerdict(index, op.kind, out.dtype.name, 0, False, {}, (), f"LiteRT REF kept no tensor {missing[0]}")
    feeds = [reference[t] for t in part.source_inputs]
    try:
        auto, delegated = run_auto(data, feeds)
    except (RuntimeError, ValueError) as error:  # an op LiteRT cannot run alone (a custom op)
        return OpVerdict(index, op.kind, out.dtype.name, 0, False, {}, (), f"LiteRT AUTO: {error}".splitlines()[0])
    gaps, explained = {}, []
    for name in names:
        ours = run_ours(data, feeds, backend, name)
        gaps[name] = _gap(ours, auto)
        if all(_same(a, b, atol, rtol) for a, b in zip(ours, auto, strict=True)):
            explained.append(name)
    elements = sum(int(a.size) for a in auto)
    return OpVerdict(index, op.kind, out.dtype.name, elements, delegated, gaps, tuple(explained))


def run_auto(data: bytes, feeds: Sequence[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    """LiteRT's default interpreter (XNNPACK on) on a model's bytes: its outputs, and whether XNNPACK took an op."""
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        raise NpDeepLabError("--explain-diff runs LiteRT: pip install ai-edge-litert") from None
    interpreter = LiteRT(model_content=data, experimental_op_resolver_type=OpResolverType.AUTO)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), feeds, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    delegated = any(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()], delegated


def run_ours(data: bytes, feeds: Sequence[np.ndarray], backend: str | None, numerics: str) -> list[np.ndarray]:
    interpreter = Interpreter(model_content=data, backend=backend, numerics=numerics)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), feeds, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [np.array(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]


def _same(ours: np.ndarray, auto: np.ndarray, atol: float, rtol: float) -> bool:
    if ours.shape != auto.shape or ours.dtype != auto.dtype:
        return False
    if auto.dtype.kind in "iub":
        return bool(np.array_equal(ours, auto))
    return bool(np.allclose(ours, auto, atol=atol, rtol=rtol, equal_nan=True))


def _gap(ours: list[np.ndarray], auto: list[np.ndarray]) -> tuple[float, int]:
    """The largest difference and how many elements differ at all, over the op's outputs."""
    largest, count = 0.0, 0
    for a, b in zip(ours, auto, strict=True):
        if a.shape != b.shape:
            return float("inf"), int(b.size)
        wide = np.float64 if b.dtype.kind == "f" else np.int64
        diff = np.abs(a.astype(wide) - b.astype(wide))
        differs = ~((a == b) | (np.isnan(a) & np.isnan(b))) if b.dtype.kind == "f" else a != b
        count += int(np.count_nonzero(differs))
        if differs.any():
            largest = max(largest, float(np.nan_to_num(diff[differs], nan=np.inf).max()))
    return largest, count

"""Run a model and record what every op produced: statistics, timings, and optionally the arrays.

Timing comes from the gaps between per-op hook calls (the hook fires right after each op), so an
op's time includes its kernel and the interpreter's bookkeeping for it, not the statistics,
which are computed after the run from copies.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npdeeplab.model.ir import TensorInfo
from npdeeplab.runtime.interpreter import Interpreter, OpCall


@dataclass(frozen=True)
class Stats:
    min: float
    max: float
    mean: float
    std: float
    zeros: float  # share of exact zeros (dead ReLUs)
    nonfinite: int  # NaN and Inf count


@dataclass(frozen=True)
class TraceRow:
    index: int
    kind: str
    tensor: int
    shape: tuple[int, ...]
    dtype: str
    stats: Stats  # of the real values: quantized outputs are dequantized first
    ms: float
    integer_range: tuple[int, int] | None = None  # min and max of a quantized output's integers


@dataclass
class Trace:
    model: str
    rows: list[TraceRow]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # dump key -> array (when kept)
    stopped_after: int | None = None

    def to_text(self) -> str:
        quantized = any(r.integer_range is not None for r in self.rows)
        width = max([20, *(len(r.kind) + 2 for r in self.rows)])  # custom op names run long
        lines = [
            f"{'#':>3}  {'op':<{width}}{'output':<20}{'min':>10}{'max':>10}{'mean':>10}{'std':>10}"
            f"{'zeros':>8}{'nan/inf':>8}{'ms':>8}" + (f"  {'integers':>10}" if quantized else "")
        ]
        for r in self.rows:
            s = r.stats
            shape = "[" + ",".join(map(str, r.shape)) + "]"
            integers = f"  {f'[{r.integer_range[0]},{r.integer_range[1]}]':>10}" if r.integer_range else ""
            lines.append(
                f"{r.index:>3}  {r.kind:<{width}}{shape:<20}{s.min:>10.4g}{s.max:>10.4g}{s.mean:>10.4g}{s.std:>10.4g}"
                f"{100 * s.zeros:>7.1f}%{s.nonfinite:>8}{r.ms:>8.2f}{integers}"
            )
        if quantized:
            lines.append("statistics of quantized outputs are of their real values, scale * (q - zero point); "
                         "integers: their range as stored")
        total = sum(r.ms for r in self.rows)
        ending = f"stopped after op {self.stopped_after}" if self.stopped_after is not None else "all ops ran"
        lines.append(f"{len(self.rows)} ops, {total:.1f} ms in total; {ending}")
        return "\n".join(lines)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Every kept array in one .npz, written atomically."""
        import io

        from npdeeplab.model.writer import write_atomically

        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        return write_atomically(path, buffer.getvalue())

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("#", "op", "output", "min", "max", "mean", "std", "zeros", "ms"))
        body = "".join(
            f"<tr><td>{r.index}</td><td>{html.escape(r.kind)}</td><td>{list(r.shape)}</td>"
            f"<td>{r.stats.min:.4g}</td><td>{r.stats.max:.4g}</td><td>{r.stats.mean:.4g}</td>"
            f"<td>{r.stats.std:.4g}</td><td>{100 * r.stats.zeros:.1f}%</td><td>{r.ms:.2f}</td></tr>"
            for r in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def dump_key(index: int, kind: str, tensor: int) -> str:
    """`op012_CONV_2D__t57`: op index (3 digits), op kind, output tensor index."""
    return f"op{index:03d}_{kind}__t{tensor}"


def statistics(array: np.ndarray) -> Stats:
    values = np.asarray(array)
    if values.size == 0:
        return Stats(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    as_float = values.astype(np.float64, copy=False)
    finite = np.isfinite(as_float)
    good = as_float[finite] if not finite.all() else as_float
    if good.size == 0:
        return Stats(float("nan"), float("nan"), float("nan"), float("nan"), 0.0, int(values.size))
    return Stats(
        float(good.min()), float(good.max()), float(good.mean()), float(good.std()),
        float(np.count_nonzero(values == 0) / values.size), int(values.size - np.count_nonzero(finite)),
    )


def real_values(value: np.ndarray, tensor: TensorInfo) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A quantized integer output as the real numbers it stands for, with its integer range; other
    outputs as they are."""
    q = tensor.quantization
    if value.dtype.kind not in "iu" or q is None or q.scale.size != 1 or value.size == 0:
        return value, None
    real = np.float32(q.scale[0]) * (value.astype(np.float32) - np.float32(q.zero_point[0]))
    return real, (int(value.min()), int(value.max()))


class _Stop(Exception):
    pass


def trace(
    model: str | os.PathLike | Interpreter,
    inputs: np.ndarray | list[np.ndarray],
    *,
    stop_after: int | None = None,
    keep_arrays: bool = False,
    backend: str | None = None,
) -> Trace:
    """Run the model once on inputs and record every op's output; stop after op `stop_after`."""
    interpreter = model if isinstance(model, Interpreter) else Interpreter(model_path=model, backend=backend)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    for detail, value in zip(details, inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()  # warm-up: first calls load or compile kernels, which is not the ops' time
    outputs: list[tuple[OpCall, np.ndarray, float]] = []
    clock = [time.perf_counter()]

    def record(call: OpCall) -> None:
        now = time.perf_counter()
        outputs.append((call, call.outputs[0].copy(), (now - clock[0]) * 1000))
        if stop_after is not None and call.index >= stop_after:
            raise _Stop
        clock[0] = time.perf_counter()

    remove = interpreter.add_hook(record)
    stopped = None
    try:
        clock[0] = time.perf_counter()
        interpreter.invoke()
    except _Stop:
        stopped = stop_after
    finally:
        remove()
    rows, arrays = [], {}
    if keep_arrays:
        arrays = {f"input__t{d['index']}": v for d, v in zip(details, inputs, strict=True)}
    for call, value, ms in outputs:
        tensor = call.op.outputs[0]
        real, integers = real_values(value, interpreter.tensors[tensor])
        rows.append(TraceRow(call.index, call.kind, tensor, value.shape, value.dtype.name, statistics(real), ms,
                             integers))
        if keep_arrays:
            arrays[dump_key(call.index, call.kind, tensor)] = value
    return Trace(str(getattr(interpreter.model, "source", model)), rows, arrays, stopped)


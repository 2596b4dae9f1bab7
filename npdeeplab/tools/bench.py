"""Time npdeeplab against LiteRT in one process: interleaved runs after warm-up, medians, ratios.

Import npdeeplab before NumPy when timing (benchmarks/bench.py and the CLI do), so that the
thread-waiting policy set in npdeeplab.runtime.threads takes effect.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npdeeplab.runtime.backends import numba_available
from npdeeplab.runtime.inputs import random_array
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.runtime.threads import default_threads

REFERENCE = "LiteRT + XNNPACK"
NO_DELEGATES = "LiteRT, no delegates"


@dataclass
class BenchResult:
    model: str
    runs: int
    threads: int
    medians_ms: dict[str, float]
    op_times_ms: dict[str, list[tuple[int, str, float]]] = field(default_factory=dict)  # engine -> rows
    op_macs: dict[int, int] = field(default_factory=dict)  # op index -> multiply-adds per inference
    peak_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    def ratio(self, engine: str, against: str) -> float | None:
        if against not in self.medians_ms:
            return None
        return self.medians_ms[engine] / self.medians_ms[against]

    def to_text(self, top: int = 10) -> str:
        lines = [
            f"npdeeplab bench {Path(self.model).name}: median of {self.runs} interleaved runs, "
            f"{self.threads} thread(s), {machine_description()}",
            "",
            f"{'engine':<26} {'median ms':>10} {'vs ' + REFERENCE:>22} {'vs ' + NO_DELEGATES:>26}",
        ]
        for engine, ms in self.medians_ms.items():
            cells = [_ratio_text(self.ratio(engine, other)) for other in (REFERENCE, NO_DELEGATES)]
            lines.append(f"{engine:<26} {ms:>10.1f} {cells[0]:>22} {cells[1]:>26}")
        for engine, rows in self.op_times_ms.items():
            total = sum(ms for _, _, ms in rows) or 1.0
            lines += ["", f"top ops by time, {engine}:"]
            for index, kind, ms in sorted(rows, key=lambda r: -r[2])[:top]:
                macs = self.op_macs.get(index, 0)
                rate = f"  {macs / ms / 1e6:6.1f} GMAC/s" if macs and ms > 0 else ""
                lines.append(f"  op {index:>3} {kind:<20} {ms:>7.2f} ms  {100 * ms / total:5.1f}%{rate}")
            by_kind: dict[str, float] = defaultdict(float)
            for _, kind, ms in rows:
                by_kind[kind] += ms
            summary = ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))
            lines.append(f"  by kind (ms): {summary}")
        lines += ["", f"peak RSS of this process: {self.peak_rss_mb:.0f} MB"] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def machine_description() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
    )


def benchmark(model_path: str | Path, runs: int = 20, threads: int | None = None, warmup: int = 3) -> BenchResult:
    """Time every available engine on the same random input, interleaved round by round."""
    threads = threads or default_threads()
    engines, notes = _engines(str(model_path), threads)
    feeds = {name: make_feed(interpreter) for name, interpreter in engines.items()}
    for name, interpreter in engines.items():
        for _ in range(warmup):
            feeds[name]()
            interpreter.invoke()
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(runs):
        for name, interpreter in engines.items():
            start = time.perf_counter()
            interpreter.invoke()
            samples[name].append((time.perf_counter() - start) * 1000)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ours = {name: interpreter for name, interpreter in engines.items() if isinstance(interpreter, Interpreter)}
    op_times = {name: profile_ops(interpreter, max(3, runs // 4)) for name, interpreter in ours.items()}
    op_macs = {step.op.index: step.macs for step in next(iter(ours.values())).ops}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return BenchResult(str(model_path), runs, threads, medians, op_times, op_macs, peak, notes)


def profile_ops(interpreter: Interpreter, runs: int) -> list[tuple[int, str, float]]:
    """Median time of each op over several invokes, from the gaps between per-op hook calls."""
    times: dict[int, list[float]] = defaultdict(list)
    kinds = {step.op.index: step.op.kind for step in interpreter.ops}
    clock = [0.0]

    def hook(call: object) -> None:
        now = time.perf_counter()
        times[call.index].append((now - clock[0]) * 1000)
        clock[0] = now

    remove = interpreter.add_hook(hook)
    try:
        for _ in range(runs):
            clock[0] = time.perf_counter()
            interpreter.invoke()
    finally:
        remove()
    return [(index, kinds[index], statistics.median(values)) for index, values in sorted(times.items())]


def make_feed(interpreter: object) -> Callable[[], None]:
    """Set every input to fixed random data of the right dtype; returns a function that re-sets it."""
    rng = np.random.default_rng(0)
    interpreter.allocate_tensors()
    feeds = []
    for detail in interpreter.get_input_details():
        feeds.append((detail["index"], random_array(rng, tuple(detail["shape"]), detail["dtype"])))

    def feed() -> None:
        for index, value in feeds:
            interpreter.set_tensor(index, value)

    feed()
    return feed


def _engines(model_path: str, threads: int) -> tuple[dict[str, object], list[str]]:
    engines: dict[str, object] = {}
    notes = []
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        notes.append("LiteRT (ai-edge-litert) is not installed: no reference timings, no ratios")
    else:
        engines[REFERENCE] = LiteRT(model_path=model_path, num_threads=threads)
        engines[NO_DELEGATES] = LiteRT(
            model_path=model_path,
            num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    if numba_available():
        engines["npdeeplab, Numba"] = Interpreter(model_path=model_path, num_threads=threads, backend="numba")
    else:
        notes.append("Numba does not import here: no Numba timings")
    engines["npdeeplab, NumPy"] = Interpreter(model_path=model_path, num_threads=threads, backend="numpy")
    if "numpy" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        notes.append("NumPy was imported before npdeeplab: thread-waiting policy not applied")
    return engines, notes


def _ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"

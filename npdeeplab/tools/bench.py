"""Time npdeeplab against LiteRT, each engine alone in a fresh process.

Engines sharing one process slow each other down: on 2 cores LiteRT + XNNPACK ran about 2x slower
beside npdeeplab's idle thread pools than alone. So `benchmark` (the parent) imports no engine.
For each pass it starts one child process per engine (`python -m npdeeplab.tools.bench --engine
KEY ...`, the hidden entry point at the bottom of this module), reversing the order on odd passes so
no engine always runs right after another. A child loads only its engine, warms it up, times the
invokes and prints one JSON line; the parent keeps each engine's best (lowest) median.

Under contention (`load` N > 0, `npdeeplab bench --load N`): a phone or a laptop seldom gives one
model all its cores, and engines differ in how they suffer when they have fewer than the threads
they were given. So with a load every engine runs twice in each pass, back to back: once alone and
once while N other processes (`busy_cores`: each `python -c "while True: pass"`, a pure busy loop)
keep N cores busy. The spinners start before the engine's process, get SPIN_UP_S to get going,
and are stopped and reaped when it ends, however it ends (result, error, timeout, Ctrl-C). The
odd passes reverse the whole sequence, so the loaded run comes second on even passes and first
on odd ones. The unloaded figures are those a run without a load gives; the result adds each
engine's best loaded median and its slowdown, loaded / unloaded best median, from the same run:
e.g. Numba's slowdown beside XNNPACK's under the same load, on the same machine, in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npdeeplab.errors import NpDeepLabError
from npdeeplab.runtime.threads import default_threads

REFERENCE = "LiteRT + XNNPACK"
NO_DELEGATES = "LiteRT, no delegates"
ENGINES = {  # key (as `--engines` takes it) -> label
    "xnnpack": REFERENCE,
    "litert": NO_DELEGATES,
    "numba": "npdeeplab, Numba",
    "numpy": "npdeeplab, NumPy",
}
LITERT_ENGINES = ("xnnpack", "litert")
DEFAULT_TIMEOUT_S = 600.0  # per child process; a first Numba run compiles for ~40 s (a quantized model: ~80)
ENGINE_MODULES = ("ai_edge_litert", "numba", "npdeeplab.kernels.fast")  # what a child reports having loaded
SPINNER = "while True: pass"  # what each process of a load runs
SPIN_UP_S = 0.3  # how long a load's processes get to get going before the engine's process starts
LOADED = "+load"  # suffix of an engine key in BenchResult.order for its run under the load


class BenchError(NpDeepLabError):
    """An engine's process failed, hung, or printed no result."""


class EngineUnavailable(Exception):
    """The engine's dependency (LiteRT, Numba) does not import in this environment."""


@dataclass
class ChildReport:
    """What one engine's process measured, as it printed it."""

    engine: str  # key, e.g. "numba"
    pid: int
    median_ms: float
    samples_ms: list[float]
    peak_rss_mb: float
    blas: dict[str, Any]  # NumPy's BLAS as threadpoolctl saw it inside this process
    thread_pools: list[str]  # every native thread pool loaded in this process
    engine_modules: list[str]  # which of ENGINE_MODULES this process had imported
    op_times_ms: list[tuple[int, str, float]] = field(default_factory=list)  # npdeeplab engines only
    op_macs: dict[int, int] = field(default_factory=dict)  # op index -> multiply-adds per inference
    load_pids: list[int] = field(default_factory=list)  # the processes keeping cores busy while this one ran


@dataclass
class BenchResult:
    model: str
    runs: int
    threads: int
    passes: int
    warmup: int
    load: int  # other processes keeping cores busy in each engine's loaded runs; 0: no loaded runs
    method: str
    machine: str
    order: list[list[str]]  # engine keys, in the order each pass ran them
    processes: dict[str, list[ChildReport]]  # engine label -> one report per pass
    medians_ms: dict[str, float]  # engine label -> best median over the passes
    spreads_ms: dict[str, tuple[float, float]]  # engine label -> (lowest, highest) median over the passes
    peak_rss_mb: dict[str, float]  # engine label -> highest peak RSS of its processes
    op_times_ms: dict[str, list[tuple[int, str, float]]]  # npdeeplab engine label -> per-op rows of its best pass
    op_macs: dict[int, int]
    blas: dict[str, Any]
    loaded_processes: dict[str, list[ChildReport]]  # engine label -> one report per pass, run under the load
    loaded_medians_ms: dict[str, float]  # engine label -> best median under the load
    loaded_spreads_ms: dict[str, tuple[float, float]]  # engine label -> (lowest, highest) median under the load
    slowdowns: dict[str, float]  # engine label -> best median under the load / best median alone
    notes: list[str] = field(default_factory=list)

    def ratio(self, engine: str, against: str) -> float | None:
        if engine not in self.medians_ms or against not in self.medians_ms:
            return None
        return self.medians_ms[engine] / self.medians_ms[against]

    def slowdown(self, engine: str) -> float | None:
        """How many times slower the engine's best median was under the load than alone (None: no load)."""
        return self.slowdowns.get(engine)

    def to_text(self, top: int = 10) -> str:
        lines = [
            f"npdeeplab bench {Path(self.model).name}: {self.threads} thread(s), {self.machine}",
            f"method: {self.method}",
            f"BLAS: {blas_text(self.blas)}",
            "",
            *self._engine_table(),
        ]
        if self.load:
            lines += ["", f"under load, {load_description(self.load)}:", *self._load_table()]
        for engine, rows in self.op_times_ms.items():
            lines += ["", f"top ops by time, {engine} (its best pass):", *op_table(rows, self.op_macs, top)]
        lines += ["", "order of passes: " + " / ".join(",".join(keys) for keys in self.order)]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _engine_table(self) -> list[str]:
        lines = [
            f"{'engine':<22}  {'best median ms':>14}  {'spread ms':>11}  {'vs ' + REFERENCE:>19}  "
            f"{'vs ' + NO_DELEGATES:>23}  {'peak RSS MB':>11}"
        ]
        for engine, ms in self.medians_ms.items():
            low, high = self.spreads_ms[engine]
            against = [_ratio_text(self.ratio(engine, other)) for other in (REFERENCE, NO_DELEGATES)]
            lines.append(
                f"{engine:<22}  {ms:>14.1f}  {f'{low:.1f}-{high:.1f}':>11}  {against[0]:>19}  {against[1]:>23}  "
                f"{self.peak_rss_mb[engine]:>11.0f}"
            )
        return lines

    def _load_table(self) -> list[str]:
        against = "loaded vs " + REFERENCE
        lines = [
            f"{'engine':<22}  {'unloaded ms':>11}  {'loaded ms':>9}  {'loaded spread ms':>16}  {'slowdown':>8}  "
            f"{against:>26}"
        ]
        reference = self.loaded_medians_ms.get(REFERENCE)
        for engine, ms in self.loaded_medians_ms.items():
            low, high = self.loaded_spreads_ms[engine]
            ratio = _ratio_text(ms / reference if reference else None)
            lines.append(
                f"{engine:<22}  {self.medians_ms[engine]:>11.1f}  {ms:>9.1f}  {f'{low:.1f}-{high:.1f}':>16}  "
                f"{_ratio_text(self.slowdown(engine)):>8}  {ratio:>26}"
            )
        return lines


def machine_description() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
    )


def method_description(passes: int, runs: int, warmup: int, load: int = 0) -> str:
    passes_text = "1 pass" if passes == 1 else f"{passes} passes alternating"
    text = (
        f"each engine alone in a fresh process, {passes_text}, "
        f"best median of {runs} runs (after {warmup} warm-up runs)"
    )
    return text + (f", and again with {load_description(load)}" if load else "")


def load_description(load: int) -> str:
    """E.g. "1 other process keeping a core busy"."""
    if load == 1:
        return "1 other process keeping a core busy"
    return f"{load} other processes keeping {load} cores busy"


def blas_text(blas: dict[str, Any]) -> str:
    if not blas:
        return "not seen (no engine process reported it)"
    text = (
        f"{blas.get('internal_api')} {blas.get('version')}, {blas.get('architecture') or 'unknown'} kernel, "
        f"{blas.get('threading_layer')} threads (seen inside the {blas.get('seen_in')} process)"
    )
    if blas.get("coretype_override"):
        text += f", OPENBLAS_CORETYPE={blas['coretype_override']}"
    return text


def op_table(rows: list[tuple[int, str, float]], op_macs: dict[int, int], top: int) -> list[str]:
    """The slowest ops (with GMAC/s where an op multiplies), then the time per op kind."""
    total = sum(ms for _, _, ms in rows) or 1.0
    lines = []
    for index, kind, ms in sorted(rows, key=lambda row: -row[2])[:top]:
        macs = op_macs.get(index, 0)
        rate = f"  {macs / ms / 1e6:6.1f} GMAC/s" if macs and ms > 0 else ""
        lines.append(f"  op {index:>3} {kind:<20} {ms:>7.2f} ms  {100 * ms / total:5.1f}%{rate}")
    by_kind: dict[str, float] = defaultdict(float)
    for _, kind, ms in rows:
        by_kind[kind] += ms
    summary = ", ".join(f"{kind} {ms:.1f}" for kind, ms in sorted(by_kind.items(), key=lambda item: -item[1]))
    return [*lines, f"  by kind (ms): {summary}"]


# The parent: one fresh process per engine and pass.


def benchmark(
    model_path: str | Path,
    runs: int = 20,
    threads: int | None = None,
    passes: int = 3,
    engines: Sequence[str] | None = None,
    warmup: int = 3,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
    numerics: str = "reference",
    load: int = 0,
) -> BenchResult:
    """Time each engine (keys of ENGINES; default all) alone in a fresh process, alternating over passes;
    npdeeplab's engines under numerics (npdeeplab.runtime.numerics). With load N > 0, each engine also
    runs once per pass while N other processes keep N cores busy (see the module docstring)."""
    if load < 0:
        raise ValueError(f"load must be at least 0, got {load}")
    keys = engine_keys(engines)
    threads = threads or default_threads()
    processes: dict[str, list[ChildReport]] = {}
    loaded_processes: dict[str, list[ChildReport]] = {}
    order: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="npdeeplab-bench-") as scratch:
        wanted = any(key in LITERT_ENGINES for key in keys)
        litert_path, notes = litert_model(model_path, Path(scratch)) if wanted else (model_path, [])
        for pass_index in range(passes):
            sequence = [(key, loaded) for key in keys for loaded in ([False, True] if load else [False])]
            ran: list[str] = []
            unavailable: set[str] = set()
            for key, loaded in sequence if pass_index % 2 == 0 else sequence[::-1]:
                if key in unavailable:
                    continue
                if progress:
                    under = f", with {load_description(load)}" if loaded else ""
                    progress(f"pass {pass_index + 1}/{passes}: {ENGINES[key]}{under}")
                path = litert_path if key in LITERT_ENGINES else model_path
                with busy_cores(load if loaded else 0) as load_pids:
                    report = run_engine_process(key, path, runs, threads, warmup, timeout_s, numerics)
                if "unavailable" in report:
                    notes.append(f"{ENGINES[key]} skipped: {report['unavailable']}")
                    unavailable.add(key)
                    continue
                reports = loaded_processes if loaded else processes
                reports.setdefault(ENGINES[key], []).append(child_report({**report, "load_pids": load_pids}))
                ran.append(key + LOADED if loaded else key)
            keys = [key for key in keys if key not in unavailable]  # an unavailable engine is tried once
            order.append(ran)
    if numerics != "reference" and any(key not in LITERT_ENGINES for key in keys):
        notes.append(f"npdeeplab's engines ran {numerics} numerics")
    return summarize(
        str(model_path), runs, threads, passes, warmup, order, processes, notes, load, loaded_processes
    )


@contextmanager
def busy_cores(count: int, spin_up_s: float = SPIN_UP_S) -> Iterator[list[int]]:
    """For the length of the with block, `count` other processes each keep a core busy (a pure busy loop,
    SPINNER); yields their pids. They are started, given spin_up_s to get going, and on leaving the
    block, however it is left (an error, a timeout, KeyboardInterrupt), killed and reaped. Their stdin,
    stdout and stderr are /dev/null: they share no pipe with anyone, so nothing of theirs can block."""
    spinners: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            spinners.append(
                subprocess.Popen(
                    [sys.executable, "-S", "-c", SPINNER],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                )
            )
        if spinners:
            time.sleep(spin_up_s)
        yield [spinner.pid for spinner in spinners]
    finally:
        stop_processes(spinners)


def stop_processes(processes: Sequence[subprocess.Popen]) -> None:
    """Kill (SIGKILL: a busy loop cannot ignore it) and reap every process; a Ctrl-C meanwhile waits its turn."""
    interrupted = False
    for process in processes:
        process.kill()
    for process in processes:
        while True:
            try:
                process.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def litert_model(model_path: str | Path, scratch: Path) -> tuple[str | Path, list[str]]:
    """The model LiteRT runs: the file itself, or, where it has custom ops LiteRT cannot run, their
    registered builtin rewrite written into scratch; and notes saying so. A file that does not
    load is handed on as it is: the engines' own processes report it."""
    from npdeeplab.model.loader import load_model
    from npdeeplab.model.writer import write_model
    from npdeeplab.ops.custom import has_custom_ops, rewrite_for_litert

    try:
        model = load_model(model_path)
    except NpDeepLabError:
        return model_path, []
    if not has_custom_ops(model):
        return model_path, []
    rewritten, notes = rewrite_for_litert(model)
    path = scratch / f"{Path(model_path).stem}.litert.tflite"
    path.write_bytes(write_model(rewritten))
    return path, [f"LiteRT: {note}" for note in notes]


def engine_keys(engines: Sequence[str] | None) -> list[str]:
    """The engines asked for, in ENGINES' order; unknown names refused."""
    if engines is None:
        return list(ENGINES)
    unknown = [name for name in engines if name not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"unknown engine(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ENGINES)}")
    return [key for key in ENGINES if key in engines]


def run_engine_process(
    key: str, model_path: str | Path, runs: int, threads: int, warmup: int, timeout_s: float,
    numerics: str = "reference",
) -> dict:
    """Run one engine in a fresh child process; its JSON report (or {"unavailable": reason})."""
    label = ENGINES[key]
    command = [sys.executable, "-m", "npdeeplab.tools.bench", "--engine", key, "--runs", str(runs)]
    command += ["--threads", str(threads), "--warmup", str(warmup), "--numerics", numerics, str(model_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=child_environment(key))
    except subprocess.TimeoutExpired:
        message = f"bench: {label} did not finish within {timeout_s:g} s in its own process; it was stopped"
        raise BenchError(message) from None
    if done.returncode != 0:
        reason = _last_line(done.stderr).removeprefix("npdeeplab: error: ") or "no message"
        raise BenchError(f"bench: {label} failed in its own process (exit {done.returncode}): {reason}")
    try:
        return json.loads(_last_line(done.stdout))
    except json.JSONDecodeError:
        raise BenchError(f"bench: {label}'s process printed no result line") from None


def child_environment(key: str) -> dict[str, str]:
    """The parent's environment; LiteRT's processes keep NumPy's BLAS to one thread (no idle worker pool)."""
    environment = dict(os.environ)
    if key in LITERT_ENGINES:
        environment["OPENBLAS_NUM_THREADS"] = "1"
    return environment


def child_report(report: dict) -> ChildReport:
    """A ChildReport from JSON, with op indices back as ints and per-op rows as tuples."""
    report = dict(report)
    report["op_times_ms"] = [tuple(row) for row in report.get("op_times_ms", [])]
    report["op_macs"] = {int(index): macs for index, macs in report.get("op_macs", {}).items()}
    return ChildReport(**report)


def summarize(
    model: str,
    runs: int,
    threads: int,
    passes: int,
    warmup: int,
    order: list[list[str]],
    processes: dict[str, list[ChildReport]],
    notes: list[str],
    load: int = 0,
    loaded_processes: dict[str, list[ChildReport]] | None = None,
) -> BenchResult:
    """Best median per engine, the spread of its medians, and the per-op rows of its best pass; under a
    load, also the best median and spread of its loaded runs, and its slowdown."""
    loaded_processes = loaded_processes or {}
    best = {engine: min(reports, key=lambda r: r.median_ms) for engine, reports in processes.items()}
    medians = {engine: [report.median_ms for report in reports] for engine, reports in processes.items()}
    loaded = {engine: [report.median_ms for report in reports] for engine, reports in loaded_processes.items()}
    op_macs = next((r.op_macs for r in best.values() if r.op_macs), {})
    return BenchResult(
        model=model,
        runs=runs,
        threads=threads,
        passes=passes,
        warmup=warmup,
        load=load,
        method=method_description(passes, runs, warmup, load),
        machine=machine_description(),
        order=order,
        processes=processes,
        medians_ms={engine: report.median_ms for engine, report in best.items()},
        spreads_ms={engine: (min(values), max(values)) for engine, values in medians.items()},
        peak_rss_mb={engine: max(r.peak_rss_mb for r in reports) for engine, reports in processes.items()},
        op_times_ms={engine: report.op_times_ms for engine, report in best.items() if report.op_times_ms},
        op_macs=op_macs,
        blas=blas_of(processes),
        loaded_processes=loaded_processes,
        loaded_medians_ms={engine: min(values) for engine, values in loaded.items()},
        loaded_spreads_ms={engine: (min(values), max(values)) for engine, values in loaded.items()},
        slowdowns={engine: min(values) / best[engine].median_ms for engine, values in loaded.items()},
        notes=notes,
    )


def blas_of(processes: dict[str, list[ChildReport]]) -> dict[str, Any]:
    """NumPy's BLAS as seen inside an npdeeplab process (where it does the work), else any process."""
    preferred = [ENGINES["numpy"], ENGINES["numba"], *processes]
    for engine in preferred:
        for report in processes.get(engine, []):
            if report.blas:
                return {**report.blas, "seen_in": engine}
    return {}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


# The child: one engine, alone in this process.


def measure_engine(key: str, model_path: str, runs: int, threads: int, warmup: int,
                   numerics: str = "reference") -> dict:
    """Load one engine, warm it up, time `runs` invokes; the report a child prints (raises EngineUnavailable)."""
    interpreter = load_engine(key, model_path, threads, numerics)
    feed = make_feed(interpreter)
    for _ in range(warmup):
        feed()
        interpreter.invoke()
    feed()
    samples = time_invokes(interpreter, runs)
    report: dict[str, Any] = {"engine": key, "pid": os.getpid(), "median_ms": statistics.median(samples)}
    report["samples_ms"] = samples
    if key not in LITERT_ENGINES:
        report["op_times_ms"] = profile_ops(interpreter, max(3, runs // 4))
        report["op_macs"] = {step.op.index: step.macs for step in interpreter.ops}
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    report["blas"], report["thread_pools"] = blas_and_thread_pools()
    report["engine_modules"] = [name for name in ENGINE_MODULES if name in sys.modules]
    return report


def load_engine(key: str, model_path: str, threads: int, numerics: str = "reference") -> Any:
    """The engine's interpreter; only its own dependencies are imported (numerics: npdeeplab's only)."""
    if key in LITERT_ENGINES:
        try:
            from ai_edge_litert.interpreter import Interpreter as LiteRT
            from ai_edge_litert.interpreter import OpResolverType
        except ImportError as error:
            raise EngineUnavailable(f"LiteRT (ai-edge-litert) does not import here ({error})") from None
        if key == "xnnpack":
            return LiteRT(model_path=model_path, num_threads=threads)
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return LiteRT(model_path=model_path, num_threads=threads, experimental_op_resolver_type=resolver)
    from npdeeplab.runtime.backends import numba_available
    from npdeeplab.runtime.interpreter import Interpreter

    if key == "numba" and not numba_available():
        raise EngineUnavailable("Numba does not import here")
    return Interpreter(model_path=model_path, num_threads=threads, backend=key, numerics=numerics)


def time_invokes(interpreter: Any, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def blas_and_thread_pools() -> tuple[dict[str, Any], list[str]]:
    """NumPy's BLAS (which library, which CPU kernel it picked) and every thread pool in this process."""
    from threadpoolctl import threadpool_info

    pools = threadpool_info()
    blas = next((pool for pool in pools if pool.get("user_api") == "blas"), {})
    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    described = {name: blas.get(name) for name in keep} if blas else {}
    if blas and os.environ.get("OPENBLAS_CORETYPE"):
        described["coretype_override"] = os.environ["OPENBLAS_CORETYPE"]
    return described, [f"{pool.get('internal_api')} ({pool.get('num_threads')} threads)" for pool in pools]


def profile_ops(interpreter: Any, runs: int) -> list[tuple[int, str, float]]:
    """Median time of each op over several invokes, from the gaps between per-op hook calls."""
    times: dict[int, list[float]] = defaultdict(list)
    kinds = {step.op.index: step.op.kind for step in interpreter.ops}
    clock = [0.0]

    def hook(call: Any) -> None:
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


def make_feed(interpreter: Any) -> Callable[[], None]:
    """Set every input to fixed random data of the right dtype; returns a function that re-sets it."""
    from npdeeplab.runtime.inputs import random_array

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


def child_main(argv: Sequence[str] | None = None) -> int:
    """The hidden entry point a child runs: measure one engine, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m npdeeplab.tools.bench", description="(internal) one engine")
    parser.add_argument("--engine", choices=list(ENGINES), required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--numerics", default="reference")
    parser.add_argument("model")
    args = parser.parse_args(argv)
    try:
        report = measure_engine(args.engine, args.model, args.runs, args.threads, args.warmup, args.numerics)
    except EngineUnavailable as reason:
        report = {"engine": args.engine, "unavailable": str(reason)}
    except NpDeepLabError as error:
        print(f"npdeeplab: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(child_main())

"""npdeeplab bench: each engine alone in a fresh process, alternating over passes; best medians, ratios,
the per-op table, a parent process that never loads an engine, and (--load) each engine again beside
busy processes that are always reaped."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from npdeeplab.cli import main
from npdeeplab.tools import bench
from npdeeplab.tools.bench import ENGINES, NO_DELEGATES, REFERENCE, SPINNER, BenchError, benchmark, busy_cores

NUMBA, NUMPY = ENGINES["numba"], ENGINES["numpy"]
ALL_ENGINES = [REFERENCE, NO_DELEGATES, NUMBA, NUMPY]

# Runs benchmark() in a process of its own, then reports what that parent process had imported.
PARENT_SCRIPT = textwrap.dedent(
    """
    import os, pickle, sys
    from npdeeplab.tools.bench import benchmark

    result = benchmark(sys.argv[1], runs=2, threads=2, passes=2, warmup=1)
    loaded = [name for name in ("ai_edge_litert", "numba", "npdeeplab.kernels.fast") if name in sys.modules]
    with open(sys.argv[2], "wb") as file:
        pickle.dump({"result": result, "pid": os.getpid(), "loaded": loaded}, file)
    """
)


@pytest.fixture(scope="module")
def parent(seed_model_path, litert, tmp_path_factory):
    """The result of a full benchmark (every engine, 2 passes of 2 runs), with its parent's pid and imports."""
    out = tmp_path_factory.mktemp("bench") / "parent.pickle"
    command = [sys.executable, "-c", PARENT_SCRIPT, str(seed_model_path), str(out)]
    subprocess.run(command, check=True, timeout=300, capture_output=True)
    with open(out, "rb") as file:
        return pickle.load(file)


@pytest.fixture(scope="module")
def result(parent):
    return parent["result"]


def test_parent_process_imports_no_engine(parent):
    assert parent["loaded"] == []


def test_each_engine_ran_alone_in_its_own_process(parent, result):
    pids = [report.pid for reports in result.processes.values() for report in reports]
    assert len(pids) == 4 * 2 and len(set(pids)) == len(pids)
    assert parent["pid"] not in pids
    loaded = {engine: reports[0].engine_modules for engine, reports in result.processes.items()}
    assert loaded == {
        REFERENCE: ["ai_edge_litert"],
        NO_DELEGATES: ["ai_edge_litert"],
        NUMBA: ["numba", "npdeeplab.kernels.fast"],
        NUMPY: [],
    }
    for engine in (REFERENCE, NO_DELEGATES):  # NumPy's BLAS keeps no worker threads beside LiteRT
        assert result.processes[engine][0].thread_pools == ["openblas (1 threads)"]


def test_passes_alternate_the_order(result):
    assert result.order == [list(ENGINES), list(ENGINES)[::-1]]


def test_best_median_spread_and_ratios(result):
    assert list(result.medians_ms) == ALL_ENGINES
    for engine, reports in result.processes.items():
        medians = [report.median_ms for report in reports]
        assert [len(report.samples_ms) for report in reports] == [2, 2]
        assert result.medians_ms[engine] == min(medians) > 0
        assert result.spreads_ms[engine] == (min(medians), max(medians))
        assert result.peak_rss_mb[engine] == max(report.peak_rss_mb for report in reports) > 10
    assert result.ratio(REFERENCE, REFERENCE) == 1.0
    assert result.ratio(NUMBA, REFERENCE) == result.medians_ms[NUMBA] / result.medians_ms[REFERENCE]
    assert result.ratio(NUMBA, "no such engine") is None


def test_per_op_times_cover_every_op_of_both_backends(result):
    assert list(result.op_times_ms) == [NUMBA, NUMPY]
    for engine in (NUMBA, NUMPY):
        rows = result.op_times_ms[engine]
        best = min(result.processes[engine], key=lambda report: report.median_ms)
        assert rows == best.op_times_ms  # from the engine's best pass
        assert [index for index, _, _ in rows] == list(range(70))
        assert rows[66][1] == "CONV_2D" and all(ms > 0 for _, _, ms in rows)
    assert result.op_macs[66] == 33 * 33 * 512 * 256  # 1x1 conv, 512 -> 256 channels at 33x33


def test_blas_kernel_is_seen_inside_an_npdeeplab_process(result):
    assert result.blas["seen_in"] == NUMPY
    assert result.blas["internal_api"] and "architecture" in result.blas


def test_text_table(result):
    lines = result.to_text(top=3).splitlines()
    assert lines[0].startswith("npdeeplab bench deeplabv3_257_mv_gpu.tflite: 2 thread(s), ")
    assert lines[1] == (
        "method: each engine alone in a fresh process, 2 passes alternating, best median of 2 runs "
        "(after 1 warm-up runs)"
    )
    assert lines[2].startswith(f"BLAS: {result.blas['internal_api']} ") and "kernel" in lines[2]
    header = "engine best median ms spread ms vs LiteRT + XNNPACK vs LiteRT, no delegates peak RSS MB"
    assert lines[4].split() == header.split()
    low, high = result.spreads_ms[REFERENCE]
    no_delegates = f"{result.ratio(REFERENCE, NO_DELEGATES):.2f}x"
    assert lines[5].startswith(REFERENCE)
    peak = f"{result.peak_rss_mb[REFERENCE]:.0f}"
    assert lines[5].split()[-4:] == [f"{low:.1f}-{high:.1f}", "1.00x", no_delegates, peak]
    table = lines[lines.index(f"top ops by time, {NUMBA} (its best pass):") + 1 :][:4]
    assert all(line.startswith("  op ") for line in table[:3]) and table[3].startswith("  by kind (ms): ")
    assert any("GMAC/s" in line for line in table[:3])  # at least one convolution among the slowest ops
    assert lines[-1] == "order of passes: xnnpack,litert,numba,numpy / numpy,numba,litert,xnnpack"


def test_cli_json_with_a_subset_of_engines(seed_model_path, capsys):
    argv = ["bench", str(seed_model_path), "--engines", "numpy", "--runs", "1", "--passes", "1", "--threads", "1"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == 1 and data["threads"] == 1 and data["passes"] == 1
    assert list(data["medians_ms"]) == [NUMPY] and data["order"] == [["numpy"]]
    assert data["method"].startswith("each engine alone in a fresh process, 1 pass, best median of 1 runs")
    assert len(data["processes"][NUMPY][0]["op_times_ms"]) == 70


def test_missing_dependencies_are_noted_and_skipped(seed_model_path, tmp_path, monkeypatch):
    """Where LiteRT and Numba do not import (here: stand-ins that raise ImportError, seen only by the children)."""
    for package in ("ai_edge_litert", "numba"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"raise ImportError('{package} is blocked for this test')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = benchmark(seed_model_path, runs=1, passes=2, warmup=0, engines=["xnnpack", "numba", "numpy"])
    assert list(result.medians_ms) == [NUMPY] and result.order == [["numpy"], ["numpy"]]
    assert result.notes == [
        f"{REFERENCE} skipped: LiteRT (ai-edge-litert) does not import here (ai_edge_litert is blocked for this test)",
        f"{NUMBA} skipped: Numba does not import here",
    ]
    assert result.ratio(NUMPY, REFERENCE) is None
    numpy_row = result.to_text().splitlines()[5]
    assert numpy_row.startswith(NUMPY) and numpy_row.split()[-3:-1] == ["-", "-"]  # no ratios without LiteRT


def test_a_failing_engine_is_one_line_and_exit_2(tmp_path, capsys):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer at all")
    assert main(["bench", str(broken), "--engines", "numpy", "--runs", "1", "--passes", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert error.startswith("npdeeplab: error: bench: npdeeplab, NumPy failed in its own process (exit 2): ")


def test_a_hanging_engine_is_stopped(tmp_path):
    model = tmp_path / "any.tflite"
    model.write_bytes(b"")
    with pytest.raises(BenchError, match="did not finish within 0.05 s in its own process; it was stopped"):
        benchmark(model, engines=["numpy"], runs=1, passes=1, timeout_s=0.05)


def gone(pid: int) -> bool:
    """Whether no process (not even a zombie, unreaped) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def spinners_left() -> list[int]:
    """Busy-loop processes still under this one, where psutil is installed (else the pid checks stand alone)."""
    try:
        import psutil
    except ImportError:
        return []
    children = psutil.Process().children(recursive=True)
    return [child.pid for child in children if SPINNER in " ".join(_cmdline(child))]


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except Exception:  # exited meanwhile
        return []


@pytest.fixture(scope="module")
def loaded(seed_model_path):
    """NumPy's engine under --load 1: 2 passes of 2 runs, each pass alone and beside one busy process."""
    return benchmark(seed_model_path, runs=2, threads=1, passes=2, warmup=0, engines=["numpy"], load=1)


def test_load_runs_each_engine_alone_and_loaded_in_alternating_order(loaded):
    assert loaded.load == 1
    assert loaded.order == [["numpy", "numpy+load"], ["numpy+load", "numpy"]]
    assert loaded.method.endswith(", and again with 1 other process keeping a core busy")
    alone, beside = loaded.processes[NUMPY], loaded.loaded_processes[NUMPY]
    assert len(alone) == len(beside) == 2 and all(report.load_pids == [] for report in alone)
    assert all(len(report.load_pids) == 1 for report in beside)
    spinner_pids = [pid for report in beside for pid in report.load_pids]
    child_pids = [report.pid for report in alone + beside]
    assert len(set(spinner_pids + child_pids)) == 6 and os.getpid() not in spinner_pids + child_pids


def test_load_reports_the_slowdown_from_best_medians(loaded):
    unloaded = min(report.median_ms for report in loaded.processes[NUMPY])
    medians = [report.median_ms for report in loaded.loaded_processes[NUMPY]]
    assert loaded.medians_ms[NUMPY] == unloaded
    assert loaded.loaded_medians_ms[NUMPY] == min(medians) > 0
    assert loaded.loaded_spreads_ms[NUMPY] == (min(medians), max(medians))
    assert loaded.slowdown(NUMPY) == loaded.slowdowns[NUMPY] == min(medians) / unloaded
    assert loaded.slowdown(REFERENCE) is None
    lines = loaded.to_text().splitlines()
    table = lines[lines.index("under load, 1 other process keeping a core busy:") + 1 :]
    header = "engine unloaded ms loaded ms loaded spread ms slowdown loaded vs LiteRT + XNNPACK"
    assert table[0].split() == header.split()
    assert table[1].startswith(NUMPY)
    assert table[1].split()[-5:] == [
        f"{unloaded:.1f}", f"{min(medians):.1f}", f"{min(medians):.1f}-{max(medians):.1f}",
        f"{loaded.slowdown(NUMPY):.2f}x", "-",
    ]
    assert lines[-1] == "order of passes: numpy,numpy+load / numpy+load,numpy"


def test_load_leaves_no_busy_process_behind(loaded):
    assert all(gone(pid) for reports in loaded.loaded_processes.values() for r in reports for pid in r.load_pids)
    assert spinners_left() == []


def test_no_load_means_no_loaded_runs(result):
    assert result.load == 0 and result.loaded_processes == {} and result.slowdowns == {}
    assert "under load" not in result.to_text() and "busy" not in result.method


def test_cli_load_json(seed_model_path, capsys):
    argv = ["bench", str(seed_model_path), "--engines", "numpy", "--runs", "1", "--passes", "1", "--threads", "1"]
    assert main([*argv, "--load", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["load"] == 2 and data["order"] == [["numpy", "numpy+load"]]
    assert data["method"].endswith(", and again with 2 other processes keeping 2 cores busy")
    assert set(data["loaded_medians_ms"]) == set(data["slowdowns"]) == {NUMPY}
    assert data["slowdowns"][NUMPY] == data["loaded_medians_ms"][NUMPY] / data["medians_ms"][NUMPY]
    pids = data["loaded_processes"][NUMPY][0]["load_pids"]
    assert len(pids) == 2 and all(gone(pid) for pid in pids)


def test_busy_cores_are_busy_then_reaped_even_on_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt), busy_cores(2, spin_up_s=0.05) as pids:
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
        raise KeyboardInterrupt
    assert all(gone(pid) for pid in pids)


@pytest.mark.parametrize("failure", [BenchError("bench: it did not finish in time; it was stopped"),
                                     KeyboardInterrupt()])
def test_busy_cores_are_reaped_when_the_loaded_engine_fails(seed_model_path, monkeypatch, failure):
    """The engine's loaded run times out or is interrupted (here: a stand-in for its process that raises
    once the load is running); the busy processes are stopped and reaped all the same."""
    started = []
    real_busy_cores, real_run = bench.busy_cores, bench.run_engine_process

    @bench.contextmanager
    def recording(count, spin_up_s=bench.SPIN_UP_S):
        with real_busy_cores(count, spin_up_s) as pids:
            started.extend(pids)
            yield pids

    def run_engine_process(*args, **kwargs):
        if not started:  # the unloaded run, first in the first pass
            return real_run(*args, **kwargs)
        assert not gone(started[0])  # the loaded run: its busy process is there
        raise failure

    monkeypatch.setattr(bench, "busy_cores", recording)
    monkeypatch.setattr(bench, "run_engine_process", run_engine_process)
    with pytest.raises(type(failure)):
        benchmark(seed_model_path, engines=["numpy"], runs=1, threads=1, passes=1, warmup=0, load=1)
    assert len(started) == 1 and gone(started[0])
    assert spinners_left() == []


@pytest.mark.parametrize("option", ["--runs", "--threads", "--top", "--passes"])
def test_cli_refuses_counts_below_one(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "model.tflite", option, "0"])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err


def test_cli_refuses_a_negative_load(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "model.tflite", "--load", "-1"])
    assert exit_info.value.code == 2
    assert "argument --load: must be at least 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("engines", ["numba,cuda", ","])
def test_cli_refuses_unknown_engines(engines, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "model.tflite", "--engines", engines])
    assert exit_info.value.code == 2
    assert "argument --engines: unknown engine(s) " in capsys.readouterr().err


def test_litert_times_the_builtin_rewrite_of_a_custom_op(shared_models_dir, capsys):
    """The Selfie model's custom op: LiteRT cannot run it, so its engines time the builtin
    rewrite, and the result says so."""
    path = shared_models_dir / "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite"
    result = benchmark(path, runs=2, threads=1, passes=1, engines=["litert", "numpy"], warmup=1)
    assert set(result.medians_ms) == {NO_DELEGATES, NUMPY}
    assert "LiteRT: op 244 (CUSTOM:Convolution2DTransposeBias) runs in LiteRT as builtin TRANSPOSE_CONV" in result.notes

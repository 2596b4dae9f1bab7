"""npdeeplab bench: each engine alone in a fresh process, alternating over passes; best medians, ratios,
the per-op table, and a parent process that never loads an engine."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from npdeeplab.cli import main
from npdeeplab.tools.bench import ENGINES, NO_DELEGATES, REFERENCE, BenchError, benchmark

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


@pytest.mark.parametrize("option", ["--runs", "--threads", "--top", "--passes"])
def test_cli_refuses_counts_below_one(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "model.tflite", option, "0"])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err


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

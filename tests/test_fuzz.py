"""The fuzz test: a derandomized budget of malformed and unusual models from the fuzzer in tests/fuzz/
(byte and structure mutations of the shared models and of builder-made single-op models), each run in
a forked child with a memory limit and a timeout. A crash, a hang, an exception other than
ModelError/InputError/ImageError, a mismatch between the backends or running out of memory fails
the test, which lists the failure groups and the models saved for them.

NPDEEPLAB_FUZZ_CASES sets the budget (default 300 cases, about 15 s on 2 cores). For a long
campaign: NPDEEPLAB_FUZZ_CASES=50000 python tests/fuzz --out /tmp/fuzz --progress 1000; a saved
failure: python tests/fuzz --replay /tmp/fuzz/<outcome>-0-<case>.tflite --input-seed <seed> (the .txt
next to it has the command line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import fuzz
import numpy as np
import pytest
from fuzz.cases import STRATEGY_WEIGHTS, CaseGenerator
from fuzz.check import compare_outputs
from fuzz.cli import DEFAULT_CASES
from fuzz.fields import field_map
from fuzz.seeds import build_single_op_model, load_seed_files
from fuzz.selftest import PROBES

import npdeeplab
from npdeeplab.model.writer import write_model
from npdeeplab.ops import SUPPORTED_OPS

FUZZER = Path(fuzz.__file__).parent  # run as a folder: python tests/fuzz
CASES = int(os.environ.get("NPDEEPLAB_FUZZ_CASES", DEFAULT_CASES))


def run_fuzzer(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """The fuzzer in a fresh process: it forks its children from a process that never ran a kernel
    (this one may have, and Numba's OpenMP threads do not survive a fork)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(FUZZER), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def describe_failures(report: dict) -> str:
    lines = [f"{sum(f['count'] for f in report['failures'])} of {report['cases']} fuzz cases failed, "
             f"in {len(report['failures'])} groups:"]
    for f in report["failures"]:
        where = f["where"] or f["stage"] or "?"
        lines.append(f"[{f['outcome']}] {f['count']}x {f['type']} at {where}: {f['message'][:160]}")
        lines += [f"    {path} (and .txt)" for path in f["files"][:3]]
    return "\n".join(lines)


def test_fuzz_budget(shared_models_dir, tmp_path):
    summary = tmp_path / "summary.json"
    args = ["--cases", str(CASES), "--seed", "0", "--out", str(tmp_path), "--models", str(shared_models_dir)]
    result = run_fuzzer(*args, "--summary-json", str(summary), timeout=max(600.0, CASES * 0.5))
    assert summary.is_file(), f"the fuzzer did not finish (exit {result.returncode}):\n{result.stderr[-4000:]}"
    report = json.loads(summary.read_text())
    assert report["cases"] == CASES and not report["skipped"], f"cases the fuzzer could not make: {report['skipped']}"
    assert report["outcomes"].get("ok", 0) > CASES // 10, f"too few cases ran at all: {report['outcomes']}"
    assert not report["failures"], describe_failures(report)
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_harness_detects_crashes_hangs_exceptions_and_memory():
    """Probes through the same fork-per-case machinery: a segfault, an abort, a hang past the
    timeout, a MemoryError under the memory limit, an exception and an exit without a result."""
    result = run_fuzzer("--self-test", timeout=120)
    probes = json.loads(result.stdout)
    assert set(probes) == set(PROBES)
    for name, probe in probes.items():
        assert probe["outcome"] == probe["expected"], (name, probe)
    assert probes["crash"]["type"] == "SIGSEGV" and probes["abort"]["type"] == "SIGABRT"
    assert probes["crash"]["stack_in_dump"] and probes["hang"]["stack_in_dump"]  # faulthandler's stacks are kept
    assert probes["exception"]["type"] == "KeyError" and probes["memory"]["type"] == "MemoryError"
    assert result.returncode == 0


def test_float_outputs_compare_nan_positions_and_a_scaled_tolerance():
    a = np.array([1.0, np.nan, np.inf, 1000.0], np.float32)
    assert compare_outputs([a], [a.copy()]) is None
    assert "NaN positions" in compare_outputs([a], [np.array([1.0, 0.0, np.inf, 1000.0], np.float32)])
    assert "+Inf positions" in compare_outputs([a], [np.array([1.0, np.nan, 3e38, 1000.0], np.float32)])
    assert compare_outputs([a], [a + np.float32(0.09)]) is None  # 0.09 <= 1e-4 x 1000
    assert "max |numba - numpy|" in compare_outputs([a], [a + np.float32(0.2)])
    ints = np.arange(4, dtype=np.int32)
    assert "1 of 4 elements differ" in compare_outputs([ints], [ints + np.array([0, 0, 1, 0], np.int32)])
    assert "numpy int32[4], numba int64[4]" in compare_outputs([ints], [ints.astype(np.int64)])


@pytest.mark.parametrize("kind", SUPPORTED_OPS)
def test_every_supported_op_has_a_seed_builder_making_models_that_run(kind):
    for seed in range(3):
        notes = Counter()
        model = build_single_op_model(np.random.default_rng([seed, 7]), kind, notes)
        if notes:  # the engine's preparer failed while the builder used it: the fuzz cases report that
            continue
        interpreter = npdeeplab.Interpreter(model_content=write_model(model), backend="numpy")
        assert [op.op.kind for op in interpreter.ops] == [kind]


def test_cases_are_deterministic_and_the_mix_covers_every_strategy(shared_models_dir):
    seeds = load_seed_files(shared_models_dir)
    first, second = CaseGenerator(seeds, 3), CaseGenerator(seeds, 3)
    cases = [first.make(n) for n in range(150)]
    for case in cases[:40]:
        again = second.make(case.number)
        assert (again.data, again.description, again.input_seed) == (case.data, case.description, case.input_seed)
    assert {case.strategy for case in cases} == set(STRATEGY_WEIGHTS)
    assert not [case.skipped for case in cases if case.skipped]


def test_the_field_map_finds_real_flatbuffer_fields(seed_model_path):
    labels = {f.label for f in field_map(seed_model_path.read_bytes())}
    for label in ("model.subgraphs[0].tensors[0].shape[0]", "model.subgraphs[0].tensors[0] vtable slot 6",
                  "model.subgraphs[0].operators[0].inputs length", "model.buffers[1].data length",
                  "model.subgraphs[0].operators[0].builtin_options vtable slot 4"):
        assert label in labels
    assert any(label.startswith("model.operator_codes[") and label.endswith("builtin_code") for label in labels)


@pytest.mark.parametrize("error, outcome", [(1e-7, "amplified"), (1e-2, "mismatch")])
def test_amplified_rounding_is_told_apart_from_a_wrong_kernel(monkeypatch, error, outcome):
    """LOGISTIC(x * 1e4 by MUL - x * 1e4 by a 1x1 CONV_2D), with the Numba MUL made wrong by a
    relative `error`: 1e-7 (as rounding in another summation order) shows at the output only
    because the cancellation amplifies it, and every op agrees alone ("amplified", not a
    failure); 1e-2 is a wrong kernel ("mismatch")."""
    from fuzz.check import FAILURES, check_model

    from npdeeplab.kernels import elementwise
    from npdeeplab.kernels.fast import NUMBA_KERNELS
    from npdeeplab.model.builder import GraphBuilder

    def off(params, a, b, out=None):
        result = (elementwise.mul(params, a, b) * np.float32(1 + error)).astype(np.float32)
        if out is None:
            return result
        out[...] = result
        return out

    monkeypatch.setitem(NUMBA_KERNELS, "mul", off)
    g = GraphBuilder()
    x = g.add_input("x", (1, 8, 8, 1), np.float32)
    by_mul = g.add_op("MUL", [x, g.add_constant("k", np.full((1,), 1e4, np.float32))])
    by_conv = g.add_op("CONV_2D", [x, g.add_constant("w", np.full((1, 1, 1, 1), 1e4, np.float32)),
                                   g.add_constant("b", np.zeros(1, np.float32))], padding="VALID")
    g.mark_outputs(g.add_op("LOGISTIC", [g.add_op("SUB", [by_mul, by_conv])]))
    verdict = check_model(g.to_bytes(), 3, lambda message: None)
    assert verdict["outcome"] == outcome, verdict
    assert (outcome in FAILURES) == (outcome == "mismatch")

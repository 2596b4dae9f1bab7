"""Compiling ahead (kernels/fast/compiling.py): a model's units, and only those, compiled before its
first run with the argument types the run passes; what is compiled is recognised; two processes
share the work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from npdeeplab.runtime.backends import numba_available
from tests.conftest import require, shared_file


@pytest.fixture(autouse=True)
def _numba() -> None:
    require(numba_available(), "Numba is not installed")


FIRST_INVOKE = textwrap.dedent(
    """
    import sys
    from npdeeplab import Interpreter
    from npdeeplab.kernels.fast import jitted_functions
    from npdeeplab.kernels.fast.compiling import compile_units
    from npdeeplab.runtime.backends import compile_units_needed

    interpreter = Interpreter(model_path=sys.argv[1], backend="numba")
    runner = interpreter._runner
    units = sorted(compile_units_needed(interpreter._kernels, runner.steps, runner.tensors))
    compile_units(units)  # compiled, or loaded from the cache: in this process either way
    before = {f: len(f.signatures) for f in jitted_functions()}
    interpreter.allocate_tensors()
    interpreter.invoke()
    added = [f"{f.__name__}{f.signatures[before[f]:]}" for f in jitted_functions() if len(f.signatures) > before[f]]
    print(" ".join(units))
    print("\\n".join(added))
    """
)


@pytest.mark.parametrize("model", [
    "deeplabv3_257_mv_gpu.tflite",
    "deeplabv3_mnv2_dm05_pascal_quant.tflite",
    "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite",
])
def test_a_models_units_give_its_first_invoke_every_signature_it_needs(model: str) -> None:
    """If a unit compiled other argument types than the run passes (a writable array for a
    read-only filter, say), the first invoke would stop to compile: a new signature."""
    path = shared_file("models", model)
    result = subprocess.run([sys.executable, "-c", FIRST_INVOKE, str(path)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    units, *added = result.stdout.strip().split("\n")
    assert units
    assert not [line for line in added if line], f"the first invoke compiled: {added}"
    quantized = "quant" in model
    assert any(u.startswith("integer.") for u in units.split()) == quantized, units
    if not quantized:
        assert any(u.startswith("gemm_") for u in units.split()) and "depthwise3x3_" in units, units


MARKERS = textwrap.dedent(
    """
    import os, sys, tempfile
    from npdeeplab.kernels.fast.compiling import _marker, all_units, compile_claimed, compile_units, uncached

    names = ["clamp", "binary"]
    print(sorted(uncached(names)))
    with tempfile.TemporaryDirectory() as claims:
        open(os.path.join(claims, "binary"), "w").close()  # the other process has claimed it
        compile_claimed(claims, names)
    print(uncached(names))
    compile_units(["binary"])
    print(uncached(names))
    _marker(all_units()["clamp"]).write_text("compiled from other sources")
    print(uncached(names))
    """
)


def test_compiled_units_are_recognised_claimed_ones_skipped_and_stale_ones_redone(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    result = subprocess.run([sys.executable, "-c", MARKERS], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["['binary', 'clamp']", "['binary']", "[]", "['clamp']"]


def test_units_shared_with_a_second_process_are_all_loaded_in_this_one(tmp_path: Path) -> None:
    """The helper process and this one claim units from one list; afterwards both are loaded here."""
    code = textwrap.dedent(
        """
        from npdeeplab.kernels.fast.compiling import all_units, compile_units, uncached
        from npdeeplab.kernels.fast import elementwise, pool
        names = ["pool", "softmax", "clamp", "binary"]
        compile_units(names)
        print(uncached(names))
        print(len(pool._pool2d.signatures), len(elementwise._softmax_rows.signatures))
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "[]"
    assert lines[1] == "1 1"  # loaded in this process, whichever compiled them

"""The check a child runs: the contract, on both backends.

A model given to ``npdeeplab.Interpreter(model_content=...)`` either ends in one allowed error
(ModelError, InputError or ImageError: "refused"), or it loads, allocates, takes a random input of
its declared shape and dtype, runs on both backends and gives the same outputs on both ("ok").
Anything else is one of FAILURES: another exception type ("exception"), backends that disagree
("mismatch"), unless every op, fed the NumPy run's own inputs, agrees alone: then the graph
only amplified rounding ("amplified", not a failure); isolation.py adds a child killed by a
signal ("crash"), a child over its timeout ("hang"), and a MemoryError or the memory limit
("memory").

Float outputs are compared as the project's differential tests do: NaN, +Inf and -Inf at the
same positions, and everywhere else |numba - numpy| <= 1e-4 x max(1, max |finite numpy output|).
The tolerance is absolute and scaled to the output's magnitude because the backends sum in
different orders (BLAS against loops): rounding error follows the size of the partial sums, not
that of each element, so a per-element relative tolerance would flag cancellations. Integer and
bool outputs must be identical; dtypes and shapes must be equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import npdeeplab
from npdeeplab.errors import ImageError, InputError, ModelError

from .helpers import random_array
from .isolation import exception_result

FLOAT_TOLERANCE = 1e-4
ALLOWED_ERRORS = (ModelError, InputError, ImageError)
BACKENDS = ("numpy", "numba")
FAILURES = ("exception", "mismatch", "crash", "hang", "memory")


@dataclass
class BackendRun:
    outputs: list[np.ndarray] | None = None
    refused: tuple[str, str, str] | None = None  # (exception type, message, stage)


def model_inputs(details: list[dict[str, Any]], input_seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(input_seed)
    return [random_array(rng, tuple(int(d) for d in detail["shape"]), detail["dtype"]) for detail in details]


def read_details(interpreter: npdeeplab.Interpreter) -> None:
    """LiteRT's introspection API on a loaded model: tensor details and every signature's details."""
    interpreter.get_tensor_details()
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        runner.get_input_details()
        runner.get_output_details()


def run_backend(data: bytes, backend: str, input_seed: int, report: Callable[[dict], None]) -> BackendRun:
    """Load, read the details, allocate, set random inputs, invoke, read outputs; an allowed error
    is a refusal, anything else propagates."""
    stage = ""

    def enter(name: str) -> None:
        nonlocal stage
        stage = name
        report({"stage": f"{backend}: {name}"})

    try:
        enter("load")
        interpreter = npdeeplab.Interpreter(model_content=data, backend=backend)
        enter("details")
        read_details(interpreter)
        enter("allocate_tensors")
        interpreter.allocate_tensors()
        enter("set_tensor")
        details = interpreter.get_input_details()
        for detail, value in zip(details, model_inputs(details, input_seed), strict=True):
            interpreter.set_tensor(detail["index"], value)
        enter("invoke")
        interpreter.invoke()
        enter("get_tensor")
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    except ALLOWED_ERRORS as error:
        return BackendRun(refused=(type(error).__name__, str(error), stage))
    return BackendRun(outputs=outputs)


def compare_outputs(expected: list[np.ndarray], got: list[np.ndarray]) -> str | None:
    """None when the numba outputs match the numpy ones; else what differs, in one line."""
    if len(expected) != len(got):
        return f"numpy gives {len(expected)} outputs, numba {len(got)}"
    for k, (e, g) in enumerate(zip(expected, got, strict=True)):
        if e.dtype != g.dtype or e.shape != g.shape:
            return f"output {k}: numpy {e.dtype}{list(e.shape)}, numba {g.dtype}{list(g.shape)}"
        problem = compare_floats(e, g) if e.dtype.kind in "fc" else compare_exact(e, g)
        if problem:
            return f"output {k} ({e.dtype}{list(e.shape)}): {problem}"
    return None


def compare_exact(expected: np.ndarray, got: np.ndarray) -> str | None:
    differ = int(np.count_nonzero(expected != got))
    return f"{differ} of {expected.size} elements differ" if differ else None


def compare_floats(expected: np.ndarray, got: np.ndarray) -> str | None:
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        e, g = test(expected.real), test(got.real)
        if not np.array_equal(e, g):
            return f"{name} positions differ ({int(e.sum())} in numpy, {int(g.sum())} in numba)"
    finite = np.isfinite(expected)
    if not finite.any():
        return None
    e, g = expected[finite].astype(np.complex128 if expected.dtype.kind == "c" else np.float64), got[finite]
    scale = max(1.0, float(np.max(np.abs(e))))
    error = float(np.max(np.abs(e - g)))
    if not error <= FLOAT_TOLERANCE * scale:
        return f"max |numba - numpy| = {error:.3g} > {FLOAT_TOLERANCE:g} x {scale:.3g}"
    return None


def judge(runs: dict[str, BackendRun]) -> dict[str, Any]:
    reference, fast = runs["numpy"], runs["numba"]
    if reference.refused and fast.refused:
        if reference.refused[0] != fast.refused[0] or reference.refused[2] != fast.refused[2]:
            return {"outcome": "mismatch", "message": f"numpy refuses ({reference.refused}), numba ({fast.refused})"}
        error, message, stage = reference.refused
        return {"outcome": "refused", "type": error, "message": message, "stage": stage}
    for backend, run in runs.items():
        if run.refused:
            error, message, stage = run.refused
            return {"outcome": "mismatch", "message": f"only {backend} refuses, at {stage}: {error}: {message}"}
    problem = compare_outputs(reference.outputs, fast.outputs)
    if problem:
        return {"outcome": "mismatch", "message": problem}
    shapes = [f"{o.dtype}{list(o.shape)}" for o in reference.outputs]
    return {"outcome": "ok", "message": f"outputs {', '.join(shapes)}"}


def op_outputs(data: bytes, backend: str, input_seed: int) -> list[tuple[int, str, list[np.ndarray], bool]]:
    """Every op's outputs (copied) in one run: (op index, kind, outputs, whether its inputs had NaN/Inf)."""
    interpreter = npdeeplab.Interpreter(model_content=data, backend=backend)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    for detail, value in zip(details, model_inputs(details, input_seed), strict=True):
        interpreter.set_tensor(detail["index"], value)
    calls = []

    def keep(call: npdeeplab.OpCall) -> None:
        odd = any(x is not None and x.dtype.kind in "fc" and not np.isfinite(x).all() for x in call.inputs)
        calls.append((call.index, call.kind, [np.array(o, copy=True) for o in call.outputs], odd))

    interpreter.add_hook(keep)
    interpreter.invoke()
    return calls


def first_divergence(data: bytes, input_seed: int) -> str:
    """The first op whose outputs differ between the backends, e.g. "op 3 (CONV_2D), inputs non-finite"."""
    try:
        reference, fast = (op_outputs(data, backend, input_seed) for backend in BACKENDS)
    except Exception as error:  # noqa: BLE001 - only a diagnosis; the mismatch stands without it
        return f"(rerun with hooks failed: {type(error).__name__})"
    for (index, kind, expected, odd), (_, _, got, _) in zip(reference, fast, strict=False):
        if compare_outputs(expected, got):
            return f"op {index} ({kind})" + (", inputs non-finite" if odd else "")
    return "(no single op differs)"


def isolated_divergence(data: bytes, input_seed: int) -> str | None:
    """The first op whose Numba kernel, fed the NumPy run's own inputs, differs from the NumPy
    kernel's output beyond the tolerance (scaled to that op's output); None when every op agrees
    alone, so that the graph outputs differ only by rounding the graph amplified (byte-mutated
    weights can grow activations to 1e5 and feed a LOGISTIC near its steepest point)."""
    reference = npdeeplab.Interpreter(model_content=data, backend="numpy", experimental_preserve_all_tensors=True)
    fast = npdeeplab.Interpreter(model_content=data, backend="numba")
    reference.allocate_tensors()
    details = reference.get_input_details()
    for detail, value in zip(details, model_inputs(details, input_seed), strict=True):
        reference.set_tensor(detail["index"], value)
    calls: list[npdeeplab.OpCall] = []
    reference.add_hook(lambda call: calls.append(call))
    reference.invoke()
    kernels = fast.kernels
    for step, call in zip(fast.ops, calls, strict=True):
        inputs = [None if x is None else np.array(x, copy=True) for x in call.inputs]
        result = kernels[step.kernel](step.params, *inputs)
        outputs = list(result) if isinstance(result, tuple) else [result]
        if compare_outputs([np.array(o, copy=True) for o in call.outputs], [np.asarray(o) for o in outputs]):
            return f"op {step.op.index} ({step.op.kind})"
    return None


def check_model(data: bytes, input_seed: int, report: Callable[[dict], None]) -> dict[str, Any]:
    """The contract, run in a child: both backends, then their results judged together; for a
    mismatch of two runs, the first op that differs."""
    runs, errors = {}, []
    for backend in BACKENDS:  # both, even when the first raises: numba may crash where numpy raises
        try:
            runs[backend] = run_backend(data, backend, input_seed, report)
        except Exception as error:  # noqa: BLE001 - a failure; reported at once in case the next backend crashes
            errors.append(exception_result(error, backend))
            report({"failure": errors[-1]})
    if errors:
        return {**errors[0], "also": errors[1:]}
    verdict = judge(runs)
    if verdict["outcome"] == "mismatch" and all(run.outputs is not None for run in runs.values()):
        if all(o.dtype.kind in "fc" for o in runs["numpy"].outputs):
            report({"stage": "running each op alone on the numpy run's inputs"})
            if isolated_divergence(data, input_seed) is None:
                return {"outcome": "amplified", "message": f"{verdict['message']}; every op alone agrees"}
        report({"stage": "finding the first op that differs"})
        verdict["where"] = first_divergence(data, input_seed)
    return verdict

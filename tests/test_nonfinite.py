"""Inf and NaN, in inputs and in weights, give what LiteRT's reference kernels give, on both backends.

What REF does, and npdeeplab now does too: taps outside the input are skipped (never 0 * Inf);
every fused activation clamps, NONE to [-FLT_MAX, FLT_MAX] (so Inf becomes 3.4e38, NaN stays);
MAX_POOL and ARG_MAX/ARG_MIN pass over NaNs (an all-NaN ARG_MAX gives 0). Before, NumPy kept Inf
where Numba clamped, and NumPy's depthwise turned its padded borders into NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS

import npdeeplab
from npdeeplab.model.builder import GraphBuilder

TRIALS = 8
SHAPE = (1, 5, 5, 3)


def sprinkled(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values with about 10% each of +Inf, -Inf and NaN."""
    values = rng.standard_normal(shape).astype(np.float32)
    draw = rng.random(shape)
    values[draw < 0.1] = np.inf
    values[(draw >= 0.1) & (draw < 0.2)] = -np.inf
    values[(draw >= 0.2) & (draw < 0.3)] = np.nan
    return values


def build(kind: str, activation: str, rng: np.random.Generator) -> bytes:
    g = GraphBuilder()
    x = g.add_input("x", SHAPE)
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = sprinkled(rng, (4, 3, 3, 3) if kind == "CONV_2D" else (1, 3, 3, 3))
        b = g.add_constant("b", np.zeros(w.shape[0] if kind == "CONV_2D" else 3, np.float32))
        y = g.add_op(kind, [x, g.add_constant("w", w), b], padding="SAME", fused_activation_function=activation)
    elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        y = g.add_op(kind, [x], padding="SAME", filter_height=3, filter_width=3, fused_activation_function=activation)
    elif kind in ("ADD", "SUB", "MUL"):
        y = g.add_op(kind, [x, g.add_constant("c", sprinkled(rng, SHAPE))], fused_activation_function=activation)
    elif kind == "RESIZE_BILINEAR":
        y = g.add_op(kind, [x, g.add_constant("size", np.array([9, 9], np.int32))])
    elif kind == "MEAN":
        y = g.add_op(kind, [x, g.add_constant("axes", np.array([1, 2], np.int32))], keep_dims=True)
    elif kind in ("ARG_MAX", "ARG_MIN"):
        y = g.add_op(kind, [x, g.add_constant("axis", np.array([3], np.int32))])
    elif kind == "CONCATENATION":
        y = g.add_op(kind, [x, x], axis=3)
    else:
        y = g.add_op(kind, [x])
    g.mark_outputs(y)
    return g.to_bytes()


def run(interpreter, x: np.ndarray) -> np.ndarray:
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def assert_same_specials(ours: np.ndarray, theirs: np.ndarray) -> None:
    """NaN, +Inf and -Inf in the same places; the finite values equal to float rounding."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if ours.dtype.kind != "f":
        np.testing.assert_array_equal(ours, theirs)
        return
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        np.testing.assert_array_equal(test(ours), test(theirs), err_msg=f"{name} in different places")
    finite = np.isfinite(theirs)
    scale = max(1.0, float(np.abs(theirs[finite]).max())) if finite.any() else 1.0
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=1e-5 * scale)


CASES = [
    *[(kind, act) for kind in ("CONV_2D", "DEPTHWISE_CONV_2D") for act in ("NONE", "RELU", "RELU6")],
    ("AVERAGE_POOL_2D", "NONE"), ("MAX_POOL_2D", "NONE"), ("MAX_POOL_2D", "RELU6"),
    ("ADD", "NONE"), ("SUB", "RELU"), ("MUL", "RELU6"),
    ("RESIZE_BILINEAR", ""), ("MEAN", ""), ("SOFTMAX", ""), ("LOGISTIC", ""), ("TANH", ""), ("RELU", ""),
    ("RELU6", ""), ("ARG_MAX", ""), ("ARG_MIN", ""), ("CONCATENATION", ""),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, activation", CASES)
def test_inf_and_nan_as_litert_reference_kernels(kind, activation, backend, litert):
    LiteRT, OpResolverType = litert
    rng = np.random.default_rng(sum(map(ord, kind + activation)))
    for _ in range(TRIALS):
        content = build(kind, activation or "NONE", rng)
        x = sprinkled(rng, SHAPE)
        theirs = run(LiteRT(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF), x)
        with np.errstate(all="ignore"):
            ours = run(npdeeplab.Interpreter(model_content=content, backend=backend), x)
        assert_same_specials(ours, theirs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_arg_max_passes_over_nans(backend, litert):
    LiteRT, OpResolverType = litert
    rows = np.array([[np.nan, 1, 2], [1, np.nan, 2], [1, 2, np.nan], [np.nan, np.nan, 1], [-np.inf, np.nan, -np.inf],
                     [np.nan, np.nan, np.nan], [np.nan, -np.inf, -np.inf], [3, 3, np.nan]], np.float32)
    g = GraphBuilder()
    x = g.add_input("x", (8, 3))
    g.mark_outputs(g.add_op("ARG_MAX", [x, g.add_constant("axis", np.array([1], np.int32))]))
    content = g.to_bytes()
    expected = [2, 2, 1, 2, 0, 0, 1, 0]
    theirs = run(LiteRT(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF), rows)
    assert theirs.tolist() == expected
    assert run(npdeeplab.Interpreter(model_content=content, backend=backend), rows).tolist() == expected

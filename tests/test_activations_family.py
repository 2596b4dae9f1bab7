"""HARD_SWISH, LEAKY_RELU and PRELU (float32, uint8, int8) and the quantized RELU, RELU6 and
RELU_N1_TO_1 against LiteRT's reference kernels (BUILTIN_REF), on every backend.

Floats must agree within float rounding (they agree bit for bit: the kernels do REF's float32
operations in REF's order), NaN for NaN; quantized outputs exactly. Hypothesis draws shapes (PRELU's
alpha broadcast against the input), values with NaN, infinities and the functions' knees, alpha
(negative, zero, above 1), input scales from 1e-8 to 1e4 with zero points at the range ends and
between, output scales near and far from them. Every unary quantized input holds all 256 values, so
the whole function is compared. When LiteRT refuses a model npdeeplab must refuse it too; where
LiteRT's C code is undefined (a left shift by 32 or more, an out-of-range conversion) LiteRT is not
run and npdeeplab must refuse.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, shared_file
from hypothesis import given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, litert_module, quantized_input, run_litert, run_npdeeplab

from npdeeplab import Interpreter
from npdeeplab.errors import ModelError
from npdeeplab.kernels.integer.rectifiers import HardSwishParams, PreluParams
from npdeeplab.kernels.rectifiers import LeakyReluParams
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.runtime.backends import kernel_table
from npdeeplab.tools.extract import extract_ops

TYPES = {"uint8": np.uint8, "int8": np.int8}
FLOAT_RTOL = 2.0**-22  # two float32 ulps
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -3.0, 3.0, 6.0, -6.0, 3.4e38, -3.4e38], np.float32)
Case = dict[str, Any]


def float32s(low: float, high: float) -> st.SearchStrategy:
    """Log-uniform float32 values from 10**low to 10**high."""
    return st.floats(low, high).map(lambda e: float(np.float32(10.0**e)))


def zero_points(dtype: Any) -> st.SearchStrategy:
    info = np.iinfo(dtype)
    return st.sampled_from([int(info.min), int(info.max)]) | st.integers(int(info.min), int(info.max))


def alphas() -> st.SearchStrategy:
    return st.sampled_from([0.0, -0.5, 2.5, 1.0, 0.2, -1.0, -3.0]) | st.floats(-10, 10, width=32)


@st.composite
def shapes(draw: Callable, min_rank: int = 0, max_rank: int = 5) -> tuple[int, ...]:
    return tuple(draw(st.integers(1, 5)) for _ in range(draw(st.integers(min_rank, max_rank))))


@st.composite
def alpha_shapes(draw: Callable, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to `shape`: each axis kept or 1, leading axes sometimes dropped."""
    kept = tuple(d if draw(st.booleans()) else 1 for d in shape)
    return kept[draw(st.integers(0, len(shape))):]


# --- float -----------------------------------------------------------------------------------------


@st.composite
def float_cases(draw: Callable) -> Case:
    kind = draw(st.sampled_from(["HARD_SWISH", "LEAKY_RELU", "PRELU"]))
    shape = draw(shapes())
    case = {"kind": kind, "shape": shape, "range": draw(st.sampled_from([1.0, 4.0, 10.0, 1e30])),
            "specials": draw(st.booleans()), "seed": draw(st.integers(0, 2**16))}
    if kind == "LEAKY_RELU":
        case["alpha"] = draw(alphas())
    if kind == "PRELU":
        case["alpha_shape"] = draw(alpha_shapes(shape))
        case["alpha_range"] = draw(st.sampled_from([0.5, 3.0]))
        case["alpha_input"] = draw(st.integers(0, 3)) == 0  # alpha a graph input, not a constant
    return case


def build_float(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    values = rng.uniform(-case["range"], case["range"], case["shape"]).astype(np.float32)
    if case["specials"] and values.size:
        flat = values.reshape(-1)
        flat[: min(flat.size, SPECIALS.size)] = SPECIALS[: flat.size]
    b = GraphBuilder()
    inputs, arrays = [b.add_input("x", case["shape"])], [values]
    if case["kind"] == "PRELU":
        alpha = rng.uniform(-case["alpha_range"], case["alpha_range"], case["alpha_shape"]).astype(np.float32)
        if alpha.size:
            alpha.reshape(-1)[0] = 0.0
        if case["alpha_input"]:
            inputs.append(b.add_input("alpha", case["alpha_shape"]))
            arrays.append(alpha)
        else:
            inputs.append(b.add_constant("alpha", alpha))
    options = {"alpha": case["alpha"]} if case["kind"] == "LEAKY_RELU" else {}
    b.mark_outputs(b.add_op(case["kind"], inputs, output_shape=case["shape"], output_dtype=np.float32, **options))
    return b, arrays


def check_float(model: GraphBuilder, inputs: list[np.ndarray]) -> None:
    """LiteRT REF against every backend: within two ulps, NaN where REF has NaN, infinities equal."""
    data = model.to_bytes()
    try:
        expected = run_litert(data, inputs)
    except (RuntimeError, ValueError):
        for backend in BACKENDS:
            with pytest.raises(ModelError):
                run_npdeeplab(data, inputs, backend)
        return
    for backend in BACKENDS:
        for ours, theirs in zip(run_npdeeplab(data, inputs, backend), expected, strict=True):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, backend
            np.testing.assert_allclose(ours, theirs, rtol=FLOAT_RTOL, atol=1e-38, equal_nan=True, err_msg=backend)


@SETTINGS
@given(float_cases())
def test_float(case: Case) -> None:
    check_float(*build_float(case))


def test_float_hard_swish_optimized_kernel_differs_in_the_last_bit() -> None:
    """REF divides x * relu6(x + 3) by 6; OPT multiplies x / 6 by it (measured on ai-edge-litert 2.3:
    about a third of the elements 1 ulp off). npdeeplab is REF bit for bit."""
    case = {"kind": "HARD_SWISH", "shape": (64, 256), "range": 10.0, "specials": False, "seed": 3}
    model, inputs = build_float(case)
    reference, optimized = run_litert(model.to_bytes(), inputs)[0], run_litert(model.to_bytes(), inputs, False)[0]
    assert np.count_nonzero(reference != optimized) > 0
    np.testing.assert_allclose(optimized, reference, rtol=FLOAT_RTOL, atol=1e-38)
    for backend in BACKENDS:
        assert np.array_equal(run_npdeeplab(model.to_bytes(), inputs, backend)[0], reference)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_inputs_match_the_numpy_kernels_bit_for_bit(backend: str) -> None:
    """Shapes past the Numba twins' chunk size (16384 elements per task), alpha broadcast along inner,
    outer and middle axes; floats with NaN and infinities."""
    rng = np.random.default_rng(11)
    numpy_kernels, kernels = kernel_table("numpy"), kernel_table(backend)
    x = (rng.standard_normal((3, 37, 41, 13)) * 4).astype(np.float32)
    x.reshape(-1)[::997] = SPECIALS[rng.integers(0, SPECIALS.size, x.reshape(-1)[::997].size)]
    for name, params, args in [
        ("hard_swish", None, (x,)),
        ("leaky_relu", LeakyReluParams(-0.7), (x,)),
        *(("prelu", None, (x, rng.uniform(-2, 2, shape).astype(np.float32)))
          for shape in [(13,), (41, 1), (3, 1, 1, 13), (1, 37, 41, 1), x.shape]),
    ]:
        expected, got = numpy_kernels[name](params, *args), kernels[name](params, *args)
        assert got.dtype == expected.dtype and np.array_equal(got.view(np.uint32), expected.view(np.uint32)), name
    q = rng.integers(-128, 128, x.shape).astype(np.int8)
    prelu = PreluParams(3, -5, 7, 1 << 30, -2, 1518500250, -9)
    for alpha_shape in [(13,), (37, 1, 1), (3, 1, 41, 1)]:
        alpha = rng.integers(-128, 128, alpha_shape).astype(np.int8)
        assert np.array_equal(kernels["quantized_prelu"](prelu, q, alpha),
                              numpy_kernels["quantized_prelu"](prelu, q, alpha))
    swish = HardSwishParams(-3, 5, 21845, 1, 23170, -3)
    assert np.array_equal(kernels["quantized_hard_swish"](swish, q), numpy_kernels["quantized_hard_swish"](swish, q))


def litert_tensors(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Every tensor LiteRT REF computed, by index (intermediates preserved)."""
    lite = litert_module()
    interpreter = lite.Interpreter(model_content=data, experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF,
                                   experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(i) for i in range(len(interpreter.get_tensor_details()))]


def test_selfie_model_hard_swish_ops() -> None:
    """The MediaPipe selfie model's 11 HARD_SWISH ops, in the model up to its custom op (which
    LiteRT cannot run): each op fed LiteRT's own input gives LiteRT's output bit for bit, and the
    whole prefix stays within float32 reordering noise of LiteRT."""
    path = shared_file("models", "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite")
    model = load_model(path.read_bytes())
    custom = next(op.index for op in model.main.ops if op.kind.startswith("CUSTOM"))
    prefix = extract_ops(model, 0, custom - 1).model
    data = write_model(prefix)
    image = np.random.default_rng(0).uniform(0, 1, prefix.main.tensors[prefix.main.inputs[0]].shape).astype(np.float32)
    theirs = litert_tensors(data, [image])
    swishes = [op for op in prefix.main.ops if op.kind == "HARD_SWISH"]
    assert len(swishes) == 11
    for backend in BACKENDS:
        kernel = kernel_table(backend)["hard_swish"]
        for op in swishes:
            assert np.array_equal(kernel(None, theirs[op.inputs[0]]), theirs[op.outputs[0]]), (backend, op.index)
        expected = [theirs[i] for i in prefix.main.outputs]
        for ours, reference in zip(run_npdeeplab(data, [image], backend), expected, strict=True):
            np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * max(1.0, float(np.abs(reference).max())))


# --- quantized, unary ------------------------------------------------------------------------------


@st.composite
def quantized_cases(draw: Callable, kinds: tuple[str, ...]) -> Case:
    kind = draw(st.sampled_from(kinds))
    dtype = draw(st.sampled_from(sorted(TYPES)))
    s_in = draw(st.sampled_from([1 / 256, 1 / 128, 1.0, 2.0**-20]) | float32s(-8, 4))
    if kind == "HARD_SWISH":  # LiteRT needs s_in / (128 s_out) < 1: mostly drawn so, sometimes not
        spread = draw(st.floats(-2, 14) | st.floats(0, 0.001))
        s_out = float(np.float32(s_in / 128 * 2.0**spread))
    else:
        s_out = draw(st.floats(-12, 12).map(lambda e: float(np.float32(s_in * 2.0**e))) | float32s(-10, 5))
    case = {
        "kind": kind,
        "dtype": dtype,
        "shape": draw(st.sampled_from([(256,), (2, 128), (4, 8, 8), (1, 4, 4, 16)])),
        "input_quantization": (s_in, draw(zero_points(TYPES[dtype]))),
        "output_quantization": (s_out, draw(zero_points(TYPES[dtype]))),
        "seed": draw(st.integers(0, 2**16)),
    }
    if kind == "LEAKY_RELU":
        case["alpha"] = draw(alphas())
    return case


def build_quantized(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    dtype = TYPES[case["dtype"]]
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], dtype, quantization=case["input_quantization"])
    options = {"alpha": case["alpha"]} if case["kind"] == "LEAKY_RELU" else {}
    b.mark_outputs(b.add_op(case["kind"], [x], output_shape=case["shape"], output_dtype=dtype,
                            output_quantization=case["output_quantization"], **options))
    info = np.iinfo(dtype)
    rng = np.random.default_rng(case["seed"])
    return b, [rng.permutation(np.arange(info.min, info.max + 1)).astype(dtype).reshape(case["shape"])]


def quantize_multiplier_shift(real: float) -> int:
    """QuantizeMultiplier's shift (frexp's exponent, one more where the mantissa rounds up to 1)."""
    q, exponent = math.frexp(abs(real))
    return exponent + (math.floor(q * 2**31 + 0.5) == 2**31) if q else 0


def undefined_in_litert(case: Case) -> bool:
    """Whether LiteRT's C code is undefined for this case: a multiplier of 2**31 or more (MBQM shifts
    x left by 32 or more), a clamp limit past int32, HARD_SWISH's 16-bit shift by 31 or more. The
    multipliers are float32 arithmetic on the scales, as LiteRT computes them."""
    f = np.float32
    (s_in, _), (s_out, _) = case["input_quantization"], case["output_quantization"]
    with np.errstate(over="ignore", under="ignore"):
        if case["kind"] == "HARD_SWISH":
            reluish = f(1 / 128) * f(s_in) / (f(3) / f(32768))
            return not np.isfinite(reluish) or quantize_multiplier_shift(float(reluish)) > 31
        reals = [f(s_in) / f(s_out)]
        if case["kind"] == "LEAKY_RELU":
            reals.append(f(s_in) * f(case["alpha"]) / f(s_out))
        if case["kind"] == "PRELU":
            reals.append(f(s_in) * f(case["alpha_quantization"][0]) / f(s_out))
        limits = {"RELU6": (6.0,), "RELU_N1_TO_1": (-1.0, 1.0)}.get(case["kind"], ())
        steps = [abs(f(limit) / f(s_out)) for limit in limits]
    if any(not np.isfinite(r) or quantize_multiplier_shift(float(r)) > 31 for r in reals):
        return True
    return any(not steps_ < 2.0**31 - 0.5 for steps_ in steps)


def check_case(case: Case, build: Callable) -> None:
    model, inputs = build(case)
    if undefined_in_litert(case):
        for backend in BACKENDS:
            with pytest.raises(ModelError):
                run_npdeeplab(model.to_bytes(), inputs, backend)
        return
    check(model, inputs)


@SETTINGS
@given(quantized_cases(("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU")))
def test_quantized_relus(case: Case) -> None:
    check_case(case, build_quantized)


@SETTINGS
@given(quantized_cases(("HARD_SWISH",)))
def test_quantized_hard_swish(case: Case) -> None:
    check_case(case, build_quantized)


# --- quantized PRELU -------------------------------------------------------------------------------


@st.composite
def prelu_cases(draw: Callable) -> Case:
    dtype = draw(st.sampled_from(sorted(TYPES)))
    shape = draw(shapes(min_rank=1, max_rank=4))
    s_in = draw(float32s(-6, 3))
    s_out = draw(st.floats(-10, 10).map(lambda e: float(np.float32(s_in * 2.0**e))) | float32s(-8, 4))
    return {
        "kind": "PRELU",
        "dtype": dtype,
        "shape": shape,
        "alpha_shape": draw(alpha_shapes(shape)),
        "alpha_input": draw(st.integers(0, 3)) == 0,
        "input_quantization": (s_in, draw(zero_points(TYPES[dtype]))),
        "alpha_quantization": (draw(float32s(-6, 1)), draw(zero_points(TYPES[dtype]))),
        "output_quantization": (s_out, draw(zero_points(TYPES[dtype]))),
        "seed": draw(st.integers(0, 2**16)),
    }


def build_prelu(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    dtype = TYPES[case["dtype"]]
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], dtype, quantization=case["input_quantization"])
    values, alpha_values = quantized_input(rng, case["shape"], dtype), quantized_input(rng, case["alpha_shape"], dtype)
    arrays = [values]
    if case["alpha_input"]:
        alpha = b.add_input("alpha", case["alpha_shape"], dtype, quantization=case["alpha_quantization"])
        arrays.append(alpha_values)
    else:
        alpha = b.add_constant("alpha", alpha_values, quantization=case["alpha_quantization"])
    b.mark_outputs(b.add_op("PRELU", [x, alpha], output_shape=case["shape"], output_dtype=dtype,
                            output_quantization=case["output_quantization"]))
    return b, arrays


@SETTINGS
@given(prelu_cases())
def test_quantized_prelu(case: Case) -> None:
    check_case(case, build_prelu)


# --- found cases and refusals ----------------------------------------------------------------------

UNARY = {"shape": (256,), "seed": 0}
REGRESSIONS = [
    # LEAKY_RELU, alpha -0.5 on equal scales: LiteRT (since 2.1.4) rescales by |M| and negates, so
    # q = -3 gives 1 (-(1.5 rounded toward zero on a tie)); MBQM with the negative multiplier gives 2.
    {**UNARY, "kind": "LEAKY_RELU", "dtype": "int8", "input_quantization": (0.1, 0), "output_quantization": (0.1, 0),
     "alpha": -0.5},
    # HARD_SWISH with the output multiplier just below 1 (exponent 0): 255 - z_in on the preshift
    # output scale plus z_out 255 passes int16 and wraps: LiteRT gives 0 for the largest input.
    {**UNARY, "kind": "HARD_SWISH", "dtype": "uint8", "input_quantization": (1.0, 0),
     "output_quantization": (float(np.float32(1 / 128 / 0.9999)), 255)},
    # HARD_SWISH on a tiny input scale: the reluish right shift is 23, past int16, where gemmlowp's
    # RoundingDivideByPOT<int16_t> mask is -1.
    {**UNARY, "kind": "HARD_SWISH", "dtype": "int8", "input_quantization": (1e-9, -128),
     "output_quantization": (1e-9, 127)},
    # HARD_SWISH: s_in / (128 s_out) = 1 is refused by LiteRT's Prepare (and npdeeplab).
    {**UNARY, "kind": "HARD_SWISH", "dtype": "int8", "input_quantization": (1.0, 0),
     "output_quantization": (1 / 128, 0)},
    # RELU with the output zero point at the top: every value clamps to it.
    {**UNARY, "kind": "RELU", "dtype": "int8", "input_quantization": (0.5, 3), "output_quantization": (0.25, 127)},
    # RELU6 whose 6.0 is 2**31 - 64 steps of the output scale: the largest limit int32 holds.
    {**UNARY, "kind": "RELU6", "dtype": "uint8", "input_quantization": (1e-9, 5),
     "output_quantization": (float(np.float32(6 / (2**31 - 64))), 0)},
    # PRELU, alpha per channel of an NHWC input, a graph input.
    {"kind": "PRELU", "dtype": "uint8", "shape": (1, 3, 4, 5), "alpha_shape": (1, 1, 5), "alpha_input": True,
     "input_quantization": (0.05, 128), "alpha_quantization": (0.01, 0), "output_quantization": (0.04, 100),
     "seed": 1},
]


@pytest.mark.parametrize("case", REGRESSIONS)
def test_regressions(case: Case) -> None:
    check_case(case, build_prelu if case["kind"] == "PRELU" else build_quantized)


def test_leaky_relu_negative_alpha_takes_the_sign_out_first() -> None:
    model, inputs = build_quantized(REGRESSIONS[0])
    q = inputs[0].astype(int)
    out = check(model, inputs)[0].astype(int)
    assert dict(zip(q.tolist(), out.tolist(), strict=True))[-3] == 1


def float_model(kind: str, shape: tuple[int, ...], alpha_array: np.ndarray | None = None, **options: Any) -> bytes:
    b = GraphBuilder()
    inputs = [b.add_input("x", shape)]
    if alpha_array is not None:
        inputs.append(b.add_constant("alpha", alpha_array))
    b.mark_outputs(b.add_op(kind, inputs, output_shape=shape, output_dtype=np.float32, **options))
    return b.to_bytes()


def test_refusals_litert_shares() -> None:
    """LiteRT refuses these too (the harness checks both)."""
    for shape, alpha_shape in [((3,), (2, 3)), ((2, 3), (4,)), ((2, 1), (2, 3))]:
        data = float_model("PRELU", shape, np.ones(alpha_shape, np.float32))
        with pytest.raises((RuntimeError, ValueError)):
            run_litert(data, [np.ones(shape, np.float32)])
        with pytest.raises(ModelError, match=r"PRELU.*alpha shape"):
            run_npdeeplab(data, [np.ones(shape, np.float32)], "numpy")
    b = GraphBuilder()
    x = b.add_input("x", (4,), np.uint8, quantization=(0.1, 0))
    b.mark_outputs(b.add_op("RELU", [x], output_shape=(4,), output_dtype=np.int8, output_quantization=(0.1, 0)))
    assert check(b, [np.arange(4, dtype=np.uint8)]) is None


def quantized_model(case: Case) -> bytes:
    return (build_prelu if case["kind"] == "PRELU" else build_quantized)(case)[0].to_bytes()


def assert_refused(data: bytes, message: str) -> None:
    for backend in BACKENDS:
        with pytest.raises(ModelError, match=message):
            Interpreter(model_content=data, backend=backend)


def test_refusals() -> None:
    """Refused at load, with the op and the values named. LiteRT runs some of these with undefined C
    (a shift past 31, a conversion past int32), or with a zero scale's infinities."""
    leaky, prelu = REGRESSIONS[0], REGRESSIONS[-1]
    for case, message in [
        (dict(leaky, alpha=float("inf")), r"LEAKY_RELU.*alpha must be finite, got inf"),
        (dict(leaky, alpha=float("nan")), r"alpha must be finite, got nan"),
        (dict(leaky, alpha=0.0, output_quantization=(1e-11, 0)), r"identity multiplier 1e\+10 is 2\*\*31 or more"),
        (dict(leaky, alpha=3e38, output_quantization=(1e-3, 0)), r"alpha multiplier overflows float32"),
        (dict(leaky, kind="RELU6", output_quantization=(1e-10, 0)), r"RELU6.*limit 6\.0 .* more than int32"),
        (dict(leaky, kind="RELU_N1_TO_1", input_quantization=(1e-10, 0), output_quantization=(1e-10, 0)),
         r"limit -1\.0 is -1e\+10 steps"),
        (dict(leaky, kind="HARD_SWISH", input_quantization=(5e7, 0), output_quantization=(5e7, 0)),
         r"HARD_SWISH.*input scale .* too large: .* left shift by 31"),
        (dict(leaky, kind="HARD_SWISH", output_quantization=(1e-4, 0)), r"HARD_SWISH.*must be below 1"),
        (dict(leaky, kind="RELU", input_quantization=(0.0, 0)), r"RELU.*input \(tensor 0 'x'\) has scale 0\.0"),
        (dict(prelu, alpha_quantization=None), r"PRELU.*alpha \(tensor 1 'alpha'\) is uint8 without"),
        (dict(prelu, alpha_quantization=(1e5, 0), output_quantization=(1e-6, 0)), r"PRELU.*alpha multiplier"),
    ]:
        assert_refused(quantized_model(case), message)
    assert_refused(float_model("PRELU", (2, 3), np.ones(3, np.int32)), r"PRELU.*input 1 .* must be float32")
    assert_refused(float_model("PRELU", (1,) * 8 + (2,), np.ones(2, np.float32)), r"rank up to 8, got rank 9")


def test_refusals_of_types() -> None:
    """PRELU's alpha must have the input's type (LiteRT reads its bytes as the input's type), and
    int16 is refused by the 8-bit preparers."""
    b = GraphBuilder()
    x = b.add_input("x", (2, 3), np.uint8, quantization=(0.1, 0))
    alpha = b.add_constant("alpha", np.ones(3, np.int8), quantization=(0.1, 0))
    b.mark_outputs(b.add_op("PRELU", [x, alpha], output_shape=(2, 3), output_dtype=np.uint8,
                            output_quantization=(0.1, 0)))
    with pytest.raises(ModelError, match=r"PRELU.*input 1 .* must be uint8, got int8"):
        run_npdeeplab(b.to_bytes(), [np.zeros((2, 3), np.uint8)], "numpy")
    b = GraphBuilder()
    x = b.add_input("x", (4,), np.int16, quantization=(0.1, 0))
    b.mark_outputs(b.add_op("HARD_SWISH", [x], output_shape=(4,), output_dtype=np.int16, output_quantization=(0.1, 0)))
    with pytest.raises(ModelError, match=r"HARD_SWISH.*must be uint8 or int8, got int16"):
        run_npdeeplab(b.to_bytes(), [np.zeros(4, np.int16)], "numpy")


def test_prelu_of_equal_shapes_past_rank_8() -> None:
    """Equal shapes run flat at any rank in LiteRT (broadcasting past rank 8 aborts it: refused above)."""
    shape = (1,) * 8 + (2,)
    check_float(*build_float({"kind": "PRELU", "shape": shape, "alpha_shape": shape, "alpha_range": 1.0,
                              "alpha_input": False, "range": 2.0, "specials": True, "seed": 4}))


def test_leaky_relu_without_options_has_alpha_zero() -> None:
    """A LEAKY_RELU without its options table: LiteRT's alpha is 0, npdeeplab's too."""
    b = GraphBuilder()
    b.mark_outputs(b.add_op("LEAKY_RELU", [b.add_input("x", (5,))], alpha=0.7))
    model = b.build()
    graph = dataclasses.replace(model.main, ops=(dataclasses.replace(model.main.ops[0], options=None),))
    data = write_model(dataclasses.replace(model, subgraphs=(graph,)))
    assert load_model(data).main.ops[0].options is None
    values = np.array([-2, -0.5, 0, 0.5, 2], np.float32)
    expected = run_litert(data, [values])[0]
    assert np.array_equal(expected, np.array([-0.0, -0.0, 0, 0.5, 2], np.float32))
    for backend in BACKENDS:
        assert np.array_equal(run_npdeeplab(data, [values], backend)[0], expected)

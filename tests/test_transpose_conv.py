"""TRANSPOSE_CONV against LiteRT's reference kernels (BUILTIN_REF), float32 and quantized.

Hypothesis draws the geometry: batch 1-2, input 1-7 x 1-7, kernels 1-5 x 1-5, strides 1-3 x 1-3,
SAME or VALID, an output size anywhere in the range LiteRT accepts for it (and, one case in
eight, just outside that range, which LiteRT refuses), channels 1-12 in and out, the bias (three
inputs, index -1, or a bias), the fused activation (all six codes), constant or graph-input
weights. Quantized cases add the format (uint8 per tensor, int8 per channel or one scale), scales
from 1e-5 to 10, zero points at the range ends or anywhere, biases up to the whole int32 range,
constant or graph-input biases.

Float outputs must agree with REF to float32 rounding (|ours - ref| <= 2 (terms + 1) 2**-24
(|x| * |w| + |b|), both being float32 sums of the same products in some order; the Numba backend
sums in the reference's order and must be identical on x86-64) and with the default resolver
(XNNPACK) to 1e-4 x max(1, max|ref|); quantized outputs must be identical. Where LiteRT refuses a
model, npdeeplab must raise ModelError. Below: regressions (float64 sums, int32 wrap-around,
non-finite values), refusals, the public params helper, MACs.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, litert_module
from hypothesis import event, given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, quantized_input, run_litert, run_npdeeplab, scales, zero_points

from npdeeplab import Interpreter
from npdeeplab.errors import ModelError
from npdeeplab.kernels.transpose_conv import TransposeConvParams, TransposeWindow
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import OpNode
from npdeeplab.model.options import TransposeConvOptions
from npdeeplab.ops.base import OpContext
from npdeeplab.ops.transpose_conv import transpose_conv_params

Case = dict[str, Any]
TYPES = {"uint8": np.uint8, "int8": np.int8}
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "SIGN_BIT")
BIASES = ("none", "omitted", "vector")  # three inputs, index -1, [Cout]
FORMATS = (("uint8", False), ("int8", True), ("int8", False))  # (dtype, per channel)
DEFAULT_TOLERANCE = 1e-4
INT32_MAX = 2**31 - 1
X86 = platform.machine().lower() in ("x86_64", "amd64")


def output_range(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """The output sizes LiteRT accepts for an input size: those a convolution (kernel, stride,
    padding) maps back to it (ceil(out / stride) for SAME, (out + stride - kernel) / stride for VALID)."""
    if padding == "SAME":
        return (size - 1) * stride + 1, size * stride
    return (size - 1) * stride + kernel, size * stride + kernel - 1


@st.composite
def geometry(draw: Callable, max_channels: int = 12) -> Case:
    case: Case = {
        "batch": draw(st.integers(1, 2)),
        "size": (draw(st.integers(1, 7)), draw(st.integers(1, 7))),
        "kernel": (draw(st.integers(1, 5)), draw(st.integers(1, 5))),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "channels": (draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))),
        "bias": draw(st.sampled_from(BIASES)),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "constant_weights": draw(st.integers(0, 4)) > 0,
        "seed": draw(st.integers(0, 2**16)),
    }
    out = []
    for size, kernel, stride in zip(case["size"], case["kernel"], case["stride"], strict=True):
        low, high = output_range(size, kernel, stride, case["padding"])
        out.append(draw(st.integers(low, high)))
    if draw(st.integers(0, 7)) == 0:  # just outside the accepted range: LiteRT refuses it
        axis = draw(st.integers(0, 1))
        low, high = output_range(case["size"][axis], case["kernel"][axis], case["stride"][axis], case["padding"])
        out[axis] = max(1, low - 1) if draw(st.booleans()) and low > 1 else high + 1
    case["output"] = tuple(out)
    return case


def op_inputs(case: Case, b: GraphBuilder, x: int, weights: int, bias: Any) -> list[int | None]:
    n, (cout) = case["batch"], case["channels"][1]
    shape = b.add_constant("output_shape", np.array([n, *case["output"], cout], np.int32))
    ops: list[int | None] = [shape, weights, x]
    if case["bias"] == "omitted":
        ops.append(None)
    elif case["bias"] == "vector":
        ops.append(bias)
    return ops


def options(case: Case) -> dict[str, Any]:
    return {"padding": case["padding"], "stride_h": case["stride"][0], "stride_w": case["stride"][1],
            "fused_activation_function": case["activation"]}


# --- float32 ------------------------------------------------------------------------------------


def build_float(case: Case) -> tuple[GraphBuilder, list[np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    cin, cout = case["channels"]
    (kh, kw) = case["kernel"]
    x = rng.uniform(-2, 2, (case["batch"], *case["size"], cin)).astype(np.float32)
    w = (rng.standard_normal((cout, kh, kw, cin)) / math.sqrt(kh * kw * cin)).astype(np.float32)
    bias = rng.uniform(-1, 1, cout).astype(np.float32)
    b = GraphBuilder()
    inputs = [x]
    x_index = b.add_input("x", x.shape)
    if case["constant_weights"]:
        w_index = b.add_constant("w", w)
    else:
        w_index = b.add_input("w", w.shape)
        inputs.append(w)
    bias_index = b.add_constant("bias", bias) if case["bias"] == "vector" else None
    y = b.add_op("TRANSPOSE_CONV", op_inputs(case, b, x_index, w_index, bias_index),
                 output_shape=(case["batch"], *case["output"], cout), output_dtype=np.float32, **options(case))
    b.mark_outputs(y)
    arrays = {"x": x, "w": w, "b": bias if case["bias"] == "vector" else np.zeros_like(bias)}
    return b, inputs, arrays


def naive(case: Case, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """reference_ops::TransposeConv's scatter in float64, input pixel by input pixel: the oracle
    of the error bound below."""
    (sh, sw), (kh, kw) = case["stride"], case["kernel"]
    out_h, out_w = case["output"]
    pads = [max((size - 1) * s + k - o, 0) // 2 for size, s, k, o in
            zip(case["size"], case["stride"], case["kernel"], case["output"], strict=True)]
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[0]))
    for iy in range(x.shape[1]):
        for ix in range(x.shape[2]):
            for ky in range(kh):
                for kx in range(kw):
                    oy, ox = iy * sh - pads[0] + ky, ix * sw - pads[1] + kx
                    if 0 <= oy < out_h and 0 <= ox < out_w:
                        out[:, oy, ox] += x[:, iy, ix] @ w[:, ky, kx].T
    return out


def assert_float_close(got: np.ndarray, expected: np.ndarray, arrays: dict[str, np.ndarray], case: Case,
                       what: str) -> None:
    """Equal where REF is not finite; elsewhere within the float32 summation bound."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, (what, got.shape, expected.shape)
    (sh, sw), (kh, kw) = case["stride"], case["kernel"]
    terms = math.ceil(kh / sh) * math.ceil(kw / sw) * case["channels"][0]
    magnitude = naive(case, np.abs(arrays["x"]).astype(np.float64), np.abs(arrays["w"]).astype(np.float64))
    bound = 2 * (terms + 1) * 2.0**-24 * (magnitude + np.abs(arrays["b"])) + 1e-30
    finite = np.isfinite(expected)
    assert np.array_equal(got[~finite], expected[~finite], equal_nan=True), f"{what}: non-finite values differ"
    error = np.abs(got[finite].astype(np.float64) - expected[finite])
    assert (error <= bound[finite]).all(), f"{what}: error {error.max():.3g} beyond the float32 rounding bound"


def run_default(data: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """LiteRT's default resolver (XNNPACK where it delegates)."""
    lite = litert_module()
    interpreter = lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def check_float(case: Case, default_resolver: bool = True) -> bool:
    """True when LiteRT ran the model (and npdeeplab matched it), False when both refused it."""
    builder, inputs, arrays = build_float(case)
    data = builder.to_bytes()
    try:
        expected = run_litert(data, inputs)[0]
    except (RuntimeError, ValueError) as refusal:
        for backend in BACKENDS:
            with pytest.raises(ModelError):
                run_npdeeplab(data, inputs, backend)
                pytest.fail(f"LiteRT refuses this model ({refusal}); npdeeplab ({backend}) ran it")
        return False
    default = run_default(data, inputs) if default_resolver else None
    for backend in BACKENDS:
        got = run_npdeeplab(data, inputs, backend)[0]
        assert_float_close(got, expected, arrays, case, f"{backend} vs LiteRT BUILTIN_REF")
        if backend == "numba" and X86:  # the reference's order of additions: the reference's sums
            assert np.array_equal(got, expected, equal_nan=True), "numba differs from LiteRT BUILTIN_REF"
        if default is not None:
            scale = max(1.0, float(np.max(np.abs(expected))))
            error = float(np.max(np.abs(got.astype(np.float64) - default)))
            assert error <= DEFAULT_TOLERANCE * scale, f"{backend} vs LiteRT's default resolver: {error:.3g}"
    return True


@SETTINGS
@given(geometry())
def test_float(case: Case) -> None:
    event("ran" if check_float(case) else "refused")


def float_case(**fields: Any) -> Case:
    base: Case = {"batch": 1, "size": (3, 4), "kernel": (3, 3), "stride": (2, 2), "padding": "SAME",
                  "channels": (3, 2), "bias": "vector", "activation": "NONE", "constant_weights": True, "seed": 3,
                  "output": (6, 8)}
    return {**base, **fields}


FLOAT_EXPLICIT = {
    "same_smallest_output": float_case(output=(5, 7)),
    "valid": float_case(padding="VALID", output=(7, 9)),
    "valid_largest_output": float_case(padding="VALID", output=(8, 10)),  # one row and column no tap reaches
    "kernel_smaller_than_stride": float_case(kernel=(1, 2), stride=(3, 3), output=(9, 12)),
    "kernel_5_stride_1": float_case(kernel=(5, 5), stride=(1, 1), output=(3, 4), activation="RELU6"),
    "batch_2_many_channels": float_case(batch=2, channels=(40, 24), activation="RELU"),
    "no_bias_three_inputs": float_case(bias="none", activation="RELU_N1_TO_1"),
    "no_bias_index_minus_one": float_case(bias="omitted"),
    "weights_as_graph_input": float_case(constant_weights=False, stride=(1, 3), output=(3, 12)),
    "one_by_one": float_case(size=(1, 1), kernel=(1, 1), stride=(1, 1), output=(1, 1), channels=(1, 1)),
    "output_smaller_than_kernel": float_case(size=(1, 1), kernel=(5, 4), stride=(3, 2), output=(2, 1)),
}


@pytest.mark.parametrize("name", sorted(FLOAT_EXPLICIT))
def test_float_explicit(name: str) -> None:
    assert check_float(FLOAT_EXPLICIT[name])


def test_float_bias_of_shape_1_by_cout() -> None:
    """LiteRT checks only the bias's element count: [1, Cout] is a bias too."""
    b = GraphBuilder()
    ops = [b.add_constant("shape", np.array([1, 6, 6, 3], np.int32)),
           b.add_constant("w", np.linspace(-1, 1, 54, dtype=np.float32).reshape(3, 3, 3, 2)),
           b.add_input("x", (1, 3, 3, 2)), b.add_constant("bias", np.array([[0.5, -1, 2]], np.float32))]
    b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, stride_h=2, stride_w=2))
    x = np.random.default_rng(0).standard_normal((1, 3, 3, 2)).astype(np.float32)
    expected = run_litert(b.to_bytes(), [x])[0]
    for backend in BACKENDS:
        assert np.allclose(run_npdeeplab(b.to_bytes(), [x], backend)[0], expected, rtol=1e-6, atol=1e-6)


def test_float_non_finite_values() -> None:
    """Inf and NaN inputs and weights propagate as in REF: a tap that lands outside the output never
    multiplies (an Inf weight there leaves no NaN), NONE clamps Inf to +-FLT_MAX, RELU6 keeps NaN."""
    for activation in ("NONE", "RELU6"):
        w = np.ones((2, 3, 3, 3), np.float32)
        w[0, 0, 0, 0] = np.inf  # tap (0, 0) of input pixel (0, 0) lands at (-1, -1): never used there
        w[1, 2, 2, 1] = np.nan
        b = GraphBuilder()
        ops = [b.add_constant("shape", np.array([1, 5, 5, 2], np.int32)), b.add_constant("w", w),
               b.add_input("x", (1, 3, 3, 3)), b.add_constant("bias", np.ones(2, np.float32))]
        b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, stride_h=2, stride_w=2, fused_activation_function=activation))
        x = np.random.default_rng(1).standard_normal((1, 3, 3, 3)).astype(np.float32)
        x[0, 2, 2, 2] = -np.inf
        expected = run_litert(b.to_bytes(), [x])[0]
        assert np.isnan(expected).any() and not np.isnan(expected).all()
        for backend in BACKENDS:
            got = run_npdeeplab(b.to_bytes(), [x], backend)[0]
            assert np.array_equal(np.isnan(got), np.isnan(expected)), backend
            finite = np.isfinite(expected)
            assert np.array_equal(got[~finite], expected[~finite], equal_nan=True), backend
            assert np.allclose(got[finite], expected[finite], rtol=1e-5, atol=1e-5), backend


# --- quantized ----------------------------------------------------------------------------------


@st.composite
def quantized_cases(draw: Callable) -> Case:
    case = draw(geometry(max_channels=10))
    dtype, per_channel = draw(st.sampled_from(FORMATS))
    s_in, s_w = draw(scales()), draw(scales())
    (kh, kw), (sh, sw) = case["kernel"], case["stride"]
    terms = math.ceil(kh / sh) * math.ceil(kw / sw) * case["channels"][0]
    # Mostly an output scale near what converters write (input x weight scale, grown with the
    # number of terms), sometimes any: the rescaling's extremes and clamps.
    related = s_in * s_w * 2.0 ** draw(st.floats(-2, 2 + math.log2(terms)))
    s_out = float(np.float32(related)) if draw(st.integers(0, 3)) else draw(scales())
    case.update({
        "dtype": dtype,
        "per_channel": per_channel,
        "scales": (s_in, s_w, s_out),
        "zero_points": (draw(zero_points(dtype)), 0 if dtype == "int8" else draw(zero_points(dtype)),
                        draw(zero_points(dtype))),
        "bias_bits": draw(st.sampled_from([0, 8, 16, 20, 24, 31])),  # |bias| below 2**bits
        "constant_bias": draw(st.integers(0, 4)) > 0,
    })
    return case


def build_quantized(case: Case, **overrides: Any) -> tuple[GraphBuilder, list[np.ndarray]]:
    """The one-op model of a case; overrides replace the weights' or bias's quantization, the
    weight or bias values, to make models LiteRT or npdeeplab must refuse."""
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    s_in, s_w, s_out = case["scales"]
    z_in, z_w, z_out = case["zero_points"]
    cin, cout = case["channels"]
    weights = overrides.get("weights", quantized_input(rng, (cout, *case["kernel"], cin), dtype))
    if case["per_channel"]:
        weight_scales = (s_w * rng.uniform(0.25, 4, cout)).astype(np.float32)
        weight_q = (weight_scales, np.zeros(cout, np.int64), 0)
    else:
        weight_scales = np.array([s_w], np.float32)
        weight_q = (s_w, z_w)
    weight_q = overrides.get("weight_quantization", weight_q)
    bias_scales = (np.float32(s_in) * weight_scales).astype(np.float32)
    bias_q = overrides.get("bias_quantization", (bias_scales, np.zeros(bias_scales.size, np.int64), 0))
    span = 2 ** case["bias_bits"]
    bias = rng.integers(-span, span, cout, endpoint=True).clip(-(2**31), INT32_MAX).astype(np.int32)
    bias = overrides.get("bias", bias)
    b = GraphBuilder()
    x = quantized_input(rng, (case["batch"], *case["size"], cin), dtype)
    inputs = [x]
    x_index = b.add_input("x", x.shape, dtype, quantization=(s_in, z_in))
    if case["constant_weights"]:
        w_index = b.add_constant("w", weights, quantization=weight_q)
    else:
        w_index = b.add_input("w", weights.shape, dtype, quantization=weight_q)
        inputs.append(weights)
    bias_index = None
    if case["bias"] == "vector":
        if case.get("constant_bias", True):
            bias_index = b.add_constant("bias", bias, quantization=bias_q)
        else:
            bias_index = b.add_input("bias", bias.shape, bias.dtype, quantization=bias_q)
            inputs.append(bias)
    y = b.add_op("TRANSPOSE_CONV", op_inputs(case, b, x_index, w_index, bias_index),
                 output_quantization=overrides.get("output_quantization", (s_out, z_out)),
                 output_shape=(case["batch"], *case["output"], cout), output_dtype=dtype, **options(case))
    b.mark_outputs(y)
    return b, inputs


@SETTINGS
@given(quantized_cases())
def test_quantized(case: Case) -> None:
    event("refused" if check(*build_quantized(case)) is None else "ran")
    event("per channel" if case["per_channel"] else f"{case['dtype']} per tensor")


def quantized_case(**fields: Any) -> Case:
    base: Case = {**float_case(), "dtype": "int8", "per_channel": True, "scales": (0.05, 0.01, 0.2),
                  "zero_points": (3, 0, -5), "bias_bits": 16, "constant_bias": True}
    return {**base, **fields}


QUANTIZED_EXPLICIT = {
    "uint8_zero_points_at_the_ends": quantized_case(dtype="uint8", per_channel=False, zero_points=(0, 255, 255)),
    "uint8_zero_points_at_the_other_ends": quantized_case(dtype="uint8", per_channel=False, zero_points=(255, 0, 0)),
    "int8_zero_points_at_the_ends": quantized_case(zero_points=(-128, 0, 127), activation="RELU"),
    "int8_one_scale": quantized_case(per_channel=False, zero_points=(127, 0, -128)),
    # The reference rescales in double rounding: exact halves round away from zero.
    "halves": quantized_case(scales=(0.5, 1.0, 1.0), zero_points=(0, 0, 0), kernel=(1, 1), stride=(1, 1),
                             output=(3, 4)),
    "valid_kernel_5_stride_3": quantized_case(padding="VALID", kernel=(5, 5), stride=(3, 3), output=(11, 14),
                                              activation="RELU6", scales=(0.05, 0.01, 0.01)),
    "weights_and_bias_as_graph_inputs": quantized_case(constant_weights=False, constant_bias=False),
    "no_bias_index_minus_one": quantized_case(bias="omitted", dtype="uint8", per_channel=False,
                                              zero_points=(7, 200, 9)),
    "no_bias_three_inputs": quantized_case(bias="none", activation="RELU_N1_TO_1"),
    "tanh_and_sign_bit_do_not_clamp": quantized_case(activation="TANH", zero_points=(0, 0, 100)),
    "batch_2": quantized_case(batch=2, channels=(17, 9), activation="SIGN_BIT"),
    "tiny_scale": quantized_case(scales=(1e-5, 1e-5, 10.0)),
}


@pytest.mark.parametrize("name", sorted(QUANTIZED_EXPLICIT))
def test_quantized_explicit(name: str) -> None:
    assert check(*build_quantized(QUANTIZED_EXPLICIT[name])) is not None


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_int32_arithmetic_wraps_as_in_c(dtype: str) -> None:
    """acc + bias past INT32_MAX wraps, as the reference's int32 scratch buffer does."""
    info = np.iinfo(TYPES[dtype])
    bias = np.array([INT32_MAX, -(2**31), INT32_MAX - 100], np.int32)
    for z_in in (int(info.min), int(info.max)):
        for constant in (True, False):
            case = quantized_case(dtype=dtype, per_channel=dtype == "int8", channels=(4, 3), kernel=(4, 4),
                                  output=(6, 8), zero_points=(z_in, 0 if dtype == "int8" else int(info.min), 0),
                                  constant_bias=constant, scales=(1.0, 1.0, 1.0))
            assert check(*build_quantized(case, bias=bias)) is not None


def test_sums_beyond_float32_run_in_float64() -> None:
    """Full-range uint8 products (255 x -255): 300 input channels pass 2**24 in each tap's sum over
    channels (the matrix product runs in float64); 64 channels with 5x5 taps pass it in the sums
    over taps; with stride 2, a 4x4 kernel reaches each output with 4 taps: 64 channels stay just
    below 2**24 (float32 throughout), 150 do not."""
    cases = [((300, 2), (3, 3), (1, 1), (3, 3), (3, 3)), ((64, 3), (5, 5), (1, 1), (6, 6), (6, 6)),
             ((64, 2), (4, 4), (2, 2), (3, 3), (6, 6)), ((150, 2), (4, 4), (2, 2), (3, 3), (6, 6))]
    for channels, kernel, stride, size, output in cases:
        for constant in (True, False):
            case = quantized_case(dtype="uint8", per_channel=False, channels=channels, kernel=kernel, stride=stride,
                                  size=size, output=output, zero_points=(0, 255, 255), scales=(1.0, 1.0, 2.0**20),
                                  constant_weights=constant)
            weights = np.zeros((channels[1], *kernel, channels[0]), np.uint8)  # w - zp = -255 everywhere
            expected = check(*build_quantized(case, weights=weights))
            assert expected is not None and len(np.unique(expected[0])) > 1


# --- refusals -----------------------------------------------------------------------------------


def refuse(builder: GraphBuilder, inputs: list[np.ndarray], match: str, litert_runs: bool = False) -> None:
    """npdeeplab raises a one-line ModelError matching `match`; LiteRT refuses too, or (litert_runs) runs it."""
    data = builder.to_bytes()
    try:
        run_litert(data, inputs)
        ran = True
    except (RuntimeError, ValueError):
        ran = False
    assert ran == litert_runs
    for backend in BACKENDS:
        with pytest.raises(ModelError, match=match) as error:
            run_npdeeplab(data, inputs, backend)
        assert "\n" not in str(error.value)


def float_model(output_shape: Any = (1, 6, 6, 3), w_shape: tuple[int, ...] = (3, 3, 3, 2),
                bias: np.ndarray | None = None, shape_dtype: Any = np.int32, declared: Any = None,
                **fields: Any) -> tuple[GraphBuilder, list[np.ndarray]]:
    """A float TRANSPOSE_CONV of a [1, 3, 3, 2] input, declared with the output shape (or `declared`)."""
    b = GraphBuilder()
    ops = [b.add_constant("shape", np.array(output_shape, shape_dtype)),
           b.add_constant("w", np.ones(w_shape, np.float32)), b.add_input("x", (1, 3, 3, 2))]
    if bias is not None:
        ops.append(b.add_constant("bias", bias))
    declared = declared or (tuple(output_shape) if len(output_shape) == 4 else (1, 6, 6, 3))
    options = {"padding": "SAME", "stride_h": 2, "stride_w": 2, **fields}
    b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, output_shape=declared, output_dtype=np.float32, **options))
    return b, [np.ones((1, 3, 3, 2), np.float32)]


REFUSED = {
    "output_height_too_large": (dict(output_shape=(1, 7, 6, 3)), "output height 7 does not fit"),
    "output_width_too_small": (dict(output_shape=(1, 6, 4, 3)), "output width 4 does not fit"),
    "valid_output_too_small": (dict(output_shape=(1, 6, 6, 3), padding="VALID"), "output height 6 does not fit"),
    "output_batch": (dict(output_shape=(2, 6, 6, 3)), r"must be \[N, OH, OW, Cout\]"),
    "output_channels": (dict(output_shape=(1, 6, 6, 4)), r"must be \[N, OH, OW, Cout\]"),
    "output_shape_of_5": (dict(output_shape=(1, 6, 6, 3, 1)), r"must be \[N, OH, OW, Cout\]"),
    "output_shape_int64": (dict(shape_dtype=np.int64), "must be int32, got int64"),
    "stride_0": (dict(stride_h=0), "strides"),
    "stride_over_int16": (dict(stride_w=2**15, output_shape=(1, 6, 3 * 2**15, 3)), "strides"),
    "weights_channels": (dict(w_shape=(3, 3, 3, 4)), "input has 2 channels"),
    "bias_count": (dict(bias=np.ones(4, np.float32)), "expected 3 values"),
    "bias_dtype": (dict(bias=np.ones(3, np.int32)), "must be float32, got int32"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refuses_what_litert_refuses(name: str) -> None:
    fields, match = REFUSED[name]
    refuse(*float_model(**fields), match)


def test_refuses_an_output_of_another_dtype() -> None:
    b = GraphBuilder()
    ops = [b.add_constant("shape", np.array([1, 6, 6, 3], np.int32)), b.add_constant("w", np.ones((3, 3, 3, 2),
                                                                                             np.float32)),
           b.add_input("x", (1, 3, 3, 2))]
    b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, stride_h=2, stride_w=2, output_shape=(1, 6, 6, 3),
                            output_dtype=np.int32))
    refuse(b, [np.ones((1, 3, 3, 2), np.float32)], "declared int32")


def test_refuses_quantization_litert_refuses() -> None:
    uint8 = quantized_case(dtype="uint8", per_channel=False, zero_points=(3, 128, 5))
    per_channel = (np.full(2, 0.01, np.float32), np.full(2, 128), 0)
    refuse(*build_quantized(uint8, weight_quantization=per_channel), "per tensor")
    off = (np.array([0.05 * 0.01 * 100], np.float32), np.zeros(1, np.int64), 0)  # one bias scale, far off
    refuse(*build_quantized(uint8, bias_quantization=off), "bias .* has scale")
    unit = quantized_case(dtype="uint8", per_channel=False, zero_points=(3, 128, 5), scales=(1.0, 1.0, 1.0))
    refuse(*build_quantized(unit, bias_quantization=None), "bias .* has scale 0.0")  # no scale counts as 0
    int8 = quantized_case()
    zero_point = (np.array([0.0005], np.float32), np.array([2]), 0)
    refuse(*build_quantized(int8, bias_quantization=zero_point), "zero point 2")
    refuse(*build_quantized(int8, bias=np.ones(2, np.float32), bias_quantization=None), "must be int32")


def test_per_channel_bias_scale_and_zero_point_are_not_checked() -> None:
    """LiteRT checks the bias's legacy per-tensor scale (uint8) and zero point (int8); per-channel
    bias quantization has neither, and passes. npdeeplab refuses nonzero bias zero points anyway."""
    case = quantized_case(dtype="uint8", per_channel=False, zero_points=(3, 128, 5))
    far = (np.full(2, 0.05 * 0.01 * 100, np.float32), np.zeros(2, np.int64), 0)
    assert check(*build_quantized(case, bias_quantization=far)) is not None
    nonzero = (np.full(2, 0.0005, np.float32), np.array([2, 0]), 0)
    refuse(*build_quantized(quantized_case(), bias_quantization=nonzero), "zero point 2", litert_runs=True)


def test_refuses_what_litert_runs_but_npdeeplab_does_not() -> None:
    """LiteRT runs these: a computed output_shape (a dynamic output), int8 weights with nonzero
    zero points (ignored), per-channel scales along Cin when Cin == Cout, hybrid (float input, int8
    weights) and 16x8 (int16 input); npdeeplab refuses them."""
    b = GraphBuilder()
    ops = [b.add_input("shape", (4,), np.int32), b.add_constant("w", np.ones((3, 3, 3, 2), np.float32)),
           b.add_input("x", (1, 3, 3, 2))]
    b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, stride_h=2, stride_w=2, output_shape=(1, 6, 6, 3),
                            output_dtype=np.float32))
    refuse(b, [np.array([1, 6, 6, 3], np.int32), np.ones((1, 3, 3, 2), np.float32)], "needs it constant",
           litert_runs=True)
    refuse(*float_model(declared=(1, 2, 2, 3)), r"declared with shape \[1, 2, 2, 3\]", litert_runs=True)
    case = quantized_case(channels=(2, 2))
    refuse(*build_quantized(case, weight_quantization=(np.full(2, 0.01, np.float32), np.array([0, 3]), 0)),
           "zero point 3", litert_runs=True)
    refuse(*build_quantized(case, weight_quantization=(np.full(2, 0.01, np.float32), np.zeros(2), 3)),
           "dimension 3, expected 0", litert_runs=True)
    b = GraphBuilder()
    ops = [b.add_constant("shape", np.array([1, 6, 6, 3], np.int32)),
           b.add_constant("w", np.ones((3, 3, 3, 2), np.int8), quantization=(np.full(3, 0.1), np.zeros(3), 0)),
           b.add_input("x", (1, 3, 3, 2))]
    b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, stride_h=2, stride_w=2, output_shape=(1, 6, 6, 3),
                            output_dtype=np.float32))
    refuse(b, [np.ones((1, 3, 3, 2), np.float32)], "hybrid", litert_runs=True)
    b = GraphBuilder()
    ops = [b.add_constant("shape", np.array([1, 6, 6, 3], np.int32)),
           b.add_constant("w", np.ones((3, 3, 3, 2), np.int8), quantization=(np.full(3, 0.1), np.zeros(3), 0)),
           b.add_input("x", (1, 3, 3, 2), np.int16, quantization=(0.01, 0))]
    b.mark_outputs(b.add_op("TRANSPOSE_CONV", ops, stride_h=2, stride_w=2, output_shape=(1, 6, 6, 3),
                            output_dtype=np.int16, output_quantization=(0.1, 0)))
    refuse(b, [np.ones((1, 3, 3, 2), np.int16)], "16x8", litert_runs=True)


# --- the params helper, the Numba shape checks, MACs ---------------------------------------------


def helper_context() -> OpContext:
    return OpContext(OpNode(0, "CUSTOM:Convolution2DTransposeBias", 1, (), (), None), [])


def test_params_helper_takes_mediapipe_output_sizes() -> None:
    """MediaPipe's Convolution2DTransposeBias sizes its output as stride*(H-1) + K - P, P =
    max(0, K - (H-1) % stride - 1) for SAME (0 for VALID), and pads P // 2 before: every such size
    passes the helper's checks, and its padding is that."""
    for size in range(1, 9):
        for kernel in range(1, 7):
            for stride in range(1, 5):
                for padding in ("SAME", "VALID"):
                    total = max(0, kernel - (size - 1) % stride - 1) if padding == "SAME" else 0
                    out = stride * (size - 1) + kernel - total
                    p = transpose_conv_params(helper_context(), (1, size, size, 2), (3, kernel, kernel, 2),
                                              padding, stride, stride, (out, out), bias_first=True)
                    assert (p.window.pad_top, p.window.pad_left) == (total // 2, total // 2)
                    assert (p.window.out_h, p.bias_first, p.act_max) == (out, True, np.finfo(np.float32).max)


def test_params_helper_refuses_with_one_line_errors() -> None:
    ctx = helper_context()
    bad = [((1, 3, 3, 2), (3, 3, 3, 2), "SAME", 2, 2, (7, 6), "output height 7"),
           ((1, 3, 3, 2), (3, 3, 3, 5), "SAME", 2, 2, (6, 6), "input has 2 channels"),
           ((1, 3, 3, 2), (3, 3, 3, 2), "UNKNOWN(4)", 2, 2, (6, 6), "unknown padding"),
           ((1, 3, 3, 2), (3, 3, 3, 2), "SAME", 1, 0, (3, 3), "strides"),
           ((1, 3, 3), (3, 3, 3, 2), "SAME", 1, 1, (3, 3), "rank 4"),
           ((1, 3, 3, 2), (3, 3, 3, 2), "VALID", 1, 1, (0, 5), "must be positive")]
    for x_shape, w_shape, padding, sh, sw, out, match in bad:
        with pytest.raises(ModelError, match=match) as error:
            transpose_conv_params(ctx, x_shape, w_shape, padding, sh, sw, out)
        assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match="unknown fused activation"):
        transpose_conv_params(ctx, (1, 3, 3, 2), (3, 3, 3, 2), "SAME", 1, 1, (3, 3), activation="SIGMOID")


def test_the_kernels_refuse_shapes_they_were_not_prepared_for() -> None:
    """The Numba kernels do not bounds-check: their wrappers check every shape first."""
    pytest.importorskip("numba")
    from npdeeplab.kernels.fast.integer.transpose_conv import transpose_conv_quantized
    from npdeeplab.kernels.fast.transpose_conv import transpose_conv

    p = TransposeConvParams(TransposeWindow(3, 3, 3, 3, 2, 2, 1, 1, 6, 6), 0.0, 6.0)
    x, w, b = np.ones((1, 3, 3, 2), np.float32), np.ones((4, 3, 3, 2), np.float32), np.ones(4, np.float32)
    assert transpose_conv(p, x, w, b).shape == (1, 6, 6, 4)
    for args in ((np.ones((1, 4, 3, 2), np.float32), w, b), (x, np.ones((4, 3, 3, 3), np.float32), b),
                 (x, np.ones((4, 2, 3, 2), np.float32), b), (x, w, np.ones(5, np.float32))):
        with pytest.raises(ValueError, match="TRANSPOSE_CONV"):
            transpose_conv(p, *args)
    with pytest.raises(ValueError, match="does not fit"):
        transpose_conv(p, x, w, b, out=np.empty((1, 6, 5, 4), np.float32))
    builder, _ = build_quantized(quantized_case())
    prepared = Interpreter(model_content=builder.to_bytes(), backend="numpy").ops[0].params
    x8 = np.zeros((1, 3, 4, 3), np.int8)
    with pytest.raises(ValueError, match="TRANSPOSE_CONV"):
        transpose_conv_quantized(prepared, x8, np.zeros((2, 3, 3, 4), np.int8), None)
    with pytest.raises(ValueError, match="prepared matrix"):
        transpose_conv_quantized(prepared, x8, np.zeros((3, 3, 3, 3), np.int8), None)


def test_macs_spread_every_input_value_over_the_kernel_and_output_channels() -> None:
    builder, _, _ = build_float(float_case(batch=2))
    assert Interpreter(model_content=builder.to_bytes(), backend="numpy").ops[0].macs == 2 * 3 * 4 * 3 * (2 * 3 * 3)
    builder, _ = build_quantized(quantized_case())
    assert Interpreter(model_content=builder.to_bytes(), backend="numpy").ops[0].macs == 3 * 4 * 3 * (2 * 3 * 3)


def test_options_round_trip_through_the_writer() -> None:
    builder, _, _ = build_float(float_case(padding="VALID", output=(7, 9), activation="RELU6", stride=(2, 2)))
    op = Interpreter(model_content=builder.to_bytes(), backend="numpy").ops[0].op
    assert op.options == TransposeConvOptions("VALID", 2, 2, "RELU6")

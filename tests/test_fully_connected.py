"""FULLY_CONNECTED against LiteRT's reference kernels (BUILTIN_REF), float32 and quantized.

Hypothesis draws the input's rank (1-4) and shape, keep_num_dims, the filter's depth (the
input's last dimension, a product of its trailing dimensions, or with keep_num_dims off any
depth up to the input's size, which LiteRT reads as floor(size / depth) rows), the units, the
bias (two inputs, index -1, [units] or [1, units]), the fused activation (the four LiteRT takes
and the two it refuses), constant or graph-input weights. Quantized cases add the format (uint8
per tensor, int8 per tensor, int8 per channel), scales from 1e-5 to 10, zero points at the range
ends or anywhere, biases up to the whole int32 range and bias scales LiteRT's check refuses.

Float outputs must agree with REF to float32 rounding (|ours - ref| <= 2 (depth + 1) 2**-24
(|x| |w|^T + |b|), both being float32 sums of depth products in some order) and with the default
resolver (XNNPACK) to 1e-4 x max(1, max|ref|); quantized outputs must be identical. Where LiteRT
refuses a model, npdeeplab must raise ModelError. Below: the regressions (C's int32 wrap-around
and out-of-range casts in the reference rescaling), the refusals, and a squeeze-excite block.
"""

from __future__ import annotations

import math
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
from npdeeplab.model.builder import GraphBuilder

Case = dict[str, Any]
TYPES = {"uint8": np.uint8, "int8": np.int8}
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1") * 2 + ("TANH", "SIGN_BIT")  # the last two: refused
FORMATS = (("uint8", False), ("int8", False), ("int8", True))  # (dtype, per channel)
BIASES = ("none", "omitted", "vector", "row")  # two inputs, index -1, [units], [1, units]
DEFAULT_TOLERANCE = 1e-4
INT32_MAX = 2**31 - 1


def output_shape(case: Case) -> tuple[int, ...]:
    shape, depth, units = case["shape"], case["depth"], case["units"]
    if case["keep"]:
        return (*shape[:-1], units)
    return (math.prod(shape) // depth, units)


@st.composite
def geometry(draw: Callable, max_side: int = 5, max_units: int = 16) -> Case:
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(rank))
    keep = draw(st.booleans())
    trailing = sorted({math.prod(shape[k:]) for k in range(rank)})
    if keep:
        depth = shape[-1]
    else:  # a product of trailing dimensions, or any depth up to the size (rows = size // depth)
        depth = draw(st.one_of(st.sampled_from(trailing), st.integers(1, math.prod(shape))))
    return {
        "shape": shape, "keep": keep, "depth": depth, "units": draw(st.integers(1, max_units)),
        "bias": draw(st.sampled_from(BIASES)), "activation": draw(st.sampled_from(ACTIVATIONS)),
        "constant_weights": draw(st.booleans()), "seed": draw(st.integers(0, 2**16)),
    }


def bias_inputs(case: Case, b: GraphBuilder, values: np.ndarray, quantization: Any = None,
                constant: bool = True) -> tuple[list[int | None], list[np.ndarray]]:
    """The op's inputs after the filter, and the graph inputs they add, for the case's bias form."""
    if case["bias"] == "none":
        return [], []
    if case["bias"] == "omitted":
        return [None], []
    if case["bias"] == "row":
        values = values.reshape(1, -1)
    if constant:
        return [b.add_constant("bias", values, quantization=quantization)], []
    return [b.add_input("bias", values.shape, values.dtype, quantization=quantization)], [values]


# --- float32 ------------------------------------------------------------------------------------


def build_float(case: Case) -> tuple[GraphBuilder, list[np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    x = rng.uniform(-2, 2, case["shape"]).astype(np.float32)
    w = rng.standard_normal((case["units"], case["depth"])).astype(np.float32)
    bias = rng.uniform(-1, 1, case["units"]).astype(np.float32)
    b = GraphBuilder()
    inputs = [x]
    ops: list[int | None] = [b.add_input("x", x.shape)]
    if case["constant_weights"]:
        ops.append(b.add_constant("w", w))
    else:
        ops.append(b.add_input("w", w.shape))
        inputs.append(w)
    extra, fed = bias_inputs(case, b, bias, constant=case.get("constant_bias", True))
    y = b.add_op("FULLY_CONNECTED", ops + extra, output_shape=output_shape(case), output_dtype=np.float32,
                 fused_activation_function=case["activation"], keep_num_dims=case["keep"])
    b.mark_outputs(y)
    arrays = {"x": x, "w": w, "b": bias if case["bias"] in ("vector", "row") else np.zeros_like(bias)}
    return b, inputs + fed, arrays


def assert_float_close(got: np.ndarray, expected: np.ndarray, arrays: dict[str, np.ndarray], case: Case,
                       what: str) -> None:
    """Equal where REF is not finite; elsewhere within the float32 summation bound."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, (what, got.shape, expected.shape)
    rows = math.prod(case["shape"]) // case["depth"]
    x = np.abs(arrays["x"].reshape(-1)[: rows * case["depth"]].reshape(rows, -1).astype(np.float64))
    magnitude = x @ np.abs(arrays["w"].astype(np.float64)).T + np.abs(arrays["b"].astype(np.float64))
    bound = 2 * (case["depth"] + 1) * 2.0**-24 * magnitude.reshape(expected.shape) + 1e-30
    finite = np.isfinite(expected)
    assert np.array_equal(got[~finite], expected[~finite], equal_nan=True), f"{what}: non-finite values differ"
    error = np.abs(got[finite].astype(np.float64) - expected[finite])
    assert (error <= bound[finite]).all(), f"{what}: error {error.max():.3g} beyond the float32 rounding bound"


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
    # XNNPACK fails to prepare a depth that does not divide the input's size (REF reads whole rows).
    ragged = math.prod(case["shape"]) % case["depth"] != 0
    default = run_default(data, inputs) if default_resolver and not ragged else None
    for backend in BACKENDS:
        got = run_npdeeplab(data, inputs, backend)[0]
        assert_float_close(got, expected, arrays, case, f"{backend} vs LiteRT BUILTIN_REF")
        if default is not None:
            scale = max(1.0, float(np.max(np.abs(expected))))
            error = float(np.max(np.abs(got.astype(np.float64) - default)))
            assert error <= DEFAULT_TOLERANCE * scale, f"{backend} vs LiteRT's default resolver: {error:.3g}"
    return True


def run_default(data: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """LiteRT's default resolver (XNNPACK where it delegates)."""
    lite = litert_module()
    interpreter = lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@SETTINGS
@given(geometry())
def test_float(case: Case) -> None:
    event("ran" if check_float(case) else "refused")


def float_case(**fields: Any) -> Case:
    base: Case = {"shape": (2, 6), "keep": False, "depth": 6, "units": 3, "bias": "vector", "activation": "NONE",
                  "constant_weights": True, "seed": 3}
    return {**base, **fields}


FLOAT_EXPLICIT = {
    "rank_1": float_case(shape=(6,)),
    "rank_1_keep_num_dims": float_case(shape=(6,), keep=True),
    "rank_4_keep_num_dims": float_case(shape=(2, 1, 3, 6), keep=True, activation="RELU6"),
    "rank_4_flattened": float_case(shape=(2, 3, 2, 5), depth=10, units=7),
    "depth_does_not_divide_the_size": float_case(shape=(2, 7), depth=4, units=5),  # reads 3 rows of 4, not 14
    "depth_larger_than_a_row": float_case(shape=(3, 4), depth=5),
    "bias_of_shape_1_by_units": float_case(bias="row"),
    "bias_as_graph_input": float_case(constant_bias=False, activation="RELU_N1_TO_1"),
    "no_bias_two_inputs": float_case(bias="none", activation="RELU"),
    "no_bias_index_minus_one": float_case(bias="omitted"),
    "weights_as_graph_input": float_case(constant_weights=False, shape=(5, 2, 6), keep=True),
    "one_unit_one_value": float_case(shape=(1, 1), depth=1, units=1),
    "wide": float_case(shape=(4, 300), depth=300, units=40),
}


@pytest.mark.parametrize("name", sorted(FLOAT_EXPLICIT))
def test_float_explicit(name: str) -> None:
    assert check_float(FLOAT_EXPLICIT[name])


def test_float_rank_0_input() -> None:
    """A scalar input runs with depth 1 as one row ([1, units]); with keep_num_dims LiteRT refuses it."""
    for keep, shape in ((False, (1, 4)), (True, (4,))):
        b = GraphBuilder()
        y = b.add_op("FULLY_CONNECTED", [b.add_input("x", ()), b.add_constant("w", np.arange(4, dtype=np.float32)
                                                                                .reshape(4, 1))],
                     keep_num_dims=keep, output_shape=shape, output_dtype=np.float32)
        b.mark_outputs(y)
        expected = check(b, [np.array(1.5, np.float32)])
        assert (expected is None) == keep


def test_float_non_finite_values() -> None:
    """Inf and NaN inputs and weights propagate as in REF; NONE still clamps Inf to +-FLT_MAX."""
    builder, _, _ = build_float(float_case(shape=(3, 4), depth=4, units=3))
    x = np.array([[1, np.inf, 0, 2], [np.nan, 1, 1, 1], [-np.inf, 0, 1, 1]], np.float32)
    expected = run_litert(builder.to_bytes(), [x])[0]
    assert not np.isfinite(expected).all()
    for backend in BACKENDS:
        got = run_npdeeplab(builder.to_bytes(), [x], backend)[0]
        assert np.array_equal(got, expected, equal_nan=True), (backend, got, expected)


# --- quantized ----------------------------------------------------------------------------------


@st.composite
def quantized_cases(draw: Callable) -> Case:
    case = draw(geometry(max_side=6, max_units=12))
    dtype, per_channel = draw(st.sampled_from(FORMATS))
    s_in, s_w = draw(scales()), draw(scales())
    # Mostly an output scale near what converters write (the input x filter scale, grown with the
    # depth), sometimes any scale: the rescaling's extremes, clamps and overflows.
    related = s_in * s_w * 2.0 ** draw(st.floats(-2, 2 + math.log2(case["depth"])))
    s_out = float(np.float32(related)) if draw(st.integers(0, 3)) else draw(scales())
    case.update({
        "dtype": dtype,
        "per_channel": per_channel,
        "scales": (s_in, s_w, s_out),
        "zero_points": (draw(zero_points(dtype)), 0 if per_channel else draw(zero_points(dtype)),
                        draw(zero_points(dtype))),
        "bias_bits": draw(st.sampled_from([0, 8, 16, 20, 24, 31])),  # |bias| below 2**bits
        "bias_scale_off": draw(st.integers(0, 9)) == 0,  # a bias scale LiteRT's check refuses (per tensor)
        "constant_bias": draw(st.integers(0, 4)) > 0,
    })
    return case


def build_quantized(case: Case, **overrides: Any) -> tuple[GraphBuilder, list[np.ndarray]]:
    """The one-op model of a case; overrides replace the filter, bias or output quantization, the
    bias values, or the output dtype, to make models LiteRT or npdeeplab must refuse."""
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    s_in, s_w, s_out = case["scales"]
    z_in, z_w, z_out = case["zero_points"]
    units = case["units"]
    weights = quantized_input(rng, (units, case["depth"]), dtype)
    if case["per_channel"]:
        filter_scales = (s_w * rng.uniform(0.25, 4, units)).astype(np.float32)
        filter_q = (filter_scales, np.zeros(units, np.int64), 0)
    else:
        filter_scales = np.array([s_w], np.float32)
        filter_q = (s_w, z_w)
    filter_q = overrides.get("filter_quantization", filter_q)
    bias_scales = (np.float32(s_in) * filter_scales).astype(np.float32)
    if case.get("bias_scale_off"):
        bias_scales = bias_scales * np.float32(3)
    axis = 1 if case["bias"] == "row" else 0  # per-axis bias scales lie along the units
    bias_q = overrides.get("bias_quantization", (bias_scales, np.zeros(bias_scales.size, np.int64), axis))
    span = 2 ** case["bias_bits"]
    bias = rng.integers(-span, span, units, endpoint=True).clip(-(2**31), INT32_MAX).astype(np.int32)
    bias = overrides.get("bias", bias)
    b = GraphBuilder()
    x = quantized_input(rng, case["shape"], dtype)
    inputs = [x]
    ops: list[int | None] = [b.add_input("x", x.shape, dtype, quantization=(s_in, z_in))]
    if case["constant_weights"]:
        ops.append(b.add_constant("w", weights, quantization=filter_q))
    else:
        ops.append(b.add_input("w", weights.shape, dtype, quantization=filter_q))
        inputs.append(weights)
    extra, fed = bias_inputs(case, b, bias, bias_q, constant=case.get("constant_bias", True))
    y = b.add_op("FULLY_CONNECTED", ops + extra, output_shape=output_shape(case),
                 output_dtype=overrides.get("output_dtype", dtype),
                 output_quantization=overrides.get("output_quantization", (s_out, z_out)),
                 fused_activation_function=case["activation"], keep_num_dims=case["keep"])
    b.mark_outputs(y)
    return b, inputs + fed


@SETTINGS
@given(quantized_cases())
def test_quantized(case: Case) -> None:
    event("refused" if check(*build_quantized(case)) is None else "ran")
    event("per channel" if case["per_channel"] else f"{case['dtype']} per tensor")


def quantized_case(**fields: Any) -> Case:
    base: Case = {"shape": (2, 8), "keep": False, "depth": 8, "units": 3, "bias": "vector", "activation": "NONE",
                  "constant_weights": True, "seed": 5, "dtype": "int8", "per_channel": False,
                  "scales": (1.0, 1.0, 1.0), "zero_points": (0, 0, 0), "bias_bits": 16, "constant_bias": True}
    return {**base, **fields}


QUANTIZED_EXPLICIT = {
    # The reference kernels rescale in double: exact halves round away from zero.
    "halves_uint8": quantized_case(dtype="uint8", scales=(0.5, 1.0, 1.0), zero_points=(128, 128, 128)),
    "halves_int8_per_channel": quantized_case(per_channel=True, scales=(0.5, 0.5, 0.5), units=6),
    # int8 per tensor subtracts the filter's zero point (per channel it would be ignored; refused).
    "int8_filter_zero_point": quantized_case(zero_points=(-3, 77, 5), scales=(0.02, 0.01, 0.05)),
    "int8_filter_zero_point_at_the_ends": quantized_case(zero_points=(127, -128, -128), scales=(0.1, 0.1, 0.3)),
    "uint8_zero_points_at_the_ends": quantized_case(dtype="uint8", zero_points=(0, 255, 255), scales=(0.1, 0.1, 0.5)),
    "per_channel_keep_num_dims_rank_4": quantized_case(per_channel=True, shape=(2, 3, 1, 8), keep=True, units=5,
                                                       scales=(0.05, 0.01, 0.02), activation="RELU6"),
    "depth_does_not_divide_the_size": quantized_case(shape=(3, 7), depth=5, units=4, scales=(0.1, 0.1, 0.2)),
    "weights_and_bias_as_graph_inputs": quantized_case(constant_weights=False, constant_bias=False,
                                                       scales=(0.1, 0.1, 0.2), zero_points=(1, 2, 3)),
    "bias_of_shape_1_by_units": quantized_case(bias="row", per_channel=True, scales=(0.1, 0.1, 0.2)),
    "no_bias_index_minus_one": quantized_case(bias="omitted", dtype="uint8", zero_points=(7, 200, 9)),
    # Scales at the ends: a rescaling that underflows every value, and one past int32 (below).
    "tiny_scale": quantized_case(scales=(1e-5, 1e-5, 10.0), zero_points=(5, 0, -7)),
    "relu_n1_to_1_large_output_scale": quantized_case(activation="RELU_N1_TO_1", scales=(1.0, 1.0, 0.001)),
}


@pytest.mark.parametrize("name", sorted(QUANTIZED_EXPLICIT))
def test_quantized_explicit(name: str) -> None:
    assert check(*build_quantized(QUANTIZED_EXPLICIT[name])) is not None


@pytest.mark.parametrize("dtype, z_out", [("int8", 0), ("int8", -5), ("int8", 5), ("uint8", 0), ("uint8", 200)])
def test_rescaled_values_past_int32_become_int32_min(dtype: str, z_out: int) -> None:
    """double(acc) * scale beyond int32 casts to INT32_MIN on x86 (either sign), which clamps to
    act_min, unless a negative output zero point wraps it round to INT32_MAX (act_max)."""
    case = quantized_case(dtype=dtype, scales=(1.0, 1.0, 1e-6), zero_points=(0 if dtype == "int8" else 128, 0, z_out),
                          constant_weights=True, units=4)
    expected = check(*build_quantized(case, bias=np.array([100000, -100000, 5, 0], np.int32)))
    assert expected is not None
    if dtype == "int8" and z_out < 0:
        assert (expected[0][:, :2] == 127).all()


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_int32_arithmetic_wraps_as_in_c(dtype: str) -> None:
    """acc + bias past INT32_MAX wraps, and so does scaled + output zero point near INT32_MAX."""
    info = np.iinfo(TYPES[dtype])
    bias = np.array([INT32_MAX, -(2**31), INT32_MAX - 100, INT32_MAX - 300, 1000], np.int32)
    for z_out in (int(info.max) - 55, 0, int(info.min)):
        for seed in range(3):
            case = quantized_case(dtype=dtype, units=5, zero_points=(int(info.min) + seed, 0, z_out), seed=seed)
            assert check(*build_quantized(case, bias=bias)) is not None


def test_sums_beyond_float32_are_split_into_chunks() -> None:
    """depth 3000 of full-range uint8 products: partial sums past 2**24, summed exactly in chunks."""
    for constant in (True, False):
        case = quantized_case(dtype="uint8", shape=(2, 3000), depth=3000, units=5, zero_points=(0, 255, 0),
                              scales=(1.0, 1.0, 2.0**20), constant_weights=constant)
        assert check(*build_quantized(case)) is not None


# --- refusals -----------------------------------------------------------------------------------


def refuse(builder: GraphBuilder, inputs: list[np.ndarray], match: str, litert_runs: bool = False) -> None:
    """npdeeplab raises ModelError matching `match`; LiteRT refuses too, or (litert_runs) runs it."""
    data = builder.to_bytes()
    try:
        run_litert(data, inputs)
        ran = True
    except (RuntimeError, ValueError):
        ran = False
    assert ran == litert_runs
    for backend in BACKENDS:
        with pytest.raises(ModelError, match=match):
            run_npdeeplab(data, inputs, backend)


def float_model(x_shape: tuple[int, ...], w: np.ndarray, out: tuple[int, ...], bias: np.ndarray | None = None,
                **options: Any) -> tuple[GraphBuilder, list[np.ndarray]]:
    b = GraphBuilder()
    ops = [b.add_input("x", x_shape), b.add_constant("w", w)]
    if bias is not None:
        ops.append(b.add_constant("bias", bias))
    b.mark_outputs(b.add_op("FULLY_CONNECTED", ops, output_shape=out, output_dtype=np.float32, **options))
    return b, [np.ones(x_shape, np.float32)]


W = np.ones((4, 6), np.float32)


@pytest.mark.parametrize("activation", ["TANH", "SIGN_BIT"])
def test_refuses_tanh_and_sign_bit_as_fused_activations(activation: str) -> None:
    refuse(*float_model((2, 6), W, (2, 4), fused_activation_function=activation), "fused activation")
    case = quantized_case(activation=activation, scales=(0.1, 0.1, 0.1))
    refuse(*build_quantized(case), "fused activation")


def test_refuses_filters_not_of_rank_2() -> None:
    refuse(*float_model((2, 6), np.ones((1, 4, 6), np.float32), (2, 4)), "rank 2")
    refuse(*float_model((2, 6), np.ones(6, np.float32), (2, 1)), "rank 2")


def test_refuses_bias_without_one_value_per_unit() -> None:
    refuse(*float_model((2, 6), W, (2, 4), bias=np.ones(5, np.float32)), "needs 4 values")


def test_refuses_keep_num_dims_when_the_last_dimension_is_not_the_depth() -> None:
    refuse(*float_model((2, 12), W, (2, 4), keep_num_dims=True), "keep_num_dims")


def test_refuses_other_weights_formats() -> None:
    refuse(*float_model((2, 6), W, (2, 4), weights_format="SHUFFLED4x16INT8"), "weights format")


def test_refuses_per_channel_uint8_and_other_axes() -> None:
    case = quantized_case(dtype="uint8", units=4, zero_points=(0, 0, 0))
    per_unit = (np.full(4, 0.1, np.float32), np.zeros(4, np.int64), 0)
    refuse(*build_quantized(case, filter_quantization=per_unit, bias_quantization=None), "per-channel")
    square = quantized_case(units=8, scales=(0.1, 0.1, 0.1))
    along_depth = (np.full(8, 0.1, np.float32), np.zeros(8, np.int64), 1)
    refuse(*build_quantized(square, filter_quantization=along_depth), "dimension 1, expected 0")


def test_refuses_per_tensor_bias_scale_far_from_input_times_filter() -> None:
    case = quantized_case(scales=(0.1, 0.1, 0.1), bias_scale_off=True)
    refuse(*build_quantized(case), "bias .* has scale")
    for dtype in ("uint8", "int8"):  # a bias without quantization counts as scale 0
        case = quantized_case(dtype=dtype, scales=(1.0, 1.0, 1.0))
        refuse(*build_quantized(case, bias_quantization=None), "bias .* has scale 0.0")


def test_refuses_bias_scales_along_an_axis_of_another_length() -> None:
    """LiteRT's loader refuses per-axis scales that do not match their axis, on any tensor."""
    case = quantized_case(per_channel=True, units=4, bias="row", scales=(0.1, 0.1, 0.1))
    along_rows = (np.full(4, 0.01, np.float32), np.zeros(4, np.int64), 0)  # the bias is [1, 4]
    refuse(*build_quantized(case, bias_quantization=along_rows), "4 scales along dimension 0")


def test_per_channel_bias_scale_is_not_checked() -> None:
    case = quantized_case(per_channel=True, scales=(0.1, 0.1, 0.1), bias_scale_off=True)
    assert check(*build_quantized(case)) is not None


def test_refuses_bias_of_another_dtype() -> None:
    refuse(*float_model((2, 6), W, (2, 4), bias=np.ones(4, np.int32)), "must be float32")
    case = quantized_case(scales=(0.1, 0.1, 0.1))
    refuse(*build_quantized(case, bias=np.ones(3, np.float32), bias_quantization=None), "must be int32")


def test_refuses_what_litert_runs_but_reads_as_another_type() -> None:
    """LiteRT runs these (per-channel zero points ignored; mixed types and int64 biases read as
    the kernel's type); npdeeplab refuses them."""
    case = quantized_case(per_channel=True, units=4, scales=(0.1, 0.1, 0.1))
    nonzero = (np.full(4, 0.1, np.float32), np.array([0, 3, 0, -1]), 0)
    refuse(*build_quantized(case, filter_quantization=nonzero), "zero point 3", litert_runs=True)
    refuse(*build_quantized(case, output_dtype=np.uint8), "must be int8, got uint8", litert_runs=True)
    refuse(*build_quantized(case, bias=np.arange(4, dtype=np.int64)), "must be int32, got int64", litert_runs=True)
    b = GraphBuilder()  # hybrid: float input and output, int8 filter
    ops = [b.add_input("x", (2, 6)), b.add_constant("w", np.ones((4, 6), np.int8), quantization=(0.1, 0))]
    b.mark_outputs(b.add_op("FULLY_CONNECTED", ops, output_shape=(2, 4), output_dtype=np.float32))
    refuse(b, [np.ones((2, 6), np.float32)], "hybrid", litert_runs=True)


# --- graphs -------------------------------------------------------------------------------------


def test_squeeze_excite_block_float() -> None:
    """x * sigmoid(FC(RELU(FC(mean over H, W of x)))), the mean as a global AVERAGE_POOL_2D and a RESHAPE."""
    rng = np.random.default_rng(11)
    channels, reduced = 16, 4
    b = GraphBuilder()
    x = b.add_input("x", (1, 7, 7, channels))
    pooled = b.add_op("AVERAGE_POOL_2D", [x], padding="VALID", filter_height=7, filter_width=7)
    flat = b.add_op("RESHAPE", [pooled, b.add_constant("shape", np.array([1, channels], np.int32))])
    squeezed = b.add_op("FULLY_CONNECTED", [flat, b.add_constant("w1", rng.standard_normal((reduced, channels))
                                                                 .astype(np.float32)),
                                            b.add_constant("b1", rng.standard_normal(reduced).astype(np.float32))],
                        fused_activation_function="RELU")
    excited = b.add_op("FULLY_CONNECTED", [squeezed, b.add_constant("w2", rng.standard_normal((channels, reduced))
                                                                    .astype(np.float32)), None])
    gate = b.add_op("RESHAPE", [b.add_op("LOGISTIC", [excited]),
                                b.add_constant("shape4", np.array([1, 1, 1, channels], np.int32))])
    b.mark_outputs(b.add_op("MUL", [x, gate]))
    image = rng.uniform(-1, 1, (1, 7, 7, channels)).astype(np.float32)
    expected = run_litert(b.to_bytes(), [image])[0]
    for backend in BACKENDS:
        np.testing.assert_allclose(run_npdeeplab(b.to_bytes(), [image], backend)[0], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_squeeze_excite_block_quantized(dtype: str) -> None:
    """The pooled channels of a quantized image through two FULLY_CONNECTED ops (per channel for int8)."""
    rng = np.random.default_rng(12)
    t = TYPES[dtype]
    channels, reduced = 24, 6
    z = 128 if dtype == "uint8" else 0
    q_x = (0.05, z)
    b = GraphBuilder()
    x = b.add_input("x", (1, 5, 5, channels), t, quantization=q_x)
    pooled = b.add_op("AVERAGE_POOL_2D", [x], padding="VALID", filter_height=5, filter_width=5,
                      output_quantization=q_x)
    flat = b.add_op("RESHAPE", [pooled, b.add_constant("shape", np.array([1, channels], np.int32))],
                    output_quantization=q_x)
    layers, inputs = [(reduced, channels, "RELU", (0.03, z)), (channels, reduced, "NONE", (0.02, z - 5))], flat
    s_in = q_x[0]
    for k, (units, depth, activation, q_out) in enumerate(layers):
        if dtype == "int8":
            s_w = (0.01 * rng.uniform(0.5, 2, units)).astype(np.float32)
            w_q: Any = (s_w, np.zeros(units, np.int64), 0)
        else:
            s_w = np.array([0.01], np.float32)
            w_q = (0.01, 120)
        w = b.add_constant(f"w{k}", quantized_input(rng, (units, depth), t), quantization=w_q)
        bias_s = (np.float32(s_in) * s_w).astype(np.float32)
        bias = b.add_constant(f"b{k}", rng.integers(-500, 500, units).astype(np.int32),
                              quantization=(bias_s, np.zeros(bias_s.size, np.int64), 0))
        inputs = b.add_op("FULLY_CONNECTED", [inputs, w, bias], fused_activation_function=activation,
                          output_quantization=q_out)
        s_in = q_out[0]
    b.mark_outputs(inputs)
    assert check(b, [quantized_input(rng, (1, 5, 5, channels), t)]) is not None


# --- prepare: shapes again after a resize, MACs -------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resized_input_is_prepared_again(backend: str) -> None:
    """The kernels run only on shapes prepare saw: a new batch size prepares the op again."""
    case = quantized_case(scales=(0.1, 0.1, 0.2), shape=(1, 8), units=3)
    builder, _ = build_quantized(case)
    interpreter = Interpreter(model_content=builder.to_bytes(), backend=backend)
    interpreter.resize_tensor_input(0, [5, 8])
    interpreter.allocate_tensors()
    x = quantized_input(np.random.default_rng(1), (5, 8), np.int8)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    lite = litert_module()
    reference = lite.Interpreter(model_content=builder.to_bytes(),
                                 experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    reference.resize_tensor_input(0, [5, 8])
    reference.allocate_tensors()
    reference.set_tensor(reference.get_input_details()[0]["index"], x)
    reference.invoke()
    assert np.array_equal(got, reference.get_tensor(reference.get_output_details()[0]["index"]))
    assert got.shape == (5, 3)


def test_macs_are_rows_times_units_times_depth() -> None:
    builder, _, _ = build_float(float_case(shape=(2, 3, 10), keep=True, depth=10, units=7))
    interpreter = Interpreter(model_content=builder.to_bytes(), backend="numpy")
    assert interpreter.ops[0].macs == 6 * 7 * 10
    case = quantized_case(shape=(4, 9), depth=9, units=5, scales=(0.1, 0.1, 0.1))
    interpreter = Interpreter(model_content=build_quantized(case)[0].to_bytes(), backend="numpy")
    assert interpreter.ops[0].macs == 4 * 5 * 9


def test_round_to_int32_rounds_halves_away_and_sends_the_outside_to_int32_min() -> None:
    from npdeeplab.kernels.fixed_point import INT32_MIN, round_to_int32

    y = np.array([0.5, -0.5, 2.5, -2.5, 0.49999999999999994, 2**31 - 1, 2**31 - 0.5, -(2**31), -(2**31) - 0.5,
                  1e300, -1e300])
    expected = [1, -1, 3, -3, 0, 2**31 - 1, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN]
    assert round_to_int32(y).tolist() == expected

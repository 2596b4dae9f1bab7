"""Quantized CONV_2D and DEPTHWISE_CONV_2D against LiteRT's reference kernels (BUILTIN_REF).

Hypothesis draws the format (uint8 per tensor with any filter zero point, int8 with per-channel
filter scales and zero filter zero points), shapes, window (kernel 1-5, strides 1-3, dilations 1-4,
SAME/VALID), depth multiplier 1-3 or groups, the fused activation, scales from 1e-5 to 10 and zero
points at the range ends or anywhere, with and without bias (CONV_2D always has one: LiteRT refuses
a CONV_2D without). The one-op model runs on LiteRT REF and every npdeeplab backend, outputs
identical; where LiteRT refuses, npdeeplab must too. Below: the regressions found, the refusals
(each one ModelError naming the problem), and every convolution of the shared dm05 model alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, shared_file
from hypothesis import event, given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, quantized_input, run_litert, run_npdeeplab

from npdeeplab import Interpreter
from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Quantization
from npdeeplab.ops.conv import output_size_and_padding

Case = dict[str, Any]
TYPES = {"uint8": np.uint8, "int8": np.int8}
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "SIGN_BIT")


def scales() -> st.SearchStrategy[float]:
    """Log-uniform over [1e-5, 10] as float32, the ends included."""
    exponent = st.floats(-5, 1, allow_nan=False).map(lambda e: float(np.float32(10.0**e)))
    return st.one_of(exponent, st.sampled_from([1e-5, 10.0, 1.0]))


def zero_points(dtype: str) -> st.SearchStrategy[int]:
    info = np.iinfo(TYPES[dtype])
    return st.one_of(st.sampled_from([info.min, info.min + 1, info.max - 1, info.max]), st.integers(info.min, info.max))


@st.composite
def conv_cases(draw: Callable, depthwise: bool) -> Case:
    dtype = draw(st.sampled_from(sorted(TYPES)))
    case: Case = {
        "dtype": dtype,
        "batch": draw(st.integers(1, 2)),
        "kernel": (draw(st.integers(1, 5)), draw(st.integers(1, 5))),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "dilation": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "bias": draw(st.booleans()) if depthwise else True,
        "bias_bits": draw(st.sampled_from([0, 8, 16, 20, 24])),  # |bias| below 2**bits
        "scales": (draw(scales()), draw(scales()), draw(scales())),  # input, filter, output
        "zero_points": (draw(zero_points(dtype)), draw(zero_points(dtype)), draw(zero_points(dtype))),
        "seed": draw(st.integers(0, 2**16)),
    }
    effective = [(k - 1) * d + 1 for k, d in zip(case["kernel"], case["dilation"], strict=True)]
    low = [1 if case["padding"] == "SAME" else e for e in effective]
    case["size"] = tuple(draw(st.integers(lo, max(lo, 12))) for lo in low)
    if depthwise:
        case["channels"] = draw(st.integers(1, 12))
        case["multiplier"] = draw(st.sampled_from([1, 1, 2, 3]))
    else:
        groups = draw(st.sampled_from([1, 1, 1, 1, 2, 3]))
        case["groups"] = groups
        case["channels"] = groups * draw(st.integers(1, 12 // groups))
        case["filters"] = groups * draw(st.integers(1, 12 // groups))
    return case


def build(case: Case, **overrides: Any) -> tuple[GraphBuilder, list[np.ndarray]]:
    """The one-op model of a case; overrides replace the filter, bias or output quantization, or
    the filter or bias arrays, to make models LiteRT or npdeeplab must refuse."""
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    info = np.iinfo(dtype)
    (kh, kw), cin = case["kernel"], case["channels"]
    depthwise = "multiplier" in case
    cout = cin * case["multiplier"] if depthwise else case["filters"]
    s_in, s_w, s_out = case["scales"]
    z_in, z_w, z_out = case["zero_points"]
    if depthwise:
        filter_shape, axis = (1, kh, kw, cout), 3
    else:
        filter_shape, axis = (cout, kh, kw, cin // case["groups"]), 0
    weights = overrides.get("weights", quantized_input(rng, filter_shape, dtype))
    if dtype == np.uint8:  # per tensor; bias scale s_in * s_w, as converters write it
        filter_q = Quantization(np.array([s_w], np.float32), np.array([z_w]))
        bias_scales = np.full(1, np.float32(s_in) * np.float32(s_w))
    else:  # per channel along the output channels, spread around s_w; zero points 0
        channel_scales = (s_w * rng.uniform(0.25, 4, cout)).astype(np.float32)
        filter_q = Quantization(channel_scales, np.zeros(cout, np.int64), axis)
        weights[..., 0] = info.max  # a full-range weight and a zero weight
        weights.reshape(-1)[-1] = 0
        bias_scales = np.float32(s_in) * channel_scales
    bias_q = Quantization(bias_scales.astype(np.float32), np.zeros(bias_scales.size, np.int64))
    span = 2 ** case.get("bias_bits", 16)
    bias = overrides.get("bias", rng.integers(-span, span, cout, endpoint=False).astype(np.int32))
    b = GraphBuilder()
    x = b.add_input("x", (case["batch"], *case["size"], cin), dtype, quantization=(s_in, z_in))
    w = b.add_constant("w", weights, quantization=overrides.get("filter_quantization", filter_q))
    inputs = [x, w]
    if case["bias"]:
        inputs.append(b.add_constant("bias", bias, quantization=overrides.get("bias_quantization", bias_q)))
    out_h, out_w = (
        output_size_and_padding(size, k, s, d, case["padding"])[0]
        for size, k, s, d in zip(case["size"], case["kernel"], case["stride"], case["dilation"], strict=True)
    )
    options = {
        "padding": case["padding"], "stride_h": case["stride"][0], "stride_w": case["stride"][1],
        "dilation_h_factor": case["dilation"][0], "dilation_w_factor": case["dilation"][1],
        "fused_activation_function": case["activation"],
    }
    if depthwise:
        options["depth_multiplier"] = case["multiplier"]
    y = b.add_op(
        "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", inputs,
        output_shape=(case["batch"], out_h, out_w, cout), output_dtype=overrides.get("output_dtype", dtype),
        output_quantization=overrides.get("output_quantization", (s_out, z_out)), **options,
    )
    b.mark_outputs(y)
    return b, [quantized_input(rng, (case["batch"], *case["size"], cin), dtype)]


@SETTINGS
@given(conv_cases(depthwise=False))
def test_conv2d(case: Case) -> None:
    event("refused" if check(*build(case)) is None else "ran")


@SETTINGS
@given(conv_cases(depthwise=True))
def test_depthwise_conv2d(case: Case) -> None:
    event("refused" if check(*build(case)) is None else "ran")


@st.composite
def register_depthwise_cases(draw: Callable) -> Case:
    """3x3 depthwise, multiplier 1, 16 to 40 channels: the Numba backend's register kernel (blocks
    of a vector's lanes, the last overlapping), its inside and border pixels, every activation."""
    case = draw(conv_cases(depthwise=True))
    case.update(kernel=(3, 3), multiplier=1, channels=draw(st.integers(16, 40)))
    case["stride"] = tuple(min(s, 2) for s in case["stride"])
    effective = [2 * d + 1 for d in case["dilation"]]
    low = [1 if case["padding"] == "SAME" else e for e in effective]
    case["size"] = tuple(draw(st.integers(lo, max(lo, 12))) for lo in low)
    s_in, s_w, s_out = case["scales"]  # a real multiplier below 1 and a bias float64 can rescale exactly
    case["scales"] = (s_in, s_w, max(s_out, float(np.float32(s_in * s_w * 1.5))))
    case["bias_bits"] = min(case["bias_bits"], 16)
    return case


@SETTINGS
@given(register_depthwise_cases())
def test_depthwise_conv2d_on_the_register_kernel(case: Case) -> None:
    event("refused" if check(*build(case)) is None else "ran")


# --- explicit cases: the dm05 layer types, the rescaling's edges, the exact-sum paths -------------


def case_of(**fields: Any) -> Case:
    base: Case = {
        "dtype": "uint8", "batch": 1, "kernel": (3, 3), "stride": (1, 1), "dilation": (1, 1), "padding": "SAME",
        "activation": "NONE", "bias": True, "bias_bits": 12, "scales": (0.0078125, 0.02, 0.05),
        "zero_points": (128, 120, 3), "seed": 1, "size": (9, 8), "channels": 4, "filters": 5, "groups": 1,
    }
    base.update(fields)
    if "multiplier" in fields:
        base.pop("filters")
        base.pop("groups")
    return base


EXPLICIT = {
    # dm05's layers: 3x3 stride 2 from 3 channels, dilated depthwise with RELU6, 1x1 projections.
    "first_layer": case_of(stride=(2, 2), channels=3, filters=16, size=(13, 13), activation="RELU6"),
    "atrous_depthwise": case_of(multiplier=1, channels=8, dilation=(2, 2), size=(7, 7), activation="RELU6"),
    "atrous_beyond_the_input": case_of(multiplier=1, channels=3, dilation=(4, 4), size=(3, 2)),
    "pointwise_projection": case_of(kernel=(1, 1), channels=24, filters=8, zero_points=(0, 133, 128)),
    "odd_padding_pixel": case_of(kernel=(2, 2), stride=(2, 2), size=(5, 5), padding="SAME"),
    "dilation_far_beyond_the_input": case_of(dilation=(1000, 999), size=(5, 4)),  # taps summed one by one
    "dilation_far_beyond_the_input_depthwise": case_of(multiplier=2, dilation=(1000, 1000), size=(3, 3)),
    "grouped": case_of(channels=6, filters=4, groups=2, dtype="int8", zero_points=(-128, 0, 127)),
    "depth_multiplier_3": case_of(multiplier=3, channels=2, kernel=(5, 5), dtype="int8", zero_points=(127, 0, -128),
                                  bias=False),
    # Rescaling: real multipliers flushed to 0 (below 2**-32), left shifts that wrap in int32, exact ties.
    "multiplier_flushed_to_zero": case_of(scales=(1e-5, 1e-5, 10.0), zero_points=(0, 255, 17)),
    "left_shift_wraps": case_of(scales=(10.0, 10.0, 1e-5), zero_points=(255, 0, 0), activation="RELU"),
    # A real multiplier of 1.5e9, in [2**30, 2**31): shift 31, the largest LiteRT accepts (found by the
    # fuzz). s_in * s_w = 1.25 exactly, so that the bias scale passes LiteRT's check at this output scale.
    "left_shift_31": case_of(scales=(2.0**13, 1.25 * 2.0**-13, 1.25 / 1.5e9), zero_points=(128, 120, 3)),
    "left_shift_31_depthwise": case_of(multiplier=2, scales=(2.0**13, 1.25 * 2.0**-13, 1.25 / 1.5e9),
                                       activation="RELU"),
    "halves": case_of(scales=(0.5, 0.5, 1.0), zero_points=(128, 128, 128), kernel=(1, 1)),
    "halves_int8": case_of(scales=(0.25, 0.5, 1.0), zero_points=(0, 0, 0), kernel=(1, 1), dtype="int8"),
    # Large biases: acc + bias beyond float64's exact rescaling, the int64 path.
    "large_bias": case_of(bias_bits=30, scales=(0.5, 0.5, 1e-3), zero_points=(0, 0, 100)),
    "large_bias_depthwise": case_of(multiplier=2, bias_bits=30, dtype="int8", zero_points=(-128, 0, -128)),
}


@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_explicit_case(name: str) -> None:
    assert check(*build(EXPLICIT[name])) is not None


@pytest.mark.parametrize("dtype, zero_points", [("uint8", (255, 0, 128)), ("int8", (-128, 0, 0))])
def test_bias_at_the_int32_limits_wraps_as_in_c(dtype: str, zero_points: tuple[int, int, int]) -> None:
    """acc + bias past INT32_MAX wraps around in LiteRT's int32 arithmetic; npdeeplab wraps too."""
    bias = np.array([2**31 - 1, -(2**31), 2**31 - 2, 5, -(2**31) + 3], np.int32)
    for seed in range(3):
        case = case_of(dtype=dtype, zero_points=zero_points, scales=(1.0, 1.0, 1.0), channels=8, seed=seed)
        assert check(*build(case, bias=bias)) is not None


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_filter_and_bias_computed_by_the_graph(kind: str) -> None:
    """Filter and bias as graph inputs, not constants: nothing is known at prepare (no shifted
    filter, no bounds: the int64 rescaling with the int32 wrap); same integers."""
    rng = np.random.default_rng(9)
    filter_shape = (4, 3, 3, 3) if kind == "CONV_2D" else (1, 3, 3, 6)
    cout = 4 if kind == "CONV_2D" else 6
    b = GraphBuilder()
    x = b.add_input("x", (1, 6, 7, 3), np.uint8, quantization=(0.02, 128))
    w = b.add_input("w", filter_shape, np.uint8, quantization=(0.01, 100))
    bias = b.add_input("bias", (cout,), np.int32, quantization=(np.float32(0.02) * np.float32(0.01), 0))
    b.mark_outputs(b.add_op(kind, [x, w, bias], output_shape=(1, 6, 7, cout), output_dtype=np.uint8,
                            output_quantization=(0.05, 10), padding="SAME", fused_activation_function="RELU6"))
    inputs = [quantized_input(rng, (1, 6, 7, 3), np.uint8), quantized_input(rng, filter_shape, np.uint8),
              rng.integers(-5000, 5000, cout).astype(np.int32)]
    assert check(b, inputs) is not None


@pytest.mark.parametrize("kind", ["CONV_2D", "FULLY_CONNECTED"])
def test_a_filter_from_the_graph_that_changes_between_invokes(kind: str) -> None:
    """One interpreter, the filter input changed between two invokes: the second uses the new
    filter (the GEMM keeps packed panels for constant filters only); every backend, LiteRT's integers."""
    rng = np.random.default_rng(4)
    filter_shape = (5, 3, 3, 3) if kind == "CONV_2D" else (5, 3)
    x_shape = (1, 6, 7, 3) if kind == "CONV_2D" else (2, 3)
    out_shape = (1, 6, 7, 5) if kind == "CONV_2D" else (2, 5)
    b = GraphBuilder()
    x = b.add_input("x", x_shape, np.uint8, quantization=(0.02, 128))
    w = b.add_input("w", filter_shape, np.uint8, quantization=(0.01, 100))
    bias = b.add_input("bias", (5,), np.int32, quantization=(np.float32(0.02) * np.float32(0.01), 0))
    options = {"padding": "SAME"} if kind == "CONV_2D" else {}
    b.mark_outputs(b.add_op(kind, [x, w, bias], output_shape=out_shape, output_dtype=np.uint8,
                            output_quantization=(0.05, 10), **options))
    data = b.to_bytes()
    runs = [[quantized_input(rng, x_shape, np.uint8), quantized_input(rng, filter_shape, np.uint8),
             rng.integers(-5000, 5000, 5).astype(np.int32)] for _ in range(2)]
    for backend in BACKENDS:
        interpreter = Interpreter(model_content=data, backend=backend)
        interpreter.allocate_tensors()
        for inputs in runs:
            for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
                interpreter.set_tensor(detail["index"], value)
            interpreter.invoke()
            got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
            np.testing.assert_array_equal(got, run_litert(data, inputs)[0], err_msg=backend)


def test_sums_beyond_float32_split_into_chunks() -> None:
    """600 input channels of extreme weights and inputs: partial sums past 2**24 take two sgemm
    chunks added in float64, still exact."""
    case = case_of(kernel=(1, 1), channels=600, filters=3, size=(3, 4), zero_points=(255, 255, 128),
                   scales=(0.001, 0.001, 1.0))
    weights = np.zeros((3, 1, 1, 600), np.uint8)  # w - zp = -255 everywhere
    builder, _ = build(case, weights=weights)
    (expected,) = check(builder, [np.zeros((1, 3, 4, 600), np.uint8)])  # x - zp = -255: +65025 per product
    assert expected.min() == expected.max() == 167  # 600 * 65025 * 1e-6 + 128 (the bias adds < 0.005)


def test_depthwise_sums_beyond_float32_are_summed_in_float64() -> None:
    """A 17x17 depthwise filter of extreme weights: sums past 2**24 go to float64."""
    case = case_of(multiplier=1, channels=2, kernel=(17, 17), size=(17, 17), padding="VALID",
                   zero_points=(0, 0, 0), scales=(1.0, 1.0, 100000.0))
    builder, _ = build(case, weights=np.full((1, 17, 17, 2), 255, np.uint8))
    assert check(builder, [np.full((1, 17, 17, 2), 255, np.uint8)]) is not None


# --- refusals -------------------------------------------------------------------------------------


def refusals(case: Case, match: str, **overrides: Any) -> None:
    """LiteRT refuses the model and npdeeplab refuses it with one ModelError saying why."""
    builder, inputs = build(case, **overrides)
    assert check(builder, inputs) is None, "LiteRT was expected to refuse this model"
    _refuses(builder, inputs, match)


def _refuses(builder: GraphBuilder, inputs: list[np.ndarray], match: str) -> None:
    for backend in BACKENDS:
        with pytest.raises(ModelError, match=match):
            run_npdeeplab(builder.to_bytes(), inputs, backend)


INT8_CONV = case_of(dtype="int8", zero_points=(-3, 0, 5))
INT8_DEPTHWISE = case_of(dtype="int8", zero_points=(-3, 0, 5), multiplier=1)


def test_refuses_input_without_quantization() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 4, 2), np.uint8)
    w = b.add_constant("w", np.ones((3, 1, 1, 2), np.uint8), quantization=(0.1, 0))
    bias = b.add_constant("bias", np.zeros(3, np.int32), quantization=(0.01, 0))
    b.mark_outputs(b.add_op("CONV_2D", [x, w, bias], output_shape=(1, 4, 4, 3), output_dtype=np.uint8,
                            output_quantization=(0.1, 0)))
    inputs = [np.ones((1, 4, 4, 2), np.uint8)]
    assert check(b, inputs) is None
    _refuses(b, inputs, r"input \(tensor 0 'x'\) is uint8 without quantization parameters")


@pytest.mark.parametrize("scale, match", [(0.0, "scale 0.0"), (np.nan, "scale nan"), (-0.5, "scale -0.5")])
def test_refuses_bad_filter_scales(scale: float, match: str) -> None:
    """Zero, NaN and negative scales. LiteRT runs a zero scale (every output at the zero point)
    and may abort the process on NaN per-channel scales: npdeeplab refuses them all."""
    for case in (case_of(), INT8_CONV):
        builder, inputs = build(case, filter_quantization=Quantization(np.array([scale], np.float32), np.zeros(1)))
        _refuses(builder, inputs, f"filter .*{match}")


def test_refuses_per_channel_scales_of_the_wrong_length() -> None:
    bad = Quantization(np.full(4, 0.01, np.float32), np.zeros(4, np.int64), 0)  # 5 filters
    refusals(INT8_CONV, r"filter .* has 4 scales for its 5 channels", filter_quantization=bad)


def test_refuses_per_channel_scales_on_the_wrong_axis() -> None:
    """Scales along the input channels: LiteRT refuses when that axis has another length, and
    (checking only the length) runs them as output-channel scales when it has the same one."""
    bad = Quantization(np.full(4, 0.01, np.float32), np.zeros(4, np.int64), 3)  # Cin 4, Cout 5
    refusals(INT8_CONV, r"has 4 scales for its 5 channels", filter_quantization=bad)
    same = Quantization(np.full(5, 0.01, np.float32), np.zeros(5, np.int64), 3)
    builder, inputs = build({**INT8_CONV, "channels": 5}, filter_quantization=same)
    _refuses(builder, inputs, r"quantized along dimension 3, expected 0")


def test_refuses_uint8_per_channel_filters() -> None:
    bad = Quantization(np.full(5, 0.01, np.float32), np.full(5, 128), 0)
    refusals(case_of(), r"must be quantized per tensor, it has 5 scales", filter_quantization=bad)


def test_refuses_nonzero_int8_filter_zero_points() -> None:
    """CONV_2D: LiteRT refuses too. DEPTHWISE_CONV_2D: LiteRT runs and ignores them (it computes
    as if they were 0); npdeeplab refuses, not to compute something other than the model says."""
    conv_q = Quantization(np.full(5, 0.01, np.float32), np.array([0, 0, 3, 0, 0]), 0)
    refusals(INT8_CONV, r"filter .* has zero point 3; int8 filters must be symmetric", filter_quantization=conv_q)
    depthwise_q = Quantization(np.full(4, 0.01, np.float32), np.array([0, 1, 0, 0]), 3)
    builder, inputs = build(INT8_DEPTHWISE, filter_quantization=depthwise_q)
    run_litert(builder.to_bytes(), inputs)  # runs
    _refuses(builder, inputs, r"has zero point 1; int8 filters must be symmetric")


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.float32])
def test_refuses_bias_of_the_wrong_dtype(dtype: type) -> None:
    refusals(case_of(), r"input 2 .* must be int32", bias=np.zeros(5, dtype))


def test_refuses_bias_of_the_wrong_length() -> None:
    bias_q = Quantization(np.full(1, 0.0078125 * 0.02, np.float32), np.zeros(1))
    refusals(case_of(), r"bias .* has shape \[4\], expected \[5\]", bias=np.zeros(4, np.int32),
             bias_quantization=bias_q)


def test_refuses_bias_zero_point() -> None:
    bias_q = Quantization(np.full(1, np.float32(0.0078125) * np.float32(0.02)), np.full(1, 2))
    refusals(case_of(), r"bias .* has zero point 2; it must be 0", bias_quantization=bias_q)


def test_refuses_uint8_bias_scale_far_from_input_times_filter() -> None:
    """kernel_util.cc: |s_in * s_w - s_bias| / s_out <= 0.02, uint8 only."""
    far = Quantization(np.full(1, 0.5, np.float32), np.zeros(1))
    refusals(case_of(), r"bias .* has scale 0.5, but input scale x filter scale is", bias_quantization=far)
    case = case_of(scales=(0.5, 0.5, 1.0))  # unquantized bias: s_bias counts as 0, 0.25 / 1.0 > 0.02
    refusals(case, r"has scale 0.0, but input scale x filter scale is 0.25", bias_quantization=None)
    assert check(*build(case_of(), bias_quantization=None)) is not None  # 1.6e-4 / 0.05 <= 0.02: runs


def test_refuses_output_dtype_other_than_the_input() -> None:
    refusals(case_of(), r"output .* must be uint8, got int8", output_dtype=np.int8)


def test_refuses_output_without_quantization() -> None:
    builder, inputs = build(case_of(), output_quantization=None)
    _refuses(builder, inputs, r"output .* is uint8 without quantization parameters")


def test_refuses_zero_points_outside_the_type() -> None:
    builder, inputs = build(case_of(), output_quantization=(0.05, 300))
    _refuses(builder, inputs, r"zero point 300, outside the")  # the loader's words or the preparer's
    filter_q = Quantization(np.array([0.02], np.float32), np.array([-1]))
    builder, inputs = build(case_of(), filter_quantization=filter_q)
    _refuses(builder, inputs, r"zero point -1, outside the")


def test_refuses_filters_of_another_type() -> None:
    """uint8 input with an int8 filter: LiteRT's uint8 CONV_2D would read the int8 bytes as uint8."""
    builder, inputs = build(case_of(), weights=np.zeros((5, 3, 3, 4), np.int8))
    _refuses(builder, inputs, r"filter .* must be uint8, got int8")


def test_refuses_hybrid_and_int16() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 4, 2), np.float32)
    w = b.add_constant("w", np.ones((3, 1, 1, 2), np.int8), quantization=(np.full(3, 0.1), 0, 0))
    b.mark_outputs(b.add_op("CONV_2D", [x, w, b.add_constant("bias", np.zeros(3, np.float32))],
                            output_shape=(1, 4, 4, 3), output_dtype=np.float32))
    _refuses(b, [np.ones((1, 4, 4, 2), np.float32)], r"hybrid \(float input, quantized filter\) is not supported")
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 4, 2), np.int16, quantization=(0.1, 0))
    w = b.add_constant("w", np.ones((3, 1, 1, 2), np.int8), quantization=(np.full(3, 0.1), 0, 0))
    b.mark_outputs(b.add_op("CONV_2D", [x, w, b.add_constant("bias", np.zeros(3, np.int64))],
                            output_shape=(1, 4, 4, 3), output_dtype=np.int16, output_quantization=(0.1, 0)))
    _refuses(b, [np.ones((1, 4, 4, 2), np.int16)], r"int16 input is not supported")


def test_conv2d_without_bias_runs_with_zero_bias() -> None:
    """A known difference, kept on purpose as for float CONV_2D: LiteRT refuses a CONV_2D without
    bias (conv.cc: has_bias); npdeeplab runs it as with a zero bias."""
    for dtype in ("uint8", "int8"):
        case = case_of(dtype=dtype, zero_points=(7, 0, 9))
        builder, inputs = build({**case, "bias": False})
        with pytest.raises(RuntimeError, match="bias"):
            run_litert(builder.to_bytes(), inputs)
        expected = check(*build(case, bias=np.zeros(5, np.int32)))
        for backend in BACKENDS:
            np.testing.assert_array_equal(run_npdeeplab(builder.to_bytes(), inputs, backend)[0], expected[0])


# --- the shared dm05 model, op by op ---------------------------------------------------------------


def test_every_dm05_convolution_alone() -> None:
    """All 38 CONV_2D and 17 DEPTHWISE_CONV_2D of the uint8 DeepLab model, each cut out as its own
    model and fed random uint8 inputs: identical to LiteRT REF on every backend."""
    from npdeeplab.model.loader import load_model
    from npdeeplab.tools.extract import extract_ops

    model = load_model(shared_file("models", "deeplabv3_mnv2_dm05_pascal_quant.tflite"))
    rng = np.random.default_rng(55)
    kinds = []
    for op in model.main.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            part = extract_ops(model, op.index, op.index)
            inputs = [quantized_input(rng, model.main.tensors[i].shape, np.uint8) for i in part.source_inputs]
            assert check(part.model, inputs) is not None, f"op {op.index}"
            kinds.append(op.kind)
    assert (kinds.count("CONV_2D"), kinds.count("DEPTHWISE_CONV_2D")) == (38, 17)


def test_huge_output_rows_reach_the_memory_check() -> None:
    """Prepare lays out the rescaling along an output row only for modest rows: a resize to a
    width of 2**30 is refused by the memory check, not by a MemoryError in prepare (found by the
    fuzz: 128 GiB of constants)."""
    builder, _ = build(case_of(kernel=(1, 1), size=(1, 1), channels=4, filters=16))
    interpreter = Interpreter(model_content=builder.to_bytes(), backend="numpy")
    with pytest.raises(ModelError, match="memory"):
        interpreter.resize_tensor_input(0, [1, 1, 2**30, 4])

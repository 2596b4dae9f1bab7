"""numerics="optimized": what LiteRT without delegates (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
its optimized builtin kernels) computes, bit for bit, on the shared uint8 DeepLab (dm05) op by op and
whole, and on builder-made uint8 and int8 CONV_2D / DEPTHWISE_CONV_2D and QUANTIZE models; and how
far the reference numerics are from it.

Measured on ai-edge-litert 2.3.0 (x86-64), each dm05 op cut out alone and fed the reference kernels'
own inputs on the astronaut: OPT differs from BUILTIN_REF in the 18 CONV_2D ops without a fused ReLU
only, always one higher, at a negative exact half of the doubling high multiply's result
(kernels.optimized.rounding). numerics="optimized" removes every one of those differences. It also
imitates int8 DEPTHWISE_CONV_2D (upward in blocks of 8 channels), QUANTIZE float -> int (to even in
blocks of 8, a double division in the tail) and 8-bit requantization (upward in blocks of 16).

Not imitated (the reference kernel runs; none of these ops differs on dm05): DEQUANTIZE (1 ulp in
blocks of 8), SOFTMAX (a float table, 1 LSB on rare elements), FULLY_CONNECTED (MBQM rather than a
double rescaling), quantized MEAN and the uint8 33 -> 513 bilinear resize without align_corners
(docs/coverage.md). LiteRT OPT segfaults on an int8 DEPTHWISE_CONV_2D without bias, so the builder
cases here always have one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, litert_module, shared_file
from hypothesis import assume, event, given
from hypothesis import strategies as st
from numerics_harness import dm05_ops_alone as shared_dm05_ops_alone
from numerics_harness import run_litert_with, run_with_numerics
from quantized_harness import SETTINGS
from test_quantized_conv import EXPLICIT, build, case_of, conv_cases

import npdeeplab
from npdeeplab.errors import ModelError
from npdeeplab.kernels.fixed_point import multiply_by_quantized_multiplier
from npdeeplab.kernels.optimized.rounding import multiply_by_quantized_multiplier_upward
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Quantization
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.segmentation import model_input
from npdeeplab.tools.extract import extract_ops

MODEL = "deeplabv3_mnv2_dm05_pascal_quant.tflite"
IMAGES = ["astronaut.png", "chelsea.png", "bird_segmentation.bmp", "bird_segmentation_mask.bmp"]
# dm05 op index -> elements where OPT differs from REF (ops alone, REF's inputs on the astronaut)
# Labels where the reference numerics differ from OPT through the whole graph, image by image (the mask
# image is nearly flat).
REFERENCE_LABELS_DIFFER = [2908, 1697, 2224, 0]
DIFFERING_OPS = {2: 816, 5: 232, 8: 194, 12: 141, 15: 82, 19: 58, 23: 88, 26: 27, 30: 38, 34: 50, 38: 57,
                 41: 57, 45: 56, 49: 77, 52: 85, 56: 186, 60: 146, 68: 1}


def run_optimized(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """LiteRT's optimized builtin kernels, no delegate."""
    return run_litert_with("BUILTIN_WITHOUT_DEFAULT_DELEGATES", data, inputs)[0]


def run_ours(data: bytes, inputs: list[np.ndarray], backend: str, numerics: str = "optimized"):
    return run_with_numerics(data, inputs, backend, numerics)


@pytest.fixture(scope="module")
def dm05_path():
    return shared_file("models", MODEL)


@pytest.fixture(scope="module")
def astronaut(dm05_path):
    return model_input(npdeeplab.Interpreter(model_path=dm05_path, backend="numpy"),
                       shared_file("images", "astronaut.png"))


@pytest.fixture(scope="module")
def dm05_ops_alone(dm05_path, astronaut):
    """Per op of dm05: (op, model bytes, REF's inputs to it, LiteRT OPT's output, REF's output)."""
    return shared_dm05_ops_alone(dm05_path, astronaut, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_dm05_op_alone_is_bit_exact_with_optimized(dm05_ops_alone, backend: str) -> None:
    differing = []
    for op, data, inputs, optimized, _ in dm05_ops_alone:
        (ours,), interpreter = run_ours(data, inputs, backend)
        assert ours.dtype == optimized.dtype and ours.shape == optimized.shape
        if not np.array_equal(ours, optimized):
            differing.append((op.index, op.kind, int(np.count_nonzero(ours != optimized))))
        kernel = interpreter._runner.steps[0].kernel
        assert (kernel == "optimized_conv2d") == (op.kind == "CONV_2D"), (op.index, kernel)
    assert len(dm05_ops_alone) == 72 and not differing, differing


def test_reference_numerics_differ_from_optimized_where_measured(dm05_ops_alone) -> None:
    """The documented fact the personality exists for: REF vs OPT, op by op, OPT one higher, only
    in CONV_2D without a fused activation."""
    differing = {}
    for op, _, _, optimized, ref in dm05_ops_alone:
        gap = optimized.astype(np.int64) - ref.astype(np.int64)
        if gap.any():
            assert op.kind == "CONV_2D" and op.options.fused_activation_function == "NONE", op.index
            assert set(np.unique(gap).tolist()) == {0, 1}, op.index
            differing[op.index] = int(np.count_nonzero(gap))
    assert differing == DIFFERING_OPS


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_dm05_is_bit_exact_with_optimized_on_every_shared_image(dm05_path, backend: str) -> None:
    lite = litert_module()
    optimized = lite.Interpreter(model_path=str(dm05_path),
                                 experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    optimized.allocate_tensors()
    ours = npdeeplab.Interpreter(model_path=dm05_path, backend=backend, numerics="optimized")
    ours.allocate_tensors()
    reference = npdeeplab.Interpreter(model_path=dm05_path, backend=backend)
    reference.allocate_tensors()
    reference_differs = []
    for name in IMAGES:
        x = model_input(ours, shared_file("images", name))
        labels = []
        for interpreter in (optimized, ours, reference):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
            interpreter.invoke()
            labels.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        np.testing.assert_array_equal(labels[1], labels[0], err_msg=name)
        reference_differs.append(int(np.count_nonzero(labels[2] != labels[0])))
    assert reference_differs == REFERENCE_LABELS_DIFFER


def test_dm05_logits_are_bit_exact_with_optimized(dm05_path, astronaut) -> None:
    """The uint8 class scores before ARG_MAX (ops 0..70 as one model), not only the labels."""
    model = load_model(dm05_path)
    data = write_model(extract_ops(model, 0, len(model.main.ops) - 2).model)
    (optimized,) = run_optimized(data, [astronaut])
    (ours,), _ = run_ours(data, [astronaut], "numpy")
    (reference,), _ = run_ours(data, [astronaut], "numpy", numerics="reference")
    assert optimized.shape == (1, 513, 513, 21)
    np.testing.assert_array_equal(ours, optimized)
    assert not np.array_equal(reference, optimized)


# --- builder-made single-op CONV_2D / DEPTHWISE_CONV_2D, uint8 and int8 -------------------------

CASES = {
    "uint8_first_layer_relu6": case_of(stride=(2, 2), channels=3, filters=16, size=(13, 13), activation="RELU6"),
    "uint8_pointwise": case_of(kernel=(1, 1), channels=24, filters=8, zero_points=(0, 133, 128)),
    "uint8_relu": case_of(activation="RELU", zero_points=(3, 200, 250)),
    "uint8_relu_n1_to_1": case_of(activation="RELU_N1_TO_1", scales=(0.02, 0.01, 0.004)),
    "uint8_valid_stride_3": case_of(padding="VALID", stride=(3, 2), size=(11, 10)),
    "uint8_dilated": case_of(dilation=(2, 3), size=(9, 11)),
    "uint8_batch_2": case_of(batch=2, kernel=(2, 3), stride=(2, 2)),
    "uint8_depthwise_atrous_relu6": case_of(multiplier=1, channels=8, dilation=(2, 2), size=(7, 7),
                                            activation="RELU6"),
    "uint8_depthwise_3x3_stride_2": case_of(multiplier=1, channels=16, stride=(2, 2), size=(15, 15)),
    "uint8_depthwise_multiplier_2": case_of(multiplier=2, channels=3, kernel=(5, 5), stride=(2, 2), size=(10, 9)),
    "int8_conv": case_of(dtype="int8", zero_points=(-128, 0, 5)),
    "int8_conv_relu6": case_of(dtype="int8", activation="RELU6", zero_points=(10, 0, -128), stride=(2, 1)),
    "int8_pointwise": case_of(dtype="int8", kernel=(1, 1), channels=32, filters=16, zero_points=(-3, 0, 7)),
    "int8_depthwise_3x3": case_of(multiplier=1, channels=16, dtype="int8", zero_points=(-128, 0, 0)),
    "int8_depthwise_3x3_stride_2": case_of(multiplier=1, channels=8, stride=(2, 2), size=(11, 11), dtype="int8",
                                           zero_points=(3, 0, -2)),
    "int8_depthwise_multiplier_3": case_of(multiplier=3, channels=2, kernel=(5, 5), dtype="int8",
                                           zero_points=(127, 0, -128)),
    "int8_depthwise_relu": case_of(multiplier=1, channels=7, dtype="int8", activation="RELU", dilation=(3, 1),
                                   size=(12, 8), zero_points=(-5, 0, -100)),
}
# test_quantized_conv's explicit cases, but the int8 depthwise one without bias (LiteRT OPT segfaults)
EXPLICIT_CASES = {name: case for name, case in EXPLICIT.items()
                  if case["bias"] or not ("multiplier" in case and case["dtype"] == "int8")}


def compare_with_optimized(case: dict[str, Any]) -> tuple[str, bool]:
    """Run a case on LiteRT OPT and npdeeplab (optimized numerics, every backend): identical, with the
    personality's kernel exactly where npdeeplab.ops.optimized says LiteRT's kernel rounds its own way.
    Returns the kernel npdeeplab ran and whether the reference numerics differ from OPT."""
    model, inputs = build(case)
    data = model.to_bytes()
    (theirs,) = run_optimized(data, inputs)
    (reference,), _ = run_ours(data, inputs, "numpy", numerics="reference")
    for backend in BACKENDS:
        (ours,), interpreter = run_ours(data, inputs, backend)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        kernel = interpreter._runner.steps[0].kernel
        if "multiplier" not in case:
            assert (kernel == "optimized_conv2d") == (case["groups"] == 1)
        differ = int(np.count_nonzero(ours != theirs))
        assert differ == 0, f"{backend}: {differ} of {ours.size} elements differ from LiteRT OPT"
    return kernel, not np.array_equal(reference, theirs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_builder_conv_bit_exact_with_optimized(name: str) -> None:
    compare_with_optimized(CASES[name])


@pytest.mark.parametrize("name", sorted(EXPLICIT_CASES))
def test_reference_suite_cases_bit_exact_with_optimized(name: str) -> None:
    compare_with_optimized(EXPLICIT_CASES[name])


def test_builder_cases_differ_from_the_reference_somewhere() -> None:
    """Without the personality, several of these cases are off by one LSB against OPT."""
    assert sum(compare_with_optimized(case)[1] for case in CASES.values()) >= 3


@SETTINGS
@given(st.booleans().flatmap(lambda depthwise: conv_cases(depthwise=depthwise)))
def test_random_convolutions_bit_exact_with_optimized(case: dict[str, Any]) -> None:
    assume(case["bias"])  # LiteRT OPT segfaults on int8 depthwise without bias (see the module docstring)
    try:
        kernel, differs = compare_with_optimized(case)
    except RuntimeError as refusal:  # LiteRT's Prepare refuses (e.g. the bias scale check)
        assert "failed to prepare" in str(refusal)
        event("LiteRT refuses")
        return
    except ModelError:  # npdeeplab refuses what LiteRT REF refuses (test_quantized_conv checks that)
        event("refused")
        return
    event(f"{case['dtype']} {kernel} reference differs={differs}")


# int8 depthwise: optimized_ops::Quantize rounds whole blocks of 8 output channels upward, the channels
# left over as the reference does (found by the random test): (case, whether REF differs from OPT)
DEPTHWISE_CHANNEL_BLOCKS = {
    "3_channels_rounded_as_the_reference": (case_of(
        dtype="int8", kernel=(1, 3), bias_bits=0, scales=(1.0, 1.0, 1.0), zero_points=(-128, -128, -127), seed=97,
        size=(1, 2), channels=1, multiplier=3), False),
    "8_channels_rounded_upward": (case_of(
        dtype="int8", kernel=(1, 1), bias_bits=0, scales=(1.0, 1.0, 1.0), zero_points=(-128, -128, -127), seed=0,
        size=(1, 1), channels=4, multiplier=2), True),
}


@pytest.mark.parametrize("name", sorted(DEPTHWISE_CHANNEL_BLOCKS))
def test_int8_depthwise_rounds_upward_in_blocks_of_8_channels(name: str) -> None:
    case, reference_differs = DEPTHWISE_CHANNEL_BLOCKS[name]
    assert compare_with_optimized(case) == ("optimized_depthwise_conv2d_per_channel", reference_differs)


# --- builder-made QUANTIZE float32 -> uint8 / int8 / int16 --------------------------------------------

QUANTIZE_CASES = {  # (shape, output type, (scale, zero point))
    "uint8_blocks_and_tail": ((1, 5, 7, 3), np.uint8, (0.1, 128)),
    "uint8_two_blocks": ((2, 8), np.uint8, (0.0235294, 0)),
    "int8_tail_of_5": ((13,), np.int8, (1 / 3, 5)),
    "int8_blocks_and_tail": ((3, 11), np.int8, (0.05, -3)),
    "int16": ((1, 5, 7, 3), np.int16, (0.001, 0)),
    "int16_block_and_tail_of_7": ((3, 5), np.int16, (0.001, 0)),
}


def build_quantize(shape: tuple[int, ...], dtype: type, quantization: tuple[float, int], values: np.ndarray) -> bytes:
    b = GraphBuilder()
    x = b.add_input("x", shape, np.float32)
    b.mark_outputs(b.add_op("QUANTIZE", [x], output_shape=shape, output_dtype=dtype, output_quantization=quantization))
    return b.to_bytes()


def quantize_inputs(shape: tuple[int, ...], scale: float) -> list[np.ndarray]:
    """Exact halves of the scale (with NaN, infinities and values past int32 first), then random values."""
    rng = np.random.default_rng(0)
    halves = (rng.integers(-300, 300, shape) * 0.5 * scale).astype(np.float32)
    halves.reshape(-1)[:6] = [np.nan, np.inf, -np.inf, 1e10, -1e10, 0.5 * scale][: halves.size]
    return [halves, (rng.standard_normal(shape) * 50 * scale).astype(np.float32)]


@pytest.mark.parametrize("name", sorted(QUANTIZE_CASES))
def test_builder_quantize_bit_exact_with_optimized(name: str) -> None:
    shape, dtype, quantization = QUANTIZE_CASES[name]
    reference_differs = 0
    for values in quantize_inputs(shape, quantization[0]):
        data = build_quantize(shape, dtype, quantization, values)
        (theirs,) = run_optimized(data, [values])
        (reference,), _ = run_ours(data, [values], "numpy", numerics="reference")
        reference_differs += int(np.count_nonzero(reference != theirs))
        for backend in BACKENDS:
            (ours,), interpreter = run_ours(data, [values], backend)
            assert interpreter._runner.steps[0].kernel == "optimized_affine_quantize"
            np.testing.assert_array_equal(ours, theirs, err_msg=backend)
    assert reference_differs > 0  # the halves: to even in the blocks, the tail's double division


def test_per_channel_quantize_keeps_the_reference_kernel() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (2, 3), np.float32)
    q = Quantization(np.array([0.1, 0.2, 0.3], np.float32), np.zeros(3, np.int64), 1)
    b.mark_outputs(b.add_op("QUANTIZE", [x], output_shape=(2, 3), output_dtype=np.int8, output_quantization=q))
    values = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.15
    (theirs,) = run_optimized(b.to_bytes(), [values])
    (ours,), interpreter = run_ours(b.to_bytes(), [values], "numpy")
    assert interpreter._runner.steps[0].kernel == "quantized_quantize"
    np.testing.assert_array_equal(ours, theirs)


# --- builder-made requantization (QUANTIZE from a quantized type) ---------------------------------

REQUANTIZE_CASES = {  # (input type, output type, input (scale, zp), output (scale, zp), whether REF differs)
    "uint8": (np.uint8, np.uint8, (0.0123, 3), (0.029, 200), True),
    "int8_quarter": (np.int8, np.int8, (0.25, 0), (1.0, 0), True),  # exact negative halves
    "uint8_to_int8_quarter": (np.uint8, np.int8, (0.25, 128), (1.0, -5), True),
    "int8_to_uint8": (np.int8, np.uint8, (0.25, -125), (0.5, 200), False),
    "sign_bit_flip": (np.uint8, np.int8, (0.1, 128), (0.1, 0), False),
    "int8_to_int16_keeps_the_reference": (np.int8, np.int16, (0.25, 0), (1.0, 0), False),
}


@pytest.mark.parametrize("name", sorted(REQUANTIZE_CASES))
@pytest.mark.parametrize("shape", [(2, 7, 9, 5), (37,)])  # 630 = 39 blocks of 16 and 6 left; 2 and 5 left
def test_builder_requantize_bit_exact_with_optimized(name: str, shape: tuple[int, ...]) -> None:
    source, target, q_in, q_out, reference_differs = REQUANTIZE_CASES[name]
    b = GraphBuilder()
    x = b.add_input("x", shape, source, quantization=q_in)
    b.mark_outputs(b.add_op("QUANTIZE", [x], output_shape=shape, output_dtype=target, output_quantization=q_out))
    data = b.to_bytes()
    size = int(np.prod(shape))
    values = [(np.arange(size) - size // 2).reshape(shape).astype(source)]  # every value, negatives too
    (theirs,) = run_optimized(data, values)
    (reference,), _ = run_ours(data, values, "numpy", numerics="reference")
    for backend in BACKENDS:
        (ours,), interpreter = run_ours(data, values, backend)
        expected = "quantized_requantize" if target == np.int16 else "optimized_requantize"
        assert interpreter._runner.steps[0].kernel == expected
        np.testing.assert_array_equal(ours, theirs, err_msg=backend)
    assert (not np.array_equal(reference, theirs)) == reference_differs


QUANTIZED_TYPES = {"uint8": np.uint8, "int8": np.int8, "int16": np.int16}


@SETTINGS
@given(st.sampled_from(sorted(QUANTIZED_TYPES)), st.sampled_from(sorted(QUANTIZED_TYPES)),
       st.integers(1, 70), st.floats(1e-3, 10.0), st.floats(1e-3, 10.0), st.integers(-128, 255),
       st.integers(-128, 255), st.booleans(), st.integers(0, 2**16))
def test_random_quantize_and_requantize_bit_exact_with_optimized(source: str, target: str, size: int, s_in: float,
                                                                 s_out: float, z_in: int, z_out: int, from_float: bool,
                                                                 seed: int) -> None:
    """QUANTIZE from float32 (halves of the scale and random values) or from a quantized type."""
    target_type = QUANTIZED_TYPES[target]
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    if from_float:
        z_out = 0 if target == "int16" else int(np.clip(z_out, np.iinfo(target_type).min, np.iinfo(target_type).max))
        values = (rng.integers(-400, 400, size) * (0.5 * s_out)).astype(np.float32)
        x = b.add_input("x", (size,), np.float32)
    else:
        assume(source != "int16" or target != "uint8")  # LiteRT has no int16 -> uint8
        source_type = QUANTIZED_TYPES[source]
        z_in = 0 if source == "int16" else int(np.clip(z_in, np.iinfo(source_type).min, np.iinfo(source_type).max))
        z_out = 0 if target == "int16" else int(np.clip(z_out, np.iinfo(target_type).min, np.iinfo(target_type).max))
        values = rng.integers(np.iinfo(source_type).min, np.iinfo(source_type).max, size, endpoint=True)
        values = values.astype(source_type)
        x = b.add_input("x", (size,), source_type, quantization=(s_in, z_in))
    b.mark_outputs(b.add_op("QUANTIZE", [x], output_shape=(size,), output_dtype=target_type,
                            output_quantization=(s_out, z_out)))
    data = b.to_bytes()
    try:
        (theirs,) = run_optimized(data, [values])
    except RuntimeError:
        event("LiteRT refuses")
        return
    try:
        (ours,), interpreter = run_ours(data, [values], "numpy")
    except ModelError:
        event("npdeeplab refuses")
        return
    event(interpreter._runner.steps[0].kernel)
    np.testing.assert_array_equal(ours, theirs)


# --- the personality itself ----------------------------------------------------------------------


def test_upward_rounding_differs_from_the_reference_at_negative_halves_only() -> None:
    # M = 2**30 is one half: SRDHM(x, 2**30) = x / 2, exact for even x; then a shift by r = 1
    x = np.array([6, 2, -2, -6, -10, 10, 4, -4], dtype=np.int64)  # / 4: 1.5, .5, -.5, -1.5, -2.5, 2.5, 1, -1
    ours = multiply_by_quantized_multiplier_upward(x, 2**30, -1)
    reference = multiply_by_quantized_multiplier(x, 2**30, -1)
    assert ours.tolist() == [2, 1, 0, -1, -2, 3, 1, -1]
    assert reference.tolist() == [2, 1, -1, -2, -3, 3, 1, -1]
    assert multiply_by_quantized_multiplier_upward(np.array([3, -3]), 2**30, 1).tolist() == [3, -3]  # no division


def test_default_numerics_and_float_models_keep_reference_kernels(seed_model_path) -> None:
    data = build(CASES["int8_conv"])[0].to_bytes()
    assert npdeeplab.Interpreter(model_content=data)._runner.steps[0].kernel == "conv2d_quantized"
    assert npdeeplab.Interpreter(model_content=data, numerics="optimized")._runner.steps[0].kernel == "optimized_conv2d"
    plain = npdeeplab.Interpreter(model_path=seed_model_path, backend="numpy")
    optimized = npdeeplab.Interpreter(model_path=seed_model_path, backend="numpy", numerics="optimized")
    assert [s.kernel for s in optimized._runner.steps] == [s.kernel for s in plain._runner.steps]


def test_isolated_compare_against_litert_optimized_runs_the_personality(dm05_path, astronaut):
    """compare --isolate against LiteRT OPT ("litert") with numerics="optimized": every op exact."""
    from npdeeplab.tools.comparison import compare_with_litert

    interpreter = npdeeplab.Interpreter(model_path=dm05_path, backend="numpy", numerics="optimized")
    result = compare_with_litert(interpreter, [astronaut], reference="litert", isolate=True, atol=0, rtol=0)
    assert len(result.rows) == 72 and not result.exceeded and all(row.max_abs == 0 for row in result.rows)

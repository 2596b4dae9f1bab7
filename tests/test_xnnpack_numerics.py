"""numerics="xnnpack": what LiteRT's default interpreter (XNNPACK on, OpResolverType.AUTO) computes,
bit for bit, on the shared uint8 DeepLab (dm05) op by op and whole, and on builder-made uint8 and
int8 CONV_2D / DEPTHWISE_CONV_2D models; and how far the reference numerics are from it.

Measured on ai-edge-litert 2.3.0 (x86-64), each dm05 op cut out alone and fed the reference
kernels' own inputs on the astronaut: AUTO differs from BUILTIN_REF by one LSB in every CONV_2D
and DEPTHWISE_CONV_2D (6 to 203,280 elements per op; always downwards with a fused RELU6 or RELU,
both signs without), in the QUANTIZE (39,204 elements, downwards) and in one element of one ADD
(op 46); never elsewhere. numerics="xnnpack" removes every one of those differences.

LiteRT itself crashes (segfault) on an int8 DEPTHWISE_CONV_2D without bias under AUTO and
BUILTIN_WITHOUT_DEFAULT_DELEGATES (XNNPACK declines it, the optimized builtin dereferences the
missing bias), so the builder cases here always have a bias.
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
from quantized_harness import SETTINGS, quantized_input
from test_quantized_conv import build, case_of, conv_cases
from test_quantized_elementwise import binary_cases
from test_quantized_elementwise import build as build_binary
from test_quantized_elementwise import case_of as add_case
from test_quantized_elementwise import refused as add_refused
from test_quantized_resize import build as build_resize
from test_quantized_resize import reads_past_input as resize_reads_past_input
from test_quantized_resize import resize_cases

import npdeeplab
from npdeeplab.errors import BackendError, ModelError
from npdeeplab.kernels.xnnpack.requantization import quantize_limit, requantize_fp32
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.segmentation import model_input
from npdeeplab.tools.extract import extract_ops

MODEL = "deeplabv3_mnv2_dm05_pascal_quant.tflite"
IMAGES = ["astronaut.png", "chelsea.png", "bird_segmentation.bmp", "bird_segmentation_mask.bmp"]
TAKEN_OVER = {"CONV_2D": "xnnpack_conv2d", "DEPTHWISE_CONV_2D": "xnnpack_depthwise_conv2d", "ADD": "xnnpack_add",
              "QUANTIZE": "xnnpack_convert", "RESIZE_BILINEAR": "xnnpack_resize_bilinear"}
# Where LiteRT AUTO differs from REF on dm05 (ops alone, REF's inputs on the astronaut): kind -> ops.
DIFFERING_KINDS = {"CONV_2D": 38, "DEPTHWISE_CONV_2D": 17, "QUANTIZE": 1, "ADD": 1}


def run_auto(data: bytes, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    """LiteRT's default interpreter (XNNPACK on): the outputs, and whether XNNPACK took an op."""
    return run_litert_with("AUTO", data, inputs)


def run_ours(data: bytes, inputs: list[np.ndarray], backend: str, numerics: str = "xnnpack"):
    return run_with_numerics(data, inputs, backend, numerics)


@pytest.fixture(scope="module")
def dm05_path():
    return shared_file("models", MODEL)


@pytest.fixture(scope="module")
def astronaut(dm05_path):
    return model_input(npdeeplab.Interpreter(model_path=dm05_path, backend="numpy"), shared_file("images",
                                                                                                  "astronaut.png"))


@pytest.fixture(scope="module")
def dm05_ops_alone(dm05_path, astronaut):
    """Per op of dm05: (op, model bytes, REF's inputs to it, LiteRT AUTO's output, REF's output)."""
    return shared_dm05_ops_alone(dm05_path, astronaut, "AUTO")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_dm05_op_alone_is_bit_exact_with_xnnpack(dm05_ops_alone, backend: str) -> None:
    differing = []
    for op, data, inputs, auto, _ in dm05_ops_alone:
        (ours,), interpreter = run_ours(data, inputs, backend)
        assert ours.dtype == auto.dtype and ours.shape == auto.shape
        if not np.array_equal(ours, auto):
            differing.append((op.index, op.kind, int(np.count_nonzero(ours != auto))))
        expected = TAKEN_OVER.get(op.kind)
        assert interpreter._runner.steps[0].kernel == (expected or interpreter._runner.steps[0].kernel)
    assert len(dm05_ops_alone) == 72 and not differing, differing


def test_reference_numerics_differ_from_xnnpack_where_measured(dm05_ops_alone) -> None:
    """The documented fact the personality exists for: REF vs AUTO, op by op, max one LSB."""
    kinds: dict[str, int] = {}
    for op, _, _, auto, ref in dm05_ops_alone:
        gap = np.abs(auto.astype(np.int64) - ref.astype(np.int64))
        if gap.any():
            assert gap.max() == 1, (op.index, op.kind, int(gap.max()))
            kinds[op.kind] = kinds.get(op.kind, 0) + 1
            if op.options is not None and getattr(op.options, "fused_activation_function", "NONE") != "NONE":
                assert np.all(auto.astype(np.int64) <= ref), (op.index, "a clamped op rounds only downwards")
    assert kinds == DIFFERING_KINDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_dm05_is_bit_exact_with_xnnpack_on_every_shared_image(dm05_path, backend: str) -> None:
    lite = litert_module()
    auto = lite.Interpreter(model_path=str(dm05_path), experimental_op_resolver_type=lite.OpResolverType.AUTO)
    auto.allocate_tensors()
    ours = npdeeplab.Interpreter(model_path=dm05_path, backend=backend, numerics="xnnpack")
    ours.allocate_tensors()
    reference_differs = 0
    reference = npdeeplab.Interpreter(model_path=dm05_path, backend=backend)
    reference.allocate_tensors()
    for name in IMAGES:
        x = model_input(ours, shared_file("images", name))
        labels = []
        for interpreter in (auto, ours, reference):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
            interpreter.invoke()
            labels.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        np.testing.assert_array_equal(labels[1], labels[0], err_msg=name)
        reference_differs += int(np.count_nonzero(labels[2] != labels[0]))
    assert reference_differs > 0  # 3553 + 2866 + 1968 labels on this wheel: the personality matters


def test_dm05_logits_are_bit_exact_with_xnnpack(dm05_path, astronaut) -> None:
    """The uint8 class scores before ARG_MAX (ops 0..70 as one model), not only the labels."""
    model = load_model(dm05_path)
    part = extract_ops(model, 0, len(model.main.ops) - 2)
    data = write_model(part.model)
    (auto,), delegated = run_auto(data, [astronaut])
    (ours,), _ = run_ours(data, [astronaut], "numpy")
    assert delegated and auto.shape == (1, 513, 513, 21)
    np.testing.assert_array_equal(ours, auto)


# --- builder-made single-op CONV_2D / DEPTHWISE_CONV_2D, uint8 and int8 -------------------------

CASES = {
    "uint8_first_layer_relu6": case_of(stride=(2, 2), channels=3, filters=16, size=(13, 13), activation="RELU6"),
    "uint8_pointwise": case_of(kernel=(1, 1), channels=24, filters=8, zero_points=(0, 133, 128)),
    "uint8_relu": case_of(activation="RELU", zero_points=(3, 200, 250)),
    "uint8_relu_n1_to_1": case_of(activation="RELU_N1_TO_1", scales=(0.02, 0.01, 0.004)),
    "uint8_valid_stride_3": case_of(padding="VALID", stride=(3, 2), size=(11, 10)),
    "uint8_dilated": case_of(dilation=(2, 3), size=(9, 11)),
    "uint8_halves": case_of(scales=(0.5, 0.5, 1.0), zero_points=(128, 128, 128), kernel=(1, 1)),
    "uint8_depthwise_atrous_relu6": case_of(multiplier=1, channels=8, dilation=(2, 2), size=(7, 7),
                                            activation="RELU6"),
    "uint8_depthwise_multiplier_2": case_of(multiplier=2, channels=3, kernel=(5, 5), stride=(2, 2), size=(10, 9)),
    "uint8_depthwise_odd_padding": case_of(multiplier=1, kernel=(2, 2), stride=(2, 2), size=(5, 5)),
    "int8_conv": case_of(dtype="int8", zero_points=(-128, 0, 5)),
    "int8_conv_relu6": case_of(dtype="int8", activation="RELU6", zero_points=(10, 0, -128), stride=(2, 1)),
    "int8_grouped": case_of(channels=6, filters=4, groups=2, dtype="int8", zero_points=(-128, 0, 127)),
    "int8_halves": case_of(scales=(0.25, 0.5, 1.0), zero_points=(0, 0, 0), kernel=(1, 1), dtype="int8"),
    "int8_depthwise_multiplier_3": case_of(multiplier=3, channels=2, kernel=(5, 5), dtype="int8",
                                           zero_points=(127, 0, -128)),
    "int8_depthwise_relu": case_of(multiplier=1, channels=7, dtype="int8", activation="RELU", dilation=(3, 1),
                                   size=(12, 8), zero_points=(-5, 0, -100)),
    "large_bias_depthwise": case_of(multiplier=2, bias_bits=30, dtype="int8", zero_points=(-128, 0, -128)),
    "large_bias": case_of(bias_bits=30, scales=(0.5, 0.5, 1e-3), zero_points=(0, 0, 100)),
}


def compare_with_auto(case: dict[str, Any], builder: Any = build) -> tuple[bool, bool]:
    """Run a case on LiteRT AUTO and npdeeplab (xnnpack numerics, every backend). npdeeplab must
    take the op over exactly where XNNPACK does, and then be identical to AUTO; an op XNNPACK
    declines runs LiteRT's optimized builtin under AUTO, which the personality does not imitate
    (it runs the reference kernel). Returns (whether XNNPACK took the op, whether the reference
    numerics differ from AUTO)."""
    model, inputs = builder(case)
    data = model.to_bytes()
    (theirs,), delegated = run_auto(data, inputs)
    (reference,), _ = run_ours(data, inputs, "numpy", numerics="reference")
    (optimized,), _ = run_ours(data, inputs, "numpy", numerics="optimized")
    for backend in BACKENDS:
        (ours,), interpreter = run_ours(data, inputs, backend)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert interpreter._runner.steps[0].kernel.startswith("xnnpack_") == delegated
        # Declined: what the optimized personality runs (AUTO's fallback, the optimized builtins).
        expected, whose = (theirs, "LiteRT AUTO") if delegated else (optimized, "the optimized personality")
        differ = int(np.count_nonzero(ours != expected))
        assert differ == 0, f"{backend}: {differ} of {ours.size} elements differ from {whose}"
    return delegated, not np.array_equal(reference, theirs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_builder_conv_bit_exact_with_xnnpack(name: str) -> None:
    delegated, _ = compare_with_auto(CASES[name])
    assert delegated


def test_builder_cases_differ_from_the_reference_somewhere() -> None:
    """Without the personality, several of these cases are off by one LSB against AUTO."""
    assert sum(compare_with_auto(case)[1] for case in CASES.values()) >= 3


@SETTINGS
@given(st.booleans().flatmap(lambda depthwise: conv_cases(depthwise=depthwise)))
def test_random_convolutions_bit_exact_with_xnnpack(case: dict[str, Any]) -> None:
    assume(case["bias"])  # LiteRT AUTO segfaults on int8 depthwise without bias (see the module docstring)
    try:
        delegated, differs = compare_with_auto(case)
    except RuntimeError as refusal:  # e.g. a requantization scale >= 256: XNNPACK refuses, AUTO fails
        assert "XNNPACK" in str(refusal) or "failed" in str(refusal)
        event("LiteRT AUTO refuses")
        return
    except ModelError:  # npdeeplab refuses what LiteRT REF refuses (test_quantized_conv checks that)
        event("refused")
        return
    event(f"delegated={delegated} reference differs={differs}")


# --- builder-made ADD, uint8 and int8: broadcasting, fused activations, XNNPACK's scale limits ------

ADD_CASES = {
    "dm05_residual": add_case("ADD", "uint8", ((1, 9, 9, 12), (1, 9, 9, 12)),
                              [(0.5746461749, 110), (0.3553160727, 129), (0.5082216859, 123)]),
    "broadcast_relu6": add_case("ADD", "uint8", ((2, 3, 5), (5,)), [(0.02, 0), (0.5, 255), (0.1, 128)], "RELU6"),
    "int8_relu_equal_scales": add_case("ADD", "int8", ((6,), (6,)), [(0.25, 3), (0.25, -3), (0.25, 0)], "RELU"),
    "int8_relu_n1_to_1": add_case("ADD", "int8", ((3, 4, 5), (3, 1, 5)), [(0.01, -7), (0.02, 9), (0.015, 3)],
                                  "RELU_N1_TO_1"),
    "constant_operand": add_case("ADD", "int8", ((2, 3), (1, 1)), [(0.1, 1), (0.2, 2), (0.3, 3)], constant_b=True),
}
ADD_DECLINED = {  # XNNPACK declines these; AUTO runs the optimized builtin (the personality: reference)
    "rank_9": add_case("ADD", "uint8", ((1, 1, 1, 1, 1, 1, 1, 1, 3), (3,)), [(0.1, 1), (0.2, 2), (0.3, 3)]),
    "scale_ratio_over_256": add_case("ADD", "uint8", ((6, 3), (6, 3)), [(1e-05, 254), (1.0, 128), (1e-05, 128)],
                                     "RELU", constant_b=True),
    "tanh": add_case("ADD", "uint8", ((4, 5), (4, 5)), [(0.1, 1), (0.2, 2), (0.3, 3)], "TANH"),
}


@pytest.mark.parametrize("name", sorted(ADD_CASES))
def test_builder_add_bit_exact_with_xnnpack(name: str) -> None:
    assert compare_with_auto(ADD_CASES[name], build_binary)[0]


@pytest.mark.parametrize("name", sorted(ADD_DECLINED))
def test_builder_add_that_xnnpack_declines_keeps_the_reference_kernel(name: str) -> None:
    assert not compare_with_auto(ADD_DECLINED[name], build_binary)[0]


@SETTINGS
@given(binary_cases("ADD"))
def test_random_adds_bit_exact_with_xnnpack(case: dict[str, Any]) -> None:
    assume(not add_refused(case))  # LiteRT aborts the process on these (test_quantized_elementwise)
    try:
        delegated, differs = compare_with_auto(case, build_binary)
    except (RuntimeError, ModelError):  # refused by LiteRT, or by npdeeplab as by LiteRT REF
        event("refused")
        return
    event(f"delegated={delegated} reference differs={differs}")


# --- builder-made QUANTIZE (requantization) ---------------------------------------------------------

QUANTIZE_CASES = {  # (input dtype, output dtype, input (scale, zp), output (scale, zp), XNNPACK takes it)
    "uint8": (np.uint8, np.uint8, (0.0123, 3), (0.029, 200), True),
    "uint8_zero_point_shift": (np.uint8, np.uint8, (0.1, 0), (0.1, 128), True),
    "int8": (np.int8, np.int8, (0.0123, -125), (0.029, 72), True),
    "ratio_over_128": (np.uint8, np.uint8, (0.5, 128), (0.001, 7), False),
    "ratio_under_1_256th": (np.int8, np.int8, (0.001, -118), (0.5, -28), False),
    "uint8_to_int8": (np.uint8, np.int8, (0.0123, 3), (0.029, 72), False),
    "int8_to_uint8": (np.int8, np.uint8, (0.0123, -125), (0.029, 200), False),
}


def build_quantize(case: tuple) -> tuple[GraphBuilder, list[np.ndarray]]:
    source, target, q_in, q_out, _ = case
    shape = (2, 7, 9, 5)
    b = GraphBuilder()
    x = b.add_input("x", shape, source, quantization=q_in)
    b.mark_outputs(b.add_op("QUANTIZE", [x], output_shape=shape, output_dtype=target, output_quantization=q_out))
    return b, [quantized_input(np.random.default_rng(7), shape, source)]


@pytest.mark.parametrize("name", sorted(QUANTIZE_CASES))
def test_builder_quantize_bit_exact_with_xnnpack(name: str) -> None:
    delegated, differs = compare_with_auto(QUANTIZE_CASES[name], build_quantize)
    assert delegated == QUANTIZE_CASES[name][4]
    assert differs == (name in ("uint8", "int8", "uint8_to_int8", "int8_to_uint8"))  # 45, 43, 6, 7 elements


# --- builder-made RESIZE_BILINEAR, uint8 and int8 -----------------------------------------------------


def resize_case(dtype: str, size: tuple[int, int], out: tuple[int, int], flags: tuple[bool, bool],
                quantization: tuple[float, int], seed: int = 0) -> dict[str, Any]:
    return {"kind": "RESIZE_BILINEAR", "dtype": dtype, "batch": 1, "size": size, "out": out, "channels": 3,
            "flags": flags, "input_quantization": quantization, "output_quantization": None, "seed": seed}


RESIZE_CASES = {
    "dm05_logits_33_to_513": resize_case("uint8", (33, 33), (513, 513), (True, False), (0.1, 128)),
    "dm05_pooled_1_to_33": resize_case("uint8", (1, 1), (33, 33), (True, False), (0.1, 128)),
    "uint8_legacy": resize_case("uint8", (7, 5), (23, 11), (False, False), (0.02, 3)),
    "uint8_half_pixel": resize_case("uint8", (6, 9), (17, 20), (False, True), (0.02, 3)),
    "int8_align_corners": resize_case("int8", (5, 8), (31, 9), (True, False), (0.5, -7)),
    "int8_half_pixel_downscale": resize_case("int8", (16, 13), (5, 6), (False, True), (0.5, -7)),
}


@pytest.mark.parametrize("name", sorted(RESIZE_CASES))
def test_builder_resize_bilinear_bit_exact_with_xnnpack(name: str) -> None:
    assert compare_with_auto(RESIZE_CASES[name], build_resize)[0]


def test_builder_resizes_differ_from_the_reference_somewhere() -> None:
    assert sum(compare_with_auto(case, build_resize)[1] for case in RESIZE_CASES.values()) >= 2


@SETTINGS
@given(resize_cases())
def test_random_resizes_bit_exact_with_xnnpack(case: dict[str, Any]) -> None:
    assume(case["kind"] == "RESIZE_BILINEAR" and case["dtype"] != "int16")  # what XNNPACK may take
    assume(not resize_reads_past_input(case))  # refused by npdeeplab, garbage in LiteRT
    try:
        delegated, differs = compare_with_auto(case, build_resize)
    except (RuntimeError, ModelError):  # e.g. AUTO fails when input and output quantization differ
        event("refused")
        return
    event(f"{case['dtype']} delegated={delegated} reference differs={differs}")


# --- the personality itself ----------------------------------------------------------------------


def test_requantization_rounds_half_to_even() -> None:
    acc = np.array([5, 7, -5, -7, 1, 3], dtype=np.int64)  # x 0.5: 2.5, 3.5, -2.5, -3.5, 0.5, 1.5
    out = np.empty(acc.shape, dtype=np.int8)
    requantize_fp32(acc, np.float32(0.5), 0, -128, 127, out)
    assert out.tolist() == [2, 4, -2, -4, 0, 2]
    assert quantize_limit(6.0, 0.0235, 0, np.dtype(np.uint8)) == 255  # 255.3 -> clamped
    assert quantize_limit(np.inf, 0.1, 3, np.dtype(np.uint8)) == 255
    assert quantize_limit(-np.inf, 0.1, 3, np.dtype(np.int8)) == -128


def test_unknown_numerics_is_one_line_error() -> None:
    with pytest.raises(BackendError) as error:
        npdeeplab.Interpreter(model_content=build(CASES["int8_conv"])[0].to_bytes(), numerics="fast")
    assert "\n" not in str(error.value) and "reference, xnnpack" in str(error.value)


def test_default_is_reference_and_float_models_keep_reference_kernels(seed_model_path) -> None:
    data = build(CASES["int8_conv"])[0].to_bytes()
    default = npdeeplab.Interpreter(model_content=data)
    assert default.numerics == "reference" and default._runner.steps[0].kernel == "conv2d_quantized"
    plain = npdeeplab.Interpreter(model_path=seed_model_path, backend="numpy")
    xnn = npdeeplab.Interpreter(model_path=seed_model_path, backend="numpy", numerics="xnnpack")
    assert [s.kernel for s in xnn._runner.steps] == [s.kernel for s in plain._runner.steps]


def test_isolated_compare_runs_the_personality_kernels(dm05_path, astronaut):
    """compare --isolate runs each op with the interpreter's own kernel table, so under numerics
    "xnnpack" it reaches XNNPACK's kernels (a KeyError when it looked kernels up by backend)."""
    from npdeeplab.tools.comparison import compare_with_litert

    interpreter = npdeeplab.Interpreter(model_path=dm05_path, backend="numpy", numerics="xnnpack")
    result = compare_with_litert(interpreter, [astronaut], reference="litert-ref", isolate=True, atol=1, rtol=0)
    assert len(result.rows) == 72 and not result.exceeded  # within 1 LSB of REF, op by op
    assert any(row.max_abs == 1 for row in result.rows)  # and not REF itself


@pytest.mark.parametrize("name", sorted(n for n, case in QUANTIZE_CASES.items() if not case[4]))
def test_quantize_xnnpack_declines_matches_auto_through_the_optimized_kernels(name: str) -> None:
    """uint8 <-> int8 requantization, which XNNPACK declines: AUTO runs LiteRT's optimized builtin,
    and so does the personality (the reference kernel is 3 elements off there)."""
    model, inputs = build_quantize(QUANTIZE_CASES[name])
    data = model.to_bytes()
    (theirs,), delegated = run_auto(data, inputs)
    assert not delegated
    for backend in BACKENDS:
        (ours,), _ = run_ours(data, inputs, backend)
        np.testing.assert_array_equal(ours, theirs)

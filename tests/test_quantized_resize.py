"""Quantized RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (uint8, int8, int16) against LiteRT's
reference kernels, on every backend.

Hypothesis draws the type, batch, sizes (up and down, 1-pixel inputs and outputs, factors up to
40, and 1-pixel inputs blown up to 700), channels, align_corners / half_pixel_centers (both, for
nearest neighbour, which LiteRT allows), and input and output quantization drawn independently
(LiteRT blends raw values and checks neither). Resizes whose 10-bit integer kernel would read past
the input are refused by npdeeplab; there LiteRT REF reads memory after the tensor, so those
cases assert the refusal only. Also: uint8 resizes whose float32 formula prepare proves exact
(blended in integers) and ones just past that limit, the dm05 model's three RESIZE_BILINEAR ops
cut out and run alone, and where LiteRT's optimized kernels differ from REF.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import shared_file
from hypothesis import given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, quantized_input, run_litert, run_npdeeplab

from npdeeplab import Interpreter
from npdeeplab.errors import ModelError
from npdeeplab.kernels.integer.resize import (
    QuantizedBilinearParams,
    float_taps,
    integer_taps,
    quantized_resize_bilinear,
)
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.tools.extract import extract_ops

TYPES = {"uint8": np.uint8, "int8": np.int8, "int16": np.int16}
DM05 = "deeplabv3_mnv2_dm05_pascal_quant.tflite"
Case = dict[str, Any]


def quantizations(dtype: Any) -> st.SearchStrategy:
    info = np.iinfo(dtype)
    zero_point = st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(int(info.min), int(info.max))
    scale = st.floats(-5, 2).map(lambda e: float(np.float32(10.0**e)))
    return st.tuples(scale, zero_point)


@st.composite
def resize_cases(draw: Callable) -> Case:
    kind = draw(st.sampled_from(["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"]))
    dtype = draw(st.sampled_from(sorted(TYPES)))
    if draw(st.integers(0, 9)) == 0:  # a 1-pixel side blown up far (the integer kernel's limit)
        size, out = (1, draw(st.integers(1, 8))), (draw(st.integers(1, 700)), draw(st.integers(1, 12)))
    else:
        size = (draw(st.integers(1, 16)), draw(st.integers(1, 16)))
        out = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    flags = [(False, False), (True, False), (False, True)] + ([(True, True)] if kind != "RESIZE_BILINEAR" else [])
    return {
        "kind": kind,
        "dtype": dtype,
        "batch": draw(st.integers(1, 2)),
        "size": size,
        "out": out,
        "channels": draw(st.integers(1, 4)),
        "flags": draw(st.sampled_from(flags)),
        "input_quantization": draw(quantizations(TYPES[dtype])),
        "output_quantization": draw(quantizations(TYPES[dtype])) if draw(st.booleans()) else None,
        "seed": draw(st.integers(0, 2**16)),
    }


def build(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    dtype = TYPES[case["dtype"]]
    shape = (case["batch"], *case["size"], case["channels"])
    b = GraphBuilder()
    x = b.add_input("x", shape, dtype, quantization=case["input_quantization"])
    size = b.add_constant("size", np.array(case["out"], np.int32))
    align, half = case["flags"]
    y = b.add_op(
        case["kind"], [x, size], output_shape=(case["batch"], *case["out"], case["channels"]), output_dtype=dtype,
        output_quantization=case["output_quantization"] or case["input_quantization"],
        align_corners=align, half_pixel_centers=half,
    )
    b.mark_outputs(y)
    return b, [quantized_input(np.random.default_rng(case["seed"]), shape, dtype)]


def reads_past_input(case: Case) -> bool:
    """Whether LiteRT's integer bilinear kernel would read a source row or column past the input."""
    if case["kind"] != "RESIZE_BILINEAR" or case["dtype"] == "uint8":
        return False
    return any(
        integer_taps(size, out, *case["flags"])[0].max() >= size for size, out in zip(case["size"], case["out"],
                                                                                     strict=True)
    )


def check_case(case: Case) -> None:
    model, inputs = build(case)
    if reads_past_input(case):
        for backend in ("numpy", "numba"):
            with pytest.raises(ModelError, match="past the input"):
                run_npdeeplab(model.to_bytes(), inputs, backend)
        return
    check(model, inputs)


@SETTINGS
@given(resize_cases())
def test_resize(case: Case) -> None:
    check_case(case)


REGRESSIONS = [
    # 1 -> 600 rows, int8: scale10 = round(1024/600) = 2 and 599 * 2 >= 1024, row 1 of a 1-row input
    # (LiteRT REF returned garbage for a constant input: checked by hand).
    {"kind": "RESIZE_BILINEAR", "dtype": "int8", "batch": 1, "size": (1, 1), "out": (600, 1), "channels": 1,
     "flags": (False, False), "input_quantization": (0.1, 0), "output_quantization": None, "seed": 0},
    # 33 -> 513 without align_corners, int8: 512 * 66 = 33792 = 33 * 1024, source row 33.
    {"kind": "RESIZE_BILINEAR", "dtype": "int8", "batch": 1, "size": (33, 33), "out": (513, 513), "channels": 2,
     "flags": (False, False), "input_quantization": (0.1, 0), "output_quantization": None, "seed": 1},
    # The same resize in uint8 goes through the float kernel and is fine.
    {"kind": "RESIZE_BILINEAR", "dtype": "uint8", "batch": 1, "size": (33, 33), "out": (513, 513), "channels": 2,
     "flags": (False, False), "input_quantization": (0.1, 0), "output_quantization": None, "seed": 1},
    # Half-pixel upsampling: negative integer coordinates at the top edge (weights above 1024).
    {"kind": "RESIZE_BILINEAR", "dtype": "int8", "batch": 2, "size": (2, 3), "out": (9, 11), "channels": 3,
     "flags": (False, True), "input_quantization": (0.5, -128), "output_quantization": (0.01, 127), "seed": 2},
    # Nearest neighbour with align_corners and half_pixel_centers together (LiteRT allows it).
    {"kind": "RESIZE_NEAREST_NEIGHBOR", "dtype": "int8", "batch": 1, "size": (5, 7), "out": (11, 3), "channels": 2,
     "flags": (True, True), "input_quantization": (0.5, -128), "output_quantization": (3.0, 127), "seed": 3},
    # Found by hypothesis: both flags, 2 -> 62 columns: s = 30.5 * float32(1/61) = 0.49999997, which
    # TfLiteRound takes to 0 and trunc(s + 0.5) (kernels/resize.py's rounding) to 1.
    {"kind": "RESIZE_NEAREST_NEIGHBOR", "dtype": "int16", "batch": 1, "size": (1, 2), "out": (1, 62), "channels": 1,
     "flags": (True, True), "input_quantization": (1.0, -32768), "output_quantization": None, "seed": 0},
    # Both flags on RESIZE_BILINEAR: LiteRT refuses at prepare, and so do we.
    {"kind": "RESIZE_BILINEAR", "dtype": "uint8", "batch": 1, "size": (3, 3), "out": (5, 5), "channels": 1,
     "flags": (True, True), "input_quantization": (0.5, 0), "output_quantization": None, "seed": 4},
]


@pytest.mark.parametrize("case", REGRESSIONS)
def test_resize_regressions(case: Case) -> None:
    check_case(case)


def test_refusals() -> None:
    """Bad quantization is refused with the op, the tensor and the value named (LiteRT ignores it)."""
    for case, message in [
        (dict(REGRESSIONS[4], input_quantization=(0.0, 0)),
         r"RESIZE_NEAREST_NEIGHBOR.*input \(tensor 0 'x'\) has scale 0\.0"),
        (dict(REGRESSIONS[3], output_quantization=(float("nan"), 0)),
         r"RESIZE_BILINEAR.*output \(tensor 2 .*\) has scale nan"),
        (dict(REGRESSIONS[3], input_quantization=None), r"input \(tensor 0 'x'\) is int8 without quantization"),
        (REGRESSIONS[0], r"RESIZE_BILINEAR.*height 1 to 600: LiteRT's int8 kernel would read source index 1"),
    ]:
        model, inputs = build(case)
        with pytest.raises(ModelError, match=message):
            run_npdeeplab(model.to_bytes(), inputs, "numpy")


# --- the dm05 model's resizes, alone ------------------------------------------------------------


@pytest.fixture(scope="module")
def dm05() -> Any:
    return load_model(shared_file("models", DM05))


@pytest.mark.parametrize("index", [64, 69, 70])
def test_dm05_resize_bilinear_alone(dm05: Any, index: int) -> None:
    """Each RESIZE_BILINEAR of the uint8 model (align_corners; 1 -> 33, 33 -> 33, 33 -> 513), cut out
    and fed random uint8 inputs: bit-exact with REF on every backend."""
    part = extract_ops(dm05, index, index).model
    assert part.main.ops[0].kind == "RESIZE_BILINEAR"
    rng = np.random.default_rng(index)
    inputs = [quantized_input(rng, part.main.tensors[i].shape, np.uint8) for i in part.main.inputs]
    check(part, inputs)


# --- LiteRT's optimized kernels against its reference ones ---------------------------------------


def _optimized_vs_reference(case: Case) -> np.ndarray:
    model, inputs = build(case)
    data = model.to_bytes()
    reference, optimized = run_litert(data, inputs)[0], run_litert(data, inputs, reference=False)[0]
    return np.abs(reference.astype(np.int64) - optimized.astype(np.int64))


def test_optimized_kernels_differ_from_reference() -> None:
    """Measured on ai-edge-litert 2.3 (x86-64): OPT's uint8 bilinear differs from REF by 1 on a few
    elements of a 33 -> 513 upsampling without flags or with half-pixel centres; with align_corners
    (dm05's resizes), for int8 (wherever REF stays inside its input) and for nearest neighbour it
    is identical. Bit-exact means REF."""
    base = {"kind": "RESIZE_BILINEAR", "dtype": "uint8", "batch": 1, "size": (33, 33), "out": (513, 513),
            "channels": 5, "input_quantization": (0.1, 3), "output_quantization": None, "seed": 0}
    for flags in ((False, False), (False, True)):
        gap = _optimized_vs_reference(dict(base, flags=flags))
        assert 0 < np.count_nonzero(gap) < 100 and gap.max() == 1, flags
    assert not _optimized_vs_reference(dict(base, flags=(True, False))).any()
    assert not _optimized_vs_reference(dict(base, kind="RESIZE_NEAREST_NEIGHBOR", flags=(False, True))).any()
    for flags in ((False, False), (True, False), (False, True)):
        assert not _optimized_vs_reference(dict(base, dtype="int8", out=(257, 257), flags=flags)).any(), flags


# --- uint8: the exact blend in integers -------------------------------------------------------------


def uint8_bilinear(size: tuple[int, int], out: tuple[int, int], flags: tuple[bool, bool], channels: int = 3,
                   seed: int = 0) -> Case:
    return {"kind": "RESIZE_BILINEAR", "dtype": "uint8", "batch": 1, "size": size, "out": out, "channels": channels,
            "flags": flags, "input_quantization": (0.1, 3), "output_quantization": None, "seed": seed}


def prepared_blend_bits(case: Case) -> tuple[int, int] | None:
    model, _ = build(case)
    (step,) = Interpreter(model_content=model.to_bytes(), backend="numpy").ops
    return step.params.blend_bits


@pytest.mark.parametrize("case, bits", [
    # dm05's 33 -> 513 with align_corners: weights in sixteenths, K = 8, 16-bit integers.
    (uint8_bilinear((33, 33), (513, 513), (True, False), channels=21), (4, 4)),
    # K = 16, the exactness limit with weights in [0, 1): 32-bit integers.
    (uint8_bilinear((2, 2), (257, 257), (True, False)), (8, 8)),
    # Half-pixel centres: quarter weights, negative (-1/4) at the clamped top and left edges.
    (uint8_bilinear((4, 5), (8, 10), (False, True)), (2, 2)),
    # Integer downscaling; a 1-pixel input (all weights 0); both flags off, 2x.
    (uint8_bilinear((13, 13), (3, 4), (True, False)), (1, 1)),
    (uint8_bilinear((1, 1), (33, 33), (True, False), channels=8), (1, 1)),
    (uint8_bilinear((16, 7), (32, 14), (False, False)), (1, 1)),
    # Just off the path: K = 17 (weights in 1/256 by 1/512), and weights that are no dyadic fraction.
    (uint8_bilinear((2, 2), (257, 513), (True, False), channels=16), None),
    (uint8_bilinear((33, 33), (513, 513), (False, False), channels=4), None),
    (uint8_bilinear((33, 33), (513, 513), (False, True), channels=4), None),
])
def test_exact_uint8_blend(case: Case, bits: tuple[int, int] | None) -> None:
    """Prepare proves the float32 formula exact (or not), and either way the outputs are REF's."""
    assert prepared_blend_bits(case) == bits
    check_case(case)


def test_exact_blend_limit_is_needed() -> None:
    """One step past the limit (K = 17) the float32 formula rounds: the exact blend in integers
    would differ from REF, which the literal formula (the path prepare takes) matches."""
    case = uint8_bilinear((2, 2), (257, 513), (True, False), channels=16)
    model, inputs = build(case)
    expected = check(model, inputs)
    assert expected is not None
    taps = [float_taps(2, size, True, False) for size in case["out"]]
    forced = QuantizedBilinearParams(*case["out"], *taps[0], *taps[1], blend_bits=(8, 9))
    assert np.count_nonzero(quantized_resize_bilinear(forced, inputs[0]) != expected[0]) > 0

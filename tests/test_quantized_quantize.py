"""QUANTIZE (float32 -> uint8/int8/int16, and requantization between integer types) and DEQUANTIZE
(integer -> float32) against LiteRT's reference kernels, on every backend.

Hypothesis draws types, per-tensor or per-channel quantization, scales from 1e-4 to 1e3 (powers
of two too, so that x / scale lands on exact halves), zero points at the range ends, and float
inputs mixing ordinary values, exact halves (0.5, -0.5, 2.5... in units of the scale), values
past the type's range and past int32, infinities and NaN. Requantization draws scale ratios from
2**-40 to 2**31 (exactly 1 with zero points 128 apart: the XOR-0x80 case) and type pairs LiteRT
refuses too; the kernel looks inputs with as many elements as their type has values up in a
table of them all (8-bit inputs of 256 elements or more here, large int16 ones apart). Also:
dm05's QUANTIZE op alone, and where LiteRT's optimized kernels differ.
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
from npdeeplab.kernels.fixed_point import saturating_rounding_doubling_high_mul
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.tools.extract import extract_ops

TYPES = {"uint8": np.uint8, "int8": np.int8, "int16": np.int16, "float32": np.float32}
INTEGER = ("uint8", "int8", "int16")
Case = dict[str, Any]


def zero_points(dtype: str) -> st.SearchStrategy:
    if dtype == "int16":
        return st.sampled_from([0, 0, 0, -32768, 32767, 5])  # LiteRT wants 0 in places; others test the refusal
    info = np.iinfo(TYPES[dtype])
    return st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(int(info.min), int(info.max))


def scales(low: float = -4, high: float = 3) -> st.SearchStrategy:
    log_uniform = st.floats(low, high).map(lambda e: float(np.float32(10.0**e)))
    return log_uniform | st.integers(-12, 8).map(lambda k: 2.0**k)


@st.composite
def quantizations(draw: Callable, dtype: str, shape: tuple[int, ...], per_channel: bool) -> tuple:
    if not per_channel:
        return (draw(scales()), draw(zero_points(dtype)))
    axis = draw(st.integers(0, len(shape) - 1))
    channels = shape[axis]
    return ([draw(scales()) for _ in range(channels)], [draw(zero_points(dtype)) for _ in range(channels)], axis)


@st.composite
def shapes(draw: Callable) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))


def float_inputs(rng: np.random.Generator, shape: tuple[int, ...], scale: np.ndarray) -> np.ndarray:
    """Ordinary values, exact halves in units of the scale, values past the range and past int32,
    infinities and NaN."""
    size = int(np.prod(shape))
    k = rng.integers(-300, 300, size).astype(np.float32)
    scale = np.broadcast_to(scale, shape).reshape(-1).astype(np.float32)
    kinds = rng.integers(0, 6, size)
    values = np.select(
        [kinds == 0, kinds == 1, kinds == 2, kinds == 3],
        [rng.normal(0, 100, size) * scale, (k + np.float32(0.5)) * scale, k * scale,
         rng.choice([1e10, -1e10, 2.0**31, -(2.0**31), 2.0**31 - 128, 3e9], size) * scale],
        rng.choice([np.inf, -np.inf, np.nan, 0.5, -0.5, 2.5, -2.5], size) * scale,
    ).astype(np.float32)
    return values.reshape(shape)


def build(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    shape, source, target = case["shape"], case["input_dtype"], case["output_dtype"]
    b = GraphBuilder()
    x = b.add_input("x", shape, TYPES[source], quantization=case["input_quantization"])
    y = b.add_op(case["kind"], [x], output_shape=shape, output_dtype=TYPES[target],
                 output_quantization=case["output_quantization"])
    b.mark_outputs(y)
    if source == "float32":
        q = case["output_quantization"]
        scale = np.asarray(q[0], np.float32)
        if len(q) == 3:
            scale = scale.reshape([-1 if a == q[2] else 1 for a in range(len(shape))])
        return b, [float_inputs(rng, shape, scale)]
    return b, [quantized_input(rng, shape, TYPES[source])]


@st.composite
def quantize_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    target = draw(st.sampled_from(INTEGER))
    return {
        "kind": "QUANTIZE", "input_dtype": "float32", "output_dtype": target, "shape": shape,
        "input_quantization": None,
        "output_quantization": draw(quantizations(target, shape, draw(st.integers(0, 3)) == 0)),
        "seed": draw(st.integers(0, 2**16)),
    }


@st.composite
def requantize_cases(draw: Callable) -> Case:
    source, target = draw(st.sampled_from(INTEGER)), draw(st.sampled_from(INTEGER))
    z_in = draw(zero_points(source))
    s_in = draw(scales())
    choice = draw(st.integers(0, 3))
    if choice == 0:  # the same scale, zero points 128 apart where the types allow
        s_out, z_out = s_in, z_in + (128 if source == "int8" else -128)
        if not np.iinfo(TYPES[target]).min <= z_out <= np.iinfo(TYPES[target]).max:
            z_out = draw(zero_points(target))
    else:
        ratio = 2.0 ** draw(st.integers(-40, 30)) if choice == 1 else 10.0 ** draw(st.floats(-6, 6))
        s_out, z_out = float(np.float32(s_in / ratio)), draw(zero_points(target))
    return {
        "kind": "QUANTIZE", "input_dtype": source, "output_dtype": target, "shape": draw(shapes()),
        "input_quantization": (s_in, z_in), "output_quantization": (s_out, z_out),
        "seed": draw(st.integers(0, 2**16)),
    }


@st.composite
def dequantize_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    source = draw(st.sampled_from(INTEGER))
    return {
        "kind": "DEQUANTIZE", "input_dtype": source, "output_dtype": "float32", "shape": shape,
        "input_quantization": draw(quantizations(source, shape, draw(st.integers(0, 3)) == 0)),
        "output_quantization": None, "seed": draw(st.integers(0, 2**16)),
    }


def undefined_in_litert(case: Case) -> bool:
    """Requantizing by a ratio of 2**31 or more shifts an int32 by 32 or more bits in C."""
    if case["input_dtype"] == "float32" or case["kind"] != "QUANTIZE":
        return False
    return np.float64(case["input_quantization"][0]) / np.float64(case["output_quantization"][0]) >= 2.0**31 - 64


def check_case(case: Case) -> None:
    model, inputs = build(case)
    if undefined_in_litert(case):
        with pytest.raises(ModelError, match="undefined"):
            run_npdeeplab(model.to_bytes(), inputs, "numpy")
        return
    check(model, inputs)


@SETTINGS
@given(quantize_cases())
def test_quantize_float(case: Case) -> None:
    check_case(case)


@SETTINGS
@given(requantize_cases())
def test_requantize(case: Case) -> None:
    check_case(case)


@SETTINGS
@given(dequantize_cases())
def test_dequantize(case: Case) -> None:
    check_case(case)


def test_float_rounding_and_range_ends() -> None:
    """The values REF's AffineQuantize is specified by, as the wheel gives them: halves away from zero;
    past int32 (and Inf, NaN) the C conversion gives INT32_MIN, plus the zero point in wrapping int32
    arithmetic, then the clamp. So 1e10 is 0 in uint8 but 127 in int8 with zero point -128."""
    values = np.array([0.5, -0.5, 2.5, -2.5, 1.5, 1e10, -1e10, 2.1e9, np.inf, -np.inf, np.nan, 2147483520.0],
                      np.float32).reshape(1, 12)
    expected = {
        ("uint8", 0): [1, 0, 3, 0, 2, 0, 0, 255, 0, 0, 0, 255],
        ("uint8", 255): [255, 254, 255, 252, 255, 0, 0, 255, 0, 0, 0, 0],
        ("int8", -128): [-127, -128, -125, -128, -126, 127, 127, 127, 127, 127, 127, 127],
        ("int8", 0): [1, -1, 3, -3, 2, -128, -128, 127, -128, -128, -128, 127],
    }
    for (dtype, zero_point), want in expected.items():
        case = {"kind": "QUANTIZE", "input_dtype": "float32", "output_dtype": dtype, "shape": (1, 12),
                "input_quantization": None, "output_quantization": (1.0, zero_point), "seed": 0}
        got = check(build(case)[0], [values])
        assert got is not None and got[0].ravel().tolist() == want, (dtype, zero_point)


REGRESSIONS = [
    # uint8 -> int8 and back with the same scale and zero points 128 apart: q ^ 0x80.
    {"kind": "QUANTIZE", "input_dtype": "uint8", "output_dtype": "int8", "shape": (4, 64),
     "input_quantization": (0.1, 128), "output_quantization": (0.1, 0), "seed": 0},
    {"kind": "QUANTIZE", "input_dtype": "int8", "output_dtype": "uint8", "shape": (4, 64),
     "input_quantization": (0.1, -3), "output_quantization": (0.1, 125), "seed": 1},
    # The same scale but zero points 127 apart: the general path.
    {"kind": "QUANTIZE", "input_dtype": "uint8", "output_dtype": "int8", "shape": (4, 64),
     "input_quantization": (0.1, 127), "output_quantization": (0.1, 0), "seed": 2},
    # A ratio in [2**30, 2**31): shift 31, C's x * (1 << 31) wraps.
    {"kind": "QUANTIZE", "input_dtype": "int8", "output_dtype": "int16", "shape": (256,),
     "input_quantization": (1.5, 3), "output_quantization": (1.5 / 2**30, 0), "seed": 3},
    # A ratio below 2**-32: QuantizeMultiplier flushes it to 0, every output the zero point.
    {"kind": "QUANTIZE", "input_dtype": "uint8", "output_dtype": "uint8", "shape": (256,),
     "input_quantization": (2.0**-40, 0), "output_quantization": (1.0, 77), "seed": 4},
    # Negative ties (ratio 1/4): REF rounds them away from zero.
    {"kind": "QUANTIZE", "input_dtype": "int8", "output_dtype": "int8", "shape": (256,),
     "input_quantization": (0.25, 0), "output_quantization": (1.0, 0), "seed": 5},
    # int16 -> int16 needs zero points 0, int16 -> uint8 is not a QUANTIZE: LiteRT refuses both.
    {"kind": "QUANTIZE", "input_dtype": "int16", "output_dtype": "int16", "shape": (8,),
     "input_quantization": (0.5, 0), "output_quantization": (0.25, 5), "seed": 6},
    {"kind": "QUANTIZE", "input_dtype": "int16", "output_dtype": "uint8", "shape": (8,),
     "input_quantization": (0.5, 0), "output_quantization": (0.25, 5), "seed": 7},
    # DEQUANTIZE int16 with a zero point: refused by LiteRT (and us); per channel along the last axis.
    {"kind": "DEQUANTIZE", "input_dtype": "int16", "output_dtype": "float32", "shape": (8,),
     "input_quantization": (0.5, 3), "output_quantization": None, "seed": 8},
    {"kind": "DEQUANTIZE", "input_dtype": "int8", "output_dtype": "float32", "shape": (2, 3, 4),
     "input_quantization": ([0.1, 0.2, 3.0, 1e-3], [0, -128, 127, 5], 2), "output_quantization": None, "seed": 9},
    # QUANTIZE float -> int8 per channel along axis 0.
    {"kind": "QUANTIZE", "input_dtype": "float32", "output_dtype": "int8", "shape": (3, 5),
     "input_quantization": None, "output_quantization": ([0.5, 0.25, 3.0], [0, -128, 127], 0), "seed": 10},
]


@pytest.mark.parametrize("case", REGRESSIONS)
def test_regressions(case: Case) -> None:
    check_case(case)


def test_refusals() -> None:
    """Refused with op, tensor and values named (LiteRT runs several of these on garbage)."""
    base = REGRESSIONS[0]
    for change, message in [
        ({"input_quantization": (0.0, 128)}, r"QUANTIZE.*input \(tensor 0 'x'\) has scale 0\.0"),
        ({"output_quantization": (float("inf"), 0)}, r"output \(tensor 1 .*\) has scale inf"),
        ({"output_quantization": None}, r"output \(tensor 1 .*\) has no quantization parameters"),
        ({"output_quantization": (2.0**-36, 0)}, r"2\*\*31 or more times the output's"),
        ({"output_dtype": "float32", "output_quantization": (0.1, 0)}, r"must be uint8 or int8 or int16, got float32"),
        ({"kind": "DEQUANTIZE", "output_dtype": "float32", "input_quantization": ([0.1, 0.2], [0, 0], 1)},
         r"input .* has 2 scales for its 64 channels"),
    ]:
        model, inputs = build(dict(base, **change))
        with pytest.raises(ModelError, match=message):
            run_npdeeplab(model.to_bytes(), inputs, "numpy")


@pytest.mark.parametrize("case", [
    {"kind": "QUANTIZE", "input_dtype": "int16", "output_dtype": "int8", "shape": (1, 256, 257),
     "input_quantization": (0.003, 0), "output_quantization": (0.2, -7), "seed": 11},
    {"kind": "QUANTIZE", "input_dtype": "int16", "output_dtype": "int16", "shape": (2, 200, 200),
     "input_quantization": (0.25, 0), "output_quantization": (1.0, 0), "seed": 12},
])
def test_requantize_int16_tabulated(case: Case) -> None:
    """An int16 input of 65536 elements or more is looked up in the table of all int16 values."""
    assert np.prod(case["shape"]) >= 1 << 16
    check_case(case)


def test_dm05_quantize_alone() -> None:
    """The uint8 model's one QUANTIZE (requantizing 33x33x256 from scale 0.0123 to 0.0291, zero point
    0), cut out and fed random uint8 values: bit-exact with REF on every backend."""
    model = load_model(shared_file("models", "deeplabv3_mnv2_dm05_pascal_quant.tflite"))
    part = extract_ops(model, 65, 65).model
    assert part.main.ops[0].kind == "QUANTIZE"
    rng = np.random.default_rng(65)
    check(part, [quantized_input(rng, part.main.tensors[i].shape, np.uint8) for i in part.main.inputs])


def _both(case: Case, inputs: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    model, built = build(case)
    data = model.to_bytes()
    inputs = inputs or built
    return run_litert(data, inputs)[0], run_litert(data, inputs, reference=False)[0]


def test_optimized_kernels_differ_from_reference() -> None:
    """Measured on ai-edge-litert 2.3 (x86-64), recorded: bit-exact means REF.

    QUANTIZE float -> int: OPT rounds exact halves to even in blocks of 8 elements and the tail
    (size % 8) with REF's halves-away rule. Requantize: where the final rounding shift meets a
    negative tie OPT rounds it up, REF away from zero. DEQUANTIZE: OPT's float32 results differ
    from REF's on about a third of the elements, by up to one ulp of the largest magnitude (a few
    ulps near zero: OPT does not compute scale * (q - zero_point) in one rounding).
    """
    halves = (np.arange(-40, 43, dtype=np.float32) + np.float32(0.5)).reshape(1, 83)  # 10 blocks of 8 and 3
    case = {"kind": "QUANTIZE", "input_dtype": "float32", "output_dtype": "int8", "shape": (1, 83),
            "input_quantization": None, "output_quantization": (1.0, 0), "seed": 0}
    reference, optimized = (a.ravel().astype(int) for a in _both(case, [halves]))
    assert reference.tolist() == [int(np.sign(v) * np.floor(abs(v) + 0.5)) for v in halves.ravel()]
    assert optimized[:80].tolist() == np.rint(halves.ravel()[:80]).astype(int).tolist()  # to even
    assert optimized[80:].tolist() == reference[80:].tolist()

    ties = dict(REGRESSIONS[5])  # int8 scale 0.25 -> 1: (M, shift) = (2**30, -1), x / 2 then / 2 again
    values = np.arange(-128, 128)
    reference, optimized = (a.ravel().astype(int) for a in _both(ties, [values.astype(np.int8)]))
    half = saturating_rounding_doubling_high_mul(values, 1 << 30)  # the first rounding, the same in both
    tie = (half < 0) & (half % 2 == 1)  # the shift by 1 meets a negative tie
    assert np.array_equal(optimized - reference, tie.astype(int)) and tie.sum() == 64

    case = {"kind": "DEQUANTIZE", "input_dtype": "uint8", "output_dtype": "float32", "shape": (1, 1024),
            "input_quantization": (0.1, 7), "output_quantization": None, "seed": 0}
    inputs = [np.tile(np.arange(256, dtype=np.uint8), 4).reshape(1, 1024)]
    reference, optimized = _both(case, inputs)
    differ = reference != optimized
    assert 100 < np.count_nonzero(differ) < 1024
    assert np.abs(reference - optimized).max() <= np.finfo(np.float32).eps * np.abs(reference).max()


def test_per_channel_output_counted_against_the_resized_shape() -> None:
    """A per-channel QUANTIZE output whose input is resized: the scales are counted against the
    shape the op produces, and a mismatch is refused at load (it crashed at invoke; found by the
    fuzz, with a dynamic declared output shape)."""
    g = GraphBuilder()
    x = g.add_input("x", (4,), np.float32)
    g.mark_outputs(g.add_op("QUANTIZE", [x], output_dtype=np.int8, output_shape=(4,),
                            output_quantization=([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], 0)))
    interpreter = Interpreter(model_content=g.to_bytes(), backend="numpy")
    with pytest.raises(ModelError, match=r"QUANTIZE.*has 4 scales for its 255 channels"):
        interpreter.resize_tensor_input(0, [255])

"""Quantized CONCATENATION and the raw-value ops on quantized tensors, against LiteRT's reference kernels.

CONCATENATION: uint8 inputs quantized unlike the output are requantized in float32 (reference_ops::
ConcatenationWithScaling), int8 ones must match the output exactly (LiteRT refuses otherwise).
RESHAPE, SQUEEZE, EXPAND_DIMS, PAD, SLICE, STRIDED_SLICE, TILE, TRANSPOSE, ARG_MAX and ARG_MIN move
or compare raw values; they run through their float preparers, with the quantization checks
LiteRT makes (EXPAND_DIMS: equal input and output quantization) and PAD's fill (the output zero
point). Each is drawn with equal and with unequal input and output quantization, since LiteRT
runs most of them either way. Outputs must be identical on LiteRT BUILTIN_REF and every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, quantized_input
from test_quantized_elementwise import TYPES, scales, zero_points

from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder

Case = dict[str, Any]


# --- CONCATENATION -------------------------------------------------------------------------------


@st.composite
def concatenation_cases(draw: Callable) -> Case:
    dtype = draw(st.sampled_from(["uint8", "uint8", "uint8", "int8"]))
    rank = draw(st.integers(1, 5))
    base = [draw(st.integers(1, 4)) for _ in range(rank)]
    axis = draw(st.integers(-rank, rank - 1))
    count = draw(st.integers(1, 4))
    output_q = (draw(scales()), draw(zero_points(dtype)))
    inputs = []
    for _ in range(count):
        shape = list(base)
        shape[axis] = draw(st.integers(0 if count > 1 else 1, 4))
        same = draw(st.integers(0, 2)) == 0
        q = output_q if same else (float(np.float32(output_q[0] * 10 ** draw(st.floats(-1.5, 1.5)))),
                                   draw(zero_points(dtype)))
        inputs.append((tuple(shape), q))
    return {"dtype": dtype, "axis": axis, "inputs": inputs, "output": output_q, "seed": draw(st.integers(0, 2**16))}


def build_concatenation(case: Case, activation: str = "NONE") -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    b = GraphBuilder()
    tensors = [b.add_input(f"x{i}", shape, dtype, quantization=q) for i, (shape, q) in enumerate(case["inputs"])]
    shapes = [s for s, _ in case["inputs"]]
    axis = case["axis"] % len(shapes[0])
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    y = b.add_op("CONCATENATION", tensors, output_shape=out, output_dtype=dtype, output_quantization=case["output"],
                 axis=case["axis"], fused_activation_function=activation)
    b.mark_outputs(y)
    return b, [quantized_input(rng, s, dtype) for s in shapes]


@SETTINGS
@given(concatenation_cases())
def test_concatenation(case: Case) -> None:
    check(*build_concatenation(case))


@SETTINGS
@given(st.floats(-5, 1), st.floats(-1.5, 1.5), st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**16))
def test_concatenation_requantize_uint8(log_scale: float, log_ratio: float, zp_in: int, zp_out: int,
                                        seed: int) -> None:
    """Every uint8 value through the requantization (ties of the float32 rounding included)."""
    s_out = float(np.float32(10.0**log_scale))
    case = {"dtype": "uint8", "axis": 0, "output": (s_out, zp_out), "seed": seed,
            "inputs": [((256,), (float(np.float32(s_out * 10**log_ratio)), zp_in)), ((3,), (s_out, zp_out))]}
    model, _ = build_concatenation(case)
    check(model, [np.arange(256, dtype=np.uint8), np.array([0, 7, 255], np.uint8)])


def concat_case(dtype: str, inputs: list, output: tuple[float, int], axis: int = -1) -> Case:
    return {"dtype": dtype, "axis": axis, "inputs": inputs, "output": output, "seed": 5}


CONCAT_REGRESSIONS = [
    # The dm05 model's ASPP concatenation: inputs and output share (0.029083, 0).
    concat_case("uint8", [((1, 4, 4, 8), (0.029082998, 0)), ((1, 4, 4, 8), (0.029082998, 0))], (0.029082998, 0)),
    # Scale ratio 1/2 exactly with zero point 1: q * 0.5 - 0.5 is a tie at every even q.
    concat_case("uint8", [((4, 64), (0.5, 1)), ((4, 2), (1.0, 0))], (1.0, 0)),
    # A large ratio: everything but the zero point saturates.
    concat_case("uint8", [((2, 3), (10.0, 128)), ((2, 1), (1e-5, 0))], (1e-5, 3), axis=1),
    # int8 inputs quantized unlike the output: LiteRT refuses, so must npdeeplab.
    concat_case("int8", [((2, 3), (0.1, 0)), ((2, 1), (0.1, 1))], (0.1, 0)),
    concat_case("int8", [((2, 3), (0.1, 0)), ((2, 1), (0.2, 0))], (0.1, 0)),
    concat_case("int8", [((2, 3), (0.1, -128)), ((2, 1), (0.1, -128))], (0.1, -128)),
]


@pytest.mark.parametrize("case", CONCAT_REGRESSIONS, ids=lambda c: f"{c['dtype']}-{c['inputs']}")
def test_concatenation_regressions(case: Case) -> None:
    check(*build_concatenation(case))


def test_concatenation_with_activation_refused() -> None:
    """concatenation.cc refuses a fused activation at Prepare."""
    case = concat_case("uint8", [((2, 3), (0.1, 0)), ((2, 1), (0.2, 0))], (0.1, 0))
    check(*build_concatenation(case, activation="RELU"))


# --- the raw-value ops ------------------------------------------------------------------------------


@st.composite
def raw_cases(draw: Callable) -> Case:
    kind = draw(st.sampled_from(["RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "SLICE", "STRIDED_SLICE", "TILE",
                                 "TRANSPOSE", "ARG_MAX", "ARG_MIN"]))
    dtype = draw(st.sampled_from(sorted(TYPES)))
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.sampled_from([1, 1, 2, 3, 4])) for _ in range(rank))
    q_in = (draw(scales()), draw(zero_points(dtype)))
    q_out = q_in if draw(st.booleans()) else (draw(scales()), draw(zero_points(dtype)))
    case: Case = {"kind": kind, "dtype": dtype, "shape": shape, "quantization": (q_in, q_out),
                  "seed": draw(st.integers(0, 2**16))}
    if kind == "RESHAPE":
        case["new_shape"] = draw(st.permutations(list(shape)))
    elif kind == "SQUEEZE":
        ones = [i for i, d in enumerate(shape) if d == 1]
        case["squeeze_dims"] = draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    elif kind == "EXPAND_DIMS":
        case["axis"] = draw(st.integers(-rank - 1, rank))
    elif kind == "PAD":
        case["paddings"] = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank)]
    elif kind == "SLICE":
        begin = [draw(st.integers(0, d - 1)) for d in shape]
        case["begin"] = begin
        case["size"] = [draw(st.sampled_from([-1, *range(1, d - b + 1)])) for d, b in zip(shape, begin, strict=True)]
    elif kind == "STRIDED_SLICE":
        case["begin"] = [draw(st.integers(-d, d - 1)) for d in shape]
        case["end"] = [draw(st.integers(-d, d)) for d in shape]
        case["strides"] = [draw(st.sampled_from([-2, -1, 1, 1, 2])) for _ in shape]
        case["masks"] = (draw(st.integers(0, 2**rank - 1)), draw(st.integers(0, 2**rank - 1)))
        case["shrink_axis_mask"] = draw(st.integers(0, 2**rank - 1)) if draw(st.booleans()) else 0
    elif kind == "TILE":
        case["multiples"] = [draw(st.integers(1, 3)) for _ in shape]
    elif kind == "TRANSPOSE":
        case["perm"] = draw(st.permutations(range(rank)))
    else:
        case["axis"] = draw(st.integers(-rank, rank - 1))
        case["output_type"] = draw(st.sampled_from(["INT32", "INT64"]))
    return case


def build_raw(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    kind, shape = case["kind"], case["shape"]
    q_in, q_out = case["quantization"]
    b = GraphBuilder()
    x = b.add_input("x", shape, dtype, quantization=q_in)
    options: dict[str, Any] = {}
    if kind == "RESHAPE":
        inputs = [x, b.add_constant("shape", np.array(case["new_shape"], np.int32))]
    elif kind == "SQUEEZE":
        inputs, options = [x], {"squeeze_dims": tuple(case["squeeze_dims"])}
    elif kind in ("EXPAND_DIMS", "ARG_MAX", "ARG_MIN"):
        inputs = [x, b.add_constant("axis", np.array([case["axis"]], np.int32))]
        if kind != "EXPAND_DIMS":
            options = {"output_type": case["output_type"]}
    elif kind == "PAD":
        inputs = [x, b.add_constant("paddings", np.array(case["paddings"], np.int32))]
    elif kind == "SLICE":
        inputs = [x, b.add_constant("begin", np.array(case["begin"], np.int32)),
                  b.add_constant("size", np.array(case["size"], np.int32))]
    elif kind == "STRIDED_SLICE":
        inputs = [x] + [b.add_constant(name, np.array(case[name], np.int32)) for name in ("begin", "end", "strides")]
        options = {"begin_mask": case["masks"][0], "end_mask": case["masks"][1],
                   "shrink_axis_mask": case["shrink_axis_mask"]}
    elif kind == "TILE":
        inputs = [x, b.add_constant("multiples", np.array(case["multiples"], np.int32))]
    else:
        inputs = [x, b.add_constant("perm", np.array(case["perm"], np.int32))]
    arg = kind in ("ARG_MAX", "ARG_MIN")
    # The output shape and dtype are npdeeplab's (inferred in a copy with the input's quantization,
    # which every kind accepts); the output is declared with the case's quantization. Slices that
    # npdeeplab refuses on their indices alone are the float tests' subject, not drawn here.
    scratch = GraphBuilder()
    scratch_inputs = [scratch.add_input("x", shape, dtype, quantization=q_in)]
    scratch_inputs += [scratch.add_constant(f"c{i}", b.tensors[t].data) for i, t in enumerate(inputs[1:])]
    try:
        inferred = scratch.add_op(kind, scratch_inputs, output_quantization=None if arg else q_in, **options)
    except ModelError as error:  # a slice npdeeplab refuses whatever the types: test_ops_differential's matter
        assert kind in ("STRIDED_SLICE", "SLICE"), error
        reject()
    y = b.add_op(kind, inputs, output_shape=scratch.shape(inferred), output_dtype=scratch.dtype(inferred),
                 output_quantization=None if arg else q_out, **options)
    b.mark_outputs(y)
    return b, [quantized_input(rng, shape, dtype)]


@SETTINGS
@given(raw_cases())
def test_raw_value_ops(case: Case) -> None:
    check(*build_raw(case))


def raw_case(kind: str, dtype: str, shape: tuple[int, ...], quantization: Any, **fields: Any) -> Case:
    return {"kind": kind, "dtype": dtype, "shape": shape, "quantization": quantization, "seed": 11, **fields}


RAW_REGRESSIONS = [
    # EXPAND_DIMS: LiteRT requires equal scale and zero point (expand_dims.cc), npdeeplab refuses too.
    raw_case("EXPAND_DIMS", "uint8", (2, 3), ((0.1, 3), (0.1, 4)), axis=0),
    raw_case("EXPAND_DIMS", "int8", (2, 3), ((0.1, 3), (0.2, 3)), axis=-1),
    raw_case("EXPAND_DIMS", "int8", (2, 3), ((0.1, 3), (0.1, 3)), axis=2),
    # PAD fills with the output's zero point, also when it differs from the input's.
    raw_case("PAD", "uint8", (2, 3), ((0.1, 3), (0.5, 200)), paddings=[(1, 2), (0, 1)]),
    raw_case("PAD", "int8", (1, 2, 2, 1), ((0.1, -128), (0.1, 127)), paddings=[(0, 0), (1, 1), (2, 0), (0, 0)]),
    # ... except an int8 input without quantization, which pad.cc pads with 0 (uint8 still takes
    # the output zero point).
    raw_case("PAD", "int8", (2, 2), (None, (0.1, 5)), paddings=[(1, 0), (0, 1)]),
    raw_case("PAD", "uint8", (2, 2), (None, (0.1, 5)), paddings=[(1, 0), (0, 1)]),
    # Others copy raw values whatever the quantization, as LiteRT does.
    raw_case("TRANSPOSE", "int8", (2, 1, 3), ((0.1, 3), (7.0, -100)), perm=(2, 0, 1)),
    raw_case("ARG_MAX", "uint8", (1, 5, 5, 21), ((0.18857865, 34), None), axis=3, output_type="INT64"),
    raw_case("ARG_MIN", "int8", (3, 4), ((0.1, 0), None), axis=0, output_type="INT32"),
]


@pytest.mark.parametrize("case", RAW_REGRESSIONS, ids=lambda c: f"{c['kind']}-{c['dtype']}-{c['quantization']}")
def test_raw_value_regressions(case: Case) -> None:
    check(*build_raw(case))

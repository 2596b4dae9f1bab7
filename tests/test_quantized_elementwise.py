"""Quantized ADD, SUB and MUL (uint8, int8, per tensor) against LiteRT's reference kernels.

Hypothesis draws the op, the type, broadcast shapes (up to rank 8, the most LiteRT's broadcast
loop takes), scales from 1e-5 to 10, zero points at and near the ends of the type's range, the
fused activation and whether input 1 is a constant; the one-op model runs on LiteRT BUILTIN_REF
and on every npdeeplab backend, outputs identical. A case is a plain dict (what Hypothesis prints
on failure); its input data come from "seed". Failures found are kept as explicit regressions.
Outputs of TABLE_MIN_SIZE elements or more, which the kernels look up in a table of all 256 x 256
input pairs, are tested apart (hypothesis's shapes stay below it).

ADD and SUB whose output multiplier 2*max(s1, s2) / (2**20 * s_out) is not below 1 are refused
by npdeeplab (LiteRT aborts the process on them, or for SUB computes undefined values): those
cases never reach LiteRT in this process; the abort itself is shown in a child process.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS
from hypothesis import given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, quantized_input, run_npdeeplab

from npdeeplab.errors import ModelError
from npdeeplab.kernels.fast.integer.elementwise import broadcast_strides
from npdeeplab.kernels.integer.elementwise import TABLE_MIN_SIZE
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.runtime.backends import kernel_table

Case = dict[str, Any]
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "SIGN_BIT")
TYPES = {"uint8": np.uint8, "int8": np.int8}


def scales() -> st.SearchStrategy[float]:
    """Log-uniform over [1e-5, 10], the ends and a few round values included."""
    exponent = st.floats(-5, 1, allow_nan=False)
    return st.one_of(exponent.map(lambda e: float(np.float32(10.0**e))), st.sampled_from([1e-5, 1.0, 10.0, 0.5]))


def zero_points(dtype: str) -> st.SearchStrategy[int]:
    info = np.iinfo(TYPES[dtype])
    ends = [info.min, info.min + 1, (info.min + info.max + 1) // 2, info.max - 1, info.max]
    return st.one_of(st.sampled_from(ends), st.integers(info.min, info.max))


@st.composite
def broadcast_shapes(draw: Callable, max_rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast: each a suffix of the full shape with some axes set to 1; now
    and then an empty axis."""
    rank = draw(st.sampled_from([r for r in (0, 1, 2, 2, 3, 3, 4, 4, 4, 5, 6, 7, 8) if r <= max_rank]))
    sides = (1, 2, 3, 4, 5, 6, 7) if rank <= 4 else (1, 2, 3)
    full = [draw(st.sampled_from(sides)) for _ in range(rank)]
    if rank and draw(st.integers(0, 15)) == 0:
        full[draw(st.integers(0, rank - 1))] = 0
    shapes = []
    for _ in range(2):
        own_rank = draw(st.sampled_from(range(rank, -1, -1)))
        shapes.append(tuple(1 if draw(st.integers(0, 3)) == 0 else d for d in full[rank - own_rank :]))
    if draw(st.booleans()):
        shapes[draw(st.integers(0, 1))] = tuple(full)
    return shapes[0], shapes[1]


@st.composite
def related_scales(draw: Callable, kind: str) -> tuple[float, float, float]:
    """(s1, s2, s_out): mostly within a few decades of each other, so that both inputs count and
    the output is not all saturated; now and then three independent scales."""
    if draw(st.integers(0, 3)) == 0:
        return draw(scales()), draw(scales()), draw(scales())
    s1 = draw(scales())
    s2 = s1 * 10 ** draw(st.floats(-1.5, 1.5))
    if kind == "MUL":  # (a - z1)(b - z2) spans some 10**4.8 steps of s1 * s2
        s_out = s1 * s2 * 10 ** draw(st.floats(0.5, 4.5))
    else:
        s_out = max(s1, s2) * 10 ** draw(st.floats(-1, 1.3))
    return float(np.float32(s1)), float(np.float32(s2)), float(np.float32(s_out))


@st.composite
def binary_cases(draw: Callable, kind: str) -> Case:
    dtype = draw(st.sampled_from(sorted(TYPES)))
    return {
        "kind": kind,
        "dtype": dtype,
        "shapes": draw(broadcast_shapes(draw(st.sampled_from([3, 4, 4, 4, 6, 8])))),
        # input 0, input 1, output
        "quantization": [(s, draw(zero_points(dtype))) for s in draw(related_scales(kind))],
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "constant_b": draw(st.integers(0, 3)) == 0,
        "seed": draw(st.integers(0, 2**16)),
    }


def add_sub_output_multiplier(case: Case) -> float:
    """add.cc / sub.cc: 2 * max(s1, s2) in float32 over (2**20 * s_out) in float32, in double."""
    (s1, _), (s2, _), (s_out, _) = case["quantization"]
    twice_max = np.float32(2) * max(np.float32(s1), np.float32(s2))
    return float(twice_max) / float(np.float32(2**20) * np.float32(s_out))


def refused(case: Case) -> bool:
    return case["kind"] in ("ADD", "SUB") and not 0 < add_sub_output_multiplier(case) < 1


def build(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    (a_shape, b_shape), (qa, qb, q_out) = case["shapes"], case["quantization"]
    a_value, b_value = quantized_input(rng, a_shape, dtype), quantized_input(rng, b_shape, dtype)
    constant = case["constant_b"] and b_value.size > 0  # an empty constant is written as no data at all
    b = GraphBuilder()
    a = b.add_input("a", a_shape, dtype, quantization=qa)
    other = b.add_constant("b", b_value, quantization=qb) if constant else b.add_input(
        "b", b_shape, dtype, quantization=qb)
    # The output declared, not inferred: the builder would prepare the op, and refusals are check()'s to judge.
    y = b.add_op(case["kind"], [a, other], output_shape=np.broadcast_shapes(a_shape, b_shape), output_dtype=dtype,
                 output_quantization=q_out, fused_activation_function=case["activation"])
    b.mark_outputs(y)
    return b, [a_value] if constant else [a_value, b_value]


def run_case(case: Case) -> None:
    model, inputs = build(case)
    if refused(case):  # LiteRT would abort this process
        for backend in BACKENDS:
            with pytest.raises(ModelError, match="output multiplier"):
                run_npdeeplab(model.to_bytes(), inputs, backend)
        return
    check(model, inputs)


@SETTINGS
@given(binary_cases("ADD"))
def test_add(case: Case) -> None:
    run_case(case)


@SETTINGS
@given(binary_cases("SUB"))
def test_sub(case: Case) -> None:
    run_case(case)


@SETTINGS
@given(binary_cases("MUL"))
def test_mul(case: Case) -> None:
    run_case(case)


def case_of(kind: str, dtype: str, shapes: Any, quantization: Any, activation: str = "NONE", constant_b: bool = False,
            seed: int = 0) -> Case:
    return {"kind": kind, "dtype": dtype, "shapes": shapes, "quantization": quantization, "activation": activation,
            "constant_b": constant_b, "seed": seed}


REGRESSIONS = [
    # The dm05 model's first residual ADD, per channel broadcast and per row broadcast.
    case_of("ADD", "uint8", ((1, 9, 9, 12), (1, 9, 9, 12)), [(0.5746461749, 110), (0.3553160727, 129),
                                                             (0.5082216859, 123)]),
    case_of("ADD", "uint8", ((2, 3, 5), (5,)), [(0.02, 0), (0.5, 255), (0.1, 128)], "RELU6"),
    case_of("SUB", "int8", ((2, 1, 5), (3, 1)), [(0.02, -128), (0.5, 127), (0.1, 0)], "RELU_N1_TO_1"),
    case_of("MUL", "int8", ((4, 4), ()), [(10.0, -128), (10.0, -128), (1e-5, 0)]),  # a huge left shift, saturated
    case_of("MUL", "uint8", ((3, 4), (3, 4)), [(1e-5, 0), (1e-5, 255), (10.0, 128)]),  # multiplier flushed to 0
    # Equal scales: m1 = m2 = 1/2 exactly (QuantizeMultiplier's frexp gives 0.5 * 2**0).
    case_of("ADD", "int8", ((6,), (6,)), [(0.25, 3), (0.25, -3), (0.25, 0)], "RELU"),
    # The output multiplier just under 1: the largest output shift LiteRT accepts.
    case_of("SUB", "uint8", ((8,), (1,)), [(1.0, 0), (1.0, 255), (1.91e-6, 128)]),
    # Rank 8 broadcast (LiteRT's limit) and a rank-9 same-shape op, which runs flat.
    case_of("ADD", "uint8", ((2, 1, 2, 1, 2, 1, 2, 1), (1, 2, 1, 2, 1, 2, 1, 2)), [(0.1, 1), (0.2, 2), (0.3, 3)]),
    case_of("MUL", "int8", ((1, 1, 1, 1, 2, 1, 1, 1, 3), (1, 1, 1, 1, 2, 1, 1, 1, 3)), [(0.1, 1), (0.2, 2), (0.3, 3)]),
    case_of("ADD", "uint8", ((1, 1, 1, 1, 1, 1, 1, 1, 3), (3,)), [(0.1, 1), (0.2, 2), (0.3, 3)]),  # extended equal
    # Empty outputs; 0-d inputs.
    case_of("SUB", "int8", ((0, 3), (3,)), [(0.1, 1), (0.2, 2), (0.3, 3)]),
    case_of("MUL", "uint8", ((), ()), [(0.1, 1), (0.2, 2), (0.3, 3)], "RELU"),
    case_of("ADD", "int8", ((2, 3), (1, 1)), [(0.1, 1), (0.2, 2), (0.3, 3)], constant_b=True),
    # Found by Hypothesis: RELU6 on an output scale of 1e-9 is 6e9 steps, past int32; LiteRT's
    # Prepare refuses it (kernel_util.cc Quantize), so must npdeeplab. 1e9 steps (RELU_N1_TO_1) fit.
    case_of("MUL", "int8", ((), ()), [(1e-5, -128), (1e-5, -128), (1e-9, -128)], "RELU6", constant_b=True),
    case_of("ADD", "uint8", ((2,), (2,)), [(1e-9, 0), (1e-9, 0), (1e-9, 0)], "RELU_N1_TO_1"),
    case_of("SUB", "uint8", ((2,), (2,)), [(1e-9, 0), (1e-9, 0), (1e-9, 0)], "RELU6"),
]


@pytest.mark.parametrize("case", REGRESSIONS, ids=lambda c: f"{c['kind']}-{c['dtype']}-{c['shapes']}")
def test_regressions(case: Case) -> None:
    run_case(case)


# --- refusals ------------------------------------------------------------------------------------


def refusal(kind: str, dtype: Any, a_shape: tuple[int, ...], b_shape: tuple[int, ...], qa: Any, qb: Any,
            q_out: Any, out_dtype: Any = None) -> GraphBuilder:
    """A model npdeeplab must refuse: built with explicit output shape and dtype, so that the
    builder does not prepare it."""
    b = GraphBuilder()
    a = b.add_input("a", a_shape, dtype, quantization=qa)
    other = b.add_input("b", b_shape, np.int8 if out_dtype == "mixed" else dtype, quantization=qb)
    shape = np.broadcast_shapes(a_shape, b_shape)
    dtype_out = dtype if out_dtype in (None, "mixed") else out_dtype
    b.mark_outputs(b.add_op(kind, [a, other], output_shape=shape, output_dtype=dtype_out, output_quantization=q_out))
    return b


@pytest.mark.parametrize(
    "kind, dtype, shapes, quantization, out_dtype, message",
    [
        ("ADD", np.uint8, ((2,), (2,)), [(1.0, 0), (1.0, 0), (2 / 2**20, 0)], None, "must lie strictly between"),
        ("ADD", np.int8, ((2,), (2,)), [(10.0, 0), (1.0, 0), (1e-5, 0)], None, "LiteRT aborts"),
        ("SUB", np.uint8, ((2,), (2,)), [(1.0, 0), (1.0, 0), (1e-7, 0)], None, "undefined"),
        ("MUL", np.uint8, ((2,), (2,)), [(1e19, 0), (1e19, 0), (1e-19, 0)], None, "overflows"),
        ("MUL", np.uint8, ((2,), (2,)), [(1e5, 0), (1e5, 0), (1.0, 0)], None, "2\\*\\*31 or more"),
        ("ADD", np.uint8, ((1,) * 8 + (2,), (1,) * 9), [(0.1, 0)] * 3, None, "rank up to 8"),
        ("ADD", np.uint8, ((2,), (2,)), [(0.1, 0), (0.1, 0), (0.1, 0)], np.int8, "output .* must be uint8"),
        ("MUL", np.uint8, ((2,), (2,)), [(0.1, 0), (0.1, 0), (0.1, 0)], "mixed", "input 1 .* must be uint8"),
        ("SUB", np.uint8, ((2,), (2,)), [(0.1, 0), ([0.1, 0.2], [0, 0]), (0.1, 0)], None, "per tensor"),
        ("ADD", np.int16, ((2,), (2,)), [(0.1, 0), (0.1, 0), (0.1, 0)], None, "must be uint8 or int8"),
    ],
)
def test_refused(kind: str, dtype: Any, shapes: Any, quantization: Any, out_dtype: Any, message: str) -> None:
    data = refusal(kind, dtype, *shapes, *quantization, out_dtype=out_dtype).to_bytes()
    inputs = [np.zeros(s, np.int8 if out_dtype == "mixed" and k else dtype) for k, s in enumerate(shapes)]
    for backend in BACKENDS:
        with pytest.raises(ModelError, match=message):
            run_npdeeplab(data, inputs, backend)


LITERT_CHILD = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
interpreter = Interpreter(model_content=sys.stdin.buffer.read(),
                          experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
interpreter.allocate_tensors()
for detail in interpreter.get_input_details():
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
interpreter.invoke()
print("ran")
"""


@pytest.mark.parametrize(
    "kind, shapes, quantization",
    [
        ("ADD", ((2,), (2,)), [(1.0, 0), (1.0, 0), (2 / 2**20, 0)]),  # output multiplier exactly 1
        ("MUL", ((1,) * 8 + (2,), (1,) * 9), [(0.1, 0)] * 3),  # a rank-9 broadcast
    ],
)
def test_refusals_are_litert_aborts(kind: str, shapes: Any, quantization: Any) -> None:
    """What npdeeplab refuses above, LiteRT's reference kernels abort on: shown in a child process."""
    pytest.importorskip("ai_edge_litert")
    data = refusal(kind, np.uint8, *shapes, *quantization).to_bytes()
    child = subprocess.run([sys.executable, "-c", LITERT_CHILD], input=data, capture_output=True, timeout=120)
    assert child.returncode < 0 and b"ran" not in child.stdout, (child.returncode, child.stderr[-500:])


# --- the Numba twin's broadcast walk ---------------------------------------------------------------


@pytest.mark.skipif("numba" not in BACKENDS, reason="Numba is not installed")
@SETTINGS
@given(broadcast_shapes(8), st.sampled_from(["quantized_add", "quantized_sub", "quantized_mul"]),
       st.sampled_from(sorted(TYPES)), st.integers(0, 2**16))
def test_numba_broadcast_matches_numpy(shapes: Any, kernel: str, dtype: str, seed: int) -> None:
    """The twin's table gather over merged axes equals the NumPy kernel, shape by shape (cheaper
    than a model per case, so wider shapes)."""
    from npdeeplab.kernels.integer.elementwise import AddSubParams, MulParams

    rng = np.random.default_rng(seed)
    a = quantized_input(rng, shapes[0], TYPES[dtype])
    b = quantized_input(rng, shapes[1], TYPES[dtype])
    info = np.iinfo(TYPES[dtype])
    if kernel == "quantized_mul":
        p: Any = MulParams(-3, 7, 5, 1_500_000_000, -9, int(info.min), int(info.max))
    else:
        p = AddSubParams(20, -3, 1 << 30, -1, 7, 1_300_000_000, -2, 5, 1_700_000_000, -18, int(info.min) + 2,
                         int(info.max))
    expected = kernel_table("numpy")[kernel](p, a, b)
    out = np.empty(expected.shape, expected.dtype)
    got = kernel_table("numba")[kernel](p, a, b, out=out)
    assert got is out and got.dtype == expected.dtype and np.array_equal(got, expected)


def test_broadcast_strides_merge_axes() -> None:
    dims, a, b = broadcast_strides((2, 3, 4, 5), (2, 3, 4, 5), (4, 5))
    assert (dims.tolist(), a.tolist(), b.tolist()) == ([6, 20], [20, 1], [0, 1])
    dims, a, b = broadcast_strides((2, 1, 3), (1, 1, 3), (2, 1, 1))
    assert (dims.tolist(), a.tolist(), b.tolist()) == ([2, 3], [0, 1], [1, 0])
    dims, a, b = broadcast_strides((), (), ())
    assert (dims.tolist(), a.tolist(), b.tolist()) == ([1], [1], [1])


# --- large outputs: looked up in the formula's table -----------------------------------------------

LARGE = [
    # dm05's largest ADD (op 9), in its shape and quantization.
    case_of("ADD", "uint8", ((1, 129, 129, 12), (1, 129, 129, 12)), [(0.5746461749, 110), (0.3553160727, 129),
                                                                 (0.5082216859, 123)]),
    case_of("SUB", "int8", ((4, 64, 64, 3), (64, 1, 3)), [(0.02, -128), (0.5, 127), (0.1, 0)], "RELU_N1_TO_1"),
    case_of("MUL", "uint8", ((2, 128, 128), (128,)), [(0.1, 3), (0.05, 250), (0.02, 128)], "RELU6"),
    case_of("MUL", "int8", ((128, 1, 128), (1, 128, 1)), [(0.1, -3), (0.2, 7), (0.5, 5)]),
    case_of("ADD", "int8", ((1, 64, 64, 8), (8,)), [(0.3, -20), (0.01, 100), (0.25, -1)], "RELU", constant_b=True),
]


@pytest.mark.parametrize("case", LARGE, ids=lambda c: f"{c['kind']}-{c['dtype']}-{c['shapes']}")
def test_large_outputs(case: Case) -> None:
    """Outputs of TABLE_MIN_SIZE elements or more are looked up: bit-exact with REF as well."""
    assert math.prod(np.broadcast_shapes(*case["shapes"])) >= TABLE_MIN_SIZE
    run_case(case)


@pytest.mark.parametrize("kernel", ["quantized_add", "quantized_sub", "quantized_mul"])
@pytest.mark.parametrize("dtype", sorted(TYPES))
def test_lookup_equals_formula(kernel: str, dtype: str) -> None:
    """The NumPy kernel's table lookup gives its formula's integers, broadcast and on strided views."""
    from npdeeplab.kernels.integer import elementwise

    rng = np.random.default_rng(7)
    info = np.iinfo(TYPES[dtype])
    if kernel == "quantized_mul":
        p: Any = elementwise.MulParams(-3, 7, 5, 1_500_000_000, -9, int(info.min), int(info.max))
        formula: Any = elementwise.mul_formula
    else:
        p = elementwise.AddSubParams(20, -3, 1 << 30, -1, 7, 1_300_000_000, -2, 5, 1_700_000_000, -18,
                                     int(info.min) + 2, int(info.max))
        formula = elementwise.add_formula if kernel == "quantized_add" else elementwise.sub_formula
    full = quantized_input(rng, (3, 80, 40, 6), TYPES[dtype])
    for a, b in [(full, full[:, ::-1]), (full[:, :, ::2], full[0, :1, :20]), (full[..., :1], full[0, 0, 0])]:
        got = elementwise.KERNELS[kernel](p, a, b)
        assert got.dtype == a.dtype and np.array_equal(got, formula(p, a, b))

"""Quantized AVERAGE_POOL_2D and MAX_POOL_2D (uint8, int8) against LiteRT's reference kernels.

Hypothesis draws the pool, the type, the window (global ones too), strides, padding, the fused
activation, scale (1e-5 to 10) and zero point (the range ends included); input and output share
them, as LiteRT requires. The one-op model runs on LiteRT BUILTIN_REF and every npdeeplab
backend, outputs identical. Failures found are kept as explicit regressions below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS
from hypothesis import given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, check, quantized_input, run_npdeeplab
from test_quantized_elementwise import ACTIVATIONS, TYPES, scales, zero_points

from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.ops.conv import output_size_and_padding

Case = dict[str, Any]


@st.composite
def pool_cases(draw: Callable) -> Case:
    dtype = draw(st.sampled_from(sorted(TYPES)))
    case: Case = {
        "kind": draw(st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"])),
        "dtype": dtype,
        "batch": draw(st.integers(1, 2)),
        "size": (draw(st.integers(1, 12)), draw(st.integers(1, 12))),
        "channels": draw(st.integers(1, 9)),
        "stride": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "quantization": (draw(scales()), draw(zero_points(dtype))),
        "seed": draw(st.integers(0, 2**16)),
    }
    if draw(st.integers(0, 4)) == 0:  # global pooling, or a window larger than the input (SAME)
        grow = draw(st.integers(0, 3)) if case["padding"] == "SAME" else 0
        case["filter"] = (case["size"][0] + grow, case["size"][1] + grow)
    else:
        case["filter"] = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
        if case["padding"] == "VALID":
            case["size"] = tuple(max(s, f) for s, f in zip(case["size"], case["filter"], strict=True))
    return case


def build(case: Case, output_quantization: Any = None) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    shape = (case["batch"], *case["size"], case["channels"])
    out_h, out_w = (
        output_size_and_padding(size, f, s, 1, case["padding"])[0]
        for size, f, s in zip(case["size"], case["filter"], case["stride"], strict=True)
    )
    b = GraphBuilder()
    x = b.add_input("x", shape, dtype, quantization=case["quantization"])
    y = b.add_op(
        case["kind"], [x],
        output_shape=(case["batch"], out_h, out_w, case["channels"]), output_dtype=dtype,
        output_quantization=output_quantization or case["quantization"],
        padding=case["padding"], stride_h=case["stride"][0], stride_w=case["stride"][1],
        filter_height=case["filter"][0], filter_width=case["filter"][1],
        fused_activation_function=case["activation"],
    )
    b.mark_outputs(y)
    return b, [quantized_input(rng, shape, dtype)]


@SETTINGS
@given(pool_cases())
def test_pool2d(case: Case) -> None:
    check(*build(case))


def case_of(kind: str, dtype: str, size: tuple[int, int], filter_: tuple[int, int], stride: tuple[int, int],
            padding: str, quantization: tuple[float, int], activation: str = "NONE", batch: int = 1,
            channels: int = 3) -> Case:
    return {"kind": kind, "dtype": dtype, "batch": batch, "size": size, "channels": channels, "stride": stride,
            "padding": padding, "activation": activation, "quantization": quantization, "seed": 7,
            "filter": filter_}


REGRESSIONS = [
    # The dm05 model's image pooling: a 33x33 global average of 160 channels.
    case_of("AVERAGE_POOL_2D", "uint8", (33, 33), (33, 33), (1, 1), "VALID", (0.1755664796, 131), channels=160),
    # int8 averages of negative sums round halves away from zero: windows of 2 and 4 cells.
    case_of("AVERAGE_POOL_2D", "int8", (4, 4), (2, 2), (2, 2), "VALID", (0.5, -128)),
    case_of("AVERAGE_POOL_2D", "int8", (5, 5), (2, 1), (1, 1), "SAME", (0.5, 127), "RELU"),
    # SAME padding with a window larger than the input: the count is only the cells inside.
    case_of("AVERAGE_POOL_2D", "uint8", (3, 2), (5, 6), (2, 3), "SAME", (1e-5, 255), "RELU6"),
    case_of("MAX_POOL_2D", "int8", (6, 7), (3, 3), (2, 2), "SAME", (10.0, -128), "RELU_N1_TO_1", batch=2),
    case_of("MAX_POOL_2D", "uint8", (1, 1), (1, 1), (4, 4), "VALID", (0.1, 0), "RELU"),
    # RELU6 6e9 steps of a 1e-9 scale, past int32: LiteRT's uint8 average pool refuses it at
    # Prepare (its int8 and max pools ignore the error and clamp to uninitialized bounds).
    case_of("AVERAGE_POOL_2D", "uint8", (2, 2), (2, 2), (1, 1), "VALID", (1e-9, 0), "RELU6"),
]


@pytest.mark.parametrize("case", REGRESSIONS, ids=lambda c: f"{c['kind']}-{c['dtype']}-{c['size']}-{c['filter']}")
def test_regressions(case: Case) -> None:
    check(*build(case))


@pytest.mark.parametrize(
    "output_quantization, message",
    [((0.2, 10), "must share scale and zero point"), ((0.1, 11), "must share scale and zero point")],
)
@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_unequal_quantization_refused(kind: str, output_quantization: Any, message: str) -> None:
    """LiteRT pools raw values, right only when input and output share scale and zero point; it
    checks so in debug builds only (and then computes garbage), npdeeplab refuses at load."""
    case = case_of(kind, "uint8", (4, 4), (2, 2), (2, 2), "VALID", (0.1, 10))
    model, inputs = build(case, output_quantization)
    for backend in BACKENDS:
        with pytest.raises(ModelError, match=message):
            run_npdeeplab(model.to_bytes(), inputs, backend)


@pytest.mark.parametrize("kind, dtype", [("MAX_POOL_2D", "uint8"), ("AVERAGE_POOL_2D", "int8")])
def test_activation_out_of_int32_refused(kind: str, dtype: str) -> None:
    case = case_of(kind, dtype, (2, 2), (2, 2), (1, 1), "VALID", (1e-9, 0), "RELU6")
    model, inputs = build(case)
    for backend in BACKENDS:
        with pytest.raises(ModelError, match="more than int32 holds"):
            run_npdeeplab(model.to_bytes(), inputs, backend)


def test_scales_within_litert_tolerance_run() -> None:
    """Scales within 1e-6 of each other (LiteRT's own tolerance) pool as equal ones."""
    case = case_of("AVERAGE_POOL_2D", "int8", (4, 4), (3, 3), (1, 1), "SAME", (0.1, -5))
    check(*build(case, (0.1 + 5e-7, -5)))

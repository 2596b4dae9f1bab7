"""Quantized MEAN (uint8, int8) against LiteRT's reference kernel (reference_ops::QuantizedMeanOrSum).

Hypothesis draws the type, a shape of rank 1 to 5, the axes (any non-empty list, negative and
repeated entries included, in any order; the builder cannot write an empty axis constant),
keep_dims, and input and output scales (1e-5 to 10, mostly within a few decades of each other)
and zero points (the range ends included). Outputs must be identical on LiteRT BUILTIN_REF and
every npdeeplab backend. Failures found are kept below.
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
from test_quantized_elementwise import TYPES, scales, zero_points

from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder

Case = dict[str, Any]


@st.composite
def mean_cases(draw: Callable) -> Case:
    dtype = draw(st.sampled_from(sorted(TYPES)))
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.sampled_from([1, 2, 3, 4, 5, 7] if rank <= 3 else [1, 2, 3])) for _ in range(rank))
    if rank == 4 and draw(st.booleans()):
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 17)), draw(st.integers(1, 17)), draw(st.integers(1, 9)))
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank + 1))
    if rank == 4 and draw(st.integers(0, 2)) == 0:
        axes = draw(st.sampled_from([[1, 2], [2, 1], [-3, -2]]))  # image pooling, the Numba twin's case
    s_in = draw(scales())
    s_out = s_in * 10 ** draw(st.floats(-2, 2)) if draw(st.integers(0, 3)) else draw(scales())
    return {
        "dtype": dtype,
        "shape": shape,
        "axes": axes,
        "keep_dims": draw(st.booleans()),
        "quantization": [(s_in, draw(zero_points(dtype))), (float(np.float32(s_out)), draw(zero_points(dtype)))],
        "seed": draw(st.integers(0, 2**16)),
    }


def output_shape(case: Case) -> tuple[int, ...]:
    rank = len(case["shape"])
    axes = {a % rank for a in case["axes"]}
    return tuple(1 if i in axes else d for i, d in enumerate(case["shape"]) if case["keep_dims"] or i not in axes)


def build(case: Case, axes_dtype: Any = np.int32) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = TYPES[case["dtype"]]
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], dtype, quantization=case["quantization"][0])
    axes = b.add_constant("axes", np.array(case["axes"], axes_dtype))
    y = b.add_op("MEAN", [x, axes], output_shape=output_shape(case), output_dtype=dtype,
                 output_quantization=case["quantization"][1], keep_dims=case["keep_dims"])
    b.mark_outputs(y)
    return b, [quantized_input(rng, case["shape"], dtype)]


@SETTINGS
@given(mean_cases())
def test_mean(case: Case) -> None:
    check(*build(case))


def case_of(dtype: str, shape: tuple[int, ...], axes: list[int], keep_dims: bool, quantization: Any) -> Case:
    return {"dtype": dtype, "shape": shape, "axes": axes, "keep_dims": keep_dims, "quantization": quantization,
            "seed": 3}


REGRESSIONS = [
    # Equal input and output quantization still takes the general rescaling path.
    case_of("uint8", (1, 33, 33, 16), [1, 2], True, [(0.17556648, 131), (0.17556648, 131)]),
    case_of("int8", (2, 5, 6, 3), [1, 2], False, [(0.02, -128), (0.5, 127)]),
    # N = 1000 (k = 9) and N a power of two (k = log2 N exactly).
    case_of("uint8", (10, 10, 10), [0, 1, 2], False, [(0.1, 255), (0.003, 0)]),
    case_of("int8", (4, 8, 8), [-1, 1, -2], True, [(1e-5, 0), (10.0, 5)]),
    # The output scale 1e5 times smaller: a left shift after the 1/N fold.
    case_of("int8", (3, 7), [1], True, [(10.0, -128), (1e-4, 127)]),
    # A repeated axis counts once (N = 3, not 9).
    case_of("uint8", (2, 3), [1, -1, 1], False, [(0.3, 100), (0.1, 0)]),
]


@pytest.mark.parametrize("case", REGRESSIONS, ids=lambda c: f"{c['dtype']}-{c['shape']}-{c['axes']}")
def test_regressions(case: Case) -> None:
    check(*build(case))


def test_int64_axes_refused() -> None:
    """reduce.cc requires an int32 axis tensor (LiteRT refuses int64 at Prepare)."""
    check(*build(case_of("uint8", (2, 3), [1], False, [(0.1, 0), (0.1, 0)]), axes_dtype=np.int64))


def test_undefined_shift_refused() -> None:
    """An input scale 2**31 times the output's would need x * (1 << 32) in LiteRT: undefined."""
    model, inputs = build(case_of("uint8", (2, 3), [0], False, [(10.0, 0), (1e-9, 0)]))
    for backend in BACKENDS:
        with pytest.raises(ModelError, match="undefined"):
            run_npdeeplab(model.to_bytes(), inputs, backend)

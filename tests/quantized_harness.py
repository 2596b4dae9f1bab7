"""The shared harness of the quantized differential tests: a one-op (or small) model from the
builder, run by LiteRT's reference kernels (BUILTIN_REF, the target of "bit-exact") and by
npdeeplab on every backend, outputs compared for exact equality. When LiteRT refuses a model,
npdeeplab must refuse it too, with a ModelError.

    from quantized_harness import SETTINGS, check, quantized_input, scales, zero_points
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, litert_module
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from npdeeplab import Interpreter
from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.writer import write_model

EXAMPLES = int(os.environ.get("NPDEEPLAB_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(
    derandomize=True,
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def run_litert(data: bytes, inputs: Sequence[np.ndarray], reference: bool = True) -> list[np.ndarray]:
    """LiteRT's outputs; reference=False for its optimized kernels without delegates."""
    lite = litert_module()
    resolver = lite.OpResolverType.BUILTIN_REF if reference else lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = lite.Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def run_npdeeplab(data: bytes, inputs: Sequence[np.ndarray], backend: str) -> list[np.ndarray]:
    interpreter = Interpreter(model_content=data, backend=backend)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def check(model: GraphBuilder | Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    """Run the model on LiteRT REF and npdeeplab (every backend); outputs must be identical, dtype
    and shape included. If LiteRT refuses the model, npdeeplab must raise ModelError; returns
    None then, else LiteRT's outputs."""
    data = model.to_bytes() if isinstance(model, GraphBuilder) else write_model(model)
    try:
        expected = run_litert(data, inputs)
    except (RuntimeError, ValueError) as refusal:
        for backend in BACKENDS:
            with pytest.raises(ModelError):
                run_npdeeplab(data, inputs, backend)
                pytest.fail(f"LiteRT refuses this model ({refusal}); npdeeplab ({backend}) ran it")
        return None
    for backend in BACKENDS:
        got = run_npdeeplab(data, inputs, backend)
        assert len(got) == len(expected)
        for ours, theirs in zip(got, expected, strict=True):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (backend, ours.dtype, theirs.dtype,
                                                                               ours.shape, theirs.shape)
            if not np.array_equal(ours, theirs):
                differ = np.flatnonzero(ours.reshape(-1) != theirs.reshape(-1))
                first = int(differ[0])
                gap = np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max()
                pytest.fail(
                    f"{backend}: {differ.size} of {ours.size} elements differ from LiteRT REF, the first at flat "
                    f"index {first}: ours {ours.reshape(-1)[first]}, LiteRT {theirs.reshape(-1)[first]}; "
                    f"max |diff| {gap}"
                )
    return expected


def quantized_input(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Values over the whole integer range, the ends included."""
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, shape, endpoint=True)
    flat = values.reshape(-1)
    if flat.size >= 2:
        flat[0], flat[-1] = info.min, info.max
    return values.astype(dtype)


QUANTIZED_TYPES = {"uint8": np.uint8, "int8": np.int8}


def scales() -> st.SearchStrategy[float]:
    """Log-uniform over [1e-5, 10] as float32, the ends included."""
    exponent = st.floats(-5, 1, allow_nan=False).map(lambda e: float(np.float32(10.0**e)))
    return st.one_of(exponent, st.sampled_from([1e-5, 10.0, 1.0]))


def zero_points(dtype: str) -> st.SearchStrategy[int]:
    """Zero points of an 8-bit type ("uint8", "int8"), the range ends drawn often."""
    info = np.iinfo(QUANTIZED_TYPES[dtype])
    return st.one_of(st.sampled_from([info.min, info.min + 1, info.max - 1, info.max]), st.integers(info.min, info.max))

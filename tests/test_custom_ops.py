"""Custom ops registered from Python: prepare gets the options bytes, the kernel runs on every
backend, its outputs are checked against what prepare said; unregistered custom ops are refused
at load with one line saying how to register them; custom options survive writing and extract."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import BACKENDS

import npdeeplab
from npdeeplab import CustomPrepared, ModelError, OpContext
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.tools.extract import extract_ops

NAME = "TestScaleAndShift"


def scale_and_shift_model(options: bytes = struct.pack("<ff", 3.0, 0.5)) -> bytes:
    """x -> CUSTOM (x * a + b, options two float32) -> RELU."""
    g = GraphBuilder()
    x = g.add_input("x", (2, 3), np.float32)
    y = g.add_op(f"CUSTOM:{NAME}", [x], output_shape=(2, 3), output_dtype=np.float32, custom_options=options)
    g.mark_outputs(g.add_op("RELU", [y]))
    return g.to_bytes()


def prepare(ctx: OpContext, options: bytes) -> CustomPrepared:
    ctx.expect_inputs(1)
    x = ctx.input(0)
    if len(options) != 8:
        ctx.fail(f"expected 8 bytes of options, got {len(options)}")
    return CustomPrepared(params=struct.unpack("<ff", options), output_shapes=[x.shape], output_dtypes=[x.dtype])


def kernel(params: tuple[float, float], x: np.ndarray) -> np.ndarray:
    scale, shift = params
    return x * np.float32(scale) + np.float32(shift)


@pytest.fixture
def registered() -> Iterator[None]:
    npdeeplab.register_custom_op(NAME, prepare=prepare, kernel=kernel,
                                 describe=lambda o: "a={} b={}".format(*struct.unpack("<ff", o)))
    yield
    npdeeplab.unregister_custom_op(NAME)


def run(data: bytes, x: np.ndarray, backend: str) -> np.ndarray:
    interpreter = npdeeplab.Interpreter(model_content=data, backend=backend)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_unregistered_custom_op_is_refused_with_how_to_register() -> None:
    with pytest.raises(ModelError) as error:
        npdeeplab.Interpreter(model_content=scale_and_shift_model())
    message = str(error.value)
    assert "\n" not in message
    assert f"CUSTOM:{NAME} (op 0)" in message and f"register_custom_op('{NAME}'" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_registered_custom_op_runs_with_its_options(registered: None, backend: str) -> None:
    x = np.array([[-1, 0, 1], [2, -3, 4]], np.float32)
    np.testing.assert_array_equal(run(scale_and_shift_model(), x, backend), np.maximum(x * 3 + 0.5, 0))


def test_prepare_refusal_names_the_op(registered: None) -> None:
    with pytest.raises(ModelError, match=r"op 0 \(CUSTOM:TestScaleAndShift\): expected 8 bytes of options, got 3"):
        npdeeplab.Interpreter(model_content=scale_and_shift_model(b"abc"))


def test_kernel_output_checked_against_prepare() -> None:
    npdeeplab.register_custom_op(NAME, prepare=prepare, kernel=lambda params, x: x[:1])
    try:
        interpreter = npdeeplab.Interpreter(model_content=scale_and_shift_model())
        interpreter.allocate_tensors()
        with pytest.raises(ModelError, match=r"op 0 \(CUSTOM:TestScaleAndShift\): output 0 of the kernel is "
                                             r"float32 \[1, 3\], prepare said float32 \[2, 3\]"):
            interpreter.invoke()
    finally:
        npdeeplab.unregister_custom_op(NAME)


def test_registering_twice_needs_replace(registered: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        npdeeplab.register_custom_op(NAME, prepare=prepare, kernel=kernel)
    npdeeplab.register_custom_op(NAME, prepare=prepare, kernel=lambda params, x: x, replace=True)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(run(scale_and_shift_model(), x, "numpy"), x)


def test_custom_options_survive_writing_and_extract() -> None:
    options = struct.pack("<ff", 3.0, 0.5)
    model = load_model(scale_and_shift_model(options))
    assert model.main.ops[0].custom_options == options
    assert load_model(write_model(model)).main.ops[0].custom_options == options
    part = extract_ops(model, 0, 0)
    assert part.model.main.ops[0].custom_options == options
    assert load_model(write_model(part.model)).main.ops[0].kind == f"CUSTOM:{NAME}"

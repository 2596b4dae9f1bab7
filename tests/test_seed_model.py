"""The seed model, npdeeplab against LiteRT: whole model and every op in isolation, both backends."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS, seed_input
from PIL import Image

import npdeeplab
from npdeeplab.runtime.backends import kernel_table

IMAGES = ["astronaut.png", "chelsea.png", "bird_segmentation.bmp"]


def preprocess(path) -> np.ndarray:
    """Written out here, independent of npdeeplab.segmentation.images: stretch to 257x257, then [-1, 1]."""
    image = Image.open(path).convert("RGB").resize((257, 257), Image.Resampling.BILINEAR)
    return ((np.asarray(image, dtype=np.float32) - 127.5) / 127.5)[None]


def run(interpreter, x: np.ndarray) -> np.ndarray:
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def reference(litert, seed_model_path):
    Interpreter, OpResolverType = litert
    interpreter = Interpreter(
        model_path=str(seed_model_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return lambda x: run(interpreter, x)


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, seed_model_path):
    interpreter = npdeeplab.Interpreter(model_path=seed_model_path, backend=request.param)
    return lambda x: run(interpreter, x)


def assert_close_to_litert(ours: np.ndarray, theirs: np.ndarray) -> None:
    difference = float(np.abs(ours - theirs).max())
    agreement = float((ours.argmax(-1) == theirs.argmax(-1)).mean())
    assert difference <= 1e-4, f"max |logit difference| {difference:.3g} > 1e-4"
    assert agreement >= 0.9999, f"argmax agreement {agreement:.6f} < 99.99%"


@pytest.mark.parametrize("name", IMAGES)
def test_every_shared_image_matches_litert(engine, reference, image_path, name):
    x = preprocess(image_path(name))
    assert_close_to_litert(engine(x), reference(x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_match_litert(engine, reference, seed):
    x = seed_input(seed)
    assert_close_to_litert(engine(x), reference(x))


@pytest.fixture(scope="module")
def litert_tensors(litert, seed_model_path, image_path):
    """Every tensor LiteRT computed on a real image (intermediates preserved, no delegate)."""
    Interpreter, OpResolverType = litert
    interpreter = Interpreter(
        model_path=str(seed_model_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    run(interpreter, preprocess(image_path("astronaut.png")))
    ops = interpreter._get_ops_details()
    tensors = {i: interpreter.get_tensor(i) for op in ops for i in [*op["inputs"], *op["outputs"]] if i != -1}
    return ops, tensors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op_index", range(70))
def test_each_op_in_isolation_matches_litert(backend, op_index, litert_tensors, seed_model_path):
    """Feed the op exactly what LiteRT's op saw; its output must match to float rounding."""
    ops, tensors = litert_tensors
    interpreter = npdeeplab.Interpreter(model_path=seed_model_path, backend=backend)
    step = interpreter.ops[op_index]
    assert ops[op_index]["op_name"] == step.op.kind
    inputs = [None if i == -1 else tensors[i] for i in step.inputs]
    ours = kernel_table(backend)[step.kernel](step.params, *inputs)
    theirs = tensors[step.op.outputs[0]]
    error = float(np.abs(ours - theirs).max())
    scale = float(np.abs(theirs).max())
    assert ours.shape == theirs.shape
    assert error <= 1e-5 * scale, f"op {op_index} {step.op.kind}: max |error| {error:.3g} > 1e-5 x {scale:.3g}"

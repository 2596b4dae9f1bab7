"""float16-weight models (GPU models): DEQUANTIZE of constant float16 weights is done once at load,
the graph runs in float32 and agrees with LiteRT."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from test_deeplab_variants import DeepLabBuilder, run_litert

from npdeeplab import Interpreter
from npdeeplab.tools.summary import summarize

TOLERANCE = 1e-4


class Float16DeepLab(DeepLabBuilder):
    """DeepLab with every weight stored as float16 and widened by a DEQUANTIZE op, as GPU models are."""

    def weights(self, shape: tuple[int, ...], fan_in: int) -> int:
        values = (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float16)
        stored = self.b.add_constant(f"w{len(self.b.tensors)}_fp16", values)
        return self.b.add_op("DEQUANTIZE", [stored], output_shape=shape, output_dtype=np.float32)


def float16_deeplab(size: int = 129) -> Float16DeepLab:
    net = Float16DeepLab(size, seed=5)
    features, _ = net.backbone(16)
    net.logits(net.aspp(features, (6, 12, 18), "MEAN"))
    return net


@pytest.fixture(scope="module")
def model() -> bytes:
    return float16_deeplab().b.to_bytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_deeplab_agrees_with_litert(model, backend, litert):
    _, OpResolverType = litert
    image = np.random.default_rng(0).uniform(-1, 1, (1, 129, 129, 3)).astype(np.float32)
    interpreter = Interpreter(model_content=model, backend=backend)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    ours = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    for resolver in (OpResolverType.BUILTIN_REF, OpResolverType.AUTO):
        theirs = run_litert(model, image, resolver)
        scale = max(1.0, float(np.abs(theirs).max()))
        assert np.abs(ours - theirs).max() <= TOLERANCE * scale, resolver


def test_dequantize_of_float16_weights_is_folded_at_load(model):
    interpreter = Interpreter(model_content=model)
    dequantizes = [op.index for op in interpreter.model.main.ops if op.kind == "DEQUANTIZE"]
    assert len(dequantizes) > 20 and interpreter.folded_ops == tuple(dequantizes)
    assert all(step.op.kind != "DEQUANTIZE" for step in interpreter.ops)
    assert len(interpreter._get_ops_details()) == len(interpreter.model.main.ops)  # LiteRT lists them all
    weights = interpreter.tensors[interpreter.model.main.ops[dequantizes[0]].outputs[0]]
    assert weights.is_constant and weights.dtype == np.float32


def test_inspect_says_which_tensors_were_float16(model):
    summary = summarize(Interpreter(model_content=model))
    assert summary.numerics == "float16-weight" and summary.problem is None
    text = summary.to_text()
    count = sum(1 for op in Interpreter(model_content=model).model.main.ops if op.kind == "DEQUANTIZE")
    assert f"float16     {count} weight tensors stored as float16, widened to float32 once at load" in text

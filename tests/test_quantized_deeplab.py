"""Converter-style int8 DeepLabs, made from the float synthetic DeepLabs by tests/post_training.py
(int8 weights per channel, int32 biases, int8 activations from calibration ranges), with float
input and output through QUANTIZE/DEQUANTIZE and with int8 input and output: every op's output
identical to LiteRT's reference kernels, on both backends."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from post_training import quantize_graph
from test_deeplab_variants import deeplab_v3, deeplab_v3_plus

import npdeeplab
from npdeeplab.model.writer import save_model
from npdeeplab.tools.comparison import compare_with_litert

SIZE = 129
VARIANTS = {
    "v3plus-decoder-mean": lambda: deeplab_v3_plus(SIZE, "MEAN", seed=3),
    "v3-os8-average-pool": lambda: deeplab_v3(SIZE, 8, "AVERAGE_POOL_2D", seed=1),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def float_model(request):
    return request.param, VARIANTS[request.param]().build()


@pytest.mark.parametrize("io", ["float", "int8"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_deeplab_bit_exact_op_by_op(float_model, io, backend, tmp_path, litert):
    name, model = float_model
    rng = np.random.default_rng(0)
    calibration = [rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32) for _ in range(3)]
    quantized = quantize_graph(model, calibration, io=io).build()
    kinds = {op.kind for op in quantized.main.ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_BILINEAR", "CONCATENATION"} <= kinds
    assert ("QUANTIZE" in kinds and "DEQUANTIZE" in kinds) == (io == "float")
    first_conv = next(op for op in quantized.main.ops if op.kind == "CONV_2D")
    weights = quantized.main.tensors[first_conv.inputs[1]]
    assert weights.dtype == np.int8 and weights.quantization.per_channel
    path = save_model(quantized, tmp_path / f"{name}_{io}.tflite")
    interpreter = npdeeplab.Interpreter(model_path=path, backend=backend)
    x = calibration[0] if io == "float" else rng.integers(-128, 128, (1, SIZE, SIZE, 3)).astype(np.int8)
    for isolate in (False, True):
        result = compare_with_litert(interpreter, x, reference="litert-ref", isolate=isolate, atol=0, rtol=0,
                                     reference_model=path)
        assert len(result.rows) == len(quantized.main.ops) and not result.exceeded, result.to_text()

"""Segmentation with quantized models: inputs quantized from the image as the model's input tensor
(or its registry entry) says, quantized scores dequantized before they are read."""

from __future__ import annotations

import numpy as np
import pytest

import npdeeplab
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.segmentation import model_spec, segment
from npdeeplab.segmentation.images import load_image, to_model_input


def test_quantized_input_is_the_normalised_image_quantized():
    picture = load_image(np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3) * 5)
    real = to_model_input(picture, (4, 4), np.float32, 127.5, 127.5)
    quantized = to_model_input(picture, (4, 4), np.int8, 127.5, 127.5, quantization=(1 / 127.5, -1))
    steps = (real / np.float32(1 / 127.5)).astype(np.float64)
    expected = np.clip(np.trunc(steps + np.copysign(0.5, steps)) - 1, -128, 127)  # halves away from zero
    np.testing.assert_array_equal(quantized, expected.astype(np.int8))
    raw = to_model_input(picture, (4, 4), np.uint8)  # no quantization: the pixels as they are
    np.testing.assert_array_equal(raw[0], np.asarray(picture))


def raw_value_model(tmp_path):
    """uint8 in (real [-1, 1]), PAD to keep the size, uint8 scores out with a scale of their own."""
    g = GraphBuilder()
    x = g.add_input("image", (1, 8, 8, 3), np.uint8, quantization=(1 / 128, 128))
    paddings = g.add_constant("paddings", np.zeros((4, 2), np.int32))
    g.mark_outputs(g.add_op("PAD", [x, paddings], output_quantization=(1 / 128, 128)))
    return g.save(tmp_path / "quantized_scores.tflite")


def test_quantized_scores_are_dequantized_before_the_argmax(tmp_path, image_path):
    path = raw_value_model(tmp_path)
    interpreter = npdeeplab.Interpreter(model_path=path)
    spec = model_spec(interpreter, None)
    assert spec.input_quantization == (1 / 128, 128) and spec.output_quantization == (1 / 128, 128)
    assert (spec.mean, spec.std) == (127.5, 127.5)
    result = segment(image_path("chelsea.png"), path)
    assert result.logits.dtype == np.float32 and -1.01 <= result.logits.min() and result.logits.max() <= 1.0
    assert result.class_names == ("class_0", "class_1", "class_2")
    assert result.areas()[0].name == "class_0"  # the cat is red: the red channel wins


@pytest.mark.parametrize("name", ["deeplabv3_mnv2_dm05_pascal_quant"])
def test_registry_entry_feeds_raw_pixels(name, shared_models_dir):
    from npdeeplab.zoo import get_entry

    assert get_entry(name).raw_pixels

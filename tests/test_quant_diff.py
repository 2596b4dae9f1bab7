"""quant-diff: a float model against its int8 twin, layer by layer (npdeeplab.tools.quant_diff).

The twin is quantized converter-style by tests/post_training.py (per-channel weights, calibrated
activations); in one variant one activation's scale is 16x coarser, and that layer must rank first
by isolated SNR.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import shared_file
from post_training import quantize_graph

from npdeeplab import Interpreter
from npdeeplab.cli import main
from npdeeplab.errors import InputError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Model
from npdeeplab.model.writer import save_model
from npdeeplab.tools.quant_diff import model_explorer_node_data, paired_random_inputs, quant_diff

SIZE = (1, 16, 16, 3)
COARSE_OP = 3  # in the io="float" twin: QUANTIZE, CONV, DEPTHWISE, CONV (this one, feeding an ADD), ...


def small_float_model(seed: int = 0) -> Model:
    """CONV_2D, DEPTHWISE_CONV_2D, ADD and RELU6 in two residual blocks."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(description="quant-diff test model")

    def conv(x: int, cin: int, cout: int, k: int = 1, stride: int = 1, act: str = "NONE") -> int:
        w = b.add_constant(f"w{len(b.ops)}", rng.normal(0, 0.4, (cout, k, k, cin)).astype(np.float32))
        bias = b.add_constant(f"b{len(b.ops)}", rng.normal(0, 0.1, (cout,)).astype(np.float32))
        return b.add_op("CONV_2D", [x, w, bias], padding="SAME", stride_h=stride, stride_w=stride,
                        fused_activation_function=act)

    def depthwise(x: int, c: int) -> int:
        w = b.add_constant(f"w{len(b.ops)}", rng.normal(0, 0.4, (1, 3, 3, c)).astype(np.float32))
        bias = b.add_constant(f"b{len(b.ops)}", rng.normal(0, 0.1, (c,)).astype(np.float32))
        return b.add_op("DEPTHWISE_CONV_2D", [x, w, bias], padding="SAME", stride_h=1, stride_w=1,
                        depth_multiplier=1, fused_activation_function="RELU6")

    x = b.add_input("image", SIZE)
    y0 = conv(x, 3, 8, k=3, stride=2, act="RELU6")
    y1 = b.add_op("RELU6", [b.add_op("ADD", [y0, conv(depthwise(y0, 8), 8, 8)])])
    y2 = b.add_op("ADD", [y1, conv(depthwise(y1, 8), 8, 8)])
    b.mark_outputs(conv(y2, 8, 4))
    return b.build()


def int8_twin(model: Model, io: str = "float", coarse_op: int | None = None) -> Model:
    calibration = [np.random.default_rng(100 + s).uniform(-1, 1, SIZE).astype(np.float32) for s in range(8)]
    twin = quantize_graph(model, calibration, io=io).build()
    return twin if coarse_op is None else coarser(twin, coarse_op, 16)


def coarser(model: Model, op: int, factor: float) -> Model:
    """model with op's output scale multiplied by factor (its zero point kept)."""
    graph = model.main
    index = graph.ops[op].outputs[0]
    tensors = list(graph.tensors)
    quantization = tensors[index].quantization
    tensors[index] = dataclasses.replace(
        tensors[index], quantization=dataclasses.replace(quantization, scale=quantization.scale * factor))
    return dataclasses.replace(model, subgraphs=(dataclasses.replace(graph, tensors=tuple(tensors)),))


def run(float_model: Model, quant_model: Model, count: int = 3) -> tuple:
    f, q = Interpreter(model=float_model, backend="numpy"), Interpreter(model=quant_model, backend="numpy")
    return quant_diff(f, q, paired_random_inputs(f, q, count)), q


@pytest.fixture(scope="module")
def float_model() -> Model:
    return small_float_model()


def test_the_coarse_layer_ranks_first_and_is_kept_in_float(float_model: Model) -> None:
    result, _ = run(float_model, int8_twin(float_model, coarse_op=COARSE_OP))
    worst = result.layers[0]
    assert (worst.index, worst.kind, worst.tensor) == (COARSE_OP, "CONV_2D", "conv_2d_3")
    assert worst.keep_float and COARSE_OP in [layer.index for layer in result.keep_float]
    clean, _ = run(float_model, int8_twin(float_model))
    before = next(layer for layer in clean.layers if layer.index == COARSE_OP)
    # 16x the step: noise power 256x, about 24 dB, where the output's rounding dominates
    assert before.isolated.snr_db - worst.isolated.snr_db > 15
    snrs = [layer.isolated.snr_db for layer in result.layers]
    assert snrs == sorted(snrs)


def test_a_clean_twin_matches_every_layer_and_keeps_none_in_float(float_model: Model) -> None:
    result, _ = run(float_model, int8_twin(float_model))
    assert len(result.layers) == 9 and not result.unmatched and result.problem is None
    assert {layer.matched_by for layer in result.layers} == {"graph position"}  # the names are shifted by one
    assert result.keep_float == []
    for layer in result.layers:
        assert layer.isolated.snr_db > 20 and layer.isolated.cosine > 0.99
        assert layer.isolated.mean_lsb < 1 and layer.scale is not None
        assert layer.isolated.snr_db >= layer.accumulated.snr_db - 0.5  # the whole run only adds error


def test_the_first_layer_isolated_is_the_first_layer_accumulated(float_model: Model) -> None:
    """Right after QUANTIZE the two runs feed the op the same integers: the figures agree exactly."""
    result, _ = run(float_model, int8_twin(float_model))
    first = next(layer for layer in result.layers if layer.index == 1)
    assert first.isolated == first.accumulated


def test_int8_inputs_are_the_float_inputs_quantized_and_names_match(float_model: Model) -> None:
    twin = int8_twin(float_model, io="int8", coarse_op=2)
    f, q = Interpreter(model=float_model), Interpreter(model=twin)
    pairs = paired_random_inputs(f, q, 2, seed=5)
    scale, zero_point = (float(v[0]) for v in (twin.main.tensors[twin.main.inputs[0]].quantization.scale,
                                                twin.main.tensors[twin.main.inputs[0]].quantization.zero_point))
    for x, xq in pairs:
        assert xq.dtype == np.int8 and x.dtype == np.float32
        inside = (x >= (-128 - zero_point) * scale) & (x <= (127 - zero_point) * scale)  # not saturated
        assert np.abs((xq.astype(np.float64) - zero_point) * scale - x)[inside].max() <= scale / 2 + 1e-7
    result = quant_diff(f, q, pairs)
    assert {layer.matched_by for layer in result.layers} == {"name"} and len(result.layers) == 9
    assert result.layers[0].index == 2


def test_a_layer_with_other_weights_is_reported_unmatched(float_model: Model) -> None:
    other = small_float_model(seed=7)  # the same graph, other weights
    graph = float_model.main
    tensors = list(graph.tensors)
    weights = graph.ops[2].inputs[1]  # the first block's 1x1 conv
    tensors[weights] = other.main.tensors[weights]
    mixed = dataclasses.replace(float_model, subgraphs=(dataclasses.replace(graph, tensors=tuple(tensors)),))
    result, _ = run(float_model, int8_twin(mixed, io="int8"))  # int8 io: the same names, op for op
    assert any(line.startswith("quantized op 2 CONV_2D ('conv_2d_2'") for line in result.unmatched)
    assert any(line.startswith("float op 2 CONV_2D ('conv_2d_2')") for line in result.unmatched)
    assert 2 not in [layer.index for layer in result.layers] and len(result.layers) == 8
    add = next(layer for layer in result.layers if layer.index == 3)  # matched by name; an input has no partner
    assert add.isolated is None and any("op 3 ADD" in note for note in result.notes)
    # Without names: the ADD after it is matched by its place among the ADDs, and the rest by graph position.
    by_position, _ = run(float_model, int8_twin(mixed))
    assert sorted(layer.index for layer in by_position.layers) == [1, 2, 4, 5, 6, 7, 8, 9]
    assert {layer.matched_by for layer in by_position.layers if layer.index == 4} == {"op order"}
    assert len(by_position.unmatched) == 2 and by_position.problem is None


def test_two_different_networks_are_no_pair(float_model: Model) -> None:
    result, _ = run(float_model, int8_twin(small_float_model(seed=3)))  # the same graph, other weights
    assert result.problem is not None and "do not correspond layer by layer" in result.to_text()
    assert len(result.layers) < 9 // 2 + 1 and "keep in float" not in result.to_text()
    b = GraphBuilder()
    b.mark_outputs(b.add_op("RELU6", [b.add_input("image", SIZE)]))
    with pytest.raises(InputError, match="not a float/quantized pair"):
        run(b.build(), int8_twin(float_model))


def test_model_explorer_node_data(float_model: Model) -> None:
    result, q = run(float_model, int8_twin(float_model, coarse_op=COARSE_OP))
    data = model_explorer_node_data(result, q)
    assert list(data) == ["main"]
    graph = data["main"]
    assert len(graph["results"]) == 9
    values = {key: entry["value"] for key, entry in graph["results"].items()}
    assert min(values, key=values.get) == "conv_2d_3"
    assert graph["thresholds"][0]["value"] == pytest.approx(result.threshold_db, abs=1e-3)
    assert [t["value"] for t in graph["thresholds"]] == sorted(t["value"] for t in graph["thresholds"])
    json.dumps(data, allow_nan=False)


def test_cli_json_and_model_explorer(float_model: Model, tmp_path, capsys) -> None:
    float_path = save_model(float_model, tmp_path / "float.tflite")
    quant_path = save_model(int8_twin(float_model, coarse_op=COARSE_OP), tmp_path / "quant.tflite")
    overlay = tmp_path / "overlay.json"
    status = main(["quant-diff", str(float_path), str(quant_path), "--random", "2", "--json",
                   "--model-explorer", str(overlay), "--backend", "numpy"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    first = report["layers"][0]
    assert (first["op_index"], first["output_tensor"], first["keep_float"]) == (COARSE_OP, "conv_2d_3", True)
    assert set(first["isolated"]) == {"mean_error_lsb", "max_error_lsb", "snr_db", "cosine"}
    assert report["keep_float"][0] == COARSE_OP and "below the median" in report["rule"]
    snrs = [layer["isolated"]["snr_db"] for layer in report["layers"]]
    assert snrs == sorted(snrs)
    assert "conv_2d_3" in json.loads(overlay.read_text())["main"]["results"]
    status = main(["quant-diff", str(float_path), str(quant_path), "--random", "1", "--backend", "numpy"])
    text = capsys.readouterr().out
    assert status == 0 and "keep in float: op 3 CONV_2D 'conv_2d_3'" in text


def test_cli_errors_are_one_line(float_model: Model, tmp_path, capsys) -> None:
    float_path = save_model(float_model, tmp_path / "float.tflite")
    quant_path = save_model(int8_twin(float_model), tmp_path / "quant.tflite")
    assert main(["quant-diff", str(float_path), str(quant_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    other = GraphBuilder()
    x = other.add_input("image", (1, 8, 8, 3))
    other.mark_outputs(other.add_op("RELU6", [x]))
    small = save_model(other.build(), tmp_path / "small.tflite")
    assert main(["quant-diff", str(small), str(quant_path), "--random", "1"]) == 2
    assert "differ in shape" in capsys.readouterr().err


def test_the_shared_models_are_no_layer_by_layer_pair(capsys) -> None:
    """deeplabv3_257_mv_gpu (float, 257x257, output stride 8) and deeplabv3_mnv2_dm05_pascal_quant
    (uint8, 513x513, output stride 16) carry the same trained weights (cosine 0.9997), but their
    input sizes, shapes and dilations differ: only a few 1x1 layers match, and no ranking is given."""
    float_path = shared_file("models", "deeplabv3_257_mv_gpu.tflite")
    quant_path = shared_file("models", "deeplabv3_mnv2_dm05_pascal_quant.tflite")
    image = shared_file("images", "astronaut.png")
    assert main(["quant-diff", str(float_path), str(quant_path), str(image)]) == 1
    out = capsys.readouterr().out
    assert "do not correspond layer by layer" in out
    assert main(["quant-diff", str(float_path), str(quant_path), "--random", "1"]) == 2
    assert "differ in shape" in capsys.readouterr().err


def test_images_are_preprocessed_for_each_model(float_model: Model, tmp_path, capsys) -> None:
    """Images go through each model's own preprocessing; the default backend runs the isolated ops."""
    float_path = save_model(float_model, tmp_path / "float.tflite")
    quant_path = save_model(int8_twin(float_model, coarse_op=COARSE_OP), tmp_path / "quant.tflite")
    images = [str(shared_file("images", name)) for name in ("astronaut.png", "chelsea.png")]
    assert main(["quant-diff", str(float_path), str(quant_path), *images, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == 2 and report["layers"][0]["op_index"] == COARSE_OP

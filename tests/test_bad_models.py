"""Bad models fail at load time with one ModelError that names the problem; the CLI turns it into
one line on stderr and exit code 2, and writes nothing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npdeeplab
from npdeeplab.cli import main
from npdeeplab.errors import InputError, ModelError, ModelNotFoundError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.model.options import AddOptions, Conv2DOptions
from npdeeplab.model.writer import write_model

RNG = np.random.default_rng(7)


def conv_model() -> GraphBuilder:
    g = GraphBuilder()
    x = g.add_input("image", (1, 8, 8, 3))
    w = g.add_constant("weights", RNG.standard_normal((4, 3, 3, 3)).astype(np.float32))
    b = g.add_constant("bias", RNG.standard_normal(4).astype(np.float32))
    g.mark_outputs(g.add_op("CONV_2D", [x, w, b], name="conv"))
    return g


def with_op(model, **changes):
    graph = model.main
    ops = (dataclasses.replace(graph.ops[0], **changes), *graph.ops[1:])
    return dataclasses.replace(model, subgraphs=(dataclasses.replace(graph, ops=ops),))


def with_tensor(model, index, **changes):
    graph = model.main
    tensors = list(graph.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return dataclasses.replace(model, subgraphs=(dataclasses.replace(graph, tensors=tuple(tensors)),))


def load_error(content: bytes) -> str:
    with pytest.raises(ModelError) as caught:
        npdeeplab.Interpreter(model_content=content)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_valid_builder_model_loads():
    assert npdeeplab.Interpreter(model_content=conv_model().to_bytes()).ops[0].op.kind == "CONV_2D"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.tflite"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match="the file is empty"):
        load_model(path)


def test_truncated_model(seed_model_path):
    message = load_error(seed_model_path.read_bytes()[:1000])
    assert "malformed" in message or "past the end" in message or "buffer" in message


@pytest.mark.parametrize("identifier", [None, b"TFL3"])
def test_random_bytes(identifier):
    data = bytearray(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    if identifier:
        data[4:8] = identifier
        assert "malformed" in load_error(bytes(data))
    else:
        assert "file identifier" in load_error(bytes(data))


def test_wrong_identifier():
    data = bytearray(conv_model().to_bytes())
    data[4:8] = b"ONNX"
    message = load_error(bytes(data))
    assert "b'ONNX'" in message and "expected b'TFL3'" in message


def test_missing_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        npdeeplab.Interpreter(model_path=tmp_path / "nope.tflite")


def test_unsupported_ops_are_listed_together_with_their_indices():
    g = conv_model()
    y = g.outputs[0]
    z = g.add_op("SVDF", [y], output_shape=(1, 8, 8, 4), output_dtype=np.float32)
    z = g.add_op("LSTM", [z], output_shape=(1, 8, 8, 4), output_dtype=np.float32)
    z = g.add_op("SVDF", [z], output_shape=(1, 8, 8, 4), output_dtype=np.float32)
    g.outputs = [z]
    message = load_error(g.to_bytes())
    assert "2 op kinds npdeeplab does not support" in message
    assert "SVDF (2 ops: 1, 3)" in message and "LSTM (op 2)" in message
    assert "npdeeplab inspect --ops" in message and "CONV_2D" not in message  # the supported list is elsewhere


def test_unsupported_op_lists_are_capped():
    g = conv_model()
    z = g.outputs[0]
    for _ in range(12):
        z = g.add_op("SVDF", [z], output_shape=(1, 8, 8, 4), output_dtype=np.float32)
    g.outputs = [z]
    assert "SVDF (12 ops: 1, 2, 3 … and 9 more)" in load_error(g.to_bytes())


def test_tensor_index_out_of_range():
    model = with_op(conv_model().build(), inputs=(0, 99, 2))
    message = load_error(write_model(model))
    assert "op 0 (CONV_2D) input 1 refers to tensor 99, out of range 0..3" in message


def test_constant_buffer_of_the_wrong_size():
    model = conv_model().build()
    short = np.zeros(4 * 3 * 3 * 3 - 1, np.float32)
    message = load_error(write_model(with_tensor(model, 1, data=short)))
    assert "tensor 1 ('weights')" in message and "holds 428 bytes, expected 432" in message


def test_filter_channels_that_do_not_match_the_input():
    model = conv_model().build()
    wrong = RNG.standard_normal((4, 3, 3, 2)).astype(np.float32)
    message = load_error(write_model(with_tensor(model, 1, data=wrong, shape=(4, 3, 3, 2))))
    assert message.startswith("op 0 (CONV_2D):") and "3 channels" in message and "'weights'" in message


def test_declared_output_shape_that_disagrees():
    model = with_tensor(conv_model().build(), 3, shape=(1, 8, 8, 5), shape_signature=(1, 8, 8, 5))
    message = load_error(write_model(model))
    assert "output 0 (tensor 3 'conv') is declared with shape [1, 8, 8, 5], but the op produces [1, 8, 8, 4]" in message


def test_an_op_reading_a_tensor_nobody_computes():
    g = conv_model()
    dangling = g.add_tensor("dangling", (1, 8, 8, 4))
    g.add_op("ADD", [g.outputs[0], dangling], output_shape=(1, 8, 8, 4), output_dtype=np.float32)
    message = load_error(write_model(g.build()))
    assert "op 1 (ADD): input 1 (tensor 4 'dangling') is neither a constant" in message


def test_bad_options_name_the_op():
    model = with_op(conv_model().build(), options=Conv2DOptions(stride_h=0))
    assert "op 0 (CONV_2D): strides (0, 1)" in load_error(write_model(model))


def test_set_tensor_checks_dtype_shape_and_index():
    it = npdeeplab.Interpreter(model_content=conv_model().to_bytes())
    it.allocate_tensors()
    with pytest.raises(InputError, match=r"tensor 0 'image': got float64, expected float32"):
        it.set_tensor(0, np.zeros((1, 8, 8, 3)))
    with pytest.raises(InputError, match=r"got shape \[1, 8, 8, 4\], expected \[1, 8, 8, 3\]"):
        it.set_tensor(0, np.zeros((1, 8, 8, 4), np.float32))
    with pytest.raises(InputError, match="is a constant"):
        it.set_tensor(1, np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(InputError, match="out of range"):
        it.get_tensor(9999)


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "npdeeplab", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    return result.returncode, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("npdeeplab: compiling")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("npdeeplab: error: ") and "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "content, fragment",
    [(b"", "empty"), (b"\x00" * 64, "file identifier"), (b"not a model at all, just text", "file identifier")],
)
def test_cli_on_bad_model_files(tmp_path, content, fragment):
    model = tmp_path / "bad.tflite"
    model.write_bytes(content)
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(image)
    before = sorted(tmp_path.iterdir())
    code, _, stderr = cli("segment", str(image), "--model", str(model), "-o", "mask.png", cwd=tmp_path)
    assert_one_line_error(code, stderr, fragment)
    assert sorted(tmp_path.iterdir()) == before  # nothing written
    code, _, stderr = cli("inspect", str(model), cwd=tmp_path)
    assert_one_line_error(code, stderr, fragment)


def test_cli_unsupported_ops_in_process(tmp_path, capsys):
    g = conv_model()
    g.outputs = [g.add_op("SVDF", [g.outputs[0]], output_shape=(1, 8, 8, 4), output_dtype=np.float32)]
    path = tmp_path / "svdf.tflite"
    g.save(path)
    assert main(["trace", str(path), "--random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SVDF (op 1)" in err
    assert main(["inspect", str(path)]) == 0  # it reads the model, so it shows it, and says why it cannot run
    captured = capsys.readouterr()
    assert captured.err == "" and "runs        no, shapes as declared in the file: " in captured.out


@pytest.mark.parametrize(
    "kind, options",
    [("CONV_2D", None), ("CONV_2D", AddOptions()), ("DEPTHWISE_CONV_2D", None), ("AVERAGE_POOL_2D", None)],
)
def test_missing_or_foreign_options_tables(litert, kind, options):
    """LiteRT refuses these (stride 0 from the defaults); so must we, with a ModelError, not a crash."""
    g = GraphBuilder()
    x = g.add_input("image", (1, 8, 8, 3))
    if kind == "AVERAGE_POOL_2D":
        g.mark_outputs(g.add_op(kind, [x], filter_height=2, filter_width=2))
    else:
        weights = (4, 3, 3, 3) if kind == "CONV_2D" else (1, 3, 3, 3)
        w = g.add_constant("weights", RNG.standard_normal(weights).astype(np.float32))
        b = g.add_constant("bias", RNG.standard_normal(weights[0] if kind == "CONV_2D" else 3).astype(np.float32))
        g.mark_outputs(g.add_op(kind, [x, w, b]))
    content = write_model(with_op(g.build(), options=options))
    with pytest.raises(RuntimeError, match="> 0 was not true"):
        litert[0](model_content=content).allocate_tensors()
    message = load_error(content)
    assert message.startswith(f"op 0 ({kind}): expected ") and "options" in message.lower()


def test_a_dilation_litert_refuses_is_refused_at_load(litert):
    model = with_op(conv_model().build(), options=Conv2DOptions(dilation_h_factor=2**24))
    content = write_model(model)
    resolver = litert[1].BUILTIN_REF  # XNNPACK takes the op and skips the check; LiteRT's own kernel refuses it
    with pytest.raises(RuntimeError, match="INT16_MAX"):
        litert[0](model_content=content, experimental_op_resolver_type=resolver).allocate_tensors()
    assert "dilation (16777216, 1) is over 32767" in load_error(content)


def test_options_missing_where_defaults_are_valid_are_filled_in():
    """An ADD without its table is an ADD with no activation, as LiteRT's parser reads it."""
    g = GraphBuilder()
    x = g.add_input("x", (1, 4))
    g.mark_outputs(g.add_op("ADD", [x, g.add_constant("one", np.ones((1, 4), np.float32))]))
    it = npdeeplab.Interpreter(model_content=write_model(with_op(g.build(), options=None)))
    it.allocate_tensors()
    it.set_tensor(0, np.full((1, 4), -3, np.float32))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).tolist() == [[-2.0] * 4]

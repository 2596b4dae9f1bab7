"""The loader's handling of the flatbuffer's less common corners, checked against LiteRT where it runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tflite
from conftest import litert_module, shared_file

import npdeeplab
import npdeeplab.model.writer as writer
from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model


def run(interpreter_class, content: bytes, x: np.ndarray) -> np.ndarray:
    it = interpreter_class(model_content=content)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def small_model() -> GraphBuilder:
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    x = g.add_input("image", (1, 9, 9, 3))
    w = g.add_constant("weights", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    b = g.add_constant("bias", rng.standard_normal(4).astype(np.float32))
    y = g.add_op("CONV_2D", [x, w, b], name="conv", padding="SAME", fused_activation_function="RELU6")
    g.mark_outputs(y)
    return g


def test_buffers_stored_after_the_flatbuffer_load_zero_copy_and_run_like_litert():
    """The >2 GB layout: buffers hold (offset, size) into the file instead of inline data."""
    path = shared_file("models", "deeplabv3_257_mv_gpu.tflite")
    original = load_model(path)
    content = write_model(original, external_buffers=True)
    root = tflite.Model.GetRootAsModel(content, 0)
    assert any(root.Buffers(i).Offset() > 1 for i in range(root.BuffersLength())), "no external buffer written"
    external = load_model(content)
    for a, b in zip(original.main.tensors, external.main.tensors, strict=True):
        assert (a.data is None) == (b.data is None)
        if a.data is not None:
            np.testing.assert_array_equal(a.data, b.data)
            assert not b.data.flags.writeable
    x = np.random.default_rng(0).uniform(-1, 1, (1, 257, 257, 3)).astype(np.float32)
    reference = run(litert_module().Interpreter, path.read_bytes(), x)
    np.testing.assert_array_equal(run(litert_module().Interpreter, content, x), reference)
    assert np.abs(run(npdeeplab.Interpreter, content, x) - reference).max() < 1e-4


def test_an_external_buffer_past_the_end_of_the_file_is_refused():
    content = write_model(small_model().build(), external_buffers=True)
    with pytest.raises(ModelError, match=r"buffer \d+ lies at bytes .* past the end of the .*truncated"):
        load_model(content[:-40])


def test_metadata_entries_are_exposed_by_name():
    quantized = load_model(shared_file("models", "deeplabv3_mnv2_dm05_pascal_quant.tflite"))
    assert "min_runtime_version" in quantized.metadata
    assert quantized.metadata["min_runtime_version"].rstrip(b"\0").startswith(b"1.")
    g = small_model()
    g.metadata["npdeeplab_note"] = b"hello"
    assert load_model(g.to_bytes()).metadata["npdeeplab_note"] == b"hello"


def test_signature_defs_work_like_litert():
    g = small_model()
    g.add_signature("serving_default", {"pixels": 0}, {"scores": g.outputs[0]})
    content = g.to_bytes()
    ours, theirs = npdeeplab.Interpreter(model_content=content), litert_module().Interpreter(model_content=content)
    assert ours.get_signature_list() == theirs.get_signature_list() == {
        "serving_default": {"inputs": ["pixels"], "outputs": ["scores"]}
    }
    x = np.random.default_rng(1).standard_normal((1, 9, 9, 3)).astype(np.float32)
    theirs.allocate_tensors()
    expected = theirs.get_signature_runner("serving_default")(pixels=x)["scores"]
    ours.allocate_tensors()
    got = ours.get_signature_runner()(pixels=x)["scores"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="no signature 'nope'"):
        ours.get_signature_runner("nope")


def test_operator_codes_from_before_schema_3a_use_the_deprecated_field(monkeypatch):
    """Old files carry the op only in deprecated_builtin_code; builtin_code reads as 0 (ADD)."""

    def old_operator_code(builder, kind, version):
        tflite.OperatorCodeStart(builder)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, writer.OPERATOR_CODES[kind])
        tflite.OperatorCodeAddVersion(builder, version)
        return tflite.OperatorCodeEnd(builder)

    monkeypatch.setattr(writer, "_operator_code", old_operator_code)
    content = small_model().to_bytes()
    root = tflite.Model.GetRootAsModel(content, 0)
    assert root.OperatorCodes(0)._tab.Offset(10) == 0  # builtin_code absent: a naive reader sees 0, ADD
    assert load_model(content).main.ops[0].kind == "CONV_2D"
    x = np.random.default_rng(2).standard_normal((1, 9, 9, 3)).astype(np.float32)
    expected = run(litert_module().Interpreter, content, x)
    np.testing.assert_allclose(run(npdeeplab.Interpreter, content, x), expected, atol=1e-5)


def test_an_omitted_optional_input_is_minus_one_and_runs():
    """LiteRT refuses a CONV_2D without bias; npdeeplab reads -1 as 'no bias' (a zero bias)."""
    rng = np.random.default_rng(4)
    g = GraphBuilder()
    x = g.add_input("image", (1, 6, 6, 2))
    w = g.add_constant("weights", rng.standard_normal((3, 1, 1, 2)).astype(np.float32))
    y = g.add_op("DEPTHWISE_CONV_2D", [x, g.add_constant("dw", rng.standard_normal((1, 3, 3, 2)).astype(np.float32))])
    z = g.add_op("CONV_2D", [y, w, None])
    g.mark_outputs(z)
    model = load_model(g.to_bytes())
    assert model.main.ops[1].inputs[2] == -1
    it = npdeeplab.Interpreter(model=model)
    it.allocate_tensors()
    data = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    it.set_tensor(0, data)
    it.invoke()
    filters = model.main.tensors[2].data
    depthwise = npdeeplab.kernels.NUMPY_KERNELS["depthwise_conv2d"](it.ops[0].params, data, filters, None)
    expected = depthwise.reshape(-1, 2) @ model.main.tensors[1].data.reshape(3, 2).T
    np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1, 3), expected, atol=1e-5)


def test_several_subgraphs_run_subgraph_zero_and_expose_the_rest():
    g = small_model()
    model = g.build()
    second = dataclasses.replace(model.main, index=1, name="second")
    two = dataclasses.replace(model, subgraphs=(model.main, second))
    loaded = load_model(write_model(two))
    assert [s.name for s in loaded.subgraphs] == ["main", "second"]
    it = npdeeplab.Interpreter(model=loaded)
    assert it.num_subgraphs() == 2
    assert len(it.get_tensor_details(1)) == len(loaded.subgraphs[1].tensors)

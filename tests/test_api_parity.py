"""A script written for LiteRT's Interpreter runs unchanged with npdeeplab's, with equal results."""

from __future__ import annotations

import numpy as np
import pytest

import npdeeplab
from npdeeplab.model.builder import GraphBuilder


def classic_example(Interpreter, model_path, seed=0):
    """The TFLite Python example flow, verbatim but for the class."""
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    input_shape = input_details[0]["shape"]
    np.random.seed(seed)
    input_data = np.array(np.random.random_sample(input_shape), dtype=input_details[0]["dtype"])
    interpreter.set_tensor(input_details[0]["index"], input_data)
    interpreter.invoke()
    output_data = interpreter.get_tensor(output_details[0]["index"])
    return interpreter, input_details, output_details, output_data


def assert_same_details(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, np.ndarray):
            assert isinstance(ours[key], np.ndarray) and ours[key].dtype == value.dtype, key
            assert np.array_equal(ours[key], value), key
        elif isinstance(value, dict):
            assert_same_details(ours[key], value)
        else:
            assert ours[key] == value, key
            assert type(ours[key]) is type(value), key


@pytest.fixture(scope="module")
def both(litert, seed_model_path):
    theirs = classic_example(litert[0], seed_model_path)
    ours = classic_example(npdeeplab.Interpreter, seed_model_path)
    return ours, theirs


def test_input_and_output_details_are_equal(both):
    (_, our_in, our_out, _), (_, their_in, their_out, _) = both
    for ours, theirs in zip(our_in + our_out, their_in + their_out, strict=True):
        assert_same_details(ours, theirs)


def test_outputs_are_equal(both):
    (*_, ours), (*_, theirs) = both
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert np.abs(ours - theirs).max() <= 1e-4


def test_tensor_details_are_equal_for_every_file_tensor(both):
    ours, theirs = both[0][0].get_tensor_details(), both[1][0].get_tensor_details()
    assert len(ours) == 184
    by_index = {d["index"]: d for d in theirs}
    for detail in ours:
        assert_same_details(detail, by_index[detail["index"]])


def test_ops_details_are_equal(both):
    ours, theirs = both[0][0]._get_ops_details(), both[1][0]._get_ops_details()
    assert len(ours) == 70
    # LiteRT's default resolver appends the XNNPACK delegate's own node after the file's ops.
    assert all("DELEGATE" in extra["op_name"].upper() for extra in theirs[70:]), [e["op_name"] for e in theirs[70:]]
    for a, b in zip(ours, theirs[:70], strict=True):
        assert a.keys() == b.keys()
        assert a["index"] == b["index"] and a["op_name"] == b["op_name"]
        assert np.array_equal(a["inputs"], b["inputs"]) and a["inputs"].dtype == b["inputs"].dtype
        assert np.array_equal(a["outputs"], b["outputs"])
        assert a["operand_types"] == b["operand_types"] and a["result_types"] == b["result_types"]


def test_signature_list_and_tensor_view(both):
    ours, theirs = both[0][0], both[1][0]
    assert ours.get_signature_list() == theirs.get_signature_list()
    index = ours.get_output_details()[0]["index"]
    view = ours.tensor(index)
    assert np.shares_memory(view(), view())
    assert np.array_equal(view(), ours.get_tensor(index))


def test_quantization_details_of_the_quantized_model(litert, shared_models_dir):
    path = str(shared_models_dir / "deeplabv3_mnv2_dm05_pascal_quant.tflite")
    theirs = litert[0](model_path=path)
    model = npdeeplab.load_model(path)
    from npdeeplab.runtime.interpreter import tensor_details

    for detail in theirs.get_tensor_details():
        if detail["index"] < len(model.main.tensors):
            assert_same_details(tensor_details(model.main.tensors[detail["index"]]), detail)


def test_resize_tensor_input_reinfers_shapes_like_litert(litert):
    rng = np.random.default_rng(0)
    g = GraphBuilder()
    x = g.add_input("x", (1, 8, 8, 3), shape_signature=(1, -1, -1, 3))
    w = g.add_constant("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    b = g.add_constant("b", rng.standard_normal(4).astype(np.float32))
    y = g.add_op("CONV_2D", [x, w, b], stride_h=2, stride_w=2, fused_activation_function="RELU")
    g.mark_outputs(g.add_op("AVERAGE_POOL_2D", [y], filter_height=2, filter_width=2, stride_h=2, stride_w=2))
    content = g.to_bytes()
    data = rng.standard_normal((1, 21, 13, 3)).astype(np.float32)
    results = []
    for Interpreter in (litert[0], npdeeplab.Interpreter):
        it = Interpreter(model_content=content)
        it.resize_tensor_input(0, [1, 21, 13, 3], strict=True)
        it.allocate_tensors()
        it.set_tensor(0, data)
        it.invoke()
        results.append((it.get_output_details()[0], it.get_tensor(it.get_output_details()[0]["index"])))
    (our_detail, ours), (their_detail, theirs) = results[1], results[0]
    assert ours.shape == theirs.shape == (1, 6, 4, 4)  # 21 -> conv s2 SAME 11 -> pool s2 SAME 6
    assert np.array_equal(our_detail["shape"], their_detail["shape"])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_hooks_see_every_op_in_order(seed_model_path):
    it = npdeeplab.Interpreter(model_path=seed_model_path)
    seen = []
    remove = it.add_hook(lambda call: seen.append((call.index, call.kind, call.outputs[0].shape)))
    it.allocate_tensors()
    it.invoke()
    assert [i for i, _, _ in seen] == list(range(70))
    assert seen[37][1] == "DEPTHWISE_CONV_2D" and seen[69] == (69, "RESIZE_BILINEAR", (1, 257, 257, 21))
    remove()
    it.invoke()
    assert len(seen) == 70
    assert [op.op.kind for op in it.ops][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]

"""The model writer (npdeeplab.model.writer) and the graph builder (npdeeplab.model.builder).

load(write(load(f))) equals load(f) on the shared models, LiteRT runs the rewritten seed model to
identical outputs, and every field the IR holds survives a round trip.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tflite
from conftest import litert_module as litert
from conftest import shared_file

from npdeeplab import Interpreter, load_model
from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Model, Quantization
from npdeeplab.model.options import ENUM_FIELDS, OPTION_CLASSES, OPTIONS_FOR_KIND
from npdeeplab.model.writer import save_model, write_model

SEED_MODEL = "deeplabv3_257_mv_gpu.tflite"
QUANT_MODEL = "deeplabv3_mnv2_dm05_pascal_quant.tflite"


def differences(a: Any, b: Any, path: str = "model") -> list[str]:
    """Where two IR values differ (arrays by dtype, shape and content); [] when equal. Ignores Model.source."""
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return [
            d
            for f in dataclasses.fields(a)
            if f.name != "source"
            for d in differences(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
        ]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and (a.dtype, a.shape) == (b.dtype, b.shape)
            and np.array_equal(a, b)
        )
        return [] if same else [f"{path}: arrays differ"]
    if isinstance(a, (tuple, list)) and type(a) is type(b) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, dict) and isinstance(b, dict) and list(a) == list(b):
        return [d for k in a for d in differences(a[k], b[k], f"{path}[{k!r}]")]
    return [] if type(a) is type(b) and a == b else [f"{path}: {a!r} != {b!r}"]


def round_trip(model: Model) -> Model:
    return load_model(write_model(model))


# --- the shared models ---------------------------------------------------------------------------


@pytest.mark.parametrize("filename", [SEED_MODEL, QUANT_MODEL])
def test_shared_models_round_trip(filename: str) -> None:
    original = load_model(shared_file("models", filename))
    data = write_model(original)
    assert differences(original, load_model(data)) == []
    assert write_model(load_model(data)) == data  # the writer is deterministic


@pytest.mark.parametrize("filename", [SEED_MODEL, QUANT_MODEL])
def test_litert_runs_rewritten_models_to_identical_outputs(filename: str) -> None:
    interpreter = litert()
    path = shared_file("models", filename)
    model = load_model(path)
    rewritten = write_model(model)
    x = model.main.tensors[model.main.inputs[0]]
    rng = np.random.default_rng(7)
    if x.dtype == np.float32:
        value = rng.uniform(-1, 1, x.shape).astype(np.float32)
    else:
        value = rng.integers(0, 256, x.shape).astype(x.dtype)
    outputs = []
    for content in (path.read_bytes(), rewritten):
        runner = interpreter.Interpreter(
            model_content=content,
            experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        runner.allocate_tensors()
        runner.set_tensor(runner.get_input_details()[0]["index"], value)
        runner.invoke()
        outputs.append([runner.get_tensor(d["index"]) for d in runner.get_output_details()])
    for original, again in zip(*outputs, strict=True):
        assert original.dtype == again.dtype and np.array_equal(original, again)


def test_operator_codes_follow_the_schema_rule() -> None:
    """builtin_code holds the code, deprecated_builtin_code min(code, 127); buffer 0 is empty."""
    b = GraphBuilder()
    x = b.add_input("x", (4,))
    y = b.add_op("CUMSUM", [x, b.add_constant("axis", np.array(0, np.int32))], output_shape=(4,),
                 output_dtype=np.float32)
    b.mark_outputs(b.add_op("RELU", [y], output_shape=(4,), output_dtype=np.float32))
    root = tflite.Model.GetRootAsModel(b.to_bytes(), 0)
    codes = {root.OperatorCodes(i).BuiltinCode(): root.OperatorCodes(i).DeprecatedBuiltinCode() for i in range(2)}
    assert codes == {tflite.BuiltinOperator.CUMSUM: 127, tflite.BuiltinOperator.RELU: tflite.BuiltinOperator.RELU}
    assert root.Buffers(0).DataLength() == 0
    assert [op.kind for op in load_model(b.to_bytes()).main.ops] == ["CUMSUM", "RELU"]


def test_constant_data_is_16_byte_aligned() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (1, 3))
    total = x
    for k in range(5):
        total = b.add_op("ADD", [total, b.add_constant(f"c{k}", np.arange(k + 1, k + 4, dtype=np.float32)[None])])
    b.mark_outputs(total)
    data = b.to_bytes()
    raw = np.frombuffer(data, np.uint8)
    root = tflite.Model.GetRootAsModel(raw, 0)
    offsets = [
        root.Buffers(i).DataAsNumpy().ctypes.data - raw.ctypes.data
        for i in range(root.BuffersLength())
        if root.Buffers(i).DataLength()
    ]
    assert len(offsets) == 5 and all(offset % 16 == 0 for offset in offsets)


# --- every IR field survives -------------------------------------------------------------------------


def non_default_options(cls: type) -> Any:
    """An instance of an options class with every field away from its default."""
    values = {}
    for field in dataclasses.fields(cls):
        default = field.default
        if field.name in ENUM_FIELDS:
            values[field.name] = next(name for name in ENUM_FIELDS[field.name].values() if name != default)
        elif isinstance(default, bool):
            values[field.name] = not default
        elif isinstance(default, int):
            values[field.name] = default + 3
        elif isinstance(default, float):
            values[field.name] = default + 0.25
        elif isinstance(default, tuple):
            values[field.name] = (2, -1, 3)
    return cls(**values)


def test_every_options_class_round_trips() -> None:
    kinds = {cls.__name__: kind for kind, cls in reversed(list(OPTIONS_FOR_KIND.items()))}
    assert set(kinds) == set(OPTION_CLASSES)
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    for name, cls in OPTION_CLASSES.items():
        b.add_op(kinds[name], [x], options=non_default_options(cls), output_shape=(2, 3), output_dtype=np.float32)
    b.mark_outputs(len(b.tensors) - 1)
    model = b.build()
    assert differences(model, round_trip(model)) == []
    assert [type(op.options) for op in round_trip(model).main.ops] == list(OPTION_CLASSES.values())


def test_tensor_fields_metadata_and_signatures_round_trip() -> None:
    b = GraphBuilder(name="graph", description="every field")
    x = b.add_input("x", (1, 4, 4, 2), np.int8, quantization=(0.5, -3), shape_signature=(-1, 4, 4, 2))
    per_channel = Quantization(np.array([0.1, 0.2, 0.3], np.float32), np.zeros(3, np.int64), quantized_dimension=3)
    w = b.add_constant("w", np.arange(18, dtype=np.int8).reshape(1, 3, 2, 3), quantization=per_channel)
    state = b.add_tensor("state", (1, 4), np.float32, is_variable=True)
    flags = b.add_constant("flags", np.array([True, False]))
    wide = b.add_constant("wide", np.array([[1.5, -2.25]], np.float64))
    y = b.add_op("CUSTOM:MyOp", [x, w, None, state, flags, wide], output_shape=(1, 2, 2, 3), output_dtype=np.int8,
                 output_quantization=(0.25, 1), version=3)
    b.mark_outputs(y)
    b.metadata["min_runtime_version"] = b"1.14.0\0"
    b.metadata["other"] = bytes(range(7))
    b.add_signature("serving_default", {"image": x}, {"logits": y})
    model = b.build()
    again = round_trip(model)
    assert differences(model, again) == []
    op = again.main.ops[0]
    assert (op.kind, op.version, op.inputs[2]) == ("CUSTOM:MyOp", 3, -1)
    assert again.main.tensors[x].shape_signature == (-1, 4, 4, 2)
    assert again.main.tensors[w].quantization.quantized_dimension == 3
    assert again.main.tensors[state].is_variable


def test_buffer_indices_are_kept_when_consistent_and_renumbered_otherwise() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (3,))
    c = b.add_constant("c", np.ones(3, np.float32))
    b.mark_outputs(b.add_op("ADD", [x, c]))
    model = b.build()
    assert round_trip(model).main.tensors[c].buffer == model.main.tensors[c].buffer == 1
    graph = model.main
    moved = dataclasses.replace(
        model,
        subgraphs=(dataclasses.replace(graph, tensors=tuple(dataclasses.replace(t, buffer=0) for t in graph.tensors)),),
    )
    again = round_trip(moved)
    assert again.main.tensors[c].buffer == 1 and np.array_equal(again.main.tensors[c].data, np.ones(3))


def test_writer_refuses_what_it_cannot_write() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (3,))
    b.mark_outputs(b.add_op("NOT_AN_OP", [x], output_shape=(3,), output_dtype=np.float32))
    with pytest.raises(ModelError, match="NOT_AN_OP"):
        b.to_bytes()
    b = GraphBuilder()
    b.mark_outputs(b.add_input("text", (3,), np.dtype("U4")))
    with pytest.raises(ModelError, match="dtype"):
        b.to_bytes()


# --- the builder --------------------------------------------------------------------------------------


def test_builder_infers_shapes_and_runs(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.add_input("image", (1, 9, 9, 3))
    w = b.add_constant("weights", np.full((4, 3, 3, 3), 0.1, np.float32))
    bias = b.add_constant("bias", np.zeros(4, np.float32))
    y = b.add_op("CONV_2D", [x, w, bias], padding="VALID", stride_h=2, stride_w=2, fused_activation_function="RELU6")
    assert b.shape(y) == (1, 4, 4, 4) and b.dtype(y) == np.float32
    z = b.add_op("MEAN", [y, b.add_constant("axes", np.array([1, 2], np.int32))], keep_dims=True, name="pooled")
    labels = b.add_op("ARG_MAX", [z, b.add_constant("axis", np.array([3], np.int32))], output_type="INT32")
    assert (b.shape(z), b.shape(labels), b.dtype(labels)) == ((1, 1, 1, 4), (1, 1, 1), np.int32)
    b.mark_outputs(z, labels)
    path = b.save(tmp_path / "model.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]  # no temporary file left behind
    interpreter = Interpreter(model_path=str(path), backend="numpy")
    interpreter.allocate_tensors()
    interpreter.set_tensor(x, np.ones((1, 9, 9, 3), np.float32))
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(z), np.full((1, 1, 1, 4), 2.7), rtol=1e-6)
    assert interpreter.get_tensor_details()[z]["name"] == "pooled"


def test_builder_errors_name_the_problem() -> None:
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 4, 2))
    with pytest.raises(ModelError, match="unknown option"):
        b.add_op("AVERAGE_POOL_2D", [x], filter_size=2)
    with pytest.raises(ModelError, match="input tensor 7 does not exist"):
        b.add_op("RELU", [7])
    with pytest.raises(ModelError, match="takes no options"):
        b.add_op("RELU", [x], beta=2.0)
    with pytest.raises(ModelError, match="output_shape and output_dtype"):
        b.add_op("QUANTIZE", [x])
    with pytest.raises(ModelError, match="no outputs"):
        b.build()
    with pytest.raises(ModelError, match="does not fit"):
        b.add_op("AVERAGE_POOL_2D", [x], filter_height=5, filter_width=5, padding="VALID")


def test_save_model_writes_atomically(tmp_path: Path) -> None:
    b = GraphBuilder()
    b.mark_outputs(b.add_op("RELU", [b.add_input("x", (2,))]))
    target = tmp_path / "relu.tflite"
    target.write_bytes(b"old")
    save_model(b.build(), target)
    assert load_model(target).main.ops[0].kind == "RELU"
    assert [p.name for p in tmp_path.iterdir()] == ["relu.tflite"]

"""`npdeeplab extract`: one op or a range as a standalone model, plus the arrays it saw in a full run.

The extracted model, fed the dumped inputs, must reproduce the dumped npdeeplab outputs in LiteRT:
that is the two-file bug report the command exists for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import litert_module as litert
from conftest import shared_file

from npdeeplab import cli, load_model
from npdeeplab.errors import InputError
from npdeeplab.runtime.inputs import random_inputs
from npdeeplab.tools.extract import capture, extract_ops, parse_op_range

TOLERANCE = 1e-5  # x max(1, max|output|), npdeeplab vs LiteRT's reference kernels


@pytest.fixture(scope="module")
def seed_model() -> Path:
    return shared_file("models", "deeplabv3_257_mv_gpu.tflite")


def run_small_model_in_litert(model: Path, arrays: Any) -> dict[str, np.ndarray]:
    interpreter = litert()
    runner = interpreter.Interpreter(
        model_path=str(model), experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_REF
    )
    runner.allocate_tensors()
    for detail in runner.get_input_details():
        runner.set_tensor(detail["index"], arrays[detail["name"]])
    runner.invoke()
    return {d["name"]: runner.get_tensor(d["index"]) for d in runner.get_output_details()}


def assert_reproduces(model: Path, npz: Path) -> list[str]:
    arrays = np.load(npz)
    outputs = run_small_model_in_litert(model, arrays)
    for name, value in outputs.items():
        expected = arrays[name]
        assert value.shape == expected.shape and value.dtype == expected.dtype
        scale = max(1.0, float(np.abs(value).max()))
        assert float(np.abs(value - expected).max()) <= TOLERANCE * scale, name
    return sorted(outputs)


def test_extract_dilated_depthwise_op_with_image_inputs(seed_model: Path, tmp_path: Path, capsys) -> None:
    image = shared_file("images", "bird_segmentation.bmp")
    out = tmp_path / "op37.tflite"
    assert cli.main(["extract", str(seed_model), "--op", "37", "-o", str(out), "--dump-inputs", str(image)]) == 0
    assert "op 37 (DEPTHWISE_CONV_2D)" in capsys.readouterr().out
    small = load_model(out)
    (op,) = small.main.ops
    assert op.kind == "DEPTHWISE_CONV_2D" and op.options.dilation_h_factor == 2
    assert [t.is_constant for t in small.main.tensors].count(True) == 2  # filter and bias travel with it
    arrays = np.load(tmp_path / "op37.npz")
    input_name = small.main.tensors[small.main.inputs[0]].name
    assert sorted(arrays.files) == sorted([input_name, *assert_reproduces(out, tmp_path / "op37.npz")])
    assert arrays[input_name].shape == (1, 33, 33, 192) and arrays[input_name].max() <= 6.0  # a ReLU6 output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["op37.npz", "op37.tflite"]


def test_extract_range_with_random_inputs(seed_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "range.tflite"
    assert cli.main(["extract", str(seed_model), "--op", "30:33", "-o", str(out), "--random", "--seed", "3"]) == 0
    small = load_model(out)
    assert [op.kind for op in small.main.ops] == ["CONV_2D", "ADD", "CONV_2D", "DEPTHWISE_CONV_2D"]
    names = {small.main.tensors[i].name for i in small.main.outputs}
    # op 31's sum feeds a later ADD outside the range, so it is an output too
    assert names == {"MobilenetV2/expanded_conv_8/add", "MobilenetV2/expanded_conv_9/depthwise/Relu6"}
    assert_reproduces(out, tmp_path / "range.npz")


def test_extract_without_dump_writes_only_the_model(seed_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "last.tflite"
    assert cli.main(["extract", str(seed_model), "--op", "69", "-o", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["last.tflite"]
    original = load_model(seed_model)
    small = load_model(out)
    assert [small.main.tensors[i].name for i in small.main.outputs] == [
        original.main.tensors[i].name for i in original.main.outputs
    ]


@pytest.mark.parametrize(
    ("op", "message"),
    [("999", "op 999 is out of range"), ("5:2", "is empty"), ("x", "--op takes"), ("3:80", "op 80 is out of range")],
)
def test_bad_op_exits_2_with_one_line_and_no_file(
    seed_model: Path, tmp_path: Path, capsys, op: str, message: str
) -> None:
    out = tmp_path / "bad.tflite"
    assert cli.main(["extract", str(seed_model), "--op", op, "-o", str(out), "--random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("npdeeplab: error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_unreadable_image_exits_2_and_writes_nothing(seed_model: Path, tmp_path: Path, capsys) -> None:
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    out = tmp_path / "op.tflite"
    assert cli.main(["extract", str(seed_model), "--op", "3", "-o", str(out), "--dump-inputs", str(not_an_image)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_quantized_ops_extract_with_their_inputs(tmp_path: Path, capsys) -> None:
    """An op of the uint8 model cut out keeps its quantization; the dumped arrays are uint8, and
    LiteRT's reference kernels compute from them exactly what npdeeplab saved."""
    model = shared_file("models", "deeplabv3_mnv2_dm05_pascal_quant.tflite")
    out = tmp_path / "q.tflite"
    assert cli.main(["extract", str(model), "--op", "3", "-o", str(out), "--random"]) == 0
    small = load_model(out).main
    x = small.tensors[small.inputs[0]]
    assert x.dtype == np.uint8 and x.quantization is not None
    dumped = np.load(out.with_suffix(".npz"))
    from quantized_harness import run_litert

    (theirs,) = run_litert(out.read_bytes(), [dumped[x.name]])
    np.testing.assert_array_equal(theirs, dumped[small.tensors[small.outputs[0]].name])
    capsys.readouterr()


def test_whole_model_extraction_reproduces_the_model(seed_model: Path) -> None:
    model = load_model(seed_model)
    part = extract_ops(model, 0, len(model.main.ops) - 1)
    assert part.source_inputs == model.main.inputs and part.source_outputs == model.main.outputs
    feeds = random_inputs(model, seed=1)
    full = capture(model, feeds, model.main.outputs, backend="numpy")
    small = capture(part.model, feeds, part.model.main.outputs, backend="numpy")
    np.testing.assert_array_equal(small[part.model.main.outputs[0]], full[model.main.outputs[0]])


def test_parse_op_range() -> None:
    assert parse_op_range("4", 10) == (4, 4)
    assert parse_op_range("2:9", 10) == (2, 9)
    for bad in ("-1", "1:2:3", "", "a:b", "10"):
        with pytest.raises(InputError):
            parse_op_range(bad, 10)

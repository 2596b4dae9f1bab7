"""--numerics NAME on every command that runs a model, and `compare --explain-diff`: which numerics
personality reproduces LiteRT's default interpreter (XNNPACK on), op by op, on the shared uint8
DeepLab (dm05)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import litert_module, shared_file
from PIL import Image
from test_quant_diff import int8_twin, small_float_model

import npdeeplab
from npdeeplab.cli import main
from npdeeplab.model.writer import write_model
from npdeeplab.runtime.numerics import NUMERICS
from npdeeplab.segmentation import load_segmenter, model_input
from npdeeplab.segmentation.pipeline import labels_at
from npdeeplab.tools.explain_diff import explain_diff

MODEL = "deeplabv3_mnv2_dm05_pascal_quant.tflite"


@pytest.fixture(scope="module")
def dm05() -> Path:
    return shared_file("models", MODEL)


@pytest.fixture(scope="module")
def astronaut() -> Path:
    return shared_file("images", "astronaut.png")


def error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line and not line.startswith("npdeeplab: compil")]
    assert len(err) == 1 and err[0].startswith("npdeeplab: error: "), err
    return err[0]


def auto_labels(dm05: Path, astronaut: Path) -> np.ndarray:
    """LiteRT AUTO's class map of the astronaut, read as `segment` reads the model's output."""
    lite = litert_module()
    interpreter, spec = load_segmenter(dm05)
    auto = lite.Interpreter(model_path=str(dm05), experimental_op_resolver_type=lite.OpResolverType.AUTO)
    auto.allocate_tensors()
    auto.set_tensor(auto.get_input_details()[0]["index"], model_input(interpreter, astronaut))
    auto.invoke()
    output = auto.get_tensor(auto.get_output_details()[0]["index"])[0]
    size = Image.open(astronaut).size
    return labels_at(output, spec, (size[1], size[0]))


def test_segment_numerics_xnnpack_gives_litert_autos_labels(dm05, astronaut, tmp_path, capsys) -> None:
    masks = {}
    for name in ("reference", "xnnpack"):
        out = tmp_path / f"{name}.png"
        assert main(["segment", str(astronaut), "--model", str(dm05), "--numerics", name, "-o", str(out)]) == 0
        masks[name] = np.asarray(Image.open(out))
    assert np.count_nonzero(masks["reference"] != masks["xnnpack"]) > 0
    np.testing.assert_array_equal(masks["xnnpack"], auto_labels(dm05, astronaut))
    api = npdeeplab.segment(astronaut, dm05, numerics="xnnpack")
    np.testing.assert_array_equal(api.labels, masks["xnnpack"])
    xnn, _ = load_segmenter(dm05, numerics="xnnpack")
    assert xnn.numerics == "xnnpack" and load_segmenter(dm05)[0].numerics == "reference"  # cached apart


def test_trace_compare_and_quant_diff_take_numerics(dm05, tmp_path, capsys) -> None:
    assert main(["trace", str(dm05), "--random", "--numerics", "xnnpack", "--stop-after", "2"]) == 0
    assert "ran" in capsys.readouterr().out
    assert main(["compare", str(dm05), str(dm05), "--random", "--numerics", "xnnpack"]) == 0
    assert "all 72 ops within tolerance" in capsys.readouterr().out
    float_model = small_float_model()
    paths = [tmp_path / "float.tflite", tmp_path / "quant.tflite"]
    for path, model in zip(paths, (float_model, int8_twin(float_model)), strict=True):
        path.write_bytes(write_model(model))
    assert main(["quant-diff", *map(str, paths), "--random", "2", "--numerics", "xnnpack"]) == 0
    assert "layers matched" in capsys.readouterr().out


def test_explain_under_xnnpack_covers_reference_kernels_and_refuses_its_own(dm05, capsys) -> None:
    assert main(["explain", str(dm05), "--op", "61", "--at", "0,0,0,3", "--random", "--numerics", "xnnpack"]) == 0
    assert "AVERAGE_POOL_2D" in capsys.readouterr().out  # not taken over: its reference kernel runs
    assert main(["explain", str(dm05), "--op", "0", "--at", "0,1,1,1", "--random", "--numerics", "xnnpack"]) == 2
    assert "does not cover CONV_2D with kernel xnnpack_conv2d" in error_line(capsys)


def test_extract_dumps_and_golden_follow_numerics(dm05, tmp_path, capsys) -> None:
    outputs = {}
    for name in ("reference", "xnnpack"):
        path = tmp_path / f"op3_{name}.tflite"
        assert main(["extract", str(dm05), "--op", "3", "-o", str(path), "--random", "--numerics", name]) == 0
        with np.load(path.with_suffix(".npz")) as arrays:
            outputs[name] = {key: arrays[key] for key in arrays.files}
    keys = list(outputs["reference"])
    assert keys == list(outputs["xnnpack"])
    assert any(not np.array_equal(outputs["reference"][k], outputs["xnnpack"][k]) for k in keys)  # CONV_2D output
    golden = tmp_path / "golden"
    assert main(["extract", str(dm05), "--op", "3", "--golden", str(golden), "--random", "--numerics", "xnnpack"]) == 0
    assert "xnnpack numerics" in (golden / "manifest.json").read_text()


def test_bench_and_report_take_numerics(dm05, astronaut, tmp_path, capsys) -> None:
    args = ["bench", str(dm05), "--engines", "numpy", "--runs", "1", "--passes", "1", "--numerics", "xnnpack"]
    assert main(args) == 0
    assert "npdeeplab's engines ran xnnpack numerics" in capsys.readouterr().out
    page = tmp_path / "report.html"
    assert main(["report", str(dm05), str(astronaut), "-o", str(page), "--numerics", "xnnpack"]) == 0
    assert page.stat().st_size > 0


@pytest.mark.parametrize("command", ["segment", "trace", "compare", "report", "explain", "extract", "quant-diff",
                                     "bench"])
def test_unknown_numerics_is_one_line_and_exit_2(command, dm05, astronaut, tmp_path, capsys) -> None:
    m, image = str(dm05), str(astronaut)
    args = {
        "segment": [image, "--model", m, "-o", str(tmp_path / "mask.png")],
        "trace": [m, "--random"],
        "compare": [m, "--random"],
        "report": [m, image, "-o", str(tmp_path / "r.html")],
        "explain": [m, "--op", "0", "--at", "0,0,0,0", "--random"],
        "extract": [m, "--op", "3", "-o", str(tmp_path / "op.tflite"), "--random"],
        "quant-diff": [m, m, "--random", "1"],
        "bench": [m, "--engines", "numpy", "--runs", "1", "--passes", "1"],
    }[command]
    assert main([command, *args, "--numerics", "fastest"]) == 2
    line = error_line(capsys)
    assert "unknown numerics 'fastest'" in line and ", ".join(NUMERICS) in line
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def dm05_explained(dm05, astronaut):
    litert_module()
    interpreter = npdeeplab.Interpreter(model_path=dm05, backend="numpy")
    return explain_diff(dm05, model_input(interpreter, astronaut))


def test_xnnpack_explains_every_dm05_op_and_reference_no_convolution(dm05_explained) -> None:
    result = dm05_explained
    assert result.personalities == NUMERICS
    assert len(result.ops) == result.compared == 72 and result.explained("xnnpack") == 72
    for op in result.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert "reference" not in op.explained_by and op.delegated, op
            gap, count = op.gaps["reference"]
            assert gap == 1 and 0 < count <= op.elements, op
        assert op.gaps["xnnpack"] == (0.0, 0)
    assert result.explained("reference") == 15  # ADD (but op 46), pools, resizes, concatenation, ARG_MAX


def test_explain_diff_cli_prints_a_row_per_op_and_the_summary(dm05, astronaut, capsys) -> None:
    assert main(["compare", str(dm05), str(astronaut), "--explain-diff"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out if line[:4].strip().isdigit()]
    assert len(rows) == 72 and rows[0][:4] == ["0", "CONV_2D", "uint8", "XNNPACK"] and rows[0][4] == "xnnpack"
    assert "xnnpack explains 72 of 72 ops" in out[-1]
    assert main(["compare", str(dm05), str(dm05), "--random", "--explain-diff"]) == 2
    assert "--explain-diff takes one model" in error_line(capsys)

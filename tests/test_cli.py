"""The command line: segment and inspect, with their outputs parsed, and their errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npdeeplab.cli import main
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.ops import SUPPORTED_OPS, SUPPORTED_QUANTIZED_OPS


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npdeeplab", *args], capture_output=True, text=True, cwd=cwd, timeout=300,
        env={**os.environ},
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line and not line.startswith("npdeeplab: compiling")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("npdeeplab: error: ")
    return lines[0]


def test_segment_one_image(image_path, tmp_path):
    result = run_cli("segment", str(image_path("astronaut.png")), "--overlay", "over.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("astronaut.png  ")
    assert "person" in result.stdout
    mask = Image.open(tmp_path / "astronaut_mask.png")
    assert mask.mode == "P" and mask.size == (512, 512)
    assert Image.open(tmp_path / "over.png").size == (512, 512)


def test_segment_a_directory_and_files_as_json(image_path, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png"):
        (folder / name).write_bytes(image_path(name).read_bytes())
    code = main(["segment", str(folder), str(image_path("bird_segmentation.bmp")), "-o", str(tmp_path / "masks"),
                 "--overlay", str(tmp_path / "overlays"), "--json"])
    assert code == 0
    reports = json.loads(capsys.readouterr().out)["images"]
    assert [Path(r["image"]).name for r in reports] == ["astronaut.png", "chelsea.png", "bird_segmentation.bmp"]
    for report in reports:
        labels = np.asarray(Image.open(report["mask"]))
        assert labels.shape == (report["height"], report["width"])
        assert Path(report["overlay"]).is_file()
        assert sum(c["share"] for c in report["classes"]) == pytest.approx(1.0, abs=1e-4)
    assert reports[1]["classes"][0]["name"] == "cat"


@pytest.mark.parametrize("case", ["missing", "text", "empty", "empty-dir", "bad-alpha", "bad-model"])
def test_segment_bad_input_writes_nothing(case, tmp_path, image_path):
    args = {
        "missing": ["nope.png"],
        "text": ["notes.txt"],
        "empty": ["empty.png"],
        "empty-dir": ["emptydir"],
        "bad-alpha": [str(image_path("chelsea.png")), "--alpha", "2"],
        "bad-model": [str(image_path("chelsea.png")), "--model", "no_such_model"],
    }[case]
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "emptydir").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("segment", *args, "--overlay", "over.png", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert {"missing": "does not exist", "text": "not an image", "empty": "empty file",
            "empty-dir": "holds no images", "bad-alpha": "--alpha", "bad-model": "no_such_model"}[case] in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_bad_image_among_good_ones_stops_before_writing(image_path, tmp_path, capsys):
    (tmp_path / "bad.png").write_text("nope")
    code = main(["segment", str(image_path("chelsea.png")), str(tmp_path / "bad.png"), "-o", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "out").exists()
    assert "bad.png" in capsys.readouterr().err


def test_inspect_seed_model(capsys, seed_model_path):
    assert main(["inspect", str(seed_model_path)]) == 0
    text = capsys.readouterr().out
    assert "70 ops" in text and "CONV_2D 38, DEPTHWISE_CONV_2D 17, ADD 10" in text
    assert "3x3 s1 d2 SAME relu6" in text and "3x3 s1 d4 SAME relu6" in text  # the atrous convolutions
    assert "align_corners 257x257" in text
    assert "725.8M per inference" in text
    assert main(["inspect", str(seed_model_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["ops"]) == 70 and data["kinds"]["RESIZE_BILINEAR"] == 3
    first = data["ops"][0]
    assert first["macs"] == 129 * 129 * 16 * 3 * 3 * 3 and first["parameters"] == 16 * 27 + 16
    assert data["peak_activation_bytes"] < 20e6


def test_inspect_counts_every_parameter(seed_model_path):
    from npdeeplab.model.loader import load_model
    from npdeeplab.tools.summary import summarize

    model = load_model(seed_model_path)
    weights = {i for op in model.main.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") for i in op.inputs[1:]}
    assert summarize(seed_model_path).parameters == sum(model.main.tensors[i].size for i in weights)


def test_inspect_the_quantized_model(shared_models_dir, capsys):
    """The uint8 model: every tensor's quantization, MACs, peak memory; it runs."""
    path = shared_models_dir / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    assert main(["inspect", str(path), "--tensors"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "runs        no" not in captured.out
    assert "72 ops in subgraph 0 of 1, uint8-quantized" in captured.out
    assert "scale 0.0078125, zero point 128" in captured.out
    rows = {int(line.split()[0]): line.split() for line in captured.out.splitlines() if line[:3].strip().isdigit()}
    assert rows[0][1] == "CONV_2D" and rows[0][-1] == "28.5M"  # 257x257x16 outputs, each of 3x3x3 products
    assert "MACs        867.5M per inference" in captured.out and "activations " in captured.out
    tensors = captured.out[captured.out.index("   #  dtype"):].splitlines()
    assert len(tensors) == 1 + 186 and "uint8" in tensors[1] and "int64" in tensors[-1]


def test_inspect_a_model_it_cannot_run(shared_models_dir, tmp_path, capsys):
    """The selfie model with its custom op renamed to one nobody registered: read, shown with MACs
    from its declared shapes, and why it cannot run."""
    model = load_model(shared_models_dir / "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite")
    ops = tuple(dataclasses.replace(op, kind="CUSTOM:NotRegistered") if op.kind.startswith("CUSTOM:") else op
                for op in model.main.ops)
    path = tmp_path / "renamed.tflite"
    path.write_bytes(write_model(dataclasses.replace(model, subgraphs=(dataclasses.replace(model.main, ops=ops),))))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "float16     110 weight tensors stored as float16" in out
    problem = next(line for line in out.splitlines() if line.startswith("runs        no"))
    assert "CUSTOM:NotRegistered (op 244)" in problem and "`npdeeplab inspect --ops`" in problem
    assert "register_custom_op('NotRegistered'" in problem
    assert "MACs        58.2M per inference" in out  # the 1.0M of the transposed convolution is unknown now


def test_inspect_the_selfie_model_with_its_custom_op(shared_models_dir, capsys):
    path = shared_models_dir / "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite"
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("244  CUSTOM:Convolution2DTransposeBias"))
    assert "s2 SAME (custom options)" in row and "1.0M" in row
    assert "parameters  106.4k (0.21 MB)" in out and "runs        no" not in out


def test_inspect_missing_file(tmp_path):
    result = run_cli("inspect", str(tmp_path / "missing.tflite"), cwd=tmp_path)
    assert result.returncode == 2 and "missing.tflite" in one_error_line(result.stderr)


def test_inspect_lists_the_ops_it_runs(capsys):
    assert main(["inspect", "--ops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = sorted({*SUPPORTED_OPS, *SUPPORTED_QUANTIZED_OPS})  # every session adds ops: counted, not pinned
    assert lines[0].startswith(f"npdeeplab runs {len(kinds)} op kinds: {len(SUPPORTED_OPS)} on float32 tensors")
    assert "  CONV_2D  q" in lines and "  QUANTIZE  q" in lines and "  RELU6  q" in lines and "  PRELU  q" in lines
    assert main(["inspect", "--ops", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "DEQUANTIZE" in listed["quantized"] and "HARD_SWISH" in listed["quantized"]

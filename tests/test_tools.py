"""trace, compare and report: their output parsed, not just their exit codes."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from conftest import browse
from PIL import Image

import npdeeplab
from npdeeplab.cli import main
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import save_model
from npdeeplab.runtime.trace import trace
from npdeeplab.segmentation import model_input
from npdeeplab.tools.comparison import compare_models, compare_with_litert, measure, ulps_at_scale

PERTURBED_OP = 37  # a dilated depthwise convolution in the backbone


@pytest.fixture(scope="module")
def perturbed(seed_model_path, tmp_path_factory):
    """The seed model with op 37's filter weights off by 1%."""
    model = load_model(seed_model_path)
    graph = model.main
    weights = graph.ops[PERTURBED_OP].inputs[1]
    tensors = list(graph.tensors)
    tensors[weights] = dataclasses.replace(tensors[weights], data=tensors[weights].data * np.float32(1.01))
    changed = dataclasses.replace(model, subgraphs=(dataclasses.replace(graph, tensors=tuple(tensors)),))
    return save_model(changed, tmp_path_factory.mktemp("perturbed") / "perturbed.tflite")


def test_trace_rows_and_dump(seed_model_path, image_path, tmp_path, capsys):
    dump = tmp_path / "all.npz"
    assert main(["trace", str(seed_model_path), str(image_path("astronaut.png")), "--dump", str(dump)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if re.match(r"\s*\d+\s+[A-Z_0-9]+\s+\[", line)]
    assert len(rows) == 70
    first = rows[0].split()
    assert first[:3] == ["0", "CONV_2D", "[1,129,129,16]"] and float(first[3]) == 0.0 and float(first[4]) == 6.0
    assert "all ops ran" in lines[-2]
    arrays = np.load(dump)
    op_keys = [k for k in arrays.files if k.startswith("op")]
    assert len(op_keys) == 70 and "op037_DEPTHWISE_CONV_2D__t" in " ".join(op_keys)
    assert arrays["op069_RESIZE_BILINEAR__t168"].shape == (1, 257, 257, 21)
    assert [k for k in arrays.files if k.startswith("input")] == ["input__t183"]


def test_trace_stop_after_and_statistics(seed_model_path):
    it = npdeeplab.Interpreter(model_path=seed_model_path)
    x = model_input(it, seed=1)
    result = trace(it, x, stop_after=5, keep_arrays=True)
    assert [r.index for r in result.rows] == [0, 1, 2, 3, 4, 5] and result.stopped_after == 5
    relu6 = result.rows[0].stats
    assert relu6.min >= 0 and relu6.max <= 6 and 0 < relu6.zeros < 1 and relu6.nonfinite == 0
    assert "stopped after op 5" in result.to_text()


def test_compare_seed_model_all_within_tolerance(seed_model_path, litert, capsys):
    assert main(["compare", str(seed_model_path), "--random"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "all 70 ops within tolerance"
    assert sum(1 for line in lines if line[2:5].strip().isdigit()) == 70


def test_compare_isolated_against_litert_reference_kernels(seed_model_path, image_path, litert, capsys):
    code = main(["compare", str(seed_model_path), str(image_path("chelsea.png")), "--isolate", "--reference",
                 "litert-ref"])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[-1] == "all 70 ops within tolerance"
    assert "reference kernels" in out and "each op fed the reference's inputs" in out


def test_two_model_mode_finds_the_planted_perturbation(seed_model_path, perturbed, capsys):
    code = main(["compare", str(perturbed), str(seed_model_path), "--random"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[-1].startswith(f"first divergence: op {PERTURBED_OP} DEPTHWISE_CONV_2D")
    marked = [line for line in lines if line.startswith("!!")]
    assert len(marked) == 1 and marked[0][2:5].strip() == str(PERTURBED_OP)
    assert "ops matched by op index" in "\n".join(lines)


def test_isolate_cli_against_litert_finds_the_perturbed_op(seed_model_path, perturbed, litert, capsys):
    code = main(["compare", str(perturbed), "--random", "--isolate", "--reference-model", str(seed_model_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[-1].startswith(f"first divergence: op {PERTURBED_OP} DEPTHWISE_CONV_2D")
    assert [line[2:5].strip() for line in lines if line[:2] in ("!!", " !")] == [str(PERTURBED_OP)]


def test_isolate_against_litert_blames_only_the_perturbed_op(seed_model_path, perturbed, litert):
    it = npdeeplab.Interpreter(model_path=perturbed)
    x = model_input(it, seed=3)
    isolated = compare_with_litert(it, x, reference_model=seed_model_path, isolate=True)
    assert [r.index for r in isolated.rows if not r.within] == [PERTURBED_OP]
    whole = compare_with_litert(it, x, reference_model=seed_model_path)
    assert whole.first_divergence.index == PERTURBED_OP
    assert sum(not r.within for r in whole.rows) > 1  # the error is inherited downstream


def test_two_model_mode_matches_by_tensor_name_when_structures_differ(seed_model_path, tmp_path):
    model = load_model(seed_model_path)
    graph = model.main
    shorter = dataclasses.replace(graph, ops=graph.ops[:40], outputs=graph.ops[39].outputs)
    cut = save_model(dataclasses.replace(model, subgraphs=(shorter,)), tmp_path / "first40.tflite")
    it = npdeeplab.Interpreter(model_path=seed_model_path)
    result = compare_models(seed_model_path, cut, model_input(it, seed=4))
    assert len(result.rows) == 40 and not result.exceeded
    assert "tensor name (40 of 70 ops matched)" in result.notes[0]


def test_ulps_are_counted_at_the_tensors_scale_whatever_the_tolerance():
    theirs = np.array([6.0, 1e-12, -3.0], np.float32)
    ours = theirs + np.array([4 * np.spacing(np.float32(6.0)), 1e-6, 0], np.float32)
    spacing = float(np.spacing(np.float32(6.0)))
    assert ulps_at_scale(1e-6, theirs) == pytest.approx(1e-6 / spacing)
    by_tolerance = {atol: measure(ours, theirs, atol, 1e-4)[2] for atol in (1e-4, 1e-7, 0.0)}
    assert len(set(by_tolerance.values())) == 1  # one definition, independent of --atol
    assert by_tolerance[0.0] == pytest.approx(4)  # 4 steps at 6.0; the 1e-6 error on 1e-12 counts as 2.1 of them
    assert measure(theirs, theirs, 0.0, 0.0)[2] == 0


def test_shared_nan_and_inf_count_as_agreement():
    theirs = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    max_abs, _, _, _, cosine, within = measure(theirs.copy(), theirs, 1e-4, 1e-4)
    assert max_abs == 0 and within and cosine == 1.0
    ours = theirs.copy()
    ours[3] = np.nan
    assert measure(ours, theirs, 1e-4, 1e-4)[0] == np.inf and not measure(ours, theirs, 1e-4, 1e-4)[5]


def test_extract_then_compare_round_trip(seed_model_path, image_path, tmp_path, litert, capsys):
    out = tmp_path / "op37.tflite"
    assert main(["extract", str(seed_model_path), "--op", "37", "-o", str(out), "--dump-inputs",
                 str(image_path("astronaut.png"))]) == 0
    dumped = np.load(out.with_suffix(".npz"))
    small = npdeeplab.Interpreter(model_path=out)
    inputs = [dumped[d["name"]] for d in small.get_input_details()]
    result = compare_with_litert(small, inputs, reference="litert-ref")
    assert len(result.rows) == 1 and not result.exceeded
    capsys.readouterr()


def test_compare_bad_input(seed_model_path, tmp_path, capsys):
    assert main(["compare", str(seed_model_path)]) == 2
    assert "IMAGE or --random" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.tflite"), "--random"]) == 2


def test_report_renders_in_a_real_browser(seed_model_path, image_path, tmp_path, litert):
    report = tmp_path / "report.html"
    assert main(["report", str(seed_model_path), str(image_path("astronaut.png")), "-o", str(report),
                 "--compare"]) == 0
    text = report.read_text()
    assert 1e5 < len(text) < 8e6
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    dom = browse(report, "--dump-dom", cwd=tmp_path).stdout
    for section in ("input", "segmentation", "graph", "ops", "compare"):
        assert f'<section id="{section}"' in dom, section
    assert dom.count("class=\"card\"") == 70 and "image pooling" in dom and "atrous d4" in dom
    assert "all 70 ops within tolerance" in dom
    shot = tmp_path / "shot.png"
    browse(report, f"--screenshot={shot}", "--window-size=1400,2400", cwd=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1400)
    assert pixels.std() > 20  # not a blank page: pictures and text rendered
    header = pixels[:60]
    assert header.mean() < 80  # the dark header bar is there


def test_report_bad_image_writes_nothing(seed_model_path, tmp_path, capsys):
    (tmp_path / "bad.png").write_text("no")
    assert main(["report", str(seed_model_path), str(tmp_path / "bad.png"), "-o", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


def test_python_api(seed_model_path, litert):
    it = npdeeplab.Interpreter(model_path=seed_model_path)
    x = model_input(it, seed=5)
    traced = it.trace(x, stop_after=2)
    assert len(traced.rows) == 3 and "<table>" in traced._repr_html_()
    result = npdeeplab.compare(it, x)
    assert not result.exceeded and "all 70 ops within tolerance" in result._repr_html_()
    from npdeeplab.tools.summary import summarize

    assert "<table>" in summarize(it)._repr_html_()

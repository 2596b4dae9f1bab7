"""The Coral uint8 DeepLab (deeplabv3_mnv2_dm05_pascal_quant) bit for bit against LiteRT's reference
kernels, op by op, on both backends; segmentation of the shared images; the tools on it; and how
LiteRT's own optimized kernels differ from its reference ones on this model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from PIL import Image

import npdeeplab
from npdeeplab.cli import main
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.runtime.inputs import random_inputs
from npdeeplab.segmentation import model_input, segment
from npdeeplab.tools.comparison import compare_with_litert, litert_tensors
from npdeeplab.tools.extract import extract_ops

MODEL = "deeplabv3_mnv2_dm05_pascal_quant"
IMAGES = ["astronaut.png", "chelsea.png", "bird_segmentation.bmp"]


@pytest.fixture(scope="module")
def quant_path(shared_models_dir):
    return shared_models_dir / f"{MODEL}.tflite"


@pytest.fixture(scope="module")
def astronaut_input(quant_path, image_path):
    return model_input(npdeeplab.Interpreter(model_path=quant_path, backend="numpy"), image_path("astronaut.png"))


@pytest.fixture(scope="module")
def reference(quant_path, astronaut_input, litert):
    """Every tensor LiteRT's reference kernels compute on the astronaut (a 0.3 s run)."""
    return litert_tensors(quant_path, [astronaut_input], "litert-ref")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_bit_exact_in_a_full_run(quant_path, astronaut_input, reference, backend):
    interpreter = npdeeplab.Interpreter(model_path=quant_path, backend=backend)
    result = compare_with_litert(interpreter, astronaut_input, reference="litert-ref", atol=0, rtol=0,
                                 reference_tensors=reference)
    assert len(result.rows) == 72 and not result.exceeded, result.to_text()
    assert all(row.max_abs == 0 for row in result.rows)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_bit_exact_fed_litert_inputs(quant_path, astronaut_input, reference, backend):
    interpreter = npdeeplab.Interpreter(model_path=quant_path, backend=backend)
    result = compare_with_litert(interpreter, astronaut_input, reference="litert-ref", isolate=True, atol=0, rtol=0,
                                 reference_tensors=reference)
    assert len(result.rows) == 72 and not result.exceeded, result.to_text()


@pytest.mark.parametrize("backend", BACKENDS)
def test_class_maps_identical_on_every_shared_image(quant_path, image_path, backend, litert):
    LiteRT, OpResolverType = litert
    theirs = LiteRT(model_path=str(quant_path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    theirs.allocate_tensors()
    ours = npdeeplab.Interpreter(model_path=quant_path, backend=backend)
    ours.allocate_tensors()
    for name in IMAGES:
        x = model_input(ours, image_path(name))
        assert x.dtype == np.uint8 and x.shape == (1, 513, 513, 3)
        np.testing.assert_array_equal(x[0], np.asarray(Image.open(image_path(name)).convert("RGB").resize(
            (513, 513), Image.Resampling.BILINEAR, reducing_gap=None)))  # raw pixels, as Coral feeds them
        for interpreter in (ours, theirs):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
            interpreter.invoke()
        labels = [it.get_tensor(it.get_output_details()[0]["index"]) for it in (ours, theirs)]
        np.testing.assert_array_equal(labels[0], labels[1], err_msg=name)


def test_coral_check_on_the_bird(quant_path, image_path):
    """Coral's own test: agreement/(2 - agreement) > 0.90 against the reference mask, at 513x513."""
    result = segment(image_path("bird_segmentation.bmp"), quant_path)
    truth = np.asarray(Image.open(image_path("bird_segmentation_mask.bmp")))
    assert result.labels.shape == truth.shape
    agreement = float(np.mean(result.labels == truth))
    assert agreement / (2 - agreement) > 0.90
    assert {a.name for a in result.areas()} >= {"background", "bird"}


def test_segment_from_the_command_line(image_path, tmp_path, capsys):
    assert main(["segment", str(image_path("astronaut.png")), "--model", MODEL, "-o", str(tmp_path / "m.png")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("astronaut.png  ") and "person" in line and "m.png" in line


def test_trace_shows_integers_and_real_values(quant_path, astronaut_input):
    traced = npdeeplab.Interpreter(model_path=quant_path).trace(astronaut_input)
    first = traced.rows[0]  # the stem convolution, RELU6 in uint8
    assert first.integer_range == (0, 255) and first.dtype == "uint8"
    assert first.stats.min == 0 and 5.99 <= first.stats.max <= 6.01  # its real values: 0..6
    assert traced.rows[-1].integer_range is None  # ARG_MAX: class ids, not quantized
    assert "integers" in traced.to_text().splitlines()[0]


def test_compare_against_the_reference_kernels_finds_nothing(quant_path, capsys, litert):
    code = main(["compare", str(quant_path), "--random", "--reference", "litert-ref", "--atol", "0", "--rtol", "0"])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[-1] == "all 72 ops within tolerance", out
    assert "off by 1/2/>2 lsb" in out.splitlines()[1]


def test_extract_keeps_quantization(quant_path, tmp_path, litert):
    model = load_model(quant_path)
    part = extract_ops(model, 2, 2)
    assert part.model.main.tensors[part.model.main.inputs[0]].quantization is not None
    data = write_model(part.model)
    x = random_inputs(part.model, seed=3)
    from quantized_harness import check

    check(part.model, x)
    assert len(data) > 0


def optimized_vs_reference(quant_path, astronaut_input) -> dict[int, tuple[str, int, int]]:
    """Per op: (kind, elements that differ, max LSB) between LiteRT's optimized kernels and its
    reference ones, each op fed the reference's own inputs."""
    from quantized_harness import run_litert

    model = load_model(quant_path)
    reference = litert_tensors(quant_path, [astronaut_input], "litert-ref")
    found = {}
    for op in model.main.ops:
        part = extract_ops(model, op.index, op.index)
        data = write_model(part.model)
        inputs = [reference[t] for t in part.source_inputs]
        ref = run_litert(data, inputs, reference=True)[0]
        opt = run_litert(data, inputs, reference=False)[0]
        gap = np.abs(ref.astype(np.int64) - opt.astype(np.int64))
        found[op.index] = (op.kind, int(np.count_nonzero(gap)), int(gap.max()))
    return found


def test_litert_optimized_kernels_differ_from_its_reference_kernels(quant_path, astronaut_input, litert):
    """A documented fact, kept asserted: on this model only CONV_2D ops without a fused ReLU differ
    between LiteRT's optimized (no delegate) and reference kernels, by one LSB, in few elements
    (LITERT_SEMANTICS.md section 11). Compare quantized models against `--reference litert-ref`."""
    model = load_model(quant_path)
    differences = optimized_vs_reference(quant_path, astronaut_input)
    differing = {index: d for index, d in differences.items() if d[1]}
    assert differing, "LiteRT's optimized kernels now agree with REF on this model: update the docs"
    for index, (kind, count, largest) in differing.items():
        activation = model.main.ops[index].options.fused_activation_function
        assert kind == "CONV_2D" and activation == "NONE" and largest == 1, (index, kind, activation, count, largest)


def test_report_on_the_quantized_model(quant_path, image_path, tmp_path, litert):
    """The HTML report renders quantized activations and holds them against LiteRT's reference kernels."""
    from npdeeplab.tools.report import write_report

    path = write_report(quant_path, image_path("chelsea.png"), tmp_path / "q.html", compare=True)
    text = path.read_text()
    assert text.count("class='card'") == 72 and "data:image/png;base64," in text
    assert "all 72 ops within tolerance" in text and "reference kernels" in text

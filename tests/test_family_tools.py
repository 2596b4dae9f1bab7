"""The tools on the segmentation family's shared MediaPipe Selfie model (float16 weights, HARD_SWISH,
the custom op Convolution2DTransposeBias at op 244, which LiteRT runs only as its builtin TRANSPOSE_CONV
rewrite): trace, extract of the custom op, compare, report with its one-channel maps as heat maps, and
compare refusing a custom op with no rewrite in one line."""

from __future__ import annotations

import base64
import io
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, browse, shared_file
from PIL import Image

import npdeeplab
from npdeeplab import CustomPrepared, NpDeepLabError, OpContext
from npdeeplab.cli import main
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.tools.comparison import compare_with_litert
from npdeeplab.tools.report import VIRIDIS, colour_ramp, heat_figure, one_channel_plane

SELFIE = "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite"
KIND = "CUSTOM:Convolution2DTransposeBias"
CUSTOM_OP = 244
OPS = 136  # 246 in the file, less the 110 DEQUANTIZE ops of float16 weights folded at load
NOTE = f"op {CUSTOM_OP} ({KIND}) runs in LiteRT as builtin TRANSPOSE_CONV"
ROW = re.compile(r"\s*(\d+)\s+([A-Za-z_0-9:]+)\s+(\[[\d,]+\])\s+(\S+)\s+(\S+)")


@pytest.fixture(scope="module")
def selfie() -> Path:
    return shared_file("models", SELFIE)


@pytest.fixture(scope="module")
def astronaut() -> Path:
    return shared_file("images", "astronaut.png")


def test_trace_has_the_custom_op_row(selfie, astronaut, tmp_path, capsys):
    dump = tmp_path / "all.npz"
    assert main(["trace", str(selfie), str(astronaut), "--dump", str(dump)]) == 0
    out = capsys.readouterr().out
    rows = {int(m[1]): m for m in map(ROW.match, out.splitlines()) if m}
    assert len(rows) == OPS and "all ops ran" in out
    assert rows[CUSTOM_OP][2] == KIND and rows[CUSTOM_OP][3] == "[1,256,256,1]"
    assert rows[245][2] == "LOGISTIC" and 0 <= float(rows[245][4]) <= float(rows[245][5]) <= 1
    arrays = np.load(dump)
    assert arrays[f"op{CUSTOM_OP}_{KIND}__t248"].shape == (1, 256, 256, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extract_of_the_custom_op(selfie, astronaut, tmp_path, capsys, litert, backend):
    """The extracted op keeps its custom code and options, runs exactly as inside the full model, and
    compares against LiteRT through the builtin rewrite."""
    out = tmp_path / "op244.tflite"
    assert main(["extract", str(selfie), "--op", str(CUSTOM_OP), "-o", str(out), "--dump-inputs", str(astronaut),
                 "--backend", backend]) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert f"op {CUSTOM_OP} ({KIND}) and 2 DEQUANTIZE ops widening float16 weights" in summary
    source, small = load_model(selfie).main.ops[CUSTOM_OP], load_model(out).main
    assert [op.kind for op in small.ops] == ["DEQUANTIZE", "DEQUANTIZE", KIND]
    assert small.ops[-1].custom_options == source.custom_options and len(source.custom_options) >= 12
    assert len(small.inputs) == 1  # the activation only: the weights stay constants (float16, as stored)

    dumped = np.load(out.with_suffix(".npz"))
    interpreter = npdeeplab.Interpreter(model_path=out, backend=backend)
    assert [step.op.kind for step in interpreter.ops] == [KIND]
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], dumped["add_13__xeno_compat__1"])
    interpreter.invoke()
    ours = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(ours, dumped["segment"])  # what op 244 computed in the full run

    result = compare_with_litert(interpreter, [dumped["add_13__xeno_compat__1"]], reference="litert-ref")
    assert not result.exceeded and len(result.rows) == 1 and result.rows[0].kind == KIND, result.to_text()
    assert main(["compare", str(out), "--random", "--backend", backend]) == 0
    text = capsys.readouterr().out
    assert f"note: op 2 ({KIND}) runs in LiteRT as builtin TRANSPOSE_CONV" in text
    assert text.splitlines()[-1] == "all 1 ops within tolerance"


def test_compare_the_whole_model_says_what_litert_ran(selfie, astronaut, capsys, litert):
    assert main(["compare", str(selfie), str(astronaut)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"note: {NOTE}" in lines and lines[-1] == f"all {OPS} ops within tolerance"


NO_REWRITE = "TestNoLiteRTRewrite"


@pytest.fixture
def toy_custom_op(tmp_path) -> Iterator[Path]:
    """A model x -> CUSTOM:TestNoLiteRTRewrite (x * 2) -> RELU, the op registered without a rewrite."""

    def prepare(ctx: OpContext, options: bytes) -> CustomPrepared:
        x = ctx.input(0)
        return CustomPrepared(params=struct.unpack("<f", options)[0], output_shapes=[x.shape],
                              output_dtypes=[x.dtype])

    g = GraphBuilder()
    x = g.add_input("x", (1, 4, 4, 1), np.float32)
    y = g.add_op(f"CUSTOM:{NO_REWRITE}", [x], output_shape=(1, 4, 4, 1), output_dtype=np.float32,
                 custom_options=struct.pack("<f", 2.0))
    g.mark_outputs(g.add_op("RELU", [y]))
    path = tmp_path / "toy.tflite"
    path.write_bytes(g.to_bytes())
    npdeeplab.register_custom_op(NO_REWRITE, prepare=prepare, kernel=lambda factor, x: x * np.float32(factor))
    try:
        yield path
    finally:
        npdeeplab.unregister_custom_op(NO_REWRITE)


def test_compare_refuses_a_custom_op_without_rewrite_in_one_line(toy_custom_op, capsys):
    assert main(["trace", str(toy_custom_op), "--random"]) == 0  # npdeeplab runs it
    capsys.readouterr()
    assert main(["compare", str(toy_custom_op), "--random"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"npdeeplab: error: LiteRT cannot run op 0 (CUSTOM:{NO_REWRITE}), and npdeeplab knows no builtin "
        "equivalent of it to run instead (register_custom_op(..., litert_rewrite=...))\n"
    )
    with pytest.raises(NpDeepLabError, match="LiteRT cannot run op 0"):
        compare_with_litert(str(toy_custom_op), np.zeros((1, 4, 4, 1), np.float32))


def test_colour_ramp_is_viridis_and_grows_lighter():
    ends = colour_ramp(np.array([0.0, 1.0, -3.0, 7.0, np.nan]))
    first, last = (tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in (VIRIDIS[0], VIRIDIS[-1]))
    assert [tuple(v) for v in ends] == [first, last, first, last, first]  # clipped; NaN as the minimum
    luminance = colour_ramp(np.linspace(0, 1, 64)).astype(np.float64) @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(luminance) > 0)


def test_one_channel_maps_are_told_apart():
    assert one_channel_plane(np.zeros((1, 256, 256, 1))).shape == (256, 256)
    assert one_channel_plane(np.zeros((1, 33, 20))).shape == (33, 20)  # [1, H, W], as channel_strip reads it
    for other in ((1, 8, 8, 2), (1, 1, 1, 1), (1, 1, 1, 16), (1, 10), (1, 3, 1, 1)):
        assert one_channel_plane(np.zeros(other)) is None, other
    text = heat_figure(np.array([[np.nan, -2.0], [1.0, 4.0]], np.float32), "x")
    assert text.count("<img") == 2 and "<span>4</span><span>-2</span>" in text  # range from the finite values


def picture(text: str, alt: str) -> np.ndarray:
    found = re.search(rf"src='data:image/png;base64,([^']+)' alt='{re.escape(alt)}'", text)
    assert found, alt
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(found[1]))).convert("RGB")).astype(np.int64)


def test_report_renders_the_selfie_model_in_a_real_browser(selfie, astronaut, tmp_path, litert):
    report = tmp_path / "selfie.html"
    assert main(["report", str(selfie), str(astronaut), "-o", str(report), "--compare"]) == 0
    text = report.read_text()
    assert NOTE in text and f"all {OPS} ops within tolerance" in text
    assert "of op 245 LOGISTIC's output; white = 0" in text  # one channel: no "max over channels"

    # The matte as a heat map on the ramp, 0 to 1: its light part is the share labelled person.
    matte = picture(text, "person probability heat map")
    ramp = colour_ramp(np.linspace(0, 1, 1024)).astype(np.int64)
    nearest = np.abs(matte.reshape(-1, 1, 3) - ramp[None]).sum(axis=-1).argmin(axis=1)
    assert np.abs(matte.reshape(-1, 3) - ramp[nearest]).max() <= 3
    person = float(re.search(r"person</td><td class='num'>([\d.]+)%", text)[1]) / 100
    assert abs(np.mean(nearest > 512) - person) < 0.03
    assert "alt='colour bar from 0 to 1'" in text and "<span>1</span><span>0</span>" in text
    assert picture(text, f"heat map of op {CUSTOM_OP}").shape == (160, 160, 3)

    dom = browse(report, "--dump-dom", cwd=tmp_path).stdout
    for section in ("input", "segmentation", "graph", "ops", "compare"):
        assert f'<section id="{section}"' in dom, section
    assert dom.count('class="card"') == OPS and NOTE in dom
    assert dom.count('class="heat"') == 3  # the matte, op 244's logit map and op 245's probability
    shot = tmp_path / "shot.png"
    browse(report, f"--screenshot={shot}", "--window-size=1400,1400", cwd=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)
    assert pixels.shape == (1400, 1400, 3) and pixels.std() > 20
    for colour in (VIRIDIS[0], VIRIDIS[-1]):  # the rendered matte: its background and the person
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert np.count_nonzero(np.abs(pixels - rgb).sum(axis=-1) <= 12) > 5000, colour

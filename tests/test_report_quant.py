"""`npdeeplab report QUANT IMAGE --float-model FLOAT`: the "where quantization hurts" section renders
quant-diff's ranking (isolated and accumulated figures, keep-in-float marks) on the model pair of
docs/examples/quant_diff_pair.py, in which op 3's output scale is 16x coarser and ranks first."""

from __future__ import annotations

import re
from typing import Any

from conftest import shared_file
from test_quant_diff import COARSE_OP, int8_twin, small_float_model

from npdeeplab.cli import main
from npdeeplab.model.writer import save_model


def test_report_has_the_quantization_ranking(tmp_path: Any, capsys: Any) -> None:
    model = small_float_model()
    save_model(model, tmp_path / "float.tflite")
    save_model(int8_twin(model, coarse_op=COARSE_OP), tmp_path / "quant_coarse.tflite")
    image = shared_file("images", "bird_segmentation.bmp")
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "quant_coarse.tflite"), str(image), "-o", str(out), "--float-model",
                 str(tmp_path / "float.tflite")]) == 0
    page = out.read_text()
    assert "<a href='#quantization'>Where quantization hurts</a>" in page
    section = page.split("<section id='quantization'>")[1].split("</section>")[0]
    assert "isolated (own loss)" in section and "accumulated (whole run)" in section
    rows = re.findall(r"<tr[^>]*><td>(\d+) ([^<]*)</td><td class='num'>(\d+)</td><td>([A-Z_0-9]+)</td>", section)
    assert len(rows) == 9 and [int(r[0]) for r in rows] == list(range(1, 10))
    assert int(rows[0][2]) == COARSE_OP and "keep in float" in rows[0][1]  # the coarse layer, marked
    marked = [int(r[2]) for r in rows if "keep in float" in r[1]]
    assert f"keep in float ({len(marked)}):" in section and f"op {COARSE_OP} CONV_2D" in section
    assert section.count("<td class='num'>") == 9 * (1 + 8)  # the op index, then 4 isolated + 4 accumulated


def test_report_without_float_model_has_no_section(tmp_path: Any) -> None:
    model = small_float_model()
    save_model(int8_twin(model), tmp_path / "quant.tflite")
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "quant.tflite"), str(shared_file("images", "chelsea.png")), "-o",
                 str(out)]) == 0
    assert "Where quantization hurts" not in out.read_text()

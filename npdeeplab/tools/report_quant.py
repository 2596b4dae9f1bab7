"""The report's "where quantization hurts" section: quant-diff (npdeeplab.tools.quant_diff) of the
report's quantized model against its float original on the report's image, as an HTML table —
the layers worst isolated SNR first, isolated and accumulated figures side by side, the layers the
stated rule would keep in float marked."""

from __future__ import annotations

import html
import os

from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.tools.quant_diff import Figures, LayerDiff, QuantDiff, paired_image_inputs, quant_diff

FIGURE_HEADS = ("mean lsb", "max lsb", "SNR dB", "cosine")


def quant_diff_section(float_model: str | os.PathLike, quant_model: str | os.PathLike, image: str | os.PathLike,
                       numerics: str | None = None) -> str:
    """The section's HTML: quant_model (the report's model, a path) against float_model on image."""
    from npdeeplab.zoo import resolve_model

    float_side = Interpreter(model_path=resolve_model(float_model))
    quant = Interpreter(model_path=quant_model, numerics=numerics)
    result = quant_diff(float_side, quant, paired_image_inputs(float_side, quant, [image]))
    return ranking_html(result)


def ranking_html(result: QuantDiff) -> str:
    title = (f"{html.escape(result.quant_model)} against {html.escape(result.float_model)} on the report's image: "
             f"{len(result.layers)} layers matched, {len(result.unmatched)} ops unmatched")
    if result.problem is not None:
        return f"<p>{title}.</p><p><b>{html.escape(result.problem)}</b></p>"
    figures = "".join(f"<th class='num'>{h}</th>" for h in FIGURE_HEADS)
    head = ("<tr><th></th><th></th><th></th><th></th><th colspan='4'>isolated (own loss)</th>"
            "<th colspan='4'>accumulated (whole run)</th></tr>"
            f"<tr><th>rank</th><th>#</th><th>op</th><th>output</th>{figures}{figures}</tr>")
    rows = "".join(_row(rank, layer) for rank, layer in enumerate(result.layers, 1))
    kept = ", ".join(f"op {layer.index} {layer.kind} '{layer.tensor}'" for layer in result.keep_float)
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in [*result.notes, *(
        f"unmatched: {line}" for line in result.unmatched)])
    return (
        f"<p>{title}. Each quantized layer against its float original: <i>isolated</i> fed the float model's "
        "activations quantized with its own input parameters (its own loss), <i>accumulated</i> in the whole "
        "int8 run; errors in LSBs of the output scale. Ranked by isolated SNR.</p>"
        f"<table class='quantdiff'>{head}{rows}</table>"
        f"<p>{html.escape(result.rule())}.<br><b>keep in float ({len(result.keep_float)}):</b> "
        f"{html.escape(kept or 'none')}</p>" + (f"<ul>{notes}</ul>" if notes else "")
    )


def _row(rank: int, layer: LayerDiff) -> str:
    mark = "\u2731 keep in float" if layer.keep_float else ""
    style = " style='background:#fdecea'" if layer.keep_float else ""
    return (f"<tr{style}><td>{rank} {mark}</td><td class='num'>{layer.index}</td><td>{html.escape(layer.kind)}</td>"
            f"<td>{html.escape(layer.tensor)}</td>{_cells(layer.isolated)}{_cells(layer.accumulated)}</tr>")


def _cells(figures: Figures | None) -> str:
    if figures is None:
        return "<td class='num'>-</td>" * 4
    values = ("-" if figures.mean_lsb is None else f"{figures.mean_lsb:.3f}",
              "-" if figures.max_lsb is None else f"{figures.max_lsb:.3g}", f"{figures.snr_db:.1f}",
              f"{figures.cosine:.5f}")
    return "".join(f"<td class='num'>{v}</td>" for v in values)

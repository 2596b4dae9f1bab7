"""One self-contained HTML page about a model and an image: the segmentation, the graph with its
branches, every op's output as channel thumbnails (one-channel maps, a matte among them, as heat
maps), and optionally the error against LiteRT (a model with custom ops: against their builtin rewrite).

Everything is inline (PNG as base64, CSS in a style element); the page needs no network.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.runtime.trace import Trace, trace
from npdeeplab.segmentation import model_input
from npdeeplab.tools.summary import describe_options

KIND_COLOURS = {
    "CONV_2D": "#4c78a8", "DEPTHWISE_CONV_2D": "#72b7b2", "ADD": "#9d755d", "AVERAGE_POOL_2D": "#e45756",
    "MEAN": "#e45756", "RESIZE_BILINEAR": "#f58518", "RESIZE_NEAREST_NEIGHBOR": "#f58518",
    "CONCATENATION": "#b279a2", "ARG_MAX": "#54a24b",
}
THUMBNAILS = 8
THUMB = 56
HEAT = 160  # the longer side of a one-channel map's picture in an op's card
# matplotlib's viridis at ten evenly spaced levels (matplotlib is no dependency), linear between
# them: dark blue to yellow with lightness rising all the way, so a lighter pixel is a larger value
# and the map reads the same in grey.
VIRIDIS = ("#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6dcd59", "#b4de2c",
           "#fde725")


@dataclass(frozen=True)
class Node:
    index: int
    kind: str
    lane: int
    parents: tuple[int, ...]  # op indices whose outputs this op reads
    label: str
    options: str
    role: str  # "", "image pooling", "resize", "ASPP concat", "atrous d2"...


def layout(interpreter: Interpreter) -> list[Node]:
    """Give each op a lane: an op continues the lane of the op it reads from if it is that lane's
    latest op; otherwise (a second reader of the same tensor: a branch) it opens a new lane.
    An op that joins lanes (ADD, CONCATENATION) keeps the lowest and frees the others."""
    producer = {t: step.op.index for step in interpreter.ops for t in step.op.outputs}
    lane_of: dict[int, int] = {}
    tail: dict[int, int] = {}  # lane -> its latest op
    nodes = []
    for step in interpreter.ops:
        op = step.op
        parents = tuple(dict.fromkeys(producer[i] for i in op.inputs if i in producer))
        continuing = sorted(lane_of[p] for p in parents if tail.get(lane_of[p]) == p)
        if continuing:
            lane = continuing[0]
            for other in continuing[1:]:
                tail.pop(other, None)
        else:
            lane = next(n for n in range(len(tail) + 1) if n not in tail)
        lane_of[op.index] = lane
        tail[lane] = op.index
        shape = interpreter.tensors[op.outputs[0]].shape
        options = describe_options(op, interpreter.tensors)
        label = f"{op.index} {op.kind} {options} \u2192 {list(shape)}"
        nodes.append(Node(op.index, op.kind, lane, parents, label, options, _role(op, interpreter)))
    return nodes


def _role(op: object, interpreter: Interpreter) -> str:
    o = op.options
    if op.kind in ("AVERAGE_POOL_2D", "MEAN"):
        out = interpreter.tensors[op.outputs[0]].shape
        if len(out) == 4 and out[1] == out[2] == 1:
            return "image pooling"
    if op.kind.startswith("RESIZE"):
        return "resize"
    if op.kind == "CONCATENATION":
        return "ASPP concat"
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and max(o.dilation_h_factor, o.dilation_w_factor) > 1:
        return f"atrous d{o.dilation_h_factor}"
    return ""


def graph_svg(nodes: list[Node]) -> str:
    row, lane_width, box_width = 26, 440, 400
    lanes = max(n.lane for n in nodes) + 1
    width, height = lanes * lane_width + 40, len(nodes) * row + 20
    position = {n.index: (10 + n.lane * lane_width, 10 + i * row) for i, n in enumerate(nodes)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="graph">']
    for n in nodes:
        x1, y1 = position[n.index]
        for p in n.parents:
            x0, y0 = position[p]
            if x0 == x1 and y0 + row == y1:
                continue  # the next row in the same lane: adjacency says it
            if x0 == x1:  # a skip connection: an arc on the right of the lane
                sx, sy, ex, ey = x0 + box_width, y0 + (row - 6) / 2, x1 + box_width, y1 + (row - 6) / 2
                bulge = min(16 + (y1 - y0) / 12, 34)
                path = f"M{sx},{sy} C{sx + bulge},{sy} {ex + bulge},{ey} {ex},{ey}"
                colour = "#8a8f98"
            else:  # a branch or a join across lanes
                sx, sy, ex, ey = x0 + box_width / 2, y0 + row - 6, x1 + box_width / 2, y1
                path = f"M{sx},{sy} C{sx},{sy + 14} {ex},{ey - 14} {ex},{ey}"
                colour = "#c0392b"
            parts.append(f'<path d="{path}" stroke="{colour}" fill="none" stroke-width="1.4"/>')
    for n in nodes:
        x, y = position[n.index]
        colour = KIND_COLOURS.get(n.kind, "#888")
        title = html.escape(n.label + (f" ({n.role})" if n.role else ""))
        parts.append(
            f'<g><title>{title}</title><rect x="{x}" y="{y}" width="{box_width}" height="{row - 6}" rx="4" '
            f'fill="{colour}" fill-opacity="0.16" stroke="{colour}"/>'
            f'<a href="#op-{n.index}"><text x="{x + 6}" y="{y + 14}" font-size="10.5">'
            f"{html.escape(_short(n))}</text></a></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(node: Node) -> str:
    kind = node.kind.replace("DEPTHWISE_CONV_2D", "DW_CONV").replace("RESIZE_BILINEAR", "RESIZE")
    text = f"{node.index} {kind} {node.options}"
    text = text if len(text) <= 30 else text[:29] + "\u2026"
    shape = node.label.split("\u2192 ")[-1].replace(" ", "")
    tag = f" \u00b7 {node.role}" if node.role else ""
    return f"{text} \u2192 {shape}{tag}"


def channel_strip(array: np.ndarray) -> str:
    """The first channels of an NHWC output side by side, each scaled to its own min..max (for a
    quantized output that is the same picture as its dequantized values: the scaling is affine)."""
    x = np.asarray(array, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]
    elif x.ndim == 3:
        x = x[0][..., None]
    elif x.ndim != 3:
        return ""
    tiles = []
    for c in range(min(THUMBNAILS, x.shape[-1])):
        plane = x[..., c]
        low, high = float(plane.min()), float(plane.max())
        scaled = (plane - low) / (high - low) if high > low else np.zeros_like(plane)
        tile = Image.fromarray((scaled * 255).astype(np.uint8), "L").resize((THUMB, THUMB), Image.Resampling.NEAREST)
        tiles.append(tile)
    strip = Image.new("L", (len(tiles) * (THUMB + 2), THUMB), 255)
    for i, tile in enumerate(tiles):
        strip.paste(tile, (i * (THUMB + 2), 0))
    return png_data_uri(strip.convert("RGB"))


def one_channel_plane(array: np.ndarray) -> np.ndarray | None:
    """The [H, W] plane of a one-channel map ([1, H, W, 1] or [1, H, W], as channel_strip reads
    them), or None for anything else (several channels, a vector, a 1x1 map)."""
    x = np.asarray(array)
    if x.ndim == 4 and x.shape[-1] == 1:
        plane = x[0, ..., 0]
    elif x.ndim == 3:
        plane = x[0]
    else:
        return None
    return plane if min(plane.shape) > 1 else None


def colour_ramp(level: np.ndarray) -> np.ndarray:
    """Levels in [0, 1] (clipped; NaN as 0) as uint8 RGB along VIRIDIS."""
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in VIRIDIS], np.float32)
    at = np.linspace(0, 1, len(stops))
    level = np.clip(np.nan_to_num(np.asarray(level, np.float32), nan=0.0), 0, 1)
    rgb = np.stack([np.interp(level, at, stops[:, k]) for k in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def heat_figure(plane: np.ndarray, alt: str, low: float | None = None, high: float | None = None,
                size: int = HEAT) -> str:
    """A one-channel map as a viridis heat map, its longer side size pixels, scaled to low..high
    (default: its own finite min..max), with a colour bar whose ends are labelled with both."""
    values = np.asarray(plane, np.float32)
    finite = values[np.isfinite(values)]
    if low is None:
        low = float(finite.min()) if finite.size else 0.0
    if high is None:
        high = float(finite.max()) if finite.size else 0.0
    level = (values - low) / (high - low) if high > low else np.zeros_like(values)
    scale = size / max(values.shape)
    box = (max(1, round(values.shape[1] * scale)), max(1, round(values.shape[0] * scale)))
    filter_ = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX  # pixels stay pixels; no aliasing
    shown = np.asarray(Image.fromarray(np.nan_to_num(level, nan=0.0).astype(np.float32)).resize(box, filter_))
    bar = colour_ramp(np.repeat(np.linspace(1, 0, box[1], dtype=np.float32)[:, None], 12, axis=1))
    return (
        f"<div class='heat'><img src='{png_data_uri(Image.fromarray(colour_ramp(shown)))}' alt='{html.escape(alt)}'/>"
        f"<img src='{png_data_uri(Image.fromarray(bar))}' alt='colour bar from {low:.3g} to {high:.3g}'/>"
        f"<div class='ticks' style='height:{box[1]}px'><span>{high:.3g}</span><span>{low:.3g}</span></div></div>"
    )


def png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def heat_map(difference: np.ndarray) -> Image.Image:
    """|difference| as a white-to-red picture, scaled to its maximum."""
    top = float(difference.max()) or 1.0
    level = np.clip(difference / top, 0, 1)
    rgb = np.stack([np.full_like(level, 1.0), 1 - level, 1 - level], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8), "RGB")


def build_report(model: str | os.PathLike, image: str | os.PathLike, compare: bool = False,
                 numerics: str | None = None, float_model: str | os.PathLike | None = None) -> str:
    """The HTML page as a string (numerics: npdeeplab.runtime.numerics, default "reference");
    float_model: the quantized model's float original, for the "where quantization hurts" section."""
    from npdeeplab.segmentation import segment
    from npdeeplab.zoo import resolve_model

    path = resolve_model(model)
    interpreter = Interpreter(model_path=path, numerics=numerics)
    x = model_input(interpreter, image)
    traced = trace(interpreter, x, keep_arrays=True)
    result = segment(image, model, numerics=numerics)
    sections = [
        ("input", "Input", _input_section(image, x)),
        ("segmentation", "Segmentation", _segmentation_section(result)),
        ("graph", "Graph", _graph_section(interpreter)),
        ("ops", "Every op", _ops_section(traced)),
    ]
    if compare:
        sections.append(("compare", "Against LiteRT", _compare_section(interpreter, x, traced)))
    if float_model is not None:
        from npdeeplab.tools.report_quant import quant_diff_section

        sections.append(("quantization", "Where quantization hurts",
                         quant_diff_section(float_model, path, image, numerics)))
    return _page(Path(path).name, Path(str(image)).name, sections)


def write_report(model: str | os.PathLike, image: str | os.PathLike, output: str | os.PathLike,
                 compare: bool = False, numerics: str | None = None,
                 float_model: str | os.PathLike | None = None) -> Path:
    from npdeeplab.model.writer import write_atomically

    return write_atomically(output, build_report(model, image, compare, numerics, float_model).encode("utf-8"))


def _input_section(image: str | os.PathLike, x: np.ndarray) -> str:
    from npdeeplab.segmentation.images import load_image

    picture = load_image(image)
    shown = picture.copy()
    shown.thumbnail((420, 420))
    return (
        f"<div class='row'><img class='photo' src='{png_data_uri(shown)}' alt='input image'/>"
        f"<p class='note'>{picture.width}\u00d7{picture.height} pixels, stretched to the model's input "
        f"{list(x.shape)} {x.dtype} with a bilinear filter and scaled to [{x.min():.2f}, {x.max():.2f}].</p></div>"
    )


def _segmentation_section(result: object) -> str:
    shown = result.overlay(alpha=0.6)
    shown.thumbnail((560, 560))
    matte = ""
    if result.matte is not None:
        matte = (
            f"<figure>{heat_figure(result.matte, 'person probability heat map', 0.0, 1.0, size=360)}"
            "<figcaption>The matte: person probability at the photo's size, 0 to 1</figcaption></figure>"
        )
    rows = "".join(
        f"<tr><td><span class='swatch' style='background:rgb{tuple(int(v) for v in _colour(a.class_id))}'></span>"
        f"{html.escape(a.name)}</td><td class='num'>{100 * a.share:.1f}%</td><td class='num'>{a.pixels}</td></tr>"
        for a in result.areas()
    )
    return (
        f"<div class='row'><img class='photo' src='{png_data_uri(shown)}' alt='segmentation overlay'/>"
        f"<table class='areas'><thead><tr><th>class</th><th>area</th><th>pixels</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{matte}</div>"
    )


def _colour(class_id: int) -> np.ndarray:
    from npdeeplab.segmentation.palette import PALETTE

    return PALETTE[class_id]


def _graph_section(interpreter: Interpreter) -> str:
    nodes = layout(interpreter)
    roles = sorted({n.role.split(" d")[0] for n in nodes if n.role})
    present = {n.kind for n in nodes}
    legend = "".join(
        f"<span class='chip' style='border-color:{colour}'>{kind}</span>"
        for kind, colour in KIND_COLOURS.items()
        if kind in present
    )
    return (
        "<p>Ops in execution order, one per row. An op that reads a tensor another op already read starts a new "
        "lane, so parallel branches (ASPP's image pooling beside its 1\u00d71 branch) sit side by side; grey "
        f"curves are skip connections, red ones cross lanes. Marked: {', '.join(roles)}. Hover for the full "
        f"options; click for the op's outputs.</p><div class='legend'>{legend}</div>"
        f"<div class='graphbox'>{graph_svg(nodes)}</div>"
    )


def _ops_section(traced: Trace) -> str:
    cards = []
    arrays = {int(k[2:5]): v for k, v in traced.arrays.items() if k.startswith("op")}
    for r in traced.rows:
        s = r.stats
        plane = one_channel_plane(arrays[r.index])
        if plane is not None:
            picture = heat_figure(plane, f"heat map of op {r.index}")
        else:
            strip = channel_strip(arrays[r.index])
            picture = f"<img src='{strip}' alt='channels of op {r.index}'/>" if strip else ""
        cards.append(
            f"<div class='card' id='op-{r.index}'><h3>{r.index} {html.escape(r.kind)} "
            f"<small>{list(r.shape)}</small></h3>{picture}<p class='stats'>min {s.min:.3g} \u00b7 max {s.max:.3g} "
            f"\u00b7 mean {s.mean:.3g} \u00b7 std {s.std:.3g} \u00b7 zeros {100 * s.zeros:.1f}% \u00b7 "
            f"{r.ms:.2f} ms</p></div>"
        )
    return (
        f"<p>The first {THUMBNAILS} channels of each op's output, each scaled to its own range "
        "(black = its minimum, white = its maximum); a one-channel map (a matte, a logit map) as a heat map, "
        "dark blue at its minimum to yellow at its maximum, the two written beside its colour bar.</p>"
        + "".join(cards)
    )


def _compare_section(interpreter: Interpreter, x: np.ndarray, traced: Trace) -> str:
    from npdeeplab.runtime.graph import model_numerics
    from npdeeplab.runtime.trace import dump_key
    from npdeeplab.tools.comparison import compare_with_litert, litert_source, litert_tensors

    # Quantized models are held against LiteRT's reference kernels, the ones npdeeplab matches
    # bit for bit; its optimized integer kernels round differently.
    reference = "litert-ref" if model_numerics(interpreter.model.main).endswith("quantized") else "litert"
    source, _ = litert_source(interpreter.model)  # a model with custom ops: their builtin rewrite
    theirs = litert_tensors(source, [x], reference)
    comparison = compare_with_litert(interpreter, x, reference=reference, reference_tensors=theirs)
    last = traced.rows[-1]  # the op that writes the model's output
    ours = traced.arrays[dump_key(last.index, last.kind, last.tensor)]
    difference = np.abs(ours.astype(np.float64) - theirs[last.tensor].astype(np.float64))
    while difference.ndim > 2:
        difference = difference.max(axis=-1) if difference.ndim == 3 else difference[0]
    heat = heat_map(difference)
    heat = heat.resize((min(514, heat.width * 2), min(514, heat.height * 2)), Image.Resampling.NEAREST)
    return (
        f"<p><b>{html.escape(comparison.summary())}</b> (against {html.escape(comparison.reference)}).</p>"
        f"<div class='row'><figure><img src='{png_data_uri(heat)}' alt='heat map of output differences'/>"
        f"<figcaption>|npdeeplab \u2212 LiteRT| of op {last.index} {html.escape(last.kind)}'s output"
        f"{', max over channels' if ours.ndim > 1 and ours.shape[-1] > 1 else ''}; white = 0, red = "
        f"{float(difference.max()):.2g}</figcaption></figure></div>" + comparison._repr_html_()
    )


STYLE = """
body{margin:0;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2329;background:#f6f7f9}
header{background:#1d2939;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c7d0dc}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde2e8;padding:8px 32px;z-index:2}
nav a{margin-right:18px;color:#2f5d8a;text-decoration:none;font-weight:600}
main{padding:8px 32px 48px;max-width:1400px}
section{background:#fff;border:1px solid #e3e7ec;border-radius:10px;margin:18px 0;padding:8px 22px 18px}
h2{font-size:18px;margin:14px 0 8px}.row{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.photo{border-radius:6px;max-width:560px}table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eef0f3;text-align:left}.num{text-align:right}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #555;margin-right:6px;vertical-align:-1px}
.graphbox{overflow:auto;border:1px solid #eef0f3;border-radius:6px}
.graph text{font-family:ui-monospace,Menlo,monospace;fill:#1d2329}.legend{margin:6px 0 10px}
.chip{display:inline-block;border:2px solid;border-radius:10px;padding:0 8px;margin:2px 6px 2px 0;font-size:12px}
.card{display:inline-block;vertical-align:top;width:470px;margin:6px 10px 6px 0;padding:6px 10px;
border:1px solid #eef0f3;border-radius:8px}.card h3{font-size:13px;margin:2px 0 6px}.card small{color:#667}
.stats{font-size:12px;color:#445;margin:4px 0}
figure{margin:0}.heat{display:flex;gap:6px;align-items:flex-start}.heat img{display:block}
.ticks{display:flex;flex-direction:column;justify-content:space-between;font-size:11px;color:#445}.note{max-width:460px;flex:1}figcaption{font-size:12px;color:#556}
"""


def _page(model: str, image: str, sections: list[tuple[str, str, str]]) -> str:
    links = "".join(f"<a href='#{key}'>{title}</a>" for key, title, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{title}</h2>{content}</section>" for key, title, content in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>npdeeplab report: {html.escape(model)} on {html.escape(image)}</title><style>{STYLE}</style></head>"
        f"<body><header><h1>npdeeplab report</h1><p>{html.escape(model)} on {html.escape(image)}</p></header>"
        f"<nav>{links}</nav><main>{body}</main></body></html>"
    )

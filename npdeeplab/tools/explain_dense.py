"""`explain` for FULLY_CONNECTED and TRANSPOSE_CONV, float and quantized, each in its reference
kernel's order (see npdeeplab.tools.explain for the shared steps and the conventions).

FULLY_CONNECTED: reference_ops::FullyConnected sums one input row times one filter row, in order;
the quantized kernels rescale in double, static_cast<int32_t>(round(double(acc) * scale[u])), not
through MultiplyByQuantizedMultiplier (kernels/integer/fully_connected.py).
TRANSPOSE_CONV: reference_ops::TransposeConv scatters; an output element's terms arrive from the
input pixels in raster order, each through the one tap that lands on it, channels inner.
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.fixed_point import round_to_int32, wrap_int32
from npdeeplab.tools.explain import (
    Call,
    Explainer,
    Number,
    Step,
    bias_and_clamp_steps,
    mbqm_steps,
    multiplier_step,
    output_steps,
)

ROW_LIMIT = 16  # longer sums show their first and last rows; --json has them all


def shown(rows: list[str]) -> list[str]:
    if len(rows) <= ROW_LIMIT:
        return rows
    return [*rows[:12], f"   ... {len(rows) - 16} more (--json lists them)", *rows[-4:]]


def fc_row(call: Call, index: tuple[int, ...]) -> tuple[int, int, np.ndarray, np.ndarray, Step]:
    """(b, u, input row, filter row, step): output element index is row b, unit u of [batch, units]."""
    x, w = call.inputs[0], call.inputs[1]
    p = call.prepared.params
    u = index[-1]
    b = int(np.ravel_multi_index(index[:-1], call.output.shape[:-1])) if len(index) > 1 else 0
    row = x.reshape(-1)[b * p.depth:(b + 1) * p.depth]
    step = Step("row and unit", (f"input read as [{p.batch}, {p.depth}]: row {b} (input values {b * p.depth}.."
                                 f"{(b + 1) * p.depth - 1}) times filter row {u}",),
                {"batch_row": b, "unit": u, "depth": p.depth})
    return b, u, row, w[u], step


def fully_connected_float(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::FullyConnected (float): total += x[d]*w[u, d] in float32, d in order."""
    b_, u, row, weights, first = fc_row(call, index)
    p, bias_tensor = call.prepared.params, call.inputs[2] if len(call.inputs) > 2 else None
    total, rows, terms = np.float32(0), [], []
    for d, (v, wv) in enumerate(zip(row, weights, strict=True)):
        product = np.float32(v * wv)
        total = np.float32(total + product)
        terms.append({"d": d, "x": v, "w": wv, "product": product, "sum": total})
        rows.append(f"{d:>5} {v:>14.7g} {wv:>14.7g} {product:>16.9g} {total:>16.9g}")
    head = f"{'d':>5} {'x':>14} {'w':>14} {'x*w':>16} {'running sum':>16}"
    steps = [first, Step("products and the running sum (float32, the kernel's order)", (head, *shown(rows)),
                         {"terms": terms, "sum": total})]
    bias = np.float32(0 if bias_tensor is None else bias_tensor.reshape(-1)[u])
    tail, value = bias_and_clamp_steps(total, bias, p.act_min, p.act_max)
    return steps + tail, value


def fully_connected_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_(integer_)ops::FullyConnected(PerChannel): the int32 sum, then the double rescale."""
    _, u, row, weights, first = fc_row(call, index)
    p, bias_tensor = call.prepared.params, call.inputs[2] if len(call.inputs) > 2 else None
    steps = [first, Step("zero points subtracted", (f"x - ({-p.input_offset}), w - ({-p.filter_offset})",),
                         {"input_zero_point": -p.input_offset, "filter_zero_point": -p.filter_offset})]
    acc, rows, terms = 0, [], []
    for d, (v, wv) in enumerate(zip(row.tolist(), weights.tolist(), strict=True)):
        product = (wv + p.filter_offset) * (v + p.input_offset)
        acc += product
        terms.append({"d": d, "x": v, "w": wv, "product": product, "acc": acc})
        rows.append(f"{d:>5} {v:>5}{v + p.input_offset:>+7} {wv:>5}{wv + p.filter_offset:>+7} {product:>10} {acc:>10}")
    head = f"{'d':>5} {'x  x-zx':>12} {'w  w-zw':>12} {'product':>10} {'acc':>10}"
    steps.append(Step("int32 accumulator, the kernel's order", (head, *shown(rows)), {"terms": terms, "acc": acc}))
    bias = 0 if bias_tensor is None else int(bias_tensor.reshape(-1)[u])
    biased = int(wrap_int32(acc + bias)) if p.wraps else acc + bias
    steps.append(Step("bias", (f"{acc} + {bias} = {biased}",), {"bias": bias, "acc": biased}))
    (s_x, _), (s_w, _), (s_out, _) = call.quantization(0), call.quantization(1), call.quantization(-1)
    s_wu = float(s_w[u if s_w.size > 1 else 0])
    scale = float(p.scale[u])
    steps.append(Step("real multiplier (double, no QuantizeMultiplier)",
                      (f"double(s_x)*double(s_w[u])/double(s_out) = {float(s_x[0]):.9g}*{s_wu:.9g}/"
                       f"{float(s_out[0]):.9g} = {scale:.17g}",),
                      {"input_scale": float(s_x[0]), "filter_scale": s_wu, "output_scale": float(s_out[0]),
                       "scale": scale}))
    product = float(biased) * scale
    scaled = int(round_to_int32(np.float64(product)))
    steps.append(Step("double rescale, rounded",
                      (f"(int32)round(double({biased}) * {scale:.17g}) = (int32)round({product:.17g}) = {scaled} "
                       "(halves away from zero)",), {"product": product, "scaled": scaled}))
    steps += output_steps(scaled, p.output_offset, p.act_min, p.act_max)
    offset = int(wrap_int32(scaled + p.output_offset))
    return steps, min(max(offset, p.act_min), p.act_max)


def transpose_sources(call: Call, index: tuple[int, ...]) -> tuple[list[tuple[int, int, int, int]], Step]:
    """The (iy, ix, ky, kx) whose tap lands on output (oy, ox), in the reference's order (input raster)."""
    x = call.inputs[0]
    p = call.prepared.params
    win = p.window
    _, oy, ox, co = index
    sources = []
    for iy in range(x.shape[1]):
        for ix in range(x.shape[2]):
            ky, kx = oy + win.pad_top - iy * win.stride_h, ox + win.pad_left - ix * win.stride_w
            if 0 <= ky < win.filter_h and 0 <= kx < win.filter_w:
                sources.append((iy, ix, ky, kx))
    lines = [f"{win.filter_h}x{win.filter_w} taps, stride {win.stride_h}x{win.stride_w}, padding top {win.pad_top} "
             f"left {win.pad_left}: input pixel (iy,ix) writes, at tap (ky,kx), output (iy*{win.stride_h} - "
             f"{win.pad_top} + ky, ix*{win.stride_w} - {win.pad_left} + kx)",
             f"output ({oy},{ox}) channel {co} gets {len(sources)} input pixels, each with all {x.shape[3]} "
             "input channels:",
             *(f"  input ({iy},{ix}) through tap ({ky},{kx})" for iy, ix, ky, kx in sources)]
    return sources, Step("which input pixels and taps land on the element", tuple(lines), {
        "window": {"filter": [win.filter_h, win.filter_w], "stride": [win.stride_h, win.stride_w],
                   "pad_top": win.pad_top, "pad_left": win.pad_left},
        "sources": [{"y": iy, "x": ix, "ky": ky, "kx": kx} for iy, ix, ky, kx in sources]})


def transpose_conv_float(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::TransposeConv (float): out += x*w from zero, in the scatter's order, + bias, clamp."""
    x, w, b = call.inputs
    p = call.prepared.params
    n, _, _, co = index
    sources, first = transpose_sources(call, index)
    total, rows, terms = np.float32(0), [], []
    for iy, ix, ky, kx in sources:
        for ci in range(x.shape[3]):
            v, wv = x[n, iy, ix, ci], w[co, ky, kx, ci]
            product = np.float32(v * wv)
            total = np.float32(total + product)
            terms.append({"y": iy, "x": ix, "ky": ky, "kx": kx, "ci": ci, "x_value": v, "w": wv, "product": product,
                          "sum": total})
            rows.append(f"({iy},{ix}) ({ky},{kx}) {ci:>4} {v:>14.7g} {wv:>14.7g} {product:>16.9g} {total:>16.9g}")
    head = f"{'input':>5} {'tap':>5} {'ci':>4} {'x':>14} {'w':>14} {'x*w':>16} {'running sum':>16}"
    steps = [first, Step("products and the running sum (float32, the scatter's order)", (head, *shown(rows)),
                         {"terms": terms, "sum": total})]
    bias = np.float32(0 if b is None else b.reshape(-1)[co])
    tail, value = bias_and_clamp_steps(total, bias, p.act_min, p.act_max)
    return steps + tail, value


def transpose_conv_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_(integer_)ops::TransposeConv: the int32 scratch sum, + bias, MBQM, zero point, clamp."""
    x, w, b = call.inputs
    c = call.prepared.params.conv
    n, _, _, co = index
    sources, first = transpose_sources(call, index)
    steps = [first, Step("zero points subtracted", (f"x - ({-c.input_offset}), w - ({-c.filter_offset})",),
                         {"input_zero_point": -c.input_offset, "filter_zero_point": -c.filter_offset})]
    acc, rows, terms = 0, [], []
    for iy, ix, ky, kx in sources:
        for ci in range(x.shape[3]):
            v, wv = int(x[n, iy, ix, ci]), int(w[co, ky, kx, ci])
            product = (v + c.input_offset) * (wv + c.filter_offset)
            acc += product
            terms.append({"y": iy, "x": ix, "ky": ky, "kx": kx, "ci": ci, "x_value": v, "w": wv, "product": product,
                          "acc": acc})
            rows.append(f"({iy},{ix}) ({ky},{kx}) {ci:>4} {v:>5}{v + c.input_offset:>+7} {wv:>5}"
                        f"{wv + c.filter_offset:>+7} {product:>10} {acc:>10}")
    head = f"{'input':>5} {'tap':>5} {'ci':>4} {'x  x-zx':>12} {'w  w-zw':>12} {'product':>10} {'acc':>10}"
    steps.append(Step("int32 accumulator, the scatter's order", (head, *shown(rows)), {"terms": terms, "acc": acc}))
    bias = 0 if b is None else int(b.reshape(-1)[co])
    biased = int(wrap_int32(acc + bias)) if c.wraps else acc + bias
    steps.append(Step("bias", (f"{acc} + {bias} = {biased}",), {"bias": bias, "acc": biased}))
    multiplier, shift = int(c.multiplier[co]), int(c.shift[co])
    steps.append(multiplier_step(call, co, False, multiplier, shift, positions=(2, 1)))
    scaled, rescale = mbqm_steps(biased, multiplier, shift)
    steps += rescale + output_steps(scaled, c.output_offset, c.act_min, c.act_max)
    return steps, min(max(scaled + c.output_offset, c.act_min), c.act_max)


EXPLAINERS: dict[tuple[str, str], Explainer] = {
    ("FULLY_CONNECTED", "fully_connected"): fully_connected_float,
    ("FULLY_CONNECTED", "fully_connected_quantized"): fully_connected_quantized,
    ("TRANSPOSE_CONV", "transpose_conv"): transpose_conv_float,
    ("TRANSPOSE_CONV", "transpose_conv_quantized"): transpose_conv_quantized,
}

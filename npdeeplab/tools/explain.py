"""`explain`: the arithmetic behind one output element of one op, step by step, in the kernel's order.

The op's inputs come from a real run (a hook copies them as the op runs); the element is then
recomputed on scalars in the order LiteRT's reference kernels use: float32 products and running
sums tap by tap for float ops, the int32 accumulator and MultiplyByQuantizedMultiplier's every
intermediate (left shift, SaturatingRoundingDoublingHighMul, RoundingDivideByPOT's remainder and
threshold) for quantized ones, from the params the engine prepared (`Interpreter.ops[i].params`)
and the primitives in kernels/fixed_point.py. `value` is the recomputed element; `output` is what
the op produced in the run (float ops may differ from it in the last bits, where npdeeplab's
vectorised kernels sum in another order than the reference's; quantized ops never do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npdeeplab.errors import InputError
from npdeeplab.kernels.fixed_point import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from npdeeplab.kernels.windows import Window
from npdeeplab.ops import PreparedOp

Number = int | float
GRID_LIMIT = 9  # windows up to this many taps a side are drawn as grids


@dataclass(frozen=True)
class Step:
    """One stage of the computation: a title, a few lines for the terminal, every number in data."""

    title: str
    lines: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    op: int
    kind: str
    dtype: str  # the output's
    index: tuple[int, ...]
    steps: tuple[Step, ...]
    value: Number  # the element, recomputed step by step
    output: Number  # the element as the op produced it in the run
    real: float | None = None  # a quantized value's real number, scale * (value - zero point)

    def to_text(self) -> str:
        at = ",".join(map(str, self.index))
        lines = [f"op {self.op} {self.kind} ({self.dtype}), output element [{at}]"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"{number}. {step.title}")
            lines.extend(f"   {line}" for line in step.lines)
        real = f" (real {self.real:.9g})" if self.real is not None else ""
        same = "= the op's output in the run" if _same(self.value, self.output) else (
            f"the op's output in the run: {_fmt(self.output)} (npdeeplab's kernel sums in another order)")
        lines.append(f"value: {_fmt(self.value)}{real}; {same}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op, "kind": self.kind, "dtype": self.dtype, "index": list(self.index),
            "steps": [{"title": s.title, **_plain(s.data)} for s in self.steps],
            "value": _plain(self.value), "output": _plain(self.output), "real": self.real,
        }

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class Call:
    """What an explainer needs: the prepared op, its kernel inputs and output in the run, tensors."""

    prepared: PreparedOp
    inputs: tuple[np.ndarray | None, ...]
    output: np.ndarray
    tensors: Sequence[Any]  # TensorInfo, by index

    def quantization(self, position: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(scales, zero points) of the op's input `position` (-1: its output)."""
        index = self.prepared.op.outputs[0] if position == -1 else self.prepared.op.inputs[position]
        q = self.tensors[index].quantization
        return None if q is None else (np.asarray(q.scale), np.asarray(q.zero_point))


def explain(interpreter: Any, op: int, index: Sequence[int], inputs: Any = None) -> Explanation:
    """Explain op `op`'s output element `index`; inputs as for trace (None: those already set)."""
    return explain_call(capture(interpreter, op, inputs), index)


def explain_call(call: Call, index: Sequence[int]) -> Explanation:
    """Explain one output element of a captured op call (or of one built from other arrays, e.g.
    LiteRT's inputs to the op, with `output` what the op is to be checked against)."""
    index = check_index(tuple(int(i) for i in index), call.output.shape)
    kind, op = call.prepared.op.kind, call.prepared.op.index
    table = explainers()
    explainer = table.get((kind, call.prepared.kernel))
    if explainer is None:
        covered = any(k == kind for k, _ in table)  # the kind, but another kernel (other numerics)
        what = f"{kind} with kernel {call.prepared.kernel}" if covered else kind
        raise InputError(f"explain does not cover {what} yet (op {op})")
    steps, value = explainer(call, index)
    output = call.output[index].item()
    real = None
    quantization = call.quantization(-1) if call.output.dtype.kind in "iu" else None
    if quantization is not None and quantization[0].size == 1:
        real = float(np.float32(quantization[0][0]) * np.float32(value - int(quantization[1][0])))
    return Explanation(op, kind, call.output.dtype.name, index, tuple(steps), value, output, real)


def capture(interpreter: Any, op: int, inputs: Any) -> Call:
    """Run the model (on inputs, or on the inputs already set) and copy op `op`'s arrays as it runs."""
    steps = {s.op.index: s for s in interpreter.ops}
    if op not in steps:
        raise InputError(f"op {op} is not in the model: its ops are numbered 0..{max(steps, default=0)}")
    with interpreter.lock:
        if inputs is not None:
            if not interpreter.allocated:
                interpreter.allocate_tensors()
            values = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            details = interpreter.get_input_details()
            if len(values) != len(details):
                raise InputError(f"the model takes {len(details)} inputs, got {len(values)}")
            for detail, value in zip(details, values, strict=True):
                interpreter.set_tensor(detail["index"], value)
        elif not interpreter.allocated:
            raise InputError("no inputs: give inputs, or set them after allocate_tensors()")
        seen: list[Call] = []

        def record(call: Any) -> None:
            if call.index == op:
                copies = tuple(None if a is None else np.array(a) for a in call.inputs)
                seen.append(Call(steps[op], copies, np.array(call.outputs[0]), interpreter.tensors))

        remove = interpreter.add_hook(record)
        try:
            interpreter.invoke()
        finally:
            remove()
    if not seen:
        raise InputError(f"op {op} did not run (it is folded at load: {steps[op].op.kind})")
    return seen[0]


def check_index(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape, strict=False)):
        at = ",".join(map(str, index))
        raise InputError(f"element [{at}] is not in the op's output of shape [{','.join(map(str, shape))}]")
    return index


# --- convolutions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tap:
    ky: int
    kx: int
    iy: int
    ix: int
    inside: bool


def window_of(win: Window, oy: int, ox: int, height: int, width: int) -> list[Tap]:
    """Every tap of output (oy, ox)'s window in (ky, kx) order, with where it lands in the input."""
    taps = []
    for ky in range(win.filter_h):
        for kx in range(win.filter_w):
            iy = oy * win.stride_h - win.pad_top + ky * win.dilation_h
            ix = ox * win.stride_w - win.pad_left + kx * win.dilation_w
            taps.append(Tap(ky, kx, iy, ix, 0 <= iy < height and 0 <= ix < width))
    return taps


def window_step(win: Window, taps: list[Tap], oy: int, ox: int, extra: str) -> Step:
    lines = [f"{win.filter_h}x{win.filter_w} taps, stride {win.stride_h}x{win.stride_w}, dilation "
             f"{win.dilation_h}x{win.dilation_w}, padding top {win.pad_top} left {win.pad_left}; "
             f"output ({oy},{ox}) reads input rows {oy * win.stride_h - win.pad_top} + ky*{win.dilation_h}, "
             f"columns {ox * win.stride_w - win.pad_left} + kx*{win.dilation_w}{extra}"]
    cells = {(t.ky, t.kx): f"({t.iy},{t.ix})" if t.inside else "pad" for t in taps}
    lines += grid(win.filter_h, win.filter_w, lambda ky, kx: cells[ky, kx])
    outside = sum(not t.inside for t in taps)
    lines.append(f"{len(taps) - outside} taps inside the input, {outside} in the padding (skipped)")
    return Step("window (input (row,col) per tap; pad = outside the input)", tuple(lines), {
        "window": {"filter": [win.filter_h, win.filter_w], "stride": [win.stride_h, win.stride_w],
                   "dilation": [win.dilation_h, win.dilation_w], "pad_top": win.pad_top, "pad_left": win.pad_left},
        "taps": [{"ky": t.ky, "kx": t.kx, "y": t.iy, "x": t.ix, "padding": not t.inside} for t in taps]})


def values_step(win: Window, taps: list[Tap], x: Callable[[Tap], Any], w: Callable[[Tap], Any]) -> Step:
    """A depthwise window's input values and the weights they meet, as two grids (pad: skipped)."""
    where = {(t.ky, t.kx): t for t in taps}

    def show(value: Any) -> str:
        return f"{value:.6g}" if isinstance(value, (float, np.floating)) else str(value)

    lines = ["input values:", *grid(win.filter_h, win.filter_w, lambda ky, kx: show(x(where[ky, kx]))
                                    if where[ky, kx].inside else "pad")]
    lines += ["weights:", *grid(win.filter_h, win.filter_w, lambda ky, kx: show(w(where[ky, kx])))]
    return Step("the window's values and the weights they meet", tuple(lines), {})


def grid(rows: int, columns: int, cell: Callable[[int, int], str]) -> list[str]:
    """A small table, ky down and kx across; windows larger than GRID_LIMIT are summarised."""
    if rows > GRID_LIMIT or columns > GRID_LIMIT:
        return [f"({rows}x{columns} taps: too large to draw; --json lists them)"]
    text = [[cell(r, c) for c in range(columns)] for r in range(rows)]
    width = max(len(s) for row in text for s in row)
    width = max(width, len(f"kx={columns - 1}"))
    head = "      " + " ".join(f"{f'kx={c}':>{width}}" for c in range(columns))
    return [head] + [f"ky={r:<3}" + " ".join(f"{s:>{width}}" for s in row) for r, row in enumerate(text)]


def conv_float(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::Conv / DepthwiseConv (float): total += x*w over (ky, kx[, ci]) in float32."""
    x, w, b = call.inputs
    p = call.prepared.params
    n, oy, ox, oc = index
    depthwise = call.prepared.op.kind == "DEPTHWISE_CONV_2D"
    channels, extra = conv_channels(x.shape[3], w, oc, depthwise)
    taps = window_of(p.window, oy, ox, x.shape[1], x.shape[2])
    steps = [window_step(p.window, taps, oy, ox, extra)]
    if depthwise:
        ic = channels[0][0]
        steps.append(values_step(p.window, taps, lambda t: x[n, t.iy, t.ix, ic], lambda t: w[0, t.ky, t.kx, oc]))
    total = np.float32(0)
    rows, products = [], []
    for t in taps:
        if not t.inside:
            rows.append(f"{t.ky:>3} {t.kx:>3}   pad  {'':>14} {'':>14} {'skipped':>16} {total:>16.9g}")
            continue
        tap_products = []
        for ci, wc in channels:
            value, weight = x[n, t.iy, t.ix, ci], w[wc][t.ky, t.kx] if depthwise else w[oc, t.ky, t.kx, wc]
            product = np.float32(value * weight)
            total = np.float32(total + product)
            tap_products.append({"x": value, "w": weight, "product": product, "sum": total})
        products.append({"ky": t.ky, "kx": t.kx, "products": tap_products})
        first = tap_products[0]
        shown = (f"{first['x']:>14.7g} {first['w']:>14.7g} {first['product']:>16.9g}" if len(channels) == 1 else
                 f"{len(channels):>8} chans {'':>14} {sum(float(q['product']) for q in tap_products):>16.9g}")
        rows.append(f"{t.ky:>3} {t.kx:>3}  ({t.iy},{t.ix}) {shown} {total:>16.9g}")
    head = (f" ky  kx  input  {'x':>14} {'w':>14} {'x*w':>16} {'running sum':>16}" if len(channels) == 1 else
            f" ky  kx  input  {'channels':>14} {'':>14} {'sum of products':>16} {'running sum':>16}")
    steps.append(Step("products and the running sum (float32, the kernel's order)", (head, *rows),
                      {"taps": products, "sum": total}))
    bias = np.float32(0 if b is None else b[oc])
    tail, value = bias_and_clamp_steps(total, bias, p.act_min, p.act_max)
    return steps + tail, value


def conv_channels(cin: int, w: np.ndarray, oc: int, depthwise: bool) -> tuple[list[tuple[Any, Any]], str]:
    """(input channel, filter index) pairs the output channel meets, in the kernel's order."""
    if depthwise:
        multiplier = w.shape[3] // cin
        ic = oc // multiplier
        return [(ic, (0, slice(None), slice(None), oc))], f"; channel {oc} reads input channel {ic}"
    per_group = w.shape[0] // (cin // w.shape[3])
    group = oc // per_group
    first = group * w.shape[3]
    text = f"; input channels {first}..{first + w.shape[3] - 1}" + (f" (group {group})" if cin != w.shape[3] else "")
    return [(first + c, c) for c in range(w.shape[3])], text


def conv_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_(integer_)ops::Conv / DepthwiseConv(PerChannel): acc += (w + w_off)(x + x_off)."""
    x, w, b = call.inputs
    p = call.prepared.params
    n, oy, ox, oc = index
    depthwise = call.prepared.op.kind == "DEPTHWISE_CONV_2D"
    channels, extra = conv_channels(x.shape[3], w, oc, depthwise)
    taps = window_of(p.window, oy, ox, x.shape[1], x.shape[2])
    steps = [window_step(p.window, taps, oy, ox, extra)]
    if depthwise:
        ic = channels[0][0]
        steps.append(values_step(p.window, taps, lambda t: int(x[n, t.iy, t.ix, ic]),
                                 lambda t: int(w[0, t.ky, t.kx, oc])))
    zx, zw = -p.input_offset, -p.filter_offset
    steps.append(Step("zero points subtracted", (f"x - ({zx}), w - ({zw}); padded taps add 0",),
                      {"input_zero_point": zx, "filter_zero_point": zw}))
    acc, rows, products = 0, [], []
    for t in taps:
        if not t.inside:
            rows.append(f"{t.ky:>3} {t.kx:>3}   pad  {'':>12} {'':>12} {'skipped':>10} {acc:>10}")
            continue
        tap_products = []
        for ci, wc in channels:
            value = int(x[n, t.iy, t.ix, ci])
            weight = int(w[wc][t.ky, t.kx] if depthwise else w[oc, t.ky, t.kx, wc])
            product = (weight + p.filter_offset) * (value + p.input_offset)
            acc += product
            tap_products.append({"x": value, "w": weight, "product": product, "acc": acc})
        products.append({"ky": t.ky, "kx": t.kx, "products": tap_products})
        first = tap_products[0]
        shown = (f"{first['x']:>4}{first['x'] + p.input_offset:>+8} {first['w']:>4}{first['w'] + p.filter_offset:>+8} "
                 f"{first['product']:>10}" if len(channels) == 1 else
                 f"{len(channels):>6} chans {'':>12} {sum(q['product'] for q in tap_products):>10}")
        rows.append(f"{t.ky:>3} {t.kx:>3}  ({t.iy},{t.ix}) {shown} {acc:>10}")
    head = (f" ky  kx  input  {'x  x-zx':>12} {'w  w-zw':>12} {'product':>10} {'acc':>10}" if len(channels) == 1 else
            f" ky  kx  input  {'channels':>12} {'':>12} {'sum':>10} {'acc':>10}")
    steps.append(Step("int32 accumulator, the kernel's order", (head, *rows), {"taps": products, "acc": acc}))
    bias = 0 if b is None else int(b[oc])
    biased = int(wrap_int32(acc + bias)) if p.wraps else acc + bias
    steps.append(Step("bias", (f"{acc} + {bias} = {biased}",), {"bias": bias, "acc": biased}))
    multiplier, shift = int(p.multiplier[oc]), int(p.shift[oc])
    steps.append(multiplier_step(call, oc, depthwise, multiplier, shift))
    scaled, rescale = mbqm_steps(biased, multiplier, shift)
    steps += rescale
    steps += output_steps(scaled, p.output_offset, p.act_min, p.act_max)
    return steps, min(max(scaled + p.output_offset, p.act_min), p.act_max)


def multiplier_step(call: Call, oc: int, depthwise: bool, multiplier: int, shift: int,
                    positions: tuple[int, int] = (0, 1)) -> Step:
    """Where (M, shift) came from: s_x * s_w / s_out through QuantizeMultiplier (positions: the op's
    input and filter among its inputs)."""
    (s_x, _), (s_w, _) = call.quantization(positions[0]), call.quantization(positions[1])
    s_out = call.quantization(-1)[0]
    per_channel = s_w.size > 1
    s_wc = float(s_w[oc if per_channel else 0])
    if per_channel:  # all in double
        real, formula = float(s_x[0]) * s_wc / float(s_out[0]), "double(s_x)*double(s_w[c])/double(s_out)"
    else:  # the product rounded to float32 first
        real = float(np.float32(s_x[0]) * np.float32(s_wc)) / float(s_out[0])
        formula = "double(float32(s_x*s_w))/double(s_out)"
    recomputed = quantize_multiplier(real)
    note = "" if recomputed == (multiplier, shift) else f" (from these scales: {recomputed}; prepare's are used)"
    lines = (f"{formula} = {float(s_x[0]):.9g}*{s_wc:.9g}/{float(s_out[0]):.9g} = {real:.12g}",
             f"QuantizeMultiplier -> M = {multiplier}, shift = {shift}: M*2^(shift-31) = "
             f"{multiplier * 2.0 ** (shift - 31):.12g}{note}")
    return Step("real multiplier", lines, {"input_scale": float(s_x[0]), "filter_scale": s_wc,
                                           "output_scale": float(s_out[0]), "real_multiplier": real,
                                           "multiplier": multiplier, "shift": shift})


def mbqm_steps(x: int, multiplier: int, shift: int, label: str = "") -> tuple[int, list[Step]]:
    """MultiplyByQuantizedMultiplier(x, M, shift) with every intermediate: left shift, SRDHM, RDBPOT."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = int(wrap_int32(x << left))
    product = shifted * multiplier
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    high = int(saturating_rounding_doubling_high_mul(shifted, multiplier))
    mask = (1 << right) - 1
    remainder, threshold = high & mask, (mask >> 1) + (high < 0)
    result = int(rounding_divide_by_pot(high, right))
    assert result == int(multiply_by_quantized_multiplier(x, multiplier, shift))
    steps = [
        Step(f"left shift{label}", (f"{x} * 2^{left} = {shifted}" + (" (wrapped to int32)" if shifted != x << left
                                                                      else ""),),
             {"left_shift": left, "shifted": shifted}),
        Step(f"SaturatingRoundingDoublingHighMul{label}",
             (f"({shifted} * {multiplier} + {nudge}) / 2^31 = ({product + nudge}) / 2^31 = {high}"
              " (C division, toward zero)",),
             {"product": product, "nudge": nudge, "srdhm": high}),
        Step(f"RoundingDivideByPOT{label}",
             (f"{high} / 2^{right}: remainder {high} & {mask} = {remainder}, threshold {threshold}; "
              f"({high} >> {right}) + ({remainder} > {threshold}) = {result}",),
             {"right_shift": right, "mask": mask, "remainder": remainder, "threshold": threshold, "result": result}),
    ]
    return result, steps


def output_steps(scaled: int, zero_point: int, low: int, high: int) -> list[Step]:
    offset = scaled + zero_point
    value = min(max(offset, low), high)
    return [Step("output zero point", (f"{scaled} + {zero_point} = {offset}",), {"zero_point": zero_point,
                                                                                  "offset": offset}),
            Step("activation clamp (quantized)", (f"clamp({offset}, {low}, {high}) = {value}",),
                 {"act_min": low, "act_max": high, "value": value})]


def bias_and_clamp_steps(total: np.float32, bias: np.float32, low: float, high: float) -> tuple[list[Step], float]:
    """The float kernels' last two steps: + bias in float32, then the fused activation's clamp."""
    biased = np.float32(total + bias)
    value = float(clamp_float(biased, low, high))
    bias_step = Step("bias", (f"{total:.9g} + {bias:.9g} = {biased:.9g}",), {"bias": bias, "biased": biased})
    return [bias_step, clamp_step(biased, low, high, value)], value


def clamp_float(v: np.float32, low: float, high: float) -> np.float32:
    """ActivationFunctionWithMinMax: min(max(v, low), high) as std::min/max (a NaN stays NaN)."""
    v = v if not v < low else np.float32(low)
    return v if not v > high else np.float32(high)


def clamp_step(v: np.float32, low: float, high: float, value: float) -> Step:
    return Step("activation clamp", (f"clamp({v:.9g}, {low:.9g}, {high:.9g}) = {value:.9g}",),
                {"act_min": low, "act_max": high, "value": value})


# --- helpers --------------------------------------------------------------------------------------------


def _fmt(v: Number) -> str:
    return f"{v:.9g}" if isinstance(v, float) else str(v)


def _same(a: Number, b: Number) -> bool:
    return a == b or (isinstance(a, float) and np.isnan(a) and np.isnan(b))


def _plain(value: Any) -> Any:
    """JSON-ready: NumPy scalars to Python numbers (float32 values keep their exact value)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def explainers() -> dict[tuple[str, str], Explainer]:
    """(op kind, kernel name) -> its explainer: the convolutions here, the rest in explain_ops,
    explain_dense (FULLY_CONNECTED, TRANSPOSE_CONV) and explain_activations."""
    from npdeeplab.tools.explain_activations import EXPLAINERS as ACTIVATIONS
    from npdeeplab.tools.explain_dense import EXPLAINERS as DENSE
    from npdeeplab.tools.explain_ops import EXPLAINERS as OTHERS

    return {**EXPLAINERS, **OTHERS, **DENSE, **ACTIVATIONS}


Explainer = Callable[[Call, tuple[int, ...]], tuple[list[Step], Number]]
EXPLAINERS: dict[tuple[str, str], Explainer] = {
    ("CONV_2D", "conv2d"): conv_float,
    ("DEPTHWISE_CONV_2D", "depthwise_conv2d"): conv_float,
    ("CONV_2D", "conv2d_quantized"): conv_quantized,
    ("DEPTHWISE_CONV_2D", "depthwise_conv2d_quantized"): conv_quantized,
}

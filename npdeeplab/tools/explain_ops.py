"""`explain` for the op families beyond convolutions: ADD/SUB/MUL, pools, MEAN, RESIZE_BILINEAR,
CONCATENATION and QUANTIZE, float and quantized, each in its reference kernel's order (see
npdeeplab.tools.explain for the shared steps and the conventions)."""

from __future__ import annotations

import itertools

import numpy as np

from npdeeplab.kernels.fixed_point import round_half_away, wrap_int32
from npdeeplab.kernels.integer.quantize import float_to_int32
from npdeeplab.kernels.resize import bilinear_taps
from npdeeplab.tools.explain import (
    Call,
    Explainer,
    Number,
    Step,
    clamp_float,
    clamp_step,
    grid,
    mbqm_steps,
    output_steps,
    window_of,
)


def broadcast_index(shape: tuple[int, ...], index: tuple[int, ...]) -> tuple[int, ...]:
    """The element of an input of `shape` that output element `index` reads under broadcasting."""
    tail = index[len(index) - len(shape):]
    return tuple(0 if n == 1 else i for n, i in zip(shape, tail, strict=True))


def operands(call: Call, index: tuple[int, ...]) -> tuple[Number, Number, Step]:
    a, b = call.inputs
    ia, ib = broadcast_index(a.shape, index), broadcast_index(b.shape, index)
    va, vb = a[ia].item(), b[ib].item()
    return va, vb, Step("inputs (broadcast)", (f"a{list(ia)} = {va:.9g}", f"b{list(ib)} = {vb:.9g}"),
                        {"a_index": list(ia), "a": va, "b_index": list(ib), "b": vb})


def elementwise_float(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::Add / Sub / Mul (float): clamp(a op b) in float32."""
    va, vb, first = operands(call, index)
    p, kind = call.prepared.params, call.prepared.op.kind
    a, b = np.float32(va), np.float32(vb)
    sign = {"ADD": "+", "SUB": "-", "MUL": "*"}[kind]
    result = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}[kind](a, b)
    value = float(clamp_float(result, p.act_min, p.act_max))
    return [first, Step(kind.lower(), (f"{a:.9g} {sign} {b:.9g} = {result:.9g} (float32)",), {"result": result}),
            clamp_step(result, p.act_min, p.act_max, value)], value


def add_sub_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """AddFunc / SubFunc: each input shifted up by 2^left_shift and rescaled, summed, rescaled again."""
    va, vb, first = operands(call, index)
    p, kind = call.prepared.params, call.prepared.op.kind
    steps = [first]
    scaled = []
    for name, v, offset, multiplier, shift in (("a", va, p.input1_offset, p.input1_multiplier, p.input1_shift),
                                               ("b", vb, p.input2_offset, p.input2_multiplier, p.input2_shift)):
        shifted = (v + offset) << p.left_shift
        steps.append(Step(f"{name}: zero point out, shifted up",
                          (f"({v} - ({-offset})) * 2^{p.left_shift} = {shifted}; "
                           f"multiplier M = {multiplier}, shift = {shift} "
                           f"(real {multiplier * 2.0 ** (shift - 31):.9g})",),
                          {"offset": offset, "shifted": shifted, "multiplier": multiplier, "shift": shift}))
        result, rescale = mbqm_steps(shifted, multiplier, shift, f" ({name})")
        steps += rescale
        scaled.append(result)
    raw = scaled[0] + scaled[1] if kind == "ADD" else scaled[0] - scaled[1]
    sign = "+" if kind == "ADD" else "-"
    steps.append(Step("raw " + ("sum" if kind == "ADD" else "difference"), (f"{scaled[0]} {sign} {scaled[1]} = {raw}",
                      f"output multiplier M = {p.output_multiplier}, shift = {p.output_shift}"),
                      {"raw": raw, "multiplier": p.output_multiplier, "shift": p.output_shift}))
    out, rescale = mbqm_steps(raw, p.output_multiplier, p.output_shift, " (output)")
    steps += rescale + output_steps(out, p.output_offset, p.act_min, p.act_max)
    return steps, min(max(out + p.output_offset, p.act_min), p.act_max)


def mul_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """MulElementwise: MBQM((a - z1)(b - z2), M, shift) + z_out, clamped."""
    va, vb, first = operands(call, index)
    p = call.prepared.params
    product = (va + p.input1_offset) * (vb + p.input2_offset)
    steps = [first, Step("zero points out, product",
                         (f"({va} - ({-p.input1_offset})) * ({vb} - ({-p.input2_offset})) = {product}",
                          f"multiplier M = {p.output_multiplier}, shift = {p.output_shift} "
                          f"(real {p.output_multiplier * 2.0 ** (p.output_shift - 31):.9g})"),
                         {"product": product, "multiplier": p.output_multiplier, "shift": p.output_shift})]
    out, rescale = mbqm_steps(product, p.output_multiplier, p.output_shift)
    steps += rescale + output_steps(out, p.output_offset, p.act_min, p.act_max)
    return steps, min(max(out + p.output_offset, p.act_min), p.act_max)


def pool(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """AveragePool / MaxPool, float and quantized: the in-bounds cells in (ky, kx) order."""
    (x,) = call.inputs
    p, kernel = call.prepared.params, call.prepared.kernel
    n, oy, ox, c = index
    taps = window_of(p.window, oy, ox, x.shape[1], x.shape[2])
    inside = [t for t in taps if t.inside]
    values = {(t.ky, t.kx): x[n, t.iy, t.ix, c].item() for t in inside}
    win = p.window
    lines = [f"{win.filter_h}x{win.filter_w} window, stride {win.stride_h}x{win.stride_w}, padding top "
             f"{win.pad_top} left {win.pad_left}: input rows {inside[0].iy}..{inside[-1].iy}, columns "
             f"{inside[0].ix}..{inside[-1].ix}, channel {c}; {len(inside)} cells inside, padding never counts"]
    lines += grid(win.filter_h, win.filter_w, lambda ky, kx: _short(values.get((ky, kx), "pad")))
    steps = [Step("window (the input's values; pad = outside the input)", tuple(lines),
                  {"cells": [{"ky": t.ky, "kx": t.kx, "y": t.iy, "x": t.ix, "value": values[t.ky, t.kx]}
                             for t in inside]})]
    quantized = x.dtype.kind in "iu"
    if "max" in kernel:
        best = max(values.values()) if quantized else _float_max(values.values())
        steps.append(Step("maximum", (f"max of {len(values)} cells = {best:.9g}",), {"max": best}))
        return _finish(steps, best, p, quantized)
    if quantized:
        acc, count = sum(values.values()), len(values)
        half = count // 2
        average = (acc + half) // count if acc > 0 else -((half - acc) // count)
        rule = f"({acc} + {half}) / {count}" if acc > 0 else f"({acc} - {half}) / {count}"
        steps.append(Step("int32 sum and rounded division", (f"sum = {acc}, count = {count}",
                                                             f"{rule} = {average} (halves away from zero)"),
                          {"acc": acc, "count": count, "average": average}))
        return _finish(steps, average, p, quantized)
    total = np.float32(0)
    for v in values.values():
        total = np.float32(total + np.float32(v))
    average = np.float32(total / np.float32(len(values)))
    steps.append(Step("float32 sum and division", (f"sum = {total:.9g} (running, in (ky, kx) order)",
                                                   f"{total:.9g} / {len(values)} = {average:.9g}"),
                      {"sum": total, "count": len(values), "average": average}))
    return _finish(steps, average, p, quantized)


def _finish(steps: list[Step], v: Number, p: object, quantized: bool) -> tuple[list[Step], Number]:
    """The steps with the activation's clamp appended, and the value."""
    if quantized:
        value = min(max(int(v), p.act_min), p.act_max)
        return [*steps, Step("activation clamp (quantized)", (f"clamp({v}, {p.act_min}, {p.act_max}) = {value}",),
                             {"value": value})], value
    value = float(clamp_float(np.float32(v), p.act_min, p.act_max))
    return [*steps, clamp_step(np.float32(v), p.act_min, p.act_max, value)], value


def _float_max(values: object) -> np.float32:
    best = np.float32(-np.finfo(np.float32).max)
    for v in values:
        best = np.fmax(best, np.float32(v))
    return best


def mean(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::Mean: the sum over the axes in row-major order, divided by N (quantized: the
    zero point times N taken off, then MBQM with 1/N folded into the multiplier)."""
    (x,) = call.inputs
    p = call.prepared.params
    axes = tuple(p.axes)
    kept = [i for i in range(x.ndim) if i not in axes]
    out_index = index if p.keep_dims else None
    fixed = {a: (out_index[a] if out_index is not None else index[kept.index(a)]) for a in kept}
    cells = [tuple(fixed[a] if a in fixed else pos[axes.index(a)] for a in range(x.ndim))
             for pos in itertools.product(*(range(x.shape[a]) for a in axes))]
    count = len(cells)
    first = Step("cells averaged", (f"axes {list(axes)}: {count} values, from {list(cells[0])} to {list(cells[-1])}",),
                 {"axes": list(axes), "count": count})
    if x.dtype.kind in "iu":
        total = sum(int(x[i]) for i in cells)
        shifted = int(wrap_int32(int(wrap_int32(total)) - p.input_zero_point * p.count))
        steps = [first, Step("int32 sum, zero point out", (f"{total} - {p.input_zero_point} * {p.count} = {shifted}",
                                                          f"multiplier M = {p.multiplier}, shift = {p.shift} "
                                                          "(s_in / s_out with 1/N folded in)"),
                             {"sum": total, "shifted": shifted, "multiplier": p.multiplier, "shift": p.shift})]
        out, rescale = mbqm_steps(shifted, p.multiplier, p.shift)
        info = np.iinfo(x.dtype)
        steps += rescale + output_steps(out, p.output_zero_point, int(info.min), int(info.max))
        return steps, min(max(out + p.output_zero_point, int(info.min)), int(info.max))
    total = np.float32(0)
    for i in cells:
        total = np.float32(total + x[i])
    value = np.float32(total / np.float32(count))
    return [first, Step("float32 sum and division", (f"sum = {total:.9g} (running, row-major)",
                                                     f"{total:.9g} / {count} = {value:.9g}"),
                        {"sum": total, "value": value})], float(value)


def resize_bilinear(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """ResizeBilinear (float, uint8: float32 four-term formula) or ResizeBilinearInteger (int8)."""
    x = call.inputs[0]
    p, kernel = call.prepared.params, call.prepared.kernel
    n, oy, ox, c = index
    if kernel == "resize_bilinear":
        ys = bilinear_taps(x.shape[1], p.out_h, p.align_corners, p.half_pixel_centers)
        xs = bilinear_taps(x.shape[2], p.out_w, p.align_corners, p.half_pixel_centers)
        (y0, y1, dy), (x0, x1, dx) = ((int(t[0][i]), int(t[1][i]), t[2][i]) for t, i in ((ys, oy), (xs, ox)))
    else:
        y0, y1, dy, x0, x1, dx = (int(p.y0[oy]), int(p.y1[oy]), p.wy[oy], int(p.x0[ox]), int(p.x1[ox]), p.wx[ox])
    v = {k: x[n, yy, xx, c].item() for k, (yy, xx) in {"v00": (y0, x0), "v10": (y1, x0), "v01": (y0, x1),
                                                       "v11": (y1, x1)}.items()}
    integer = kernel == "quantized_resize_bilinear_integer"
    unit = " (in 1/1024)" if integer else ""
    steps = [Step("the four taps", (f"rows y0 = {y0}, y1 = {y1}, weight dy = {dy:.9g}{unit}",
                                    f"columns x0 = {x0}, x1 = {x1}, weight dx = {dx:.9g}{unit}",
                                    *grid(2, 2, lambda r, s: _short(v[f"v{r}{s}"]))),
                  {"y0": y0, "y1": y1, "dy": dy, "x0": x0, "x1": x1, "dx": dx, **v})]
    if integer:
        one = 1 << 10
        terms = [v["v00"] * (one - dy) * (one - dx), v["v10"] * dy * (one - dx), v["v01"] * (one - dy) * dx,
                 v["v11"] * dy * dx]
        total = sum(int(t) for t in terms)
        nudge = (1 << 19) if total > 0 else -(1 << 19)
        value = int(np.trunc((total + nudge) / 2**20))
        steps.append(Step("Q20 blend, rounded", (f"terms {[int(t) for t in terms]}, sum {total}",
                                                 f"({total} + {nudge}) / 2^20 = {value} (toward zero)"),
                          {"terms": [int(t) for t in terms], "sum": total, "value": value}))
        return steps, value
    one, dy, dx = np.float32(1), np.float32(dy), np.float32(dx)
    weights = [(one - dy) * (one - dx), dy * (one - dx), (one - dy) * dx, dy * dx]
    factors = [(one - dy, one - dx), (dy, one - dx), (one - dy, dx), (dy, dx)]
    terms = [np.float32(np.float32(v[k]) * a) * b for k, (a, b) in zip(("v00", "v10", "v01", "v11"), factors,
                                                                       strict=True)]
    total = np.float32(0)
    running = []
    for t in terms:
        total = np.float32(total + t) if running else t
        running.append(total)
    steps.append(Step("float32 blend, left to right",
                      (f"v00*(1-dy)*(1-dx) + v10*dy*(1-dx) + v01*(1-dy)*dx + v11*dy*dx: weights "
                       f"{', '.join(f'{w:.6g}' for w in weights)}",
                       "terms " + ", ".join(f"{t:.9g}" for t in terms) + f"; sum {total:.9g}"),
                      {"terms": terms, "running": running, "sum": total}))
    if x.dtype.kind != "u":
        return steps, float(total)
    value = int(np.float32(total + np.float32(0.5)))
    steps.append(Step("+ 0.5, truncated", (f"{total:.9g} + 0.5 -> {value}",), {"value": value}))
    return steps, value


def concatenation(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """Concatenation: the input the element comes from, copied or (uint8, other scale) requantized."""
    p = call.prepared.params
    offset = index[p.axis]
    position = 0
    while offset >= call.inputs[position].shape[p.axis]:
        offset -= call.inputs[position].shape[p.axis]
        position += 1
    x = call.inputs[position]
    source = tuple(offset if a == p.axis else i for a, i in enumerate(index))
    q = x[source].item()
    steps = [Step("source", (f"input {position} element {list(source)} = {q:.9g} (axis {p.axis})",),
                  {"input": position, "index": list(source), "value": q})]
    rule = getattr(p, "requantize", (None,) * len(call.inputs))[position]
    if rule is None:
        steps.append(Step("copy", ("same scale and zero point as the output: copied",), {}))
        return steps, q
    real = np.float32(np.float32(q) * rule.scale + rule.bias)
    rounded = float(round_half_away(real))
    value = min(max(int(rounded) + p.output_zero_point, 0), 255)
    steps.append(Step("requantize (float32)", (f"{q} * {rule.scale:.9g} + {rule.bias:.9g} = {real:.9g}; rounded "
                                              f"{rounded:g}; + {p.output_zero_point}, clamped to [0, 255] = {value}",),
                      {"scale": rule.scale, "bias": rule.bias, "scaled": real, "rounded": rounded, "value": value}))
    return steps, value


def quantize(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """QUANTIZE: float -> int (AffineQuantize) or int -> int (Requantize)."""
    (x,) = call.inputs
    p = call.prepared.params
    v = x[index].item()
    first = Step("input", (f"x{list(index)} = {v:.9g}",), {"x": v})
    dtype = np.dtype(p.dtype)
    info = np.iinfo(dtype)
    if call.prepared.kernel == "quantized_quantize":
        channel = 0 if p.axis is None else index[p.axis]
        scale, zero_point = np.float32(p.scale.reshape(-1)[channel]), int(p.zero_point.reshape(-1)[channel])
        divided = np.float32(np.float32(v) / scale)
        rounded = int(float_to_int32(round_half_away(divided)))
        unclamped = int(wrap_int32(rounded + zero_point))
        value = min(max(unclamped, int(info.min)), int(info.max))
        return [first, Step("divide, round, zero point, clamp",
                            (f"{v:.9g} / {scale:.9g} = {divided:.9g} (float32); rounded {rounded} (halves away); "
                             f"+ {zero_point} = {unclamped}; clamp to [{info.min}, {info.max}] = {value}",),
                            {"scale": scale, "zero_point": zero_point, "divided": divided, "rounded": rounded,
                             "value": value})], value
    if p.flip_sign_bit:
        value = int(np.array([v], dtype=x.dtype).view(np.uint8)[0] ^ 0x80)
        value = int(np.array([value], np.uint8).view(dtype)[0])
        return [first, Step("flip the sign bit", (f"same scale, zero points 128 apart: {v} ^ 0x80 = {value}",),
                            {"value": value})], value
    shifted = int(wrap_int32(v - p.input_zero_point))
    steps = [first, Step("zero point out", (f"{v} - {p.input_zero_point} = {shifted}; multiplier M = {p.multiplier}, "
                                            f"shift = {p.shift} (real {p.multiplier * 2.0 ** (p.shift - 31):.9g})",),
                         {"shifted": shifted, "multiplier": p.multiplier, "shift": p.shift})]
    out, rescale = mbqm_steps(shifted, p.multiplier, p.shift)
    steps += rescale + output_steps(out, p.output_zero_point, int(info.min), int(info.max))
    return steps, min(max(out + p.output_zero_point, int(info.min)), int(info.max))


def _short(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


EXPLAINERS: dict[tuple[str, str], Explainer] = {
    **{(kind, kind.lower()): elementwise_float for kind in ("ADD", "SUB", "MUL")},
    ("ADD", "quantized_add"): add_sub_quantized,
    ("SUB", "quantized_sub"): add_sub_quantized,
    ("MUL", "quantized_mul"): mul_quantized,
    **{(kind, kernel): pool for kind, kernel in (
        ("AVERAGE_POOL_2D", "average_pool2d"), ("AVERAGE_POOL_2D", "quantized_average_pool2d"),
        ("MAX_POOL_2D", "max_pool2d"), ("MAX_POOL_2D", "quantized_max_pool2d"))},
    ("MEAN", "mean"): mean,
    ("MEAN", "quantized_mean"): mean,
    **{("RESIZE_BILINEAR", k): resize_bilinear for k in (
        "resize_bilinear", "quantized_resize_bilinear", "quantized_resize_bilinear_integer")},
    ("CONCATENATION", "concatenation"): concatenation,
    ("CONCATENATION", "quantized_concatenation"): concatenation,
    ("QUANTIZE", "quantized_quantize"): quantize,
    ("QUANTIZE", "quantized_requantize"): quantize,
}

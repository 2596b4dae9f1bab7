"""`explain` for the elementwise activations, DEQUANTIZE, RESIZE_NEAREST_NEIGHBOR and SOFTMAX, each in
its reference kernel's order (see npdeeplab.tools.explain for the shared steps and the conventions).

Float LOGISTIC and TANH are recomputed with the C library's expf and tanhf, as LiteRT's reference
kernels call them (std::exp, std::tanh on floats); npdeeplab's vectorised kernels use NumPy's, which
may differ in the last bit. Quantized LOGISTIC and TANH are the table lookup (the entry's making
shown: LUTPopulate); quantized HARD_SWISH is reference_ops::HardSwish's int16 fixed point, step by step;
quantized SOFTMAX is reference_ops::Softmax's gemmlowp fixed point, at the level of its calls.
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.fixed_point import (
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    rounding_divide_by_pot_int16,
    saturating_rounding_doubling_high_mul,
    saturating_rounding_doubling_high_mul_int16,
    saturating_rounding_multiply_by_pot,
    wrap_int16,
    wrap_int32,
)
from npdeeplab.kernels.integer.activation import (
    ACCUMULATION_INTEGER_BITS,
    SCALED_DIFF_INTEGER_BITS,
    c_math,
    logisticf,
    tanhf,
)
from npdeeplab.kernels.integer.rectifiers import saturating_doubling_high_mul, saturating_left_shift
from npdeeplab.kernels.resize import resize_scale
from npdeeplab.tools.explain import Call, Explainer, Number, Step, mbqm_steps, output_steps
from npdeeplab.tools.explain_ops import broadcast_index

FLOAT_LIMITS = {"relu": (0.0, None), "relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}
COLUMN_LIMIT = 32  # softmax rows up to this long are listed in the text


def element(call: Call, index: tuple[int, ...], position: int = 0) -> tuple[Number, Step]:
    v = call.inputs[position][index].item()
    return v, Step("input", (f"x{list(index)} = {v:.9g}",), {"x": v})


def c_float(name: str, v: np.float32) -> np.float32:
    """float name(float) as LiteRT's C++ calls it (NumPy's where no C math library loads)."""
    function = c_math(name)
    if function is None:
        return np.float32(getattr(np, name.rstrip("f"))(np.float64(v)))
    return np.float32(function(float(v)))


def float_activation(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """The float unary activations (reference_ops::Logistic, Tanh, HardSwish, Relu*, LeakyRelu, Prelu)."""
    kernel = call.prepared.kernel
    v, first = element(call, index)
    x = np.float32(v)
    if kernel in FLOAT_LIMITS:
        low, high = FLOAT_LIMITS[kernel]
        y = x if not x < low else np.float32(low)
        if high is not None:
            y = y if not y > high else np.float32(high)
        rule = f"min(max({x:.9g}, {low:g}), {high:g})" if high is not None else f"max({x:.9g}, 0)"
        return [first, Step(kernel.upper(), (f"{rule} = {y:.9g}",), {"value": y})], float(y)
    if kernel == "logistic":
        if x > np.float32(16.619047):
            y, rule = np.float32(1), "x > 16.619047: 1"
        elif x < np.float32(-9):
            y = c_float("expf", x)
            rule = f"x < -9: expf({x:.9g}) = {y:.9g}"
        else:
            e = c_float("expf", -x)
            y = np.float32(np.float32(1) / np.float32(np.float32(1) + e))
            rule = f"expf({-x:.9g}) = {e:.9g}; 1 / (1 + {e:.9g}) = {y:.9g} (float32)"
        return [first, Step("logistic (cut-offs at -9 and 16.619047)", (rule,), {"value": y})], float(y)
    if kernel == "tanh":
        y = c_float("tanhf", x)
        return [first, Step("tanh", (f"tanhf({x:.9g}) = {y:.9g}",), {"value": y})], float(y)
    if kernel == "hard_swish":
        shifted = np.float32(x + np.float32(3))
        reluish = min(max(shifted, np.float32(0)), np.float32(6))
        product = np.float32(x * reluish)
        y = np.float32(product / np.float32(6))
        return [first, Step("x * min(6, max(0, x + 3)) / 6 (float32, multiplied before the division)",
                            (f"{x:.9g} + 3 = {shifted:.9g}; clamped {reluish:.9g}; * x = {product:.9g}; "
                             f"/ 6 = {y:.9g}",), {"reluish": reluish, "product": product, "value": y})], float(y)
    if kernel == "leaky_relu":
        alpha = np.float32(call.prepared.params.alpha)
        y = x if x > 0 else np.float32(x * alpha)
        rule = f"{x:.9g} > 0: x" if x > 0 else f"{x:.9g} <= 0: x * alpha = {x:.9g} * {alpha:.9g}"
        return [first, Step("leaky relu", (f"{rule} = {y:.9g}",), {"alpha": alpha, "value": y})], float(y)
    alpha_array = call.inputs[1]  # prelu
    at = broadcast_index(alpha_array.shape, index)
    alpha = np.float32(alpha_array[at])
    y = x if x >= 0 else np.float32(x * alpha)
    rule = f"{x:.9g} >= 0: x" if x >= 0 else f"{x:.9g} < 0: x * alpha{list(at)} = {x:.9g} * {alpha:.9g}"
    return [first, Step("prelu (alpha broadcast)", (f"{rule} = {y:.9g}",),
                        {"alpha_index": list(at), "alpha": alpha, "value": y})], float(y)


def lookup(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_integer_ops::LookupTable: the table entry at the value's raw byte (LUTPopulate's making)."""
    x = call.inputs[0]
    q, first = element(call, index)
    byte = int(np.array([q], x.dtype).view(np.uint8)[0])
    entry = int(call.prepared.params.table[byte])
    (s_in, z_in), (s_out, z_out) = call.quantization(0), call.quantization(-1)
    s_in, z_in, s_out, z_out = np.float32(s_in[0]), int(z_in[0]), np.float32(s_out[0]), int(z_out[0])
    kind = call.prepared.op.kind
    real = np.float32(s_in * np.float32(q - z_in))
    f = (logisticf if kind == "LOGISTIC" else tanhf)(np.array([real], np.float32))[0]
    rescaled = np.float32(round_half_away(np.float32(f * (np.float32(1) / s_out))))
    info = np.iinfo(x.dtype)
    made = min(max(int(rescaled) + z_out, int(info.min)), int(info.max))
    name = "1 / (1 + expf(-r))" if kind == "LOGISTIC" else "tanhf(r)"
    note = "" if made == entry else f" (recomputed {made}; the prepared table's entry is used)"
    return [first, Step("table index", (f"raw byte of {q}: {byte}" + (" (int8: two's complement)"
                                                                     if x.dtype == np.int8 else ""),),
                        {"index": byte}),
            Step("how the entry was made (LUTPopulate, float32)",
                 (f"r = {s_in:.9g} * ({q} - {z_in}) = {real:.9g}; {name} = {f:.9g}",
                  f"round({f:.9g} / {s_out:.9g}) = {rescaled:g} (halves away); + {z_out}, clamped to "
                  f"[{info.min}, {info.max}] = {made}{note}"),
                 {"real": real, "f": f, "rescaled": float(rescaled), "made": made}),
            Step("table entry", (f"table[{byte}] = {entry}",), {"entry": entry})], entry


def relu_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """optimized_ops::ReluX (LiteRT's one kernel): z_out + MBQM(q - z_in), then max(low), min(high)."""
    p = call.prepared.params
    q, first = element(call, index)
    v = q - p.input_offset
    steps = [first, Step("zero point out", (f"{q} - {p.input_offset} = {v}; multiplier M = {p.output_multiplier}, "
                                            f"shift = {p.output_shift} (float32 s_in/s_out, QuantizeMultiplier)",),
                         {"shifted": v, "multiplier": p.output_multiplier, "shift": p.output_shift})]
    out, rescale = mbqm_steps(v, p.output_multiplier, p.output_shift)
    low, high = p.quantized_activation_min, p.quantized_activation_max
    steps += rescale + output_steps(out, p.output_offset, low, high)
    return steps, min(max(int(wrap_int32(out + p.output_offset)), low), high)


def leaky_relu_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::QuantizeLeakyRelu: v = q - z_in; identity's MBQM for v >= 0, else alpha's with its sign
    taken out first; + z_out, clamped to the type."""
    p = call.prepared.params
    q, first = element(call, index)
    v = q - p.input_offset
    info = np.iinfo(call.inputs[0].dtype)
    if v >= 0:
        multiplier, shift, sign, which = p.output_multiplier_identity, p.output_shift_identity, 1, "identity"
    else:
        negative = p.output_multiplier_alpha < 0
        multiplier = int(wrap_int32(-p.output_multiplier_alpha)) if negative else p.output_multiplier_alpha
        shift, sign, which = p.output_shift_alpha, -1 if negative else 1, "alpha"
    steps = [first, Step("zero point out, the branch", (
        f"{q} - {p.input_offset} = {v}: {which} multiplier M = {multiplier}, shift = {shift}" +
        (" (alpha < 0: its magnitude, the sign applied after)" if sign < 0 else ""),),
        {"shifted": v, "branch": which, "multiplier": multiplier, "shift": shift, "sign": sign})]
    out, rescale = mbqm_steps(v, multiplier, shift)
    out = int(wrap_int32(sign * out))
    steps += rescale + output_steps(out, p.output_offset, int(info.min), int(info.max))
    return steps, min(max(int(wrap_int32(out + p.output_offset)), int(info.min)), int(info.max))


def prelu_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::Prelu / BroadcastPrelu4DSlow: v = q - z_in; MBQM(v, M1) for v >= 0, else
    MBQM(v * (a - z_alpha), M2); + z_out, clamped to the type."""
    p = call.prepared.params
    q, first = element(call, index)
    alpha = call.inputs[1]
    at = broadcast_index(alpha.shape, index)
    a = int(alpha[at])
    v = q + p.input_offset
    info = np.iinfo(call.inputs[0].dtype)
    if v >= 0:
        product, multiplier, shift = v, p.output_multiplier_1, p.output_shift_1
        rule = f"{q} - {-p.input_offset} = {v} >= 0: M1 = {multiplier}, shift = {shift} (s_in / s_out)"
    else:
        product, multiplier, shift = v * (a + p.alpha_offset), p.output_multiplier_2, p.output_shift_2
        rule = (f"{q} - {-p.input_offset} = {v} < 0: times alpha{list(at)} {a} - {-p.alpha_offset}: {product}; "
                f"M2 = {multiplier}, shift = {shift} (s_in * s_alpha / s_out)")
    steps = [first, Step("zero points out, the branch", (rule,), {"shifted": v, "alpha": a, "product": product,
                                                                  "multiplier": multiplier, "shift": shift})]
    out, rescale = mbqm_steps(product, multiplier, shift)
    steps += rescale + output_steps(out, p.output_offset, int(info.min), int(info.max))
    return steps, min(max(int(wrap_int32(out + p.output_offset)), int(info.min)), int(info.max))


def hard_swish_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::HardSwish<T> (reference/hard_swish.h), int16 fixed point, its statements in order."""
    p = call.prepared.params
    q, first = element(call, index)
    x = call.inputs[0]
    hires = int(wrap_int16((q - p.input_zero_point) * (1 << 7)))
    m_out, m_rel, e = p.output_multiplier_fixedpoint_int16, p.reluish_multiplier_fixedpoint_int16, \
        p.reluish_multiplier_exponent
    preshift = int(saturating_rounding_doubling_high_mul_int16(hires, m_out))
    lines = [f"hires = ({q} - {p.input_zero_point}) * 2^7 = {hires} (int16)",
             f"preshift output = SRDHM16({hires}, {m_out}) = {preshift}"]
    r = hires
    if e > 0:
        r = int(saturating_left_shift(r, e - 1))
        lines.append(f"reluish: saturating << {e - 1} = {r}")
    r2 = int(saturating_rounding_doubling_high_mul_int16(r, m_rel))
    lines.append(f"reluish: SRDHM16({r}, {m_rel}) = {r2}")
    r = r2
    if e > 0:
        r = int(saturating_left_shift(r, 1))
        lines.append(f"reluish: saturating << 1 = {r}")
    elif e < 0:
        r = int(rounding_divide_by_pot_int16(r, -e))
        lines.append(f"reluish: RoundingDivideByPOT16 by {-e} = {r}")
    unit = (r + (1 << 15)) >> 1
    lines.append(f"reluish to [0, 1]: ({r} + 32768) >> 1 = {unit}")
    product = int(saturating_doubling_high_mul(unit, preshift))
    lines.append(f"SaturatingDoublingHighMul({unit}, {preshift}) = {product} (truncating)")
    divided = int(rounding_divide_by_pot_int16(product, -p.output_multiplier_exponent))
    out = int(wrap_int16(divided + p.output_zero_point))
    info = np.iinfo(x.dtype)
    value = min(max(out, int(info.min)), int(info.max))
    lines += [f"RoundingDivideByPOT16 by {-p.output_multiplier_exponent} = {divided}; + {p.output_zero_point} = "
              f"{out} (int16)", f"clamp({out}, {info.min}, {info.max}) = {value}"]
    return [first, Step("int16 fixed point (reference_ops::HardSwish)", tuple(lines),
                        {"hires": hires, "preshift": preshift, "reluish": unit, "product": product,
                         "divided": divided, "value": value})], value


def dequantize(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """Dequantize / PerChannelDequantize: float32(scale * (q - zero_point)), the product rounded once."""
    p = call.prepared.params
    q, first = element(call, index)
    channel = 0 if p.axis is None else index[p.axis]
    scale, zero_point = np.float32(p.scale.reshape(-1)[channel]), int(p.zero_point.reshape(-1)[channel])
    value = np.float32(np.float32(q - zero_point) * scale)
    where = "" if p.axis is None else f" (channel {channel} of axis {p.axis})"
    return [first, Step("scale * (q - zero point)", (f"{scale:.9g} * ({q} - {zero_point}) = {value:.9g}{where}",),
                        {"scale": scale, "zero_point": zero_point, "value": value})], float(value)


def nearest_source(in_size: int, out_size: int, v: int, align: bool, half: bool) -> tuple[int, str]:
    """GetNearestNeighbor for one output index, with its arithmetic in words (kernels/resize.nearest_indices)."""
    scale = resize_scale(in_size, out_size, align)
    offset = np.float32(0.5) if half else np.float32(0)
    s = np.float32(np.float32(v + offset) * scale)
    rounded = int(round_half_away(s)) if align else int(np.floor(s))
    index = min(rounded, in_size - 1)
    index = max(index, 0) if half else index
    how = "round (halves away)" if align else "floor"
    return index, (f"({v}{' + 0.5' if half else ''}) * {scale:.9g} = {s:.9g}; {how} {rounded}; "
                   f"min with {in_size - 1}{', max with 0' if half else ''} = {index}")


def resize_nearest(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """ResizeNearestNeighbor: the source element, copied (float and quantized alike)."""
    x = call.inputs[0]
    n, oy, ox, c = index
    o = call.prepared.op.options
    align, half = bool(o.align_corners), bool(o.half_pixel_centers)
    sy, row = nearest_source(x.shape[1], call.output.shape[1], oy, align, half)
    sx, column = nearest_source(x.shape[2], call.output.shape[2], ox, align, half)
    value = x[n, sy, sx, c].item()
    flags = f"align_corners {align}, half_pixel_centers {half}"
    return [Step("source index (float32 coordinates)", (flags, f"row: {row}", f"column: {column}"),
                 {"y": sy, "x": sx}),
            Step("copy", (f"x[{n},{sy},{sx},{c}] = {value:.9g}",), {"value": value})], value


def softmax_row(call: Call, index: tuple[int, ...]) -> tuple[np.ndarray, int, Step]:
    x = call.inputs[0]
    row = x.reshape(-1, x.shape[-1])[int(np.ravel_multi_index(index[:-1], x.shape[:-1])) if x.ndim > 1 else 0]
    c = index[-1]
    listed = (" ".join(_short(v) for v in row.tolist()) if row.size <= COLUMN_LIMIT else
              f"({row.size} values; --json lists them)")
    lines = (f"{row.size} values: {listed}", f"element {c}: {_short(row[c].item())}")
    return row, c, Step("the row (last axis)", lines, {"row": row.tolist(), "column": c})


def softmax_float(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::Softmax (float): max, exp((x - max) * beta) summed in order, then the division."""
    row, c, first = softmax_row(call, index)
    beta = np.float32(call.prepared.params.beta)
    best = np.float32(np.finfo(np.float32).min)
    for v in row:
        best = max(best, np.float32(v))
    total, exps = np.float32(0), []
    for v in row:
        e = c_float("expf", np.float32(np.float32(np.float32(v) - best) * beta))
        exps.append(e)
        total = np.float32(total + e)
    value = np.float32(exps[c] / total)
    return [first, Step("max", (f"max of the row = {best:.9g}",), {"max": best}),
            Step("exp((x - max) * beta), summed in order (float32, expf)",
                 (f"beta = {beta:.9g}; element {c}: expf(({row[c]:.9g} - {best:.9g}) * {beta:.9g}) = {exps[c]:.9g}",
                  f"sum of {len(exps)} exps = {total:.9g}"), {"exps": exps, "sum": total}),
            Step("division", (f"{exps[c]:.9g} / {total:.9g} = {value:.9g}",), {"value": value})], float(value)


def softmax_quantized(call: Call, index: tuple[int, ...]) -> tuple[list[Step], Number]:
    """reference_ops::Softmax<uint8/int8> (reference/softmax.h): gemmlowp fixed point, call by call."""
    p = call.prepared.params
    row, c, first = softmax_row(call, index)
    values = [int(v) for v in row.tolist()]
    info = np.iinfo(call.inputs[0].dtype)
    best = max(values)
    steps = [first, Step("max and the differences", (f"max = {best}; diff = x - max; counted where diff >= "
                                                     f"diff_min = {p.diff_min}",), {"max": best,
                                                                                    "diff_min": p.diff_min})]
    exps, scaled = [], []
    for v in values:
        diff = v - best
        if diff >= p.diff_min:
            rescaled = int(multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift))
            e = int(exp_on_negative_values(np.int64(rescaled), SCALED_DIFF_INTEGER_BITS))
        else:
            rescaled, e = None, 0
        exps.append(e)
        scaled.append(int(saturating_rounding_multiply_by_pot(np.int64(e), -ACCUMULATION_INTEGER_BITS)))
    diff_c = values[c] - best
    counted = diff_c >= p.diff_min
    rescaled_c = int(multiply_by_quantized_multiplier(diff_c, p.input_multiplier, p.input_left_shift)) \
        if counted else None
    if counted:
        lines = (f"diff = {values[c]} - {best} = {diff_c}; MultiplyByQuantizedMultiplierGreaterThanOne(diff, "
                 f"{p.input_multiplier}, {p.input_left_shift}) = {rescaled_c} (Q5.26)",
                 f"exp_on_negative_values({rescaled_c}) = {exps[c]} (Q0.31, {exps[c] / 2**31:.9g})")
    else:
        lines = (f"diff = {values[c]} - {best} = {diff_c} < diff_min: exp 0",)
    steps.append(Step("element's exp (Q5.26 in, Q0.31 out)", lines,
                      {"diff": diff_c, "rescaled": rescaled_c, "exp": exps[c]}))
    total = sum(scaled)
    steps.append(Step("sum of exps (Q12.19)", (f"each exp Rescale'd by 2^-{ACCUMULATION_INTEGER_BITS} "
                                               f"(SaturatingRoundingMultiplyByPOT) and summed: {total} "
                                               f"({total / 2**19:.9g})",), {"exps": exps, "sum": total}))
    reciprocal, bits = (int(v) for v in get_reciprocal(np.int64(total), ACCUMULATION_INTEGER_BITS))
    steps.append(Step("GetReciprocal", (f"1 / sum: {reciprocal} (Q0.31) with num_bits_over_unit = {bits}",),
                      {"reciprocal": reciprocal, "num_bits_over_unit": bits}))
    exponent = bits + 31 - 8
    high = int(saturating_rounding_doubling_high_mul(np.int64(reciprocal), np.int64(exps[c])))
    unsaturated = int(rounding_divide_by_pot(np.int64(high), exponent))
    out = unsaturated + int(info.min) if counted else int(info.min)
    value = min(max(out, int(info.min)), int(info.max))
    steps.append(Step("output (units of 1/256)", (
        f"SRDHM({reciprocal}, {exps[c]}) = {high}; RoundingDivideByPOT by {bits} + 31 - 8 = {exponent}: "
        f"{unsaturated}", f"+ {info.min} = {out}; saturated to [{info.min}, {info.max}] = {value}"),
        {"srdhm": high, "exponent": exponent, "unsaturated": unsaturated, "value": value}))
    return steps, value


def _short(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


EXPLAINERS: dict[tuple[str, str], Explainer] = {
    **{(kernel.upper(), kernel): float_activation for kernel in (
        "relu", "relu6", "relu_n1_to_1", "logistic", "tanh", "hard_swish", "leaky_relu", "prelu")},
    ("LOGISTIC", "quantized_lookup"): lookup,
    ("TANH", "quantized_lookup"): lookup,
    **{(kind, "quantized_relu_x"): relu_quantized for kind in ("RELU", "RELU6", "RELU_N1_TO_1")},
    ("HARD_SWISH", "quantized_hard_swish"): hard_swish_quantized,
    ("LEAKY_RELU", "quantized_leaky_relu"): leaky_relu_quantized,
    ("PRELU", "quantized_prelu"): prelu_quantized,
    ("DEQUANTIZE", "quantized_dequantize"): dequantize,
    ("RESIZE_NEAREST_NEIGHBOR", "resize_nearest_neighbor"): resize_nearest,
    ("RESIZE_NEAREST_NEIGHBOR", "quantized_resize_nearest_neighbor"): resize_nearest,
    ("SOFTMAX", "softmax"): softmax_float,
    ("SOFTMAX", "quantized_softmax"): softmax_quantized,
}

"""Builders of quantized single-op seeds: one per kind in npdeeplab.ops.QUANTIZED_PREPARERS, in
QUANTIZED_SEED_BUILDERS under "q:<kind>" (seeds.py checks that every quantized kind has one).

Each draws a random valid one-op model of the kind's quantized form: uint8 with per-tensor
quantization, int8 (convolution filters per channel, zero points 0), int16 where the kind takes
it; scales log-uniform from 1e-6 to 1e3 with specials (1/256, powers of two, 1e-9, 1e4), zero
points at their type's ends, 0 and anywhere; fused activations, strides, dilations and padding,
broadcast shapes, constant or variable filters and biases (int32, up to the whole int32 range).
Output scales are mostly drawn near what converters write (input x filter for a convolution), so
that most draws are models the preparer accepts; seeds.py draws again those it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from npdeeplab.model.builder import GraphBuilder

from .helpers import (
    ACTIVATIONS,
    broadcast_shapes,
    chance,
    conv_geometry,
    filter_axis,
    fully_connected_geometry,
    pick,
    random_array,
    random_shape,
    reduction_axes,
    transpose_conv_geometry,
    window_options,
)

QUANTIZED_PREFIX = "q:"
F32, I32, I64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)
U8, I8, I16 = np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int16)
EIGHT_BIT = (U8, I8)
SCALE_SPECIALS = (1 / 256, 1 / 128, 1.0, 0.5, 2.0**-20, 1e-9, 1e4)
BIAS_BITS = (0, 8, 16, 16, 24, 31)  # |bias| below 2**bits
REQUANTIZE_OUTPUTS = {U8: (U8, I8, I16), I8: (U8, I8, I16), I16: (I8, I16)}  # QUANTIZE int -> int, as LiteRT
Quantized = tuple[Any, ...]  # (scale, zero point) or (scales, zero points, axis), as GraphBuilder takes it


def random_scale(rng: np.random.Generator) -> float:
    """A float32 scale: log-uniform over [1e-6, 1e3], or a special (1/256, 2**-20, 1e-9, 1e4...)."""
    value = pick(rng, SCALE_SPECIALS) if chance(rng, 0.2) else 10.0 ** rng.uniform(-6, 3)
    return float(np.float32(value))


def near_scale(rng: np.random.Generator, scale: float, spread: float = 6.0) -> float:
    """A float32 scale within 2**spread of `scale` (exactly it, a fifth of the time)."""
    return float(np.float32(scale if chance(rng, 0.2) else scale * 2.0 ** rng.uniform(-spread, spread)))


def related_scale(rng: np.random.Generator, scale: float) -> float:
    """Mostly near `scale` (what converters write), sometimes anything."""
    return near_scale(rng, scale) if chance(rng, 0.8) else random_scale(rng)


def random_zero_point(rng: np.random.Generator, dtype: np.dtype) -> int:
    """An end of the type's range, one in from it, 0, the middle, or anywhere; mostly 0 for int16."""
    info = np.iinfo(dtype)
    if dtype == I16:
        return 0 if chance(rng, 0.9) else int(rng.integers(info.min, info.max, endpoint=True))
    if chance(rng, 0.5):
        middle = (info.min + info.max + 1) // 2
        return int(pick(rng, [info.min, info.min + 1, info.max - 1, info.max, max(0, info.min), middle]))
    return int(rng.integers(info.min, info.max, endpoint=True))


def tensor_quantization(rng: np.random.Generator, dtype: np.dtype, scale: float | None = None) -> Quantized:
    """Per-tensor (scale, zero point): a random scale unless given."""
    return (random_scale(rng) if scale is None else scale, random_zero_point(rng, dtype))


def affine_quantization(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...]) -> Quantized:
    """Per tensor, or (8-bit types, a third of the time) per channel along a random axis."""
    if not shape or dtype == I16 or chance(rng, 0.67):
        return tensor_quantization(rng, dtype)
    axis = int(rng.integers(len(shape)))
    scales = [random_scale(rng) for _ in range(shape[axis])]
    return scales, [random_zero_point(rng, dtype) for _ in range(shape[axis])], axis


def add_data_input(
    rng: np.random.Generator, g: GraphBuilder, name: str, shape: tuple[int, ...], dtype: np.dtype, q: Quantized,
    constant: float = 0.0,
) -> int:
    """A graph input, or (with probability `constant`) a constant of random values over the whole range."""
    if chance(rng, constant):
        return g.add_constant(name, random_array(rng, shape, dtype), quantization=q)
    return g.add_input(name, shape, dtype, quantization=q)


# --- convolutions -------------------------------------------------------------------------------


def filter_quantization(
    rng: np.random.Generator, dtype: np.dtype, channels: int, axis: int
) -> tuple[Quantized, np.ndarray]:
    """The filter's quantization and its scales: uint8 per tensor with any zero point; int8 per
    channel along `axis` with zero points 0 (a single scale for all, sometimes)."""
    s_w = random_scale(rng)
    if dtype == U8:
        return (s_w, random_zero_point(rng, U8)), np.array([s_w], np.float32)
    count = 1 if chance(rng, 0.15) else channels
    scales = (s_w * 2.0 ** rng.uniform(-2, 2, count)).astype(np.float32)
    return (scales, np.zeros(count, np.int64), axis), scales


def add_bias(rng: np.random.Generator, g: GraphBuilder, s_in: float, filter_scales: np.ndarray, cout: int) -> int:
    """int32 bias quantized with scale s_in x filter scale (zero points 0), as converters write it;
    a constant up to 2**bits in size, sometimes a graph input."""
    scales = (np.float32(s_in) * filter_scales).astype(np.float32)
    q = (scales, np.zeros(scales.size, np.int64), 0)
    if chance(rng, 0.1):
        return g.add_input("bias", (cout,), I32, quantization=q)
    span = 2 ** pick(rng, BIAS_BITS)
    values = np.clip(rng.integers(-span, span, cout, endpoint=True), -(2**31), 2**31 - 1).astype(np.int32)
    return g.add_constant("bias", values, quantization=q)


def build_quantized_conv(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    dtype = pick(rng, EIGHT_BIT)
    x_shape, w_shape, options = conv_geometry(rng, kind)
    cout = w_shape[filter_axis(kind)]
    s_in, z_in = tensor_quantization(rng, dtype)
    filter_q, filter_scales = filter_quantization(rng, dtype, cout, filter_axis(kind))
    inputs = [g.add_input("x", x_shape, dtype, quantization=(s_in, z_in))]
    inputs.append(add_data_input(rng, g, "w", w_shape, dtype, filter_q, constant=0.9))
    if chance(rng, 0.85):
        inputs.append(add_bias(rng, g, s_in, filter_scales, cout))
    taps = int(np.prod(w_shape[1:3])) * (w_shape[3] if kind == "CONV_2D" else 1)
    s_out = related_scale(rng, s_in * float(filter_scales.max()) * 2.0 ** rng.uniform(0, 2 + np.log2(taps)))
    out_q = tensor_quantization(rng, dtype, s_out)
    g.mark_outputs(g.add_op(kind, inputs, output_quantization=out_q, **options))


def build_quantized_fully_connected(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """uint8 per tensor, int8 per tensor (any filter zero point: LiteRT subtracts it) or int8 per
    channel along the units (zero points 0); weights mostly constant, bias int32 or none."""
    dtype = pick(rng, EIGHT_BIT)
    shape, depth, units, options = fully_connected_geometry(rng)
    s_in, z_in = tensor_quantization(rng, dtype)
    if dtype == I8 and chance(rng, 0.6):
        filter_q, filter_scales = filter_quantization(rng, dtype, units, 0)
    else:
        s_w = random_scale(rng)
        filter_q, filter_scales = (s_w, random_zero_point(rng, dtype)), np.array([s_w], np.float32)
    inputs = [g.add_input("x", shape, dtype, quantization=(s_in, z_in))]
    inputs.append(add_data_input(rng, g, "w", (units, depth), dtype, filter_q, constant=0.9))
    if chance(rng, 0.8):
        inputs.append(add_bias(rng, g, s_in, filter_scales, units))
    elif chance(rng, 0.5):
        inputs.append(None)
    s_out = related_scale(rng, s_in * float(filter_scales.max()) * 2.0 ** rng.uniform(0, 2 + np.log2(depth)))
    out_q = tensor_quantization(rng, dtype, s_out)
    g.mark_outputs(g.add_op(kind, inputs, output_quantization=out_q, **options))


def build_quantized_transpose_conv(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """uint8 per tensor or int8 per channel along Cout (axis 0 of OHWI; zero points 0); weights
    mostly constant; bias int32, absent or omitted (index -1)."""
    dtype = pick(rng, EIGHT_BIT)
    x_shape, w_shape, out_shape, options = transpose_conv_geometry(rng)
    cout = w_shape[0]
    s_in, z_in = tensor_quantization(rng, dtype)
    filter_q, filter_scales = filter_quantization(rng, dtype, cout, 0)
    inputs = [g.add_constant("output_shape", np.array(out_shape, I32)),
              add_data_input(rng, g, "w", w_shape, dtype, filter_q, constant=0.9),
              g.add_input("x", x_shape, dtype, quantization=(s_in, z_in))]
    if chance(rng, 0.8):
        inputs.append(add_bias(rng, g, s_in, filter_scales, cout))
    elif chance(rng, 0.5):
        inputs.append(None)
    taps = int(np.prod(w_shape[1:]))
    s_out = related_scale(rng, s_in * float(filter_scales.max()) * 2.0 ** rng.uniform(0, 2 + np.log2(taps)))
    g.mark_outputs(g.add_op(kind, inputs, output_quantization=tensor_quantization(rng, dtype, s_out), **options))


# --- elementwise, pools, reductions -----------------------------------------------------------------


def build_quantized_binary(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """ADD, SUB or MUL of two 8-bit tensors of one type, broadcast, each quantized its own way."""
    dtype = pick(rng, EIGHT_BIT)
    a_shape, b_shape = broadcast_shapes(rng)
    s1 = random_scale(rng)
    q1, q2 = tensor_quantization(rng, dtype, s1), tensor_quantization(rng, dtype, related_scale(rng, s1))
    s_out = related_scale(rng, s1 * float(q2[0]) if kind == "MUL" else 2 * max(s1, float(q2[0])))
    a = g.add_input("a", a_shape, dtype, quantization=q1)
    b = add_data_input(rng, g, "b", b_shape, dtype, q2, constant=0.5)
    out_q = tensor_quantization(rng, dtype, s_out)
    g.mark_outputs(g.add_op(kind, [a, b], output_quantization=out_q, fused_activation_function=pick(rng, ACTIVATIONS)))


def build_quantized_pool(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """AVERAGE_POOL_2D or MAX_POOL_2D; the output quantized as the input (LiteRT pools raw values)."""
    dtype = pick(rng, EIGHT_BIT)
    q = tensor_quantization(rng, dtype)
    x = g.add_input("x", (int(rng.integers(1, 3)), *random_shape(rng, 2, 1, 8), int(rng.integers(1, 5))), dtype,
                    quantization=q)
    options = window_options(rng)
    options["filter_height"], options["filter_width"] = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    g.mark_outputs(g.add_op(kind, [x], output_quantization=q, **options))


def build_quantized_mean(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    dtype = pick(rng, EIGHT_BIT)
    shape = random_shape(rng, int(rng.integers(1, 5)))
    s_in, z_in = tensor_quantization(rng, dtype)
    x = g.add_input("x", shape, dtype, quantization=(s_in, z_in))
    axes = g.add_constant("axes", np.array(reduction_axes(rng, len(shape)), I32))
    out_q = tensor_quantization(rng, dtype, related_scale(rng, s_in))
    g.mark_outputs(g.add_op(kind, [x, axes], output_quantization=out_q, keep_dims=chance(rng, 0.5)))


# --- resizes and data movement ------------------------------------------------------------------


def build_quantized_resize(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """uint8, int8 or int16; the output quantized as the input or not (LiteRT moves raw values)."""
    dtype = pick(rng, [U8, U8, I8, I8, I16])
    q = tensor_quantization(rng, dtype)
    x = g.add_input("x", (int(rng.integers(1, 3)), *random_shape(rng, 2, 1, 6), int(rng.integers(1, 4))), dtype,
                    quantization=q)
    size = g.add_constant("size", np.array(random_shape(rng, 2, 1, 9), np.int32))
    corners = [(False, False), (True, False), (False, True)] + ([(True, True)] if kind != "RESIZE_BILINEAR" else [])
    align, half = pick(rng, corners)
    out_q = q if chance(rng, 0.7) else tensor_quantization(rng, dtype)
    g.mark_outputs(g.add_op(kind, [x, size], output_quantization=out_q, align_corners=align, half_pixel_centers=half))


def build_quantized_concatenation(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """uint8 inputs quantized each its own way (requantized to the output's), or int8 inputs
    quantized as the output (LiteRT's int8 CONCATENATION does not rescale); some constants."""
    dtype = pick(rng, EIGHT_BIT)
    rank = int(rng.integers(1, 5))
    shape, axis = random_shape(rng, rank), int(rng.integers(-rank, rank))
    out_q = tensor_quantization(rng, dtype)
    inputs = []
    for k in range(int(rng.integers(1, 4))):
        this = list(shape)
        this[axis] = int(rng.integers(1, 4))
        q = tensor_quantization(rng, dtype, related_scale(rng, out_q[0])) if dtype == U8 and chance(rng, 0.7) else out_q
        inputs.append(add_data_input(rng, g, f"x{k}", tuple(this), dtype, q, constant=0.3 if k else 0.0))
    g.mark_outputs(g.add_op(kind, inputs, output_quantization=out_q, axis=axis))


def build_quantized_pad(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """Padded with the output's zero point; the output mostly quantized as the input."""
    dtype = pick(rng, EIGHT_BIT)
    shape = random_shape(rng, int(rng.integers(1, 5)))
    q = tensor_quantization(rng, dtype)
    x = g.add_input("x", shape, dtype, quantization=q)
    paddings = g.add_constant("paddings", rng.integers(0, 3, (len(shape), 2)).astype(pick(rng, [I32, I64])))
    out_q = q if chance(rng, 0.8) else tensor_quantization(rng, dtype)
    g.mark_outputs(g.add_op(kind, [x, paddings], output_quantization=out_q))


def build_quantized_expand_dims(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """Input and output share the quantization (LiteRT requires it), per tensor or per channel."""
    dtype = pick(rng, EIGHT_BIT)
    shape = random_shape(rng, int(rng.integers(1, 5)))
    q = affine_quantization(rng, dtype, shape)
    axis = g.add_constant("axis", np.array([int(rng.integers(-len(shape) - 1, len(shape) + 1))], np.int32))
    g.mark_outputs(g.add_op(kind, [g.add_input("x", shape, dtype, quantization=q), axis], output_quantization=q))


# --- activations ----------------------------------------------------------------------------------


def build_quantized_softmax(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """Output in units of 1/256 (int8: zero point -128, as LiteRT requires; uint8: mostly 0)."""
    dtype = pick(rng, EIGHT_BIT)
    shape = random_shape(rng, int(rng.integers(1, 5)), 1, 6)
    x = g.add_input("x", shape, dtype, quantization=tensor_quantization(rng, dtype))
    if dtype == I8:
        out_q: Quantized = (pick(rng, [1 / 256, 1 / 256, float(np.float32(1 / 256 * 1.0009))]), -128)
    else:
        out_q = (1 / 256, 0) if chance(rng, 0.8) else tensor_quantization(rng, dtype)
    beta = float(pick(rng, [1.0, 1.0, 0.5, 2.0, 10.0 ** rng.uniform(-2, 1)]))
    g.mark_outputs(g.add_op(kind, [x], output_quantization=out_q, beta=beta))


def build_quantized_lookup(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """LOGISTIC (output scale 1/256, any zero point) or TANH (1/128 around the middle, or anything)."""
    dtype = pick(rng, EIGHT_BIT)
    info = np.iinfo(dtype)
    shape = random_shape(rng, int(rng.integers(0, 5)))
    x = g.add_input("x", shape, dtype, quantization=tensor_quantization(rng, dtype))
    if kind == "LOGISTIC":
        out_q: Quantized = (1 / 256, int(info.min) if chance(rng, 0.7) else random_zero_point(rng, dtype))
    else:
        usual = (1 / 128, (int(info.min) + int(info.max) + 1) // 2)
        out_q = usual if chance(rng, 0.6) else tensor_quantization(rng, dtype)
    g.mark_outputs(g.add_op(kind, [x], output_quantization=out_q))


def build_quantized_rectifier(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU (alpha negative, 0 or above 1) or HARD_SWISH, input
    requantized to the output; HARD_SWISH's output scale mostly above s_in / 128 (LiteRT needs it)."""
    dtype = pick(rng, EIGHT_BIT)
    s_in = random_scale(rng)
    shape = random_shape(rng, int(rng.integers(0, 5)))
    x = g.add_input("x", shape, dtype, quantization=(s_in, random_zero_point(rng, dtype)))
    if kind == "HARD_SWISH" and chance(rng, 0.8):
        s_out = float(np.float32(s_in / 128 * 2.0 ** rng.uniform(0.01, 10)))
    else:
        s_out = related_scale(rng, s_in)
    options = {"alpha": float(pick(rng, [0.2, 0.0, -0.5, 2.5, rng.uniform(-3, 3)]))} if kind == "LEAKY_RELU" else {}
    g.mark_outputs(g.add_op(kind, [x], output_quantization=tensor_quantization(rng, dtype, s_out), **options))


def build_quantized_prelu(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """alpha of the input's type broadcast to the input (some axes 1, leading ones dropped), mostly a
    constant, quantized its own way."""
    dtype = pick(rng, EIGHT_BIT)
    shape = random_shape(rng, int(rng.integers(0, 5)))
    alpha_shape = tuple([1 if chance(rng, 0.5) else d for d in shape][int(rng.integers(0, len(shape) + 1)) :])
    s_in = random_scale(rng)
    x = g.add_input("x", shape, dtype, quantization=(s_in, random_zero_point(rng, dtype)))
    alpha_q = tensor_quantization(rng, dtype, related_scale(rng, 0.01))
    alpha = add_data_input(rng, g, "alpha", alpha_shape, dtype, alpha_q, constant=0.8)
    out_q = tensor_quantization(rng, dtype, related_scale(rng, s_in))
    g.mark_outputs(g.add_op(kind, [x, alpha], output_quantization=out_q))


# --- QUANTIZE and DEQUANTIZE ----------------------------------------------------------------------


def requantization(rng: np.random.Generator, source: np.dtype, target: np.dtype) -> tuple[Quantized, Quantized]:
    """(input, output) quantization of an int -> int QUANTIZE: scales near each other, or equal
    with zero points 128 apart between uint8 and int8 (a flip of the sign bit); int16 -> int16
    with zero points 0."""
    s_in = random_scale(rng)
    if {source, target} == {U8, I8} and chance(rng, 0.25):
        z_in = random_zero_point(rng, source)
        return (s_in, z_in), (s_in, z_in - 128 if source == U8 else z_in + 128)
    q_in, q_out = (s_in, random_zero_point(rng, source)), tensor_quantization(rng, target, related_scale(rng, s_in))
    if source == target == I16:
        return (s_in, 0), (q_out[0], 0)
    return q_in, q_out


def build_quantize(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """float32 -> uint8, int8 or int16 (per tensor or per channel), or int -> int (a requantization)."""
    shape = random_shape(rng, int(rng.integers(0, 5)))
    if chance(rng, 0.4):
        target = pick(rng, [U8, I8, I8, I16])
        x = g.add_input("x", shape, F32)
        out_q = affine_quantization(rng, target, shape)
    else:
        source = pick(rng, [U8, I8, I16])
        target = pick(rng, REQUANTIZE_OUTPUTS[source])
        in_q, out_q = requantization(rng, source, target)
        x = g.add_input("x", shape, source, quantization=in_q)
    # The shape given: the builder's provisional output is a scalar, on which a per-channel axis is out of range.
    g.mark_outputs(g.add_op(kind, [x], output_shape=shape, output_dtype=target, output_quantization=out_q))


def build_dequantize(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """uint8 or int8 (per tensor or per channel), or int16 (per tensor, zero point 0) -> float32."""
    dtype = pick(rng, [U8, I8, I8, I16])
    shape = random_shape(rng, int(rng.integers(0, 5)))
    q = affine_quantization(rng, dtype, shape) if dtype != I16 else (random_scale(rng), 0)
    g.mark_outputs(g.add_op(kind, [g.add_input("x", shape, dtype, quantization=q)]))


QUANTIZED_SEED_BUILDERS: dict[str, Callable[[np.random.Generator, str, GraphBuilder], None]] = {
    QUANTIZED_PREFIX + kind: builder
    for kinds, builder in (
        (("ADD", "SUB", "MUL"), build_quantized_binary),
        (("CONV_2D", "DEPTHWISE_CONV_2D"), build_quantized_conv),
        (("FULLY_CONNECTED",), build_quantized_fully_connected),
        (("TRANSPOSE_CONV",), build_quantized_transpose_conv),
        (("AVERAGE_POOL_2D", "MAX_POOL_2D"), build_quantized_pool),
        (("MEAN",), build_quantized_mean),
        (("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"), build_quantized_resize),
        (("CONCATENATION",), build_quantized_concatenation),
        (("PAD",), build_quantized_pad),
        (("EXPAND_DIMS",), build_quantized_expand_dims),
        (("SOFTMAX",), build_quantized_softmax),
        (("LOGISTIC", "TANH"), build_quantized_lookup),
        (("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH"), build_quantized_rectifier),
        (("PRELU",), build_quantized_prelu),
        (("QUANTIZE",), build_quantize),
        (("DEQUANTIZE",), build_dequantize),
    )
    for kind in kinds
}

"""Quantized RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, PRELU and HARD_SWISH (uint8, int8), as LiteRT's
reference resolver computes them (tflite/kernels/activations.cc and the headers named below).

Each op requantizes input to output with multipliers Prepare quantized once (the params here):
- RELU, RELU6, RELU_N1_TO_1: optimized_ops::ReluX, the one kernel LiteRT has for them (REF and OPT
  register the same): clamp(z_out + MBQM(q - z_in, M, shift)) to the activation's quantized range.
- LEAKY_RELU: reference_ops::QuantizeLeakyRelu, the identity multiplier for q >= z_in, alpha's
  (negative when alpha is) for the rest.
- PRELU: reference_ops::Prelu / BroadcastPrelu4DSlow, x's multiplier for x >= 0, else the product
  (q - z_in)(a - z_a) rescaled by s_in * s_alpha / s_out; alpha broadcasts against the input.
- HARD_SWISH: reference_ops::HardSwish, in 16-bit fixed point (kernels.fixed_point's int16 forms).
MBQM is MultiplyByQuantizedMultiplier; its int32 arithmetic wraps as C's does on x86-64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdeeplab.kernels.fixed_point import (
    INT16_MAX,
    INT16_MIN,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot_int16,
    saturate,
    saturating_rounding_doubling_high_mul_int16,
    truncating_divide_by_pot,
    wrap_int16,
    wrap_int32,
)

# --- RELU, RELU6, RELU_N1_TO_1 ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReluParams:
    """tflite::ReluParams as QuantizedReluX fills it."""

    input_offset: int  # the input zero point (subtracted)
    output_offset: int  # the output zero point
    output_multiplier: int  # QuantizeMultiplier(s_in / s_out), the division in float32
    output_shift: int
    quantized_activation_min: int  # max(type min, z_out + round(low / s_out))
    quantized_activation_max: int  # min(type max, z_out + round(high / s_out)); type max for RELU


def relu_x(p: ReluParams, x: np.ndarray) -> np.ndarray:
    """optimized_ops::ReluX<T>(ReluParams): z_out + MBQM(q - z_in), then max(low, .), then min(high, .)."""
    rescaled = multiply_by_quantized_multiplier(x.astype(np.int64) - p.input_offset, p.output_multiplier,
                                                p.output_shift)
    clamped = np.maximum(wrap_int32(rescaled + p.output_offset), p.quantized_activation_min)
    return np.minimum(clamped, p.quantized_activation_max).astype(x.dtype)


# --- LEAKY_RELU ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakyReluParams:
    """tflite::LeakyReluParams as QuantizeLeakyRelu (activations.cc) fills it."""

    input_offset: int  # the input zero point (subtracted)
    output_offset: int  # the output zero point
    output_multiplier_alpha: int  # QuantizeMultiplier(s_in * alpha / s_out), in float32: negative for alpha < 0
    output_shift_alpha: int
    output_multiplier_identity: int  # QuantizeMultiplier(s_in / s_out), in float32
    output_shift_identity: int


def quantize_leaky_relu(p: LeakyReluParams, x: np.ndarray) -> np.ndarray:
    """reference_ops::QuantizeLeakyRelu (reference/leaky_relu.h): v = q - z_in; z_out + MBQM(v,
    identity) for v >= 0, else z_out + sign * MBQM(v, |alpha's multiplier|), clamped to the type.

    The sign is taken out first because MBQM expects a multiplier >= 0 (LiteRT >= 2.1.4); |M| is
    C's int32 negation, so INT32_MIN stays itself.
    """
    v = x.astype(np.int64) - p.input_offset
    negative_alpha = p.output_multiplier_alpha < 0
    magnitude = int(wrap_int32(-p.output_multiplier_alpha)) if negative_alpha else p.output_multiplier_alpha
    identity = multiply_by_quantized_multiplier(v, p.output_multiplier_identity, p.output_shift_identity)
    scaled = multiply_by_quantized_multiplier(v, magnitude, p.output_shift_alpha)
    if negative_alpha:
        scaled = wrap_int32(-scaled)
    unclamped = wrap_int32(p.output_offset + np.where(v >= 0, identity, scaled))
    return saturate(unclamped, x.dtype)


# --- PRELU -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreluParams:
    """tflite::PreluParams as PreluEval fills it (offsets are negated zero points, as in LiteRT)."""

    input_offset: int  # -z_in
    alpha_offset: int  # -z_alpha
    output_offset: int  # z_out
    output_multiplier_1: int  # QuantizeMultiplier(s_in / s_out), in float32
    output_shift_1: int
    output_multiplier_2: int  # QuantizeMultiplier(s_in * s_alpha / s_out), in float32
    output_shift_2: int


def prelu(p: PreluParams, x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """reference_ops::Prelu and BroadcastPrelu4DSlow (reference/prelu.h), alpha broadcast against x:
    v = q + input_offset; MBQM(v, M1, shift1) for v >= 0, else MBQM(v * (a + alpha_offset), M2,
    shift2); plus z_out, clamped to the type. Both inputs have x's 8-bit type."""
    v = x.astype(np.int64) + p.input_offset
    a = alpha.astype(np.int64) + p.alpha_offset
    positive = multiply_by_quantized_multiplier(v, p.output_multiplier_1, p.output_shift_1)
    negative = multiply_by_quantized_multiplier(v * a, p.output_multiplier_2, p.output_shift_2)
    out = wrap_int32(np.where(v >= 0, positive, negative) + p.output_offset)
    return saturate(out, x.dtype)


# --- HARD_SWISH ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardSwishParams:
    """tflite::HardSwishParams as HardSwishPrepare (activations.cc) computes it."""

    input_zero_point: int
    output_zero_point: int
    # DownScaleInt32ToInt16Multiplier of QuantizeMultiplier(hires / (3 / 32768)), hires = s_in / 128
    # (all float32): the input on a scale where 3.0 is 32768
    reluish_multiplier_fixedpoint_int16: int
    reluish_multiplier_exponent: int  # at most 31 (Prepare refuses more)
    # ... of QuantizeMultiplier(hires / s_out): the input on the output scale, shift <= 0
    output_multiplier_fixedpoint_int16: int
    output_multiplier_exponent: int


def saturating_left_shift(value: np.ndarray, amount: int) -> np.ndarray:
    """hard_swish.h's SaturatingLeftShift: value * 2**amount (int64), saturated to int16."""
    return np.clip(np.asarray(value, dtype=np.int64) << amount, INT16_MIN, INT16_MAX)


def saturating_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """hard_swish.h's SaturatingDoublingHighMul (SQDMULH): a*b / 2**15 truncated toward zero, no
    rounding; INT16_MIN * INT16_MIN saturates to INT16_MAX."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    high = wrap_int16(truncating_divide_by_pot(a * b, 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, high)


def hard_swish(p: HardSwishParams, x: np.ndarray) -> np.ndarray:
    """reference_ops::HardSwish<T>(HardSwishParams) (reference/hard_swish.h), in int16 fixed point:

    v = (q - z_in) * 2**7 ("hires"); the input on the output scale, not yet shifted, is
    SRDHM16(v, M_out). The "reluish" factor min(max(x + 3, 0), 6) / 6 in [0, 1]: v rescaled so
    that 3.0 is 32768 (a left shift saturating in two steps, SRDHM16 with M_reluish, or a
    rounding right shift), then (r + 2**15) >> 1. Their product by SaturatingDoublingHighMul
    (truncating), RoundingDivideByPOT16 by -exponent_out, plus z_out in int16 (which wraps), then
    clamped to the type.
    """
    hires = wrap_int16((x.astype(np.int64) - p.input_zero_point) * (1 << 7))
    preshift_output = saturating_rounding_doubling_high_mul_int16(hires, p.output_multiplier_fixedpoint_int16)
    exponent = p.reluish_multiplier_exponent
    reluish = hires
    if exponent > 0:
        reluish = saturating_left_shift(reluish, exponent - 1)
    reluish = saturating_rounding_doubling_high_mul_int16(reluish, p.reluish_multiplier_fixedpoint_int16)
    if exponent > 0:
        reluish = saturating_left_shift(reluish, 1)
    elif exponent < 0:
        reluish = rounding_divide_by_pot_int16(reluish, -exponent)
    reluish = (reluish + (1 << 15)) >> 1  # [-1, 1] to [0, 1]
    product = saturating_doubling_high_mul(reluish, preshift_output)
    out = wrap_int16(rounding_divide_by_pot_int16(product, -p.output_multiplier_exponent) + p.output_zero_point)
    return saturate(out, x.dtype)


KERNELS: dict[str, Callable] = {
    "quantized_relu_x": relu_x,
    "quantized_leaky_relu": quantize_leaky_relu,
    "quantized_prelu": prelu,
    "quantized_hard_swish": hard_swish,
}

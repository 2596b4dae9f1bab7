"""QUANTIZE float32 -> uint8 / int8 / int16 per tensor, and 8-bit -> 8-bit requantization, as
LiteRT's optimized kernels compute them (quantize.cc, kGenericOptimized)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npdeeplab.kernels.fixed_point import round_half_away, saturate, wrap_int32
from npdeeplab.kernels.integer.quantize import AffineParams, RequantizeParams, float_to_int32, requantize_formula
from npdeeplab.kernels.optimized.rounding import multiply_by_quantized_multiplier_upward

BLOCK = 8  # the NEON loop's elements per iteration


def affine_quantize(p: AffineParams, x: np.ndarray) -> np.ndarray:
    """optimized_ops::AffineQuantize's uint8, int8 and int16 specialisations (optimized_ops.h).

    The flat input's whole blocks of 8 run its NEON loop, through LiteRT's SSE emulation on x86:

        q = clamp(RoundToNearest(x * float32(1.0f / double(scale))) + zero_point)

    a float32 product (not a division), rounded half to even (vcvtnq_s32_f32, cvtps2dq: NaN and
    values outside int32 become INT32_MIN), the addition wrapping in int32. The elements left over
    run the scalar loop, TfLiteRound(x / double(scale)): unlike reference_ops::AffineQuantize, which
    divides in float32, the division is in double; halves away from zero, and static_cast<int32_t>
    as x86 does it (INT32_MIN outside int32).
    Per-channel quantization keeps reference_ops::PerChannelQuantize (npdeeplab.ops.optimized).
    """
    flat = x.reshape(-1)
    blocked = flat.size - flat.size % BLOCK
    scale = np.float64(p.scale[0])
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.concatenate([
            np.rint(flat[:blocked].astype(np.float32) * np.float32(1.0 / scale)),  # the NEON blocks
            round_half_away(flat[blocked:].astype(np.float64) / scale),  # the scalar tail
        ])
    info = np.iinfo(p.dtype)
    unclamped = wrap_int32(float_to_int32(rounded) + int(p.zero_point[0]))
    return np.clip(unclamped, info.min, info.max).astype(p.dtype).reshape(x.shape)


KERNELS: dict[str, Callable] = {"optimized_affine_quantize": affine_quantize}


REQUANTIZE_BLOCK = 16  # Requantize's NEON loop: 16 values per iteration


def requantize(p: RequantizeParams, x: np.ndarray) -> np.ndarray:
    """optimized_ops::Requantize's four 8-bit specialisations (uint8/int8 -> uint8/int8;
    optimized_ops.h). The flat input's whole blocks of 16 run its NEON loop:
    MultiplyByQuantizedMultiplier4Rows (common.h, double rounding: vshlq_s32, vqrdmulhq_s32, then
    vrshlq_s32, whose halves round upward: rounding.multiply_by_quantized_multiplier_upward); the
    values left over run the scalar MultiplyByQuantizedMultiplier, the reference's formula."""
    if p.flip_sign_bit:  # the uint8 <-> int8 shift by 128: exact, the same either way
        return requantize_formula(p, x)
    flat = x.reshape(-1)
    blocked = flat.size - flat.size % REQUANTIZE_BLOCK
    shifted = flat[:blocked].astype(np.int64) - p.input_zero_point
    scaled = multiply_by_quantized_multiplier_upward(shifted, p.multiplier, p.shift) + p.output_zero_point
    out = np.empty(flat.shape, dtype=p.dtype)
    out[:blocked] = saturate(scaled, p.dtype)
    out[blocked:] = requantize_formula(p, flat[blocked:])
    return out.reshape(x.shape)


KERNELS["optimized_requantize"] = requantize

"""Quantized ADD as XNNPACK computes it: the qu8/qs8 "vadd" microkernels (src/qu8-vadd,
src/qs8-vadd; the SSE/AVX variants are bit-identical to the scalar one), broadcasting as the
binary-elementwise operator does.

Fixed point with one rounding, unlike LiteRT's reference ADD (three roundings after a 2**20
left shift): each input gets a multiplier of about 20 bits, and

    acc = bias + a * a_multiplier + b * b_multiplier      bias = 2**(shift-1) - a_zp*a_mult - b_zp*b_mult
    out = clamp((acc >> shift) + output_zero_point)       arithmetic shift (floor)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

F32 = np.float32
SMALLEST_RATIO, LARGEST_RATIO = 2.0**-10, 2.0**8  # the input/output scale ratios XNNPACK accepts


@dataclass(frozen=True)
class XnnAddParams:
    a_multiplier: int
    b_multiplier: int
    bias: int
    shift: int
    output_zero_point: int
    out_min: int
    out_max: int


def add_params(a: tuple[float, int], b: tuple[float, int], out: tuple[float, int], out_min: int,
               out_max: int) -> XnnAddParams | None:
    """xnn_init_qu8_add_minmax_scalar_params / xnn_init_qs8_add_minmax_scalar_params from
    (scale, zero point) pairs; None where XNNPACK refuses the ratios (outside [2**-10, 2**8))."""
    with np.errstate(all="ignore"):
        a_ratio, b_ratio = F32(a[0]) / F32(out[0]), F32(b[0]) / F32(out[0])
    if not all(SMALLEST_RATIO <= r < LARGEST_RATIO for r in (a_ratio, b_ratio)):
        return None
    largest = max(a_ratio, b_ratio)
    exponent = int(np.array(largest, dtype=F32).view(np.uint32) >> 23) - 127
    shift = 20 - exponent  # in [12, 30]: the larger multiplier has 21 bits

    def multiplier(ratio: np.float32) -> int:
        # ratio * 2**shift by adding to the float's exponent field, then lrintf
        scaled = np.array(np.array(ratio, dtype=F32).view(np.uint32) + (shift << 23), dtype=np.uint32).view(F32)
        return int(np.rint(scaled))

    a_mult, b_mult = multiplier(a_ratio), multiplier(b_ratio)
    bias = (1 << (shift - 1)) - a_mult * a[1] - b_mult * b[1]
    return XnnAddParams(a_mult, b_mult, bias, shift, out[1], out_min, out_max)


def add(p: XnnAddParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """xnn_qu8_vadd_minmax_ukernel / xnn_qs8_vadd_minmax_ukernel (and the vaddc forms for a
    broadcast operand), in int64: the int32 sum cannot overflow, the multipliers being < 2**21."""
    acc = a.astype(np.int64) * p.a_multiplier + b.astype(np.int64) * p.b_multiplier  # broadcasting
    acc += p.bias
    acc >>= p.shift
    acc += p.output_zero_point
    return np.clip(acc, p.out_min, p.out_max).astype(a.dtype)


KERNELS: dict[str, Callable] = {"xnnpack_add": add}

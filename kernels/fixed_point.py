"""The integer primitives of TFLite's quantized kernels, one function each, vectorised over NumPy arrays.

Every quantized kernel rescales its int32 accumulators with these and nothing else, so this is
where rounding is decided. They mirror `tensorflow/lite/kernels/internal/common.h`,
`quantization_util.cc` and gemmlowp's `fixedpoint.h` in the build the pip wheel ships
("double rounding": SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT). Values are
int64 arrays holding int32 quantities, so that products never overflow; C's int32 wrap-around and
its truncating division are written out where the C code relies on them.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M, shift) with real == M * 2**(shift - 31), M in [2**30, 2**31): TFLite's QuantizeMultiplier.

    real = q * 2**e with q in [0.5, 1) (frexp); M = round_half_away(q * 2**31) in double, and
    M == 2**31 becomes 2**30 with e + 1. Shifts below -31 would shift every bit out: TFLite
    flushes them to (0, 0), as it does real == 0.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    multiplier = int(round_half_away(np.float64(q * (1 << 31))))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return multiplier, shift


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """Nearest integer, halves away from zero (C's std::round, TfLiteRound), in x's float type.

    Computed from the exact fractional part: floor(|x| + 0.5) would round 0.49999997f up,
    because the sum rounds to 1 in float32.
    """
    x = np.asarray(x)
    whole = np.trunc(x)
    fraction = x - whole  # exact
    return whole + np.where(np.abs(fraction) >= 0.5, np.sign(x), 0).astype(x.dtype)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """x modulo 2**32 into [INT32_MIN, INT32_MAX]: what int32 arithmetic gives in C when it overflows."""
    return ((np.asarray(x, dtype=np.int64) - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def truncating_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """x / 2**exponent rounded toward zero, as C's `/` does (NumPy's `//` and `>>` floor)."""
    x = np.asarray(x, dtype=np.int64)
    return np.where(x >= 0, x >> exponent, -((-x) >> exponent))


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The high 32 bits of 2*a*b, rounded: gemmlowp's SaturatingRoundingDoublingHighMul.

    p = a*b in 64 bits; (p + 2**30) / 2**31 for p >= 0, (p + 1 - 2**30) / 2**31 below, with C's
    truncating division; the one product that overflows, INT32_MIN * INT32_MIN, saturates to
    INT32_MAX.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = truncating_divide_by_pot(product + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """x / 2**exponent, halves away from zero: gemmlowp's RoundingDivideByPOT (0 <= exponent <= 31).

    remainder = x & mask, threshold = mask/2 (+1 for negative x), then an arithmetic shift
    rounded up when the remainder is over the threshold.
    """
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """x * M * 2**(shift - 31), rounded twice, as TFLite's MultiplyByQuantizedMultiplier.

    A positive shift multiplies x by 2**shift first, in int32 (wrapping as C does); a negative
    one divides the high product by 2**-shift. M and shift may be per-channel arrays that
    broadcast against x.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def saturate(x: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """x clamped to dtype's range and cast to it."""
    info = np.iinfo(dtype)
    return np.clip(x, info.min, info.max).astype(dtype)


def quantize_value(real: float, scale: float, zero_point: int) -> int:
    """One real number in a tensor's quantized domain, unclamped: zero_point + round(real / scale)
    with the division in float32, as TFLite's CalculateActivationRangeQuantized computes it."""
    return zero_point + int(round_half_away(np.float64(np.float32(real) / np.float32(scale))))


def quantized_activation_range(
    activation: str, scale: float, zero_point: int, dtype: np.dtype | type
) -> tuple[int, int]:
    """A fused activation's clamp in the output's quantized domain (kernel_util.cc's
    CalculateActivationRangeQuantized): the type's range, narrowed to Q(0).. for RELU, Q(0)..Q(6)
    for RELU6, Q(-1)..Q(1) for RELU_N1_TO_1; NONE, TANH and SIGN_BIT leave it whole."""
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)
    bounds = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(activation)
    if bounds is None:
        return low, high
    lower, upper = bounds
    low = max(low, quantize_value(lower, scale, zero_point))
    if upper is not None:
        high = min(high, quantize_value(upper, scale, zero_point))
    return low, high

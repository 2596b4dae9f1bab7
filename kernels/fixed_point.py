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


def round_to_int32(y: np.ndarray) -> np.ndarray:
    """`static_cast<int32_t>(round(y))` for float64 y, as the x86-64 wheel computes it, as int64:
    halves away from zero, and every value outside int32 (either sign) becomes INT32_MIN, the
    "integer indefinite" of cvttsd2si (checked against LiteRT: FULLY_CONNECTED's reference
    rescaling, acc * 1e6 with |acc| = 1e5, gives INT32_MIN)."""
    whole = round_half_away(np.asarray(y, dtype=np.float64))
    inside = (whole >= INT32_MIN) & (whole <= INT32_MAX)
    return np.where(inside, whole, INT32_MIN).astype(np.int64)


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


# --- gemmlowp's fixed-point math functions (fixedpoint.h), for quantized SOFTMAX ------------------
# A raw int32 q with k integer bits stands for q / 2**(31 - k). Sums inside these functions never
# overflow int32 for the inputs they are specified on, so plain int64 additions equal C's.


def saturating_rounding_multiply_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """x * 2**exponent: gemmlowp's SaturatingRoundingMultiplyByPOT<exponent> (and so Rescale).

    exponent > 0 shifts left, saturating to INT32_MAX above 2**(31 - exponent) - 1 and to
    INT32_MIN below its negative; exponent < 0 is RoundingDivideByPOT(x, -exponent).
    """
    x = np.asarray(x, dtype=np.int64)
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def rounding_half_sum(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """(a + b) / 2 rounded half away from zero: gemmlowp's RoundingHalfSum, (sum ± 1) / 2 in C."""
    total = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    return truncating_divide_by_pot(total + np.where(total >= 0, 1, -1), 1)


def count_leading_zeros(x: np.ndarray) -> np.ndarray:
    """Leading zero bits of x as a uint32 (32 for 0): TFLite's CountLeadingZeros<uint32_t>."""
    x = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    _, bits = np.frexp(x.astype(np.float64))  # x = m * 2**bits, m in [0.5, 1): exact below 2**53
    return 32 - bits.astype(np.int64)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31: gemmlowp's Taylor expansion around -1/8."""
    constant_term = 1895147668  # exp(-1/8)
    one_third = 715827883
    x = a + (1 << 28)  # a + 1/8
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    series = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + saturating_rounding_doubling_high_mul(constant_term, x + series)


# exp(-2**k) in Q0.31 for the barrel shifter of exp_on_negative_values, k = -2 .. 4.
_EXP_OF_NEGATIVE_POWERS_OF_TWO = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                  (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given with integer_bits integer bits, as Q0.31: gemmlowp's exp_on_negative_values.

    a = q - r with q in (-1/4, 0] the remainder modulo 1/4: exp(q) by a Taylor series, then one
    multiplication by exp(-2**k) for each bit k of r; exp(0) is INT32_MAX (one, saturated), and
    with more than 5 integer bits inputs below -32 give 0.
    """
    a = np.asarray(a, dtype=np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    remainder_mod_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(remainder_mod_quarter, integer_bits)
    )
    remainder = remainder_mod_quarter - a
    for exponent, multiplier in _EXP_OF_NEGATIVE_POWERS_OF_TWO:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit == 1, saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1), Q0.31 in and out: gemmlowp's one_over_one_plus_x_for_x_in_0_1.

    Newton-Raphson on the half denominator d = (1 + a) / 2, in Q2.29: x0 = 48/17 - 32/17 * d,
    then three steps x += x * (1 - d * x); the result is x / 2 back in Q0.31.
    """
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = 1515870810 + saturating_rounding_doubling_high_mul(half_denominator, -1010580540)  # 48/17 - 32/17 d
    for _ in range(3):
        error = (1 << 29) - saturating_rounding_doubling_high_mul(half_denominator, x)
        x = x + saturating_rounding_multiply_by_pot(saturating_rounding_doubling_high_mul(x, error), 2)
    return saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x: np.ndarray, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """1 / x for x > 0 with integer_digits integer bits: TFLite's GetReciprocal (common.h).

    x is shifted left until its top bit is set, giving 1 + f with f in [0, 1); returns the Q0.31
    value of 1 / (1 + f) and num_bits_over_unit, the power of two the shift took out.
    """
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = count_leading_zeros(x)
    shifted_minus_one = wrap_int32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), integer_digits - headroom_plus_one


def multiply_by_quantized_multiplier_floor(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """multiply_by_quantized_multiplier (TFLite's MultiplyByQuantizedMultiplier, double rounding)
    as a single floor division: the same integers in a third of the array passes.

    x must hold int32 values (as the C argument is an int32) and multiplier >= 0 (as
    QuantizeMultiplier's are). With a = wrap_int32(x * 2**left) and r = max(-shift, 0):
    SaturatingRoundingDoublingHighMul(a, M) = floor((a*M + 2**30) / 2**31) (C's truncation of the
    sign-dependent nudge is that floor; the one saturating case needs M = INT32_MIN), and
    RoundingDivideByPOT(h, r) = floor((h + 2**(r-1) - [h < 0]) / 2**r) for r >= 1. Since
    floor((floor(u / A) + c) / B) = floor((u + c*A) / (A*B)) for integers, the two give

        floor((a*M + 2**30 + 2**(30+r) - [a*M + 2**30 < 0] * 2**31) / 2**(31+r))   (r >= 1),

    one arithmetic shift of an int64 that cannot overflow (|a*M| < 2**62). M and shift may be
    per-channel arrays that broadcast against x.
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if left.any():
        x = wrap_int32(x << left)
    u = x * multiplier + (1 << 30)
    up = np.where(right > 0, np.int64(1) << (30 + right), 0)  # 2**(r-1), in units of 2**-31
    down = np.where(right > 0, up - (1 << 31), 0)  # the same less one, for h < 0
    u += np.where(u < 0, down, up)
    return u >> (31 + right)


def float64_rescaling_is_exact(
    bound: int, multiplier: np.ndarray | int, shift: np.ndarray | int, offset: int = 0
) -> bool:
    """Whether multiply_by_quantized_multiplier_float64 gives MultiplyByQuantizedMultiplier's
    integers (plus offset) for every x, addend and x + addend of magnitude at most bound: no left
    shift, and every channel's one-floor numerator |x*M| + 2**30 + 2**(30+r) + 2**31 +
    |offset| * 2**(31+r) below 2**53, so that each intermediate of the float64 evaluation is an
    exactly representable multiple of 2**-(31+r)."""
    pairs = np.broadcast_arrays(np.asarray(multiplier, dtype=np.int64), np.asarray(shift, dtype=np.int64))
    for m, s in zip(pairs[0].reshape(-1).tolist(), pairs[1].reshape(-1).tolist(), strict=True):
        if s > 0:  # a left shift (multipliers from 1 up): the int64 form runs
            return False
        if bound * m + (1 << 30) + (1 << (30 - s)) + (1 << 31) + abs(offset) * (1 << (31 - s)) >= 1 << 53:
            return False
    return True


def float64_rescaling_constants(
    multiplier: np.ndarray | int, shift: np.ndarray | int, addend: np.ndarray | int = 0, offset: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(scale, start, step, threshold) of multiply_by_quantized_multiplier_float64's one-floor form,
    per channel (r = -shift):

        scale = M * 2**-(31+r)          start = addend * scale + 2**-(r+1) + 1/2 [r > 0] + offset
        step = 2**-r [r > 0]            threshold = 1/2 + offset

    so that the result is floor(x * scale + start - step [y < threshold]), y the sum before it.
    Worked out once where multiplier, shift and addend are constants (a convolution's prepare).
    """
    right = -np.asarray(shift, dtype=np.int64)
    scale = np.ldexp(np.asarray(multiplier, dtype=np.float64), -31 - right)  # exact
    start = np.asarray(addend, dtype=np.float64) * scale + np.ldexp(1.0, -right - 1) + offset
    start += np.where(right > 0, 0.5, 0.0)
    step = np.where(right > 0, np.ldexp(1.0, -right), 0.0)
    return scale, start, step, 0.5 + offset


def multiply_by_quantized_multiplier_float64(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int,
    addend: np.ndarray | int = 0, offset: int = 0, low: int | None = None,
) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(x + addend, M, shift) + offset (shift <= 0) evaluated in
    float64, as float64 integers: multiply_by_quantized_multiplier_floor's one-floor form divided
    through by 2**(31+r),

        floor((x + addend) * M * 2**-(31+r) + 2**-(r+1) + 1/2 [r > 0] + offset - step),

    where step is 2**-r when r > 0 and (x + addend)*M + 2**30 < 0, that is when the sum before
    it is below 1/2 + offset. addend (a per-channel bias) joins the constant term, so that the
    work per value is a multiply, an add, a compare and a floor. low: a clamp the caller applies
    next; the negative case only gives results <= offset, so for low >= offset it cannot show
    and is skipped (results below low are then not exact). Exact only where
    float64_rescaling_is_exact says so (x exact integers, e.g. float32 sums below 2**24), and then
    cheaper than the int64 form: fewer passes, no 64-bit integer multiplies.
    """
    scale, start, step, threshold = float64_rescaling_constants(multiplier, shift, addend, offset)
    y = np.multiply(x, scale, dtype=np.float64)
    y += start
    if low is None or low < offset:  # RoundingDivideByPOT's negative case
        y -= step * (y < threshold)
    return np.floor(y, out=y)


# --- 16-bit gemmlowp primitives (fixedpoint.h on int16_t), for quantized HARD_SWISH ----------------
# The int16 values live in int64 arrays; every C conversion back to int16_t is written out (wrap_int16).

INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1


def wrap_int16(x: np.ndarray) -> np.ndarray:
    """x modulo 2**16 into [INT16_MIN, INT16_MAX]: C's conversion of an int to int16_t."""
    return ((np.asarray(x, dtype=np.int64) - INT16_MIN) & 0xFFFF) + INT16_MIN


def saturating_rounding_doubling_high_mul_int16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul<int16_t>: p = a*b in 32 bits, then
    (p + 2**14) / 2**15 for p >= 0 and (p + 1 - 2**14) / 2**15 below, C's truncating division;
    INT16_MIN * INT16_MIN saturates to INT16_MAX."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    product = a * b
    nudge = np.where(product >= 0, 1 << 14, 1 - (1 << 14))
    high = wrap_int16(truncating_divide_by_pot(product + nudge, 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, high)


def rounding_divide_by_pot_int16(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT<int16_t>(x, exponent), 0 <= exponent <= 31, as C computes it.

    As in the 32-bit form, remainder = x & mask, threshold = (mask >> 1) + (x < 0) and the result
    is (x >> exponent) + (remainder > threshold), each step converted to int16_t. The mask
    (1 << exponent) - 1 is converted to int16_t too, so from exponent 16 on it is -1: the
    remainder is x itself and the threshold -1 or 0, which gives 1 for x >= 0 and -1 for x < 0
    (not the 0 a true division would give).
    """
    x = np.asarray(x, dtype=np.int64)
    mask = int(wrap_int16((1 << exponent) - 1))
    remainder = x & mask
    threshold = wrap_int16((mask >> 1) + (x < 0))
    return wrap_int16((x >> exponent) + (remainder > threshold))


def down_scale_int32_to_int16_multiplier(multiplier: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier (common.h): a Q0.31 multiplier (>= 0) to Q0.15,
    (M + 2**15) >> 16, saturated to INT16_MAX from INT32_MAX - 2**15 on."""
    if multiplier >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16

"""The integer primitives against values worked out by hand from TFLite's and gemmlowp's C code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npdeeplab.kernels.fixed_point import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_value,
    quantized_activation_range,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    truncating_divide_by_pot,
    wrap_int32,
)

int32s = st.integers(INT32_MIN, INT32_MAX)


@pytest.mark.parametrize("real, expected", [
    (0.0, (0, 0)),
    (1.0, (1 << 30, 1)),  # frexp(1) = 0.5 * 2**1
    (0.5, (1 << 30, 0)),
    (0.75, (3 << 29, 0)),
    (2.0**-31, (1 << 30, -30)),
    (2.0**-32, (1 << 30, -31)),  # the smallest shift kept
    (2.0**-33, (0, 0)),  # shift -32: flushed to zero
    (1 - 2.0**-40, (1 << 30, 1)),  # q * 2**31 rounds to 2**31: halved, shift + 1
    (3.0, (3 << 29, 2)),
])
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


@given(st.floats(min_value=2.0**-31, max_value=2.0**20, allow_nan=False))
def test_quantize_multiplier_represents_the_real(real):
    multiplier, shift = quantize_multiplier(real)
    assert 1 << 30 <= multiplier < 1 << 31
    assert math.isclose(multiplier * 2.0 ** (shift - 31), real, rel_tol=2.0**-30)


def test_srdhm_edge_cases():
    a = np.array([INT32_MIN, INT32_MAX, INT32_MIN, -1, 1, -(1 << 30), 3 << 29, -(3 << 29), 0])
    b = np.array([INT32_MIN, INT32_MAX, INT32_MAX, 1 << 30, 1 << 30, 1, 1 << 30, 1 << 30, INT32_MIN])
    expected = [
        INT32_MAX,  # the one overflowing product saturates
        INT32_MAX - 1,  # (2**31-1)**2 / 2**31 = 2**31 - 2 + 0.5 + 2**-31: (p + 2**30) / 2**31 truncates to 2**31 - 2
        -INT32_MAX,  # -2**31 * (2**31-1) / 2**31 = -(2**31-1) exactly
        0,  # -2**30 / 2**31 = -0.5: (p + 1 - 2**30) / 2**31 = -0.99999..., truncated to 0
        1,  # +0.5 rounds up
        0,  # -2**30 / 2**31 again, operands swapped
        3 << 28,  # exact: 3 * 2**29 * 2**30 / 2**31
        -(3 << 28),
        0,
    ]
    np.testing.assert_array_equal(saturating_rounding_doubling_high_mul(a, b), expected)


@pytest.mark.parametrize("x, exponent, expected", [
    (5, 0, 5), (-5, 0, -5),  # exponent 0 is the identity
    (3, 1, 2), (-3, 1, -2),  # 1.5 -> 2 and -1.5 -> -2: halves away from zero
    (5, 2, 1), (-5, 2, -1),  # 1.25 -> 1, -1.25 -> -1
    (6, 2, 2), (-6, 2, -2),  # 1.5, -1.5
    (7, 2, 2), (-7, 2, -2),  # 1.75 -> 2
    (-1, 31, 0), (INT32_MIN, 31, -1), (INT32_MAX, 31, 1), (-(1 << 30), 31, -1),  # -0.5 -> -1
])
def test_rounding_divide_by_pot(x, exponent, expected):
    assert int(rounding_divide_by_pot(x, exponent)) == expected


def test_c_division_and_wrap_around():
    np.testing.assert_array_equal(truncating_divide_by_pot(np.array([-3, 3, -4, -1]), 1), [-1, 1, -2, 0])
    np.testing.assert_array_equal(wrap_int32(np.array([1 << 31, (1 << 32) + 5, INT32_MIN - 1])), [INT32_MIN, 5,
                                                                                                   INT32_MAX])


def test_multiply_by_quantized_multiplier():
    half = (1 << 30, 0)  # 0.5
    assert int(multiply_by_quantized_multiplier(3, *half)) == 2  # 1.5 -> 2
    assert int(multiply_by_quantized_multiplier(-3, *half)) == -1  # -1.5 -> -1: SRDHM's tie goes up, then exact
    m, shift = quantize_multiplier(0.25)
    assert shift == -1 and int(multiply_by_quantized_multiplier(-6, m, shift)) == -2  # -1.5 -> -2 in RDBPOT
    m, shift = quantize_multiplier(3.0)  # shift 2: x * 4 first
    assert int(multiply_by_quantized_multiplier(100, m, shift)) == 300
    assert int(multiply_by_quantized_multiplier(1 << 30, m, shift)) == 0  # 2**30 * 4 wraps to 0 in int32, as in C
    halves = np.array([1 << 30, 1 << 30])
    per_channel = multiply_by_quantized_multiplier(np.array([[10, 10]]), halves, np.array([0, -1]))
    np.testing.assert_array_equal(per_channel, [[5, 3]])  # 10 * 0.5 and 10 * 0.25 = 2.5 -> 3


@given(int32s, st.integers(1 << 30, INT32_MAX), st.integers(-31, 0))
def test_multiply_by_quantized_multiplier_matches_exact_arithmetic(x, multiplier, shift):
    """Against Python's exact integers, following the C code's two roundings step by step."""
    product = x * multiplier
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    high = int((product + nudge) / (1 << 31)) if abs(product) < 1 << 52 else _c_div(product + nudge, 1 << 31)
    exponent = -shift
    mask = (1 << exponent) - 1
    expected = (high >> exponent) + ((high & mask) > (mask >> 1) + (high < 0))
    assert int(multiply_by_quantized_multiplier(x, multiplier, shift)) == expected


def _c_div(a: int, b: int) -> int:
    return a // b if a >= 0 else -((-a) // b)


def test_round_half_away_is_exact():
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 0.0], np.float32)
    np.testing.assert_array_equal(round_half_away(x), [1, -1, 2, -2, 3, -3, 0, 0, 0])


def test_quantized_activation_ranges():
    assert quantized_activation_range("NONE", 0.1, 10, np.uint8) == (0, 255)
    assert quantized_activation_range("RELU", 0.1, 10, np.uint8) == (10, 255)
    assert quantized_activation_range("RELU6", 0.1, 10, np.uint8) == (10, 70)
    assert quantized_activation_range("RELU6", 0.01, -128, np.int8) == (-128, 127)  # Q(6) = 472 clamps
    assert quantized_activation_range("RELU_N1_TO_1", 0.5, 0, np.int8) == (-2, 2)
    assert quantize_value(0.25, 0.5, 0) == 1  # 0.5 rounds away from zero


# --- gemmlowp's fixed-point math (quantized SOFTMAX) ---------------------------------------------

from npdeeplab.kernels.fixed_point import (  # noqa: E402  (appended section)
    count_leading_zeros,
    exp_on_negative_values,
    get_reciprocal,
    one_over_one_plus_x_for_x_in_0_1,
    rounding_half_sum,
    saturating_rounding_multiply_by_pot,
)


def test_saturating_rounding_multiply_by_pot():
    x = np.array([3, -3, (1 << 29) - 1, 1 << 29, -(1 << 29), -(1 << 29) - 1, INT32_MAX, INT32_MIN])
    # exponent 2: threshold 2**29 - 1; beyond it the result saturates
    np.testing.assert_array_equal(
        saturating_rounding_multiply_by_pot(x, 2),
        [12, -12, (1 << 31) - 4, INT32_MAX, INT32_MIN, INT32_MIN, INT32_MAX, INT32_MIN],
    )
    np.testing.assert_array_equal(saturating_rounding_multiply_by_pot(np.array([5, -5, 6, -6]), -1), [3, -3, 3, -3])
    np.testing.assert_array_equal(saturating_rounding_multiply_by_pot(x, 0), x)


def test_rounding_half_sum():
    a = np.array([1, -1, -3, INT32_MAX, INT32_MIN, 0])
    b = np.array([2, -2, 0, INT32_MAX, INT32_MIN, 0])
    np.testing.assert_array_equal(rounding_half_sum(a, b), [2, -2, -2, INT32_MAX, INT32_MIN, 0])  # halves away


def test_count_leading_zeros():
    x = np.array([0, 1, 2, 3, (1 << 30), INT32_MAX, -1, INT32_MIN])  # as uint32: -1 is 0xFFFFFFFF
    np.testing.assert_array_equal(count_leading_zeros(x), [32, 31, 30, 30, 1, 1, 0, 0])


def test_exp_on_negative_values_fixed_points():
    # exp(0) is one, saturated; with 5 integer bits, -1.0 is -2**26.
    assert int(exp_on_negative_values(np.array(0), 5)) == INT32_MAX
    assert abs(int(exp_on_negative_values(np.array(-(1 << 26)), 5)) - math.exp(-1) * 2**31) < 1000
    # more than 5 integer bits: inputs below -32 are 0
    assert int(exp_on_negative_values(np.array(-(33 << 25)), 6)) == 0  # -33.0 in Q6.25
    assert abs(int(exp_on_negative_values(np.array(-(16 << 25)), 6)) - math.exp(-16) * 2**31) < 2


@given(st.integers(INT32_MIN, 0))
def test_exp_on_negative_values_is_close_to_exp(raw):
    """gemmlowp's exp in Q5.26 -> Q0.31 is within 500 / 2**31 (2.3e-7) of the real exp."""
    got = int(exp_on_negative_values(np.array(raw), 5))
    assert abs(got - math.exp(raw / 2**26) * 2**31) <= 500


@given(st.integers(0, INT32_MAX))
def test_one_over_one_plus_x_is_close(raw):
    got = int(one_over_one_plus_x_for_x_in_0_1(np.array(raw)))
    assert abs(got - 2**31 / (1 + raw / 2**31)) <= 8


@given(st.integers(1 << 19, INT32_MAX))
def test_get_reciprocal(raw):
    """For a Q12.19 sum x: (r, b) with r / 2**31 / 2**b = 1 / x, to 1e-8."""
    reciprocal, bits = get_reciprocal(np.array(raw), 12)
    assert int(bits) == 12 - (32 - raw.bit_length())
    assert abs(int(reciprocal) / 2**31 / 2.0 ** int(bits) * (raw / 2**19) - 1) < 1e-8


# --- one-floor and float64 forms of MultiplyByQuantizedMultiplier (quantized CONV_2D) -------------

from hypothesis import assume  # noqa: E402  (appended section)

from npdeeplab.kernels.fixed_point import (  # noqa: E402
    float64_rescaling_is_exact,
    multiply_by_quantized_multiplier_float64,
    multiply_by_quantized_multiplier_floor,
)

multipliers = st.one_of(st.integers(1 << 30, INT32_MAX), st.sampled_from([0, 1 << 30, 3 << 29, INT32_MAX]))


@given(st.lists(int32s, min_size=1, max_size=50), multipliers, st.integers(-31, 31))
def test_floor_form_equals_double_rounding(xs, multiplier, shift):
    """Left shifts (with their int32 wrap) and right shifts, every multiplier QuantizeMultiplier makes."""
    x = np.array(xs)
    np.testing.assert_array_equal(multiply_by_quantized_multiplier_floor(x, multiplier, shift),
                                  multiply_by_quantized_multiplier(x, multiplier, shift))


@pytest.mark.parametrize("multiplier", [1 << 30, 3 << 29, (1 << 30) + 1, INT32_MAX])
def test_floor_form_on_every_tie(multiplier):
    """Every x in a range around 0, where SRDHM's and RDBPOT's ties (halves, both signs) all occur."""
    x = np.arange(-70000, 70000)
    for shift in range(-14, 1):
        np.testing.assert_array_equal(multiply_by_quantized_multiplier_floor(x, multiplier, shift),
                                      multiply_by_quantized_multiplier(x, multiplier, shift))
    per_channel = multiply_by_quantized_multiplier_floor(x[:, None], multiplier, np.array([-3, 0, 2]))
    np.testing.assert_array_equal(per_channel, multiply_by_quantized_multiplier(x[:, None], multiplier,
                                                                                 np.array([-3, 0, 2])))


@given(st.integers(1 << 30, INT32_MAX), st.integers(-21, 0), st.integers(-128, 255), st.integers(0, 2**16),
       st.booleans())
def test_float64_form_where_exact(multiplier, shift, offset, seed, ties):
    """Within float64_rescaling_is_exact's bound: MultiplyByQuantizedMultiplier(x + addend) + offset."""
    bound = ((1 << 53) - (1 << 32) - (1 << (30 - shift)) - abs(offset) * (1 << (31 - shift))) // multiplier - 1
    assume(bound > 1)
    assert float64_rescaling_is_exact(bound, multiplier, shift, offset)
    assert not float64_rescaling_is_exact(2 * bound + 3, multiplier, shift, offset)
    rng = np.random.default_rng(seed)
    span = min(bound // 2, 5000) if ties else bound // 2
    x = rng.integers(-span, span + 1, 2000)
    addend = rng.integers(-span, span + 1, 1)
    expected = multiply_by_quantized_multiplier(x + addend, multiplier, shift) + offset
    got = multiply_by_quantized_multiplier_float64(x.astype(np.float64), multiplier, shift, addend, offset)
    np.testing.assert_array_equal(got, expected)
    clamped = multiply_by_quantized_multiplier_float64(x.astype(np.float64), multiplier, shift, addend, offset,
                                                       low=offset)  # the negative case skipped: exact >= offset
    np.testing.assert_array_equal(np.maximum(clamped, offset), np.maximum(expected, offset))


def test_float64_form_is_not_exact_with_left_shifts_or_large_bounds():
    assert not float64_rescaling_is_exact(10, 1 << 30, 1)
    assert not float64_rescaling_is_exact(10, 1 << 30, 31)  # the largest shift: no negative shift count
    assert not float64_rescaling_is_exact(1 << 23, INT32_MAX, -1)  # 2**23 * 2**31 > 2**53
    assert float64_rescaling_is_exact(1 << 20, INT32_MAX, -9, 255)

"""Double-double refinement of float64 results that the fast path left undecided.

A double-double number is an unevaluated sum hi + lo of two float64 values with
|lo| <= ulp(hi)/2. This module evaluates softplus, sigmoid and their
derivatives in that format, vectorized with NumPy, for inputs with
|beta*x| <= MAX_INPUT. It runs once a block, on that block's undecided inputs,
so its cost is mostly the number of NumPy calls, whatever the number of
elements. To keep that number low, it aims at a relative error of about
2**-87 rather than the format's 2**-104. That still decides all but about 1 in
10**8 of the roundings to float64.

Method, with z = beta*x, m = |z| and e = e**-m in (0, 1]:

- exp_nonpositive writes -m = r - k ln2/N with N = 2048 and an integer k, so
  that e**-m = 2**-(k // N) * 2**(-(k % N)/N) * e**r with |r| < 2**-12.5. A
  table contains 2**(-j/N) as double-doubles. e**r - 1 is r + r**2/2, with r**2
  exact, plus r**3 (1/6 + r/24 + r**2/120 + r**3/720) in float64. The result
  is a double-double in [0.49, 1.01] and the power 2**-(k // N), kept apart so
  that no low part is subnormal, however small e is.
- log1p_unit takes kk, the integer nearest ln(1 + e) N/ln2, from NumPy's
  float64 log1p. Then ln(1 + e) = kk ln2/N + ln(1 + v) with
  v = (1 + e) 2**(-kk/N) - 1 and |v| < 2**-12.5, and the table contains both
  kk ln2/N and 2**(-kk/N). ln(1 + v) is v - v**2/2 + v**3/3, with v**2 and
  v**3 exact, plus v**4 (-1/4 + v/5 - v**2/6 + v**3/7 - v**4/8) in float64.
  The choice of kk needs log1p only to within 2**-40, far looser than NumPy's
  few ulp.
- softplus is max(z, 0) + ln(1 + e), then divided by beta. For z < 0 and
  k // N >= 128, where e < 1.01 * 2**-128, ln(1 + e) is e itself. sigmoid is
  1/(1 + e) for z >= 0 and e/(1 + e) below, and its derivative e/(1 + e)**2.
  Each division is one double-double division. Where e is alone or in a
  numerator, it is the pair from exp_nonpositive, and the result keeps e's
  power of 2. Elsewhere, in 1 + e and in ln(1 + e), e is the pair scaled by
  that power.
- round_refined rounds the pair to float64 and scales the rounded value by the
  power of 2. That is exact, and it is the correct rounding of the result,
  while the result is a normal float64 value.

Error analysis, with u = 2**-53:

- exp_nonpositive: e**r - 1 is within 2**-90.4 absolutely. Its float64 cubic
  term is below 2**-40.1 and carries at most 5u of rounding, 2**-90.8. The
  reduction to r adds 2**-97 (2**-107 without a low part of beta*x), the
  roundings of the low parts and the omitted terms in r_low 2**-93.6, and the
  truncation after r**6 2**-99.8. The product by the table entry adds
  3 * 2**-93 relatively, for 2**-89.8 in all.
- log1p_unit with kk >= 1, where ln(1 + e) > 2**-12.6: the absolute errors
  are v's (2**-102.6), the quartic term's (5u of a value below 2**-52, so
  2**-102.7), the rounding of v_low/(1 + v_high) (2**-103.6) and the omitted
  term in v_low**2 (2**-104.4), and the sum of the low parts (2**-102.3).
  Their sum, 2**-100.6, is 2**-88.1 relatively. With kk = 0, v = e exactly
  and the quartic term dominates: 2**-90.1 relatively.
- A relative error d in e moves ln(1 + e), 1/(1 + e), e/(1 + e) and
  e/(1 + e)**2 by at most d relatively. Taking ln(1 + e) as e adds less
  than e/2 < 2**-128. Scaled e, below 2**-969, loses bits of its low part to
  subnormal rounding, less than 2**-1074 absolutely. It is used that small
  only where it is added to 1, or to z > 88 in softplus, so that is
  negligible.
- The divisions (by 1 + e, (1 + e)**2 or beta) and the sum max(z, 0) +
  ln(1 + e) add less than 2**-100 relatively.

So softplus is within 2**-87.4 of the exact value, relatively, and sigmoid and
its derivative within 2**-89.5, at every |beta*x| <= MAX_INPUT. round_refined
leaves results below 2**-1022 undecided: they are subnormal, and rounding the
pair to 53 bits before scaling could round them twice. tests/test_accuracy.py
checks the table and these bounds against mpmath, at the edges of the table
and of the input range and around results of 2**-1022, where the worst error
measured is 2**-90.9. RELATIVE_BOUND leaves a factor of more than 128 over the
analysis.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Beyond |beta*x| = (1022 + 400) ln2 = 985.7, every result is below 2**-1022,
# even softplus divided by the smallest beta that refine accepts, 2**-400.
MAX_INPUT = 1000.0
RELATIVE_BOUND = 2.0**-80

_SPLITTER = 2.0**27 + 1
_LN2 = Fraction(
    "0.693147180559945309417232121458176568075500134360255254120680009493393621969694715605863326996418687542001481021"
)
# The table has N + 1 entries, N = _TABLE_SIZE.
_TABLE_BITS = 11
_TABLE_SIZE = 2**_TABLE_BITS
# _table computes in integers that are multiples of 2**-_TABLE_PRECISION.
_TABLE_PRECISION = 192
_INVERSE_STEP = float(_TABLE_SIZE / _LN2)


def _parts(value: Fraction, widths: list[int]) -> list[float]:
    """Split `value` into floats with the given numbers of significant bits,
    each rounding the rest of the one before."""
    parts = []
    rest = value
    for bits in widths:
        exponent = rest.numerator.bit_length() - rest.denominator.bit_length()
        scale = Fraction(2) ** (bits - 1 - exponent)
        part = Fraction(round(rest * scale)) / scale
        parts.append(float(part))
        rest -= part
    return parts


# ln2/N in three parts. exp_nonpositive multiplies them by integers
# k <= MAX_INPUT N/ln2 < 2**22, which leaves the first two products exact.
_STEP_HIGH, _STEP_MIDDLE, _STEP_LOW = _parts(_LN2 / _TABLE_SIZE, [31, 31, 53])
# e**r - 1 - r - r**2/2 = r**3 times this polynomial, for |r| < 2**-12.5.
_EXP_COEFFICIENTS = [float(Fraction(1, n)) for n in (6, 24, 120, 720)]
# ln(1 + v) - v + v**2/2 - v**3/3 = v**4 times this polynomial, for |v| < 2**-12.5.
_LOG1P_COEFFICIENTS = [float(Fraction((-1) ** (n + 1), n)) for n in range(4, 9)]
_THIRD = float(Fraction(1, 3))


@functools.cache
def _table() -> np.ndarray:
    """Compute the table, a (6, N + 1) array whose column j contains 2**(-j/N) as
    a double-double, the two halves of its high part for exact products, and
    j ln2/N as a double-double."""
    import numpy as np

    unit = 1 << _TABLE_PRECISION
    # 2**(-1/N) by 11 square roots of 1/2. Each isqrt rounds down by less than
    # one unit, 2**-191.5 relatively, and halves the error it receives, so the
    # ratio is within 2**-190.5.
    ratio = unit >> 1
    for _ in range(_TABLE_BITS):
        ratio = math.isqrt(ratio << _TABLE_PRECISION)
    # Each product adds the ratio's error and rounds down by less than 2**-191,
    # so after N products 2**(-j/N) is within 2**-178 relatively. j ln2/N is
    # within 2**-180, the error of the step.
    powers = [unit]
    for _ in range(_TABLE_SIZE):
        powers.append(powers[-1] * ratio >> _TABLE_PRECISION)
    step = (_LN2.numerator << _TABLE_PRECISION) // (_LN2.denominator * _TABLE_SIZE)
    logarithms = [j * step for j in range(_TABLE_SIZE + 1)]

    scale_high, scale_low = _double_doubles(powers)
    log_high, log_low = _double_doubles(logarithms)
    split_high, split_low = _split(scale_high)
    return np.array([scale_high, scale_low, split_high, split_low, log_high, log_low])


def _double_doubles(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the double-doubles nearest values * 2**-_TABLE_PRECISION: the high
    parts and the low parts each rounded once, as float() rounds an int."""
    import numpy as np

    highs = list(map(float, values))
    rests = list(map(int.__sub__, values, map(int, highs)))
    return (
        np.ldexp(highs, -_TABLE_PRECISION),
        np.ldexp(list(map(float, rests)), -_TABLE_PRECISION),
    )


def two_sum(a, b):
    """Return (s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _quick_two_sum(a, b):
    """Return (s, e) with s + e = a + b exactly, for |a| >= |b| or a = 0 (Dekker)."""
    s = a + b
    return s, b - (s - a)


def _split(a):
    """Return a's high 26 bits and the rest, so that products of halves are exact."""
    t = _SPLITTER * a
    high = t - (t - a)
    return high, a - high


def _two_prod_split(a, a_split, b, b_split):
    """Return (p, e) with p = fl(a * b) and p + e = a * b exactly (Dekker), from
    the halves of a and b."""
    a_high, a_low = a_split
    b_high, b_low = b_split
    p = a * b
    error = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, error


def _two_prod(a, b):
    return _two_prod_split(a, _split(a), b, _split(b))


def _two_square(a, a_split):
    """Return (p, e) with p = fl(a * a) and p + e = a * a exactly."""
    a_high, a_low = a_split
    p = a * a
    error = ((a_high * a_high - p) + 2.0 * a_high * a_low) + a_low * a_low
    return p, error


def _divide(a, b):
    """Return the double-double a / b, to within 2**-101 relatively."""
    quotient = a[0] / b[0]
    p, p_error = _two_prod(quotient, b[0])
    # a[0] - p is exact (Sterbenz), and so is the remainder a[0] - quotient * b[0].
    remainder = ((a[0] - p) - p_error) + (a[1] - quotient * b[1])
    return _quick_two_sum(quotient, remainder / b[0])


def _float64_horner(coefficients, x):
    """Return the polynomial sum of c[k] x**k, k from 0, in float64 alone:
    for the small high-order terms of a series."""
    total = coefficients[-1]
    for coefficient in reversed(coefficients[:-1]):
        total = total * x + coefficient
    return total


def _expm1_reduced(r_high, r_low):
    """Return e**(r_high + r_low) - 1 as an unnormalized double-double, for
    |r_high| < 2**-12.5 and |r_low| <= 2**-55, to within 2**-90.4 absolutely."""
    square, square_error = _two_square(r_high, _split(r_high))
    cubic = square * r_high * _float64_horner(_EXP_COEFFICIENTS, r_high)
    high, high_error = _quick_two_sum(r_high, 0.5 * square)
    # e**(r_high + r_low) - 1 = P + r_low (1 + P) + O(r_low**2), P = e**r_high - 1.
    low = high_error + (0.5 * square_error + (r_low + r_low * high))
    return high, cubic + low


def exp_nonpositive(
    t: np.ndarray, t_low: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return e**(t + t_low) as (high, low, exponent), the double-double
    high + low in [0.49, 1.01] times 2**exponent, for t in [-MAX_INPUT, 0] and
    t_low within half an ulp of t (0 when omitted).

    The power of 2 stays apart so that the low part is a normal float64 value
    even where e**t is below 2**-969 or 2**-1074.
    """
    import numpy as np

    k = np.rint(t * -_INVERSE_STEP)
    # t + k * _STEP_HIGH is exact: both terms are multiples of ulp(t) when
    # |t| >= 2**-13, the sum is below 2**-12.5, and k = 0 for smaller |t|.
    r_high, r_low = two_sum(t + k * _STEP_HIGH, k * _STEP_MIDDLE)
    r_low = r_low + k * _STEP_LOW
    if t_low is not None:
        # Renormalized, so that |r_low| <= ulp(r_high)/2 <= 2**-66.
        r_high, r_low = two_sum(r_high, r_low + t_low)
    expm1_high, expm1_low = _expm1_reduced(r_high, r_low)

    index = k.astype(np.int64)
    scale_high, scale_low, split_high, split_low = _table()[
        :4, index & (_TABLE_SIZE - 1)
    ]
    # scale * (1 + expm1), with the one product that needs to be exact.
    p, p_error = _two_prod_split(
        expm1_high, _split(expm1_high), scale_high, (split_high, split_low)
    )
    high, high_error = _quick_two_sum(scale_high, p)
    small = (high_error + scale_low) + (p_error + scale_low * expm1_high)
    high, low = _quick_two_sum(high, scale_high * expm1_low + small)
    return high, low, -(index >> _TABLE_BITS)


def log1p_unit(e: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return ln(1 + e) as a double-double for a double-double e in (0, 1]."""
    import numpy as np

    e_high, e_low = e
    kk = np.rint(np.log1p(e_high) * _INVERSE_STEP)
    scale_high, scale_low, split_high, split_low, log_high, log_low = _table()[
        :, kk.astype(np.int64)
    ]
    # v = (1 + e) * scale - 1, exact but for the low parts' roundings (2**-102.6).
    # With kk = 0, scale is 1 and v is e exactly.
    p, p_error = _two_prod_split(
        e_high, _split(e_high), scale_high, (split_high, split_low)
    )
    v_high, v_error = two_sum(scale_high - 1.0, p)
    v_low = v_error + (
        p_error + (scale_low + (e_high * scale_low + e_low * scale_high))
    )

    # ln(1 + v) = ln(1 + v_high) + v_low / (1 + v_high) + O(v_low**2), with
    # v_high**2 = square + square_error and v_high**3 = cube + cube_error +
    # square_error * v_high exactly.
    v_split = _split(v_high)
    square, square_error = _two_square(v_high, v_split)
    cube, cube_error = _two_prod_split(square, _split(square), v_high, v_split)
    # third + remainder / 3 = cube / 3: both subtractions are exact (Sterbenz).
    third = cube / 3.0
    remainder = (cube - 2.0 * third) - third
    cube_low = ((remainder + cube_error) + square_error * v_high) * _THIRD
    quartic = (square * square) * _float64_horner(_LOG1P_COEFFICIENTS, v_high)
    slope = v_low / (1.0 + v_high)

    # log_high + v_high - square/2 + third, exactly, in three quick two-sums:
    # each first term is at least as large as the second (log_high >= ln2/N
    # unless it is 0).
    high, error_1 = _quick_two_sum(-0.5 * square, third)
    high, error_2 = _quick_two_sum(v_high, high)
    high, error_3 = _quick_two_sum(log_high, high)
    small = error_2 + (error_1 + (cube_low - 0.5 * square_error))
    low = (error_3 + log_low) + ((quartic + slope) + small)
    return _quick_two_sum(high, low)


def refine(
    name: str,
    derivative: bool,
    x: np.ndarray,
    beta: float = 1.0,
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return softplus (with `beta`), sigmoid or a derivative at float64 x as
    (high, low, exponent): the double-double high + low times 2**exponent, for
    round_refined. high and low are NaN where this module does not apply.

    It does not apply where |beta*x| > MAX_INPUT, where beta*x is nonzero but
    too small for its low part to be exact, for beta outside [2**-400, 2**400],
    and where PyTorch's `threshold` makes the result linear (those results are
    exact on the fast path).
    """
    import numpy as np

    # beta*x = z_high + z_low exactly, where the product and its low part are
    # normal. With beta = 1 there is no low part.
    if beta == 1.0:
        z_high, z_low = x, None
    else:
        z_high, z_low = _two_prod_split(x, _split(x), beta, _split(beta))
    negative = z_high < 0
    magnitude = np.abs(z_high)
    usable = (magnitude <= MAX_INPUT) & ((magnitude >= 2.0**-900) | (x == 0))
    # Beyond this range of beta, splitting it for exact products could overflow
    # and dividing by it could leave results whose low parts are subnormal.
    usable &= 2.0**-400 <= beta <= 2.0**400
    if z_low is not None:
        usable &= np.isfinite(z_low)
    if threshold is not None:
        above = z_high > threshold
        if z_low is not None:
            above |= (z_high == threshold) & (z_low > 0)
        usable &= ~above
    magnitude = np.where(usable, magnitude, 1.0)
    # The low part of -|beta*x|.
    argument_low = None
    if z_low is not None:
        argument_low = np.where(usable, np.where(negative, z_low, -z_low), 0.0)

    e_high, e_low, exponent = exp_nonpositive(-magnitude, argument_low)
    # e itself, for 1 + e and ln(1 + e). Below 2**-969 its low part loses bits
    # to subnormal rounding, less than 2**-1074 absolutely.
    e = (np.ldexp(e_high, exponent), np.ldexp(e_low, exponent))
    if name == "softplus" and not derivative:
        unscaled = (e_high, e_low, exponent)
        value, exponent = _softplus(z_high, z_low, negative, e, unscaled)
        if beta != 1.0:
            value = _divide(value, (beta, 0.0))
    else:
        denominator = _quick_two_sum(1.0, e[0])
        denominator = (denominator[0], denominator[1] + e[1])
        if name == "sigmoid" and derivative:
            square, square_error = _two_square(denominator[0], _split(denominator[0]))
            square_error = square_error + 2.0 * denominator[0] * denominator[1]
            value = _divide((e_high, e_low), _quick_two_sum(square, square_error))
        else:
            numerator = (
                np.where(negative, e_high, 1.0),
                np.where(negative, e_low, 0.0),
            )
            value = _divide(numerator, denominator)
            exponent = np.where(negative, exponent, 0)
    return (
        np.where(usable, value[0], np.nan),
        np.where(usable, value[1], np.nan),
        np.where(usable, exponent, 0),
    )


def _softplus(z_high, z_low, negative, e, unscaled):
    """Return max(z, 0) + ln(1 + e) as a double-double and a power of 2, from e
    as a double-double and `unscaled`, e as exp_nonpositive returns it."""
    import numpy as np

    logarithm = log1p_unit(e)
    positive = np.where(negative, 0.0, z_high)
    high, error = two_sum(positive, logarithm[0])
    low = error + logarithm[1]
    if z_low is not None:
        low = low + np.where(negative, 0.0, z_low)
    high, low = _quick_two_sum(high, low)

    # Where e < 1.01 * 2**-128, ln(1 + e) = e (1 - e/2 + ...) is e to within
    # 2**-128 relatively, and e's unscaled pair keeps its low part normal.
    e_high, e_low, exponent = unscaled
    tiny = negative & (exponent <= -128)
    value = (np.where(tiny, e_high, high), np.where(tiny, e_low, low))
    return value, np.where(tiny, exponent, 0)


def round_refined(
    value: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Round positive values (high + low) * 2**exponent within RELATIVE_BOUND of
    the exact values to float64, and flag those whose rounding is still
    undecided.

    The rounding is decided on high + low and the rounded value scaled by
    2**exponent, which is exact and the same rounding while the result is a
    normal float64 value. Results below 2**-1022 stay undecided, because they
    would be rounded twice.
    """
    import numpy as np

    high, low = _quick_two_sum(value[0], value[1])
    up = (np.nextafter(high, np.inf) - high) / 2
    down = (high - np.nextafter(high, -np.inf)) / 2
    # Distance from high + low to the nearer midpoint, which is computed with a
    # relative error of at most 2**-53: the factor below covers it.
    margin = np.where(low >= 0, up - low, down + low)
    decided = margin * (1 - 2.0**-50) > RELATIVE_BOUND * np.abs(high)
    # Below 2**-960, the low part could be subnormal.
    decided &= (high > 2.0**-960) & np.isfinite(high) & np.isfinite(low)
    rounded = np.ldexp(high, value[2])
    decided &= rounded >= 2.0**-1022
    return rounded, ~decided

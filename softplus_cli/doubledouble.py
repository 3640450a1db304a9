"""Double-double refinement of float64 results that the fast path left undecided.

A double-double number is an unevaluated sum hi + lo of two float64 values with
|lo| <= ulp(hi)/2, about 106 significant bits. This module evaluates softplus,
sigmoid and their derivatives in that format, vectorized with NumPy, for inputs
with |beta*x| <= MAX_INPUT, where every intermediate value stays normal.
Its relative error is at most 2**-96 on the inputs measured, and about 2**-94
at worst by analysis (the Newton step for ln(1 + e) near e = 2**-10 loses 10 of
its 106 bits); tests/test_accuracy.py checks it against mpmath. RELATIVE_BOUND
leaves a factor of 64 over the analysis.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# e^-650 is about 5e-283: results and their low parts stay normal float64 values.
MAX_INPUT = 650.0
RELATIVE_BOUND = 2.0**-88

_SPLITTER = 2.0**27 + 1
# ln 2 in three parts. The first has 32 significant bits, so k * _LN2_1 is
# exact for every |k| <= 2**20.
_LN2 = Fraction(
    "0.693147180559945309417232121458176568075500134360255254120680009493393621969694715605863326996418687542001481021"
)


def _parts(value: Fraction, count: int, first_bits: int = 53) -> list[float]:
    parts = []
    rest = value
    for index in range(count):
        bits = first_bits if index == 0 else 53
        exponent = rest.numerator.bit_length() - rest.denominator.bit_length()
        scale = Fraction(2) ** (bits - 1 - exponent)
        part = Fraction(round(rest * scale)) / scale
        parts.append(float(part))
        rest -= part
    return parts


_LN2_1, _LN2_2, _LN2_3 = _parts(_LN2, 3, first_bits=32)
# exp(s) - 1 = sum of s**k / k! for k = 1..16; with |s| <= ln(2)/32 the first
# omitted term is below 2**-120 relative to s.
_EXP_SQUARINGS = 4
_EXP_COEFFICIENTS = [_parts(Fraction(1, math.factorial(k)), 2) for k in range(1, 17)]
# The terms from s**9 on are below 2**-68 relative to s, so float64 sums them to
# well within 2**-120 of s: only the first 8 coefficients need double-doubles.
_EXP_DOUBLE_TERMS = 8
# log1p(e) = sum of (-1)**(k+1) e**k / k for k = 1..13, used for e <= 2**-10.
_LOG1P_SERIES_LIMIT = 2.0**-10
_LOG1P_COEFFICIENTS = [_parts(Fraction((-1) ** (k + 1), k), 2) for k in range(1, 14)]
# The terms from e**8 on are below 2**-73 relative to e: float64 sums them.
_LOG1P_DOUBLE_TERMS = 7


def two_sum(a, b):
    """Return (s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _quick_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


def _split(a):
    t = _SPLITTER * a
    high = t - (t - a)
    return high, a - high


def _two_prod(a, b):
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    error = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, error


def _add(a, b):
    s, e = two_sum(a[0], b[0])
    t, f = two_sum(a[1], b[1])
    e = e + t
    s, e = _quick_two_sum(s, e)
    e = e + f
    return _quick_two_sum(s, e)


def _mul(a, b):
    p, e = _two_prod(a[0], b[0])
    e = e + (a[0] * b[1] + a[1] * b[0])
    return _quick_two_sum(p, e)


def _div(a, b):
    q1 = a[0] / b[0]
    r = _add(a, _negate(_mul(b, (q1, 0.0 * q1))))
    q2 = r[0] / b[0]
    r = _add(r, _negate(_mul(b, (q2, 0.0 * q2))))
    q3 = r[0] / b[0]
    q = _quick_two_sum(q1, q2)
    return _add(q, (q3, 0.0 * q3))


def _float64_horner(coefficients, x):
    """Return the polynomial sum of c[k] x**k, k from 0, in float64 alone:
    for the small high-order terms of a series."""
    total = coefficients[-1][0]
    for coefficient in reversed(coefficients[:-1]):
        total = total * x + coefficient[0]
    return total


def _negate(a):
    return -a[0], -a[1]


def _constant(parts, like):
    import numpy as np

    return np.full_like(like, parts[0]), np.full_like(like, parts[1])


def exp_nonpositive(
    t: np.ndarray, t_low: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return e**(t + t_low) as a double-double, for t in [-MAX_INPUT, 0] and
    t_low within half an ulp of t (0 when omitted)."""
    import numpy as np

    k = np.rint(t / _LN2_1)
    # t - k ln 2, with the first product exact and the rest as double-doubles.
    reduced = (t - k * _LN2_1, np.zeros_like(t) if t_low is None else t_low)
    reduced = _quick_two_sum(*reduced)
    reduced = _add(reduced, _negate(_two_prod(k, np.full_like(t, _LN2_2))))
    reduced = _add(reduced, (-k * _LN2_3, np.zeros_like(t)))
    scale = 2.0**-_EXP_SQUARINGS
    s = (reduced[0] * scale, reduced[1] * scale)

    poly = (_float64_horner(_EXP_COEFFICIENTS[_EXP_DOUBLE_TERMS:], s[0]), 0.0)
    for coefficient in reversed(_EXP_COEFFICIENTS[:_EXP_DOUBLE_TERMS]):
        poly = _add(_mul(poly, s), coefficient)
    expm1 = _mul(poly, s)
    # (1 + a)**2 - 1 = a * (2 + a), which keeps the small a accurate.
    two = _constant([2.0, 0.0], t)
    for _ in range(_EXP_SQUARINGS):
        expm1 = _mul(expm1, _add(two, expm1))
    value = _add(_constant([1.0, 0.0], t), expm1)
    exponent = k.astype(np.int64)
    return np.ldexp(value[0], exponent), np.ldexp(value[1], exponent)


def log1p_unit(e: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return ln(1 + e) as a double-double for a double-double e in (0, 1]."""
    import numpy as np

    # Small e: the alternating series, in Horner form.
    series = (_float64_horner(_LOG1P_COEFFICIENTS[_LOG1P_DOUBLE_TERMS:], e[0]), 0.0)
    for coefficient in reversed(_LOG1P_COEFFICIENTS[:_LOG1P_DOUBLE_TERMS]):
        series = _add(_mul(series, e), coefficient)
    series = _mul(series, e)

    # Larger e: one Newton step from float64's log1p, y1 = y0 + ln(1 + v) with
    # v = (1 + e) e**-y0 - 1, and ln(1 + v) = v - v**2/2 to within 2**-140.
    start = np.log1p(e[0])
    one = _constant([1.0, 0.0], e[0])
    shifted = _mul(_add(one, e), exp_nonpositive(-start))
    v = _add(shifted, _negate(one))
    correction = _add(v, _negate(_mul(_mul(v, v), _constant([0.5, 0.0], e[0]))))
    newton = _add((start, np.zeros_like(start)), correction)

    small = e[0] <= _LOG1P_SERIES_LIMIT
    return np.where(small, series[0], newton[0]), np.where(small, series[1], newton[1])


def refine(
    name: str,
    derivative: bool,
    x: np.ndarray,
    beta: float = 1.0,
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return softplus (with `beta`), sigmoid or a derivative at float64 x as
    double-doubles, and NaN where this module does not apply.

    It does not apply where |beta*x| > MAX_INPUT, where beta*x is nonzero but
    too small for its low part to be exact, for beta outside [2**-400, 2**400],
    and where PyTorch's `threshold` makes the result linear (those results are
    exact on the fast path).
    """
    import numpy as np

    # beta*x = z[0] + z[1] exactly, where the product and its low part are normal.
    z = _two_prod(x, np.full_like(x, beta))
    negative = z[0] < 0
    magnitude = (np.where(negative, -z[0], z[0]), np.where(negative, -z[1], z[1]))
    usable = (magnitude[0] <= MAX_INPUT) & ((magnitude[0] >= 2.0**-900) | (x == 0))
    usable &= np.isfinite(z[1])
    # Beyond this range of beta, splitting it for exact products could overflow
    # and dividing by it could leave results whose low parts are subnormal.
    usable &= 2.0**-400 <= beta <= 2.0**400
    if threshold is not None:
        usable &= ~((z[0] > threshold) | ((z[0] == threshold) & (z[1] > 0)))
    magnitude = (
        np.where(usable, magnitude[0], 1.0),
        np.where(usable, magnitude[1], 0.0),
    )

    e = exp_nonpositive(-magnitude[0], -magnitude[1])
    one = _constant([1.0, 0.0], x)
    if name == "softplus" and not derivative:
        positive = (np.where(negative, 0.0, z[0]), np.where(negative, 0.0, z[1]))
        value = _add(positive, log1p_unit(e))
        if beta != 1.0:
            value = _div(value, _constant([beta, 0.0], x))
    else:
        denominator = _add(one, e)
        if name == "sigmoid" and derivative:
            value = _div(e, _mul(denominator, denominator))
        else:
            numerator = (
                np.where(negative, e[0], one[0]),
                np.where(negative, e[1], one[1]),
            )
            value = _div(numerator, denominator)
    return np.where(usable, value[0], np.nan), np.where(usable, value[1], np.nan)


def round_refined(
    value: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Round positive double-doubles within RELATIVE_BOUND of the exact values to
    float64, and flag those whose rounding is still undecided."""
    import numpy as np

    high, low = _quick_two_sum(*value)
    up = (np.nextafter(high, np.inf) - high) / 2
    down = (high - np.nextafter(high, -np.inf)) / 2
    # Distance from high + low to the nearer midpoint, which is computed with a
    # relative error of at most 2**-53: the factor below covers it.
    margin = np.where(low >= 0, up - low, down + low)
    decided = margin * (1 - 2.0**-50) > RELATIVE_BOUND * np.abs(high)
    decided &= (high > 2.0**-960) & np.isfinite(high) & np.isfinite(low)
    return high, ~decided

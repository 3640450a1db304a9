"""High-precision references: mpmath at 60 digits, rounded once to a dtype.

The rounding here is written independently of softplus_cli.rounding: it picks,
among the float64-guided candidate and its two neighbours, the value nearest to
the mpmath result, comparing exact rationals, with ties to even.
"""

from fractions import Fraction

import mpmath
import numpy as np

DIGITS = 60


def softplus(x, beta=1.0):
    z = mpmath.mpf(x) * mpmath.mpf(beta)
    if z > 0:
        return (z + mpmath.log1p(mpmath.exp(-z))) / beta
    return mpmath.log1p(mpmath.exp(z)) / beta


def sigmoid(x):
    return 1 / (1 + mpmath.exp(-mpmath.mpf(x)))


def sigmoid_derivative(x):
    s = sigmoid(x)
    return s * (1 - s)


def to_fraction(value) -> Fraction:
    mantissa, exponent = mpmath.mpf(value).man_exp
    return Fraction(mantissa) * Fraction(2) ** exponent


def round_to(value, dtype) -> np.generic:
    """Round an mpmath value to `dtype`, to nearest with ties to even."""
    dtype = np.dtype(dtype)
    exact = to_fraction(value)
    guess = np.array([float(value)]).astype(dtype)
    candidates = [
        np.nextafter(guess, np.array([-np.inf], dtype=dtype))[0],
        guess[0],
        np.nextafter(guess, np.array([np.inf], dtype=dtype))[0],
    ]
    finite = [c for c in candidates if np.isfinite(c)]

    def key(candidate):
        distance = abs(Fraction(float(candidate)) - exact)
        odd = int(np.array([candidate]).view(f"u{dtype.itemsize}")[0]) & 1
        return (distance, odd)

    return min(finite, key=key)


def reference(function, x, dtype, **kwargs) -> np.generic:
    """Return `function(x)` at 60 digits, rounded to `dtype`."""
    with mpmath.workdps(DIGITS):
        return round_to(function(float(x), **kwargs), dtype)

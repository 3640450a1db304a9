"""An mpmath reference for the accuracy tests, independent of softplus_cli.

Exact values come from mpmath at REFERENCE_BITS bits (about 60 digits). Each
is rounded to the target dtype by integer arithmetic on its binary expansion
m * 2**e: the bits below the dtype's quantum at that binade decide the
rounding (half to even). Nothing here calls the project's rounding module.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

REFERENCE_BITS = 200
# A value computed at REFERENCE_BITS bits is within 2**-GUARANTEED_BITS of the
# exact one, relatively: mpmath's exp and log1p are accurate to a few ulp.
GUARANTEED_BITS = REFERENCE_BITS - 8

FUNCTIONS = [
    ("softplus", False),
    ("softplus", True),
    ("sigmoid", False),
    ("sigmoid", True),
]


class UndecidedError(ArithmeticError):
    """Raised when REFERENCE_BITS bits cannot decide the rounding."""


def _format(dtype: np.dtype) -> tuple[int, int, int]:
    """Return (significand bits with the hidden one, min exponent, max exponent)."""
    finfo = np.finfo(dtype)
    return int(finfo.nmant) + 1, int(finfo.minexp), int(finfo.maxexp)


def round_dyadic(mantissa: int, exponent: int, dtype: np.dtype, exact: bool) -> float:
    """Round mantissa * 2**exponent to `dtype`, half to even, and return a float.

    If `exact` is false the value is only within 2**-GUARANTEED_BITS of the real
    one (relatively), and a value that close to a midpoint raises UndecidedError.
    """
    if mantissa == 0:
        return 0.0
    sign = -1.0 if mantissa < 0 else 1.0
    magnitude = abs(mantissa)
    precision, min_exponent, max_exponent = _format(dtype)
    binade = exponent + magnitude.bit_length() - 1
    quantum = max(binade, min_exponent) - (precision - 1)
    shift = quantum - exponent
    if binade + 2 <= quantum:
        # Below half the smallest subnormal: 0, without building 2**shift.
        return sign * 0.0
    if shift <= 0:
        count = magnitude << -shift
    else:
        count = magnitude >> shift
        remainder = magnitude - (count << shift)
        half = 1 << (shift - 1)
        if not exact:
            tolerance = (magnitude >> GUARANTEED_BITS) + 1
            if remainder != half and abs(remainder - half) <= tolerance:
                raise UndecidedError(f"{sign * magnitude}*2**{exponent} is too close")
        if remainder > half or (remainder == half and count % 2 == 1):
            count += 1
    if count.bit_length() + quantum > max_exponent:
        return sign * math.inf
    return sign * math.ldexp(count, quantum)


def round_mpf(value: mpmath.mpf, dtype: np.dtype) -> float:
    """Round a finite mpmath value computed at REFERENCE_BITS bits to `dtype`."""
    mantissa, exponent = value.man_exp
    # With gmpy2 installed the mantissa is an mpz: plain ints keep this portable.
    return round_dyadic(int(mantissa), int(exponent), dtype, exact=False)


def _values(x: float, beta: float) -> dict[tuple[str, bool], mpmath.mpf]:
    """Return all four functions at the finite input `x`, sharing one exp."""
    z = mpmath.mpf(x) * mpmath.mpf(beta)
    e = mpmath.exp(-abs(z))
    # With e = exp(-|z|): ln(1 + exp(z)) = max(z, 0) + ln(1 + e), and
    # 1 / (1 + exp(-z)) is 1/(1+e) for z >= 0 and e/(1+e) below.
    softplus = (max(z, 0) + mpmath.log1p(e)) / beta
    sigmoid = 1 / (1 + e) if z >= 0 else e / (1 + e)
    return {
        ("softplus", False): softplus,
        ("softplus", True): sigmoid,
        ("sigmoid", False): sigmoid,
        ("sigmoid", True): e / (1 + e) ** 2,
    }


def exact_value(name: str, derivative: bool, x: float, beta: float = 1.0) -> mpmath.mpf:
    """Return one function at the finite input `x`, at REFERENCE_BITS bits."""
    with mpmath.workprec(REFERENCE_BITS):
        return _values(x, beta)[(name, derivative)]


def limit_value(name: str, derivative: bool, x: float) -> float:
    """Return the function's limit at x = ±inf, or nan at nan."""
    if math.isnan(x):
        return math.nan
    positive = x > 0
    if name == "softplus":
        if derivative:
            return 1.0 if positive else 0.0
        return math.inf if positive else 0.0
    if derivative:
        return 0.0
    return 1.0 if positive else 0.0


def references(
    x: np.ndarray, dtype: np.dtype, beta: float = 1.0
) -> dict[tuple[str, bool], np.ndarray]:
    """Return softplus, sigmoid and their derivatives at every `x`, each rounded
    to `dtype`, as float64 arrays. Only softplus takes `beta`; sigmoid and its
    derivative are computed at beta*x as well, so use them with beta = 1."""
    results = {key: np.empty(x.size, dtype=np.float64) for key in FUNCTIONS}
    with np.errstate(invalid="ignore"):
        points = x.astype(np.float64).tolist()
    with mpmath.workprec(REFERENCE_BITS):
        for index, value in enumerate(points):
            if not math.isfinite(value):
                for key in FUNCTIONS:
                    results[key][index] = limit_value(*key, value)
                continue
            for key, exact in _values(value, beta).items():
                results[key][index] = round_mpf(exact, dtype)
    return results


def reference(
    name: str, derivative: bool, x: float, dtype: np.dtype, beta: float = 1.0
) -> float:
    """Return one function at one input, rounded to `dtype`."""
    return float(references(np.array([x]), dtype, beta)[(name, derivative)][0])


def _dyadic(value: float) -> tuple[int, int]:
    """Return (m, e) with value = m * 2**e exactly, for a finite float."""
    fraction, exponent = math.frexp(value)
    return int(fraction * 2**53), exponent - 53


def relu_reference(
    derivative: bool,
    x: float,
    dtype: np.dtype,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
) -> float:
    """Return Keras's relu (or its derivative) at `x`, rounded exactly to `dtype`."""
    if math.isnan(x):
        return math.nan
    if derivative:
        if max_value is not None and x >= max_value:
            return 0.0
        if x > threshold:
            return 1.0
        return round_dyadic(*_dyadic(negative_slope), dtype, exact=True)
    if x > threshold:
        value = x if max_value is None else min(x, max_value)
        if math.isinf(value):
            return value
        return round_dyadic(*_dyadic(value), dtype, exact=True)
    if math.isinf(x):
        return -math.inf * negative_slope if negative_slope else 0.0
    # negative_slope * (x - threshold), exactly: align the two exponents.
    x_mantissa, x_exponent = _dyadic(x)
    t_mantissa, t_exponent = _dyadic(threshold)
    low = min(x_exponent, t_exponent)
    difference = (x_mantissa << (x_exponent - low)) - (t_mantissa << (t_exponent - low))
    s_mantissa, s_exponent = _dyadic(negative_slope)
    return round_dyadic(difference * s_mantissa, low + s_exponent, dtype, exact=True)


def same(result: float, expected: float) -> bool:
    """Whether two results are the same value (nan equals nan, -0.0 equals 0.0)."""
    return result == expected or (math.isnan(result) and math.isnan(expected))

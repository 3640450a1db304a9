"""Correct rounding: a fast approximation, a test of whether it decides, and mpmath.

A result is correctly rounded when it is the exact real value of the function at
the input, rounded once to the target dtype (round half to even). The fast path
approximates the function in a wider working dtype with a known bound on its
relative error. Wherever the interval that bound spans rounds to a single target
value, that value is the correctly rounded result. The rare inputs whose interval
straddles a rounding midpoint are settled by `round_exact`, which evaluates the
function in mpmath with growing precision (Ziv's strategy) until the rounding is
decided.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import mpmath

# mpmath is imported only inside the functions that settle undecided elements,
# so a run in which the fast path decides everything never loads it.

# mpmath evaluation starts at this many bits and doubles up to the maximum. At
# the maximum, float64 differences of any two finite doubles are exact, so a
# value that still sits on a midpoint there is an exact tie.
START_PRECISION = 128
MAX_PRECISION = 4096

ExactFunction = Callable[["mpmath.mpf"], "mpmath.mpf"]

MPMATH_LOCK = threading.Lock()

# Covers the float64 rounding in the test of `_round_decided_to_float64`.
SAFETY = 1 + 2.0**-48
# From this magnitude up, `offset` (a multiple of the long double ulp, which
# is at least |rounded| * 2**-64) is exact in float64 and `radius` is normal.
MIN_ORDINARY = 2.0**-958
FLOAT64_MAX = float(np.finfo(np.float64).max)


def round_decided(
    approx: np.ndarray, relative_error: float, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Round `approx` to `dtype` and flag the elements whose rounding is undecided.

    `approx` is in the working dtype and within `relative_error` (relative to its
    own magnitude) of the exact value. Returns the rounded array and a boolean
    mask of the elements for which the exact value may round differently.
    """
    if np.dtype(dtype) == np.float64 and approx.dtype.itemsize > 8:
        return _round_decided_to_float64(approx, relative_error)
    return _round_decided_by_casts(approx, relative_error, dtype)


def _round_decided_by_casts(
    approx: np.ndarray, relative_error: float, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """`round_decided` for any dtypes: decided where both ends of the error
    interval round to the same value as `approx`."""
    # Casts that underflow to 0 or overflow to inf round correctly, silently.
    with np.errstate(all="ignore"):
        rounded = approx.astype(dtype)
        radius = np.abs(approx) * approx.dtype.type(relative_error)
        low = (approx - radius).astype(dtype)
        high = (approx + radius).astype(dtype)
        undecided = (low != rounded) | (high != rounded)
    # Exact infinities and NaN decide themselves: the comparisons above are
    # false for NaN and the radius of an infinity is infinite.
    undecided &= np.isfinite(approx)
    return rounded, undecided


def _round_decided_to_float64(
    approx: np.ndarray, relative_error: float
) -> tuple[np.ndarray, np.ndarray]:
    """`round_decided` for a wider `approx` (numpy.longdouble) and float64
    results, with as few operations in the wider dtype as it can.

    An element is decided when its error interval, `offset` ± `radius` around
    the rounded value, lies strictly within half the gap to the float64
    neighbour toward zero. That gap is never wider than the one away from
    zero, so the test is the same on both sides. Only the subtraction runs in
    the wide dtype, where it is exact. The rest runs in float64, whose
    relative rounding errors of 2**-53 the factor SAFETY covers.
    """
    with np.errstate(all="ignore"):
        rounded = approx.astype(np.float64)
        offset = (approx - rounded).astype(np.float64)
        magnitude = np.abs(rounded)
        # For a positive finite float64, the integer below its bits is the
        # bits of its neighbour toward zero. This takes two vectorized integer
        # operations, where NumPy's nextafter took about 5 ns an element here.
        toward_zero = (magnitude.view(np.int64) - 1).view(np.float64)
        half_gap = (magnitude - toward_zero) * 0.5
        np.abs(offset, out=offset)
        offset += magnitude * relative_error
        offset *= SAFETY
        undecided = offset >= half_gap
    # Below MIN_ORDINARY, float64 would round `offset` or `radius` (they would
    # be subnormal). The largest finite value's upper neighbour is infinity.
    # Those results, zero, infinities and NaN take the general test, which
    # decides NaN and the exact infinities.
    ordinary = (magnitude >= MIN_ORDINARY) & (magnitude < FLOAT64_MAX)
    if not ordinary.all():
        indices = np.flatnonzero(~ordinary)
        _, general = _round_decided_by_casts(
            approx[indices], relative_error, np.dtype(np.float64)
        )
        undecided[indices] = general
    return rounded, undecided


def _neighbours(value: np.generic, dtype: np.dtype) -> tuple[Any, Any]:
    """Return the finite or infinite values of `dtype` just below and above `value`."""
    array = np.array([value], dtype=dtype)
    with np.errstate(over="ignore"):
        below = np.nextafter(array, np.array([-np.inf], dtype=dtype))[0]
        above = np.nextafter(array, np.array([np.inf], dtype=dtype))[0]
    return below, above


def _as_mpf(value: np.generic, dtype: np.dtype) -> mpmath.mpf:
    """Convert a finite `dtype` value to mpmath exactly, and infinity to the
    value at which IEEE 754 round-to-nearest overflows to it."""
    import mpmath

    if np.isinf(value):
        finfo = np.finfo(dtype)
        largest = mpmath.mpf(float(finfo.max))
        ulp = mpmath.ldexp(1, int(finfo.maxexp) - int(finfo.nmant) - 1)
        return mpmath.mpf(np.sign(float(value))) * (largest + ulp)
    return mpmath.mpf(float(value))


def _is_even(value: np.generic, dtype: np.dtype) -> bool:
    bits = np.array([value], dtype=dtype).view(f"u{dtype.itemsize}")[0]
    return int(bits) % 2 == 0


def _nearest(
    exact: mpmath.mpf, dtype: np.dtype, precision: int
) -> tuple[np.generic, bool]:
    """Round the mpmath value `exact` to `dtype`.

    Returns the rounded value and whether the rounding is certain given that
    `exact` carries a relative error of a few units in its last bit.
    """
    import mpmath

    with np.errstate(all="ignore"):
        candidate = np.array([float(exact)]).astype(dtype)[0]
    if mpmath.isinf(exact) or exact == 0:
        return candidate, True
    margin = abs(exact) * mpmath.ldexp(1, 8 - precision)
    below, above = _neighbours(candidate, dtype)
    centre = _as_mpf(candidate, dtype)

    # The float64 conversion may have rounded twice, so the exact value can lie
    # beyond either midpoint next to the candidate: step toward it once.
    for neighbour in (below, above):
        midpoint = (centre + _as_mpf(neighbour, dtype)) / 2
        beyond = exact < midpoint if neighbour == below else exact > midpoint
        if beyond and abs(exact - midpoint) > margin:
            return neighbour, True
        if abs(exact - midpoint) <= margin:
            if exact == midpoint and precision >= MAX_PRECISION:
                winner = candidate if _is_even(candidate, dtype) else neighbour
                return winner, True
            return candidate, False
    return candidate, True


def round_exact(function: ExactFunction, value: float, dtype: np.dtype) -> np.generic:
    """Return `function(value)` correctly rounded to `dtype`.

    `function` computes the exact function in mpmath at the current working
    precision. Precision doubles until the result is decided.
    """
    import mpmath

    precision = START_PRECISION
    # mpmath's working precision is global: one thread uses it at a time.
    with MPMATH_LOCK:
        while True:
            # The midpoint arithmetic in _nearest needs the same precision.
            with mpmath.workprec(precision):
                exact = function(mpmath.mpf(value))
                rounded, certain = _nearest(exact, dtype, precision)
            if certain or precision >= MAX_PRECISION:
                return rounded
            precision *= 2


def settle_undecided(
    rounded: np.ndarray,
    undecided: np.ndarray,
    inputs: np.ndarray,
    function: ExactFunction,
) -> np.ndarray:
    """Replace the undecided elements of `rounded` by mpmath's correct rounding."""
    for index in np.flatnonzero(undecided):
        rounded[index] = round_exact(function, float(inputs[index]), rounded.dtype)
    return rounded

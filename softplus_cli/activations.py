"""The activation functions, their derivatives and their parameters.

Each function has two implementations. `approx` works on a NumPy array in the
working dtype (float64, or numpy.longdouble for float64 results), within a
relative error bound that `Kernel.bound_for` gives in units of that dtype's
epsilon. `exact` computes the same value in mpmath at the current working
precision. `evaluate` combines them into correctly rounded results (see
`softplus_cli.rounding`).

Adding an activation is one `Activation` entry in `ACTIVATIONS`, plus a
`Parameter` entry for each parameter it has that no other activation has.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import mpmath
    import numpy as np

# NumPy and mpmath are imported inside the functions that use them, so that
# `softplus --help` and the registry's metadata load without them.

Parameters = Mapping[str, float | None]


class InvalidParameterError(ValueError):
    """Raised for a parameter value outside the range the function accepts."""


class Parameter(NamedTuple):
    """A numeric parameter of one or more activations, as the CLI exposes it."""

    name: str
    option: str
    default: float | None
    help: str
    check: Callable[[float], str | None]


# Relative error bounds of the exp/log1p kernels, in eps of the working dtype.
#
# float64 (float16, bfloat16 and float32 results): NumPy's float64 exp and
# log1p on AVX-512 machines come from Intel's SVML, stated by its authors to be
# within 4 ulp, and NumPy's other float64 paths are within that too. softplus
# is log1p(exp(-|z|)) plus at most three correctly rounded operations, so it is
# within 4 + 4 + 1.5 eps; sigmoid and its derivative are within 4 + 3 eps.
# 16 leaves a margin of 1.7 over that sum, and float32 results lose almost
# nothing to it: at most 1 in 7 million of them go to mpmath (589 of the 2**32
# float32 inputs for sigmoid).
#
# numpy.longdouble (float64 results): glibc's x86-64 test suite records at most
# 1 ulp for expl and 2 ulp for log1pl (sysdeps/x86_64/fpu/libm-test-ulps), so
# softplus is within 1 + 2 + 1.5 eps. 8 leaves a margin of 1.8. Each unit of
# this bound sends about 0.13 % of float64 results to mpmath.
#
# benchmarks/kernel_errors.py measures the real errors (at most 2.1 eps in
# float64 and 2.5 eps in longdouble); tests/test_accuracy.py checks them.
FLOAT64_BOUND = 16
EXTENDED_BOUND = 8


class Kernel(NamedTuple):
    """A function of x in two precisions: NumPy's and mpmath's."""

    approx: Callable[[np.ndarray, Parameters], np.ndarray]
    exact: Callable[[mpmath.mpf, Parameters], mpmath.mpf]
    # Bounds on the relative error of `approx`, in units of the working dtype's
    # machine epsilon: `error_bound` when it runs in float64, `extended_error_bound`
    # when it runs in numpy.longdouble with a 64-bit or wider significand.
    error_bound: float = FLOAT64_BOUND
    extended_error_bound: float = EXTENDED_BOUND
    # Double-double evaluation for the float64 results that the fast path
    # leaves undecided, as (high, low, exponent) from doubledouble.refine (NaN
    # where it does not apply), or None where mpmath settles all of them.
    refine: (
        Callable[[np.ndarray, Parameters], tuple[np.ndarray, np.ndarray, np.ndarray]]
        | None
    ) = None
    # Float64 results that float64 arithmetic alone decides, for inputs where
    # that is cheap: (values, decided), or None where it does not apply. The
    # other elements take the fast path.
    decide_float64: (
        Callable[[np.ndarray, Parameters], tuple[np.ndarray, np.ndarray] | None] | None
    ) = None

    def bound_for(self, working: np.dtype) -> float:
        """Return the relative error bound, in eps, for the working dtype."""
        import numpy as np

        if np.finfo(working).nmant > np.finfo(np.float64).nmant:
            return self.extended_error_bound
        return self.error_bound


class Activation(NamedTuple):
    """One registry entry: a function, its derivative and their formulas."""

    name: str
    summary: str
    formula: str
    derivative_formula: str
    value: Kernel
    derivative: Kernel
    parameters: tuple[str, ...]
    notes: str = ""


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else "must be a finite number"


def _positive(value: float) -> str | None:
    if math.isfinite(value) and value > 0:
        return None
    return "must be a finite number greater than 0"


PARAMETERS: dict[str, Parameter] = {
    parameter.name: parameter
    for parameter in (
        Parameter(
            name="beta",
            option="--beta",
            default=1.0,
            help="softplus: ln(1+e^(beta*x))/beta, as in PyTorch; must be > 0.",
            check=_positive,
        ),
        Parameter(
            name="threshold",
            option="--threshold",
            default=None,
            help=(
                "softplus: return x where beta*x > THRESHOLD, as PyTorch does "
                "(PyTorch's default is 20). Off by default: results are exact."
            ),
            check=_finite,
        ),
        Parameter(
            name="negative_slope",
            option="--negative-slope",
            default=0.0,
            help="relu: slope at or below the threshold, as in Keras.",
            check=_finite,
        ),
        Parameter(
            name="max_value",
            option="--max-value",
            default=None,
            help="relu: largest output (6 gives relu6), as in Keras.",
            check=_finite,
        ),
        Parameter(
            name="relu_threshold",
            option="--relu-threshold",
            default=0.0,
            help="relu: input at or below which the negative slope applies "
            "(Keras's threshold).",
            check=_finite,
        ),
    )
}


def check_parameters(values: Parameters) -> None:
    """Raise InvalidParameterError for any value out of its parameter's range."""
    for name, value in values.items():
        if value is None:
            continue
        parameter = PARAMETERS[name]
        problem = parameter.check(value)
        if problem is not None:
            raise InvalidParameterError(f"{parameter.option} {value!r} {problem}")
    maximum = values.get("max_value")
    threshold = values.get("relu_threshold") or 0.0
    if maximum is not None and maximum <= threshold:
        raise InvalidParameterError(
            f"--max-value {maximum!r} must be greater than the relu threshold "
            f"{threshold!r}"
        )


def default_parameters() -> dict[str, float | None]:
    return {name: parameter.default for name, parameter in PARAMETERS.items()}


# --- NumPy approximations -------------------------------------------------


def _two_product(x: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (p, e) with p = fl(x*factor) and p + e = x*factor exactly (Dekker).

    The identity needs p and e to be normal: where the product underflows,
    e may be inexact, but there softplus and sigmoid are flat to well within
    the working precision.
    """
    import numpy as np

    kind = x.dtype.type
    bits = np.finfo(x.dtype).nmant + 1
    splitter = kind(2 ** ((bits + 1) // 2) + 1)
    b = kind(factor)
    product = x * b

    def split(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = splitter * value
        high = scaled - (scaled - value)
        return high, value - high

    x_high, x_low = split(x)
    b_high, b_low = split(np.asarray(b))
    error = ((x_high * b_high - product) + x_high * b_low + x_low * b_high) + (
        x_low * b_low
    )
    # Splitting overflows for |x| near the dtype's maximum, where the product is
    # far outside the range in which the correction matters.
    error = np.where(np.isfinite(error), error, kind(0))
    return product, error


def _scaled(x: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if beta == 1.0:
        return x, np.zeros_like(x)
    return _two_product(x, beta)


def _apply_threshold(
    x: np.ndarray,
    result: np.ndarray,
    parameters: Parameters,
    linear_value: np.ndarray | float,
) -> np.ndarray:
    """Use `linear_value` where beta*x exceeds PyTorch's threshold, if one is set."""
    import numpy as np

    threshold = parameters.get("threshold")
    if threshold is None:
        return result
    z, dz = _scaled(x, float(parameters["beta"] or 1.0))
    linear = (z > threshold) | ((z == threshold) & (dz > 0))
    return np.where(linear, linear_value, result)


def _softplus_approx(x: np.ndarray, parameters: Parameters) -> np.ndarray:
    import numpy as np

    beta = float(parameters["beta"] or 1.0)
    if beta == 1.0:
        # ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), in place: this is most of
        # the cost of float64 results on the fast path.
        result = np.copysign(x, -1)
        np.exp(result, out=result)
        np.log1p(result, out=result)
        result += np.maximum(x, 0)
        return _apply_threshold(x, result, parameters, linear_value=x)
    z, dz = _two_product(x, beta)
    e = np.exp(-np.abs(z))
    tail = np.log1p(e)
    # First-order correction for the low part dz of beta*x: d/dz ln(1+e^z) = σ(z).
    correction = e / (1 + e) * dz
    result = np.where(z > 0, x + (tail - correction) / beta, (tail + correction) / beta)
    return _apply_threshold(x, result, parameters, linear_value=x)


# ln 2 as a float64 pair: LN2_HIGH is ln 2 rounded, and LN2_LOW the float64
# nearest to the rest, so the pair is within 2**-106 of ln 2.
LN2_HIGH = 0.6931471805599453
LN2_LOW = 2.3190468138462996e-17
# Up to this |x|, ln(1 + e^x) = ln 2 + x/2 + x²/8 − x⁴/192 + x⁶/2880 − ...,
# and the terms omitted, from −17x⁸/645120 on, alternate and shrink: they sum
# to under 2**-79.
SOFTPLUS_SERIES_LIMIT = 2.0**-8
# Coefficients of x², x⁴ and x⁶ in that series.
SOFTPLUS_SERIES = (1 / 8, -1 / 192, 1 / 2880)
# From here on, ln(1 + e^-x) < e^-40 < 2**-57 is less than half an ulp of x,
# so softplus(x) rounds to x.
SOFTPLUS_LINEAR_FROM = 40.0
# Absolute error of the series evaluation below. The terms after x/2 sum to at
# most 2**-19, and float64 evaluates them within a few roundings, 2**-51
# relative. Adding them to the pair errs by at most 2**-71. That is under
# 2**-69 in all, with 2**-79 from the terms omitted and 2**-106 from ln 2's
# pair: 2**-67 leaves a factor of nearly 4.
SOFTPLUS_SERIES_ERROR = 2.0**-67
# The series' results lie in [0.69, 0.7], where float64's spacing is 2**-53:
# one is decided when its distance from the rounded value is under this.
SOFTPLUS_SERIES_DECIDED = 2.0**-54 - SOFTPLUS_SERIES_ERROR


def _softplus_decide_float64(
    x: np.ndarray, parameters: Parameters
) -> tuple[np.ndarray, np.ndarray] | None:
    """Decide softplus at float64 x in float64 arithmetic where that is cheap.

    Inputs from 40 on give x itself. Inputs with |x| <= 2**-8 take the series
    of SOFTPLUS_SERIES_LIMIT: ln 2 + x/2 is summed exactly as a pair, the rest
    in float64, and a final exact sum gives the rounded value and its distance
    from the approximation. It is decided when that distance plus
    SOFTPLUS_SERIES_ERROR is under half the spacing: all but about 1 in 8,000.
    """
    import numpy as np

    beta = float(parameters["beta"] or 1.0)
    threshold = parameters.get("threshold")
    # PyTorch's threshold makes results linear from beta*x > threshold on:
    # from 1 on, it changes none of the results decided here.
    if beta != 1.0 or (threshold is not None and threshold < 1.0):
        return None
    # x itself from 40 on; `evaluate` replaces the elements not decided.
    values = x.copy()
    decided = x >= SOFTPLUS_LINEAR_FROM
    small = np.flatnonzero(np.abs(x) <= SOFTPLUS_SERIES_LIMIT)
    if len(small):
        z = x[small]
        half = z * 0.5
        square = z * z
        # Both sums below add a smaller magnitude to a larger one, so two
        # operations recover each one's rounding error exactly (Fast2Sum).
        high = half + LN2_HIGH
        error = half - (high - LN2_HIGH)
        low = square * SOFTPLUS_SERIES[2] + SOFTPLUS_SERIES[1]
        low *= square
        low += SOFTPLUS_SERIES[0]
        low *= square
        low += LN2_LOW
        low += error
        rounded = high + low
        offset = low - (rounded - high)
        values[small] = rounded
        decided[small] = np.abs(offset) < SOFTPLUS_SERIES_DECIDED
    return values, decided


def _sigmoid_of(z: np.ndarray, dz: np.ndarray) -> np.ndarray:
    import numpy as np

    e = np.exp(-np.abs(z))
    result = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    # σ(z+dz) ≈ σ(z)(1 + σ(-z)dz).
    other = np.where(z >= 0, e / (1 + e), 1 / (1 + e))
    return result + result * other * dz


def _softplus_derivative_approx(x: np.ndarray, parameters: Parameters) -> np.ndarray:
    z, dz = _scaled(x, float(parameters["beta"] or 1.0))
    return _apply_threshold(x, _sigmoid_of(z, dz), parameters, linear_value=1.0)


def _sigmoid_approx(x: np.ndarray, parameters: Parameters) -> np.ndarray:
    import numpy as np

    return _sigmoid_of(x, np.zeros_like(x))


def _sigmoid_derivative_approx(x: np.ndarray, parameters: Parameters) -> np.ndarray:
    import numpy as np

    e = np.exp(-np.abs(x))
    denominator = 1 + e
    return e / (denominator * denominator)


# NOTE: relu follows Keras's documented formula. Keras's code clips the values
# above the threshold to [0, max_value] when max_value is set, so with a
# negative threshold it returns 0, not x, between the threshold and 0.
def _relu_approx(x: np.ndarray, parameters: Parameters) -> np.ndarray:
    import numpy as np

    slope = float(parameters["negative_slope"] or 0.0)
    threshold = float(parameters["relu_threshold"] or 0.0)
    maximum = parameters["max_value"]
    kind = x.dtype.type
    above = x if maximum is None else np.minimum(x, kind(maximum))
    below = kind(slope) * (x - kind(threshold)) if slope else np.zeros_like(x)
    result = np.where(x > threshold, above, below)
    return np.where(np.isnan(x), x, result)


def _relu_derivative_approx(x: np.ndarray, parameters: Parameters) -> np.ndarray:
    import numpy as np

    slope = float(parameters["negative_slope"] or 0.0)
    threshold = float(parameters["relu_threshold"] or 0.0)
    maximum = parameters["max_value"]
    kind = x.dtype.type
    result = np.where(x > threshold, kind(1), kind(slope))
    if maximum is not None:
        result = np.where(x >= maximum, kind(0), result)
    return np.where(np.isnan(x), x, result)


def _double_double(
    name: str, derivative: bool
) -> Callable[[np.ndarray, Parameters], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return the double-double refinement of one kernel."""
    uses_beta = name == "softplus"

    def refine(
        x: np.ndarray, parameters: Parameters
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from softplus_cli import doubledouble

        beta = float(parameters.get("beta") or 1.0) if uses_beta else 1.0
        threshold = parameters.get("threshold") if uses_beta else None
        return doubledouble.refine(name, derivative, x, beta, threshold)

    return refine


def refine_undecided(
    kernel: Kernel,
    x: np.ndarray,
    parameters: Parameters,
    rounded: np.ndarray,
    undecided: np.ndarray,
) -> None:
    """Settle, in place, the undecided float64 results that double-double decides."""
    import numpy as np

    from softplus_cli.doubledouble import round_refined

    if kernel.refine is None or x.dtype != np.float64:
        return
    indices = np.flatnonzero(undecided)
    with np.errstate(all="ignore"):
        high, still = round_refined(kernel.refine(x[indices], parameters))
    settled = indices[~still]
    rounded[settled] = high[~still]
    undecided[settled] = False


# --- mpmath references ----------------------------------------------------


def _beta_times(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    import mpmath

    return x * mpmath.mpf(parameters["beta"] or 1.0)


def _threshold_applies(x: mpmath.mpf, parameters: Parameters) -> bool:
    threshold = parameters.get("threshold")
    return threshold is not None and _beta_times(x, parameters) > threshold


def _softplus_exact(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    import mpmath

    if _threshold_applies(x, parameters):
        return x
    z = _beta_times(x, parameters)
    # ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|): e^-|z| is at most 1.
    value = max(z, 0) + mpmath.log1p(mpmath.exp(-abs(z)))
    return value / mpmath.mpf(parameters["beta"] or 1.0)


def _sigmoid_exact_of(z: mpmath.mpf) -> mpmath.mpf:
    import mpmath

    e = mpmath.exp(-abs(z))
    return 1 / (1 + e) if z >= 0 else e / (1 + e)


def _softplus_derivative_exact(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    import mpmath

    if _threshold_applies(x, parameters):
        return mpmath.mpf(1)
    return _sigmoid_exact_of(_beta_times(x, parameters))


def _sigmoid_exact(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    return _sigmoid_exact_of(x)


def _sigmoid_derivative_exact(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    import mpmath

    e = mpmath.exp(-abs(x))
    return e / (1 + e) ** 2


def _relu_exact(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    import mpmath

    threshold = mpmath.mpf(parameters["relu_threshold"] or 0.0)
    maximum = parameters["max_value"]
    if x > threshold:
        return x if maximum is None else min(x, mpmath.mpf(maximum))
    return mpmath.mpf(parameters["negative_slope"] or 0.0) * (x - threshold)


def _relu_derivative_exact(x: mpmath.mpf, parameters: Parameters) -> mpmath.mpf:
    import mpmath

    maximum = parameters["max_value"]
    if maximum is not None and x >= maximum:
        return mpmath.mpf(0)
    if x > (parameters["relu_threshold"] or 0.0):
        return mpmath.mpf(1)
    return mpmath.mpf(parameters["negative_slope"] or 0.0)


ACTIVATIONS: dict[str, Activation] = {
    activation.name: activation
    for activation in (
        Activation(
            name="softplus",
            summary="smooth ReLU: ln(1 + e^x)",
            formula="softplus(x) = ln(1 + e^(βx)) / β",
            derivative_formula="softplus'(x) = σ(βx) = 1 / (1 + e^(−βx))",
            value=Kernel(
                _softplus_approx,
                _softplus_exact,
                refine=_double_double("softplus", False),
                decide_float64=_softplus_decide_float64,
            ),
            derivative=Kernel(
                _softplus_derivative_approx,
                _softplus_derivative_exact,
                refine=_double_double("softplus", True),
            ),
            parameters=("beta", "threshold"),
            notes=(
                "softplus(0) = ln 2 ≈ 0.6931472, not 0: the curve is smooth and "
                "positive everywhere, approaching 0 for x → −∞ and x for x → +∞."
            ),
        ),
        Activation(
            name="sigmoid",
            summary="logistic function σ(x) = 1 / (1 + e^−x)",
            formula="σ(x) = 1 / (1 + e^(−x))",
            derivative_formula="σ'(x) = σ(x)·σ(−x)",
            value=Kernel(
                _sigmoid_approx,
                _sigmoid_exact,
                refine=_double_double("sigmoid", False),
            ),
            derivative=Kernel(
                _sigmoid_derivative_approx,
                _sigmoid_derivative_exact,
                refine=_double_double("sigmoid", True),
            ),
            parameters=(),
            notes="σ'(x) is computed as σ(x)·σ(−x), so it does not cancel to 0 "
            "where σ(x) rounds to 1.",
        ),
        Activation(
            name="relu",
            summary="rectified linear unit max(x, 0), with Keras's options",
            formula=(
                "relu(x) = min(x, max_value) for x > threshold, "
                "negative_slope·(x − threshold) otherwise"
            ),
            derivative_formula=(
                "relu'(x) = 1 between threshold and max_value, negative_slope at "
                "or below threshold, 0 at or above max_value"
            ),
            # (x - threshold) and the product with the slope are each rounded
            # once in the working dtype; everything else is exact.
            value=Kernel(
                _relu_approx, _relu_exact, error_bound=2, extended_error_bound=2
            ),
            derivative=Kernel(
                _relu_derivative_approx,
                _relu_derivative_exact,
                error_bound=0,
                extended_error_bound=0,
            ),
            parameters=("negative_slope", "max_value", "relu_threshold"),
            notes="relu'(threshold) is negative_slope (0 by default), as in "
            "TensorFlow, PyTorch and jax.nn.relu.",
        ),
    )
}


# Elements of each slice that `evaluate` gives the fast path at a time.
FAST_PATH_SLICE = 1 << 14


class UnknownFunctionError(ValueError):
    """Raised for a function name that is not in `ACTIVATIONS`."""


def get_activation(name: str) -> Activation:
    """Return the registry entry called `name`."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        choices = ", ".join(ACTIVATIONS)
        raise UnknownFunctionError(
            f"unknown function {name!r}: use one of {choices}, or all"
        ) from None


def _fast_path(
    kernel: Kernel, x: np.ndarray, parameters: Parameters
) -> tuple[np.ndarray, np.ndarray]:
    """Return `kernel` at the 1-D `x` rounded to x.dtype from the working dtype,
    and which results that rounding leaves undecided.

    It runs on slices, which bounds its temporaries in the working dtype, while
    the later stages run once on all the undecided elements: the double-double
    stage costs about 0.1 ms a call however few elements it has.
    """
    import numpy as np

    from softplus_cli.dtypes import working_dtype
    from softplus_cli.rounding import round_decided

    working = working_dtype(x.dtype)
    # One more epsilon covers the rounding of the bound arithmetic itself.
    bound = (kernel.bound_for(working) + 1) * float(np.finfo(working).eps)
    rounded = np.empty_like(x)
    undecided = np.empty(x.shape, dtype=bool)
    for start in range(0, max(len(x), 1), FAST_PATH_SLICE):
        part = slice(start, start + FAST_PATH_SLICE)
        with np.errstate(all="ignore"):
            approx = kernel.approx(x[part].astype(working), parameters)
        rounded[part], undecided[part] = round_decided(approx, bound, x.dtype)
    return rounded, undecided


def evaluate(
    activation: Activation,
    x: np.ndarray,
    parameters: Parameters,
    *,
    derivative: bool = False,
) -> np.ndarray:
    """Return the activation or its derivative at `x`, correctly rounded to x.dtype."""
    import numpy as np

    from softplus_cli.rounding import settle_undecided

    kernel = activation.derivative if derivative else activation.value
    flat = x.reshape(-1)
    shortcut = None
    if x.dtype == np.float64 and kernel.decide_float64 is not None:
        with np.errstate(all="ignore"):
            shortcut = kernel.decide_float64(flat, parameters)
    if shortcut is None:
        rounded, undecided = _fast_path(kernel, flat, parameters)
    else:
        rounded, decided = shortcut
        rest = np.flatnonzero(~decided)
        undecided = np.zeros(flat.shape, dtype=bool)
        rounded[rest], undecided[rest] = _fast_path(kernel, flat[rest], parameters)
    rounded = rounded.reshape(x.shape)
    undecided = undecided.reshape(x.shape)
    if undecided.any():
        refine_undecided(kernel, x, parameters, rounded, undecided)
    if not undecided.any():
        return rounded

    def exact(value: mpmath.mpf) -> mpmath.mpf:
        return kernel.exact(value, parameters)

    # NOTE: relu, float64 inputs with |beta*x| > 1000 or tiny nonzero beta*x,
    # and subnormal float64 results are not decided by the double-double stage:
    # mpmath takes about 60 µs for each of those that the fast path leaves
    # undecided.
    return settle_undecided(rounded, undecided, x, exact)

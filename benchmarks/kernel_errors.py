"""Measure each kernel's relative error against mpmath, in eps of its working dtype.

Run: python benchmarks/kernel_errors.py [SAMPLES]

For float32 inputs the kernels run in float64; for float64 inputs they run in
numpy.longdouble (x87 80-bit). Inputs are random bit patterns over every
exponent, uniform points over the range where the functions are neither 0 nor
saturated, and points next to the branch switch at 0. The exact value is mpmath
at 256 bits. The table lists the max error and the `error_bound` it must stay
under.
"""

from __future__ import annotations

import sys

import mpmath
import numpy as np

from softplus_cli.activations import ACTIVATIONS, default_parameters

BETAS = (1.0, 0.5, 10.0, 1e-3, 1e3, 1e20)


def to_mpf(value: np.generic) -> mpmath.mpf:
    """Convert a float64 or longdouble value to mpmath exactly."""
    mantissa, exponent = np.frexp(value)
    high = np.float64(mantissa)
    low = np.float64(mantissa - type(mantissa)(high))
    return mpmath.ldexp(mpmath.mpf(float(high)) + mpmath.mpf(float(low)), int(exponent))


def sample_inputs(dtype: np.dtype, count: int, beta: float, rng) -> np.ndarray:
    unsigned = np.dtype(f"u{dtype.itemsize}")
    bits = rng.integers(0, np.iinfo(unsigned).max, size=count, dtype=unsigned)
    patterns = bits.view(dtype)
    patterns = patterns[np.isfinite(patterns)]
    limit = 120.0 if dtype == np.float32 else 800.0
    uniform = rng.uniform(-limit, limit, size=count).astype(dtype) / dtype.type(beta)
    small = rng.uniform(-1, 1, size=count) * 10.0 ** rng.uniform(-12, 1, size=count)
    small = small.astype(dtype) / dtype.type(beta)
    return np.concatenate([patterns, uniform, small])


def max_error(
    kernel, x: np.ndarray, parameters, working: np.dtype
) -> tuple[float, float]:
    with np.errstate(all="ignore"):
        approx = kernel.approx(x.astype(working), parameters)
    eps = mpmath.mpf(float(np.finfo(working).eps))
    # Below a quarter of the target's smallest subnormal a result rounds to 0
    # whatever its relative error, so those results are left out.
    negligible = mpmath.mpf(float(np.finfo(x.dtype).smallest_subnormal)) / 4
    worst, worst_x = mpmath.mpf(0), float("nan")
    with mpmath.workprec(256):
        for value, result in zip(x, approx, strict=True):
            if not np.isfinite(result):
                continue
            exact = kernel.exact(mpmath.mpf(float(value)), parameters)
            if abs(exact) < negligible:
                if abs(to_mpf(result)) >= 2 * negligible:
                    return float("inf"), float(value)
                continue
            error = abs(to_mpf(result) - exact) / abs(exact) / eps
            if error > worst:
                worst, worst_x = error, float(value)
    return float(worst), worst_x


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = np.random.default_rng(20261204)
    print("kernel\tinputs\tbeta\tmax error (eps)\tworst x\tbound")
    for activation in ACTIVATIONS.values():
        betas = BETAS if "beta" in activation.parameters else (1.0,)
        for derivative, kernel in (
            (False, activation.value),
            (True, activation.derivative),
        ):
            name = activation.name + ("'" if derivative else "")
            for dtype, working in (
                (np.float32, np.float64),
                (np.float64, np.longdouble),
            ):
                for beta in betas:
                    parameters = default_parameters()
                    parameters["beta"] = beta
                    x = sample_inputs(np.dtype(dtype), count, beta, rng)
                    error, worst = max_error(kernel, x, parameters, np.dtype(working))
                    print(
                        f"{name}\t{np.dtype(dtype).name}\t{beta:g}\t{error:.3f}\t"
                        f"{worst!r}\t{kernel.error_bound}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()

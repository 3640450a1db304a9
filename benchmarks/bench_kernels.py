"""Time correctly rounded evaluation against NumPy's logaddexp and plain rounding.

Run: python benchmarks/bench_kernels.py [--size N] [--repeats R]

For each dtype and function, on N inputs uniform in [-20, 20], it prints the
median time per element of R runs of:

- project: `softplus_cli.activations.evaluate`, correctly rounded;
- fast path only: the kernel in the working dtype, rounded once, with no check
  of the rounding (what "float64, then round" costs);
- numpy: `np.logaddexp(0, x)` (softplus) or 1 / (1 + exp(-x)) (sigmoid) in the
  dtype itself;

the share of inputs whose rounding the fast path left undecided, and the share
that the project settled in mpmath after the double-double stage. All baselines
run in the same process, interleaved with the project's runs.

A second table gives the median time of one call of the double-double stage
(`Kernel.refine`, then `doubledouble.round_refined`) on the first 50, 200 and
1,000 float64 inputs that the fast path left undecided, for each function and
derivative. The stage runs once per block of input, and its cost is mostly
the number of NumPy calls, whatever the number of elements.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from softplus_cli.activations import (
    ACTIVATIONS,
    default_parameters,
    evaluate,
    refine_undecided,
)
from softplus_cli.doubledouble import round_refined
from softplus_cli.dtypes import resolve_dtype, working_dtype
from softplus_cli.rounding import round_decided

REFINE_SIZES = (50, 200, 1000)


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def numpy_baseline(name: str, x: np.ndarray) -> np.ndarray:
    work = (
        x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype != np.float16 else x
    )
    with np.errstate(all="ignore"):
        if name == "softplus":
            return np.logaddexp(work.dtype.type(0), work)
        return 1 / (1 + np.exp(-work))


def time_double_double_calls(uniform: np.ndarray, repeats: int) -> None:
    parameters = default_parameters()
    print("\nfunction\t" + "\t".join(f"us per call, {n}" for n in REFINE_SIZES))
    for name, activation in ACTIVATIONS.items():
        for kernel, suffix in ((activation.value, ""), (activation.derivative, "'")):
            if kernel.refine is None:
                continue
            working = working_dtype(uniform.dtype)
            with np.errstate(all="ignore"):
                approx = kernel.approx(uniform.astype(working), parameters)
            bound = (kernel.bound_for(working) + 1) * float(np.finfo(working).eps)
            _, undecided = round_decided(approx, bound, uniform.dtype)
            inputs = uniform[undecided]
            times = []
            for size in REFINE_SIZES:
                x = inputs[:size]

                def call(kernel=kernel, x=x):
                    with np.errstate(all="ignore"):
                        return round_refined(kernel.refine(x, parameters))

                call()
                median = median_time(call, repeats * 20)
                times.append(f"{median * 1e6:.0f}" if x.size == size else "-")
            print(f"{name}{suffix}\t" + "\t".join(times), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()

    rng = np.random.default_rng(0)
    uniform = rng.uniform(-20, 20, size=arguments.size)
    parameters = default_parameters()
    print(
        "dtype\tfunction\tproject ns\tfast path ns\tnumpy ns\t"
        "undecided by the fast path\tto mpmath"
    )
    for dtype_name in ("float16", "bfloat16", "float32", "float64"):
        dtype = resolve_dtype(dtype_name)
        x = uniform.astype(dtype)
        working = working_dtype(dtype)
        for name in ("softplus", "sigmoid"):
            activation = ACTIVATIONS[name]
            kernel = activation.value

            def project(activation=activation, x=x):
                return evaluate(activation, x, parameters)

            def fast_path(kernel=kernel, x=x, working=working, dtype=dtype):
                with np.errstate(all="ignore"):
                    return kernel.approx(x.astype(working), parameters).astype(dtype)

            def numpy_only(name=name, x=x):
                return numpy_baseline(name, x)

            timings = {"project": [], "fast": [], "numpy": []}
            for _ in range(arguments.repeats):
                timings["project"].append(median_time(project, 1))
                timings["fast"].append(median_time(fast_path, 1))
                timings["numpy"].append(median_time(numpy_only, 1))
            with np.errstate(all="ignore"):
                approx = kernel.approx(x.astype(working), parameters)
            bound = (kernel.bound_for(working) + 1) * float(np.finfo(working).eps)
            rounded, undecided = round_decided(approx, bound, dtype)
            fast_share = undecided.mean()
            refine_undecided(kernel, x, parameters, rounded, undecided)
            per_element = {
                key: statistics.median(values) / x.size * 1e9
                for key, values in timings.items()
            }
            print(
                f"{dtype_name}\t{name}\t{per_element['project']:.1f}\t"
                f"{per_element['fast']:.1f}\t{per_element['numpy']:.1f}\t"
                f"{fast_share:.3%}\t{undecided.mean():.4%}",
                flush=True,
            )
    time_double_double_calls(uniform, arguments.repeats)


if __name__ == "__main__":
    main()

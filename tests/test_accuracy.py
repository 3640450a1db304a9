"""Correct rounding of every function and derivative, against mpmath.

The reference (tests/mp_reference.py) evaluates each function in mpmath at 200
bits and rounds it to the dtype by integer arithmetic, independently of
softplus_cli.rounding. A result passes only if it equals that reference
exactly: correct rounding leaves no tolerance.

float16 and bfloat16 are checked at every input. float32 is checked at random
mantissas in every binade, and next to the known hard cases: the inputs at
which computing in float64 and rounding once gives the wrong float32. float64
is checked at random inputs and at the points where the functions change
behaviour.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from softplus_cli import doubledouble, rounding
from softplus_cli.activations import (
    ACTIVATIONS,
    InvalidParameterError,
    check_parameters,
    default_parameters,
    evaluate,
    refine_undecided,
)
from softplus_cli.dtypes import resolve_dtype, working_dtype
from softplus_cli.rounding import round_decided
from tests import mp_reference

TRANSCENDENTAL = [
    ("softplus", False),
    ("softplus", True),
    ("sigmoid", False),
    ("sigmoid", True),
]


def load_hard_cases() -> dict[tuple[str, bool], list[int]]:
    """Return the float32 inputs, as bit patterns, at which the float64 kernel
    rounded once to float32 is wrong. benchmarks/accuracy_sweep.py found them,
    and the file records how many of the 2**32 inputs it had swept."""
    path = pathlib.Path(__file__).parent / "data" / "float32_hard_cases.json"
    bits = json.loads(path.read_text())["bits"]
    return {
        (key.rstrip("'"), key.endswith("'")): patterns
        for key, patterns in bits.items()
        if patterns
    }


FLOAT32_HARD_CASES = load_hard_cases()


def parameters(**changes: float | None) -> dict[str, float | None]:
    values = default_parameters()
    values.update(changes)
    return values


def all_values(dtype: np.dtype) -> np.ndarray:
    bits = np.arange(1 << (8 * dtype.itemsize), dtype=np.uint64)
    return bits.astype(f"u{dtype.itemsize}").view(dtype)


def as_floats(x: np.ndarray) -> list[float]:
    # ml_dtypes warns when it casts a bfloat16 NaN to float64.
    with np.errstate(invalid="ignore"):
        return x.astype(np.float64).tolist()


@functools.cache
def cached_references(
    dtype_name: str, beta: float
) -> tuple[np.ndarray, dict[tuple[str, bool], np.ndarray]]:
    """Return every value of a 16-bit dtype and the references there."""
    dtype = resolve_dtype(dtype_name)
    x = all_values(dtype)
    return x, mp_reference.references(x, dtype, beta)


def expected_values(
    name: str, derivative: bool, x: np.ndarray, dtype: np.dtype, beta: float = 1.0
) -> np.ndarray:
    return mp_reference.references(x, dtype, beta)[(name, derivative)]


def mismatches(x: np.ndarray, result: np.ndarray, expected: np.ndarray) -> list[str]:
    """Describe up to five inputs whose result differs from the reference."""
    got = result.astype(np.float64)
    wrong = ~((got == expected) | (np.isnan(got) & np.isnan(expected)))
    return [
        f"x={float(x[i])!r}: got {float(got[i])!r}, expected {float(expected[i])!r}"
        for i in np.flatnonzero(wrong)[:5]
    ] + ([f"... {int(wrong.sum())} in all"] if wrong.sum() > 5 else [])


# --- every float16 and bfloat16 input -----------------------------------------


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize(("name", "derivative"), TRANSCENDENTAL)
def test_exhaustive_16_bit(dtype_name: str, name: str, derivative: bool) -> None:
    x, expected = cached_references(dtype_name, 1.0)
    result = evaluate(ACTIVATIONS[name], x, parameters(), derivative=derivative)
    assert mismatches(x, result, expected[(name, derivative)]) == []


@pytest.mark.parametrize(
    ("dtype_name", "beta", "threshold"),
    [("float16", 10.0, None), ("bfloat16", 1e-3, None), ("float16", 0.5, 4.0)],
)
@pytest.mark.parametrize("derivative", [False, True])
def test_exhaustive_16_bit_beta(
    dtype_name: str, beta: float, threshold: float | None, derivative: bool
) -> None:
    x, references = cached_references(dtype_name, beta)
    settings = parameters(beta=beta, threshold=threshold)
    result = evaluate(ACTIVATIONS["softplus"], x, settings, derivative=derivative)
    expected = references[("softplus", derivative)]
    if threshold is not None:
        # PyTorch's threshold: x itself (derivative 1) where beta*x > threshold,
        # with beta*x compared exactly.
        linear = np.array(
            [
                math.isfinite(value)
                and mpmath.mpf(value) * beta > threshold
                or value == math.inf
                for value in as_floats(x)
            ]
        )
        expected = np.where(
            linear, 1.0 if derivative else x.astype(np.float64), expected
        )
    assert mismatches(x, result, expected) == []


RELU_SETTINGS = [
    {},
    {"negative_slope": 0.1, "max_value": 6.0},
    {"negative_slope": -3.0, "relu_threshold": 0.3},
]


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("settings", RELU_SETTINGS)
@pytest.mark.parametrize("derivative", [False, True])
def test_exhaustive_relu(dtype_name: str, settings: dict, derivative: bool) -> None:
    dtype = resolve_dtype(dtype_name)
    x = all_values(dtype)
    result = evaluate(
        ACTIVATIONS["relu"], x, parameters(**settings), derivative=derivative
    )
    expected = np.array(
        [
            mp_reference.relu_reference(
                derivative,
                value,
                dtype,
                settings.get("negative_slope", 0.0),
                settings.get("max_value"),
                settings.get("relu_threshold", 0.0),
            )
            for value in as_floats(x)
        ]
    )
    assert mismatches(x, result, expected) == []


# --- float32 -----------------------------------------------------------------


def float32_binade_sample(per_binade: int, seed: int) -> np.ndarray:
    """Return the first, last and `per_binade` random values of every float32
    binade (subnormals as one binade), both signs."""
    rng = np.random.default_rng(seed)
    exponents = np.repeat(np.arange(255, dtype=np.uint32), per_binade + 2)
    mantissas = rng.integers(0, 1 << 23, size=exponents.size, dtype=np.uint32)
    mantissas[:: per_binade + 2] = 0
    mantissas[1 :: per_binade + 2] = (1 << 23) - 1
    positive = (exponents << 23) | mantissas
    bits = np.concatenate([positive, positive | np.uint32(1 << 31)])
    return bits.view(np.float32)


@pytest.mark.parametrize(("name", "derivative"), TRANSCENDENTAL)
def test_float32_every_binade(name: str, derivative: bool) -> None:
    x = float32_binade_sample(per_binade=12, seed=1)
    result = evaluate(ACTIVATIONS[name], x, parameters(), derivative=derivative)
    expected = expected_values(name, derivative, x, np.dtype(np.float32))
    assert mismatches(x, result, expected) == []


@pytest.mark.parametrize("beta", [0.5, 10.0, 1e-3, 1e6])
@pytest.mark.parametrize("derivative", [False, True])
def test_float32_beta_sample(beta: float, derivative: bool) -> None:
    rng = np.random.default_rng(7)
    # Uniform in the range where ln(1 + e^(beta*x)) is neither 0 nor beta*x.
    x = (rng.uniform(-110, 20, size=1500) / beta).astype(np.float32)
    x = np.concatenate([x, float32_binade_sample(per_binade=1, seed=2)])
    settings = parameters(beta=beta)
    result = evaluate(ACTIVATIONS["softplus"], x, settings, derivative=derivative)
    expected = expected_values("softplus", derivative, x, np.dtype(np.float32), beta)
    assert mismatches(x, result, expected) == []


def neighbours(bits: list[int], reach: int) -> np.ndarray:
    """Return the float32 values within `reach` steps of each bit pattern."""
    offsets = np.arange(-reach, reach + 1, dtype=np.int64)
    patterns = (np.array(bits, dtype=np.int64)[:, None] + offsets).ravel()
    return np.unique(patterns.astype(np.uint32)).view(np.float32)


@pytest.mark.parametrize(("name", "derivative"), sorted(FLOAT32_HARD_CASES))
def test_float32_hard_cases(name: str, derivative: bool) -> None:
    hard = FLOAT32_HARD_CASES[(name, derivative)]
    x = neighbours(hard, reach=16)
    result = evaluate(ACTIVATIONS[name], x, parameters(), derivative=derivative)
    expected = expected_values(name, derivative, x, np.dtype(np.float32))
    assert mismatches(x, result, expected) == []


@pytest.mark.parametrize(("name", "derivative"), sorted(FLOAT32_HARD_CASES))
def test_float32_hard_cases_need_settling(name: str, derivative: bool) -> None:
    # Plain float64 evaluation rounded once is wrong at each hard case, so the
    # test above exercises the mpmath settlement, not only the fast path.
    hard = np.array(FLOAT32_HARD_CASES[(name, derivative)], dtype=np.uint32)
    x = hard.view(np.float32)
    kernel = ACTIVATIONS[name].derivative if derivative else ACTIVATIONS[name].value
    naive = kernel.approx(x.astype(np.float64), parameters()).astype(np.float32)
    expected = expected_values(name, derivative, x, np.dtype(np.float32))
    assert (naive.astype(np.float64) != expected).all()


# --- float64 -----------------------------------------------------------------

# Points where the functions change behaviour in float64: the switch at 0, where
# softplus(x) rounds to x (33.27), exp overflows (709.78), softplus becomes
# subnormal (-708.40) and rounds to 0 (-745.13), sigmoid rounds to 1 (37.43).
FLOAT64_EDGES = [0.0, 33.266, 709.78, -708.40, -745.13, 37.429948, 36.0, -37.0, 1e-300]


def float64_sample(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 1 << 64, size=count, dtype=np.uint64, endpoint=False)
    random_bits = bits.view(np.float64)
    random_bits = random_bits[np.isfinite(random_bits)]
    uniform = rng.uniform(-760, 760, size=count)
    near_edges = [
        np.array(edge) * (1 + rng.uniform(-1e-3, 1e-3, size=count // 20))
        for edge in FLOAT64_EDGES
    ]
    return np.concatenate([random_bits, uniform, *near_edges, [-0.0, 5e-324, -5e-324]])


@pytest.mark.parametrize(("name", "derivative"), TRANSCENDENTAL)
def test_float64_sample(name: str, derivative: bool) -> None:
    x = float64_sample(seed=3, count=600)
    result = evaluate(ACTIVATIONS[name], x, parameters(), derivative=derivative)
    expected = expected_values(name, derivative, x, np.dtype(np.float64))
    assert mismatches(x, result, expected) == []


@pytest.mark.parametrize("beta", [0.5, 10.0, 1e-3, 1e300])
@pytest.mark.parametrize("derivative", [False, True])
def test_float64_beta_sample(beta: float, derivative: bool) -> None:
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-760, 40, size=500) / beta, float64_sample(4, 60)])
    settings = parameters(beta=beta)
    result = evaluate(ACTIVATIONS["softplus"], x, settings, derivative=derivative)
    expected = expected_values("softplus", derivative, x, np.dtype(np.float64), beta)
    assert mismatches(x, result, expected) == []


# --- the kernels' error bounds -------------------------------------------------


def relative_error_in_eps(
    kernel, x: np.ndarray, settings: dict, working: np.dtype
) -> float:
    """Return the max relative error of `kernel.approx` against mpmath, in eps,
    over inputs whose exact value the target dtype does not flush to 0."""
    with np.errstate(all="ignore"):
        approx = kernel.approx(x.astype(working), settings)
    eps = mpmath.mpf(float(np.finfo(working).eps))
    negligible = mpmath.mpf(float(np.finfo(x.dtype).smallest_subnormal)) / 4
    worst = mpmath.mpf(0)
    with mpmath.workprec(mp_reference.REFERENCE_BITS):
        for value, result in zip(x.tolist(), approx, strict=True):
            exact = kernel.exact(mpmath.mpf(value), settings)
            mantissa, exponent = np.frexp(result)
            high = float(mantissa)
            low = float(mantissa - type(mantissa)(high))
            got = mpmath.ldexp(mpmath.mpf(high) + mpmath.mpf(low), int(exponent))
            if abs(exact) < negligible:
                assert abs(got) < 2 * negligible
                continue
            worst = max(worst, abs(got - exact) / abs(exact) / eps)
    return float(worst)


KERNEL_SETTINGS = [
    (name, derivative, beta)
    for name, derivative in TRANSCENDENTAL
    for beta in ([1.0, 10.0, 1e-3] if name == "softplus" else [1.0])
]


@pytest.mark.parametrize(("name", "derivative", "beta"), KERNEL_SETTINGS)
@pytest.mark.parametrize("target_name", ["float32", "float64"])
def test_kernel_error_within_bound(
    name: str, derivative: bool, target_name: str, beta: float
) -> None:
    target = np.dtype(target_name)
    working = working_dtype(target)
    rng = np.random.default_rng(5)
    x = (rng.uniform(-120, 40, size=800) / beta).astype(target)
    activation = ACTIVATIONS[name]
    kernel = activation.derivative if derivative else activation.value
    error = relative_error_in_eps(kernel, x, parameters(beta=beta), working)
    bound = kernel.bound_for(working)
    # The measured error stays well inside the bound, which adds a margin for
    # the error of the libraries' exp and log1p on inputs not sampled here.
    assert error <= bound / 2


# --- values that other implementations get wrong --------------------------------

# (function, derivative, dtype, x, parameters, correctly rounded value as text)
KNOWN_VALUES = [
    ("softplus", False, "float32", -20.0, {}, "2.0611537e-09"),
    ("softplus", False, "float32", -1.0, {}, "0.3132617"),
    ("softplus", False, "float32", 0.0, {}, "0.6931472"),
    ("softplus", False, "float32", 1.0, {}, "1.3132616"),
    ("softplus", False, "float32", 20.0, {}, "20.0"),
    ("softplus", False, "float32", 0.1, {}, "0.7443967"),
    ("softplus", False, "float32", -12.3392, {}, "4.376758e-06"),
    ("softplus", True, "float32", 0.0, {}, "0.5"),
    ("sigmoid", True, "float64", 37.42994775023705, {}, "5.551115123125775e-17"),
    ("sigmoid", True, "float64", 40.0, {}, "4.248354255291589e-18"),
    ("sigmoid", True, "float32", 17.0, {}, "4.1399375e-08"),
    ("sigmoid", True, "float32", -548.3162, {}, "0.0"),
    ("relu", True, "float32", 0.0, {}, "0.0"),
    ("relu", True, "float16", 0.0, {}, "0.0"),
    ("softplus", False, "float64", 20.1, {}, "20.10000000186501"),
    ("softplus", False, "float64", 25.0, {}, "25.000000000013888"),
    ("softplus", False, "float16", 11.0, {}, "11.0"),
    ("softplus", False, "float16", 1000.0, {}, "1000.0"),
    ("softplus", False, "float64", 1000.0, {}, "1000.0"),
    ("softplus", False, "float64", 1e10, {}, "10000000000.0"),
    ("softplus", False, "float64", -1e10, {}, "0.0"),
    ("softplus", False, "float32", 0.05, {"beta": 10.0}, "0.0974077"),
    ("softplus", False, "float32", 0.05, {"beta": 10.0, "threshold": 0.4}, "0.05"),
    ("sigmoid", False, "float32", 6.0, {}, "0.99752736"),
]


@pytest.mark.parametrize(
    ("name", "derivative", "dtype_name", "x", "settings", "text"), KNOWN_VALUES
)
def test_known_value(
    name: str, derivative: bool, dtype_name: str, x: float, settings: dict, text: str
) -> None:
    dtype = resolve_dtype(dtype_name)
    point = np.array([x]).astype(dtype)
    with np.errstate(all="raise"):
        result = evaluate(
            ACTIVATIONS[name], point, parameters(**settings), derivative=derivative
        )
    assert result[0] == np.array([float(text)]).astype(dtype)[0]
    if name != "relu" and "threshold" not in settings:
        beta = settings.get("beta", 1.0)
        expected = mp_reference.reference(
            name, derivative, float(point[0]), dtype, beta
        )
        assert float(result[0]) == expected


@pytest.mark.parametrize("beta", [0.0, -1.0, math.inf, math.nan])
def test_beta_out_of_range_rejected(beta: float) -> None:
    with pytest.raises(InvalidParameterError, match="--beta"):
        check_parameters(parameters(beta=beta))


# --- special inputs and results -----------------------------------------------


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64"])
def test_special_inputs(dtype_name: str) -> None:
    dtype = resolve_dtype(dtype_name)
    x = np.array([np.inf, -np.inf, np.nan, -0.0], dtype=np.float64).astype(dtype)
    values = {
        (name, derivative): evaluate(
            ACTIVATIONS[name], x, parameters(), derivative=derivative
        )
        for name in ACTIVATIONS
        for derivative in (False, True)
    }
    expected = {
        ("softplus", False): [np.inf, 0.0, np.nan, math.log(2)],
        ("softplus", True): [1.0, 0.0, np.nan, 0.5],
        ("sigmoid", False): [1.0, 0.0, np.nan, 0.5],
        ("sigmoid", True): [0.0, 0.0, np.nan, 0.25],
        ("relu", False): [np.inf, 0.0, np.nan, 0.0],
        ("relu", True): [1.0, 0.0, np.nan, 0.0],
    }
    for key, wanted in expected.items():
        got = values[key].astype(np.float64)
        want = np.array(wanted).astype(dtype).astype(np.float64)
        np.testing.assert_array_equal(got, want, err_msg=str(key))
        # Results of 0 are +0.0: every function here is 0 only as a limit.
        assert not np.signbit(got[got == 0]).any(), key


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64"])
def test_subnormal_results(dtype_name: str) -> None:
    # softplus(x) ≈ e^x is subnormal just below ln(smallest normal): every result
    # from there down to where it rounds to 0 must be correctly rounded.
    dtype = resolve_dtype(dtype_name)
    finfo = np.finfo(dtype)
    top = math.log(float(finfo.smallest_normal))
    bottom = math.log(float(finfo.smallest_subnormal)) - 1
    x = np.linspace(bottom, top + 0.5, 400).astype(dtype)
    result = evaluate(ACTIVATIONS["softplus"], x, parameters())
    expected = expected_values("softplus", False, x, dtype)
    assert mismatches(x, result, expected) == []
    tiny = float(finfo.smallest_normal)
    assert ((result.astype(np.float64) > 0) & (result.astype(np.float64) < tiny)).any()


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64"])
def test_beta_times_x_overflowing(dtype_name: str) -> None:
    dtype = resolve_dtype(dtype_name)
    big = float(np.finfo(dtype).max)
    x = np.array([big, -big, 1.0, -1.0]).astype(dtype)
    settings = parameters(beta=1e308)
    with np.errstate(all="raise"):
        value = evaluate(ACTIVATIONS["softplus"], x, settings)
        slope = evaluate(ACTIVATIONS["softplus"], x, settings, derivative=True)
    # ln(1 + e^(beta*x))/beta is x for large beta*x, and e^(beta*x)/beta (far
    # below any subnormal) for very negative beta*x.
    np.testing.assert_array_equal(value.astype(np.float64), [big, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(slope.astype(np.float64), [1.0, 0.0, 1.0, 0.0])


def test_threshold_compares_beta_times_x() -> None:
    # float32(0.04) is 0.0399999991..., so beta*x = 0.399999991... is below
    # the threshold 0.4 and the smooth value applies; one float32 step up,
    # beta*x = 0.4000000283... is above it and x itself applies.
    below = np.float32(0.04)
    above = np.nextafter(below, np.float32(1))
    x = np.array([above, below], dtype=np.float32)
    settings = parameters(beta=10.0, threshold=0.4)
    result = evaluate(ACTIVATIONS["softplus"], x, settings)
    assert result[0] == above
    expected = mp_reference.reference(
        "softplus", False, float(below), np.dtype(np.float32), 10.0
    )
    assert float(result[1]) == expected


# --- the double-double stage for float64 results --------------------------------


# The double-double stage takes e^-|z| from a table of 2^(-j/N) and ln(1 + e)
# from the nearest multiple of ln2/N.
TABLE_SIZE = 2048
TABLE_STEP = math.log(2) / TABLE_SIZE
MAX_INPUT = doubledouble.MAX_INPUT
# Beyond |z| = 128 ln2, where e < 1.01 * 2**-128, the stage takes ln(1 + e) as e.
TINY_E_INPUT = 128 * math.log(2)


def exp_table_edges(rng: np.random.Generator) -> np.ndarray:
    """Return |z| = (k + 1/2) ln2/N, give or take 1e-12 relatively, where
    e^-|z| moves from one table entry to the next: random k, and k just below
    and at a multiple of N, where the power of 2 changes."""
    last = int(MAX_INPUT / TABLE_STEP)
    k = np.concatenate(
        [
            rng.integers(0, last, 200),
            TABLE_SIZE * rng.integers(1, last // TABLE_SIZE, 100) - 1,
            TABLE_SIZE * rng.integers(0, last // TABLE_SIZE, 100),
        ]
    )
    return (k + 0.5) * TABLE_STEP * (1 + rng.uniform(-1e-12, 1e-12, k.size))


def log_table_edges(rng: np.random.Generator) -> np.ndarray:
    """Return |z| with ln(1 + e^-|z|) = (kk + 1/2) ln2/N, give or take 1e-9
    relatively, where the nearest multiple of ln2/N changes. From kk = 0 to 1,
    ln(1 + e) changes from the series in e alone to a table entry and a series;
    kk = N - 1 is near z = 0."""
    kk = np.concatenate(
        [
            np.repeat(np.arange(4), 25),
            np.arange(TABLE_SIZE - 4, TABLE_SIZE),
            rng.integers(0, TABLE_SIZE, 100),
        ]
    )
    z = -np.log(np.expm1((kk + 0.5) * TABLE_STEP))
    return z * (1 + rng.uniform(-1e-9, 1e-9, kk.size))


def double_double_inputs() -> np.ndarray:
    rng = np.random.default_rng(13)
    tiny = rng.uniform(-1, 1, 300) * 10.0 ** rng.uniform(-300, 0, 300)
    table_edges = np.concatenate([exp_table_edges(rng), log_table_edges(rng)])
    signs = rng.choice([-1.0, 1.0], table_edges.size)
    tiny_e_edges = TINY_E_INPUT * (1 + rng.uniform(-1e-6, 1e-6, 50))
    edges = [
        *[0.0, -0.0, MAX_INPUT, -MAX_INPUT, np.nextafter(MAX_INPUT, 0)],
        *[650.0, -650.0, 2.0**-899, -(2.0**-899)],
    ]
    return np.concatenate(
        [
            rng.uniform(-MAX_INPUT, MAX_INPUT, 600),
            rng.uniform(-30, 30, 600),
            tiny,
            signs * table_edges,
            -tiny_e_edges,
            edges,
        ]
    )


DOUBLE_DOUBLE_SETTINGS = [
    (name, derivative, beta)
    for name, derivative in TRANSCENDENTAL
    for beta in ([1.0, 0.1, 10.0, 1e-3] if name == "softplus" else [1.0])
]


def relative_error(
    high: float, low: float, exact: mpmath.mpf, exponent: int = 0
) -> mpmath.mpf:
    value = mpmath.ldexp(mpmath.mpf(high) + mpmath.mpf(low), exponent)
    return abs(value - exact) / exact


@pytest.mark.parametrize(("name", "derivative", "beta"), DOUBLE_DOUBLE_SETTINGS)
def test_double_double_error_bound(name: str, derivative: bool, beta: float) -> None:
    x = double_double_inputs() / beta
    high, low, exponent = doubledouble.refine(name, derivative, x, beta)
    assert np.isfinite(high).mean() > 0.9
    worst = mpmath.mpf(0)
    with mpmath.workprec(mp_reference.REFERENCE_BITS):
        for index, value in enumerate(x.tolist()):
            if not np.isfinite(high[index]):
                continue
            exact = mp_reference.exact_value(name, derivative, value, beta)
            error = relative_error(
                float(high[index]), float(low[index]), exact, int(exponent[index])
            )
            worst = max(worst, error)
    # The analysis in softplus_cli/doubledouble.py gives 2**-87.4 at worst; the
    # bound in use, RELATIVE_BOUND, is 2**-80.
    assert worst <= 2.0**-87


def test_double_double_exp_error_bound() -> None:
    rng = np.random.default_rng(14)
    t = -np.concatenate(
        [
            exp_table_edges(rng),
            rng.uniform(0, MAX_INPUT, 300),
            [0.0, 650.0, 745.2, MAX_INPUT, 1e-300],
        ]
    )
    # Up to half an ulp of t, as the low part of beta*x can be.
    t_low = np.spacing(t) * rng.uniform(-0.5, 0.5, t.size)
    worst = {"without t_low": mpmath.mpf(0), "with t_low": mpmath.mpf(0)}
    with mpmath.workprec(mp_reference.REFERENCE_BITS):
        for key, low_parts in [("without t_low", None), ("with t_low", t_low)]:
            high, low, exponent = doubledouble.exp_nonpositive(t, low_parts)
            # The pair stays near 1, apart from its power of 2.
            assert (high >= 0.49).all()
            assert (high <= 1.01).all()
            for index, value in enumerate(t.tolist()):
                argument = mpmath.mpf(value)
                if low_parts is not None:
                    argument += mpmath.mpf(float(low_parts[index]))
                error = relative_error(
                    float(high[index]),
                    float(low[index]),
                    mpmath.exp(argument),
                    int(exponent[index]),
                )
                worst[key] = max(worst[key], error)
    # The analysis gives 2**-89.8 for both.
    assert worst["without t_low"] <= 2.0**-89.8
    assert worst["with t_low"] <= 2.0**-89.8


def test_double_double_log1p_error_bound() -> None:
    rng = np.random.default_rng(15)
    e_high = np.concatenate(
        [
            np.exp(-log_table_edges(rng)),
            rng.uniform(0, 1, 300),
            2.0 ** rng.uniform(-937, -12, 200),
            [1.0, 0.5, 2.0**-937],
        ]
    )
    e_low = np.spacing(e_high) * rng.uniform(-0.5, 0.5, e_high.size)
    e_low[e_high == 1.0] = -abs(e_low[e_high == 1.0])
    high, low = doubledouble.log1p_unit((e_high, e_low))
    worst = mpmath.mpf(0)
    with mpmath.workprec(mp_reference.REFERENCE_BITS):
        for index, value in enumerate(e_high.tolist()):
            e = mpmath.mpf(value) + mpmath.mpf(float(e_low[index]))
            error = relative_error(
                float(high[index]), float(low[index]), mpmath.log1p(e)
            )
            worst = max(worst, error)
    # The analysis gives 2**-88.1 at worst, where ln(1 + e) is near ln2/(2N).
    assert worst <= 2.0**-88.1


def test_double_double_table_matches_mpmath() -> None:
    table = doubledouble._table()
    scale_high, scale_low, split_high, split_low, log_high, log_low = table
    assert table.shape == (6, TABLE_SIZE + 1)
    # Each pair is a normalized double-double.
    assert (np.abs(scale_low) <= np.spacing(scale_high) / 2).all()
    assert (np.abs(log_low[1:]) <= np.spacing(log_high[1:]) / 2).all()
    # The split halves add up to the high part and have at most 26 significant
    # bits each, so that their products are exact.
    np.testing.assert_array_equal(split_high + split_low, scale_high)
    for half in (split_high, split_low):
        mantissas, _ = np.frexp(half)
        scaled = np.ldexp(mantissas, 26)
        np.testing.assert_array_equal(scaled, np.rint(scaled))
    with mpmath.workprec(mp_reference.REFERENCE_BITS):
        step = mpmath.log(2) / TABLE_SIZE
        for j in range(TABLE_SIZE + 1):
            scale = mpmath.power(2, mpmath.mpf(-j) / TABLE_SIZE)
            error = relative_error(float(scale_high[j]), float(scale_low[j]), scale)
            assert error <= 2.0**-106, f"2**(-{j}/N)"
            if j == 0:
                assert log_high[j] == 0.0
                assert log_low[j] == 0.0
                continue
            error = relative_error(float(log_high[j]), float(log_low[j]), j * step)
            assert error <= 2.0**-106, f"{j} ln2/N"


@pytest.mark.parametrize("beta", [1e-300, 1e300])
def test_double_double_declines_extreme_beta(beta: float) -> None:
    x = np.array([1.0, -1.0, 0.0]) / beta
    high, low, _ = doubledouble.refine("softplus", False, x, beta)
    assert np.isnan(high).all()
    assert np.isnan(low).all()


@pytest.mark.parametrize(
    ("name", "derivative", "settings"),
    [
        *[(name, derivative, {}) for name, derivative in TRANSCENDENTAL],
        ("softplus", False, {"beta": 10.0, "threshold": 20.0}),
        ("softplus", True, {"beta": 0.1}),
    ],
)
def test_double_double_settles_float64(
    name: str, derivative: bool, settings: dict
) -> None:
    rng = np.random.default_rng(17)
    x = rng.uniform(-40, 40, 100_000) / settings.get("beta", 1.0)
    activation = ACTIVATIONS[name]
    kernel = activation.derivative if derivative else activation.value
    working = working_dtype(x.dtype)
    values = parameters(**settings)
    approx = kernel.approx(x.astype(working), values)
    bound = (kernel.bound_for(working) + 1) * float(np.finfo(working).eps)
    rounded, undecided = round_decided(approx, bound, x.dtype)
    assert undecided.sum() > 500
    refined = rounded.copy()
    refine_undecided(kernel, x, values, refined, undecided)
    # Everything is decided, and the refined results match mpmath's.
    assert not undecided.any()
    beta = settings.get("beta", 1.0)
    for index in np.flatnonzero(refined != rounded)[:200]:
        point = float(x[index])
        expected = mp_reference.reference(name, derivative, point, x.dtype, beta)
        assert float(refined[index]) == expected


# Settings for |beta*x| beyond 650, where results reach 2**-1022 and below.
TINY_RESULT_SETTINGS = [
    *[(name, derivative, 1.0) for name, derivative in TRANSCENDENTAL],
    ("softplus", False, 0.1),
    ("softplus", False, 10.0),
    ("softplus", False, 2.0**-300),
    ("softplus", True, 0.1),
]


def tiny_result_inputs(name: str, derivative: bool, beta: float) -> np.ndarray:
    """Return x with beta*x across [-745.2, -650] and on to where the result
    falls below 2**-1022, 30 ulps either side of where it reaches 2**-1022, and
    the positive counterparts."""
    rng = np.random.default_rng(23)
    # Where e**z / beta (softplus) or e**z (the others) is 2**-1022.
    with mpmath.workprec(mp_reference.REFERENCE_BITS):
        divisor = beta if (name, derivative) == ("softplus", False) else 1.0
        z = mpmath.log(divisor) - 1022 * mpmath.log(2)
        edge = float(z / beta)
    below_normal = -float(z) + 40.0
    z_sample = np.concatenate(
        [rng.uniform(-745.2, -650, 300), rng.uniform(-below_normal, -650, 100)]
    )
    edges = edge + np.spacing(edge) * np.arange(-30, 31)
    negative = np.concatenate([z_sample / beta, edges])
    return np.concatenate([negative, -negative[::5]])


@pytest.mark.parametrize(("name", "derivative", "beta"), TINY_RESULT_SETTINGS)
def test_double_double_decides_tiny_normal_results(
    name: str, derivative: bool, beta: float
) -> None:
    x = tiny_result_inputs(name, derivative, beta)
    expected = expected_values(name, derivative, x, np.dtype(np.float64), beta)
    normal = expected >= 2.0**-1022
    # Results fall on both sides of 2**-1022, right beside it too.
    assert (expected[normal] < 2.0**-1022 * (1 + 1e-10)).any()
    assert (expected[~normal] > 2.0**-1022 * (1 - 1e-10)).any()

    with np.errstate(all="ignore"):
        refined = doubledouble.refine(name, derivative, x, beta)
        rounded, undecided = doubledouble.round_refined(refined)
    # Every normal result is decided and correct, and every subnormal one
    # (or 0) is left undecided.
    assert not undecided[normal].any()
    assert undecided[~normal].all()
    assert mismatches(x[normal], rounded[normal], expected[normal]) == []

    result = evaluate(
        ACTIVATIONS[name], x, parameters(beta=beta), derivative=derivative
    )
    assert mismatches(x, result, expected) == []


@pytest.mark.parametrize(
    ("name", "derivative", "settings"),
    [
        *[(name, derivative, {}) for name, derivative in TRANSCENDENTAL],
        ("softplus", False, {"beta": 2.0}),
        ("softplus", True, {"beta": 0.5}),
    ],
)
def test_float64_block_settles_nothing_in_mpmath(
    name: str, derivative: bool, settings: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Magnitudes from 1e-8 to 1e3, both signs: some reach |x| > 650, where
    # results are below 5e-283.
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], 40_000) * 10.0 ** rng.uniform(-8, 3, 40_000)
    settled = []
    round_exact = rounding.round_exact

    def counting_round_exact(function, value, dtype):
        settled.append(value)
        return round_exact(function, value, dtype)

    monkeypatch.setattr(rounding, "round_exact", counting_round_exact)
    activation = ACTIVATIONS[name]
    evaluate(activation, x, parameters(**settings), derivative=derivative)
    assert settled == []


def test_softplus_float64_shortcut_matches_mpmath() -> None:
    # The inputs that float64 arithmetic alone decides: |x| <= 2**-8 through
    # a series, and x >= 40, where softplus(x) rounds to x.
    rng = np.random.default_rng(21)
    limit = 2.0**-8
    x = np.concatenate(
        [
            rng.uniform(-limit, limit, 3000),
            rng.choice([-1.0, 1.0], 3000) * 2.0 ** rng.uniform(-1074, -8, 3000),
            [limit, -limit, np.nextafter(limit, 1), 0.0, -0.0, 5e-324, 2.0**-1022],
            rng.uniform(40, 1000, 500),
            [40.0, np.nextafter(40.0, 0), 1e308, np.inf],
        ]
    )
    result = evaluate(ACTIVATIONS["softplus"], x, parameters())
    expected = expected_values("softplus", False, x, np.dtype(np.float64))
    assert mismatches(x, result, expected) == []


def test_softplus_float64_shortcut_decides_nearly_all() -> None:
    from softplus_cli.activations import _softplus_decide_float64

    rng = np.random.default_rng(22)
    x = rng.uniform(-(2.0**-8), 2.0**-8, 100_000)
    shortcut = _softplus_decide_float64(x, parameters())
    assert shortcut is not None
    _, decided = shortcut
    assert decided.mean() > 0.999
    assert decided.mean() < 1.0


@pytest.mark.parametrize(
    "changes", [{"beta": 2.0}, {"threshold": 0.0}, {"threshold": -5.0}]
)
def test_softplus_float64_shortcut_declines(changes: dict) -> None:
    from softplus_cli.activations import _softplus_decide_float64

    assert (
        _softplus_decide_float64(np.array([0.0, 50.0]), parameters(**changes)) is None
    )


def test_softplus_float64_with_threshold_beside_shortcut() -> None:
    # threshold = 1 keeps the shortcut, which must agree with the linear part.
    x = np.array([-1e-4, 1e-4, 0.5, 1.0, np.nextafter(1.0, 2), 41.0])
    result = evaluate(ACTIVATIONS["softplus"], x, parameters(threshold=1.0))
    assert result[-2] == x[-2]
    assert result[-1] == x[-1]
    expected = expected_values("softplus", False, x[:4], np.dtype(np.float64))
    assert mismatches(x[:4], result[:4], expected) == []


def _exact(value: np.longdouble) -> Fraction:
    """Return a long double of magnitude at least 2**-958 exactly, from its
    float64 head and tail."""
    head = np.float64(value)
    return Fraction(float(head)) + Fraction(
        float(np.float64(value - np.longdouble(head)))
    )


def _wide_sample(seed: int) -> np.ndarray:
    """Long double values near float64 values of every kind: ordinary, near
    midpoints, powers of two, subnormal, the largest finite and beyond."""
    rng = np.random.default_rng(seed)
    wide = np.longdouble
    base = np.concatenate(
        [
            rng.choice([-1.0, 1.0], 4000) * 2.0 ** rng.uniform(-1074, 1023, 4000),
            2.0 ** np.arange(-1074, 1024, 7, dtype=np.float64),
            [0.0, -0.0, 5e-324, np.finfo(np.float64).max, np.inf, -np.inf, np.nan],
        ]
    ).astype(wide)
    spacing = np.abs(base) * wide(2.0**-53)
    # Offsets of up to about an ulp, including exact midpoints.
    fractions = rng.choice([-0.5, 0.5, 0.25, -0.499, 0.501, 0.0, 1e-3], base.shape)
    with np.errstate(invalid="ignore"):
        # inf * 0 is NaN, and inf - inf is: those elements are NaN, as wanted.
        return base + spacing * fractions.astype(wide)


@pytest.mark.skipif(
    np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant,
    reason="numpy.longdouble is float64 here",
)
@pytest.mark.parametrize("relative_error", [9 * 2.0**-64, 2.0**-60, 2.0**-63])
def test_float64_rounding_test_is_sound(relative_error: float) -> None:
    from softplus_cli.rounding import _round_decided_by_casts

    approx = _wide_sample(seed=int(relative_error * 2**70) % 1000)
    rounded, undecided = round_decided(approx, relative_error, np.dtype(np.float64))
    general, general_undecided = _round_decided_by_casts(
        approx, relative_error, np.dtype(np.float64)
    )
    same = (rounded == general) | (np.isnan(rounded) & np.isnan(general))
    assert same.all()
    # Every decided result in the range that float64 arithmetic tests: the
    # exact error interval lies strictly between the midpoints next to the
    # rounded value. The rest take the general test, compared above.
    magnitude = np.abs(rounded)
    ordinary = (magnitude >= 2.0**-958) & (magnitude < np.finfo(np.float64).max)
    wrong = []
    for index in np.flatnonzero(~undecided & ordinary):
        value = _exact(approx[index])
        radius = abs(value) * Fraction(relative_error)
        centre = Fraction(float(rounded[index]))
        below = Fraction(float(np.nextafter(rounded[index], -np.inf)))
        above = Fraction(float(np.nextafter(rounded[index], np.inf)))
        low_midpoint = (centre + below) / 2
        high_midpoint = (centre + above) / 2
        inside = low_midpoint < value - radius and value + radius < high_midpoint
        if not inside:
            wrong.append(repr(approx[index]))
    assert wrong == []
    # On offsets spread evenly over an ulp, it decides about as many as the
    # general test, which rounds the ends of each interval itself.
    rng = np.random.default_rng(5)
    base = rng.uniform(0.5, 1000, 100_000)
    offsets = rng.uniform(-0.5, 0.5, base.shape) * np.spacing(base)
    spread = base.astype(np.longdouble) + offsets.astype(np.longdouble)
    _, spread_undecided = round_decided(spread, relative_error, np.dtype(np.float64))
    _, spread_general = _round_decided_by_casts(
        spread, relative_error, np.dtype(np.float64)
    )
    assert spread_undecided.sum() <= 1.1 * spread_general.sum() + 5

"""Known cases, each checked against its documented value and mpmath.

Each reference is the exact function evaluated by mpmath at 60 digits and rounded
once to the dtype (tests/reference.py).
"""

import warnings

import numpy as np
import pytest

from softplus_cli.activations import (
    ACTIVATIONS,
    InvalidParameterError,
    check_parameters,
    default_parameters,
    evaluate,
)
from softplus_cli.dtypes import DTYPE_NAMES, resolve_dtype

from . import reference


def run(name, xs, dtype="float32", derivative=False, **overrides):
    parameters = default_parameters()
    parameters.update(overrides)
    x = np.array(xs, dtype=resolve_dtype(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return evaluate(ACTIVATIONS[name], x, parameters, derivative=derivative)


def test_softplus_keras_documented_values():
    result = run("softplus", [-20, -1, 0, 1, 20])
    text = np.array2string(result, separator=", ", max_line_width=200)
    assert text == (
        "[2.0611537e-09, 3.1326169e-01, 6.9314718e-01, 1.3132616e+00, 2.0000000e+01]"
    )


@pytest.mark.parametrize("x", [-20, -1, 0, 1, 20])
def test_softplus_keras_values_match_mpmath(x):
    # mpmath: log1p(exp(x)) at 60 digits, rounded to float32.
    expected = reference.reference(reference.softplus, x, np.float32)
    assert run("softplus", [x])[0] == expected


def test_softplus_minus_one_is_not_one_step_low():
    assert run("softplus", [-1])[0] != np.float32("3.1326166e-01")
    assert run("softplus", [1])[0] != np.float32("1.3132617")


def test_softplus_at_zero_is_ln2():
    result = run("softplus", [0, 0.1])
    assert str(result[0]) == "0.6931472"
    assert str(result[1]) == "0.7443967"


def test_softplus_near_minus_twelve():
    # log(1+exp(x)) in float32 gives 4.41e-06 here, almost 1% off.
    result = run("softplus", [-12.3392])
    assert str(result[0]) == "4.376758e-06"
    assert result[0] == reference.reference(
        reference.softplus, np.float32(-12.3392), np.float32
    )


def test_softplus_derivative_at_zero_is_half():
    assert run("softplus", [0], derivative=True)[0] == 0.5
    assert run("softplus", [-0.0], derivative=True)[0] == 0.5


def test_sigmoid_derivative_float64_no_cancellation():
    result = run("sigmoid", [37.42994775023705, 40], dtype="float64", derivative=True)
    assert repr(float(result[0])) == "5.551115123125775e-17"
    assert repr(float(result[1])) == "4.248354255291589e-18"


def test_sigmoid_derivative_float32_at_17():
    result = run("sigmoid", [17], derivative=True)
    assert str(result[0]) == "4.1399375e-08"
    expected = reference.reference(reference.sigmoid_derivative, 17, np.float32)
    assert result[0] == expected


def test_sigmoid_derivative_far_left_is_zero_not_nan():
    result = run("sigmoid", [-548.3162, -1e30, -np.inf], derivative=True)
    assert not np.isnan(result).any()
    assert (result == 0).all()


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_relu_derivative_at_kinks_is_zero(dtype):
    assert run("relu", [0], dtype=dtype, derivative=True)[0] == 0
    relu6 = run("relu", [0, 6, 3, 7], dtype=dtype, derivative=True, max_value=6.0)
    assert relu6.tolist() == [0, 0, 1, 0]


def test_relu_leaky_derivative_below_threshold():
    result = run("relu", [-2, 0, 2], derivative=True, negative_slope=0.25)
    assert result.tolist() == [0.25, 0.25, 1.0]


def test_softplus_float64_no_fixed_switch_at_20():
    result = run("softplus", [20.1, 25], dtype="float64")
    assert repr(float(result[0])) == "20.10000000186501"
    assert repr(float(result[1])) == "25.000000000013888"


def test_softplus_float16_beyond_exp_overflow():
    result = run("softplus", [11, 1000, 65504], dtype="float16")
    assert result.tolist() == [11.0, 1000.0, 65504.0]


def test_softplus_float64_extremes_without_warnings():
    result = run("softplus", [1000, 1e10, -1e10], dtype="float64")
    assert result.tolist() == [1000.0, 1e10, 0.0]


def test_softplus_beta_is_smooth_without_threshold():
    assert str(run("softplus", [0.05], beta=10.0)[0]) == "0.0974077"


def test_softplus_threshold_compares_beta_times_x():
    # beta*x = 0.5 exceeds 0.4, so PyTorch's rule returns x itself.
    assert run("softplus", [0.05], beta=10.0, threshold=0.4)[0] == np.float32(0.05)
    # beta*x = 0.3 does not, although x = 0.03 < 0.4 either way.
    smooth = run("softplus", [0.03], beta=10.0, threshold=0.4)[0]
    assert smooth == reference.reference(
        reference.softplus, np.float32(0.03), np.float32, beta=10.0
    )
    assert run("softplus", [0.05], derivative=True, beta=10.0, threshold=0.4)[0] == 1


@pytest.mark.parametrize("beta", [0.0, -1.0, float("inf"), float("nan")])
def test_beta_out_of_range_is_rejected(beta):
    with pytest.raises(InvalidParameterError, match="--beta"):
        check_parameters({"beta": beta})


def test_max_value_must_exceed_threshold():
    with pytest.raises(InvalidParameterError, match="--max-value"):
        check_parameters({"max_value": -1.0, "relu_threshold": 0.0})


def test_sigmoid_at_six():
    result = run("sigmoid", [6])
    assert str(result[0]) == "0.99752736"
    assert result[0] == reference.reference(reference.sigmoid, 6, np.float32)


SPECIAL = [np.inf, -np.inf, -0.0, 0.0]
SPECIAL_EXPECTED = {
    ("softplus", False): [np.inf, 0.0, np.log(2), np.log(2)],
    ("softplus", True): [1.0, 0.0, 0.5, 0.5],
    ("sigmoid", False): [1.0, 0.0, 0.5, 0.5],
    ("sigmoid", True): [0.0, 0.0, 0.25, 0.25],
    ("relu", False): [np.inf, 0.0, 0.0, 0.0],
    ("relu", True): [1.0, 0.0, 0.0, 0.0],
}


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
@pytest.mark.parametrize(("name", "derivative"), list(SPECIAL_EXPECTED))
def test_special_values(dtype, name, derivative):
    result = run(name, [*SPECIAL, np.nan], dtype=dtype, derivative=derivative)
    expected = np.array(SPECIAL_EXPECTED[name, derivative]).astype(resolve_dtype(dtype))
    assert result[:4].tolist() == expected.tolist()
    assert np.isnan(result[4])


def test_results_keep_the_input_dtype():
    for dtype in DTYPE_NAMES:
        assert run("softplus", [1.0], dtype=dtype).dtype == resolve_dtype(dtype)


def test_softplus_subnormal_results_not_flushed():
    # softplus(x) ≈ e^x is subnormal in float32 below about -87.34.
    xs = np.float32([-90, -100, -103])
    result = run("softplus", xs)
    for x, value in zip(xs, result, strict=True):
        assert value > 0
        assert value == reference.reference(reference.softplus, x, np.float32)


def test_random_float64_against_mpmath():
    rng = np.random.default_rng(20261204)
    xs = rng.uniform(-40, 40, 300)
    functions = {
        ("softplus", False): reference.softplus,
        ("sigmoid", False): reference.sigmoid,
        ("sigmoid", True): reference.sigmoid_derivative,
    }
    for (name, derivative), function in functions.items():
        result = run(name, xs, dtype="float64", derivative=derivative)
        for x, value in zip(xs, result, strict=True):
            assert value == reference.reference(function, x, np.float64), (name, x)

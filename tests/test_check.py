"""`softplus check`: its report, its exit status and its errors."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from softplus_cli import accuracy
from softplus_cli.accuracy import Tally, ulp_error
from softplus_cli.cli import app

ROWS = ["softplus", "softplus'", "sigmoid", "sigmoid'", "relu", "relu'"]


@pytest.fixture
def runner():
    return CliRunner()


def check(runner, *args):
    return runner.invoke(app, ["check", *args])


def report(output: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Split the plain report into its comment lines and a row per function."""
    lines = output.splitlines()
    comments = [line for line in lines if line.startswith("#")]
    table = [line.split("\t") for line in lines if not line.startswith("#")]
    header, rows = table[0], table[1:]
    return comments, {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("softplus: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def float32_count(low: float, high: float) -> int:
    bits = np.array([low, high], dtype=np.float32).view(np.uint32)
    return int(bits[1]) - int(bits[0]) + 1


def test_float16_exhaustive_all_correct(runner):
    result = check(runner, "--dtype", "float16", "--exhaustive")
    assert result.exit_code == 0, result.output
    comments, rows = report(result.stdout)
    assert list(rows) == ROWS
    assert "mpmath at every input" in comments[1]
    for row in rows.values():
        assert row["inputs"] == "65536"
        assert row["not correctly rounded"] == "0"
        assert float(row["max ulp"]) <= 0.5


def test_float16_exhaustive_special_values(runner):
    result = check(runner, "softplus", "--dtype", "float16", "--exhaustive")
    _, rows = report(result.stdout)
    # 2046 NaN bit patterns; softplus(+inf) and every x above the overflow of
    # float16 (65504 rounds to itself) give one inf; -0.0 never comes out.
    assert rows["softplus"]["nan"] == "2046/2046"
    assert rows["softplus"]["inf"] == "1/1"
    assert rows["softplus"]["-0"] == "0/0"
    assert rows["softplus"]["flushed to 0"] == "0"


def test_sampled_float32_uses_mpmath(runner):
    result = check(runner, "sigmoid", "--samples", "300", "--seed", "4")
    assert result.exit_code == 0, result.output
    comments, rows = report(result.stdout)
    assert "mpmath at every input" in comments[1]
    # 300 random inputs plus 13 special ones: ±0, ±inf, nan and four extremes.
    assert rows["sigmoid"]["inputs"] == "313"
    assert rows["sigmoid'"]["not correctly rounded"] == "0"


def test_sampled_float64_with_beta(runner):
    result = check(
        runner, "softplus", "--dtype", "float64", "-n", "200", "--beta", "10"
    )
    assert result.exit_code == 0, result.output
    _, rows = report(result.stdout)
    assert rows["softplus"]["not correctly rounded"] == "0"
    assert rows["softplus'"]["not correctly rounded"] == "0"


def test_exhaustive_range_counts_every_value(runner):
    result = check(runner, "sigmoid", "--exhaustive", "--range", "17:17.5")
    comments, _ = report(result.stdout)
    assert "project's own algorithm" in comments[1]
    assert result.exit_code == 0, result.output
    _, rows = report(result.stdout)
    assert rows["sigmoid"]["inputs"] == str(float32_count(17.0, 17.5))


def test_numpy_logaddexp_not_correctly_rounded(runner):
    # float32 logaddexp(0, 1) returns 1.3132617; the correct value is 1.3132616.
    result = check(
        runner, "softplus", "--against", "numpy", "--exhaustive", "--range", "1:1"
    )
    assert result.exit_code == 1
    _, rows = report(result.stdout)
    row = rows["softplus"]
    assert row["not correctly rounded"] == "1"
    assert row["worst x"] == "1.0"
    assert row["result"] == "1.3132617"
    assert row["correct"] == "1.3132616"
    assert 0.5 < float(row["max ulp"]) < 1.5


def injected(monkeypatch, change):
    """Make `--against numpy` return the project's results altered by `change`."""

    def fake(name, derivative, x, parameters):
        result = accuracy.IMPLEMENTATIONS["project"](name, derivative, x, parameters)
        return change(name, derivative, x, result.copy())

    monkeypatch.setitem(accuracy.IMPLEMENTATIONS, "numpy", fake)


def test_one_ulp_off_is_counted(runner, monkeypatch):
    def bump(name, derivative, x, result):
        if name == "sigmoid" and not derivative:
            index = int(np.flatnonzero(x == np.float16(0.5))[0])
            result[index] = np.nextafter(result[index], np.float16(1))
        return result

    injected(monkeypatch, bump)
    result = check(
        runner, "sigmoid", "--against", "numpy", "--dtype", "float16", "--exhaustive"
    )
    assert result.exit_code == 1
    _, rows = report(result.stdout)
    assert rows["sigmoid"]["not correctly rounded"] == "1"
    assert rows["sigmoid"]["worst x"] == "0.5"
    assert 0.5 < float(rows["sigmoid"]["max ulp"]) <= 1.5
    assert rows["sigmoid'"]["not correctly rounded"] == "0"


def test_flushed_subnormals_are_counted(runner, monkeypatch):
    def flush(name, derivative, x, result):
        tiny = np.finfo(result.dtype).smallest_normal
        return np.where(np.abs(result) < tiny, result.dtype.type(0), result)

    injected(monkeypatch, flush)
    result = check(
        runner, "softplus", "--against", "numpy", "--dtype", "float16", "--exhaustive"
    )
    assert result.exit_code == 1
    _, rows = report(result.stdout)
    wrong = int(rows["softplus"]["not correctly rounded"])
    assert wrong > 0
    assert rows["softplus"]["flushed to 0"] == str(wrong)
    assert rows["softplus"]["subnormal"] == f"0/{wrong}"


def test_missing_framework_names_pip_install(runner, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "jax" else real(name, *args),
    )
    result = check(runner, "--against", "jax", "-n", "10")
    assert_one_line_error(result, "jax is not installed", "pip install jax")


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"
)
def test_against_torch_reports_every_function(runner):
    result = check(
        runner,
        "--against",
        "torch",
        "--dtype",
        "float16",
        "--range",
        "-20:20",
        "-n",
        "500",
    )
    assert result.exit_code in (0, 1), result.output
    _, rows = report(result.stdout)
    assert list(rows) == ROWS


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed"
)
def test_against_jax_reports_every_function(runner):
    result = check(runner, "--against", "jax", "--dtype", "bfloat16", "--exhaustive")
    assert result.exit_code == 1, result.output
    _, rows = report(result.stdout)
    assert list(rows) == ROWS
    # jax flushes the 127 positive subnormal bfloat16 inputs of relu to 0.
    assert rows["relu"]["not correctly rounded"] == "127"
    assert rows["relu"]["subnormal"] == "0/127"


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="tensorflow is not installed",
)
def test_against_tensorflow_reports_every_function(runner):
    result = check(
        runner, "--against", "tensorflow", "--dtype", "bfloat16", "--exhaustive"
    )
    assert result.exit_code == 1, result.output
    _, rows = report(result.stdout)
    assert list(rows) == ROWS
    # TensorFlow flushes the 127 positive subnormal bfloat16 inputs of relu to
    # 0, and its relu' is 0 there and at the 254 NaN inputs.
    assert rows["relu"]["not correctly rounded"] == "127"
    assert rows["relu"]["subnormal"] == "0/127"
    assert rows["relu'"]["not correctly rounded"] == "381"
    assert rows["relu'"]["worst x"] == "nan"


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="tensorflow is not installed",
)
def test_against_tensorflow_softplus_cutoff(runner):
    args = ["softplus", "--dtype", "bfloat16", "--exhaustive", "--range", "-5:-2"]
    result = check(runner, *args, "--against", "tensorflow")
    assert result.exit_code == 1, result.output
    _, rows = report(result.stdout)
    # TensorFlow returns e^x below log(eps) + 2, about -2.852 for bfloat16
    # with eps = 2^-7. The largest input below that cutoff has the largest error.
    assert rows["softplus"]["worst x"] == "-2.85938"
    assert float(rows["softplus"]["max ulp"]) > 6


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--exhaustive", "--samples", "5"], ["--samples and --exhaustive"]),
        (["--range", "3"], ["invalid --range '3'"]),
        (["--range", "2:1"], ["invalid --range '2:1'"]),
        (["--dtype", "float64", "--exhaustive"], ["--exhaustive would check"]),
        (["--samples", "0"], ["invalid --samples 0"]),
        (
            ["--dtype", "float16", "--exhaustive", "--range", "0.1:0.10001"],
            ["no float16 values lie in --range 0.1:0.10001"],
        ),
        (["tanh"], ["unknown function 'tanh'"]),
        (["--beta", "0"], ["--beta"]),
        (
            ["--against", "torch", "--negative-slope", "0.1", "relu", "-n", "5"],
            ["no --negative-slope for relu"],
        ),
    ],
)
def test_usage_errors(runner, args, fragments):
    if "torch" in args and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    assert_one_line_error(check(runner, *args), *fragments)


def test_plain_report_has_no_progress_output(runner):
    result = check(runner, "relu", "--dtype", "bfloat16", "--exhaustive")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_ulp_error_against_exact_values():
    exact = np.array([1.0, 1.0 + 2.0**-24, 3.0, np.inf, np.nan, 0.0])
    result = np.array([1.0, 1.0, np.inf, np.inf, np.nan, 2.0**-149], dtype=np.float32)
    errors = ulp_error(result, exact, np.dtype(np.float32))
    np.testing.assert_array_equal(errors, [0.0, 0.5, np.inf, 0.0, 0.0, 1.0])


def test_tally_merge_keeps_worst():
    dtype = np.dtype(np.float32)
    x = np.array([1.0, 2.0], dtype=dtype)
    reference = np.array([3.0, 4.0], dtype=dtype)
    first, second = Tally(), Tally()
    first.add(x, reference, reference, reference.astype(np.float64))
    wrong = np.array([3.0, np.nextafter(np.float32(4), np.float32(5))], dtype=dtype)
    second.add(x, wrong, reference, reference.astype(np.float64))
    first.merge(second)
    assert first.inputs == 4
    assert first.wrong == 1
    assert first.worst_input == 2.0
    assert first.max_ulp == 1.0


def test_tally_keeps_nan_worst_input():
    dtype = np.dtype(np.float32)
    tallies = []
    for _ in range(2):
        tally = Tally()
        # relu' as NumPy computes it: 0 for a NaN input, which is an
        # infinite error.
        x = np.array([np.nan, 1.0], dtype=dtype)
        reference = np.array([np.nan, 1.0], dtype=dtype)
        result = np.array([0.0, 1.0], dtype=dtype)
        tally.add(x, result, reference, reference.astype(np.float64))
        tallies.append(tally)
    x = np.array([-2.0, 2.0], dtype=dtype)
    reference = np.array([0.0, 1.0], dtype=dtype)
    correct = Tally()
    correct.add(x, reference, reference, reference.astype(np.float64))
    tallies[0].add(x, reference, reference, reference.astype(np.float64))
    tallies[1].merge(correct)
    for tally in tallies:
        assert tally.inputs == 4
        assert tally.max_ulp == np.inf
        assert np.isnan(tally.worst_input)
        assert tally.worst_result == 0.0


def test_eval_does_not_import_mpmath():
    code = (
        "import sys\n"
        "from softplus_cli.cli import app\n"
        "app(['eval', '1', '-f', 'all', '-d'], standalone_mode=False)\n"
        "print('mpmath' in sys.modules, file=sys.stderr)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stderr.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--samples", "10000000000"], ["--samples", "100,000,000"]),
        (["--seed", "-1", "--samples", "10"], ["--seed -1"]),
        (["--dtype", "float16", "--range", "-inf:5"], ["'-inf:5'", "finite"]),
        (["--dtype", "float16", "--range", "-1e5:1e5"], ["'-1e5:1e5'", "65504"]),
    ],
)
def test_check_rejects_bad_sampling(runner, args, fragments):
    assert_one_line_error(check(runner, *args), *fragments)


def test_check_samples_widest_float64_range(runner):
    args = ["softplus", "--dtype", "float64", "--range", "-1e308:1e308", "-n", "10"]
    result = check(runner, *args)
    assert result.exit_code == 0


def test_functions_as_arguments_or_options(runner):
    as_arguments = check(runner, "relu", "--dtype", "bfloat16", "--exhaustive")
    as_options = check(runner, "-f", "relu", "--dtype", "bfloat16", "--exhaustive")
    assert as_arguments.exit_code == 0
    assert as_arguments.stdout == as_options.stdout
    _, rows = report(as_options.stdout)
    assert list(rows) == ["relu", "relu'"]

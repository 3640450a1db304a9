"""The command line through Typer's CliRunner: arguments, formats and errors."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from softplus_cli.cli import app

from .assertions import assert_one_line_error

KERAS_VALUES = [
    "2.0611537e-09",
    "3.1326169e-01",
    "6.9314718e-01",
    "1.3132616e+00",
    "2.0000000e+01",
]


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args, input=None, env=None):
    return runner.invoke(app, list(args), input=input, env=env)


def test_eval_table_shows_keras_values(runner):
    result = invoke(runner, "eval", "-20", "-1", "0", "1", "20", "--format", "table")
    assert result.exit_code == 0
    for value in KERAS_VALUES:
        assert value in result.stdout


def test_eval_negative_numbers_without_dashes(runner):
    result = invoke(runner, "eval", "-20", "-1", "0", "1", "20")
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == ["-20.0", "-1.0", "0.0", "1.0", "20.0"]
    assert [np.float32(row[1]) for row in rows] == [np.float32(v) for v in KERAS_VALUES]


def test_eval_exponent_inf_and_nan(runner):
    result = invoke(runner, "eval", "-1e-3", "-inf", "nan")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "-0.001\t0.6926473",
        "-inf\t0.0",
        "nan\tnan",
    ]


def test_eval_misspelt_option_is_usage_error(runner):
    result = invoke(runner, "eval", "--frmat", "csv", "1")
    assert_one_line_error(result, "--frmat")


@pytest.mark.parametrize(
    ("command", "suggestion"),
    [("EVAL", "Did you mean 'eval'?"), ("evl", "Did you mean 'eval'?"), ("xyz", "")],
)
def test_unknown_command_suggests_a_name(runner, command, suggestion):
    result = invoke(runner, command, "1")
    assert_one_line_error(result, f"No such command '{command}'", suggestion)


def test_eval_options_before_and_after_points(runner):
    before = invoke(runner, "eval", "--dtype", "float64", "-f", "sigmoid", "-2", "3")
    after = invoke(runner, "eval", "-2", "--dtype", "float64", "3", "-f", "sigmoid")
    assert before.exit_code == 0
    assert before.stdout == after.stdout
    assert before.stdout.splitlines()[0] == "-2.0\t0.11920292202211756"


def test_eval_option_value_may_be_negative(runner):
    result = invoke(runner, "eval", "-f", "relu", "--negative-slope", "-0.5", "-2")
    assert result.exit_code == 0
    assert result.stdout == "-2.0\t1.0\n"


def test_eval_double_dash_still_works(runner):
    result = invoke(runner, "eval", "--", "-1")
    assert result.stdout == "-1.0\t0.3132617\n"


def test_eval_numpy_format_is_numpy_repr(runner):
    result = invoke(runner, "eval", "-20", "-1", "0", "1", "20", "--format", "numpy")
    assert result.exit_code == 0
    flat = " ".join(result.stdout.split())
    assert flat == (
        "array([2.0611537e-09, 3.1326169e-01, 6.9314718e-01, 1.3132616e+00, "
        "2.0000000e+01], dtype=float32)"
    )


def test_eval_numpy_format_several_columns(runner):
    result = invoke(runner, "eval", "0", "-d", "--format", "numpy")
    assert result.stdout.splitlines() == [
        "# softplus",
        "array([0.6931472], dtype=float32)",
        "# softplus'",
        "array([0.5], dtype=float32)",
    ]


def test_eval_all_functions_with_derivatives_csv(runner):
    result = invoke(runner, "eval", "1", "-f", "all", "-d", "--format", "csv")
    lines = result.stdout.splitlines()
    assert lines[0] == "x,softplus,softplus',sigmoid,sigmoid',relu,relu'"
    assert lines[1] == "1.0,1.3132616,0.7310586,0.7310586,0.19661193,1.0,1.0"


def test_tsv_header_only_when_asked(runner):
    plain = invoke(runner, "eval", "1", "--format", "tsv")
    headed = invoke(runner, "eval", "1", "--format", "tsv", "--header")
    assert plain.stdout == "1.0\t1.3132616\n"
    assert headed.stdout == "x\tsoftplus\n1.0\t1.3132616\n"


def test_csv_no_header(runner):
    result = invoke(runner, "eval", "1", "--format", "csv", "--no-header")
    assert result.stdout == "1.0,1.3132616\n"


@pytest.mark.parametrize("output_format", ["json", "jsonl", "numpy"])
@pytest.mark.parametrize("flag", ["--header", "--no-header"])
def test_header_flag_without_header_row_warns(runner, output_format, flag):
    plain = invoke(runner, "eval", "1", "--format", output_format)
    flagged = invoke(runner, "eval", "1", "--format", output_format, flag)
    assert flagged.exit_code == 0
    assert flagged.stdout == plain.stdout
    assert flagged.stderr == (
        f"softplus: warning: {flag} has no effect with --format {output_format}\n"
    )


@pytest.mark.parametrize("output_format", ["tsv", "csv", "table"])
def test_header_flag_with_header_row_is_quiet(runner, output_format):
    result = invoke(runner, "eval", "1", "--format", output_format, "--no-header")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_json_is_valid_and_lossless(runner):
    result = invoke(runner, "eval", "1", "inf", "nan", "-0.0", "--format", "json")
    rows = json.loads(result.stdout)
    assert rows == [
        {"x": 1.0, "softplus": 1.3132616},
        {"x": "inf", "softplus": "inf"},
        {"x": "nan", "softplus": "nan"},
        {"x": -0.0, "softplus": 0.6931472},
    ]


def test_jsonl_one_object_per_line(runner):
    result = invoke(runner, "eval", "-1", "2", "--format", "jsonl", "-f", "relu")
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert objects == [{"x": -1.0, "relu": 0.0}, {"x": 2.0, "relu": 2.0}]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("float16", "1.0\t1.313\n"),
        ("bfloat16", "1.0\t1.31\n"),
        ("float32", "1.0\t1.3132616\n"),
        ("float64", "1.0\t1.3132616875182228\n"),
    ],
)
def test_eval_dtypes(runner, dtype, expected):
    result = invoke(runner, "eval", "1", "--dtype", dtype)
    assert result.stdout == expected


def test_eval_reads_stdin_when_piped(runner):
    result = invoke(runner, "eval", input="-20 -1\n0\n1 20\n")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 5


def test_eval_dash_reads_stdin(runner):
    result = invoke(runner, "eval", "-", input="1\n")
    assert result.stdout == "1.0\t1.3132616\n"


def test_eval_overflowing_input_warns(runner):
    result = invoke(runner, "eval", "1e39", "--dtype", "float32")
    assert result.exit_code == 0
    assert result.stdout == "inf\tinf\n"
    assert "1e39" in result.stderr
    assert "--dtype float64" in result.stderr


@pytest.mark.parametrize("text", ["1e400", "1e-400"])
def test_input_beyond_float64_gets_no_float64_advice(runner, text):
    result = invoke(runner, "eval", text, "--dtype", "float32")
    assert result.exit_code == 0
    assert text in result.stderr
    assert "--dtype float64" not in result.stderr


def table_numbers(text):
    rows = [line for line in text.splitlines() if line.startswith("│")]
    return [[float(cell) for cell in row.strip("│").split("│")] for row in rows]


def test_table_keeps_every_digit_off_terminal(runner):
    args = ["compare", "--range", "-1:1:0.5", "--dtype", "float64"]
    table = runner.invoke(app, [*args, "--format", "table"], env={"COLUMNS": "40"})
    plain = runner.invoke(app, [*args, "--format", "tsv"])
    assert table.exit_code == 0
    assert "…" not in table.stdout
    assert "0.3132616875182228" in table.stdout
    expected = [
        [float(cell) for cell in line.split("\t")] for line in plain.stdout.splitlines()
    ]
    assert table_numbers(table.stdout) == expected


def test_no_color_leaves_no_escape_codes(runner):
    args = ["eval", "1", "--format", "table"]
    coloured = runner.invoke(app, args, env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    plain = runner.invoke(app, args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" in coloured.stdout
    assert "\x1b[" not in plain.stdout
    assert "1.3132616" in plain.stdout


def test_compare_side_by_side(runner):
    result = invoke(
        runner, "compare", "--range", "-5:5:1", "--format", "tsv", "--header"
    )
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == [
        "x",
        "softplus",
        "softplus'",
        "sigmoid",
        "sigmoid'",
        "relu",
        "relu'",
    ]
    assert len(lines) == 12
    assert lines[6].split("\t") == [
        "0.0",
        "0.6931472",
        "0.5",
        "0.5",
        "0.25",
        "0.0",
        "0.0",
    ]


def test_compare_grid_has_no_drift(runner):
    result = invoke(
        runner, "compare", "--range", "-5:5:0.1", "-f", "relu", "--no-derivative"
    )
    xs = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert len(xs) == 101
    assert xs[0] == "-5.0"
    assert xs[50] == "0.0"
    assert xs[-1] == "5.0"
    assert xs[1] == "-4.9"


def test_compare_range_from_minus_zero(runner):
    result = invoke(runner, "compare", "--range", "-0:0:1", "--format", "tsv")
    assert result.exit_code == 0
    assert result.stdout.split("\t")[0] == "-0.0"
    stepped = invoke(runner, "compare", "-r", "-0:1:1", "-f", "relu", "-D")
    assert stepped.stdout == "-0.0\t0.0\n1.0\t1.0\n"
    crossing = invoke(runner, "compare", "-r", "-1:1:1", "-f", "relu", "-D")
    assert crossing.stdout.splitlines()[1] == "0.0\t0.0"


def test_compare_stop_excluded_when_step_misses_it(runner):
    result = invoke(
        runner, "compare", "--range", "0:1:0.3", "-f", "relu", "--no-derivative"
    )
    xs = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert xs == ["0.0", "0.3", "0.6", "0.9"]


def test_compare_points_like_linspace(runner):
    result = invoke(runner, "compare", "--range", "-1:1", "--points", "5", "-f", "relu")
    xs = [float(line.split("\t")[0]) for line in result.stdout.splitlines()]
    assert xs == np.linspace(-1, 1, 5).tolist()


def test_compare_too_large_for_table(runner):
    result = invoke(runner, "compare", "--range", "0:1:0.00001", "--format", "table")
    assert_one_line_error(result, "100,001", "--format tsv")


def test_compare_large_grid_streams_in_plain_format(runner):
    result = invoke(
        runner, "compare", "--range", "0:1:0.00001", "-f", "relu", "--no-derivative"
    )
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 100_001


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["eval", "abc"], ["'abc'", "argument 1", "such as 1.5"]),
        (["eval", "1", "two"], ["'two'", "argument 2"]),
        (["eval", "-0x10"], ["'-0x10'", "argument 1"]),
        (["eval", "-1e"], ["'-1e'", "argument 1"]),
        (["eval", "0,5"], ["'0,5'", "decimal point", "0.5"]),
        (["eval", "1,000"], ["'1,000'", "as in 1.000, or no thousands", "in 1000"]),
        (["eval", "1", "--dtype", "float8"], ["float8", "float32"]),
        (["eval", "1", "-f", "softpls"], ["'softpls'", "softplus, sigmoid, relu"]),
        (["eval", "1", "--beta", "0"], ["--beta", "greater than 0"]),
        (["eval", "1", "--beta", "-2"], ["--beta", "greater than 0"]),
        (["eval", "1", "--beta", "nan"], ["--beta"]),
        (["eval", "1", "--beta", "x"], ["--beta", "number"]),
        (["eval", "1", "-", "2"], ["'-'"]),
        (["eval", "1", "--max-value", "-1", "-f", "relu"], ["--max-value"]),
        (["compare", "--range", "5:-5:1"], ["'5:-5:1'", "negative"]),
        (["compare", "--range", "0:1:0"], ["'0:1:0'", "STEP"]),
        (["compare", "--range", "0:inf:1"], ["'0:inf:1'", "finite"]),
        (["compare", "--range", "0:1:nan"], ["'0:1:nan'", "finite"]),
        (["compare", "--range", "a:b:c"], ["'a:b:c'", "START"]),
        (["compare", "--range", "0:1"], ["'0:1'", "--points"]),
        (["compare", "--range", "0:1:2:3"], ["'0:1:2:3'", "START:STOP:STEP"]),
        (["compare", "--range", "0:1", "--points", "0"], ["--points", "0"]),
        (["compare"], ["--range"]),
        (["compare", "--range", "0:1:0.5", "--format", "xml"], ["xml"]),
        (["plotz"], ["plotz"]),
        (["eval", "１２"], ["'１２'", "argument 1"]),
        (["eval", "1", "-f"], ["'-f'", "requires an argument"]),
        (["eval", "-1", "--beta"], ["'--beta'", "requires an argument"]),
        (["eval", "1", "-f", "bogus", "-f", "all"], ["'bogus'"]),
        (["eval", "1", "--beta", "0,5"], ["'0,5'", "--beta", "decimal point"]),
        (["eval", "1", "--beta", "1e400"], ["--beta 1e400", "float64"]),
        (["eval", "1", "--negative-slope", "1_0"], ["'1_0'", "--negative-slope"]),
        (["eval", "1", "--dtype", "fp32"], ["'fp32'", "float32"]),
        (["compare", "--range", "0:1e309:1e308"], ["'1e309'", "float64"]),
        (["compare", "--range", "0:1e99999999:1"], ["'1e99999999'", "float64"]),
        (["compare", "--range", "0:1:1e-400"], ["'1e-400'", "float64"]),
        (["compare", "--range", "0:1:1e-13"], ["10,000,000,000,001", "larger step"]),
    ],
)
def test_bad_input_is_one_line_exit_2(runner, args, fragments):
    assert_one_line_error(invoke(runner, *args), *fragments)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ("0\n0,5\n1\n", ["'0,5'", "line 2", "decimal point"]),
        ("0\n1,000\n", ["'1,000'", "line 2", "1.000, or no thousands", "1000"]),
        ("1\n2\n3 x4\n", ["'x4'", "line 3"]),
        ("1_000\n", ["'1_000'", "line 1"]),
        ("", ["no numbers"]),
        ("  \n\n", ["no numbers"]),
    ],
)
def test_bad_stdin_is_one_line_exit_2(runner, data, fragments):
    assert_one_line_error(invoke(runner, "eval", "-", input=data), *fragments)


@pytest.mark.parametrize("output_format", ["tsv", "csv", "json", "jsonl", "table"])
def test_bad_first_chunk_writes_nothing(runner, output_format):
    args = ["eval", "-", "--format", output_format, "--header"]
    result = invoke(runner, *args, input="1\n2\nbad\n")
    assert result.exit_code == 2
    assert "'bad'" in result.stderr
    assert result.stdout == ""


def test_short_flags_cluster(runner):
    result = invoke(runner, "eval", "1", "-df", "sigmoid")
    assert result.exit_code == 0
    assert result.stdout == "1.0\t0.7310586\t0.19661193\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["compare", "--range", "-1:1", "--range", "0:5"],
            "--range given twice (-1:1 and 0:5): give it once",
        ),
        (
            ["eval", "1", "--dtype", "float16", "--dtype", "float64"],
            "--dtype given twice (float16 and float64): give it once",
        ),
        (
            ["eval", "1", "--format", "csv", "--format", "csv"],
            "--format given twice (csv and csv): give it once",
        ),
        (
            ["compare", "-r", "0:1:1", "--range=0:2:1"],
            "--range given twice (0:1:1 and 0:2:1): give it once",
        ),
        (
            ["compare", "-r0:1", "-dn3", "--points", "5"],
            "--points given twice (3 and 5): give it once",
        ),
        (
            ["eval", "-1", "--beta", "2", "-2", "--beta", "-3"],
            "--beta given twice (2 and -3): give it once",
        ),
        (
            ["plot", "--width", "40", "--width", "50"],
            "--width given twice (40 and 50): give it once",
        ),
        (
            ["check", "--seed", "1", "--seed", "2"],
            "--seed given twice (1 and 2): give it once",
        ),
        (
            ["eval", "1", "--header", "--no-header"],
            "--header and --no-header both given: give one of them",
        ),
        (
            ["compare", "-r", "0:1:1", "-dD"],
            "-d and -D both given: give one of them",
        ),
    ],
)
def test_option_given_twice_is_usage_error(runner, args, message):
    result = invoke(runner, *args)
    assert_one_line_error(result, message)


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "1", "-f", "relu", "-f", "sigmoid"],
        ["eval", "1", "-df", "relu", "--function", "sigmoid"],
        ["eval", "1", "-d", "--derivative"],
        ["eval", "1", "--header", "--header"],
        ["compare", "-r", "0:1:1", "-f", "relu", "-f", "sigmoid"],
        ["explain", "-f", "relu", "-f", "sigmoid"],
    ],
)
def test_repeatable_options_may_repeat(runner, args):
    result = invoke(runner, *args)
    assert result.exit_code == 0
    assert result.stderr == ""


def test_double_dash_ends_option_checks(runner):
    result = invoke(runner, "eval", "--dtype", "float64", "--", "--dtype")
    assert_one_line_error(result, "'--dtype' (argument 1)")


def test_help_wins_over_option_given_twice(runner):
    result = invoke(runner, "compare", "-r", "0:1:1", "-r", "0:2:1", "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: softplus compare")


def test_every_command_rejects_options_given_twice():
    import typer

    from softplus_cli.commands import SoftplusCommand

    group = typer.main.get_command(app)
    context = typer.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert isinstance(command, SoftplusCommand), name


def test_compare_short_derivative_flags(runner):
    shown = invoke(runner, "compare", "-r", "0:1:1", "-f", "relu", "-d")
    hidden = invoke(runner, "compare", "-r", "0:1:1", "-f", "relu", "-D")
    assert shown.stdout == "0.0\t0.0\t0.0\n1.0\t1.0\t1.0\n"
    assert hidden.stdout == "0.0\t0.0\n1.0\t1.0\n"


def test_float64_overflow_warning_offers_no_wider_dtype(runner):
    result = invoke(runner, "eval", "1e400", "--dtype", "float64")
    assert result.exit_code == 0
    assert "1e400" in result.stderr
    assert "--dtype" not in result.stderr


def test_bare_command_prints_help(runner):
    result = invoke(runner)
    assert result.exit_code == 0
    assert "Usage: softplus" in result.stdout
    assert result.stderr == ""


def test_short_help_option(runner):
    result = invoke(runner, "eval", "-h")
    assert result.exit_code == 0
    assert "--dtype" in result.stdout


def test_version_reads_metadata(runner):
    from importlib import metadata

    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout == f"softplus {metadata.version('softplus')}\n"


def test_help_lists_commands_and_parameters(runner):
    top = invoke(runner, "--help")
    assert top.exit_code == 0
    for command in ("eval", "compare"):
        assert command in top.stdout
    eval_help = invoke(runner, "eval", "--help")
    for option in (
        "--beta",
        "--threshold",
        "--negative-slope",
        "--max-value",
        "--relu-threshold",
        "--dtype",
        "--format",
        "--derivative",
    ):
        assert option in eval_help.stdout


def test_every_registry_parameter_is_an_option(runner):
    from softplus_cli.activations import ACTIVATIONS, PARAMETERS

    help_text = invoke(runner, "compare", "--help").stdout
    for parameter in PARAMETERS.values():
        assert parameter.option in help_text
    for activation in ACTIVATIONS.values():
        assert set(activation.parameters) <= set(PARAMETERS)


def test_title_names_non_default_parameters(runner):
    result = invoke(runner, "eval", "0.05", "--beta", "10", "--format", "table")
    assert re.search(r"softplus, float32, beta=10", result.stdout)


def test_explain_lists_formulas_and_notes(runner):
    result = invoke(runner, "explain", "-f", "softplus")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("softplus: ")
    assert "softplus'(x) = σ(βx)" in result.stdout
    assert "--beta" in result.stdout
    assert "ln 2" in result.stdout
    assert "relu" not in lines[0]


def test_explain_all_by_default(runner):
    result = invoke(runner, "explain")
    for name in ("softplus:", "sigmoid:", "relu:"):
        assert name in result.stdout


def test_parameter_of_unshown_function_warns(runner):
    result = invoke(runner, "eval", "1", "-f", "relu", "--threshold", "5")
    assert result.exit_code == 0
    assert result.stdout == "1.0\t1.0\n"
    assert "--threshold" in result.stderr
    assert "no effect" in result.stderr


def test_parameter_of_shown_function_is_quiet(runner):
    result = invoke(runner, "eval", "1", "-f", "all", "--beta", "2")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_parameter_underflowing_to_zero_is_rejected(runner):
    assert_one_line_error(invoke(runner, "eval", "1", "--beta", "1e-400"), "1e-400")


def test_huge_point_count_is_short(runner):
    result = invoke(runner, "compare", "--range", "0:1:1e-300")
    assert_one_line_error(result, "about 1.0e+300")


def test_eval_underflowing_input_warns(runner):
    result = invoke(runner, "eval", "1e-50", "0", "-0e5")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "0.0\t0.6931472"
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "1e-50" in lines[0]
    assert "became 0" in lines[0]


def test_deferred_commands_are_listed_by_their_own_summary():
    import subprocess
    import sys

    import typer

    from softplus_cli.cli import DEFERRED_COMMANDS, DeferredCommand

    group = typer.main.get_command(app)
    context = typer.Context(group)
    # Listing the commands builds none of them.
    group.get_help(context)
    assert all(
        isinstance(group.commands[deferred.name], DeferredCommand)
        for deferred in DEFERRED_COMMANDS
    )
    for deferred in DEFERRED_COMMANDS:
        command = deferred.load()
        for limit in (30, 45, 200):
            summary = command.get_short_help_str(limit)
            assert deferred.get_short_help_str(limit) == summary
        loaded = group.get_command(context, deferred.name)
        assert [p.name for p in loaded.params] == [p.name for p in command.params]
    # The top-level help lists them without importing their modules, nor the
    # modules that only the commands use.
    modules = [deferred.module for deferred in DEFERRED_COMMANDS]
    modules += [
        "softplus_cli.activations",
        "softplus_cli.render",
        "softplus_cli.dtypes",
        "softplus_cli.inputs",
    ]
    script = (
        "import sys\n"
        "from softplus_cli.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print([name for name in {modules!r} if name in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"
    for deferred in DEFERRED_COMMANDS:
        assert f"  {deferred.name} " in result.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("softplus eval --dtype f", ["float16", "float32", "float64"]),
        ("softplus compare --format j", ["json", "jsonl"]),
        ("softplus ev", ["eval"]),
        ("softplus eval -f s", ["softplus", "sigmoid"]),
        ("softplus explain r", ["relu"]),
        ("softplus plot a", ["all"]),
        ("softplus check --function si", ["sigmoid"]),
    ],
)
def test_shell_completion_of_commands_and_values(words, expected):
    import os
    import subprocess
    import sys

    environment = {
        **os.environ,
        "_SOFTPLUS_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = subprocess.run(
        [sys.executable, "-m", "softplus_cli"],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0
    assert result.stdout.split() == expected


def test_ascii_stdout_gets_escapes_not_an_error():
    import os
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [sys.executable, "-m", "softplus_cli", "explain", "-f", "sigmoid"],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "\\u03c3(x)" in result.stdout


def test_unreadable_stdin_is_one_line_error(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "write-only"
    with open(path, "w") as write_only:
        result = subprocess.run(
            [sys.executable, "-m", "softplus_cli", "eval", "-"],
            stdin=write_only,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 2
    assert result.stderr.startswith("softplus: error: cannot read standard input")
    assert len(result.stderr.splitlines()) == 1


def test_explain_takes_names_as_arguments_or_options(runner):
    as_arguments = invoke(runner, "explain", "sigmoid", "relu")
    as_options = invoke(runner, "explain", "-f", "sigmoid", "-f", "relu")
    assert as_arguments.exit_code == 0
    assert as_arguments.stdout == as_options.stdout
    assert as_arguments.stdout.startswith("sigmoid:")
    assert "\nrelu:" in as_arguments.stdout


def test_stdin_dash_given_twice(runner):
    assert_one_line_error(invoke(runner, "eval", "-", "-"), "more than once")


def test_too_many_points_names_points(runner):
    result = invoke(runner, "compare", "-r", "0:1", "-n", "10000000000000")
    assert_one_line_error(result, "use fewer --points")

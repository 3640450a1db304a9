"""`softplus plot`: the terminal plot, image files and the errors around them."""

import errno
import math
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softplus_cli.cli import app
from softplus_cli.plot_command import nice_ticks

from .assertions import assert_one_line_error

SOFTPLUS = shutil.which(
    "softplus", path=str(Path(sys.executable).parent)
) or shutil.which("softplus")
TERMINAL = ["--force-terminal", "--width", "80", "--height", "24"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CSS_PIXELS_PER_POINT = 96 / 72


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args, color=False):
    env = {"NO_COLOR": None} if color else {"NO_COLOR": "1"}
    return runner.invoke(app, ["plot", *args], env=env)


class Axes:
    """Maps x and y values to the cells of a colourless plotext plot.

    The map is read from the plot itself: the columns of the x ticks (┬) with
    the labels under them, and the rows of the y ticks (┤) with the labels
    beside them. Each cell contains 2x2 sub-cells, and tick labels are rounded to
    whole cells, so a curve lands within one row of the interpolated row.
    """

    def __init__(self, text):
        self.lines = text.splitlines()
        # The frame's bottom edge is the one line with x ticks (the legend box
        # has a bottom edge └───┘ too).
        self.bottom = next(i for i, line in enumerate(self.lines) if "┬" in line)
        self.top = next(i for i, line in enumerate(self.lines) if "┌" in line)
        ticks = self.lines[self.bottom]
        columns = [i for i, char in enumerate(ticks) if char == "┬"]
        x_labels = [float(label) for label in self.lines[self.bottom + 1].split()]
        rows = [i for i, line in enumerate(self.lines) if "┤" in line]
        y_labels = [float(self.lines[i].split("┤")[0]) for i in rows]
        self.x_ticks = list(zip(x_labels, columns, strict=True))
        self.y_ticks = list(zip(y_labels, rows, strict=True))
        self.left = ticks.index("└")
        self.right = ticks.index("┘")
        self.legend = self._legend_box()

    def _legend_box(self):
        """Return the rows and columns of the legend box, borders included."""
        top = next(i for i in range(self.top + 1, self.bottom) if "┌" in self.lines[i])
        bottom = next(i for i in range(top, self.bottom) if "┘" in self.lines[i])
        columns = range(self.lines[top].index("┌"), self.lines[top].index("┐") + 1)
        return range(top, bottom + 1), columns

    @staticmethod
    def _interpolate(ticks, value):
        (v0, c0), (v1, c1) = ticks[0], ticks[-1]
        return round(c0 + (value - v0) * (c1 - c0) / (v1 - v0))

    def column(self, x):
        return self._interpolate(self.x_ticks, x)

    def row(self, y):
        return self._interpolate(self.y_ticks, y)

    def marks(self, x):
        """Return the rows of the canvas cells drawn at `x`, outside the legend."""
        column = self.column(x)
        assert self.left < column < self.right
        rows, columns = self.legend
        return {
            row
            for row in range(self.top + 1, self.bottom)
            if self.lines[row][column] != " "
            and not (row in rows and column in columns)
        }

    def passes_near(self, x, y):
        """Check that the curve is drawn at (x, y) and only within a row of it."""
        marks = self.marks(x)
        return bool(marks) and all(abs(row - self.row(y)) <= 1 for row in marks)


def softplus(x):
    return math.log1p(math.exp(x))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# --- the terminal plot ------------------------------------------------------


def test_terminal_plot_fills_the_requested_size(runner):
    result = invoke(runner, "softplus", "relu", "--range", "-5:5", *TERMINAL)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 24
    assert {len(line) for line in lines} == {80}


def test_terminal_plot_has_title_legend_and_ticks(runner):
    result = invoke(runner, "softplus", "relu", "--range", "-5:5", *TERMINAL)
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "softplus, relu, float32"
    assert any("│ ▚ softplus │" in line for line in lines)
    assert any("│ ⢕ relu     │" in line for line in lines)
    axes = Axes(result.stdout)
    assert [label for label, _ in axes.x_ticks] == [-4, -2, 0, 2, 4]
    assert [label for label, _ in axes.y_ticks] == [5, 4, 3, 2, 1, 0]
    assert lines[axes.bottom + 2].strip() == "x"


@pytest.mark.parametrize("x", [-4, -2, 0, 2, 4])
def test_softplus_curve_passes_through_its_cells(runner, x):
    result = invoke(runner, "softplus", *TERMINAL)
    axes = Axes(result.stdout)
    assert axes.passes_near(x, softplus(x))


def test_softplus_at_zero_is_ln2_not_zero(runner):
    result = invoke(runner, "softplus", "relu", *TERMINAL)
    axes = Axes(result.stdout)
    # relu(0) = 0 is on the bottom row; softplus(0) = ln 2 is 2 rows above it.
    assert axes.row(0) == axes.bottom - 1
    assert axes.row(math.log(2)) == axes.row(0) - 2
    softplus_marks = axes.marks(0) - {axes.row(0)}
    assert axes.row(0) in axes.marks(0)
    assert softplus_marks
    assert all(abs(row - axes.row(math.log(2))) <= 1 for row in softplus_marks)


@pytest.mark.parametrize("x", [-4, -3, -2, -1])
def test_relu_negative_x_on_bottom_row(runner, x):
    result = invoke(runner, "relu", *TERMINAL)
    axes = Axes(result.stdout)
    assert axes.marks(x) == {axes.bottom - 1}


@pytest.mark.parametrize("x", [1, 2, 4])
def test_relu_follows_y_equals_x(runner, x):
    result = invoke(runner, "relu", *TERMINAL)
    axes = Axes(result.stdout)
    assert axes.passes_near(x, x)


@pytest.mark.parametrize("x", [-4, -2, 0, 2, 4])
def test_sigmoid_curve_passes_through_its_cells(runner, x):
    result = invoke(runner, "sigmoid", *TERMINAL)
    axes = Axes(result.stdout)
    assert axes.passes_near(x, sigmoid(x))


def test_derivative_adds_a_legend_entry(runner):
    result = invoke(runner, "softplus", "-d", *TERMINAL)
    assert result.exit_code == 0
    assert "│ ▚ softplus  │" in result.stdout
    assert "│ ⢕ softplus' │" in result.stdout


def test_derivative_only_plots_sigmoid_shape(runner):
    result = invoke(runner, "softplus", "--derivative-only", *TERMINAL)
    assert result.exit_code == 0
    assert "│ ▚ softplus' │" in result.stdout
    assert "softplus │" not in result.stdout
    axes = Axes(result.stdout)
    # softplus' is sigmoid: 0.5 at 0, between 0 and 1 everywhere.
    assert axes.passes_near(0, 0.5)
    assert max(label for label, _ in axes.y_ticks) <= 1


def test_derivative_with_derivative_only_warns(runner):
    result = invoke(runner, "softplus", "-d", "--derivative-only", *TERMINAL)
    assert result.exit_code == 0
    assert result.stderr == (
        "softplus: warning: --derivative and --derivative-only both given: "
        "--derivative-only wins, so only the derivatives are plotted\n"
    )
    assert "│ ▚ softplus' │" in result.stdout
    assert "softplus │" not in result.stdout


def test_all_with_derivatives_lists_six_curves(runner):
    result = invoke(
        runner, "all", "-d", "--force-terminal", "--width", "100", "--height", "30"
    )
    assert result.exit_code == 0
    for label in ["softplus", "softplus'", "sigmoid", "sigmoid'", "relu", "relu'"]:
        assert f" {label} " in result.stdout


def test_legend_of_six_curves_fits_in_20_rows(runner):
    result = invoke(runner, "all", "-d", "--force-terminal", "--height", "20")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 20
    axes = Axes(result.stdout)
    legend_rows, _ = axes.legend
    assert legend_rows[-1] < axes.bottom


def test_beta_appears_in_the_title(runner):
    result = invoke(runner, "softplus", "relu", "--beta", "5", *TERMINAL)
    assert result.stdout.splitlines()[0].strip() == "softplus, relu, float32, beta=5"
    axes = Axes(result.stdout)
    # With beta = 5, softplus(0) = ln 2 / 5 ≈ 0.14: nearer relu's 0 than ln 2.
    assert axes.row(math.log(2) / 5) == axes.row(0)


def test_dtype_appears_in_the_title(runner):
    result = invoke(runner, "sigmoid", "--dtype", "bfloat16", *TERMINAL)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].strip() == "sigmoid, bfloat16"


def test_range_with_step_sets_the_points(runner):
    result = invoke(runner, "relu", "--range", "-4:4:2", *TERMINAL)
    assert result.exit_code == 0
    axes = Axes(result.stdout)
    assert axes.passes_near(4, 4)


def test_colour_gives_each_curve_its_own_colour(runner):
    result = invoke(runner, "softplus", "relu", *TERMINAL, color=True)
    assert result.exit_code == 0
    legend = [line for line in result.stdout.splitlines() if " softplus " in line]
    legend += [line for line in result.stdout.splitlines() if " relu " in line]
    colours = {line.split("▚")[0].rsplit("\x1b[38;5;", 1)[1] for line in legend}
    assert len(colours) == 2


def test_no_color_leaves_out_escape_codes(runner):
    result = invoke(runner, "softplus", "relu", *TERMINAL)
    assert "\x1b" not in result.stdout
    coloured = invoke(runner, "softplus", "relu", *TERMINAL, color=True)
    assert "\x1b[" in coloured.stdout


def test_colourless_curves_use_different_markers(runner):
    result = invoke(runner, "softplus", "relu", *TERMINAL)
    assert "▚ softplus" in result.stdout
    assert "⢕ relu" in result.stdout


def test_not_a_terminal_names_the_fixes(runner):
    result = invoke(runner, "softplus")
    assert_one_line_error(
        result, "stdout is not a terminal", "--output FILE.png", "--force-terminal"
    )


def test_range_beyond_float16_warns_and_plots(runner):
    result = invoke(runner, "--range", "-70000:70000", "--dtype", "float16", *TERMINAL)
    assert result.exit_code == 0
    assert "beyond the range of float16" in result.stderr
    assert len(result.stdout.splitlines()) == 24


def test_range_all_beyond_float16_fails(runner):
    result = invoke(runner, "--range", "70000:80000", "--dtype", "float16", *TERMINAL)
    assert result.exit_code == 2
    assert result.stdout == ""
    warning, error = result.stderr.splitlines()
    assert warning.startswith("softplus: warning: ")
    assert error == (
        "softplus: error: softplus has fewer than 2 finite values in float16 on "
        "this range: narrow --range, or use --dtype float64"
    )


# --- image files --------------------------------------------------------------


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_size_in_pixels(path):
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    sizes = []
    for attribute in ("width", "height"):
        value = root.get(attribute)
        assert value.endswith("pt")
        sizes.append(float(value.removesuffix("pt")) * CSS_PIXELS_PER_POINT)
    return tuple(sizes)


def test_png_has_the_default_size(runner, tmp_path):
    path = tmp_path / "softplus.png"
    result = invoke(runner, "softplus", "relu", "--output", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert png_size(path) == (800, 500)


@pytest.mark.parametrize("size", [(640, 400), (801, 333), (200, 200)])
def test_png_has_the_requested_size(runner, tmp_path, size):
    path = tmp_path / "plot.png"
    result = invoke(runner, "all", "-o", str(path), "--size", "{}x{}".format(*size))
    assert result.exit_code == 0, result.stderr
    assert png_size(path) == size


def test_svg_has_the_requested_size(runner, tmp_path):
    path = tmp_path / "plot.SVG"
    result = invoke(runner, "softplus", "-d", "-o", str(path), "--size", "640x400")
    assert result.exit_code == 0, result.stderr
    assert svg_size_in_pixels(path) == pytest.approx((640, 400))


def test_svg_lists_each_curve(runner, tmp_path):
    path = tmp_path / "plot.svg"
    invoke(runner, "softplus", "sigmoid", "-o", str(path))
    text = path.read_text()
    assert "softplus, sigmoid, float32" in text


def hide_matplotlib(monkeypatch):
    """Make every `import matplotlib...` raise ImportError, as if not installed."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)


def test_output_without_matplotlib_says_how_to_install(runner, tmp_path, monkeypatch):
    hide_matplotlib(monkeypatch)
    path = tmp_path / "plot.png"
    result = invoke(runner, "softplus", "--output", str(path))
    assert_one_line_error(result, "matplotlib", "pip install 'matplotlib>=3.7'")
    assert "softplus[plot]" not in result.stderr
    assert not path.exists()


def test_terminal_plot_works_without_matplotlib(runner, monkeypatch):
    hide_matplotlib(monkeypatch)
    result = invoke(runner, "softplus", *TERMINAL)
    assert result.exit_code == 0


def test_unwritable_output_is_a_runtime_error(runner, tmp_path):
    path = tmp_path / "missing" / "plot.png"
    result = invoke(runner, "softplus", "--output", str(path))
    assert_one_line_error(result, "cannot write", "No such file", exit_code=1)


class FullDisk:
    """A file that takes the first 1,000 bytes written and then reports a full
    disk."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.handle.close()

    def write(self, data):
        self.handle.write(bytes(data)[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failed_write_removes_the_partial_image(runner, tmp_path, monkeypatch):
    path = tmp_path / "plot.png"
    real_open = Path.open

    def open_full(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        return FullDisk(handle) if self == path else handle

    monkeypatch.setattr(Path, "open", open_full)
    result = invoke(runner, "softplus", "--output", str(path))
    assert_one_line_error(result, "cannot write", "No space left", exit_code=1)
    assert not path.exists()


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["softmax", *TERMINAL], ["unknown function 'softmax'", "softplus, sigmoid"]),
        (["--range", "5:-5:1", *TERMINAL], ["invalid range '5:-5:1'"]),
        (["--range", "-5", *TERMINAL], ["invalid range '-5'"]),
        (["--range", "a:b", *TERMINAL], ["START 'a' is not a number"]),
        (["--range", "2:2", *TERMINAL], ["2 or more distinct points"]),
        (["--range", "-5:5", "-n", "1", *TERMINAL], ["--points 1", "2 or more points"]),
        (["--range", "-5:5:1e-9", *TERMINAL], ["at most 100000"]),
        (["--range", "-5:5:1", "-n", "9", *TERMINAL], ["either a STEP or --points"]),
        (["--beta", "0", *TERMINAL], ["--beta 0.0"]),
        (["--force-terminal", "--width", "10"], ["invalid --width 10"]),
        (["--force-terminal", "--height", "3"], ["invalid --height 3"]),
        (
            ["all", "-d", "--force-terminal", "--height", "19"],
            ["invalid --height 19: 6 curve(s) need at least 20 cells"],
        ),
        (["--size", "640x400", *TERMINAL], ["--size sets the image size"]),
        (["-o", "plot.pdf"], ["unsupported image format '.pdf'", ".png or .svg"]),
        (["-o", "plot"], ["unsupported image format '(none)'"]),
        (["-o", "plot.png", "--size", "640"], ["invalid --size '640'", "800x500"]),
        (["-o", "plot.png", "--size", "50x50"], ["between 200 and 10000"]),
        (["-o", "plot.png", "--size", "20000x500"], ["between 200 and 10000"]),
        (["-o", "plot.png", "--width", "80"], ["use --size WxH with --output"]),
        (
            ["--range", "-1e308:1e308", "--dtype", "float64", *TERMINAL],
            ["invalid range '-1e308:1e308'", "within -1e+300:1e+300"],
        ),
        (
            ["--range", "-1e308:1e308", "--dtype", "float64", "-o", "plot.png"],
            ["invalid range '-1e308:1e308'", "within -1e+300:1e+300"],
        ),
        (
            ["--range", "-8e307:8e307", "--dtype", "float64", "-o", "plot.png"],
            ["x reaches -8e+307", "within -1e+300:1e+300"],
        ),
        (
            ["--range", "1e300:1.0000001e300", "--dtype", "float64", *TERMINAL],
            ["x reaches 1.0000001e+300", "within -1e+300:1e+300"],
        ),
        (
            ["relu", "--negative-slope", "1e300", "-r", "-10:1", "--dtype", "float64"]
            + TERMINAL,
            ["relu reaches -1e+301 on the range '-10:1'", "narrow --range"],
        ),
        (
            ["--range", "0:1e-300", "--dtype", "float64", "-o", "plot.png"],
            ["matplotlib cannot draw an x axis from 0.0 to 1e-300", "--force-terminal"],
        ),
        (
            ["--range", "1:1.0000000000000002", "--dtype", "float64", "-o", "plot.svg"],
            ["invalid range '1:1.0000000000000002'", "widen the range"],
        ),
    ],
)
def test_errors_are_one_line(runner, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, *args)
    assert_one_line_error(result, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            [],
            {"COLUMNS": "20"},
            "COLUMNS is 20, but 1 curve(s) need at least 30: pass --width 30 or "
            "more, raise COLUMNS, or write an image with --output",
        ),
        (
            ["all", "-d"],
            {"LINES": "12"},
            "LINES is 12, leaving 10 rows for the plot, but 6 curve(s) need at "
            "least 20: pass --height 20 or more, raise LINES, or write an image "
            "with --output",
        ),
    ],
)
def test_size_error_names_the_variable(runner, args, env, message):
    env = {"COLUMNS": None, "LINES": None, "NO_COLOR": "1", **env}
    result = runner.invoke(app, ["plot", *args, "--force-terminal"], env=env)
    assert_one_line_error(result, message)


@pytest.mark.parametrize(
    ("args", "size", "message"),
    [
        (
            [],
            (20, 40),
            "the terminal is 20 columns wide, but 1 curve(s) need at least 30: "
            "pass --width 30 or more, widen the terminal, or write an image "
            "with --output",
        ),
        (
            ["all", "-d"],
            (80, 12),
            "the terminal has 12 rows, 10 of them for the plot, but 6 curve(s) "
            "need at least 20: pass --height 20 or more, make the terminal "
            "taller, or write an image with --output",
        ),
    ],
)
def test_size_error_names_the_terminal(runner, monkeypatch, args, size, message):
    monkeypatch.setattr(
        "softplus_cli.plot_command.shutil.get_terminal_size",
        lambda: os.terminal_size(size),
    )
    env = {"COLUMNS": None, "LINES": None, "NO_COLOR": "1"}
    result = runner.invoke(app, ["plot", *args, "--force-terminal"], env=env)
    assert_one_line_error(result, message)


def test_too_wide_plot_names_width(runner):
    result = invoke(runner, "--force-terminal", "--width", "100000", "--height", "10")
    assert_one_line_error(
        result,
        "invalid --width 100000: at 2 points per cell plus one, the plot takes "
        "200001 points, more than the 100000 a plot can show; use --width 49999 "
        "or less, or set the points with --points N",
    )
    assert "range" not in result.stderr


def test_too_wide_plot_names_columns(runner):
    env = {"COLUMNS": "100000", "LINES": None, "NO_COLOR": "1"}
    result = runner.invoke(app, ["plot", "--force-terminal"], env=env)
    assert_one_line_error(result, "COLUMNS is 100000", "use --width 49999 or less")


def test_wide_plot_with_points_draws(runner):
    args = ["--force-terminal", "--width", "100000", "--height", "10", "-n", "50"]
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.stderr
    assert {len(line) for line in result.stdout.splitlines()} == {100000}


# --- tick placement -----------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "count", "labels"),
    [
        (-5, 5, 6, ["-4", "-2", "0", "2", "4"]),
        (0, 5.0067, 6, ["0", "1", "2", "3", "4", "5"]),
        (0, 1, 5, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        (0.0067, 0.9933, 4, ["0.25", "0.50", "0.75"]),
        (0, 0.25, 6, ["0.00", "0.05", "0.10", "0.15", "0.20", "0.25"]),
        (-5, 5, 3, ["-5", "0", "5"]),
        # 0.8 times the even spacing 0.0125 rounds to just above the step 0.01.
        (0, 0.05, 5, ["0.00", "0.01", "0.02", "0.03", "0.04", "0.05"]),
        (0.5, 0.5001, 3, ["0.5", "0.50005", "0.5001"]),
        (-1e7, 1e7, 5, ["-1e+07", "-5e+06", "0", "5e+06", "1e+07"]),
    ],
)
def test_nice_ticks(low, high, count, labels):
    positions, text = nice_ticks(low, high, count)
    assert text == labels
    assert all(low <= position <= high for position in positions)


def test_nice_ticks_subnormal_spacing_marks_ends():
    positions, labels = nice_ticks(0.0, 5e-323, 5)
    assert positions == [0.0, 5e-323]
    assert labels == ["0", "4.94e-323"]


def test_nice_ticks_never_label_minus_zero():
    _, labels = nice_ticks(-1, 1, 3)
    assert labels == ["-1", "0", "1"]


# --- very large and very small ranges ------------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "range_spec",
    [
        "-1e300:1e300",
        "0:1e300",
        "-1e300:-1e299",
        "0:1e-300",
        "-1e-300:1e-300",
        "0:5e-323",
        "1:1.0000000000000002",
    ],
)
def test_terminal_plot_of_extreme_range(runner, range_spec):
    args = ["all", "-d", "--range", range_spec, "--dtype", "float64"]
    result = invoke(
        runner, *args, "--force-terminal", "--width", "80", "--height", "20"
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 20


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("range_spec", ["-1e300:1e300", "0:1e300", "0:1e-280"])
@pytest.mark.parametrize("size", ["200x200", "800x500", "2000x200"])
def test_image_of_extreme_range(runner, tmp_path, range_spec, size):
    path = tmp_path / "plot.png"
    args = ["all", "-d", "--range", range_spec, "--dtype", "float64", "-o", str(path)]
    result = invoke(runner, *args, "--size", size)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert png_size(path) == tuple(int(side) for side in size.split("x"))


# --- the installed command ------------------------------------------------------


def run_installed(*args):
    assert SOFTPLUS is not None, "the softplus entry point is not installed"
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [SOFTPLUS, "plot", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_installed_command_draws_with_force_terminal():
    size = ["--width", "60", "--height", "20"]
    result = run_installed(
        "softplus", "relu", "--range", "-5:5", "--force-terminal", *size
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 20
    assert lines[0].strip() == "softplus, relu, float32"
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize("range_spec", ["-1e300:1e300", "-8e307:8e307"])
def test_installed_command_keeps_warnings_off_stderr(tmp_path, range_spec):
    path = tmp_path / "plot.png"
    args = ["relu", "--range", range_spec, "--dtype", "float64", "-o", str(path)]
    result = run_installed(*args)
    lines = result.stderr.splitlines()
    assert "Warning" not in result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == (0 if result.returncode == 0 else 1)


def test_installed_command_into_a_pipe_names_the_fixes():
    result = run_installed("softplus")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("softplus: error: stdout is not a terminal")
    assert len(result.stderr.splitlines()) == 1


def test_importing_the_cli_skips_plotting_libraries():
    code = (
        "import sys, softplus_cli.cli, softplus_cli.commands; "
        "heavy = ('numpy', 'plotext', 'matplotlib'); "
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_functions_as_arguments_or_options(runner):
    as_arguments = invoke(runner, "sigmoid", "relu", *TERMINAL)
    as_options = invoke(runner, "-f", "sigmoid", "-f", "relu", *TERMINAL)
    assert as_arguments.exit_code == 0
    assert as_arguments.stdout == as_options.stdout
    assert "sigmoid" in as_options.stdout

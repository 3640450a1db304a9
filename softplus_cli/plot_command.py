"""The `softplus plot` command: curves in the terminal (plotext) or as an image.

NumPy, plotext and matplotlib are imported inside the functions that use them,
so that `softplus --help` loads none of them.
"""

import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from softplus_cli.activations import ACTIVATIONS
from softplus_cli.cli import (
    DtypeName,
    DtypeOption,
    NumberArgumentsCommand,
    _checked,
    _report_overflow,
    _selected,
    _title,
    app,
    fail,
    with_parameter_options,
)
from softplus_cli.dtypes import DEFAULT_DTYPE

if TYPE_CHECKING:
    import numpy as np

    from softplus_cli.inputs import Grid

DEFAULT_RANGE = "-5:5"
IMAGE_FORMATS = (".png", ".svg")
DEFAULT_IMAGE_SIZE = "800x500"
# Below these sizes the tick labels and the legend leave no room for the curves.
MIN_CELLS = (30, 10)
MIN_PIXELS = 200
# A 10000x10000 RGBA image buffer takes 400 MB.
MAX_PIXELS = 10_000
# A plot shows at most a few thousand distinct columns, so more points only cost
# time: every point is evaluated with correct rounding.
MAX_POINTS = 100_000
# SVG lengths are in points (1/72 in) and browsers draw 96 CSS pixels to the
# inch, so a figure W/96 inches wide is W pixels wide both as PNG and as SVG.
IMAGE_DPI = 96
IMAGE_INSTALL_HINT = "pip install 'softplus[plot]'"
SIZE_PATTERN = re.compile(r"(\d+)[xX](\d+)")


@dataclass(frozen=True)
class Curve:
    """One plotted function or derivative: its legend label and finite points."""

    label: str
    x: "np.ndarray"
    y: "np.ndarray"
    derivative: bool


@app.command("plot", cls=NumberArgumentsCommand)
@with_parameter_options
def plot_command(
    functions: Annotated[
        Optional[list[str]],
        typer.Argument(
            help=f"Functions to plot: {', '.join(ACTIVATIONS)}, or all. "
            "Default: softplus.",
            show_default=False,
        ),
    ] = None,
    range_spec: Annotated[
        str,
        typer.Option(
            "--range",
            "-r",
            help="x range START:STOP, or START:STOP:STEP to choose the points. "
            "Without a step or --points, the plot width sets the number of points.",
        ),
    ] = DEFAULT_RANGE,
    points: Annotated[
        Optional[int],
        typer.Option(
            "--points",
            "-n",
            help="Number of evenly spaced points, as numpy.linspace takes it.",
            show_default=False,
        ),
    ] = None,
    derivative: Annotated[
        bool,
        typer.Option("--derivative", "-d", help="Add each function's derivative."),
    ] = False,
    derivative_only: Annotated[
        bool,
        typer.Option("--derivative-only", help="Plot only the derivatives."),
    ] = False,
    dtype: DtypeOption = DtypeName[DEFAULT_DTYPE],  # type: ignore[valid-type]
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Write the plot to this .png or .svg file instead of the terminal "
            f"(needs matplotlib: {IMAGE_INSTALL_HINT}).",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        Optional[str],
        typer.Option(
            "--size",
            help=f"Image size WIDTHxHEIGHT in pixels, for --output. "
            f"Default: {DEFAULT_IMAGE_SIZE}.",
            show_default=False,
        ),
    ] = None,
    width: Annotated[
        Optional[int],
        typer.Option(
            "--width",
            help="Terminal plot width in character cells. Default: the terminal's.",
            show_default=False,
        ),
    ] = None,
    height: Annotated[
        Optional[int],
        typer.Option(
            "--height",
            help="Terminal plot height in character cells. "
            "Default: the terminal's, less 2 rows for the command and the prompt.",
            show_default=False,
        ),
    ] = None,
    force_terminal: Annotated[
        bool,
        typer.Option(
            "--force-terminal",
            help="Draw the terminal plot even when stdout is not a terminal. "
            "Set NO_COLOR to leave out the colour codes.",
        ),
    ] = False,
    parameters: dict[str, float | None] | None = None,
) -> None:
    """Plot functions and derivatives: softplus plot softplus relu --range -5:5.

    Draws in the terminal, one colour per curve, or writes a PNG or SVG image
    with --output. Results are computed as in eval: correctly rounded to
    --dtype, with the same function options.
    """
    names = _selected(functions, ["softplus"])
    parameters = _checked(parameters or {})
    if output is not None:
        image_size = _image_size(output, size, width, height)
        columns = image_size[0] // 2
    else:
        cells = _terminal_cells(size, width, height, force_terminal)
        columns = cells[0]

    grid = _grid(range_spec, points, default_points=2 * columns + 1)
    curves = _curves(grid, names, derivative, derivative_only, dtype.value, parameters)
    title = _title(names, dtype.value, parameters)

    if output is not None:
        _write_image(curves, title, output, image_size)
    else:
        color = "NO_COLOR" not in os.environ
        text = _render_text(curves, title, cells, color)
        sys.stdout.write(text + "\n")


def _terminal_cells(
    size: str | None, width: int | None, height: int | None, force_terminal: bool
) -> tuple[int, int]:
    """Return the terminal plot's (width, height) in cells, or fail."""
    if size is not None:
        fail("--size sets the image size for --output; use --width and --height here")
    if not force_terminal and not sys.stdout.isatty():
        fail(
            "stdout is not a terminal: run softplus plot in a terminal, write an "
            "image with --output FILE.png, or add --force-terminal for text"
        )
    terminal = shutil.get_terminal_size()
    cells = (
        width if width is not None else terminal.columns,
        height if height is not None else terminal.lines - 2,
    )
    for option, value, least in zip(("--width", "--height"), cells, MIN_CELLS):
        if value < least:
            fail(f"invalid {option} {value}: the plot needs at least {least} cells")
    return cells


def _image_size(
    output: Path, size: str | None, width: int | None, height: int | None
) -> tuple[int, int]:
    """Check the --output file name and return the image size in pixels, or fail."""
    if output.suffix.lower() not in IMAGE_FORMATS:
        fail(
            f"unsupported image format {output.suffix or '(none)'!r} in "
            f"--output {str(output)!r}: use a .png or .svg file name"
        )
    if width is not None or height is not None:
        fail("--width and --height size the terminal plot; use --size WxH with --output")
    text = size if size is not None else DEFAULT_IMAGE_SIZE
    match = SIZE_PATTERN.fullmatch(text.strip())
    if match is None:
        fail(f"invalid --size {text!r}: use WIDTHxHEIGHT in pixels, as in 800x500")
    pixels = (int(match.group(1)), int(match.group(2)))
    if not all(MIN_PIXELS <= value <= MAX_PIXELS for value in pixels):
        fail(
            f"invalid --size {text!r}: width and height must be between "
            f"{MIN_PIXELS} and {MAX_PIXELS} pixels"
        )
    return pixels


def _grid(range_spec: str, points: int | None, default_points: int) -> "Grid":
    """Parse --range into a grid of at least 2 and at most MAX_POINTS points."""
    from softplus_cli.inputs import InputError, parse_range

    if points is None and range_spec.count(":") == 1:
        points = default_points
    try:
        grid = parse_range(range_spec, points)
    except InputError as error:
        fail(str(error))
    if grid.count > MAX_POINTS:
        fail(
            f"invalid range {range_spec!r}: {grid.count} points is more than a plot "
            f"can show; use at most {MAX_POINTS}, with a larger STEP or --points"
        )
    if grid.count < 2 or grid.first == grid.last:
        fail(f"invalid range {range_spec!r}: a plot needs 2 or more distinct points")
    return grid


def _curves(
    grid: "Grid",
    names: list[str],
    derivative: bool,
    derivative_only: bool,
    dtype: str,
    parameters: dict[str, float | None],
) -> list[Curve]:
    """Evaluate each function (and derivative) on the grid, keeping finite points.

    Points where x or the result is ±inf in `dtype` are left out of the curve,
    after a warning for inputs beyond the dtype's range.
    """
    import numpy as np

    from softplus_cli.activations import evaluate
    from softplus_cli.dtypes import resolve_dtype
    from softplus_cli.inputs import Overflow, grid_chunks

    overflow = Overflow()
    x = np.concatenate(list(grid_chunks(grid, resolve_dtype(dtype), overflow)))
    _report_overflow(overflow, dtype)
    kinds = [True] if derivative_only else [False, True] if derivative else [False]

    curves = []
    for name in names:
        for is_derivative in kinds:
            y = evaluate(ACTIVATIONS[name], x, parameters, derivative=is_derivative)
            x_wide = x.astype(np.float64)
            y_wide = y.astype(np.float64)
            finite = np.isfinite(x_wide) & np.isfinite(y_wide)
            label = name + ("'" if is_derivative else "")
            if np.count_nonzero(finite) < 2:
                fail(f"{label} has fewer than 2 finite values in {dtype} on this range")
            curves.append(Curve(label, x_wide[finite], y_wide[finite], is_derivative))
    return curves


def _limits(curves: list[Curve], axis: str) -> tuple[float, float]:
    """Return the (low, high) data limits on `axis`, widened if they are equal."""
    low = min(float(getattr(curve, axis).min()) for curve in curves)
    high = max(float(getattr(curve, axis).max()) for curve in curves)
    if low == high:
        margin = max(abs(low) * 0.1, 0.5)
        return low - margin, high + margin
    return low, high


def nice_ticks(low: float, high: float, count: int) -> tuple[list[float], list[str]]:
    """Return about `count` tick positions in [low, high] at a 1, 2, 2.5 or 5 step.

    The labels carry as many decimals as the step needs, so -5:5 reads
    -4 -2 0 2 4 rather than -5.0 -3.3 -1.7 0.0 1.7 3.3 5.0.
    """
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    mantissa = min((1, 2, 2.5, 5, 10), key=lambda m: abs(math.log(m * magnitude / raw)))
    step = mantissa * magnitude
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    positions = [index * step for index in range(first, last + 1)]

    largest = max(abs(low), abs(high))
    if largest >= 1e6 or step < 1e-4:
        labels = [f"{value:.4g}" for value in positions]
    else:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        decimals += 1 if mantissa == 2.5 else 0
        # Adding 0.0 turns -0.0 into 0.0, so the origin never reads "-0".
        labels = [f"{value + 0.0:.{decimals}f}" for value in positions]
    return positions, labels


def _render_text(
    curves: list[Curve], title: str, cells: tuple[int, int], color: bool
) -> str:
    """Draw the curves with plotext in `cells` (width, height) character cells."""
    plotext = _import_plotext()

    plotext.terminal.limit(False, False)
    figure = plotext.figure
    figure.clear()
    figure.plot_size(*cells)
    figure.theme("simple" if color else "colorless")
    figure.title(title)
    figure.label("x", axis="x")
    figure.label("y", axis="y")
    for curve in curves:
        signal = figure.signal(curve.x.tolist(), curve.y.tolist())
        figure.draw(signal.lines().label(curve.label))

    width, height = cells
    for axis, count in (("x", max(2, width // 12)), ("y", max(2, height // 4))):
        low, high = _limits(curves, axis)
        figure.ruler(axis).lim(low, high)
        figure.ruler(axis).ticks(*nice_ticks(low, high, count))
    text = figure.build().string(colorless=not color)
    figure.clear()
    return text


def _import_plotext() -> Any:
    try:
        import plotext
    except ImportError:
        fail("the terminal plot needs plotext 6 or later: pip install 'plotext>=6'")
    # plotext 5 has no `figure` object: its functions live at the module level.
    if not hasattr(plotext, "figure") or not hasattr(plotext.figure, "signal"):
        fail(
            f"plotext {getattr(plotext, '__version__', '(unknown version)')} is "
            "too old for the terminal plot: pip install 'plotext>=6'"
        )
    return plotext


def _write_image(
    curves: list[Curve], title: str, path: Path, pixels: tuple[int, int]
) -> None:
    """Write the curves to a PNG or SVG file of `pixels` (width, height)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        fail(f"writing images needs matplotlib: {IMAGE_INSTALL_HINT}")

    width, height = pixels
    figure = Figure(
        figsize=(width / IMAGE_DPI, height / IMAGE_DPI),
        dpi=IMAGE_DPI,
        layout="constrained",
    )
    axes = figure.add_subplot()
    for curve in curves:
        style = "--" if curve.derivative else "-"
        axes.plot(curve.x, curve.y, style, label=curve.label, linewidth=1.8)
    axes.axhline(0, color="0.6", linewidth=0.8)
    axes.axvline(0, color="0.6", linewidth=0.8)
    axes.set_xlim(*_limits(curves, "x"))
    axes.grid(True, color="0.9")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(title)
    axes.legend(loc="upper left")

    image_format = path.suffix.lower().lstrip(".")
    try:
        figure.savefig(path, format=image_format, dpi=IMAGE_DPI)
    except OSError as error:
        fail(f"cannot write {str(path)!r}: {error.strerror or error}", exit_code=1)

"""The `softplus plot` command: curves in the terminal (plotext) or as an image.

NumPy, plotext and matplotlib are imported inside the functions that use them,
so that `softplus --help` loads none of them.
"""

import contextlib
import io
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from softplus_cli.activations import ACTIVATIONS
from softplus_cli.cli import deferred_app, fail, warn
from softplus_cli.commands import (
    DtypeName,
    DtypeOption,
    FunctionsOption,
    NumberArgumentsCommand,
    PointsOption,
    checked,
    complete_function_name,
    format_title,
    report_overflow,
    selected,
    with_parameter_options,
)
from softplus_cli.dtypes import DEFAULT_DTYPE

if TYPE_CHECKING:
    import numpy as np

    from softplus_cli.inputs import Grid

DEFAULT_RANGE = "-5:5"
IMAGE_FORMATS = (".png", ".svg")
DEFAULT_IMAGE_SIZE = "800x500"
# Below this width the tick labels and the legend leave no room for the curves.
MIN_WIDTH = 30
MIN_PIXELS = 200
# The largest image side: a 10000x10000 RGBA buffer already takes 400 MB.
MAX_PIXELS = 10_000
# Ten points per pixel column of the widest image. More points only cost time,
# because every point is evaluated with correct rounding.
MAX_POINTS = 100_000
# The largest |x| or |y| a plot shows. An axis at most 2e300 wide keeps the tick
# arithmetic of nice_ticks and of matplotlib far from float64 overflow. The
# MaxNLocator of matplotlib 3.11 multiplies its tick scale by up to 20, and it
# overflows on an x axis from -8e307 to 8e307.
MAX_MAGNITUDE = 1e300
# nice_ticks puts ticks only at the ends of an axis whose even tick spacing is
# smaller than this.
MIN_TICK_SPACING = 1e-318
# SVG lengths are in points (1/72 in) and browsers draw 96 CSS pixels to the
# inch, so a figure W/96 inches wide is W pixels wide both as PNG and as SVG.
IMAGE_DPI = 96
# The floor of the `plot` extra in pyproject.toml. The package is installed
# from a clone, so `pip install 'softplus[plot]'` would look on PyPI instead.
IMAGE_INSTALL_HINT = "pip install 'matplotlib>=3.7'"
# plotext markers: quadrant blocks, braille dots, then single characters, enough
# for all three functions with their derivatives.
COLORLESS_MARKERS = ["hd", "braille", "•", "+", "x", "o"]
SIZE_PATTERN = re.compile(r"(\d+)[xX](\d+)")


class Curve(NamedTuple):
    """One plotted function or derivative: its legend label and finite points."""

    label: str
    x: "np.ndarray"
    y: "np.ndarray"
    derivative: bool


command_app = deferred_app()


@command_app.command("plot", cls=NumberArgumentsCommand)
@with_parameter_options
def plot_command(
    functions: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Functions to plot: {', '.join(ACTIVATIONS)}, or all. "
            "Default: softplus.",
            show_default=False,
            metavar="[FUNCTION]...",
            autocompletion=complete_function_name,
        ),
    ] = None,
    function: FunctionsOption = None,
    range_spec: Annotated[
        str,
        typer.Option(
            "--range",
            "-r",
            help="x range START:STOP, or START:STOP:STEP to choose the points. "
            "Without a step or --points, the plot width sets the number of points.",
            metavar="START:STOP[:STEP]",
        ),
    ] = DEFAULT_RANGE,
    points: PointsOption = None,
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
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the plot to this .png or .svg file instead of the terminal "
            f"(needs matplotlib: {IMAGE_INSTALL_HINT}).",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            "--size",
            help=f"Image size WIDTHxHEIGHT in pixels, for --output. "
            f"Default: {DEFAULT_IMAGE_SIZE}.",
            show_default=False,
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(
            "--width",
            help="Terminal plot width in character cells. Default: the terminal's.",
            show_default=False,
        ),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option(
            "--height",
            help="Terminal plot height in character cells, at least 2 per curve "
            "plus 8. Default: the terminal's, less 2 rows for the command and the "
            "prompt.",
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
    names = selected([*(functions or []), *(function or [])], ["softplus"])
    parameters = checked(parameters or {}, names)
    if derivative_only:
        if derivative:
            warn(
                "--derivative and --derivative-only both given: --derivative-only "
                "wins, so only the derivatives are plotted"
            )
        kinds = [True]
    elif derivative:
        kinds = [False, True]
    else:
        kinds = [False]
    if output is not None:
        image_size = _image_size(output, size, width, height)
        columns = image_size[0] // 2
    else:
        curve_count = len(names) * len(kinds)
        cells = _terminal_cells(size, width, height, force_terminal, curve_count)
        columns = cells[0]

    grid = _grid(range_spec, points, columns, width)
    curves = _curves(grid, names, kinds, dtype.value, parameters)
    _check_magnitudes(curves, range_spec)
    title = format_title(names, dtype.value, parameters)

    if output is not None:
        _write_image(curves, title, output, image_size, range_spec)
    else:
        color = "NO_COLOR" not in os.environ
        text = _render_text(curves, title, cells, color)
        sys.stdout.write(text.rstrip("\n") + "\n")


def _terminal_cells(
    size: str | None,
    width: int | None,
    height: int | None,
    force_terminal: bool,
    curve_count: int,
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
    # The legend box takes 2 rows per curve plus 3. The title, the two frame edges,
    # the tick labels and the x label take 5 more.
    least = (MIN_WIDTH, 2 * curve_count + 8)
    for option, option_value, value, minimum in zip(
        ("--width", "--height"), (width, height), cells, least, strict=True
    ):
        if value >= minimum:
            continue
        if option_value is None:
            fail(_terminal_too_small(option, value, minimum, curve_count))
        fail(
            f"invalid {option} {value}: {curve_count} curve(s) need at least "
            f"{minimum} cells; use {option} {minimum} or more, or write an image "
            "with --output"
        )
    return cells


def _terminal_too_small(option: str, cells: int, minimum: int, curve_count: int) -> str:
    """Return the error for a plot that the terminal's size, or the COLUMNS or
    LINES variable that overrides it, leaves too small."""
    if option == "--width":
        variable = "COLUMNS"
        cause = f"the terminal is {cells} columns wide"
        enlarge = "widen the terminal"
    else:
        variable = "LINES"
        cause = f"the terminal has {cells + 2} rows, {cells} of them for the plot"
        enlarge = "make the terminal taller"
    # shutil.get_terminal_size takes the variable in place of the terminal's
    # size when it is a positive integer.
    try:
        setting = int(os.environ.get(variable, ""))
    except ValueError:
        setting = 0
    if setting > 0:
        cause = f"{variable} is {setting}"
        if variable == "LINES":
            cause += f", leaving {cells} rows for the plot"
        enlarge = f"raise {variable}"
    return (
        f"{cause}, but {curve_count} curve(s) need at least {minimum}: pass "
        f"{option} {minimum} or more, {enlarge}, or write an image with --output"
    )


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
        fail(
            "--width and --height size the terminal plot; use --size WxH with --output"
        )
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


def _grid(
    range_spec: str, points: int | None, columns: int, width: int | None
) -> "Grid":
    """Parse --range into a grid of at least 2 and at most MAX_POINTS points.

    Without a STEP or --points, the grid has 2 points per column plus one.
    `width` is the --width option, which the error for too many columns names.
    """
    from softplus_cli.inputs import InputError, parse_range

    if points is None and range_spec.count(":") == 1:
        points = 2 * columns + 1
        # Images are at most MAX_PIXELS wide, so only a terminal plot gets here.
        if points > MAX_POINTS:
            fail(_too_wide(width, columns))
    try:
        grid = parse_range(range_spec, points)
    except InputError as error:
        fail(str(error))
    if grid.count > MAX_POINTS:
        fail(
            f"invalid range {range_spec!r}: {grid.count} points is more than a plot "
            f"can show; use at most {MAX_POINTS}, with a larger STEP or --points"
        )
    if grid.count < 2 and points is not None and range_spec.count(":") == 1:
        fail(f"invalid --points {points}: a plot needs 2 or more points")
    if grid.count < 2 or grid.first == grid.last:
        fail(f"invalid range {range_spec!r}: a plot needs 2 or more distinct points")
    return grid


def _too_wide(width: int | None, columns: int) -> str:
    """Return the error for a terminal plot too wide for its default points."""
    # shutil.get_terminal_size takes COLUMNS in place of the terminal's width
    # when it is a positive integer.
    try:
        from_variable = int(os.environ.get("COLUMNS", "")) == columns
    except ValueError:
        from_variable = False
    if width is not None:
        cause = f"invalid --width {width}"
    elif from_variable:
        cause = f"COLUMNS is {columns}"
    else:
        cause = f"the terminal is {columns} columns wide"
    return (
        f"{cause}: at 2 points per cell plus one, the plot takes {2 * columns + 1} "
        f"points, more than the {MAX_POINTS} a plot can show; use --width "
        f"{(MAX_POINTS - 1) // 2} or less, or set the points with --points N"
    )


def _curves(
    grid: "Grid",
    names: list[str],
    kinds: list[bool],
    dtype: str,
    parameters: dict[str, float | None],
) -> list[Curve]:
    """Evaluate each function on the grid, keeping finite points.

    `kinds` lists what to plot for each function: False for its value, True for
    its derivative.

    Points where x or the result is ±inf in `dtype` are left out of the curve,
    after a warning for inputs beyond the dtype's range.
    """
    import numpy as np

    from softplus_cli.activations import evaluate
    from softplus_cli.dtypes import resolve_dtype
    from softplus_cli.inputs import Overflow, grid_chunks

    overflow = Overflow()
    x = np.concatenate(list(grid_chunks(grid, resolve_dtype(dtype), overflow)))
    report_overflow(overflow, dtype)

    curves = []
    for name in names:
        for is_derivative in kinds:
            y = evaluate(ACTIVATIONS[name], x, parameters, derivative=is_derivative)
            x_wide = x.astype(np.float64)
            y_wide = y.astype(np.float64)
            finite = np.isfinite(x_wide) & np.isfinite(y_wide)
            label = name + ("'" if is_derivative else "")
            if np.count_nonzero(finite) < 2:
                fail(
                    f"{label} has fewer than 2 finite values in {dtype} on this "
                    "range: narrow --range, or use --dtype float64"
                )
            curves.append(Curve(label, x_wide[finite], y_wide[finite], is_derivative))
    return curves


def _check_magnitudes(curves: list[Curve], range_spec: str) -> None:
    """Fail if an x or y value is beyond ±MAX_MAGNITUDE."""
    for curve in curves:
        x = _farthest_from_zero(curve.x)
        if abs(x) > MAX_MAGNITUDE:
            fail(
                f"invalid range {range_spec!r}: x reaches {x!r}, beyond the "
                f"±{MAX_MAGNITUDE:g} a plot can show; use a range within "
                f"-{MAX_MAGNITUDE:g}:{MAX_MAGNITUDE:g}"
            )
    for curve in curves:
        y = _farthest_from_zero(curve.y)
        if abs(y) > MAX_MAGNITUDE:
            fail(
                f"{curve.label} reaches {y!r} on the range {range_spec!r}, beyond "
                f"the ±{MAX_MAGNITUDE:g} a plot can show: narrow --range"
            )


def _farthest_from_zero(values: "np.ndarray") -> float:
    import numpy as np

    return float(values[np.argmax(np.abs(values))])


def _limits(curves: list[Curve], axis: str) -> tuple[float, float]:
    """Return the (low, high) data limits on `axis`, widened if they are equal."""
    low = min(float(getattr(curve, axis).min()) for curve in curves)
    high = max(float(getattr(curve, axis).max()) for curve in curves)
    if low == high:
        margin = max(abs(low) * 0.1, 0.5)
        return low - margin, high + margin
    return low, high


def nice_ticks(low: float, high: float, count: int) -> tuple[list[float], list[str]]:
    """Return about `count` ticks in [low, high], at least 2, at a 1, 2, 2.5 or 5 step.

    The labels carry as many decimals as the step needs, so -5:5 reads
    -4 -2 0 2 4 rather than -5.0 -3.3 -1.7 0.0 1.7 3.3 5.0.
    """
    raw = (high - low) / max(count - 1, 1)
    # A spacing this close to the smallest subnormal (5e-324) leaves no room for
    # a 1, 2, 2.5 or 5 step, because the steps round to a few subnormal units.
    if raw < MIN_TICK_SPACING:
        return [low, high], [f"{low:.3g}", f"{high:.3g}"]
    magnitude = 10.0 ** math.floor(math.log10(raw))
    steps = [m * magnitude for m in (0.25, 0.5, 1, 2, 2.5, 5, 10)]
    # The smallest step of at least 0.8 times the even spacing, so at most 25% more
    # ticks than `count`, unless 2 ticks need a smaller step. The factor 1 - 1e-9
    # keeps rounding (0.8 * 0.0125 is 0.010000000000000002) from skipping a step.
    index = next(i for i, step in enumerate(steps) if step >= 0.8 * raw * (1 - 1e-9))
    while True:
        step = steps[index]
        first = math.ceil(low / step - 1e-9)
        last = math.floor(high / step + 1e-9)
        if last - first >= 1 or index == 0:
            break
        index -= 1
    positions = [k * step for k in range(first, last + 1)]

    largest = max(abs(low), abs(high))
    if largest >= 1e6 or step < 1e-4:
        digits = math.ceil(math.log10(largest / step)) + 1
        labels = [f"{value:.{digits}g}" for value in positions]
    else:
        decimals = next(
            d for d in range(10) if abs(round(step, d) - step) < 1e-9 * step
        )
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
    for index, curve in enumerate(curves):
        # Without colour, each curve gets its own marker.
        marker = "hd" if color else COLORLESS_MARKERS[index % len(COLORLESS_MARKERS)]
        signal = figure.signal(curve.x.tolist(), curve.y.tolist(), marker=marker)
        figure.draw(signal.lines().label(curve.label))

    width, height = cells
    for axis, count in (("x", max(3, width // 12)), ("y", max(3, height // 4))):
        low, high = _limits(curves, axis)
        figure.ruler(axis).lim(low, high)
        figure.ruler(axis).ticks(*nice_ticks(low, high, count))
    text = figure.build().string(colorless=not color)
    figure.clear()
    return text


def _import_plotext() -> Any:
    # plotext is a dependency, so this error means a broken or partial install.
    try:
        import plotext
    except ImportError:
        fail("the terminal plot needs plotext: pip install 'plotext>=6.1'")
    # The figure.signal API used here is plotext 6's (tested with 6.1.0). plotext 5
    # plots through module-level functions such as plotext.plot.
    if not hasattr(plotext, "figure") or not hasattr(plotext.figure, "signal"):
        fail(
            f"plotext {getattr(plotext, '__version__', '(unknown version)')} is "
            "too old for the terminal plot: pip install 'plotext>=6.1'"
        )
    return plotext


def _write_image(
    curves: list[Curve],
    title: str,
    path: Path,
    pixels: tuple[int, int],
    range_spec: str,
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
    x_limits = _limits(curves, "x")
    # set_xlim widens limits that its locator finds singular: all within about
    # 2e-287 of 0, or apart by at most about 1e-15 of the larger. Such an axis
    # would show the curves as a dot.
    if axes.xaxis.get_major_locator().nonsingular(*x_limits) != x_limits:
        low, high = x_limits
        fail(
            f"invalid range {range_spec!r}: matplotlib cannot draw an x axis from "
            f"{low!r} to {high!r}; widen the range, or draw it in the terminal "
            "with --force-terminal"
        )
    axes.set_xlim(*x_limits)
    axes.grid(True, color="0.9")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(title)
    axes.legend(loc="upper left")

    image_format = path.suffix.lower().lstrip(".")
    # Rendered in memory first, so that a failed write (a full disk, say) can
    # remove what it left of the file.
    image = io.BytesIO()
    figure.savefig(image, format=image_format, dpi=IMAGE_DPI)
    try:
        output = path.open("wb")
        try:
            with output:
                output.write(image.getbuffer())
        except OSError:
            # Only a regular file goes: never a device such as /dev/full, nor a
            # symbolic link.
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
    except OSError as error:
        fail(f"cannot write {str(path)!r}: {error.strerror or error}", exit_code=1)

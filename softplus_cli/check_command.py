"""`softplus check`: measure how often results are not correctly rounded."""

# No `from __future__ import annotations` here: Typer reads the command's
# Annotated parameters at run time.
import enum
import math
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from softplus_cli.activations import ACTIVATIONS
from softplus_cli.cli import deferred_app, fail
from softplus_cli.commands import (
    DtypeName,
    DtypeOption,
    FunctionsOption,
    NumberArgumentsCommand,
    checked,
    complete_function_name,
    selected,
    with_parameter_options,
)
from softplus_cli.dtypes import DEFAULT_DTYPE

if TYPE_CHECKING:
    import numpy as np

    from softplus_cli.accuracy import Tally

DEFAULT_SAMPLES = 10_000
# Each sample takes several float64 array elements, so 10**8 needs a few GB.
MAX_SAMPLES = 10**8
# Inputs evaluated at once in an exhaustive check: 8 MiB per float64 array.
EXHAUSTIVE_CHUNK = 1 << 20
# An exhaustive check accepts at most the 2**32 inputs of float32.
EXHAUSTIVE_LIMIT = 1 << 32
# The progress bar appears once a check has run this long.
PROGRESS_DELAY = 1.0


class Against(enum.StrEnum):
    project = "project"
    numpy = "numpy"
    torch = "torch"
    jax = "jax"
    tensorflow = "tensorflow"


def parse_bounds(text: str) -> tuple[float, float]:
    """Parse A:B into two floats with A <= B, or fail with exit status 2."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        fail(f"invalid --range {text!r}: expected A:B, such as -20:20")
    if not (math.isfinite(low) and math.isfinite(high)):
        fail(f"invalid --range {text!r}: A and B must be finite, such as -20:20")
    if not low <= high:
        fail(f"invalid --range {text!r}: A must be less than or equal to B")
    return low, high


class Progress:
    """A Rich progress bar on stderr that appears only after PROGRESS_DELAY
    seconds, and only on a terminal."""

    def __init__(self, total: int, description: str):
        self.total = total
        self.description = description
        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None
        self.done = 0

    def advance(self, count: int) -> None:
        self.done += count
        late = time.monotonic() - self.started >= PROGRESS_DELAY
        if self.bar is None and late and sys.stderr.isatty():
            self._start()
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def _start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        from softplus_cli.console import make_console

        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=make_console(sys.stderr),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(
            self.description, total=self.total, completed=self.done
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _columns(functions: list[str]) -> list[tuple[str, bool]]:
    return [(name, derivative) for name in functions for derivative in (False, True)]


def _label(name: str, derivative: bool) -> str:
    return name + ("'" if derivative else "")


def run_check(
    chunks: Iterator["np.ndarray"],
    functions: list[str],
    against: str,
    parameters: dict[str, float | None],
    own_reference: bool,
    progress: Progress,
) -> dict[str, "Tally"]:
    """Compare `against` with the reference on every chunk, per function.

    The reference is mpmath at every input, or with `own_reference` the
    project's own correctly rounded algorithm, which is fast enough for 2**32.
    """
    from softplus_cli.accuracy import (
        IMPLEMENTATIONS,
        MissingFrameworkError,
        Tally,
        UnsupportedSettingError,
        exact_by_mpmath,
        exact_in_working,
    )

    implementation = IMPLEMENTATIONS[against]
    reference_of = exact_in_working if own_reference else exact_by_mpmath
    tallies = {_label(*column): Tally() for column in _columns(functions)}
    for x in chunks:
        for name, derivative in _columns(functions):
            reference, exact = reference_of(name, derivative, x, parameters)
            try:
                result = implementation(name, derivative, x, parameters)
            except (MissingFrameworkError, UnsupportedSettingError) as error:
                fail(str(error))
            tallies[_label(name, derivative)].add(x, result, reference, exact)
            progress.advance(x.size)
    return tallies


def _number(value: float, dtype: "np.dtype") -> str:
    import numpy as np

    if value != value:
        return "nan"
    return str(np.array([value]).astype(dtype)[0])


def _count_of_inputs(total: int) -> str:
    return f"{total:,} input" if total == 1 else f"{total:,} inputs"


def _ulp(value: float) -> str:
    if value == float("inf"):
        return "inf"
    text = f"{value:.3g}"
    # An error just above half an ulp is a wrong rounding: keep the digits
    # that show it is above 0.5.
    if value > 0.5 and float(text) <= 0.5:
        text = f"{value:.10g}"
    return text


HEADER = [
    "function",
    "inputs",
    "not correctly rounded",
    "max ulp",
    "mean ulp",
    "worst x",
    "result",
    "correct",
    "inf",
    "nan",
    "-0",
    "subnormal",
    "flushed to 0",
]


def _rows(tallies: dict[str, "Tally"], dtype: "np.dtype") -> list[list[str]]:
    rows = []
    for label, tally in tallies.items():
        worst = [
            _number(value, dtype)
            for value in (tally.worst_input, tally.worst_result, tally.worst_reference)
        ]
        # Special values read "result/correct": how many of each the checked
        # implementation returned, and how many correctly rounded results are.
        special = [f"{got}/{want}" for got, want in tally.special.values()]
        rows.append(
            [
                label,
                str(tally.inputs),
                str(tally.wrong),
                _ulp(tally.max_ulp),
                _ulp(tally.mean_ulp),
                *worst,
                *special,
                str(tally.flushed),
            ]
        )
    return rows


def render(
    tallies: dict[str, "Tally"], dtype: "np.dtype", title: str, note: str
) -> None:
    """Write the report: a Rich table on a terminal, tab-separated text otherwise."""
    rows = _rows(tallies, dtype)
    if not sys.stdout.isatty():
        print(f"# {title}")
        print(f"# {note}")
        print("\t".join(HEADER))
        for row in rows:
            print("\t".join(row))
        return

    from rich.table import Table

    from softplus_cli.console import make_console

    # Three narrow tables instead of one wide one, so that an 80-column
    # terminal shows every digit.
    groups = [
        (title, note, [0, 1, 2, 3, 4]),
        ("worst input", None, [0, 5, 6, 7]),
        (
            "special values: results / correctly rounded results",
            None,
            [0, 8, 9, 10, 11, 12],
        ),
    ]
    console = make_console()
    for heading, caption, columns in groups:
        table = Table(title=heading, caption=caption)
        for column in columns:
            table.add_column(
                HEADER[column],
                justify="left" if column == 0 else "right",
                no_wrap=column != 2,
            )
        for row in rows:
            style = "red" if row[2] != "0" else None
            table.add_row(*[row[column] for column in columns], style=style)
        console.print(table)


def _describe(against: str, own_reference: bool) -> str:
    if own_reference:
        reference = (
            "reference: the project's own algorithm (fast path in float64 or long "
            "double, near-midpoint results settled in double-double or mpmath)"
        )
    else:
        reference = "reference: mpmath at every input, rounded once to the dtype"
    if against == "project":
        return reference
    return f"{reference}; ulp errors are measured against the exact value"


command_app = deferred_app()


@command_app.command("check", cls=NumberArgumentsCommand)
@with_parameter_options
def check_command(
    functions: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Functions to check: {', '.join(ACTIVATIONS)}, or all (the default). "
            "Each function's derivative is checked too.",
            show_default=False,
            metavar="[FUNCTION]...",
            autocompletion=complete_function_name,
        ),
    ] = None,
    function: FunctionsOption = None,
    dtype: DtypeOption = DtypeName[DEFAULT_DTYPE],  # type: ignore[valid-type]
    range_spec: Annotated[
        str | None,
        typer.Option(
            "--range",
            "-r",
            help="Check inputs in A:B only: uniform samples, or every value with "
            "--exhaustive.",
            metavar="A:B",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            "-n",
            help=f"Random inputs per function (default {DEFAULT_SAMPLES}), plus "
            "±0, ±inf, nan and the dtype's extremes. Without --range they cover "
            "every exponent.",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    exhaustive: Annotated[
        bool,
        typer.Option(
            "--exhaustive",
            help="Check every value of the dtype (in --range if given). float16 "
            "and bfloat16 take seconds; all of float32 takes about an hour of "
            "CPU time.",
        ),
    ] = False,
    against: Annotated[
        Against,
        typer.Option(
            "--against",
            help="Implementation to check: this project, or an installed framework.",
        ),
    ] = Against.project,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    parameters: dict[str, float | None] | None = None,
) -> None:
    """Check correct rounding: softplus check --dtype float16 --exhaustive.

    Reports per function and derivative how many results are not correctly
    rounded, the max and mean error in ulp, the worst input, and how many
    results are inf, nan, -0.0 or subnormal. Sampled checks compare with mpmath
    at every input. Exits with status 1 when any result is not correctly rounded.
    """
    import numpy as np

    from softplus_cli.accuracy import (
        exhaustive_chunks,
        exhaustive_count,
        framework_installed,
        sample_inputs,
    )
    from softplus_cli.dtypes import resolve_dtype

    chosen = selected([*(functions or []), *(function or [])], ["all"])
    parameters = checked(parameters or {}, chosen)
    target = resolve_dtype(dtype.value)
    low, high = parse_bounds(range_spec) if range_spec is not None else (None, None)
    if not framework_installed(against.value):
        fail(f"{against.value} is not installed: pip install {against.value}")
    if exhaustive and samples is not None:
        fail("--samples and --exhaustive cannot be combined: choose one")
    if samples is not None and not 1 <= samples <= MAX_SAMPLES:
        fail(f"invalid --samples {samples}: use 1 to {MAX_SAMPLES:,}")
    if seed < 0:
        fail(f"invalid --seed {seed}: use a whole number from 0 up")
    if low is not None and high is not None:
        largest = float(np.finfo(target).max)
        if max(abs(low), abs(high)) > largest:
            fail(
                f"invalid --range {range_spec!r}: {dtype.value} values lie within "
                f"±{largest:.6g}; narrow the range"
            )

    if exhaustive:
        total = exhaustive_count(target, low, high)
        if total == 0:
            fail(f"no {dtype.value} values lie in --range {range_spec}: widen it")
        if total > EXHAUSTIVE_LIMIT:
            fail(
                f"--exhaustive would check {total:,} {dtype.value} inputs: narrow "
                "--range, or use --samples"
            )
        chunks: Iterator[np.ndarray] = exhaustive_chunks(
            target, low, high, EXHAUSTIVE_CHUNK
        )
        description = _count_of_inputs(total)
    else:
        inputs = sample_inputs(target, samples or DEFAULT_SAMPLES, seed, low, high)
        total = inputs.size
        chunks = iter(np.array_split(inputs, max(1, inputs.size // 2000)))
        description = f"{_count_of_inputs(total)} (seed {seed})"

    # mpmath checks all of a 16-bit dtype in seconds; wider dtypes need the
    # project's own algorithm, which the test suite checks against mpmath.
    own_reference = exhaustive and target.itemsize >= 4
    progress = Progress(total * 2 * len(chosen), f"checking {against.value}")
    try:
        tallies = run_check(
            chunks, chosen, against.value, parameters, own_reference, progress
        )
    finally:
        progress.close()

    title = f"{against.value}, {dtype.value}, {description}"
    render(tallies, target, title, _describe(against.value, own_reference))
    if any(tally.wrong for tally in tallies.values()):
        raise typer.Exit(1)

"""The `softplus` command line: a thin Typer layer over inputs, core and renderers."""

import enum
import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import Annotated, Any, NoReturn

import typer

# Typer 0.29 vendors Click as typer._click; its exception classes are not
# re-exported under a public name.
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperCommand, TyperGroup

from softplus_cli.activations import ACTIVATIONS, PARAMETERS
from softplus_cli.dtypes import DEFAULT_DTYPE, DTYPE_NAMES
from softplus_cli.render import OutputFormat

PROGRAM = "softplus"
# A dash followed by a digit, a point, inf or nan starts a (possibly invalid)
# negative number, never an option: no option name starts that way.
NEGATIVE_NUMBER = re.compile(r"-(?:[0-9.]|inf|nan)", re.IGNORECASE)


class CommandError(Exception):
    """An error in what the user typed or piped: one line on stderr, then exit."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = 2) -> NoReturn:
    raise CommandError(message, exit_code)


def warn(message: str) -> None:
    print(f"{PROGRAM}: warning: {message}", file=sys.stderr)


class SoftplusGroup(TyperGroup):
    """The command group: each error is one line on stderr, and usage errors exit 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or PROGRAM,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = result if isinstance(result, int) else 0
        except CommandError as error:
            print(f"{PROGRAM}: error: {error}", file=sys.stderr)
            code = error.exit_code
        except UsageError as error:
            hint = ""
            if error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} --help')"
            print(f"{PROGRAM}: error: {error.format_message()}{hint}", file=sys.stderr)
            code = error.exit_code
        except ClickException as error:
            print(f"{PROGRAM}: error: {error.format_message()}", file=sys.stderr)
            code = error.exit_code
        except typer.Abort:
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code)


class NumberArgumentsCommand(TyperCommand):
    """A command whose arguments may be negative numbers such as -20, -1e-3 and -inf.

    Click reads any token that starts with a dash as an option. Before parsing,
    this moves every positional token (including negative numbers) behind `--`,
    keeping options and their values in front, so an unknown option such as
    `--frmat` is still a usage error.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value = {
            name: not getattr(param, "is_flag", False)
            and not getattr(param, "count", False)
            for param in self.params
            if param.param_type_name == "option"
            for name in (*param.opts, *param.secondary_opts)
        }
        options: list[str] = []
        positional: list[str] = []
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                positional.extend(tokens)
                break
            if (
                token == "-"
                or not token.startswith("-")
                or NEGATIVE_NUMBER.match(token)
            ):
                positional.append(token)
                continue
            options.append(token)
            if "=" not in token and takes_value.get(token, False):
                value = next(tokens, None)
                if value is not None:
                    options.append(value)
        return super().parse_args(ctx, [*options, "--", *positional])


def with_parameter_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` one option per registry parameter, passed as `parameters`.

    The options come from `PARAMETERS`, so a new parameter in the registry
    appears on every command that evaluates functions.
    """
    signature = inspect.signature(command)
    own = [
        param for name, param in signature.parameters.items() if name != "parameters"
    ]
    added = [
        inspect.Parameter(
            parameter.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=parameter.default,
            annotation=Annotated[
                float | None,
                typer.Option(
                    parameter.option,
                    help=parameter.help,
                    show_default=parameter.default is not None,
                ),
            ],
        )
        for parameter in PARAMETERS.values()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        values = {name: kwargs.pop(name) for name in PARAMETERS}
        command(parameters=values, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{
            name: value
            for name, value in command.__annotations__.items()
            if name != "parameters"
        },
        **{param.name: param.annotation for param in added},
    }
    return wrapper


DtypeName = enum.Enum("DtypeName", {name: name for name in DTYPE_NAMES}, type=str)  # type: ignore[misc]

FunctionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--function",
        "-f",
        help=f"Function to evaluate: {', '.join(ACTIVATIONS)}, or all. Repeatable.",
        show_default=False,
    ),
]
DtypeOption = Annotated[
    DtypeName,
    typer.Option("--dtype", help="Floating-point format of inputs and results."),
]
FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="Output format. auto: a table on a terminal, tsv otherwise.",
    ),
]
HeaderOption = Annotated[
    bool | None,
    typer.Option(
        "--header/--no-header",
        help="Write a header row. Default: on for table and csv, off for tsv.",
        show_default=False,
    ),
]

app = typer.Typer(
    cls=SoftplusGroup,
    name=PROGRAM,
    help="Evaluate softplus, sigmoid and ReLU exactly, in the dtypes of deep learning.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        print(f"{PROGRAM} {metadata.version(PROGRAM)}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the installed version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Evaluate softplus, sigmoid and ReLU exactly, in the dtypes of deep learning.

    Every result is the exact value rounded once to the dtype (float32 unless
    --dtype sets another). Output is a table on a terminal and tab-separated
    text in a pipe.
    """


def _selected(names: list[str] | None, default: list[str]) -> list[str]:
    chosen = names or default
    if "all" in chosen:
        return list(ACTIVATIONS)
    for name in chosen:
        if name not in ACTIVATIONS:
            choices = ", ".join(ACTIVATIONS)
            fail(f"unknown function {name!r}: use one of {choices}, or all")
    return list(dict.fromkeys(chosen))


def _title(
    functions: list[str], dtype: str, parameters: dict[str, float | None]
) -> str:
    used = {name for function in functions for name in ACTIVATIONS[function].parameters}
    settings = [
        f"{name}={value:g}"
        for name, value in parameters.items()
        if name in used and value is not None and value != PARAMETERS[name].default
    ]
    return ", ".join([*functions, dtype, *settings])


def _run(
    chunks: Iterator[Any],
    functions: list[str],
    derivative: bool,
    dtype: str,
    output_format: OutputFormat,
    header: bool | None,
    parameters: dict[str, float | None],
) -> None:
    """Evaluate every chunk of inputs and write the columns."""
    from softplus_cli.activations import evaluate
    from softplus_cli.console import make_console
    from softplus_cli.render import make_writer

    columns = [(ACTIVATIONS[name], False) for name in functions]
    if derivative:
        columns = [
            (ACTIVATIONS[name], is_derivative)
            for name in functions
            for is_derivative in (False, True)
        ]
    names = ["x"] + [
        activation.name + ("'" if is_derivative else "")
        for activation, is_derivative in columns
    ]
    writer = make_writer(
        output_format,
        sys.stdout,
        names,
        header,
        title=_title(functions, dtype, parameters),
        make_console=make_console,
    )
    for x in chunks:
        results = [
            evaluate(activation, x, parameters, derivative=is_derivative)
            for activation, is_derivative in columns
        ]
        writer.write([x, *results])
        sys.stdout.flush()
    writer.close()


def _checked(parameters: dict[str, float | None]) -> dict[str, float | None]:
    from softplus_cli.activations import InvalidParameterError, check_parameters

    try:
        check_parameters(parameters)
    except InvalidParameterError as error:
        fail(str(error))
    return parameters


def _report_overflow(overflow: Any, dtype: str) -> None:
    if overflow.count:
        warn(
            f"{overflow.count} input(s) beyond the range of {dtype} became ±inf "
            f"(first: {overflow.first}); use --dtype float64 to keep them finite"
        )


def _stdin_chunks(dtype: Any, overflow: Any) -> Iterator[Any]:
    from softplus_cli.inputs import read_stream

    return read_stream(sys.stdin.buffer, dtype, overflow)


@app.command("eval", cls=NumberArgumentsCommand)
@with_parameter_options
def eval_command(
    points: Annotated[
        list[str] | None,
        typer.Argument(
            help="Numbers to evaluate at, such as -20 -1e-3 inf nan. "
            "'-', or none with a pipe, reads whitespace-separated numbers from stdin.",
            show_default=False,
        ),
    ] = None,
    function: FunctionsOption = None,
    derivative: Annotated[
        bool,
        typer.Option("--derivative", "-d", help="Add each function's derivative."),
    ] = False,
    dtype: DtypeOption = DtypeName[DEFAULT_DTYPE],  # type: ignore[valid-type]
    output_format: FormatOption = OutputFormat.auto,
    header: HeaderOption = None,
    parameters: dict[str, float | None] | None = None,
) -> None:
    """Evaluate functions at points: softplus eval -20 -1 0 1 20.

    One output row per input, in input order. Numbers come from the arguments or
    from stdin, which is read in chunks, so any length streams in constant memory.
    """
    from softplus_cli.dtypes import resolve_dtype
    from softplus_cli.inputs import InputError, Overflow, parse_points
    from softplus_cli.render import TooManyRowsError, resolve_format

    functions = _selected(function, ["softplus"])
    parameters = _checked(parameters or {})
    target = resolve_dtype(dtype.value)
    overflow = Overflow()
    texts = points or []
    if texts == ["-"] or (not texts and not sys.stdin.isatty()):
        chunks = _stdin_chunks(target, overflow)
    elif not texts:
        fail("no numbers given: pass them as arguments, or pipe them to stdin")
    elif "-" in texts:
        fail("'-' (read stdin) cannot be mixed with numbers: give one or the other")
    else:
        try:
            chunks = iter([parse_points(texts, target, overflow)])
        except InputError as error:
            fail(str(error))
    resolved = resolve_format(output_format, sys.stdout)
    try:
        _run(chunks, functions, derivative, dtype.value, resolved, header, parameters)
    except (InputError, TooManyRowsError) as error:
        fail(str(error))
    _report_overflow(overflow, dtype.value)


@app.command("compare", cls=NumberArgumentsCommand)
@with_parameter_options
def compare_command(
    range_spec: Annotated[
        str,
        typer.Option(
            "--range",
            "-r",
            help="Grid START:STOP:STEP (STOP included when a step lands on it), "
            "or START:STOP with --points.",
            show_default=False,
        ),
    ],
    points: Annotated[
        int | None,
        typer.Option(
            "--points",
            "-n",
            help="Number of evenly spaced points, as numpy.linspace takes it.",
        ),
    ] = None,
    function: FunctionsOption = None,
    derivative: Annotated[
        bool,
        typer.Option(
            "--derivative/--no-derivative", help="Show each function's derivative."
        ),
    ] = True,
    dtype: DtypeOption = DtypeName[DEFAULT_DTYPE],  # type: ignore[valid-type]
    output_format: FormatOption = OutputFormat.auto,
    header: HeaderOption = None,
    parameters: dict[str, float | None] | None = None,
) -> None:
    """Compare functions and derivatives on a grid: softplus compare --range -5:5:1.

    Grid points come from integer indices, so -5:5:0.1 has exactly 101 points
    ending at 5. Plain formats stream any number of points in constant memory.
    """
    from softplus_cli.dtypes import resolve_dtype
    from softplus_cli.inputs import InputError, Overflow, grid_chunks, parse_range
    from softplus_cli.render import (
        TooManyRowsError,
        resolve_format,
        row_limit,
        too_many_rows_message,
    )

    functions = _selected(function, ["all"])
    parameters = _checked(parameters or {})
    target = resolve_dtype(dtype.value)
    try:
        grid = parse_range(range_spec, points)
    except InputError as error:
        fail(str(error))
    resolved = resolve_format(output_format, sys.stdout)
    limit = row_limit(resolved)
    if limit is not None and grid.count > limit:
        fail(too_many_rows_message(resolved, grid.count))
    overflow = Overflow()
    try:
        _run(
            grid_chunks(grid, target, overflow),
            functions,
            derivative,
            dtype.value,
            resolved,
            header,
            parameters,
        )
    except TooManyRowsError as error:
        fail(str(error))
    _report_overflow(overflow, dtype.value)


# Commands defined in their own modules register themselves on `app` when imported.
from softplus_cli import plot_command  # noqa: E402,F401


def main() -> None:
    """Run the command line, ending quietly when a reader closes the pipe."""
    import signal

    if hasattr(signal, "SIGPIPE"):
        # Die silently like other Unix filters when `head` stops reading.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()

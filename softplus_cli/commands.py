"""The `eval`, `compare` and `explain` commands, and the options the commands share.

`check` and `plot` import from here their command classes, the function, dtype
and parameter options, and the checks on those options' values.
`softplus --help` does not import this module.
"""

import contextlib
import enum
import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import typer

# Typer vendors Click as typer._click (from 0.26); its exception classes are not
# re-exported under a public name.
from typer._click.exceptions import BadOptionUsage
from typer.core import TyperCommand

from softplus_cli import cli
from softplus_cli.activations import ACTIVATIONS, PARAMETERS
from softplus_cli.cli import deferred_app, fail, warn
from softplus_cli.dtypes import DEFAULT_DTYPE, DTYPE_NAMES
from softplus_cli.render import OutputFormat

# A dash followed by a digit, a point, inf or nan starts a (possibly invalid)
# negative number, never an option: no option name starts that way.
NEGATIVE_NUMBER = re.compile(r"-(?:[0-9.]|inf|nan)", re.IGNORECASE)


class SoftplusCommand(TyperCommand):
    """A command that rejects an option given twice, unless it is repeatable.

    Click keeps the last value of an option given twice and drops the others
    without a word. This rejects a value option such as `--range` given more
    than once, and an on/off flag given both ways (`--header --no-header`).
    Options declared with `multiple`, such as `-f`, may repeat.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        help_requested = any(
            token in ctx.help_option_names for token in _before_double_dash(args)
        )
        # Shell completion parses what is typed so far, resiliently.
        if not help_requested and not ctx.resilient_parsing:
            _reject_repeated_options(self.params, args)
        return super().parse_args(ctx, args)


def _before_double_dash(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


def _value_options(params: Sequence[Any]) -> dict[str, Any]:
    """Map each name of an option that takes a value to its parameter."""
    return {
        name: param
        for param in params
        if param.param_type_name == "option"
        and not getattr(param, "is_flag", False)
        and not getattr(param, "count", False)
        for name in (*param.opts, *param.secondary_opts)
    }


def _option_with_value(
    token: str, value_options: dict[str, Any]
) -> tuple[str, str | None] | None:
    """Return the option in `token` that takes a value, and the value if attached.

    Reads `token` as Click does: `--name` or `--name=value`, and a cluster of
    short options such as `-df` or `-n5`, where the first short option that
    takes a value takes the rest of the cluster as its value. The value is None
    when it is the next token. Returns None when `token` sets flags only.
    """
    if token.startswith("--"):
        name, equals, value = token.partition("=")
        if name not in value_options:
            return None
        return name, value if equals else None
    for index in range(1, len(token)):
        name = f"-{token[index]}"
        if name in value_options:
            rest = token[index + 1 :]
            return name, rest or None
    return None


def _long_name(param: Any) -> str:
    return next((name for name in param.opts if name.startswith("--")), param.opts[0])


def _option_occurrences(
    args: list[str], value_options: dict[str, Any]
) -> Iterator[tuple[str, str | None]]:
    """Yield each option before `--` with its value, or with None for a flag.

    An option whose value is missing is left out, for Click to report.
    """
    tokens = iter(_before_double_dash(args))
    for token in tokens:
        if token == "-" or not token.startswith("-"):
            continue
        found = _option_with_value(token, value_options)
        if token.startswith("--"):
            flags = [] if found is not None else [token]
        else:
            # In a cluster, the letters before an option that takes a value
            # are flags.
            letters = token[1:]
            if found is not None:
                letters = letters[: letters.index(found[0][1])]
            flags = [f"-{letter}" for letter in letters]
        for name in flags:
            yield name, None
        if found is not None:
            name, value = found
            if value is None:
                value = next(tokens, None)
            if value is not None:
                yield name, value


def _reject_repeated_options(params: Sequence[Any], args: list[str]) -> None:
    """Fail on a value option given twice, or an on/off flag given both ways."""
    value_options = _value_options(params)
    flag_settings = {
        name: (param, setting)
        for param in params
        if param.param_type_name == "option" and getattr(param, "is_flag", False)
        for setting, names in ((True, param.opts), (False, param.secondary_opts))
        for name in names
    }
    values: dict[str, str] = {}
    flags: dict[str, str] = {}
    for name, value in _option_occurrences(args, value_options):
        if value is not None:
            param = value_options[name]
            if param.multiple:
                continue
            if param.name in values:
                fail(
                    f"{_long_name(param)} given twice ({values[param.name]} and "
                    f"{value}): give it once"
                )
            values[param.name] = value
        elif name in flag_settings:
            param, setting = flag_settings[name]
            earlier = flags.setdefault(param.name, name)
            if flag_settings[earlier][1] != setting:
                fail(f"{earlier} and {name} both given: give one of them")


class NumberArgumentsCommand(SoftplusCommand):
    """A command whose arguments may be negative numbers such as -20, -1e-3 and -inf.

    Click reads any token that starts with a dash as an option. Before parsing,
    this moves every positional token (including negative numbers) behind `--`,
    keeping options and their values in front, so an unknown option such as
    `--frmat` is still a usage error.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:
            # Shell completion: the last option may still lack its value.
            return super().parse_args(ctx, args)
        value_options = _value_options(self.params)
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
            found = _option_with_value(token, value_options)
            if found is not None and found[1] is None:
                name = found[0]
                value = next(tokens, None)
                if value is None:
                    message = f"Option '{name}' requires an argument."
                    raise BadOptionUsage(name, message, ctx)
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
                str | None,
                typer.Option(
                    parameter.option,
                    help=parameter.help,
                    metavar="NUMBER",
                    show_default=False,
                ),
            ],
        )
        for parameter in PARAMETERS.values()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        values = {
            name: _parameter_value(parameter, kwargs.pop(name))
            for name, parameter in PARAMETERS.items()
        }
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

def complete_function_name(incomplete: str) -> list[tuple[str, str]]:
    """Return the function names, and all, that start with `incomplete`, each
    with its summary, for shell completion."""
    choices = [(name, activation.summary) for name, activation in ACTIVATIONS.items()]
    choices.append(("all", "every function"))
    return [(name, summary) for name, summary in choices if name.startswith(incomplete)]


FunctionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--function",
        "-f",
        help=f"Function: {', '.join(ACTIVATIONS)}, or all. Repeatable.",
        metavar="NAME",
        show_default=False,
        autocompletion=complete_function_name,
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
PointsOption = Annotated[
    int | None,
    typer.Option(
        "--points",
        "-n",
        help="Number of evenly spaced points, as numpy.linspace takes it.",
        metavar="N",
        show_default=False,
    ),
]
HeaderOption = Annotated[
    bool | None,
    typer.Option(
        "--header/--no-header",
        help="Write a header row. Default: on for table and csv, off for tsv. "
        "json, jsonl and numpy have none.",
        show_default=False,
    ),
]


def _parameter_value(parameter: Any, text: str | float | None) -> float | None:
    """Parse an option's text as parameters are parsed everywhere: as a number."""
    from softplus_cli.inputs import NUMBER, describe_invalid

    if text is None or isinstance(text, float):
        return text
    if not NUMBER.fullmatch(text):
        fail(describe_invalid(text, f"for {parameter.option}"))
    value = float(text)
    if value in (float("inf"), float("-inf")) and "inf" not in text.lower():
        fail(f"{parameter.option} {text} is beyond the range of float64")
    if value == 0 and any(
        digit in text.split("e")[0].split("E")[0] for digit in "123456789"
    ):
        fail(f"{parameter.option} {text} is too small for float64 and would be 0")
    return value


def selected(names: list[str] | None, default: list[str]) -> list[str]:
    """Return the chosen function names, each once, or every function if "all"
    is among them. Fail on an unknown name."""
    chosen = names or default
    for name in chosen:
        if name not in ACTIVATIONS and name != "all":
            choices = ", ".join(ACTIVATIONS)
            fail(f"unknown function {name!r}: use one of {choices}, or all")
    if "all" in chosen:
        return list(ACTIVATIONS)
    return list(dict.fromkeys(chosen))


def format_title(
    functions: list[str], dtype: str, parameters: dict[str, float | None]
) -> str:
    """Return the title of a table or plot: the functions, the dtype and each of
    their parameters that is not at its default."""
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
    overflow: Any,
) -> None:
    """Evaluate every chunk of inputs and write the columns.

    A chunk is an array of inputs, or a `Block` of standard input to parse.
    None, which `read_blocks` yields before waiting for more input, requests
    that the rows of all chunks taken so far be written first.
    """
    from softplus_cli.activations import evaluate
    from softplus_cli.console import make_console
    from softplus_cli.dtypes import resolve_dtype
    from softplus_cli.inputs import Block, parse_block
    from softplus_cli.pipeline import Pipeline
    from softplus_cli.render import HEADERLESS_FORMATS, PlainWriter, make_writer

    if header is not None and output_format in HEADERLESS_FORMATS:
        flag = "--header" if header else "--no-header"
        warn(f"{flag} has no effect with --format {output_format.value}")
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
    target = resolve_dtype(dtype)
    writer = make_writer(
        output_format,
        sys.stdout,
        names,
        header,
        title=format_title(functions, dtype, parameters),
        make_console=make_console,
    )
    plain = writer if isinstance(writer, PlainWriter) else None
    encode = plain.encode if plain else None

    def work(chunk: Any) -> tuple[tuple[Any, Any], bytes]:
        counted = None
        if isinstance(chunk, Block):
            chunk, counted = parse_block(chunk, target)
        results = [
            evaluate(activation, chunk, parameters, derivative=is_derivative)
            for activation, is_derivative in columns
        ]
        table = [chunk, *results]
        if encode is None:
            return (table, counted), b""
        # Only the text goes back, so a worker process sends no arrays.
        return (None, counted), encode(table)

    started = False

    def finish(done: tuple[tuple[Any, Any], Any]) -> None:
        # The writer starts (a header, JSON's opening bracket) with the first
        # chunk, so input rejected in the first chunk leaves stdout empty.
        nonlocal started
        (table, counted), text = done
        if counted is not None:
            overflow.merge(counted)
        if plain is None:
            writer.write(table)
        else:
            plain.write_encoded(text)
        started = True
        sys.stdout.flush()

    processes = plain is not None and cli.forking_allowed
    # Worker processes write their rows to stdout themselves, in turn.
    output = None
    if processes:
        with contextlib.suppress(OSError, ValueError):
            output = sys.stdout.fileno()
    with Pipeline(work, finish, processes=processes, output=output) as pipeline:
        for chunk in chunks:
            if chunk is None:
                pipeline.drain()
            else:
                pipeline.submit(chunk)
    if started:
        writer.close()


def _result_count(functions: list[str], derivative: bool) -> int:
    """Return the number of result columns: each function, and its derivative."""
    return len(functions) * (2 if derivative else 1)


def checked(
    parameters: dict[str, float | None], functions: list[str]
) -> dict[str, float | None]:
    """Validate the parameters, and warn about any set for no chosen function."""
    from softplus_cli.activations import InvalidParameterError, check_parameters

    try:
        check_parameters(parameters)
    except InvalidParameterError as error:
        fail(str(error))
    used = {name for function in functions for name in ACTIVATIONS[function].parameters}
    for name, value in parameters.items():
        if name in used or value == PARAMETERS[name].default:
            continue
        owners = [f.name for f in ACTIVATIONS.values() if name in f.parameters]
        warn(
            f"{PARAMETERS[name].option} is a parameter of {', '.join(owners)}, "
            f"which is not among the functions shown ({', '.join(functions)}); "
            "it has no effect"
        )
    return parameters


def report_overflow(overflow: Any, dtype: str) -> None:
    def fix(first: str, lost: Callable[[float], bool]) -> str:
        # float64 keeps the input only if it is within float64's own range.
        if dtype == "float64" or lost(float(first)):
            return ""
        return "; use --dtype float64 to keep them"

    if overflow.count:
        advice = fix(overflow.first, lambda value: abs(value) == float("inf"))
        warn(
            f"{overflow.count} input(s) beyond the range of {dtype} became ±inf "
            f"(first: {_shortened(overflow.first)}){advice}"
        )
    if overflow.underflow_count:
        advice = fix(overflow.underflow_first, lambda value: value == 0)
        warn(
            f"{overflow.underflow_count} nonzero input(s) too small for {dtype} "
            f"became 0 (first: {_shortened(overflow.underflow_first)}){advice}"
        )


def _shortened(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Bytes of stdin a block, divided by the columns of each output line and by 2
# more for JSON, whose lines repeat the column names. With short tokens, as
# `seq` writes, a block of 512 KiB is about 75,000 lines.
STDIN_BLOCK = 1 << 20


def _stdin_chunks(results: int, output_format: OutputFormat) -> Iterator[Any]:
    """Yield the blocks of stdin, and the None that `read_blocks` yields before
    waiting for more; raise InputError if stdin contains no numbers.

    Blocks are smaller the more text each input line makes, which keeps the
    memory of the blocks in flight flat.
    """
    from softplus_cli.inputs import NO_NUMBERS, InputError, read_blocks

    json = output_format in (OutputFormat.json, OutputFormat.jsonl)
    read_size = max(1 << 16, STDIN_BLOCK // (1 + results) // (2 if json else 1))
    # Every token other than whitespace is a number or an error.
    numbers = False
    for block in read_blocks(sys.stdin.buffer, read_size, idle=True):
        numbers = numbers or (block is not None and not block.data.isspace())
        yield block
    if not numbers:
        raise InputError(NO_NUMBERS)


def _stdin_is_piped() -> bool:
    # A closed stdin (`<&-`) is None: there is nothing to read.
    return sys.stdin is not None and not sys.stdin.isatty()


eval_app = deferred_app()


@eval_app.command("eval", cls=NumberArgumentsCommand)
@with_parameter_options
def eval_command(
    points: Annotated[
        list[str] | None,
        typer.Argument(
            help="Numbers to evaluate at, such as -20 -1e-3 inf nan. "
            "'-', or none with a pipe, reads whitespace-separated numbers from stdin.",
            metavar="NUMBER...",
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

    functions = selected(function, ["softplus"])
    parameters = checked(parameters or {}, functions)
    target = resolve_dtype(dtype.value)
    overflow = Overflow()
    resolved = resolve_format(output_format, sys.stdout)
    texts = points or []
    if texts == ["-"] and sys.stdin is None:
        fail("stdin is closed: pass the numbers as arguments, or pipe them in")
    if texts == ["-"] or (not texts and _stdin_is_piped()):
        chunks = _stdin_chunks(_result_count(functions, derivative), resolved)
    elif not texts:
        fail("no numbers given: pass them as arguments, or pipe them to stdin")
    elif texts.count("-") > 1:
        fail("'-' (read stdin) is given more than once: give it once")
    elif "-" in texts:
        fail("'-' (read stdin) cannot be mixed with numbers: give one or the other")
    else:
        try:
            chunks = iter([parse_points(texts, target, overflow)])
        except InputError as error:
            fail(str(error))
    try:
        _run(
            chunks,
            functions,
            derivative,
            dtype.value,
            resolved,
            header,
            parameters,
            overflow,
        )
    except (InputError, TooManyRowsError) as error:
        fail(str(error))
    report_overflow(overflow, dtype.value)


compare_app = deferred_app()


@compare_app.command("compare", cls=NumberArgumentsCommand)
@with_parameter_options
def compare_command(
    range_spec: Annotated[
        str,
        typer.Option(
            "--range",
            "-r",
            help="Grid START:STOP:STEP (STOP included when a step lands on it), "
            "or START:STOP with --points.",
            metavar="START:STOP[:STEP]",
            show_default=False,
        ),
    ],
    points: PointsOption = None,
    function: FunctionsOption = None,
    derivative: Annotated[
        bool,
        typer.Option(
            "--derivative/--no-derivative",
            "-d/-D",
            help="Show each function's derivative.",
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
    from softplus_cli.inputs import (
        GRID_CHUNK,
        InputError,
        Overflow,
        grid_chunks,
        parse_range,
    )
    from softplus_cli.render import (
        TooManyRowsError,
        resolve_format,
        row_limit,
        too_many_rows_message,
    )

    functions = selected(function, ["all"])
    parameters = checked(parameters or {}, functions)
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
    # Chunks of about the same number of values whatever the number of
    # columns, which keeps the memory of the chunks in flight flat.
    columns = 1 + _result_count(functions, derivative)
    chunk = max(1024, 2 * GRID_CHUNK // columns)
    try:
        _run(
            grid_chunks(grid, target, overflow, chunk),
            functions,
            derivative,
            dtype.value,
            resolved,
            header,
            parameters,
            overflow,
        )
    except TooManyRowsError as error:
        fail(str(error))
    report_overflow(overflow, dtype.value)


explain_app = deferred_app()


@explain_app.command("explain", cls=SoftplusCommand)
def explain_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Functions to explain: {', '.join(ACTIVATIONS)}, or all (the "
            "default). The same as -f NAME.",
            show_default=False,
            metavar="[FUNCTION]...",
            autocompletion=complete_function_name,
        ),
    ] = None,
    function: FunctionsOption = None,
) -> None:
    """Explain functions: formula, derivative, parameters and edge behaviour.

    softplus explain softplus relu (or -f softplus -f relu) shows how softplus
    differs from ReLU.
    """
    chosen = [*(names or []), *(function or [])]
    for index, name in enumerate(selected(chosen, ["all"])):
        activation = ACTIVATIONS[name]
        if index:
            print()
        print(f"{activation.name}: {activation.summary}")
        print(f"  {activation.formula}")
        print(f"  {activation.derivative_formula}")
        for parameter_name in activation.parameters:
            parameter = PARAMETERS[parameter_name]
            print(f"  {parameter.option}: {parameter.help}")
        if activation.notes:
            print(f"  {activation.notes}")


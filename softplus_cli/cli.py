"""The `softplus` command group: help, version, completion and error reporting.

`softplus --help` lists each command from its summary in DEFERRED_COMMANDS, so
importing this module imports none of the commands' modules, nor NumPy.
"""

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer._click.core import Command, Context, HelpFormatter

# Typer vendors Click as typer._click (from 0.26); its exception classes are not
# re-exported under a public name.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperCommand, TyperGroup

PROGRAM = "softplus"


class CommandError(Exception):
    """An error in what the user typed or piped: one line on stderr, then exit."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = 2) -> NoReturn:
    raise CommandError(message, exit_code)


def report(message: str) -> None:
    """Write one line to stderr, or nothing if stderr is closed."""
    # With stderr closed, print(file=None) would write to stdout, into the data.
    if sys.stderr is not None:
        print(f"{PROGRAM}: {message}", file=sys.stderr)


def warn(message: str) -> None:
    report(f"warning: {message}")


class DeferredCommand(TyperCommand):
    """A command that is built, and its module imported, only when it runs or
    shows its help.

    `softplus --help` lists it by `summary`, the first line of its docstring,
    without importing the module or building the command's options.
    """

    def __init__(
        self, name: str, module: str, summary: str, attribute: str = "command_app"
    ):
        super().__init__(name, help=summary)
        self.module = module
        self.attribute = attribute

    def load(self) -> Command:
        """Import the module and return the command that its Typer app
        `attribute` defines."""
        # `python -X importtime` (CPython 3.11) does not list a module that
        # importlib.import_module loads, but it lists one that __import__ loads.
        module = __import__(self.module, fromlist=[self.attribute])
        command = typer.main.get_command(getattr(module, self.attribute))
        command.name = self.name
        return command


# The commands, in the order `softplus --help` lists them. Building the
# options of eval, compare and explain took about half of the time that
# `softplus --help` added to importing typer, and their module imports the
# activation registry and the renderers.
# tests/test_cli.py checks each summary against the command's own docstring.
DEFERRED_COMMANDS = (
    DeferredCommand(
        "eval",
        "softplus_cli.commands",
        "Evaluate functions at points: softplus eval -20 -1 0 1 20.",
        "eval_app",
    ),
    DeferredCommand(
        "compare",
        "softplus_cli.commands",
        "Compare functions and derivatives on a grid: softplus compare --range -5:5:1.",
        "compare_app",
    ),
    DeferredCommand(
        "explain",
        "softplus_cli.commands",
        "Explain functions: formula, derivative, parameters and edge behaviour.",
        "explain_app",
    ),
    DeferredCommand(
        "check",
        "softplus_cli.check_command",
        "Check correct rounding: softplus check --dtype float16 --exhaustive.",
    ),
    DeferredCommand(
        "plot",
        "softplus_cli.plot_command",
        "Plot functions and derivatives: softplus plot softplus relu --range -5:5.",
    ),
)


def deferred_app() -> typer.Typer:
    """Return the Typer app of one command that `SoftplusGroup` defers."""
    return typer.Typer(
        rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False
    )


class SoftplusGroup(TyperGroup):
    """The command group: each error is one line on stderr, and usage errors exit 2.

    The commands in DEFERRED_COMMANDS are built, and their modules imported,
    only when one is looked up to run, for its help or for completion.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for command in DEFERRED_COMMANDS:
            self.commands.setdefault(command.name or "", command)
        self._listing = False

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = self.commands.get(cmd_name)
        if isinstance(command, DeferredCommand) and not self._listing:
            command = self.commands[cmd_name] = command.load()
        return command

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as error:
            typo = args[0] if args else ""
            lowered = typo.lower()
            if lowered != typo and lowered in self.commands:
                # Typer suggests close names by a case-sensitive match, which
                # finds nothing for EVAL.
                error.message = f"No such command {typo!r}. Did you mean {lowered!r}?"
            raise

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        # The list shows each command's short help alone: load no module for it.
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

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
            report(f"error: {error}")
            code = error.exit_code
        except NoArgsIsHelpError as error:
            # A bare `softplus` requests the help text, which is not an error.
            if error.ctx is not None:
                print(error.ctx.get_help())
            code = 0
        except UsageError as error:
            hint = ""
            if error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} --help')"
            # Typer words a failed conversion as "Value error, ..." (pydantic's).
            message = error.format_message().replace("Value error, ", "")
            report(f"error: {message}{hint}")
            code = error.exit_code
        except ClickException as error:
            report(f"error: {error.format_message()}")
            code = error.exit_code
        except typer.Abort:
            code = 130
        except OSError as error:
            # Writing failed: a full disk, a closed stdout. A closed pipe ends
            # the process through SIGPIPE before this point where it can.
            report(f"error: cannot write the output: {error.strerror or error}")
            code = 1
        except RuntimeError as error:
            from softplus_cli.pipeline import WorkerError

            if not isinstance(error, WorkerError):
                raise
            # A worker process was killed, by the out-of-memory killer or a user.
            report(f"error: {error}")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    cls=SoftplusGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    name=PROGRAM,
    help="Evaluate softplus, sigmoid and ReLU exactly, in the dtypes of deep learning.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    # Typer calls this for every command, with value False unless --version is
    # given: importlib.metadata, 10 ms of imports, is loaded only for it.
    if not value:
        return
    from importlib import metadata

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


# Long streams of text go to worker processes only when `main` runs this as a
# program: an application or a test that calls the Typer app in its own
# process (which may have threads of its own) gets worker threads.
# softplus_cli.commands reads it when a command runs.
forking_allowed = False


def main() -> None:
    """Run the command line, ending quietly when a reader closes the pipe."""
    import signal

    global forking_allowed
    forking_allowed = True

    # OpenBLAS, which NumPy loads, starts a pool of threads that spin for a
    # while after start-up, taking a core from the work. softplus makes no
    # BLAS call that threads would speed up.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if hasattr(signal, "SIGPIPE"):
        # Die silently like other Unix filters when `head` stops reading.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if sys.stdout is None:
        report("error: stdout is closed: redirect it to a file or a pipe")
        sys.exit(1)
    # A stdout that another process made non-blocking takes only part of a
    # large write, and Python's buffered writer then drops the rest without
    # an error. Blocking writes wait for a slow reader instead.
    with contextlib.suppress(OSError, ValueError):
        if not os.get_blocking(sys.stdout.fileno()):
            os.set_blocking(sys.stdout.fileno(), True)
    # Formulas use σ and β: an ASCII or Latin-1 stdout gets escapes for them
    # instead of an error.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    app()

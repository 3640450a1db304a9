"""softplus: exact activation functions on the command line."""


def main() -> None:
    """Run the `softplus` command, exiting 130 quietly on Ctrl-C at any point.

    The command-line module imports Typer, which takes a moment.
    Importing it here, inside the handler, keeps an early Ctrl-C free of a
    traceback too.
    """
    import sys

    try:
        from softplus_cli.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.exit(130)

"""The one place that makes Rich consoles, so tests can fix width and stream."""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def make_console(file: IO[str] | None = None, width: int | None = None) -> Console:
    """Return a console on `file` (stdout by default) that honours NO_COLOR.

    Off a terminal Rich writes no colour codes; on one, NO_COLOR turns colour off.
    """
    from rich.console import Console

    return Console(
        file=file or sys.stdout,
        width=width,
        no_color="NO_COLOR" in os.environ,
        highlight=False,
    )

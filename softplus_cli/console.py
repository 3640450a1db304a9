"""The one place that makes Rich consoles, so tests can fix width and stream."""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def make_console(file: IO[str] | None = None, width: int | None = None) -> Console:
    """Return a console on `file` (stdout by default) that honours NO_COLOR.

    Off a terminal Rich writes no escape codes. On one, a non-empty NO_COLOR
    turns off every style, bold included, as https://no-color.org specifies.
    """
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR"))
    return Console(
        file=file or sys.stdout,
        width=width,
        no_color=plain,
        color_system=None if plain else "auto",
        highlight=False,
    )

"""Shortest round-trip text for float arrays.

Every number is written as the shortest decimal that reads back to the same
value in its dtype, laid out as orjson writes floats. A number whose digits
have a decimal exponent from -5 to 15 in float64, or from -6 to 12 in the
narrower dtypes, is written positionally. Others are written in scientific
notation, with a signed exponent of as few digits as it needs (`2.0611537e-9`,
`1e+16`). A positional
whole number ends in `.0`. Zero keeps its sign (`-0.0`), and the non-finite
values are `inf`, `-inf` and `nan`.

`format_rows` writes whole rows of such text. For blocks of float32 and float64
values it takes the text of the finite rows from orjson (about 20 ns a value in
benchmarks/stages.py, against about a microsecond on the per-value path) and
only places the separators. Other rows, small blocks, float16 and bfloat16, and
all rows when orjson is missing or writes floats differently, take the
per-value path: the shortest digits from Python's `repr` or NumPy's `str`, laid
out the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

COMMA = ord(",")

# Decimal exponents written positionally: orjson's, for its two dtypes. The
# narrower dtypes follow float32.
FLOAT64_POSITIONAL = range(-5, 16)
NARROW_POSITIONAL = range(-6, 13)

# From FIRST_PLACEHOLDER on, each column whose separator is longer than one
# byte has a non-ASCII marker byte, which `bytes.replace` expands; orjson
# writes ASCII only.
FIRST_PLACEHOLDER = 0x80
MAX_COLUMNS = 0x100 - FIRST_PLACEHOLDER

# Blocks with fewer values than this take the per-value path.
FEW_VALUES = 256

# Values on each side of each switch of layout, which orjson must write as the
# per-value path does before it is used.
PROBE_VALUES = (
    0.0,
    1.0,
    20.0,
    0.3132617,
    123456.7,
    2.0611537e-09,
    9.99e-07,
    1e-06,
    9.99e-06,
    1e-05,
    0.00012,
    9.99e12,
    1e13,
    9.99e15,
    1e16,
    1e-30,
    1e30,
    1e-45,
    999999.94,
)


@dataclass(frozen=True)
class RowLayout:
    """The text around the cells of a row.

    Each row is `prefix`, then each cell followed by its entry in `separators`;
    the last separator ends the row. With `quote_special`, inf, -inf and nan
    are written as JSON strings.
    """

    prefix: str
    separators: tuple[str, ...]
    quote_special: bool = False


def delimited_layout(columns: int, separator: str) -> RowLayout:
    """Return the layout of a delimited row: cells joined by `separator`."""
    return RowLayout("", (separator,) * (columns - 1) + ("\n",))


def import_orjson() -> Any:
    """Import orjson and return it, or None if it is missing, with Ctrl-C
    held back until the import is over.

    orjson 3.13.0 crashes the interpreter (SIGSEGV) when a KeyboardInterrupt
    interrupts its import. Blocking SIGINT in this thread is not enough, since
    the kernel may deliver it to another thread (OpenBLAS's). So in the main
    thread, where Python raises KeyboardInterrupt, a handler only records the
    signal during the import, and the usual handler runs after it.
    """
    import signal
    import threading

    interrupted: list[int] = []
    swap = threading.current_thread() is threading.main_thread()
    if swap:
        previous = signal.signal(
            signal.SIGINT, lambda number, frame: interrupted.append(number)
        )
    try:
        import orjson
    except ImportError:
        return None
    finally:
        if swap:
            signal.signal(signal.SIGINT, previous)
            if interrupted and callable(previous):
                previous(signal.SIGINT, None)
            elif interrupted and previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)
    return orjson


@functools.cache
def _orjson() -> Any:
    """Return the orjson module if it is installed and writes floats as expected.

    A version that writes any probe value differently from the per-value path
    is not used, so the output stays the same, at the per-value path's speed.
    """
    import numpy as np

    orjson = import_orjson()
    if orjson is None:
        return None
    layout = delimited_layout(1, "\n")
    for dtype in (np.float32, np.float64):
        probe = np.array(PROBE_VALUES, dtype=dtype)
        probe = np.concatenate([probe, np.negative(probe)])[:, np.newaxis]
        if _orjson_rows(probe, layout, orjson) != _python_rows([probe[:, 0]], layout):
            return None
    return orjson


def _parts(text: str) -> tuple[str, int]:
    """Return the significant digits of an unsigned decimal, and the exponent
    of the first: `2.0611537e-09` gives ("20611537", -9), `20.0` gives ("2", 1).
    """
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    significant = digits.lstrip("0")
    leading_zeros = len(digits) - len(significant)
    first = int(exponent or 0) + len(whole) - 1 - leading_zeros
    return significant.rstrip("0"), first


def laid_out(text: str, positional: range) -> str:
    """Lay out the shortest decimal `text`, in any of Python's or NumPy's
    layouts, as this module writes it (see the module docstring)."""
    if text in ("inf", "-inf", "nan"):
        return text
    sign = "-" if text.startswith("-") else ""
    digits, exponent = _parts(text.lstrip("-"))
    if not digits:
        return f"{sign}0.0"
    if exponent not in positional:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{exponent:+d}"
    if exponent >= len(digits) - 1:
        return f"{sign}{digits}{'0' * (exponent + 1 - len(digits))}.0"
    if exponent >= 0:
        return f"{sign}{digits[: exponent + 1]}.{digits[exponent + 1 :]}"
    return f"{sign}0.{'0' * (-exponent - 1)}{digits}"


@functools.lru_cache(maxsize=1 << 16)
def _shortest_float16(bits: int) -> str:
    import numpy as np

    text = str(np.array([bits], dtype=np.uint16).view(np.float16)[0])
    return laid_out(text, NARROW_POSITIONAL)


@functools.lru_cache(maxsize=1 << 16)
def _shortest_bfloat16(bits: int) -> str:
    import ml_dtypes
    import numpy as np

    value = np.array([bits], dtype=np.uint16).view(ml_dtypes.bfloat16)[0]
    wide = float(value)
    if not np.isfinite(wide) or wide == 0:
        return laid_out(str(np.float32(wide)), NARROW_POSITIONAL)
    # The fewest digits that read back as the same bfloat16.
    for digits in range(1, 10):
        text = f"{wide:.{digits - 1}e}"
        if np.array([float(text)]).astype(ml_dtypes.bfloat16)[0] == value:
            break
    return laid_out(text, NARROW_POSITIONAL)


def python_strings(values: np.ndarray) -> list[str]:
    """Return each value's string one value at a time."""
    import numpy as np

    if values.dtype == np.float64:
        return [laid_out(repr(value), FLOAT64_POSITIONAL) for value in values.tolist()]
    if values.dtype.name == "bfloat16":
        return [_shortest_bfloat16(bits) for bits in values.view(np.uint16).tolist()]
    if values.dtype == np.float16:
        return [_shortest_float16(bits) for bits in values.view(np.uint16).tolist()]
    return [laid_out(str(value), NARROW_POSITIONAL) for value in values]


def _fast_rows(matrix: np.ndarray) -> np.ndarray | None:
    """Return which rows orjson formats, or None if it can format none."""
    import numpy as np

    if matrix.dtype not in (np.float32, np.float64) or matrix.shape[1] > MAX_COLUMNS:
        return None
    # A few rows, as `softplus eval 1` writes, cost less than importing orjson.
    if matrix.size < FEW_VALUES or _orjson() is None:
        return None
    # orjson writes inf and nan as null.
    finite = np.isfinite(matrix)
    if finite.all():
        return np.ones(len(matrix), dtype=bool)
    return finite.all(axis=1)


def _cell_endings(layout: RowLayout) -> list[bytes]:
    """Return the text after each column's cells.

    The last column's ending includes the next row's prefix, which
    `_orjson_rows` moves from the end of the block to its start.
    """
    endings = [separator.encode() for separator in layout.separators]
    endings[-1] += layout.prefix.encode()
    return endings


def _orjson_rows(matrix: np.ndarray, layout: RowLayout, orjson: Any) -> bytes:
    """Format rows of finite values with orjson.

    orjson writes the values as one JSON array, `[a,b,c]`. Each comma, and the
    closing bracket, becomes the ending of the cell before it: a separator of
    one byte in place, a longer one through a marker byte and `bytes.replace`,
    so the cost stays in C however many rows there are.
    """
    import numpy as np

    columns = matrix.shape[1]
    text = bytearray(
        orjson.dumps(matrix.reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    # `[a,b,c]` becomes `[a,b,c,`: every cell ends at a comma.
    text[-1] = COMMA
    cells = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(cells == COMMA)
    endings = _cell_endings(layout)
    for column, ending in enumerate(endings):
        marker = ending[0] if len(ending) == 1 else FIRST_PLACEHOLDER + column
        cells[ends[column::columns]] = marker
    body = bytes(memoryview(text)[1:])
    for column, ending in enumerate(endings):
        if len(ending) > 1:
            body = body.replace(bytes([FIRST_PLACEHOLDER + column]), ending)
    prefix = layout.prefix.encode()
    if not prefix:
        return body
    return prefix + body[: len(body) - len(prefix)]


def _python_rows(columns: Sequence[np.ndarray], layout: RowLayout) -> bytes:
    """Format columns, which may differ in dtype, one value at a time."""
    texts = [python_strings(column) for column in columns]
    if layout.quote_special:
        texts = [[_json_value(text) for text in column] for column in texts]
    rows = (
        layout.prefix + "".join(map(str.__add__, row, layout.separators))
        for row in zip(*texts, strict=True)
    )
    return "".join(rows).encode()


def _json_value(text: str) -> str:
    # JSON has no infinities or NaN: write them as strings, losing nothing.
    return f'"{text}"' if text in ("inf", "-inf", "nan") else text


def format_rows(columns: Sequence[np.ndarray], layout: RowLayout) -> bytes:
    """Return the rows of `columns` as UTF-8 text laid out by `layout`.

    Every cell is the shortest string that reads back as the same value in the
    column's dtype, laid out as the module docstring says. The columns have
    equal lengths.
    """
    import numpy as np

    if len(columns[0]) == 0:
        return b""
    text = layout.prefix + "".join(layout.separators)
    if len({column.dtype for column in columns}) > 1 or not text.isascii():
        return _python_rows(columns, layout)
    matrix = np.stack(columns, axis=1)
    fast = _fast_rows(matrix)
    if fast is None:
        return _python_rows(columns, layout)

    if fast.all():
        return _orjson_rows(matrix, layout, _orjson())
    # Runs of rows alternate between the two paths, in order.
    edges = [0, *(np.flatnonzero(np.diff(fast)) + 1).tolist(), len(fast)]
    pieces = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        block = matrix[start:stop]
        if fast[start]:
            pieces.append(_orjson_rows(block, layout, _orjson()))
        else:
            pieces.append(_python_rows(list(block.T), layout))
    return b"".join(pieces)

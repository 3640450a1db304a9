"""Shortest round-trip text for float arrays, in NumPy's scalar style.

NumPy prints a float scalar as the shortest decimal that reads back to the same
value in its dtype: positionally when 1e-4 <= |x| < 10**p, where p is 3 for
float16, 6 for float32 and 16 for float64, and otherwise in scientific notation
with at least two exponent digits (`1e+30`, `2.0611537e-09`). Zero keeps its
sign (`-0.0`), and the non-finite values are `inf`, `-inf` and `nan`.

`format_rows` writes whole rows of such text. For float32 and float64 it takes
the shortest digits from orjson (about 22 ns a value in benchmarks/stages.py,
against 460 ns for NumPy's `str`) and edits orjson's layout into NumPy's where
the two differ. Rows that orjson cannot format (infinities,
NaN, and float32 values of 1e6 and above or equal to float32(1e-4)), and all
rows when orjson is not installed, take the per-value path, which calls
NumPy's own `str` and gives the same text.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

COMMA = ord(",")
POINT = ord(".")

# Marker bytes for the edits of orjson's output. None is ASCII, and orjson
# writes ASCII only, as do the layouts that take this path (see `format_rows`).
# FILLER marks bytes to delete, PAD_EXPONENT a minus sign that gains a zero after
# it, and from FIRST_PLACEHOLDER on, each (column, kind of cell) pair has a byte
# that becomes the separator after that cell.
FILLER = 0x80
PAD_EXPONENT = 0x81
FIRST_PLACEHOLDER = 0x82
# Kinds of cell: as orjson writes it, then orjson's `0.00001` and `0.000001`,
# which NumPy writes as `1e-05` and `1e-06`.
CELL_SUFFIXES = (b"", b"e-05", b"e-06")
MAX_COLUMNS = (0x100 - FIRST_PLACEHOLDER) // len(CELL_SUFFIXES)

# Blocks with fewer values than this take the per-value path.
FEW_VALUES = 256

# Values from each case of the layout, which orjson must write as expected.
PROBE_VALUES = (
    0.0,
    1.0,
    20.0,
    0.3132617,
    123456.7,
    2.0611537e-09,
    1e-07,
    1.5e-06,
    1.25e-05,
    0.00012,
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


@functools.cache
def _orjson() -> Any:
    """Return the orjson module if it is installed and writes floats as expected.

    The edits in `_orjson_rows` assume the layout of orjson 3.13's float
    output. A version that writes any probe value differently is not used, so
    output stays NumPy's at the per-value path's speed.
    """
    import numpy as np

    try:
        import orjson
    except ImportError:
        return None
    layout = delimited_layout(1, "\n")
    for dtype in (np.float32, np.float64):
        probe = np.array(PROBE_VALUES, dtype=dtype)
        probe = np.concatenate([probe, np.negative(probe)])[:, np.newaxis]
        if _orjson_rows(probe, layout, orjson) != _python_rows([probe[:, 0]], layout):
            return None
    return orjson


@functools.lru_cache(maxsize=1 << 16)
def _shortest_float16(bits: int) -> str:
    import numpy as np

    return str(np.array([bits], dtype=np.uint16).view(np.float16)[0])


@functools.lru_cache(maxsize=1 << 16)
def _shortest_bfloat16(bits: int) -> str:
    import ml_dtypes
    import numpy as np

    value = np.array([bits], dtype=np.uint16).view(ml_dtypes.bfloat16)[0]
    wide = float(value)
    if not np.isfinite(wide) or wide == 0:
        return str(np.float32(wide))
    for digits in range(1, 10):
        text = f"{wide:.{digits - 1}e}"
        if np.array([float(text)]).astype(ml_dtypes.bfloat16)[0] == value:
            break
    return str(np.float32(float(text))) if abs(wide) >= 1e-4 else _scientific(text)


def _scientific(text: str) -> str:
    """Rewrite Python's `d.ddde-05` in NumPy's scalar style, without trailing zeros."""
    mantissa, exponent = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{exponent}"


def python_strings(values: np.ndarray) -> list[str]:
    """Return each value's string one value at a time, as NumPy's `str` gives it."""
    import numpy as np

    if values.dtype == np.float64:
        return [repr(value) for value in values.tolist()]
    if values.dtype.name == "bfloat16":
        return [_shortest_bfloat16(bits) for bits in values.view(np.uint16).tolist()]
    if values.dtype == np.float16:
        return [_shortest_float16(bits) for bits in values.view(np.uint16).tolist()]
    return [str(value) for value in values]


def _fast_rows(matrix: np.ndarray) -> np.ndarray | None:
    """Return which rows orjson formats as NumPy does, or None if it can format none."""
    import numpy as np

    if matrix.dtype not in (np.float32, np.float64) or matrix.shape[1] > MAX_COLUMNS:
        return None
    # A few rows, as `softplus eval 1` writes, cost less than importing orjson.
    if matrix.size < FEW_VALUES or _orjson() is None:
        return None
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(matrix)
        if matrix.dtype == np.float64:
            fine = magnitude < np.inf
        else:
            # NumPy writes float32 values from 1e6 up in scientific notation, and
            # float32(1e-4), which is just below 1e-4, as 1e-04.
            # NOTE: rows holding such values (or inf or nan) take the per-value
            # path, about 6 times slower (benchmarks/stages.py), so float32 data
            # made mostly of values from 1e6 up formats at the previous speed.
            fine = (magnitude < 1e6) & (magnitude != np.float32(1e-4))
    return fine.all(axis=1)


@functools.cache
def _decade_bounds(dtype_name: str) -> tuple[float, float, float, float]:
    """Return the dtype's values nearest 1e-9, 1e-6, 1e-5 and 1e-4.

    A value's shortest decimal has exponent -k or more exactly when the value
    is at least the dtype's value nearest 10**-k: the decimals that read back
    as a value lie above all those that read back as any smaller value.
    """
    import numpy as np

    kind = np.dtype(dtype_name).type
    nano, micro, ten_micro, tenth_milli = (
        float(kind(text)) for text in ("1e-9", "1e-6", "1e-5", "1e-4")
    )
    return nano, micro, ten_micro, tenth_milli


def _cell_endings(layout: RowLayout, columns: int) -> list[list[bytes]]:
    """Return the text after each cell, by kind of cell and column.

    The last column's ending includes the next row's prefix, which
    `_orjson_rows` moves from the end of the block to its start.
    """
    endings = []
    for suffix in CELL_SUFFIXES:
        row = [suffix + separator.encode() for separator in layout.separators]
        row[-1] += layout.prefix.encode()
        endings.append(row)
    return endings


def _markers(endings: list[list[bytes]]) -> np.ndarray:
    """Return the byte that ends each (kind of cell, column) in the edited text.

    An ending of one byte is written as itself. Longer endings get a
    placeholder byte, which `bytes.replace` expands afterwards.
    """
    import numpy as np

    columns = len(endings[0])
    markers = np.empty((len(endings), columns), dtype=np.uint8)
    for kind, row in enumerate(endings):
        for column, ending in enumerate(row):
            if len(ending) == 1:
                markers[kind, column] = ending[0]
            else:
                markers[kind, column] = FIRST_PLACEHOLDER + kind * columns + column
    return markers


def _orjson_rows(matrix: np.ndarray, layout: RowLayout, orjson: Any) -> bytes:
    """Format rows of finite values with orjson's shortest digits in NumPy's layout.

    orjson writes `2.0611537e-9` where NumPy writes `2.0611537e-09`, and writes
    values from 1e-5 to 1e-4 (from 1e-6 in float32) positionally, as
    `0.000015`, where NumPy writes `1.5e-05`. Both cases are recognised from
    the values, edited in place with marker bytes, and expanded by
    `bytes.replace`, so the cost stays in C however many values need it.
    """
    import numpy as np

    columns = matrix.shape[1]
    values = matrix.reshape(-1)
    text = bytearray(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY))
    # `[a,b,c]` becomes `[a,b,c,`: every cell ends at a comma.
    text[-1] = COMMA
    cells = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(cells == COMMA)
    starts = np.empty_like(ends)
    starts[0] = 1
    starts[1:] = ends[:-1] + 1

    nano, micro, ten_micro, tenth_milli = _decade_bounds(matrix.dtype.name)
    magnitude = np.abs(values)
    positional_from = micro if matrix.dtype == np.float32 else ten_micro
    short_exponent = (magnitude >= nano) & (magnitude < positional_from)
    # `e-7,`: the minus sign two bytes before the comma gains a zero.
    cells[ends[short_exponent] - 2] = PAD_EXPONENT

    kinds = np.zeros(len(values), dtype=np.uint8)
    kinds[(magnitude >= ten_micro) & (magnitude < tenth_milli)] = 1
    if matrix.dtype == np.float32:
        kinds[(magnitude >= micro) & (magnitude < ten_micro)] = 2
    for kind, zeros in ((1, 4), (2, 5)):
        _move_point(cells, starts, ends, values, kinds == kind, zeros)

    endings = _cell_endings(layout, columns)
    markers = _markers(endings)
    for column in range(columns):
        cells[ends[column::columns]] = markers[0, column]
    edited = np.flatnonzero(kinds)
    cells[ends[edited]] = markers[kinds[edited], edited % columns]
    body = bytes(memoryview(text)[1:])
    if short_exponent.any():
        body = body.replace(bytes([PAD_EXPONENT]), b"-0")
    used_kinds = np.flatnonzero(np.bincount(kinds, minlength=len(CELL_SUFFIXES)))
    if len(used_kinds) > 1 or used_kinds[0] != 0:
        body = body.translate(None, bytes([FILLER]))

    for kind in used_kinds.tolist():
        for column, ending in enumerate(endings[kind]):
            if len(ending) > 1:
                body = body.replace(bytes([markers[kind, column]]), ending)
    prefix = layout.prefix.encode()
    return prefix + body[: len(body) - len(prefix)]


def _move_point(
    cells: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    selected: np.ndarray,
    zeros: int,
) -> None:
    """Rewrite the selected cells `0.0000d…` (with `zeros` zeros) as `d.…`.

    The leading zeros become FILLER bytes, the first significant digit moves
    before the point, and a cell of one digit loses its point.
    """
    import numpy as np

    if not selected.any():
        return
    first = starts[selected] + np.signbit(values[selected])
    end = ends[selected]
    for offset in range(zeros + 1):
        cells[first + offset] = FILLER
    digit = first + zeros + 2
    cells[digit - 1] = cells[digit]
    cells[digit] = np.where(end > digit + 1, POINT, FILLER)


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
    column's dtype, in NumPy's scalar style. The columns have equal lengths.
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

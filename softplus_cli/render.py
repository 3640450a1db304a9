"""Renderers: a Rich table for terminals, and plain formats for pipes and files.

Plain formats never go through Rich. Each writes the shortest string that reads
back as the same value in the dtype, in orjson's layout (`1.0`, `0.1`,
`2.0611537e-9`; see softplus_cli/formatting.py). Tables format each column the
way NumPy prints an array.
"""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from softplus_cli.formatting import RowLayout

# Fractional digits enough for any float64 value NumPy prints positionally.
UNLIMITED_PRECISION = 40
# Zeros that pad an exponent beyond two digits, as in `e-001`.
EXPONENT_PADDING = re.compile(r"e([+-])0+(?=\d\d$)")

# Rows that the formats holding the whole output in memory accept. The other
# formats stream any number of rows.
TABLE_ROW_LIMIT = 10_000
# NumPy's repr slows down faster than linearly: 100,000 float32 values take
# several seconds.
NUMPY_ROW_LIMIT = 10_000


class OutputFormat(enum.StrEnum):
    auto = "auto"
    table = "table"
    tsv = "tsv"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    numpy = "numpy"


# Formats without a header row: JSON names each value by its column, and NumPy's
# repr has no column names.
HEADERLESS_FORMATS = frozenset(
    {OutputFormat.json, OutputFormat.jsonl, OutputFormat.numpy}
)


class TooManyRowsError(ValueError):
    """Raised when a table or NumPy repr would need more rows than it accepts."""


def resolve_format(requested: OutputFormat, stream: IO[str]) -> OutputFormat:
    """Resolve `auto` to a table on a terminal and TSV anywhere else."""
    if requested is not OutputFormat.auto:
        return requested
    return OutputFormat.table if stream.isatty() else OutputFormat.tsv


def row_limit(output_format: OutputFormat) -> int | None:
    """Return the most rows `output_format` accepts, or None if it streams."""
    limits = {OutputFormat.table: TABLE_ROW_LIMIT, OutputFormat.numpy: NUMPY_ROW_LIMIT}
    return limits.get(output_format)


def too_many_rows_message(output_format: OutputFormat, rows: int | None) -> str:
    limit = row_limit(output_format) or 0
    count = f"more than {limit:,}" if rows is None else f"{rows:,}"
    return (
        f"{count} rows is too many for --format {output_format.value} "
        f"(at most {limit:,}): use --format tsv, csv or jsonl, which stream"
    )


def shortest_strings(values: np.ndarray) -> list[str]:
    """Return each value as the shortest string that reads back to it in its dtype."""
    from softplus_cli.formatting import delimited_layout, format_rows

    return format_rows([values], delimited_layout(1, "\n")).decode().splitlines()


def column_strings(values: np.ndarray) -> list[str]:
    """Format a column as NumPy prints the array: one format for all its values.

    NumPy's default precision of 8 digits would cut float64 values, so the
    precision is raised until each value prints its shortest unique digits.
    NumPy prints bfloat16 with 6 digits whatever the value (`0.100098` for
    0.1), so bfloat16 columns take the plain formats' shortest strings.
    NumPy also gives every exponent as many digits as the longest one needs
    (`3.13e-001` beside `4.94e-324`): each keeps two digits at least, as
    NumPy prints a single value.
    """
    import numpy as np

    if values.dtype.name == "bfloat16":
        return shortest_strings(values)

    text = np.array2string(
        values,
        separator="|",
        threshold=sys.maxsize,
        max_line_width=sys.maxsize,
        precision=UNLIMITED_PRECISION,
        floatmode="maxprec",
    )
    return [
        EXPONENT_PADDING.sub(r"e\1", cell.strip()) for cell in text[1:-1].split("|")
    ]


class Writer:
    """Receives the output in chunks of columns and writes it."""

    def __init__(self, stream: IO[str], names: Sequence[str], header: bool):
        self.stream = stream
        self.names = list(names)
        self.header = header

    def write(self, columns: Sequence[np.ndarray]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PlainWriter(Writer):
    """Writes rows of text, as bytes when the stream has a binary buffer.

    Formatting (`encode`) is separate from writing (`write_encoded`), so that
    chunks can be formatted on other threads and written in order. Nothing is
    written before the first chunk.
    """

    layout: RowLayout

    def __init__(self, stream: IO[str], names: Sequence[str], header: bool):
        super().__init__(stream, names, header)
        self.started = False

    def start(self) -> None:
        """Write what comes before the first row."""

    def encode(self, columns: Sequence[np.ndarray]) -> bytes:
        """Return the rows of `columns` as text; safe to call from any thread."""
        from softplus_cli.formatting import format_rows

        return format_rows(columns, self.layout)

    def write_encoded(self, data: Any) -> None:
        """Write encoded rows: bytes, or a `softplus_cli.pipeline.PipedText`."""
        if not self.started:
            self.started = True
            self.start()
        self._write_bytes(data)

    def write(self, columns: Sequence[np.ndarray]) -> None:
        self.write_encoded(self.encode(columns))

    def _write_bytes(self, data: Any) -> None:
        buffer = getattr(self.stream, "buffer", None)
        if buffer is None:
            self.stream.write(_bytes_of(data).decode())
            return
        # Text written before (a header, say) must reach the buffer first.
        self.stream.flush()
        descriptor = _descriptor_of(buffer)
        if descriptor is not None and hasattr(data, "copy_to"):
            buffer.flush()
            data.copy_to(descriptor)
        else:
            buffer.write(_bytes_of(data))


def _bytes_of(data: Any) -> bytes:
    """Return text that a worker process is still sending (a
    `softplus_cli.pipeline.PipedText`) as bytes, and bytes as they are."""
    read = getattr(data, "read", None)
    return read() if read is not None else data


def _descriptor_of(buffer: Any) -> int | None:
    try:
        return int(buffer.fileno())
    except (AttributeError, OSError, ValueError):
        return None  # An in-memory stream, as tests use.


class DelimitedWriter(PlainWriter):
    def __init__(
        self, stream: IO[str], names: Sequence[str], header: bool, separator: str
    ):
        from softplus_cli.formatting import delimited_layout

        super().__init__(stream, names, header)
        self.separator = separator
        self.layout = delimited_layout(len(self.names), separator)

    def start(self) -> None:
        if self.header:
            self.stream.write(self.separator.join(self.names) + "\n")


class JsonLinesWriter(PlainWriter):
    """Writes one JSON object a line, with inf, -inf and nan as strings."""

    row_end = "}\n"

    def __init__(self, stream: IO[str], names: Sequence[str], header: bool):
        import json

        from softplus_cli.formatting import RowLayout

        super().__init__(stream, names, header)
        keys = [json.dumps(name) for name in self.names]
        separators = [f", {key}: " for key in keys[1:]] + [self.row_end]
        self.layout = RowLayout(
            prefix="{" + keys[0] + ": ",
            separators=tuple(separators),
            quote_special=True,
        )


class JsonWriter(JsonLinesWriter):
    """Writes a JSON array of objects, one object a line."""

    row_end = "},\n"

    def __init__(self, stream: IO[str], names: Sequence[str], header: bool):
        super().__init__(stream, names, header)
        self.first = True

    def start(self) -> None:
        self.stream.write("[")

    def write_encoded(self, data: Any) -> None:
        data = _bytes_of(data)
        if not data:
            if not self.started:
                super().write_encoded(b"")
            return
        prefix = b"\n" if self.first else b",\n"
        # Each object ends with ",\n"; the next chunk or close() writes the rest.
        super().write_encoded(prefix + data[: -len(b",\n")])
        self.first = False

    def close(self) -> None:
        if not self.started:
            self.start()
        self.stream.write("\n]\n")


class CollectingWriter(Writer):
    """Keeps every chunk, for formats that need the whole output at once."""

    output_format: OutputFormat

    def __init__(self, stream: IO[str], names: Sequence[str], header: bool):
        super().__init__(stream, names, header)
        self.chunks: list[Sequence[np.ndarray]] = []
        self.rows = 0

    def write(self, columns: Sequence[np.ndarray]) -> None:
        self.rows += len(columns[0])
        limit = row_limit(self.output_format)
        if limit is not None and self.rows > limit:
            raise TooManyRowsError(too_many_rows_message(self.output_format, None))
        self.chunks.append(columns)

    def columns(self) -> list[np.ndarray]:
        import numpy as np

        return [
            np.concatenate([chunk[index] for chunk in self.chunks])
            for index in range(len(self.names))
        ]


class NumpyWriter(CollectingWriter):
    """Writes each result column as NumPy's repr of the array, in full."""

    output_format = OutputFormat.numpy

    def close(self) -> None:
        import numpy as np

        columns = self.columns()[1:]
        with np.printoptions(threshold=sys.maxsize):
            for name, column in zip(self.names[1:], columns, strict=True):
                if len(columns) > 1:
                    self.stream.write(f"# {name}\n")
                self.stream.write(repr(column) + "\n")


class TableWriter(CollectingWriter):
    output_format = OutputFormat.table

    def __init__(
        self,
        stream: IO[str],
        names: Sequence[str],
        header: bool,
        title: str,
        make_console: Callable[..., Console],
    ):
        super().__init__(stream, names, header)
        self.title = title
        self.make_console = make_console

    def close(self) -> None:
        from rich.table import Table

        table = Table(
            title=self.title,
            show_header=self.header,
            header_style="bold",
            min_width=len(self.title) + 4,
        )
        for name in self.names:
            table.add_column(name, justify="right", no_wrap=True)
        cells = [column_strings(column) for column in self.columns()]
        for row in zip(*cells, strict=True):
            table.add_row(*row)
        console = self.make_console(self.stream)
        needed = _table_width(console, table)
        if needed > console.width:
            # A narrower console would cut digits: the lines may wrap on a
            # small terminal instead, but every digit stays.
            console = self.make_console(self.stream, width=needed)
        console.print(table)


def _table_width(console: Any, table: Any) -> int:
    """Return the width at which no cell of `table` is cut or wrapped."""
    from rich.measure import Measurement

    unlimited = console.options.update(width=1 << 16)
    return Measurement.get(console, unlimited, table).maximum


def make_writer(
    output_format: OutputFormat,
    stream: IO[str],
    names: Sequence[str],
    header: bool | None,
    title: str,
    make_console: Callable[..., Console],
) -> Writer:
    """Return the writer for a resolved (not `auto`) format."""
    if output_format is OutputFormat.table:
        return TableWriter(stream, names, header is not False, title, make_console)
    if output_format is OutputFormat.tsv:
        return DelimitedWriter(stream, names, bool(header), "\t")
    if output_format is OutputFormat.csv:
        return DelimitedWriter(stream, names, header is not False, ",")
    if output_format is OutputFormat.json:
        return JsonWriter(stream, names, True)
    if output_format is OutputFormat.jsonl:
        return JsonLinesWriter(stream, names, True)
    return NumpyWriter(stream, names, False)

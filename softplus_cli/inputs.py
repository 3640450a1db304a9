"""Inputs: numbers from arguments, grids from ranges, and streams from stdin.

Every source yields NumPy arrays in the target dtype, each value the decimal
input correctly rounded to that dtype. Decimals go to float64 first, which is
correctly rounded. The second rounding, to a narrower dtype, can differ from
direct rounding only where the float64 value is exactly halfway between two
values of the narrow dtype. Those ties are settled from the exact decimal.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)
DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+")
# Digits grouped in threes by commas, as in 1,000 and 12,345,678.5. A single
# group, as in 1,000, may also be a decimal comma.
THOUSANDS_SEPARATORS = re.compile(r"[+-]?[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?")
TOKEN = re.compile(rb"\S+")
NEWLINE = ord("\n")
UTF8_BOM = b"\xef\xbb\xbf"
# Blocks shorter than this are read by float() alone.
JSON_MIN_BYTES = 4096
# Bytes of the JSON values other than numbers: true, false, null and strings.
JSON_ONLY_BYTES = tuple(bytes([byte]) for byte in b',"tfn')
# The bytes that bytes.split() splits at.
WHITESPACE = (b" ", b"\n", b"\t", b"\r", b"\x0b", b"\x0c")

# Bytes read from a stream at a time, and the grid points made at a time.
READ_SIZE = 1 << 20
# Seconds spent gathering a block once its first bytes are in, and seconds a
# producer may pause before the rows read so far are written.
GATHER = 0.02
PAUSE = 0.05
GRID_CHUNK = 1 << 16

NUMBER_HINT = "expected a decimal number such as 1.5, -2e-3, inf or nan"
# Characters of an invalid token that its error message shows.
SHOWN_CHARACTERS = 40
# A token this long is not a number anyone writes: stop reading instead of
# holding more of it.
MAX_TOKEN_BYTES = 1 << 24


# Range ends and steps must be float64 numbers: larger ones overflow and
# smaller ones underflow to 0, and their exact decimals grow without bound.
FLOAT64_MAX = Decimal("1.7976931348623157e308")
MIN_EXPONENT = -324
MAX_EXPONENT = 308
# Far more points than any grid streams in reasonable time.
MAX_GRID_POINTS = 10**12


class InputError(ValueError):
    """Raised for input that is not a number, a valid range, or is missing."""


@dataclass
class Overflow:
    """Counts of inputs beyond the dtype's range: too large, so they became
    ±inf, or too small, so they became 0."""

    count: int = 0
    first: str = ""
    underflow_count: int = 0
    underflow_first: str = ""

    def merge(self, later: Overflow) -> None:
        """Add the counts of `later`, which covers inputs after these."""
        if later.count and not self.count:
            self.first = later.first
        if later.underflow_count and not self.underflow_count:
            self.underflow_first = later.underflow_first
        self.count += later.count
        self.underflow_count += later.underflow_count


def describe_invalid(text: str, where: str) -> str:
    """Return the error message for `text`, which is not a number."""
    excerpt = text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "…"
    message = f"invalid number {excerpt!r} {where}"
    decimal_comma = DECIMAL_COMMA.fullmatch(text)
    thousands = THOUSANDS_SEPARATORS.fullmatch(text)
    decimal_hint = f"use a decimal point, as in {text.replace(',', '.')}"
    thousands_hint = f"no thousands separator, as in {text.replace(',', '')}"
    if decimal_comma and thousands:
        return f"{message}: {decimal_hint}, or {thousands_hint}"
    if thousands:
        return f"{message}: use {thousands_hint}"
    if decimal_comma:
        return f"{message}: {decimal_hint}"
    return f"{message}: {NUMBER_HINT}"


def round_to_dtype(
    wide: np.ndarray, dtype: np.dtype, exact_value: Callable[[int], Fraction]
) -> np.ndarray:
    """Round the float64 array `wide` to `dtype` as if from the exact inputs.

    `exact_value(i)` returns the exact rational input behind `wide[i]`. It is
    called only for the rare elements that sit exactly on a rounding midpoint of
    `dtype`.
    """
    import numpy as np

    if dtype == np.float64:
        return wide
    wide = np.ascontiguousarray(wide, dtype=np.float64)
    with np.errstate(all="ignore"):
        narrow = wide.astype(dtype)
    # A midpoint of `dtype` has at most nmant + 2 significant bits, so the
    # lowest 51 - nmant bits of its float64 fraction are zero. Only the few
    # elements like that (integers, short binary fractions) need the full test.
    trailing = (1 << (51 - int(np.finfo(dtype).nmant))) - 1
    candidates = np.flatnonzero((wide.view(np.uint64) & np.uint64(trailing)) == 0)
    if len(candidates) == 0:
        return narrow
    values = wide[candidates]
    with np.errstate(all="ignore"):
        back = narrow[candidates].astype(np.float64)
        direction = np.where(back < values, np.inf, -np.inf).astype(dtype)
        other = np.nextafter(narrow[candidates], direction).astype(np.float64)
        tie = (back != values) & ((back + other) / 2 == values) & np.isfinite(back)
        # A value exactly halfway between the largest finite value and the next
        # power of two rounds to infinity, and is a tie as well.
        largest = float(np.finfo(dtype).max)
        spacing = largest - float(np.nextafter(dtype.type(largest), dtype.type(0)))
        at_overflow = np.abs(values) == largest + spacing / 2
        other = np.where(at_overflow, np.copysign(largest, values), other)
        back = np.where(at_overflow, np.copysign(np.inf, values), back)
        tie |= at_overflow
    for position in np.flatnonzero(tie):
        index = int(candidates[position])
        exact = exact_value(index)
        midpoint = Fraction(float(wide[index]))
        if exact != midpoint:
            # Round away from the midpoint, toward the exact value.
            low = min(back[position], other[position])
            high = max(back[position], other[position])
            narrow[index] = high if exact > midpoint else low
    return narrow


def count_overflow(
    narrow: np.ndarray, overflow: Overflow, text: Callable[[int], str]
) -> None:
    """Count the elements of `narrow` that are infinite although `text(i)` is
    finite, or zero although `text(i)` is not."""
    import numpy as np

    for index in np.flatnonzero(np.isinf(narrow)):
        source = text(int(index))
        if "inf" in source.lower():
            continue
        if overflow.count == 0:
            overflow.first = source
        overflow.count += 1
    for index in np.flatnonzero(narrow == 0):
        source = text(int(index))
        mantissa = source.lower().split("e")[0]
        if not any(digit in mantissa for digit in "123456789"):
            continue
        if overflow.underflow_count == 0:
            overflow.underflow_first = source
        overflow.underflow_count += 1


def parse_points(texts: list[str], dtype: np.dtype, overflow: Overflow) -> np.ndarray:
    """Parse command-line arguments into an array of `dtype`."""
    import numpy as np

    for position, text in enumerate(texts, start=1):
        if not NUMBER.fullmatch(text):
            raise InputError(describe_invalid(text, f"(argument {position})"))
    wide = np.array([float(text) for text in texts], dtype=np.float64)
    narrow = round_to_dtype(wide, dtype, lambda index: Fraction(texts[index]))
    count_overflow(narrow, overflow, lambda index: texts[index])
    return narrow


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _floats(tokens: list[bytes], data: bytes, first_line: int) -> np.ndarray:
    """Return the tokens as float64, or raise InputError naming the first
    invalid one."""
    import numpy as np

    try:
        if b"_" in data:
            raise ValueError("Python's digit separators are not numbers here")
        # float() reads bytes with correct rounding and, once underscores are
        # ruled out, accepts exactly the forms that NUMBER matches.
        return np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens))
    except ValueError:
        for match in TOKEN.finditer(data):
            raw = match.group()
            where = f"on line {first_line + _line_of(data, match.start()) - 1}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                # Shown as bytes, so that each byte that is not UTF-8 shows.
                excerpt = repr(raw[:SHOWN_CHARACTERS])
                if len(raw) > SHOWN_CHARACTERS:
                    excerpt += "…"
                raise InputError(
                    f"invalid number {excerpt} {where} of standard input: it is "
                    f"not UTF-8 text; {NUMBER_HINT}"
                ) from None
            if not NUMBER.fullmatch(text):
                raise InputError(
                    describe_invalid(text, f"{where} of standard input")
                ) from None
        raise


def _json_floats(data: bytes) -> np.ndarray | None:
    """Return the numbers of `data`, one a line, as float64 read by orjson, or
    None when orjson is missing or the text is not that simple.

    orjson reads a JSON array about twice as fast as `float` reads the tokens,
    and as correctly rounded (tests/test_inputs.py compares the two). A JSON
    number is also a number here, and the lines of `data` with commas between
    them are a JSON array exactly when every line contains one JSON number.
    Anything else, such as `+1`, `.5`, `inf` or two numbers on a line, is not
    valid JSON and returns None. The other JSON values (true, false, null,
    strings) are ruled out first, by their letters and quotes. One difference
    remains, which the caller corrects: orjson reads `-0` as the integer 0.
    """
    import numpy as np

    # A few numbers, as `echo 1 | softplus eval -` gives, cost less than
    # importing orjson.
    if len(data) < JSON_MIN_BYTES or any(byte in data for byte in JSON_ONLY_BYTES):
        return None
    orjson = _orjson()
    if orjson is None:
        return None
    text = data.strip()
    if not text:
        return np.empty(0, dtype=np.float64)
    try:
        values = orjson.loads(b"[" + text.replace(b"\n", b",") + b"]")
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


@functools.cache
def _orjson() -> Any:
    from softplus_cli.formatting import import_orjson

    return import_orjson()


@dataclass(frozen=True)
class Block:
    """Text from a stream that ends between two tokens, starting on line
    `first_line` of the stream."""

    data: bytes
    first_line: int


def parse_block(block: Block, dtype: np.dtype) -> tuple[np.ndarray, Overflow]:
    """Return the numbers of `block` in `dtype`, and how many overflowed it.

    Raises InputError for an invalid token, naming its line.
    """
    import numpy as np

    data = block.data
    tokens: list[bytes] | None = None

    def token(index: int) -> str:
        nonlocal tokens
        if tokens is None:
            tokens = data.split()
        return tokens[index].decode()

    wide = _json_floats(data)
    if wide is None:
        tokens = data.split()
        wide = _floats(tokens, data, block.first_line)
    else:
        for index in np.flatnonzero(wide == 0):
            if token(int(index)).startswith("-"):
                wide[index] = -0.0
    narrow = round_to_dtype(wide, dtype, lambda index: Fraction(token(index)))
    overflow = Overflow()
    count_overflow(narrow, overflow, token)
    return narrow, overflow


def _read_available(stream: IO[bytes], size: int) -> bytes:
    """Read up to `size` bytes, waiting for the first and then at most GATHER
    seconds for the rest.

    `read1` returns what is available, so rows from a slow producer come out as
    its lines arrive instead of once a whole block has filled. A Linux pipe
    buffers 64 KiB by default, so while more bytes come within GATHER seconds
    (as `select` reports) this reads on, to parse in blocks of `size`, which
    costs less per number. The wait lets a fast producer that lost its CPU for
    a moment fill the block.
    """
    read = getattr(stream, "read1", None)
    if read is None:
        return stream.read(size)
    block = read(size)
    parts = [block]
    length = len(block)
    deadline = time.monotonic() + GATHER
    while block and length < size:
        if not _ready(stream, max(0.0, deadline - time.monotonic())):
            break
        block = read(size - length)
        parts.append(block)
        length += len(block)
    return b"".join(parts)


def _last_whitespace(data: bytes) -> int:
    """Return the index of the last whitespace byte of `data`, or -1."""
    # Tokens are short: look in the tail first, as each rfind of a byte that
    # is absent scans all of `data`.
    tail = max(0, len(data) - 4096)
    cut = max(data.rfind(space, tail) for space in WHITESPACE)
    if cut < 0 < tail:
        cut = max(data.rfind(space, 0, tail) for space in WHITESPACE)
    return cut


def _ready(stream: IO[bytes], timeout: float = 0.0) -> bool:
    """Return whether reading `stream` returns within `timeout` seconds; True
    when that cannot be known (Windows selects on sockets only)."""
    try:
        descriptor = stream.fileno()
        ready, _, _ = select.select([descriptor], [], [], timeout)
    except (AttributeError, OSError, ValueError):
        return True
    return bool(ready)


def _count_lines(data: bytes) -> int:
    """Return the number of newlines in `data` (NumPy counts ten times as fast
    as `bytes.count`)."""
    import numpy as np

    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == NEWLINE))


def read_blocks(
    stream: IO[bytes], read_size: int = READ_SIZE, idle: bool = False
) -> Iterator[Block | None]:
    """Yield the stream in blocks of about `read_size` bytes that end between
    tokens, so that memory stays proportional to `read_size` plus the longest
    token, however long the stream.

    With `idle`, yield None before each read that would wait more than PAUSE
    seconds for the producer, so that a consumer holding finished work can
    write it first.
    """
    carry = b""
    line = 1
    first = True
    while True:
        if idle and not _ready(stream, PAUSE):
            yield None
        try:
            block = _read_available(stream, read_size)
        except OSError as error:
            raise InputError(
                f"cannot read standard input: {error.strerror or error}; "
                "pipe or redirect the numbers into it"
            ) from None
        if first:
            # Editors on Windows start UTF-8 files with a byte order mark.
            block = block.removeprefix(UTF8_BOM)
            first = False
        data = carry + block
        if block:
            # The last token may continue in the next block.
            cut = _last_whitespace(data)
            data, carry = data[: cut + 1], data[cut + 1 :]
            if len(carry) > MAX_TOKEN_BYTES:
                line += data.count(b"\n")
                raise InputError(
                    f"invalid input on line {line} of standard input: more than "
                    f"{MAX_TOKEN_BYTES >> 20} MiB without whitespace; separate "
                    "numbers with spaces or newlines"
                )
        else:
            carry = b""
        if data:
            yield Block(data, line)
        line += _count_lines(data)
        if not block:
            break


NO_NUMBERS = (
    "standard input contains no numbers: pipe whitespace-separated numbers, "
    "or give them as arguments"
)


def read_stream(
    stream: IO[bytes], dtype: np.dtype, overflow: Overflow, read_size: int = READ_SIZE
) -> Iterator[np.ndarray]:
    """Yield the whitespace-separated numbers of `stream` in chunks of `dtype`.

    Raises InputError for an invalid token, naming its line, and for a stream
    with no numbers at all.
    """
    seen_any = False
    for block in read_blocks(stream, read_size):
        assert block is not None
        narrow, counted = parse_block(block, dtype)
        overflow.merge(counted)
        if len(narrow):
            seen_any = True
            yield narrow
    if not seen_any:
        raise InputError(NO_NUMBERS)


@dataclass(frozen=True)
class Grid:
    """The points (offset + i·increment) / denominator for i in range(count).

    All three are integers, so every point is an exact rational and rounds
    once to the dtype: the last point of -5:5:0.1 is exactly 5. A zero has no
    sign as an integer, so `negative_zero_start` records a START written as -0,
    which makes the first point -0.0.
    """

    offset: int
    increment: int
    denominator: int
    count: int
    negative_zero_start: bool = False

    @property
    def first(self) -> Fraction:
        return Fraction(self.offset, self.denominator)

    @property
    def last(self) -> Fraction:
        numerator = self.offset + (self.count - 1) * self.increment
        return Fraction(numerator, self.denominator)


def _decimal(text: str, role: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = None
    if value is None or not NUMBER.fullmatch(text.strip()):
        raise InputError(
            f"invalid range {spec!r}: {role} {text!r} is not a number; "
            "use START:STOP:STEP, as in -5:5:0.5"
        )
    if not value.is_finite():
        raise InputError(
            f"invalid range {spec!r}: {role} {text!r} must be finite; "
            "use finite numbers, as in -5:5:0.5"
        )
    # Check the exponent first: arithmetic on 1e99999999 overflows Decimal.
    outside = value and not MIN_EXPONENT <= value.adjusted() <= MAX_EXPONENT
    if outside or abs(value) > FLOAT64_MAX:
        raise InputError(
            f"invalid range {spec!r}: {role} {text!r} is outside the range of "
            "float64 (about 5e-324 to 1.8e308 in magnitude)"
        )
    return value


def _checked_count(spec: str, count: int, fix: str = "use a larger step") -> int:
    if count > MAX_GRID_POINTS:
        if count < 10**15:
            count_text = f"{count:,}"
        elif count < 10**308:
            count_text = f"about {float(count):.1e}"
        else:
            count_text = "over 1e+308"
        raise InputError(
            f"invalid range {spec!r}: {count_text} points is more than the "
            f"{MAX_GRID_POINTS:,} allowed; {fix}"
        )
    return count


def _scaled_integers(*values: Decimal) -> tuple[list[int], int]:
    """Return integers n_i and a power of ten q with values[i] == n_i / q."""
    exponent = min(0, *(int(value.as_tuple().exponent) for value in values))
    scale = 10**-exponent
    return [int(value.scaleb(-exponent)) for value in values], scale


def parse_range(spec: str, points: int | None) -> Grid:
    """Parse START:STOP:STEP, or START:STOP with `points` as numpy.linspace takes it."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise InputError(
            f"invalid range {spec!r}: use START:STOP:STEP, as in -5:5:0.5, "
            "or START:STOP with --points N"
        )
    start = _decimal(parts[0], "START", spec)
    stop = _decimal(parts[1], "STOP", spec)
    if len(parts) == 3:
        if points is not None:
            raise InputError(
                f"invalid range {spec!r}: give either a STEP or --points, not both"
            )
        step = _decimal(parts[2], "STEP", spec)
        grid = _stepped_grid(spec, start, stop, step)
    elif points is None:
        raise InputError(
            f"invalid range {spec!r}: add a step, as in {spec}:0.5, or give --points N"
        )
    else:
        grid = _counted_grid(spec, start, stop, points)
    if start.is_zero() and start.is_signed():
        grid = dataclasses.replace(grid, negative_zero_start=True)
    return grid


def _stepped_grid(spec: str, start: Decimal, stop: Decimal, step: Decimal) -> Grid:
    if step == 0:
        raise InputError(f"invalid range {spec!r}: STEP must not be 0")
    if (stop - start) * step < 0:
        direction = "positive" if stop > start else "negative"
        raise InputError(
            f"invalid range {spec!r}: STEP must be {direction} to go from "
            f"{start} to {stop}"
        )
    (first, last, increment), denominator = _scaled_integers(start, stop, step)
    count = _checked_count(spec, (last - first) // increment + 1)
    return Grid(first, increment, denominator, count)


def _counted_grid(spec: str, start: Decimal, stop: Decimal, points: int) -> Grid:
    if points < 1:
        raise InputError(f"invalid --points {points}: must be at least 1")
    _checked_count(spec, points, "use fewer --points")
    (first, last), denominator = _scaled_integers(start, stop)
    if points == 1:
        return Grid(first, 0, denominator, 1)
    intervals = points - 1
    return Grid(first * intervals, last - first, denominator * intervals, points)


def grid_chunks(
    grid: Grid, dtype: np.dtype, overflow: Overflow, chunk: int = GRID_CHUNK
) -> Iterator[np.ndarray]:
    """Yield the grid's points in `dtype`, `chunk` at a time."""
    import numpy as np

    largest = max(abs(grid.first), abs(grid.last))
    exact_in_float64 = (
        largest * grid.denominator <= 2**53
        and abs(grid.increment) <= 2**53
        and grid.denominator <= 2**53
    )
    for begin in range(0, grid.count, chunk):
        end = min(grid.count, begin + chunk)

        def exact(index: int, begin: int = begin) -> Fraction:
            numerator = grid.offset + (begin + index) * grid.increment
            return Fraction(numerator, grid.denominator)

        if exact_in_float64:
            # One IEEE division of two exact float64 values: correctly rounded.
            indices = np.arange(begin, end, dtype=np.int64)
            numerators = grid.offset + indices * grid.increment
            wide = numerators.astype(np.float64) / float(grid.denominator)
        else:
            wide = np.array([float(exact(i)) for i in range(end - begin)])
        if begin == 0 and grid.negative_zero_start:
            wide[0] = -0.0
        narrow = round_to_dtype(wide, dtype, exact)
        count_overflow(narrow, overflow, lambda index: str(float(exact(index))))
        yield narrow

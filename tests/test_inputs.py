"""Inputs: numbers streamed from stdin, rounding to the dtype, and grids."""

import io
import os
import threading
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from softplus_cli.inputs import (
    InputError,
    Overflow,
    grid_chunks,
    parse_range,
    read_stream,
    round_to_dtype,
)

DTYPES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32)]
ALL_DTYPES = [*DTYPES, np.dtype(np.float64)]


def nearest(exact: Fraction, dtype: np.dtype) -> np.generic:
    """Round `exact` to `dtype`, to nearest with ties to even, by exact comparison."""
    with np.errstate(over="ignore"):
        guess = np.array([float(exact)]).astype(dtype)
    candidates = [
        np.nextafter(guess, np.array([-np.inf], dtype=dtype))[0],
        guess[0],
        np.nextafter(guess, np.array([np.inf], dtype=dtype))[0],
    ]

    def key(candidate):
        odd = int(np.array([candidate], dtype=dtype).view(f"u{dtype.itemsize}")[0]) & 1
        return (abs(Fraction(float(candidate)) - exact), odd)

    return min((c for c in candidates if np.isfinite(c)), key=key)


def bits(values: np.ndarray) -> list[int]:
    return values.view(f"u{values.dtype.itemsize}").tolist()


def read_all(data: bytes, dtype=np.float32, read_size=1 << 20, overflow=None):
    chunks = read_stream(
        io.BytesIO(data), np.dtype(dtype), overflow or Overflow(), read_size
    )
    return np.concatenate(list(chunks))


class TrickleStream(io.RawIOBase):
    """A binary stream that returns at most `size` bytes per read, like a slow pipe."""

    def __init__(self, data: bytes, size: int):
        self.data = data
        self.size = size

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(self.size, len(buffer), len(self.data))
        buffer[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


# --- reading stdin ---------------------------------------------------------


@pytest.mark.parametrize("read_size", [1, 2, 3, 5, 8, 64])
def test_tokens_split_across_blocks(read_size):
    data = b"-20 -1.5e-3\n0.3132617 1e+30\ninf -nan\n12345.678e-2\n"
    values = read_all(data, np.float64, read_size=read_size)
    expected = [-20.0, -1.5e-3, 0.3132617, 1e30, np.inf, np.nan, 123.45678]
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("size", [1, 3, 4096])
def test_trickling_stream_reads_every_token(size):
    numbers = [f"{index * 1.25:.9g}" for index in range(-500, 500)]
    data = "\n".join(numbers).encode()
    chunks = read_stream(TrickleStream(data, size), np.dtype(np.float64), Overflow())
    values = np.concatenate(list(chunks))
    np.testing.assert_array_equal(values, [float(text) for text in numbers])


@pytest.mark.parametrize(
    "data",
    [
        b"1\r\n2\r\n3\r\n",
        b"1\t2\t3",
        b"  1  \n\n\t2 \x0b 3\x0c\n",
        b"1\r2\r3\r",
    ],
    ids=["crlf", "tabs", "mixed-whitespace", "carriage-returns"],
)
def test_any_ascii_whitespace_separates(data):
    for read_size in (1, 2, 1 << 20):
        values = read_all(data, np.float64, read_size=read_size)
        assert values.tolist() == [1.0, 2.0, 3.0]


def test_carriage_returns_keep_blocks_small():
    data = b"\r".join(b"%d" % n for n in range(10_000))
    chunks = list(read_stream(io.BytesIO(data), np.dtype(np.float64), Overflow(), 1024))
    assert len(chunks) > 10
    assert max(len(chunk) for chunk in chunks) < 1024


def test_very_long_line():
    numbers = np.arange(200_000, dtype=np.float64) / 8
    data = " ".join(repr(value) for value in numbers.tolist()).encode()
    values = read_all(data, np.float64, read_size=4096)
    np.testing.assert_array_equal(values, numbers)


def test_token_longer_than_a_block():
    token = b"0." + b"0" * 5000 + b"1e5001"
    values = read_all(token + b"\n2", np.float64, read_size=64)
    assert values.tolist() == [1.0, 2.0]


def test_empty_input_is_an_error():
    for data in (b"", b" \n\t\r\n"):
        with pytest.raises(InputError, match="standard input contains no numbers"):
            read_all(data)


def test_decimal_comma_names_line_and_fix():
    with pytest.raises(InputError) as error:
        read_all(b"1.5\n2.5\n\n3,25\n")
    assert str(error.value) == (
        "invalid number '3,25' on line 4 of standard input: "
        "use a decimal point, as in 3.25"
    )


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("0,5", "use a decimal point, as in 0.5"),
        ("0,500", "use a decimal point, as in 0.500"),
        ("12,34", "use a decimal point, as in 12.34"),
        ("1234,567", "use a decimal point, as in 1234.567"),
        (
            "1,000",
            "use a decimal point, as in 1.000, or no thousands separator, as in 1000",
        ),
        (
            "-12,345",
            "use a decimal point, as in -12.345, "
            "or no thousands separator, as in -12345",
        ),
        ("1,000,000", "use no thousands separator, as in 1000000"),
        ("1,000.5", "use no thousands separator, as in 1000.5"),
    ],
)
def test_comma_hint_offers_each_reading(text, hint):
    with pytest.raises(InputError) as error:
        read_all(f"1\n{text}\n".encode())
    assert str(error.value) == (
        f"invalid number {text!r} on line 2 of standard input: {hint}"
    )


def test_invalid_token_line_counts_across_blocks():
    data = b"1\n2\n3\n4\n5\nfive\n"
    with pytest.raises(InputError, match="invalid number 'five' on line 6 of standard"):
        read_all(data, read_size=3)


def test_token_that_is_not_utf8_shows_its_bytes():
    with pytest.raises(InputError) as error:
        read_all(b"1\n2\n\xff\xfe1\n")
    message = str(error.value)
    assert message.startswith(
        "invalid number b'\\xff\\xfe1' on line 3 of standard input: it is not "
        "UTF-8 text"
    )
    assert message.endswith("expected a decimal number such as 1.5, -2e-3, inf or nan")


@pytest.mark.parametrize(
    "token", ["1_000", "1_0.5", "0x10", "1e", ".", "nan(1)", "--1"]
)
def test_not_numbers_are_rejected(token):
    with pytest.raises(InputError) as error:
        read_all(f"1 {token} 2".encode())
    assert f"invalid number {token!r} on line 1 of standard input" in str(error.value)
    assert "expected a decimal number such as 1.5, -2e-3, inf or nan" in str(
        error.value
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("+1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1.E2", 100.0),
        ("-INF", -np.inf),
        ("Infinity", np.inf),
        ("+nan", np.nan),
    ],
)
def test_number_forms_accepted(text, expected):
    values = read_all(text.encode(), np.float64)
    np.testing.assert_array_equal(values, [expected])


def test_slow_producer_rows_arrive_before_eof():
    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "rb")
    chunks = read_stream(reader, np.dtype(np.float64), Overflow())
    os.write(write_end, b"1\n2\n")
    received = []
    thread = threading.Thread(target=lambda: received.append(next(chunks)))
    thread.start()
    thread.join(timeout=10)
    still_waiting = thread.is_alive()
    os.write(write_end, b"3\n")
    os.close(write_end)
    thread.join(timeout=10)
    assert not still_waiting
    assert received[0].tolist() == [1.0, 2.0]
    assert np.concatenate(list(chunks)).tolist() == [3.0]
    reader.close()


def test_pipe_blocks_are_joined():
    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "rb")
    numbers = [f"{n}.5" for n in range(60_000)]
    data = ("\n".join(numbers) + "\n").encode()
    writer = threading.Thread(
        target=lambda: (os.write(write_end, data), os.close(write_end))
    )
    writer.start()
    chunks = list(read_stream(reader, np.dtype(np.float64), Overflow(), 1 << 20))
    writer.join()
    reader.close()
    assert np.concatenate(chunks).tolist() == [float(text) for text in numbers]


# --- rounding decimals to the dtype ------------------------------------------


@pytest.mark.parametrize(
    "text, dtype",
    [
        # Exactly halfway between 1 and the next float16: ties to even, so 1.
        ("1.00048828125", np.float16),
        ("1.00048828125000000001", np.float16),
        ("1.00146484375", np.float16),
        ("65519.99999999999999", np.float16),
        ("1.00390625", ml_dtypes.bfloat16),
        ("1.0039062500000000001", ml_dtypes.bfloat16),
        ("1.000000059604644775390625", np.float32),
        ("1.0000000596046447753906251", np.float32),
        ("0.999999970197677612304687499", np.float32),
        ("3.4028235677973366e38", np.float32),
    ],
)
def test_decimal_ties_round_from_the_exact_decimal(text, dtype):
    dtype = np.dtype(dtype)
    values = read_all(text.encode(), dtype)
    expected = nearest(Fraction(text), dtype)
    assert bits(values) == bits(np.array([expected], dtype=dtype))


def test_tie_above_largest_float16_overflows():
    overflow = Overflow()
    values = read_all(b"65520 65519.9999", np.float16, overflow=overflow)
    assert values.tolist() == [np.inf, 65504.0]
    assert overflow.count == 1
    assert overflow.first == "65520"


def exact_decimal(value: Fraction) -> str:
    """Write a dyadic rational as its exact decimal expansion."""
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    scaled = value * 10**digits
    sign = "-" if scaled < 0 else ""
    return f"{sign}{abs(scaled.numerator)}e-{digits}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_midpoints_and_their_neighbours_round_correctly(dtype):
    rng = np.random.default_rng(7)
    values = rng.uniform(-4, 4, 200).astype(dtype)
    upper = np.nextafter(values, np.array(np.inf, dtype=dtype))
    texts = []
    for low, high in zip(values.tolist(), upper.tolist(), strict=True):
        midpoint = (Fraction(low) + Fraction(high)) / 2
        nudge = Fraction(1, 10**30)
        for exact in (midpoint, midpoint + nudge, midpoint - nudge):
            texts.append(exact_decimal(exact))
    parsed = read_all(" ".join(texts).encode(), dtype)
    expected = np.array([nearest(Fraction(text), dtype) for text in texts], dtype=dtype)
    assert bits(parsed) == bits(expected)


def test_round_to_dtype_settles_ties_from_exact_values():
    wide = np.array([1.00048828125, 1.00048828125, 1.00146484375])
    exact = [
        Fraction("1.00048828125"),
        Fraction("1.000488281250001"),
        Fraction("1.00146484375"),
    ]
    narrow = round_to_dtype(wide, np.dtype(np.float16), lambda index: exact[index])
    assert narrow.tolist() == [1.0, np.float16(1.0009765625), np.float16(1.001953125)]


@pytest.mark.parametrize(
    "text, dtype, count",
    [
        ("1e39", np.float32, 1),
        ("-1e39", np.float32, 1),
        ("inf", np.float32, 0),
        ("-Infinity", np.float32, 0),
        ("1e400", np.float64, 1),
        ("70000", np.float16, 1),
        ("3.4e38", ml_dtypes.bfloat16, 1),
    ],
)
def test_overflow_counts_finite_inputs_only(text, dtype, count):
    overflow = Overflow()
    values = read_all(f"1 {text} 2 {text}".encode(), dtype, overflow=overflow)
    assert np.isinf(values[1])
    assert overflow.count == 2 * count
    assert overflow.first == (text if count else "")


def test_overflow_counts_across_chunks():
    overflow = Overflow()
    read_all(b"1e39 " * 1000 + b"5e38", np.float32, read_size=16, overflow=overflow)
    assert overflow.count == 1001
    assert overflow.first == "1e39"


# --- grids ---------------------------------------------------------------------


def grid_values(spec, points=None, dtype=np.float64, chunk=1 << 16):
    grid = parse_range(spec, points)
    return np.concatenate(list(grid_chunks(grid, np.dtype(dtype), Overflow(), chunk)))


def test_stepped_grid_ends_exactly_at_stop():
    values = grid_values("-5:5:0.1")
    assert len(values) == 101
    assert values[0] == -5.0
    assert values[-1] == 5.0
    assert values[50] == 0.0
    assert values.tolist() == [float(Fraction(n, 10)) for n in range(-50, 51)]


def test_grid_stop_off_step_excluded():
    assert grid_values("0:1:0.3").tolist() == [0.0, 0.3, 0.6, 0.9]


def test_descending_grid():
    assert grid_values("1:0:-0.25").tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("points", [1, 2, 5, 11, 1001])
def test_counted_grid_takes_points_as_linspace(points):
    values = grid_values("-3:7", points)
    assert len(values) == len(np.linspace(-3, 7, points))
    # Each point is the exact -3 + 10·i/(points-1), rounded once; linspace's own
    # arithmetic can be an ulp away.
    intervals = max(points - 1, 1)
    expected = [float(-3 + Fraction(10 * i, intervals)) for i in range(points)]
    assert values.tolist() == expected
    np.testing.assert_allclose(
        values, np.linspace(-3, 7, points), rtol=1e-15, atol=1e-15
    )
    assert values[0] == -3.0
    if points > 1:
        assert values[-1] == 7.0


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_grid_chunking_gives_the_same_points(chunk):
    whole = grid_values("-1:1:0.001", dtype=np.float32)
    chunked = grid_values("-1:1:0.001", dtype=np.float32, chunk=chunk)
    assert bits(whole) == bits(chunked)
    assert len(whole) == 2001


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_grid_points_round_correctly(dtype):
    values = grid_values("-2:2:0.0123", dtype=dtype)
    expected = [
        nearest(Fraction(-20000 + 123 * i, 10000), dtype) for i in range(len(values))
    ]
    assert bits(values) == bits(np.array(expected, dtype=dtype))


@pytest.mark.parametrize(
    ("spec", "points", "expected"),
    [
        ("-0:0:1", None, [-0.0]),
        ("-0:1:0.5", None, [-0.0, 0.5, 1.0]),
        ("-0.0:-1:-1", None, [-0.0, -1.0]),
        ("-0e5:1", 3, [-0.0, 0.5, 1.0]),
        ("-0:1", 1, [-0.0]),
    ],
)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_grid_starting_at_minus_zero(spec, points, expected, dtype):
    values = grid_values(spec, points, dtype=dtype)
    assert bits(values) == bits(np.array(expected, dtype=dtype))


@pytest.mark.parametrize("spec", ["0:1:1", "+0:1:1", "-1:1:1", "1:-0:-1"])
def test_grid_stepped_zeros_stay_positive(spec):
    values = grid_values(spec)
    zeros = values[values == 0]
    assert len(zeros) == 1
    assert not np.signbit(zeros[0])


def test_grid_minus_zero_only_in_first_chunk():
    values = grid_values("-0:3:1", chunk=1)
    assert np.signbit(values).tolist() == [True, False, False, False]


def test_grid_beyond_float64_exactness_rounds_correctly():
    values = grid_values("1e20:1.00000000000000000001e20:1", points=None)
    assert len(values) == 2
    assert values.tolist() == [1e20, float(Fraction(10**20 + 1))]


def test_utf8_byte_order_mark_is_skipped():
    values = read_all(b"\xef\xbb\xbf1.5\n2\n", np.float64)
    assert values.tolist() == [1.5, 2.0]


# --- the orjson reader -------------------------------------------------------------


@pytest.fixture
def orjson_for_any_size(monkeypatch):
    """Send even one-line blocks through orjson, which larger blocks take."""
    from softplus_cli import inputs

    monkeypatch.setattr(inputs, "JSON_MIN_BYTES", 0)


def random_token(rng: np.random.Generator) -> str:
    """Return a decimal token of any form the reader accepts, or a near miss."""
    digits = "".join(rng.choice(list("0123456789"), rng.integers(1, 30)))
    point = int(rng.integers(0, len(digits) + 1))
    mantissa = digits[:point] + "." + digits[point:] if rng.random() < 0.6 else digits
    exponent = f"e{int(rng.integers(-340, 320))}" if rng.random() < 0.7 else ""
    sign = str(rng.choice(["", "-", "+"], p=[0.45, 0.45, 0.1]))
    return sign + mantissa + exponent


def parse_both(data: bytes, dtype: np.dtype, monkeypatch) -> tuple:
    """Parse `data` with the orjson reader where it applies, then with float()."""
    from softplus_cli import inputs

    def parse():
        try:
            narrow, overflow = inputs.parse_block(inputs.Block(data, 1), dtype)
        except InputError as error:
            return str(error)
        return narrow.view(f"u{dtype.itemsize}").tolist(), overflow

    fast = parse()
    with monkeypatch.context() as patched:
        patched.setattr(inputs, "_json_floats", lambda data: None)
        slow = parse()
    return fast, slow


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_orjson_reader_reads_as_float_does(dtype, monkeypatch, orjson_for_any_size):
    import math

    from softplus_cli import inputs

    rng = np.random.default_rng(7)
    tokens = [random_token(rng) for _ in range(20_000)]
    # Signs of zero, the ends of float64's range and its midpoints.
    tokens += ["-0", "0", "-0.0", "-0e5", "-0.00e-3", "1e-400", "-1e-400"]
    tokens += ["2.4703282292062328e-324", "2.4703282292062327e-324"]
    tokens += ["1.7976931348623158e308", "9007199254740993", "18446744073709551617"]
    # The JSON numbers among them; orjson rejects those beyond float64's range.
    numbers = [
        token for token in tokens if is_json(token) and math.isfinite(float(token))
    ]
    assert len(numbers) > 10_000
    data = "\n".join(numbers).encode() + b"\n"
    assert inputs._json_floats(data) is not None
    fast, slow = parse_both(data, dtype, monkeypatch)
    assert fast == slow
    # The others (`+1`, `.5`, `007`, `1e999`) leave a block to float().
    assert inputs._json_floats("\n".join(tokens).encode()) is None


def is_json(token: str) -> bool:
    import json

    try:
        json.loads(token)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "data",
    [
        b"1\n-0\n2\n",
        b"1\r\n-2.5\r\n",
        b"\n\n1\n\n2\n",
        b"1 2\n3\n",
        b"1,5\n",
        b"1\ntrue\n",
        b"1\nnull\n",
        b'1\n"2"\n',
        b"[1]\n",
        b"1\ninf\n-nan\n",
        b"1e400\n-1e999\n1e-999\n",
        b"+1\n.5\n5.\n",
        b"1\n1_000\n",
        b"\xef\xbc\x91\n",
        b"1\n\x0b2\n",
        b"   \n",
    ],
)
def test_orjson_reader_agrees_on_edge_cases(data, monkeypatch, orjson_for_any_size):
    for dtype in ALL_DTYPES:
        fast, slow = parse_both(data, dtype, monkeypatch)
        assert fast == slow


def test_minus_zero_keeps_its_sign(orjson_for_any_size):
    from softplus_cli import inputs

    assert inputs._json_floats(b"-0\n0\n-0\n") is not None
    narrow, _ = inputs.parse_block(inputs.Block(b"-0\n0\n-0\n", 1), np.dtype("f8"))
    assert np.signbit(narrow).tolist() == [True, False, True]


def test_few_numbers_do_not_import_orjson():
    import subprocess
    import sys

    program = (
        "import io, sys; import numpy as np; "
        "from softplus_cli.inputs import Overflow, read_stream; "
        "chunks = read_stream(io.BytesIO(b'1\\n-2\\n'), np.dtype('f4'), Overflow()); "
        "print([chunk.tolist() for chunk in chunks]); "
        "print('orjson' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["[[1.0, -2.0]]", "False"]


def test_token_without_end_is_an_error(monkeypatch):
    from softplus_cli import inputs

    monkeypatch.setattr(inputs, "MAX_TOKEN_BYTES", 1000)
    stream = io.BytesIO(b"1\n2\n" + b"7" * 5000)
    with pytest.raises(InputError, match="line 3 .*more than .* without whitespace"):
        list(read_stream(stream, np.dtype(np.float32), Overflow(), read_size=512))


def test_long_invalid_token_is_shortened():
    stream = io.BytesIO(b"1\n" + b"a" * 100_000 + b"\n")
    with pytest.raises(InputError) as raised:
        list(read_stream(stream, np.dtype(np.float32), Overflow()))
    message = str(raised.value)
    assert "'" + "a" * 40 + "…'" in message
    assert len(message) < 200


@pytest.mark.parametrize("spec", ["0:1:5e-324", "0:1e300:1e-300"])
def test_range_with_astronomical_point_count(spec):
    with pytest.raises(InputError, match="over 1e\\+308 points"):
        parse_range(spec, None)

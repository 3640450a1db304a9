"""Plain output: shortest round-trip strings, delimited rows and JSON."""

import io
import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from softplus_cli import formatting
from softplus_cli.formatting import RowLayout, delimited_layout, format_rows
from softplus_cli.inputs import Overflow, parse_points
from softplus_cli.render import OutputFormat, make_writer, shortest_strings

DTYPES = [
    np.dtype(np.float16),
    np.dtype(ml_dtypes.bfloat16),
    np.dtype(np.float32),
    np.dtype(np.float64),
]


def random_values(dtype: np.dtype, count: int, seed: int = 0) -> np.ndarray:
    """Return random bit patterns of `dtype` plus its edge values."""
    unsigned = np.dtype(f"u{dtype.itemsize}")
    rng = np.random.default_rng(seed)
    patterns = rng.integers(
        0, np.iinfo(unsigned).max, count, dtype=unsigned, endpoint=True
    )
    finfo = ml_dtypes.finfo(dtype) if dtype.name == "bfloat16" else np.finfo(dtype)
    tiny = 1 << int(finfo.nmant)
    edges = np.array([0, 1, 2, tiny - 1, tiny, tiny + 1], dtype=unsigned)
    sign = np.array(1 << (8 * dtype.itemsize - 1), dtype=unsigned)
    values = np.concatenate([patterns, edges, edges | sign]).view(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -20.0], dtype=dtype)
    return np.concatenate([values, special])


def decade_values(dtype: np.dtype) -> np.ndarray:
    """Return values on both sides of every power of ten the dtype can hold."""
    with np.errstate(over="ignore"):
        powers = np.array([10.0**k for k in range(-325, 309)]).astype(dtype)
    powers = powers[np.isfinite(powers) & (powers != 0)]
    below = np.nextafter(powers, np.array(0, dtype=dtype))
    above = np.nextafter(powers, np.array(np.inf, dtype=dtype))
    values = np.concatenate([powers, below, above])
    return np.concatenate([values, -values])


@pytest.fixture(autouse=True)
def orjson_for_any_size(monkeypatch):
    """Send even one-row blocks through orjson, which larger outputs take."""
    monkeypatch.setattr(formatting, "FEW_VALUES", 0)


def parse_back(texts: list[str], dtype: np.dtype) -> np.ndarray:
    return parse_points(texts, dtype, Overflow())


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    unsigned = f"u{expected.dtype.itemsize}"
    nan = np.isnan(expected)
    assert np.isnan(actual).tolist() == nan.tolist()
    assert (
        actual[~nan].view(unsigned).tolist() == expected[~nan].view(unsigned).tolist()
    )


def tsv(columns) -> str:
    layout = delimited_layout(len(columns), "\t")
    return format_rows(columns, layout).decode()


# --- shortest strings ------------------------------------------------------------


@pytest.mark.parametrize(
    "value, dtype, text",
    [
        (2.0611537e-09, np.float32, "2.0611537e-9"),
        (-20.0, np.float32, "-20.0"),
        (0.3132617, np.float32, "0.3132617"),
        (1e30, np.float32, "1e+30"),
        (np.inf, np.float32, "inf"),
        (-np.inf, np.float64, "-inf"),
        (np.nan, np.float32, "nan"),
        (-0.0, np.float32, "-0.0"),
        (0.0, np.float64, "0.0"),
        (1e-4, np.float32, "0.0001"),
        (1e-4, np.float64, "0.0001"),
        (1.5e-5, np.float64, "0.000015"),
        (1.5e-6, np.float32, "0.0000015"),
        (1.5e-6, np.float64, "1.5e-6"),
        (-1.25e-5, np.float32, "-0.0000125"),
        (1e-5, np.float32, "0.00001"),
        (1e-6, np.float32, "0.000001"),
        (9.99e-7, np.float32, "9.99e-7"),
        (999999.94, np.float32, "999999.94"),
        (1e6, np.float32, "1000000.0"),
        (1e6, np.float64, "1000000.0"),
        (123456789.0, np.float32, "123456790.0"),
        (9.99e12, np.float32, "9990000000000.0"),
        (1e13, np.float32, "1e+13"),
        (1e13, np.float64, "10000000000000.0"),
        (1e16, np.float64, "1e+16"),
        (9999999999999998.0, np.float64, "9999999999999998.0"),
        (0.1, np.float16, "0.1"),
        (1000.0, np.float16, "1000.0"),
        (65504.0, np.float16, "65500.0"),
        (0.1, ml_dtypes.bfloat16, "0.1"),
        (1.401298464324817e-45, np.float32, "1e-45"),
        (5e-324, np.float64, "5e-324"),
        (1.7976931348623157e308, np.float64, "1.7976931348623157e+308"),
    ],
)
def test_pinned_strings(value, dtype, text, monkeypatch):
    values = np.array([value], dtype=dtype)
    assert shortest_strings(values) == [text]
    assert tsv([values, values]) == f"{text}\t{text}\n"
    monkeypatch.setattr(formatting, "_orjson", lambda: None)
    assert shortest_strings(values) == [text]
    assert tsv([values, values]) == f"{text}\t{text}\n"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_plain_output_round_trips(dtype):
    values = random_values(dtype, 20_000)
    columns = [values, values[::-1].copy()]
    rows = [line.split("\t") for line in tsv(columns).splitlines()]
    assert len(rows) == len(values)
    for index, column in enumerate(columns):
        assert_same_bits(parse_back([row[index] for row in rows], dtype), column)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_decades_round_trip(dtype):
    values = decade_values(dtype)
    assert_same_bits(parse_back(shortest_strings(values), dtype), values)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
def test_per_value_path_matches_orjson(dtype):
    import orjson

    values = np.concatenate(
        [random_values(dtype, 50_000, seed=3), decade_values(dtype)]
    )
    values = values[np.isfinite(values)]
    dumped = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)
    expected = dumped.decode()[1:-1].split(",")
    assert formatting.python_strings(values) == expected
    assert shortest_strings(values) == expected


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_without_orjson_output_is_identical(dtype, monkeypatch):
    values = np.concatenate([random_values(dtype, 5_000, seed=5), decade_values(dtype)])
    columns = [values, values[::-1].copy()]
    layouts = [delimited_layout(2, "\t"), delimited_layout(2, ","), json_layout()]
    with_orjson = [format_rows(columns, layout) for layout in layouts]
    monkeypatch.setattr(formatting, "_orjson", lambda: None)
    assert [format_rows(columns, layout) for layout in layouts] == with_orjson


def json_layout() -> RowLayout:
    return RowLayout('{"x": ', (', "y": ', "}\n"), quote_special=True)


def test_rows_mixing_both_paths_keep_their_order():
    values = np.array(
        [1.0, np.inf, 2.5e-7, 3e6, np.nan, 1e-5, -0.0, 7.0], dtype=np.float32
    )
    results = np.arange(len(values), dtype=np.float32)
    assert tsv([values, results]).splitlines() == [
        "1.0\t0.0",
        "inf\t1.0",
        "2.5e-7\t2.0",
        "3000000.0\t3.0",
        "nan\t4.0",
        "0.00001\t5.0",
        "-0.0\t6.0",
        "7.0\t7.0",
    ]


def test_columns_of_different_dtypes():
    first = np.array([0.1, 1e-5], dtype=np.float32)
    second = np.array([0.1, 1e-5], dtype=np.float64)
    assert tsv([first, second]) == "0.1\t0.1\n0.00001\t0.00001\n"


def test_empty_columns_give_no_text():
    empty = np.array([], dtype=np.float32)
    assert tsv([empty, empty]) == ""


def test_many_columns():
    values = np.array([1e-7, 0.5, -2e-5], dtype=np.float32)
    expected = ["\t".join([text] * 10) for text in ("1e-7", "0.5", "-0.00002")]
    assert tsv([values] * 10).splitlines() == expected


# --- writers ---------------------------------------------------------------------


def render(output_format, columns, names=("x", "softplus"), header=None, chunks=1):
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    writer = make_writer(output_format, stream, list(names), header, "title", None)
    length = len(columns[0])
    bounds = np.linspace(0, length, chunks + 1).astype(int)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        writer.write([column[start:stop] for column in columns])
    writer.close()
    stream.flush()
    return stream.buffer.getvalue().decode()


def sample_columns():
    x = np.array(
        [-20.0, -1.0, 0.0, np.inf, -np.inf, np.nan, 1e-5, 1e30], dtype=np.float32
    )
    y = np.array(
        [2.0611537e-09, 0.3132617, 0.6931472, np.inf, 0.0, np.nan, 0.6931522, 1e30],
        dtype=np.float32,
    )
    return [x, y]


def test_tsv_rows():
    text = render(OutputFormat.tsv, sample_columns())
    assert text.splitlines() == [
        "-20.0\t2.0611537e-9",
        "-1.0\t0.3132617",
        "0.0\t0.6931472",
        "inf\tinf",
        "-inf\t0.0",
        "nan\tnan",
        "0.00001\t0.6931522",
        "1e+30\t1e+30",
    ]


def test_csv_header_comes_first():
    text = render(OutputFormat.csv, sample_columns(), chunks=3)
    lines = text.splitlines()
    assert lines[0] == "x,softplus"
    assert lines[1] == "-20.0,2.0611537e-9"
    assert len(lines) == 9


def test_text_stream_without_buffer():
    stream = io.StringIO()
    writer = make_writer(
        OutputFormat.tsv, stream, ["x", "softplus"], True, "title", None
    )
    writer.write(sample_columns())
    writer.close()
    assert stream.getvalue() == render(OutputFormat.tsv, sample_columns(), header=True)


@pytest.mark.parametrize("chunks", [1, 3, 8])
def test_jsonl_is_valid_json_per_line(chunks):
    text = render(OutputFormat.jsonl, sample_columns(), chunks=chunks)
    objects = [json.loads(line) for line in text.splitlines()]
    assert len(objects) == 8
    assert objects[0] == {"x": -20.0, "softplus": 2.0611537e-09}
    assert objects[3] == {"x": "inf", "softplus": "inf"}
    assert objects[4] == {"x": "-inf", "softplus": 0.0}
    assert objects[5] == {"x": "nan", "softplus": "nan"}
    assert text.splitlines()[0] == '{"x": -20.0, "softplus": 2.0611537e-9}'


@pytest.mark.parametrize("chunks", [1, 3, 8])
def test_json_is_one_valid_array(chunks):
    text = render(OutputFormat.json, sample_columns(), chunks=chunks)
    objects = json.loads(text)
    assert len(objects) == 8
    assert objects[1] == {"x": -1.0, "softplus": 0.3132617}
    assert objects[5] == {"x": "nan", "softplus": "nan"}
    assert text.startswith('[\n{"x": -20.0, "softplus": 2.0611537e-9},\n')
    assert text.endswith('{"x": 1e+30, "softplus": 1e+30}\n]\n')


def test_json_without_rows_is_an_empty_array():
    empty = np.array([], dtype=np.float32)
    text = render(OutputFormat.json, [empty, empty])
    assert json.loads(text) == []


def test_json_keys_are_escaped():
    values = np.array([1.0], dtype=np.float64)
    text = render(OutputFormat.jsonl, [values, values], names=("x", "softplus'"))
    assert json.loads(text) == {"x": 1.0, "softplus'": 1.0}


@pytest.mark.parametrize("output_format", [OutputFormat.json, OutputFormat.jsonl])
def test_json_values_round_trip(output_format):
    values = random_values(np.dtype(np.float32), 2_000, seed=11)
    text = render(output_format, [values, values], chunks=4)
    # parse_float=str keeps each number's own text, which is what must round-trip.
    if output_format is OutputFormat.json:
        objects = json.loads(text, parse_float=str)
    else:
        objects = [json.loads(line, parse_float=str) for line in text.splitlines()]
    parsed = parse_back([item["softplus"] for item in objects], values.dtype)
    assert_same_bits(parsed, values)


def test_orjson_writing_floats_differently_is_not_used(monkeypatch):
    import types

    import orjson

    def dumps(values, option):
        return orjson.dumps(values, option=option).replace(b"e-", b"E-")

    changed = types.SimpleNamespace(
        dumps=dumps, OPT_SERIALIZE_NUMPY=orjson.OPT_SERIALIZE_NUMPY
    )
    monkeypatch.setitem(sys.modules, "orjson", changed)
    assert formatting._orjson.__wrapped__() is None
    monkeypatch.setitem(sys.modules, "orjson", orjson)
    assert formatting._orjson.__wrapped__() is orjson


def test_few_rows_do_not_import_orjson():
    program = (
        "import sys; import numpy as np; "
        "from softplus_cli.render import shortest_strings; "
        "print(shortest_strings(np.array([1e-07], dtype=np.float32))); "
        "print('orjson' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["['1e-7']", "False"]


def test_non_ascii_separators():
    values = np.array([1e-7, 0.5, -2e-5] * 200, dtype=np.float32)
    layout = RowLayout("→ ", (" · ", "\n"))
    text = format_rows([values, values], layout).decode()
    assert text.splitlines()[:3] == [
        "→ 1e-7 · 1e-7",
        "→ 0.5 · 0.5",
        "→ -0.00002 · -0.00002",
    ]


def test_bfloat16_table_cells_are_shortest():
    from softplus_cli.render import column_strings

    values = np.array([-1.0, 0.1, 3.0468750], dtype=ml_dtypes.bfloat16)
    assert column_strings(values) == ["-1.0", "0.1", "3.05"]


def test_table_exponents_keep_two_digits_beside_three():
    from softplus_cli.render import column_strings

    values = np.array([5e-324, 0.3132616875182228, 1e300, 1.0])
    cells = column_strings(values)
    assert cells[0].endswith("e-324")
    assert cells[1].endswith("e-01")
    assert cells[2].endswith("e+300")
    assert cells[3].endswith("e+00")
    assert [float(cell) for cell in cells] == values.tolist()

"""Time each stage of `softplus eval -` and the libraries considered for them.

For COUNT numbers (default 10**6, the same mix as benchmarks/pipeline.py) in
blocks of 1 MiB of text, as `softplus eval -` reads them, this times, best of
REPEATS in one process:

- parsing: the project's reader (orjson for blocks of one JSON number a line,
  `float` on each token otherwise), and the candidates `float` on each token,
  NumPy's bytes-to-float cast, pyarrow's CSV reader, polars' CSV reader and
  fastnumbers' `try_array` (each only when installed);
- evaluation: `evaluate` for softplus in float32 and float64;
- formatting x and y as TSV: the project's `format_rows`, its per-value path,
  and the candidates orjson (its text alone, before the separators are
  placed), pyarrow's cast to string, polars' CSV writer and NumPy's
  StringDType cast. Only the project's two paths give the project's layout.

Each stage runs over the blocks once on one thread and once on two. A stage
that holds Python's GIL takes as long on two threads; one that releases it
takes about half as long on two cores.

Usage: nice -n 10 python benchmarks/stages.py [--count 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

BLOCK_BYTES = 1 << 20


def best_seconds(
    function: Callable[[Any], Any], blocks: list[Any], threads: int, repeats: int
) -> float:
    best = float("inf")
    with ThreadPoolExecutor(threads) as executor:
        for _ in range(repeats):
            start = time.perf_counter()
            list(executor.map(function, blocks))
            best = min(best, time.perf_counter() - start)
    return best


def make_input(count: int) -> bytes:
    rng = np.random.default_rng(2026)
    values = rng.choice([-1.0, 1.0], count) * 10.0 ** rng.uniform(-8, 3, count)
    buffer = io.BytesIO()
    np.savetxt(buffer, values, fmt="%.8e")
    return buffer.getvalue()


def text_blocks(data: bytes) -> list[bytes]:
    """Split `data` after a newline every BLOCK_BYTES or so."""
    blocks = []
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + BLOCK_BYTES) + 1
        if end <= start:
            end = len(data)
        blocks.append(data[start:end])
        start = end
    return blocks


def parsers() -> dict[str, Callable[[bytes], Any]]:
    from softplus_cli.inputs import Block, parse_block

    float64 = np.dtype(np.float64)
    candidates: dict[str, Callable[[bytes], Any]] = {
        "project reader (parse_block, float64)": lambda data: parse_block(
            Block(data, 1), float64
        ),
        "np.fromiter(map(float, tokens)), the project's fallback": lambda data: (
            np.fromiter(map(float, data.split()), dtype=np.float64)
        ),
        "np.array(tokens).astype(float64)": lambda data: np.array(data.split()).astype(
            np.float64
        ),
    }
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        pass
    else:
        read_options = pa_csv.ReadOptions(column_names=["x"], use_threads=False)
        convert = pa_csv.ConvertOptions(column_types={"x": pa.float64()})

        def arrow(data: bytes) -> Any:
            source = pa.BufferReader(data)
            return pa_csv.read_csv(
                source, read_options=read_options, convert_options=convert
            )

        candidates["pyarrow.csv.read_csv, one thread each"] = arrow
    try:
        import polars as pl
    except ImportError:
        pass
    else:
        schema = {"x": pl.Float64}
        candidates["polars.read_csv"] = lambda data: pl.read_csv(
            data, has_header=False, new_columns=["x"], schema=schema
        )
    try:
        import fastnumbers
    except ImportError:
        pass
    else:

        def fast(data: bytes) -> np.ndarray:
            tokens = data.split()
            out = np.empty(len(tokens))
            fastnumbers.try_array(tokens, out)
            return out

        candidates["fastnumbers.try_array(tokens)"] = fast
    return candidates


def formatters() -> dict[str, Callable[[tuple[np.ndarray, np.ndarray]], Any]]:
    from softplus_cli.formatting import delimited_layout, format_rows, python_strings

    layout = delimited_layout(2, "\t")

    def per_value(columns: tuple[np.ndarray, np.ndarray]) -> str:
        pairs = zip(*(python_strings(column) for column in columns), strict=True)
        return "".join(f"{a}\t{b}\n" for a, b in pairs)

    candidates: dict[str, Callable[[tuple[np.ndarray, np.ndarray]], Any]] = {
        "project format_rows (orjson)": lambda columns: format_rows(columns, layout),
        "project per-value path": per_value,
    }
    if hasattr(np.dtypes, "StringDType"):
        candidates["NumPy StringDType cast, no joining"] = lambda columns: [
            column.astype(np.dtypes.StringDType()) for column in columns
        ]
    import orjson

    option = orjson.OPT_SERIALIZE_NUMPY
    candidates["orjson.dumps, no separators"] = lambda columns: [
        orjson.dumps(column, option=option) for column in columns
    ]
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        pass
    else:
        candidates["pyarrow cast to string, no joining"] = lambda columns: [
            pc.cast(pa.array(column), pa.string()) for column in columns
        ]
    try:
        import polars as pl
    except ImportError:
        pass
    else:

        def polars_csv(columns: tuple[np.ndarray, np.ndarray]) -> bytes:
            buffer = io.BytesIO()
            frame = pl.DataFrame({"x": columns[0], "y": columns[1]})
            frame.write_csv(buffer, separator="\t", include_header=False)
            return buffer.getvalue()

        candidates["polars write_csv"] = polars_csv
    return candidates


def row(
    stage: str, name: str, one_thread: float, two_threads: float, per_million: float
) -> str:
    one, two = one_thread * per_million, two_threads * per_million
    return f"| {stage} | {name} | {one:.0f} | {two:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from softplus_cli.activations import ACTIVATIONS, default_parameters, evaluate

    data = make_input(args.count)
    blocks = text_blocks(data)
    wide = [np.array(block.split()).astype(np.float64) for block in blocks]
    per_million = 1e6 / args.count * 1e3

    def timed(function: Callable[[Any], Any], inputs: list[Any]) -> tuple[float, ...]:
        return tuple(
            best_seconds(function, inputs, threads, args.repeats) for threads in (1, 2)
        )

    print(
        f"{args.count:,} numbers in {len(blocks)} blocks, best of {args.repeats}, "
        "ms per million"
    )
    print()
    print("| stage | candidate | one thread | two threads |")
    print("|---|---|---:|---:|")
    for name, function in parsers().items():
        print(row("parse", name, *timed(function, blocks), per_million))
    softplus = ACTIVATIONS["softplus"]
    parameters = default_parameters()
    for dtype in (np.float32, np.float64):
        inputs = [values.astype(dtype) for values in wide]
        seconds = timed(lambda x: evaluate(softplus, x, parameters), inputs)
        name = f"softplus, {np.dtype(dtype).name}"
        print(row("evaluate", name, *seconds, per_million))
    x = [values.astype(np.float32) for values in wide]
    columns = [(values, evaluate(softplus, values, parameters)) for values in x]
    for name, function in formatters().items():
        seconds = timed(function, columns)
        print(row("format x and y, float32", name, *seconds, per_million))


if __name__ == "__main__":
    main()

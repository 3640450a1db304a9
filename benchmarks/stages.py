"""Time each stage of `softplus eval -` and the libraries considered for them.

For COUNT numbers (default 10**6, the same mix as benchmarks/pipeline.py)
this times, best of REPEATS in one process:

- parsing: the project's reader, and the candidates NumPy's bytes-to-float
  cast, `float` over the tokens, pyarrow's CSV reader and fastnumbers'
  `try_array` (each only when installed);
- evaluation: `evaluate` for softplus in float32 and float64;
- formatting two columns as TSV: the project's `format_rows`, its per-value
  path (NumPy's `str`), and the candidates orjson (raw output, before the
  edits to NumPy's style), pyarrow's cast to string and NumPy's StringDType
  cast. Only `format_rows` and NumPy's `str` give NumPy's style.

Usage: nice -n 10 python benchmarks/stages.py [--count 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def best_seconds(function: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def make_input(count: int) -> bytes:
    rng = np.random.default_rng(2026)
    values = rng.choice([-1.0, 1.0], count) * 10.0 ** rng.uniform(-8, 3, count)
    buffer = io.BytesIO()
    np.savetxt(buffer, values, fmt="%.8e")
    return buffer.getvalue()


def parsers(data: bytes) -> dict[str, Callable[[], Any]]:
    from softplus_cli.inputs import Overflow, read_stream

    def project() -> list[np.ndarray]:
        return list(read_stream(io.BytesIO(data), np.dtype(np.float64), Overflow()))

    candidates: dict[str, Callable[[], Any]] = {
        "project reader (read_stream, float64)": project,
        "np.array(tokens).astype(float64)": lambda: np.array(data.split()).astype(
            np.float64
        ),
        "np.fromiter(map(float, tokens))": lambda: np.fromiter(
            map(float, data.split()), dtype=np.float64
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
        candidates["pyarrow.csv.read_csv, one thread"] = lambda: pa_csv.read_csv(
            pa.BufferReader(data), read_options=read_options, convert_options=convert
        )
    try:
        import fastnumbers
    except ImportError:
        pass
    else:

        def fast() -> np.ndarray:
            tokens = data.split()
            out = np.empty(len(tokens))
            fastnumbers.try_array(tokens, out)
            return out

        candidates["fastnumbers.try_array(tokens)"] = fast
    return candidates


def formatters(x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
    from softplus_cli.formatting import delimited_layout, format_rows, python_strings

    layout = delimited_layout(2, "\t")
    chunk = 1 << 16

    def project() -> list[bytes]:
        return [
            format_rows([x[i : i + chunk], y[i : i + chunk]], layout)
            for i in range(0, len(x), chunk)
        ]

    def per_value() -> str:
        pairs = zip(python_strings(x), python_strings(y), strict=True)
        return "".join(f"{a}\t{b}\n" for a, b in pairs)

    candidates: dict[str, Callable[[], Any]] = {
        "project format_rows (orjson, edited)": project,
        "per value, NumPy str": per_value,
    }
    if hasattr(np.dtypes, "StringDType"):
        candidates["NumPy StringDType cast, no joining"] = lambda: (
            x.astype(np.dtypes.StringDType()),
            y.astype(np.dtypes.StringDType()),
        )
    try:
        import orjson
    except ImportError:
        pass
    else:
        option = orjson.OPT_SERIALIZE_NUMPY
        candidates["orjson.dumps, raw, no joining"] = lambda: (
            orjson.dumps(x, option=option),
            orjson.dumps(y, option=option),
        )
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        pass
    else:
        candidates["pyarrow cast to string, no joining"] = lambda: (
            pc.cast(pa.array(x), pa.string()),
            pc.cast(pa.array(y), pa.string()),
        )
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from softplus_cli.activations import ACTIVATIONS, default_parameters, evaluate

    data = make_input(args.count)
    wide = np.array(data.split()).astype(np.float64)
    per_million = 1e6 / args.count * 1e3

    print(f"{args.count:,} numbers, best of {args.repeats}, ms per million")
    print()
    print("| stage | candidate | ms per 10^6 |")
    print("|---|---|---:|")
    for name, function in parsers(data).items():
        seconds = best_seconds(function, args.repeats)
        print(f"| parse | {name} | {seconds * per_million:.0f} |")
    for dtype in (np.float32, np.float64):
        x = wide.astype(dtype)
        seconds = best_seconds(
            lambda x=x: evaluate(ACTIVATIONS["softplus"], x, default_parameters()),
            args.repeats,
        )
        print(
            f"| evaluate | softplus, {np.dtype(dtype).name} "
            f"| {seconds * per_million:.0f} |"
        )
    x = wide.astype(np.float32)
    y = evaluate(ACTIVATIONS["softplus"], x, default_parameters())
    for name, function in formatters(x, y).items():
        seconds = best_seconds(function, args.repeats)
        print(f"| format x and y, float32 | {name} | {seconds * per_million:.0f} |")


if __name__ == "__main__":
    main()

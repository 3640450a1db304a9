"""Check every float32 input (all 2**32 bit patterns) of every function and derivative.

Run: python benchmarks/accuracy_sweep.py [--workers 2] [--output FILE]

The reference is the project's own algorithm: the float64 fast path, with the
inputs whose rounding it cannot decide settled in mpmath. For the project the
sweep reports how many inputs went to mpmath and where plain "float64, then
round once" differs from the reference (the hard cases, all settled by mpmath).
For NumPy and for each installed framework it reports the same statistics as
`softplus check`. Chunks run in a shuffled order, so the partial results in
the output file are a uniform sample while the sweep runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sys
import time
from dataclasses import asdict

import numpy as np

from softplus_cli.accuracy import (
    IMPLEMENTATIONS,
    Tally,
    UnsupportedSettingError,
    framework_installed,
)
from softplus_cli.activations import ACTIVATIONS, default_parameters
from softplus_cli.rounding import round_decided, settle_undecided

CHUNK_BITS = 24
PIECE_BITS = 20
FUNCTIONS = [(name, derivative) for name in ACTIVATIONS for derivative in (False, True)]
HARD_CASE_LIMIT = 5000


def label(name: str, derivative: bool) -> str:
    return name + ("'" if derivative else "")


def sweep_chunk(task: tuple[int, list[str]]) -> dict:
    """Check the 2**CHUNK_BITS consecutive bit patterns of chunk `index`.

    The chunk is checked in pieces of 2**PIECE_BITS inputs, whose arrays stay
    below the mmap threshold that `init_worker` sets: reusing heap memory
    instead of mapping fresh pages for every temporary cuts the run time by
    two thirds.
    """
    index, frameworks = task
    total: dict = {"tallies": {}, "undecided": {}, "hard_cases": {}}
    size = 1 << PIECE_BITS
    first = index << (CHUNK_BITS - PIECE_BITS)
    for piece in range(first, first + (1 << (CHUNK_BITS - PIECE_BITS))):
        bits = np.arange(piece * size, (piece + 1) * size, dtype=np.uint64)
        merge(total, sweep_piece(bits.astype(np.uint32).view(np.float32), frameworks))
    return {
        "tallies": {
            framework: {key: asdict(tally) for key, tally in tallies.items()}
            for framework, tallies in total["tallies"].items()
        },
        "undecided": total["undecided"],
        "hard_cases": total["hard_cases"],
    }


def sweep_piece(x: np.ndarray, frameworks: list[str]) -> dict:
    parameters = default_parameters()
    report: dict = {"tallies": {}, "undecided": {}, "hard_cases": {}}
    for name, derivative in FUNCTIONS:
        activation = ACTIVATIONS[name]
        kernel = activation.derivative if derivative else activation.value
        with np.errstate(all="ignore"):
            approx = kernel.approx(x.astype(np.float64), parameters)
        bound = (kernel.bound_for(np.dtype(np.float64)) + 1) * float(
            np.finfo(np.float64).eps
        )
        rounded, undecided = round_decided(approx, bound, np.dtype(np.float32))
        naive = rounded.copy()

        def exact(value, kernel=kernel):
            return kernel.exact(value, parameters)

        reference = settle_undecided(rounded, undecided, x, exact)
        key = label(name, derivative)
        report["undecided"][key] = int(undecided.sum())
        wrong = np.flatnonzero((naive != reference) & ~np.isnan(reference))
        report["hard_cases"][key] = [
            [float(x[i]), float(naive[i]), float(reference[i])]
            for i in wrong[:HARD_CASE_LIMIT]
        ]
        for framework in frameworks:
            try:
                result = IMPLEMENTATIONS[framework](name, derivative, x, parameters)
            except UnsupportedSettingError:
                continue
            tally = Tally()
            tally.add(x, result, reference, approx)
            report["tallies"].setdefault(framework, {})[key] = tally
    return report


def merge(total: dict, chunk: dict) -> None:
    for framework, tallies in chunk["tallies"].items():
        for key, values in tallies.items():
            target = total["tallies"].setdefault(framework, {}).setdefault(key, Tally())
            target.merge(values if isinstance(values, Tally) else Tally(**values))
    for key, count in chunk["undecided"].items():
        total["undecided"][key] = total["undecided"].get(key, 0) + count
    for key, cases in chunk["hard_cases"].items():
        total["hard_cases"].setdefault(key, []).extend(cases)


def save(total: dict, path: str, done: int, chunks: int, started: float) -> None:
    output = {
        "chunks_done": done,
        "chunks": chunks,
        "inputs_done": done << CHUNK_BITS,
        "seconds": round(time.time() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "numpy": np.__version__,
        "undecided": total["undecided"],
        "hard_cases": {
            key: sorted(cases) for key, cases in total["hard_cases"].items()
        },
        "tallies": {
            framework: {
                key: {**asdict(t), "mean_ulp": t.mean_ulp} for key, t in tallies.items()
            }
            for framework, tallies in total["tallies"].items()
        },
    }
    with open(path + ".tmp", "w") as file:
        json.dump(output, file, indent=1)
    os.replace(path + ".tmp", path)


def init_worker() -> None:
    if sys.platform == "linux":
        import ctypes

        # glibc's mallopt: M_TRIM_THRESHOLD (-1) and M_MMAP_THRESHOLD (-3).
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)
        libc.mallopt(-3, 1 << 25)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def summarize(path: str) -> None:
    """Print the results file at `path` as Markdown tables."""
    with open(path) as file:
        results = json.load(file)
    done, chunks = results["chunks_done"], results["chunks"]
    print(
        f"{results['inputs_done']:,} of 2**32 inputs ({done}/{chunks} chunks) in "
        f"{results['seconds']:.0f} s on {results['machine']}, "
        f"NumPy {results['numpy']}\n"
    )
    print("| function | settled in mpmath | float64 rounded once is wrong |")
    print("|---|---|---|")
    for key, count in results["undecided"].items():
        print(f"| {key} | {count:,} | {len(results['hard_cases'].get(key, [])):,} |")
    print()
    print(
        "| implementation | function | not correctly rounded | max ulp | mean ulp "
        "| worst x | subnormal results flushed to 0 |"
    )
    print("|---|---|---|---|---|---|---|")
    for framework, tallies in results["tallies"].items():
        for key, tally in tallies.items():
            share = tally["wrong"] / tally["inputs"] if tally["inputs"] else 0.0
            print(
                f"| {framework} | {key} | {tally['wrong']:,} ({share:.2%}) | "
                f"{tally['max_ulp']:.3g} | {tally['mean_ulp']:.3g} | "
                f"{np.float32(tally['worst_input'])} | {tally['flushed']:,} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--summarize",
        metavar="FILE",
        help="print a results file as Markdown tables and exit",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/accuracy_sweep.json")
    parser.add_argument(
        "--chunks",
        type=int,
        default=1 << (32 - CHUNK_BITS),
        help="stop after this many chunks of 2**24 inputs",
    )
    arguments = parser.parse_args()
    if arguments.summarize:
        summarize(arguments.summarize)
        return

    frameworks = [
        name
        for name in ("numpy", "torch", "jax", "tensorflow")
        if framework_installed(name)
    ]
    order = list(range(1 << (32 - CHUNK_BITS)))
    random.Random(32).shuffle(order)
    order = order[: arguments.chunks]
    print(
        f"frameworks: {', '.join(frameworks)}; {len(order)} chunks of 2**{CHUNK_BITS}",
        flush=True,
    )

    total: dict = {"tallies": {}, "undecided": {}, "hard_cases": {}}
    started = time.time()
    tasks = [(index, frameworks) for index in order]
    with multiprocessing.Pool(arguments.workers, initializer=init_worker) as pool:
        for done, chunk in enumerate(pool.imap_unordered(sweep_chunk, tasks), start=1):
            merge(total, chunk)
            save(total, arguments.output, done, len(order), started)
            elapsed = time.time() - started
            remaining = elapsed / done * (len(order) - done)
            print(
                f"{done}/{len(order)} chunks, {elapsed:.0f} s, "
                f"about {remaining:.0f} s left",
                flush=True,
            )
    print(f"done in {time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

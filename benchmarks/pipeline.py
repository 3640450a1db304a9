"""Throughput and peak memory of `softplus` in pipelines, against mawk.

Runs, in the same session and interleaved round by round:

- `cat numbers.txt | softplus eval --dtype D - > out.tsv` for each dtype,
- `cat numbers.txt | mawk '{print log(1+exp($1))}' > out.txt`, the baseline,
- `softplus compare --range ... --format tsv > grid.tsv` with as many points,
  once with one column of results and once with all of them,
- optionally NumPy's loadtxt/savetxt on the same numbers, as a second baseline,
  and `eval` of an earlier version of the package (--previous DIR).

The input is COUNT numbers, one a line, with 9 significant digits and
magnitudes spread evenly over 1e-8 to 1e3, about half of them negative. Each command
is timed REPEATS times. The table gives the median wall time, lines per second
and the ratio to mawk's lines per second. It also gives the median CPU time
(user + system) and the peak resident memory of the command's own process,
not of `cat`, both from GNU time (/usr/bin/time).

Each command then runs once more, untimed, for the memory of all its processes:
softplus forks worker processes for long streams on Linux. The peak sums of
their PSS (proportional set size, which splits shared pages among the processes
that map them) and of their RSS are sampled from /proc every few milliseconds.

After the timed runs, the output of each `softplus eval` is checked. A sample
of its lines is parsed back with the project's reader, and compared bit for bit
with `evaluate` of the same input lines, which the project's reader also reads.

Usage: nice -n 10 python benchmarks/pipeline.py [--count 10000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOFTPLUS = shutil.which("softplus", path=str(Path(sys.executable).parent)) or "softplus"

# Commands run without these variables, as from a default shell: with
# PYTHONDONTWRITEBYTECODE, modules without a cached .pyc are compiled on every
# start, and PYTHONUNBUFFERED turns each write into a system call.
ENVIRONMENT = {
    name: value
    for name, value in os.environ.items()
    if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
}

# Seconds between samples of the memory of a command's processes.
MEMORY_INTERVAL = 0.005

MAWK_PROGRAM = "{print log(1+exp($1))}"
NUMPY_BASELINE = (
    "import sys, numpy as np; x = np.loadtxt(sys.argv[1]); "
    "np.savetxt(sys.argv[2], np.column_stack([x, np.logaddexp(0, x)]), "
    "delimiter='\\t', fmt='%.9g')"
)


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_kb: int


def write_numbers(path: Path, count: int, seed: int = 2026) -> None:
    """Write `count` numbers with 9 significant digits, 10**6 at a time."""
    rng = np.random.default_rng(seed)
    with path.open("w") as file:
        for start in range(0, count, 1_000_000):
            size = min(1_000_000, count - start)
            exponents = rng.uniform(-8, 3, size)
            signs = rng.choice([-1.0, 1.0], size)
            values = signs * 10.0**exponents
            np.savetxt(file, values, fmt="%.8e")


def run(command: list[str], stdin_path: Path | None, stdout_path: Path) -> Run:
    """Run `command` with `cat stdin_path` piped in; return wall time and peak RSS.

    GNU time reports the peak RSS. It starts the command from its own small
    process; a child forked from this Python process would count this
    process's pages in its own peak.
    """
    report = stdout_path.with_suffix(".rss")
    timed = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(report), *command]
    # Truncating the last run's output frees its pages, which takes tens of
    # milliseconds for hundreds of MB: do it before the clock starts.
    stdout_path.unlink(missing_ok=True)
    with stdout_path.open("wb") as out:
        start = time.perf_counter()
        if stdin_path is None:
            status = subprocess.run(
                timed, stdin=subprocess.DEVNULL, stdout=out, env=ENVIRONMENT
            ).returncode
        else:
            feeder = subprocess.Popen(["cat", str(stdin_path)], stdout=subprocess.PIPE)
            process = subprocess.Popen(
                timed, stdin=feeder.stdout, stdout=out, env=ENVIRONMENT
            )
            feeder.stdout.close()
            status = process.wait()
            feeder.wait()
        seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit status {status}")
    rss, user, system = report.read_text().split()[-3:]
    return Run(seconds, float(user) + float(system), int(rss))


@dataclass
class TreeMemory:
    pss_kb: int
    rss_kb: int
    processes: int


def _descendants(pid: int) -> list[int]:
    """Return the processes below `pid`, from /proc (Linux)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
            except OSError:
                continue
            for child in map(int, children.split()):
                found.append(child)
                pending.append(child)
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """Return the proportional and the resident set size of `pid`, in KiB."""
    pss = rss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "Pss":
            pss = int(value.split()[0])
        elif name == "Rss":
            rss = int(value.split()[0])
    return pss, rss


def measure_tree_memory(
    command: list[str], stdin_path: Path | None, stdout_path: Path
) -> TreeMemory:
    """Run `command` as `run` does, untimed, and return the peak sums of the
    PSS and of the RSS of its processes, sampled every few milliseconds.

    PSS (proportional set size) counts a page shared by n processes as 1/n
    in each, so its sum is the memory that the processes take together. The
    sum of RSS counts shared pages once for each process that maps them.
    """
    peak = TreeMemory(0, 0, 0)
    with stdout_path.open("wb") as out:
        feeder = None
        if stdin_path is not None:
            feeder = subprocess.Popen(["cat", str(stdin_path)], stdout=subprocess.PIPE)
        process = subprocess.Popen(
            command,
            stdin=feeder.stdout if feeder else subprocess.DEVNULL,
            stdout=out,
            env=ENVIRONMENT,
        )
        if feeder is not None:
            feeder.stdout.close()
        while process.poll() is None:
            pids = [process.pid, *_descendants(process.pid)]
            sizes = [_memory_kb(pid) for pid in pids]
            pss = sum(size[0] for size in sizes)
            rss = sum(size[1] for size in sizes)
            peak = TreeMemory(
                pss_kb=max(peak.pss_kb, pss),
                rss_kb=max(peak.rss_kb, rss),
                processes=max(peak.processes, len(pids)),
            )
            time.sleep(MEMORY_INTERVAL)
        if feeder is not None:
            feeder.wait()
    return peak


def sample_lines(path: Path, indices: np.ndarray) -> list[bytes]:
    """Return the lines of `path` at the sorted `indices`."""
    remaining = iter(indices.tolist())
    target = next(remaining, None)
    lines = []
    with path.open("rb") as file:
        for number, line in enumerate(file):
            if number == target:
                lines.append(line)
                target = next(remaining, None)
                if target is None:
                    break
    return lines


def read_numbers(texts: list[bytes], dtype: np.dtype) -> np.ndarray:
    from softplus_cli.inputs import Overflow, read_stream

    stream = io.BytesIO(b"\n".join(texts))
    return np.concatenate(list(read_stream(stream, dtype, Overflow())))


def verify(
    input_path: Path, output_path: Path, dtype_name: str, count: int, sample: int
) -> str:
    """Check sampled output lines bit for bit against the project's evaluation."""
    from softplus_cli.activations import ACTIVATIONS, default_parameters, evaluate
    from softplus_cli.dtypes import resolve_dtype

    with output_path.open("rb") as file:
        lines = sum(1 for _ in file)
    if lines != count:
        return f"FAILED: {lines} output lines for {count} inputs"
    rng = np.random.default_rng(1)
    indices = np.unique(
        np.concatenate([[0, count - 1], rng.integers(0, count, sample)])
    )
    dtype = resolve_dtype(dtype_name)
    inputs = read_numbers(sample_lines(input_path, indices), dtype)
    rows = [line.split(b"\t") for line in sample_lines(output_path, indices)]
    printed_x = read_numbers([row[0] for row in rows], dtype)
    printed_y = read_numbers([row[1] for row in rows], dtype)
    expected = evaluate(ACTIVATIONS["softplus"], inputs, default_parameters())
    unsigned = f"u{dtype.itemsize}"
    for name, printed, computed in (
        ("x", printed_x, inputs),
        ("softplus", printed_y, expected),
    ):
        same = printed.view(unsigned) == computed.view(unsigned)
        same |= np.isnan(printed) & np.isnan(computed)
        if not same.all():
            bad = int(indices[np.flatnonzero(~same)[0]])
            return f"FAILED: column {name} differs at line {bad + 1}"
    return f"ok: {len(indices):,} sampled lines bit-identical"


def slug(name: str) -> str:
    """Return `name` as a file name: letters, digits and underscores."""
    return "".join(c if c.isalnum() else "_" for c in name)


def describe_machine() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mawk = subprocess.run(["mawk", "-W", "version"], capture_output=True, text=True)
    mawk_version = mawk.stdout.splitlines()[0] if mawk.stdout else "mawk"
    return [
        f"CPU: {cpu}, nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}",
        f"Python {platform.python_version()}, NumPy {np.__version__}, "
        f"orjson {_version('orjson')}, {mawk_version}",
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')!r}",
    ]


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument(
        "--sample", type=int, default=200_000, help="lines verified per dtype"
    )
    parser.add_argument("--no-grid", action="store_true", help="skip softplus compare")
    parser.add_argument(
        "--numpy-baseline", action="store_true", help="also time loadtxt/savetxt"
    )
    parser.add_argument("--workdir", type=Path, help="keep the input and outputs here")
    parser.add_argument(
        "--previous",
        type=Path,
        help="also time `eval` of the softplus_cli package in this folder, such as "
        "an earlier commit's from `git archive COMMIT softplus_cli | tar -x -C DIR`",
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="softplus-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    numbers = workdir / f"numbers-{args.count}.txt"
    if not numbers.exists():
        write_numbers(numbers, args.count)

    step = 20 / args.count
    grid_range = f"-10:{-10 + step * (args.count - 1):.12g}:{step:.12g}"
    commands: dict[str, tuple[list[str], Path | None]] = {
        "mawk": (["mawk", MAWK_PROGRAM], numbers),
    }
    for dtype in args.dtypes.split(","):
        commands[f"eval {dtype}"] = ([SOFTPLUS, "eval", "--dtype", dtype, "-"], numbers)
    if args.previous:
        # The folder goes first on sys.path, before the current directory, which
        # may hold this work tree's package.
        program = (
            f"import sys; sys.path.insert(0, {str(args.previous.resolve())!r}); "
            "from softplus_cli.cli import main; main()"
        )
        for dtype in args.dtypes.split(","):
            commands[f"eval {dtype}, previous"] = (
                [sys.executable, "-c", program, "eval", "--dtype", dtype, "-"],
                numbers,
            )
    if not args.no_grid:
        grid = [SOFTPLUS, "compare", "--range", grid_range, "--format", "tsv"]
        commands["compare float32, 1 result column"] = (
            [*grid, "-f", "softplus", "--no-derivative"],
            None,
        )
        commands["compare float32, 6 result columns"] = (grid, None)
    if args.numpy_baseline:
        commands["numpy loadtxt/savetxt"] = (
            [
                sys.executable,
                "-c",
                NUMPY_BASELINE,
                str(numbers),
                str(workdir / "numpy.tsv"),
            ],
            None,
        )

    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (command, stdin) in commands.items():
            output = workdir / f"{slug(name)}.out"
            runs[name].append(run(command, stdin, output))

    mawk_rate = args.count / statistics.median(r.seconds for r in runs["mawk"])
    print(f"{args.count:,} lines, median of {args.repeats} runs")
    for line in describe_machine():
        print(line)
    print()
    print("| command | median s | lines/s | vs mawk | CPU s | max RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, results in runs.items():
        seconds = statistics.median(r.seconds for r in results)
        rate = args.count / seconds
        cpu = statistics.median(r.cpu_seconds for r in results)
        rss = max(r.max_rss_kb for r in results) / 1024
        print(
            f"| {name} | {seconds:.2f} | {rate / 1e6:.2f} M | "
            f"{rate / mawk_rate:.2f}x | {cpu:.2f} | {rss:.0f} |"
        )
    print()
    print(
        "Memory of all the processes of each command, sampled every "
        f"{MEMORY_INTERVAL * 1000:.0f} ms in one more, untimed run:"
    )
    print()
    print("| command | processes | peak PSS sum MB | peak RSS sum MB |")
    print("|---|---:|---:|---:|")
    for name, (command, stdin) in commands.items():
        memory = measure_tree_memory(command, stdin, workdir / f"{slug(name)}.out")
        print(
            f"| {name} | {memory.processes} | {memory.pss_kb / 1024:.0f} | "
            f"{memory.rss_kb / 1024:.0f} |"
        )
    print()
    for dtype in args.dtypes.split(","):
        output = workdir / f"{slug('eval ' + dtype)}.out"
        print(
            f"eval {dtype}: {verify(numbers, output, dtype, args.count, args.sample)}"
        )


if __name__ == "__main__":
    main()

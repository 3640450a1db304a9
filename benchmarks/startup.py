"""Start-up time of `softplus` against the imports it cannot avoid.

Times, in the same run:

- `softplus eval 1` against `python -c "import typer, numpy, rich.table"`,
- `softplus --help` against `python -c "import typer"`,

with hyperfine when it is installed (Debian package `hyperfine`), or else with
a loop of subprocess runs, and prints medians and ratios. Then lists, from
`python -X importtime`, the modules that `softplus eval 1` imports beyond
its baseline, largest cumulative time (with the modules each one imports)
first.

Usage: nice -n 10 python benchmarks/startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOFTPLUS = shutil.which("softplus", path=str(Path(sys.executable).parent)) or "softplus"

# Commands run without these variables, as from a default shell: with
# PYTHONDONTWRITEBYTECODE, modules without a cached .pyc are compiled on every
# start, and PYTHONUNBUFFERED turns each write into a system call.
ENVIRONMENT = {
    name: value
    for name, value in os.environ.items()
    if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
}

PAIRS = [
    ("softplus eval 1", [SOFTPLUS, "eval", "1"], "import typer, numpy, rich.table"),
    ("softplus --help", [SOFTPLUS, "--help"], "import typer"),
]


def time_with_hyperfine(commands: list[list[str]], runs: int) -> list[float]:
    """Return the median seconds of each command, measured by hyperfine."""
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "report.json"
        subprocess.run(
            [
                "hyperfine",
                "--shell=none",
                "--warmup",
                "3",
                "--runs",
                str(runs),
                "--output=pipe",
                "--export-json",
                str(report),
                *(" ".join(_quoted(part) for part in command) for command in commands),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            env=ENVIRONMENT,
        )
        results = json.loads(report.read_text())["results"]
    return [result["median"] for result in results]


def _quoted(part: str) -> str:
    return f"'{part}'" if " " in part or "," in part else part


def time_with_loop(commands: list[list[str]], runs: int) -> list[float]:
    """Return the median seconds of each command, runs interleaved."""
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(runs + 3):
        for index, command in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(
                command, stdout=subprocess.DEVNULL, check=True, env=ENVIRONMENT
            )
            samples[index].append(time.perf_counter() - start)
    return [statistics.median(times[3:]) for times in samples]


def import_times(arguments: list[str]) -> dict[str, tuple[int, int]]:
    """Return {module: (self µs, cumulative µs)} from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *arguments],
        capture_output=True,
        text=True,
        check=True,
        env=ENVIRONMENT,
    )
    modules = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        if own.strip().isdigit():
            modules[name.strip()] = (int(own), int(cumulative))
    return modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--top", type=int, default=15, help="modules listed")
    args = parser.parse_args()

    commands = []
    for _, command, baseline in PAIRS:
        commands += [command, [sys.executable, "-c", baseline]]
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        medians = time_with_hyperfine(commands, args.runs)
    else:
        medians = time_with_loop(commands, args.runs)

    tool = "hyperfine" if hyperfine else "a subprocess loop"
    print(f"median of {args.runs} runs each, by {tool}; load {os.getloadavg()[0]:.2f}")
    print()
    print("| command | median ms | baseline | baseline ms | ratio |")
    print("|---|---:|---|---:|---:|")
    for index, (name, _, baseline) in enumerate(PAIRS):
        own, base = medians[2 * index], medians[2 * index + 1]
        print(
            f'| `{name}` | {own * 1e3:.0f} | `python -c "{baseline}"` | '
            f"{base * 1e3:.0f} | {own / base:.2f}x |"
        )

    extra = import_times(["-m", "softplus_cli", "eval", "1"])
    base = import_times(["-c", PAIRS[0][2]])
    beyond = {name: times for name, times in extra.items() if name not in base}
    total = sum(own for own, _ in beyond.values())
    print()
    print(f"`softplus eval 1` imports {len(beyond)} modules beyond its baseline, ")
    print(f"{total / 1e3:.0f} ms of import time in all (self times added up):")
    print()
    print("| module | self ms | cumulative ms |")
    print("|---|---:|---:|")
    ranked = sorted(beyond.items(), key=lambda item: item[1][1], reverse=True)
    for name, (own, cumulative) in ranked[: args.top]:
        print(f"| {name} | {own / 1e3:.1f} | {cumulative / 1e3:.1f} |")


if __name__ == "__main__":
    main()

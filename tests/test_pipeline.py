"""The installed `softplus` entry point in real shell pipelines."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

SOFTPLUS = shutil.which(
    "softplus", path=str(Path(sys.executable).parent)
) or shutil.which("softplus")

pytestmark = pytest.mark.skipif(SOFTPLUS is None, reason="softplus is not installed")


def shell(command, **kwargs):
    environment = {
        **os.environ,
        "PATH": f"{Path(SOFTPLUS).parent}:{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        **kwargs,
    )


def test_first_command_prints_keras_values():
    result = shell("softplus eval -20 -1 0 1 20 --format table")
    assert result.returncode == 0
    for value in (
        "2.0611537e-09",
        "3.1326169e-01",
        "6.9314718e-01",
        "1.3132616e+00",
        "2.0000000e+01",
    ):
        assert value in result.stdout


def test_head_closing_the_pipe_is_quiet():
    result = shell("seq -1000 0.001 1000 | softplus eval - | head -1")
    assert result.stdout == "-1000.0\t0.0\n"
    assert result.stderr == ""


def test_head_closing_a_table_pipe_is_quiet():
    result = shell("softplus compare --range 0:1000:0.001 --format csv | head -3")
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == ""


def test_every_input_gives_one_row_in_order():
    result = shell("seq 1 100000 | softplus eval - | cut -f1")
    assert result.returncode == 0
    xs = result.stdout.split()
    assert len(xs) == 100000
    assert xs[0] == "1.0"
    assert xs[-1] == "100000.0"
    assert xs == [f"{float(n)}" for n in range(1, 100001)]


def test_stdin_without_dash():
    result = shell("printf '1\\n2\\n' | softplus eval")
    assert result.stdout == "1.0\t1.3132616\n2.0\t2.126928\n"


def test_sort_by_value():
    result = shell("softplus eval 3 -1 2 | sort -g -k2 | cut -f1")
    assert result.stdout.split() == ["-1.0", "2.0", "3.0"]


def test_decimal_comma_names_its_line():
    result = shell("printf '0\\n0,5\\n1\\n' | softplus eval -")
    assert result.returncode == 2
    assert result.stderr == (
        "softplus: error: invalid number '0,5' on line 2 of standard input: "
        "use a decimal point, as in 0.5\n"
    )


def test_misspelt_option_in_a_pipeline():
    result = shell("softplus eval --frmat csv 1")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "--frmat" in result.stderr


def test_plain_output_round_trips_float32():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32)
    xs = bits.view(np.float32)
    xs = xs[np.isfinite(xs)]
    text = "\n".join(repr(float(x)) for x in xs)
    result = shell("softplus eval - -d", input=text)
    assert result.returncode == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    parsed_x = np.array([row[0] for row in rows]).astype(np.float32)
    assert np.array_equal(parsed_x.view(np.uint32), xs.view(np.uint32))


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "softplus_cli", "eval", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "1.0\t1.3132616\n"


def test_help_does_not_import_numpy():
    code = (
        "import sys\n"
        "from softplus_cli.cli import main\n"
        "sys.argv = ['softplus', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [name in sys.modules for name in ('numpy', 'mpmath', 'rich')]\n"
        "print(*loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "False False False"


def test_interrupt_exits_130_without_traceback():
    process = subprocess.Popen(
        [SOFTPLUS, "eval", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(b"1\n")
    process.stdin.flush()
    # The first row shows that the program is running and waiting for input.
    assert process.stdout.readline() == b"1.0\t1.3132616\n"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert b"Traceback" not in stderr


@pytest.mark.parametrize(
    "command",
    [
        "softplus eval 1 > /dev/full",
        # A long stream stops at the write of its first block.
        "seq 1 500000 | softplus eval - > /dev/full",
    ],
)
def test_full_disk_is_one_line_exit_1(command):
    result = shell(command)
    assert result.returncode == 1
    assert result.stderr == (
        "softplus: error: cannot write the output: No space left on device\n"
    )


def test_closed_stdout_is_one_line_exit_1():
    result = shell("softplus eval 1 >&-")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "stdout is closed" in result.stderr


def test_closed_stderr_keeps_warnings_out_of_the_data():
    result = shell("softplus eval 1e39 2>&-")
    assert result.returncode == 0
    assert result.stdout == "inf\tinf\n"


def test_closed_stdin_with_dash():
    result = shell("softplus eval - <&-")
    assert result.returncode == 2
    assert "stdin is closed" in result.stderr


def _worker_processes_left(marker: str) -> list[int]:
    """Return the processes whose environment contains `marker` (Linux)."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environment:
            left.append(int(entry.name))
    return left


def _wait_until_gone(marker: str, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    left = _worker_processes_left(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _worker_processes_left(marker)
    return left


def test_long_stream_matches_single_process_output():
    # Run as a program, softplus gives the blocks after the first to worker
    # processes; the Typer app called in its own process uses threads. The text
    # is the same.
    command = "seq -50 0.0003 50 | {} eval - -d --dtype float64 --format csv"
    as_program = shell(command.format("softplus"))
    in_process = shell(
        command.format(f"{sys.executable} -c 'from softplus_cli.cli import app; app()'")
    )
    assert as_program.returncode == 0
    assert in_process.returncode == 0
    assert len(as_program.stdout.splitlines()) == 333_335
    assert as_program.stdout == in_process.stdout


def test_invalid_number_in_late_block():
    result = shell("{ seq 1 300000; echo oops; seq 1 10; } | softplus eval -")
    assert result.returncode == 2
    assert result.stderr == (
        "softplus: error: invalid number 'oops' on line 300001 of standard input: "
        "expected a decimal number such as 1.5, -2e-3, inf or nan\n"
    )
    rows = result.stdout.splitlines()
    assert len(rows) < 300_000
    assert [row.split("\t")[0] for row in rows] == [
        f"{float(n)}" for n in range(1, len(rows) + 1)
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_worker_processes_outlive_head():
    marker = f"SOFTPLUS_TEST_MARKER={uuid.uuid4()}"
    result = shell(f"seq 1 3000000 | env {marker} softplus eval - | head -2")
    assert result.stdout == "1.0\t1.3132616\n2.0\t2.126928\n"
    assert result.stderr == ""
    assert _wait_until_gone(marker) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_interrupt_during_a_long_stream_ends_every_process(tmp_path):
    marker = str(uuid.uuid4())
    output = tmp_path / "out.tsv"
    with output.open("wb") as stdout:
        process = subprocess.Popen(
            [SOFTPLUS, "eval", "-"],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env={**os.environ, "SOFTPLUS_TEST_MARKER": marker},
        )
        # Enough blocks for worker processes to start; stdin stays open.
        process.stdin.write(b"".join(b"%d\n" % n for n in range(1, 400_001)))
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while output.stat().st_size < 4_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert b"Traceback" not in stderr
    assert _wait_until_gone(marker) == []


NON_BLOCKING_STDOUT = (
    "import os, sys\n"
    "os.set_blocking(1, False)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


@pytest.mark.parametrize("count", [40_000, 1_000_000])
def test_non_blocking_stdout_gets_every_row(count):
    # Another process may leave a shared pipe non-blocking: the reader here
    # starts late, so the pipe fills and writes would take only part.
    result = shell(
        f"seq 1 {count} | {sys.executable} -c '{NON_BLOCKING_STDOUT}' "
        f"softplus eval - | (sleep 0.5; wc -l)"
    )
    assert result.stderr == ""
    assert result.stdout.strip() == str(count)


def test_too_few_descriptors_for_workers_falls_back():
    # With 9 file descriptors the worker pipes cannot be made: threads work.
    result = shell("ulimit -n 9; seq 1 300000 | softplus eval - | tail -1")
    assert result.returncode == 0
    assert result.stdout == "300000.0\t300000.0\n"
    assert result.stderr == ""


INTERRUPTED_IMPORT = """
import os, signal, sys
import numpy  # starts OpenBLAS's threads when OPENBLAS_NUM_THREADS is unset
from softplus_cli.formatting import import_orjson

class InterruptDuringImport:
    # Sends Ctrl-C to the process while orjson imports the modules it needs.
    def find_spec(self, name, path=None, target=None):
        if name in ("json", "dataclasses", "uuid", "enum", "datetime", "zoneinfo"):
            os.kill(os.getpid(), signal.SIGINT)
        return None

for name in ("json", "dataclasses", "uuid", "datetime", "zoneinfo"):
    sys.modules.pop(name, None)
sys.meta_path.insert(0, InterruptDuringImport())
try:
    import_orjson()
except KeyboardInterrupt:
    print("interrupted after the import:", "orjson" in sys.modules)
"""


def test_interrupt_during_orjson_import_is_not_a_crash():
    # orjson 3.13.0 crashes when a KeyboardInterrupt interrupts its import.
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout == "interrupted after the import: True\n"

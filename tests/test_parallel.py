"""The pipeline that runs work on chunks in worker threads or processes."""

import os
import signal
import sys
import time

import pytest

from softplus_cli.pipeline import PipedText, Pipeline, WorkerError, can_fork

needs_fork = pytest.mark.skipif(not can_fork(), reason="worker processes need fork")

# JAX, when another test has imported it into this process, warns at every
# fork. The children here run only the small functions below, no JAX.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


def square(chunk):
    if chunk == "fail":
        raise ValueError("invalid chunk 'fail'")
    return chunk, f"{chunk * chunk}\n".encode()


def collect(results):
    def finish(result):
        value, text = result
        if isinstance(text, PipedText):
            text = text.read()
        results.append((value, text))

    return finish


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=needs_fork)])
def test_results_arrive_in_chunk_order(processes):
    results = []
    with Pipeline(square, collect(results), processes=processes) as pipeline:
        for chunk in range(40):
            pipeline.submit(chunk)
    assert results == [(n, f"{n * n}\n".encode()) for n in range(40)]


@needs_fork
def test_worker_processes_are_reaped():
    results = []
    with Pipeline(square, collect(results), processes=True) as pipeline:
        for chunk in range(10):
            pipeline.submit(chunk)
        pids = [worker.pid for worker in pipeline.processes]
    assert pids
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=needs_fork)])
def test_error_in_a_later_chunk_reaches_the_caller(processes):
    results = []
    pipeline = Pipeline(square, collect(results), processes=processes)
    with pytest.raises(ValueError, match="invalid chunk 'fail'"), pipeline:
        for chunk in [1, 2, 3, "fail", 5, 6]:
            pipeline.submit(chunk)
    # Chunks before the failing one are finished in order; none after it.
    assert [value for value, _ in results] == [1, 2, 3][: len(results)]


@needs_fork
def test_worker_process_that_dies_is_an_error():
    def die(chunk):
        if chunk == 3:
            os._exit(9)
        return square(chunk)

    results = []
    pipeline = Pipeline(die, collect(results), processes=True)
    with pytest.raises(WorkerError, match="ended"), pipeline:
        for chunk in range(6):
            pipeline.submit(chunk)
    # Results the dead worker had not sent yet are lost with it: the output
    # is a prefix of the results before chunk 3, starting with the parent's.
    values = [value for value, _ in results]
    assert values == [0, 1, 2][: len(values)]
    assert values[:1] == [0]


@needs_fork
def test_worker_busy_behind_slow_chunk(tmp_path):
    # Chunk 1 goes to the first worker and waits for chunk 5, which the
    # second worker can only get once the parent has received that worker's
    # earlier results ahead of chunk 1's turn.
    started = tmp_path / "chunk-5-started"

    def work(chunk):
        if chunk == 1:
            deadline = time.monotonic() + 10
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            return started.exists(), b"1\n"
        if chunk == 5:
            started.touch()
        return True, f"{chunk}\n".encode()

    results = []
    pipeline = Pipeline(work, collect(results), processes=True)
    pipeline.workers = 2
    with pipeline:
        for chunk in range(12):
            pipeline.submit(chunk)
    assert [text for _, text in results] == [f"{n}\n".encode() for n in range(12)]
    # Chunk 1 ended because chunk 5 started, not because it timed out.
    assert results[1][0] is True


@needs_fork
def test_piped_text_copies_to_a_file(tmp_path):
    output = tmp_path / "out.txt"
    with output.open("wb") as file:

        def finish(result):
            _, text = result
            if isinstance(text, PipedText):
                text.copy_to(file.fileno())
            else:
                file.write(text)
                file.flush()

        with Pipeline(square, finish, processes=True) as pipeline:
            for chunk in range(20):
                pipeline.submit(chunk)
    assert output.read_text() == "".join(f"{n * n}\n" for n in range(20))


@needs_fork
def test_workers_write_to_the_output_in_turn(tmp_path, monkeypatch):
    parent = os.getpid()
    splice = os.splice

    def splice_in_workers_only(*args):
        # The parent copies no text: each worker writes its own.
        assert os.getpid() != parent
        return splice(*args)

    monkeypatch.setattr(os, "splice", splice_in_workers_only)
    output = tmp_path / "out.txt"
    with output.open("wb") as file:
        descriptor = file.fileno()

        def finish(result):
            _, text = result
            if isinstance(text, PipedText):
                text.copy_to(descriptor)
            else:
                os.write(descriptor, text)

        pipeline = Pipeline(square, finish, processes=True, output=descriptor)
        with pipeline:
            for chunk in range(200):
                pipeline.submit(chunk)
    assert output.read_text() == "".join(f"{n * n}\n" for n in range(200))


@needs_fork
def test_worker_write_error_reaches_the_caller():
    read_end, write_end = os.pipe()
    os.close(read_end)

    def finish(result):
        _, text = result
        if isinstance(text, PipedText):
            text.copy_to(write_end)

    pipeline = Pipeline(square, finish, processes=True, output=write_end)
    try:
        # Python ignores SIGPIPE, so the closed pipe is an error to raise.
        with pytest.raises(BrokenPipeError), pipeline:
            for chunk in range(10):
                pipeline.submit(chunk)
    finally:
        os.close(write_end)


def fail_thread_starts(monkeypatch, in_children_only=False):
    """Make starting a thread fail, as a low limit on processes does."""
    import threading

    parent = os.getpid()
    start = threading.Thread.start

    def start_or_fail(thread):
        if in_children_only and os.getpid() == parent:
            return start(thread)
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", start_or_fail)


def test_chunks_run_here_when_no_thread_starts(monkeypatch):
    fail_thread_starts(monkeypatch)
    results = []
    with Pipeline(square, collect(results), processes=False) as pipeline:
        for chunk in range(10):
            pipeline.submit(chunk)
    assert results == [(n, f"{n * n}\n".encode()) for n in range(10)]


@needs_fork
def test_worker_without_a_sender_thread_still_answers(monkeypatch):
    fail_thread_starts(monkeypatch, in_children_only=True)
    results = []
    with Pipeline(square, collect(results), processes=True) as pipeline:
        for chunk in range(30):
            pipeline.submit(chunk)
    assert results == [(n, f"{n * n}\n".encode()) for n in range(30)]


@needs_fork
def test_worker_without_sender_large_chunks(monkeypatch):
    # A worker without a sender thread waits for each turn in its only thread.
    # While chunk 1 is slow, the parent receives the second worker's results
    # ahead of their turn and sends it more chunks. Two chunks of 600 kB fill
    # its request pipe, so the worker must keep reading it, or the parent and
    # the workers wait for each other forever.
    fail_thread_starts(monkeypatch, in_children_only=True)

    def timed_out(signal_number, frame):
        raise TimeoutError("pipeline timed out: parent and workers wait for each other")

    def echo(chunk):
        if chunk[0] == 1:
            time.sleep(1)
        return len(chunk), chunk

    chunks = [bytes([n]) * 600_000 for n in range(12)]
    results = []
    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(20)
    try:
        pipeline = Pipeline(echo, collect(results), processes=True)
        pipeline.workers = 2
        with pipeline:
            for chunk in chunks:
                pipeline.submit(chunk)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [text for _, text in results] == chunks


def test_processes_only_where_fork_is_available():
    pipeline = Pipeline(square, collect([]), processes=True)
    assert pipeline.use_processes == (sys.platform.startswith("linux"))

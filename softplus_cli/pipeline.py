"""Parallel work on the chunks of a long stream, with results kept in order.

Parsing and formatting hold Python's GIL (orjson does both), so threads
overlap only NumPy's part of the work. Where the operating system can fork,
chunks whose results are text go to worker processes instead. These run the
same work function, each with a GIL of its own. docs/benchmarks.md has the
throughput of both.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import struct
import sys
from collections.abc import Callable
from typing import Any

# At most this many workers, whatever the number of cores, because each one
# keeps chunks in memory.
MAX_WORKERS = 4
# Bytes of buffer asked for each pipe to and from a worker process.
PIPE_SIZE = 1 << 20
# Chunks sent to a worker process at a time: one it works on, and one waiting
# in its request pipe, so that it need not wait for the parent between chunks.
CHUNKS_PER_PROCESS = 2


def worker_count() -> int:
    """Return the number of workers: one per core this process may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def can_fork() -> bool:
    """Return whether worker processes are available: on Linux only, because
    macOS's system libraries do not support fork without exec, and Windows
    has no fork."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class WorkerError(RuntimeError):
    """Raised when a worker process ends without returning its result."""


def _enlarge_pipe(descriptor: int) -> int:
    """Ask for a pipe buffer of PIPE_SIZE bytes; return the size it has, or 0
    where that cannot be known.

    A message is up to about a MiB. A larger buffer means fewer wake-ups, and
    a request that fits can wait in it while the worker finishes its last
    chunk.
    """
    import fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    get_size = getattr(fcntl, "F_GETPIPE_SZ", None)
    if set_size is None or get_size is None:
        return 0
    # Above the system's pipe-max-size, the default size stays.
    with contextlib.suppress(OSError):
        fcntl.fcntl(descriptor, set_size, PIPE_SIZE)
    try:
        return int(fcntl.fcntl(descriptor, get_size))
    except OSError:
        return 0


# The header before each message: its kind, and the lengths of its pickled
# part and of its bytes part.
HEADER = struct.Struct("<BQQ")
# Kinds of message. A result message's pickled part is its value, and an
# error message's is the exception.
RESULT, ERROR = 0, 1


def _read_exactly(descriptor: int, size: int) -> bytearray:
    """Read `size` bytes, or raise EOFError if the pipe ends first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        count = os.readv(descriptor, [view[done:]])
        if count == 0:
            raise EOFError
        done += count
    return buffer


def _write_all(descriptor: int, *parts: bytes | bytearray | memoryview) -> None:
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(descriptor, view) :]


def _message(kind: int, value: Any, text: bytes | bytearray | memoryview) -> list[Any]:
    """Return the parts of a message: a header giving the lengths of the other
    two, `value` pickled, and `text` as it is."""
    import pickle

    pickled = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return [HEADER.pack(kind, len(pickled), len(text)), pickled, text]


def _receive_header(descriptor: int) -> tuple[int, Any, int]:
    """Read a header and the pickled part after it: return the kind, the
    unpickled value and the length of the bytes part still to read."""
    import pickle

    kind, pickled_length, text_length = HEADER.unpack(
        _read_exactly(descriptor, HEADER.size)
    )
    return kind, pickle.loads(_read_exactly(descriptor, pickled_length)), text_length


def _serve(work: Callable[[Any], Any], requests: int, replies: int) -> None:
    """Run `work` on each pickled chunk read from `requests` until it closes,
    and send each result or exception to `replies`.

    `work` returns a value, which travels pickled, and text, which travels as
    it is. A thread sends each result while the next chunk is worked on: a
    result larger than the pipe's buffer waits there until the parent copies
    out the results before it, and the work need not wait with it.
    """
    import queue
    import threading
    import traceback

    # One result waiting and one being sent, at most.
    outgoing: queue.Queue[list[Any] | None] = queue.Queue(maxsize=1)

    def send_results() -> None:
        while (message := outgoing.get()) is not None:
            _write_all(replies, *message)

    sender = threading.Thread(target=send_results, daemon=True)
    sender.start()
    while True:
        try:
            _, chunk, _ = _receive_header(requests)
        except EOFError:
            break
        try:
            value, text = work(chunk)
            message = _message(RESULT, value, text)
        except Exception as error:
            # The traceback does not survive pickling: keep its text.
            error.add_note("In a worker process:\n" + traceback.format_exc())
            try:
                message = _message(ERROR, error, b"")
            except Exception:
                text = f"{type(error).__name__}: {error}"
                message = _message(ERROR, WorkerError(text), b"")
        outgoing.put(message)
    outgoing.put(None)
    sender.join()


CUT_SHORT = (
    "a worker process ended while sending its rows: the last row written may "
    "be cut short"
)


class PipedText:
    """Text that a worker process has started to write to its reply pipe.

    Exactly one of `read` or `copy_to` must consume it before the worker's
    next result is received: the results share the pipe, in order.
    """

    def __init__(self, descriptor: int, length: int):
        self.descriptor = descriptor
        self.length = length

    def read(self) -> bytes:
        return bytes(self._read(self.length))

    def _read(self, size: int) -> bytearray:
        try:
            return _read_exactly(self.descriptor, size)
        except EOFError:
            raise WorkerError(CUT_SHORT) from None

    def copy_to(self, output: int) -> None:
        """Move the text to the file descriptor `output`, in the kernel where
        it can (os.splice, Linux)."""
        # NOTE: the worker's write to the pipe and this splice copy every byte
        # of output twice. Workers that wrote to stdout themselves, in no
        # order, ran 11 % faster on 10^7 float64 lines; doing that in order
        # needs them to take turns.
        left = self.length
        splice = getattr(os, "splice", None)
        while left and splice is not None:
            try:
                moved = splice(self.descriptor, output, left)
            except OSError as error:
                if error.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                # Some outputs (a file opened with O_APPEND, a terminal)
                # cannot take spliced data.
                break
            if moved == 0:
                raise WorkerError(CUT_SHORT)
            left -= moved
        while left:
            part = self._read(min(left, 1 << 20))
            _write_all(output, part)
            left -= len(part)


class WorkerProcess:
    """A child process, forked from this one, that runs `work` on the chunks
    sent to it, one at a time.

    Chunks and results pass through two pipes. The child ignores SIGINT,
    because the parent handles Ctrl-C, and has /dev/null as its stdin and
    stdout. It exits when its request pipe closes, so it also ends when the
    parent dies, and SIGPIPE ends it if the parent dies while it writes.
    """

    def __init__(self, work: Callable[[Any], Any], siblings: list[WorkerProcess]):
        import signal
        import warnings

        descriptors: list[int] = []
        try:
            descriptors.extend(os.pipe())
            descriptors.extend(os.pipe())
            request_read, request_write, reply_read, reply_write = descriptors
            self.request_capacity = _enlarge_pipe(request_write)
            _enlarge_pipe(reply_write)
            # Data buffered for stdout would be written twice if the child
            # flushed it: the child leaves through os._exit, which flushes
            # nothing.
            sys.stdout.flush()
            with warnings.catch_warnings():
                # Python 3.12 and later warn about forking a process with
                # threads. The only other thread here is OpenBLAS's pool, where
                # OPENBLAS_NUM_THREADS allows one: its own fork handler resets
                # it, and the child makes no BLAS calls.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            for descriptor in descriptors:
                os.close(descriptor)
            raise
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                os.close(request_write)
                os.close(reply_read)
                for sibling in siblings:
                    os.close(sibling.requests)
                    os.close(sibling.replies)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                _serve(work, request_read, reply_write)
                code = 0
            finally:
                os._exit(code)
        os.close(request_read)
        os.close(reply_write)
        self.pid = pid
        # Chunks sent whose results have not been received.
        self.in_flight = 0
        self.requests: int = request_write
        self.replies: int = reply_read

    def send(self, message: list[Any]) -> None:
        """Send a chunk's message; raise WorkerError if the child has ended.

        SIGPIPE, which ends this program quietly when stdout closes, is
        ignored meanwhile, so that a child that died is an error instead.
        """
        import signal
        import threading

        previous = None
        if (
            hasattr(signal, "SIGPIPE")
            and threading.current_thread() is threading.main_thread()
        ):
            previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            _write_all(self.requests, *message)
        except BrokenPipeError:
            raise WorkerError(f"worker process {self.pid} ended unexpectedly") from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGPIPE, previous)

    def fits(self, message: list[Any]) -> bool:
        """Return whether `message` fits in the empty request pipe."""
        return sum(len(part) for part in message) <= self.request_capacity

    def reply_ready(self) -> bool:
        """Return whether the oldest result not yet received has started to
        arrive."""
        import select

        ready, _, _ = select.select([self.replies], [], [], 0)
        return bool(ready)

    def receive(self) -> tuple[Any, PipedText]:
        """Return the value of the oldest result not yet received, and its
        text still in the pipe; or raise that chunk's exception."""
        try:
            kind, value, length = _receive_header(self.replies)
        except EOFError:
            raise WorkerError(
                f"worker process {self.pid} ended without a result: the output "
                "stops before its rows"
            ) from None
        if kind == ERROR:
            raise value
        return value, PipedText(self.replies, length)

    def stop(self, kill: bool) -> None:
        """End the child and wait for it: at once with `kill`, otherwise once
        it has read the end of its requests."""
        import signal

        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        for descriptor in (self.requests, self.replies):
            os.close(descriptor)
        os.waitpid(self.pid, 0)


class Pipeline:
    """Runs `work` on chunks, passing each result to `finish` in the order of
    the chunks.

    The first chunk runs in the calling thread, so a single chunk, as
    `softplus eval 1` has, starts nothing. Later ones go to one worker per
    core (at most MAX_WORKERS): processes when `processes` is set and the
    system can fork, otherwise threads. Each thread has at most one chunk,
    and each process CHUNKS_PER_PROCESS, which bounds memory.

    `work` returns a pair: a value and bytes of text. `finish` receives the
    pair, except that from a worker process the text is a `PipedText`, which
    `finish` must consume. Worker processes need picklable chunks and values.
    """

    def __init__(
        self,
        work: Callable[[Any], Any],
        finish: Callable[[Any], None],
        processes: bool = False,
    ):
        self.work = work
        self.finish = finish
        self.use_processes = processes and can_fork()
        self.first = True
        self.workers = worker_count()
        self.executor: Any = None
        self.processes: list[WorkerProcess] = []
        # Futures of the thread pool, or the process holding each chunk, oldest
        # first.
        self.pending: collections.deque[Any] = collections.deque()

    def submit(self, chunk: Any) -> None:
        if self.first:
            self.first = False
            self.finish(self.work(chunk))
            return
        if self.executor is None and not self.processes:
            self._start()
        if self.use_processes:
            message = _message(RESULT, chunk, b"")
            worker = self._worker_for(message)
            try:
                worker.send(message)
            except WorkerError:
                # The results before the dead worker's go out first, and its
                # missing result raises in turn.
                self.drain()
                raise
            worker.in_flight += 1
            self.pending.append(worker)
        else:
            self.pending.append(self.executor.submit(self.work, chunk))
            if len(self.pending) > self.workers:
                self._finish_oldest()
        # Results that are ready go out now, which keeps the output flowing.
        while self.pending and self._oldest_ready():
            self._finish_oldest()

    def drain(self) -> None:
        """Pass every pending result to `finish`."""
        while self.pending:
            self._finish_oldest()

    def _start(self) -> None:
        if self.use_processes:
            try:
                for _ in range(self.workers):
                    self.processes.append(WorkerProcess(self.work, self.processes))
            except OSError:
                # Out of file descriptors or processes: threads do the work.
                for worker in self.processes:
                    worker.stop(kill=True)
                self.processes = []
                self.use_processes = False
        if not self.use_processes:
            from concurrent.futures import ThreadPoolExecutor

            self.executor = ThreadPoolExecutor(self.workers)

    def _oldest_ready(self) -> bool:
        oldest = self.pending[0]
        return oldest.reply_ready() if self.use_processes else oldest.done()

    def _worker_for(self, message: list[Any]) -> WorkerProcess:
        """Return a worker process to send `message` to, finishing the oldest
        results until one can take it.

        A worker with no chunk takes any message. One with a chunk, but fewer
        than CHUNKS_PER_PROCESS, takes a message that fits in its empty
        request pipe: the message waits there, and the worker starts on it as
        soon as it has sent its result. A larger message could block the
        sender while the worker blocks sending its result to it.
        """
        while True:
            for worker in self.processes:
                if worker.in_flight == 0:
                    return worker
            for worker in self.pending:
                if worker.in_flight < CHUNKS_PER_PROCESS and worker.fits(message):
                    return worker
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        oldest = self.pending.popleft()
        if self.use_processes:
            result = oldest.receive()
            oldest.in_flight -= 1
        else:
            result = oldest.result()
        self.finish(result)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        clean = False
        try:
            if kind is None:
                self.drain()
                clean = True
        finally:
            if self.executor is not None:
                self.executor.shutdown(wait=True, cancel_futures=True)
            for worker in self.processes:
                worker.stop(kill=not clean)

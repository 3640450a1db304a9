"""Parallel work on the chunks of a long stream, with results kept in order.

Parsing and formatting hold Python's GIL (orjson does both), so threads
overlap only NumPy's part of the work. Where the operating system can fork,
chunks whose results are text go to worker processes instead. These run the
same work function, each with a GIL of its own, and write their text to the
output themselves, taking turns in the order of the chunks. docs/benchmarks.md
has the throughput of both.
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
# The instruction the parent sends a worker for a result's text, when its
# turn comes: write it to the output itself, or send it through the reply pipe.
WRITE, SEND = b"w", b"s"
# The outcome of a WRITE that the worker reports: 0, or the errno.
STATUS = struct.Struct("<q")


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


def _serve(
    work: Callable[[Any], Any], requests: int, replies: int, turns: int, output: int
) -> None:
    """Run `work` on each pickled chunk read from `requests` until it closes,
    and send each result or exception to `replies`.

    `work` returns a value, which travels pickled, and text. A thread sends
    each result while the next chunk is worked on. It sends the value, then
    waits for the parent to write a byte to `turns`: WRITE, to write the
    text to `output` and report the outcome, or SEND, to send the text
    through `replies`. Turns come in the order of the chunks, so the rows of
    all the workers reach the output in order, each copied once.
    """
    import queue
    import select
    import threading
    import traceback

    # One result waiting and one being sent, at most.
    outgoing: queue.Queue[list[Any] | None] = queue.Queue(maxsize=1)
    # Chunks read from `requests` while a worker without a sender thread
    # waited for a turn.
    chunks_read_ahead: collections.deque[Any] = collections.deque()
    requests_open = True

    def read_turn(read_requests: bool) -> bytes:
        """Read the parent's next turn byte, which is b"" once the parent has
        ended.

        With `read_requests`, read the chunks that arrive meanwhile too. The
        parent may receive a result ahead of its turn and send more chunks.
        Unread, they could fill the request pipe and block the parent before
        it gives the turn that this thread waits for. The parent has at most
        CHUNKS_PER_PROCESS chunks in flight per worker, which bounds the
        chunks read ahead.
        """
        nonlocal requests_open
        while read_requests and requests_open:
            ready, _, _ = select.select([turns, requests], [], [])
            if turns in ready:
                break
            try:
                _, chunk, _ = _receive_header(requests)
            except EOFError:
                requests_open = False
            else:
                chunks_read_ahead.append(chunk)
        return os.read(turns, 1)

    def send(message: list[Any], read_requests: bool = False) -> None:
        header, pickled, text = message
        try:
            _write_all(replies, header, pickled)
            if not text:
                return
            turn = read_turn(read_requests)
            if not turn:
                # The parent has ended.
                os._exit(0)
            if turn == SEND:
                _write_all(replies, text)
                return
            status = 0
            try:
                _write_all(output, text)
            except OSError as error:
                status = error.errno or errno.EIO
            _write_all(replies, STATUS.pack(status))
        except BrokenPipeError:
            # The parent has ended, so no one reads the replies.
            os._exit(0)

    def send_results() -> None:
        while (message := outgoing.get()) is not None:
            send(message)

    sender: threading.Thread | None = threading.Thread(target=send_results, daemon=True)
    try:
        sender.start()
    except RuntimeError:
        # No thread could start, as under a low limit on processes: results
        # go out from this thread, between chunks.
        sender = None
    while True:
        if chunks_read_ahead:
            chunk = chunks_read_ahead.popleft()
        else:
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
        if sender is None:
            send(message, read_requests=True)
        else:
            outgoing.put(message)
    if sender is not None:
        outgoing.put(None)
        sender.join()


CUT_SHORT = (
    "a worker process ended while sending its rows: the last row written may "
    "be cut short"
)


class PipedText:
    """Text that a worker process holds for the parent, in turn after the
    results before it.

    Exactly one of `read` or `copy_to` must consume it before the worker's
    next result is received: the results share the worker's pipes, in order.
    """

    def __init__(self, worker: WorkerProcess, length: int):
        self.worker = worker
        self.length = length

    def read(self) -> bytes:
        if not self.length:
            return b""
        self.worker.give_turn(SEND)
        return bytes(self._read(self.length))

    def _read(self, size: int) -> bytearray:
        try:
            return _read_exactly(self.worker.replies, size)
        except EOFError:
            raise WorkerError(CUT_SHORT) from None

    def copy_to(self, output: int) -> None:
        """Write the text to the file descriptor `output`: by the worker itself
        where `output` is the one it writes to, otherwise through the kernel
        where it can (os.splice, Linux)."""
        if not self.length:
            return
        if output == self.worker.output:
            self.worker.give_turn(WRITE)
            (status,) = STATUS.unpack(self._read(STATUS.size))
            if status:
                _raise_write_error(status)
            return
        self.worker.give_turn(SEND)
        left = self.length
        splice = getattr(os, "splice", None)
        while left and splice is not None:
            try:
                moved = splice(self.worker.replies, output, left)
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


def _raise_write_error(code: int) -> None:
    """Raise the error of a worker's failed write, as if this process had
    written: a closed pipe ends it through SIGPIPE where that is the rule."""
    import signal

    if (
        code == errno.EPIPE
        and hasattr(signal, "SIGPIPE")
        and signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL
    ):
        signal.raise_signal(signal.SIGPIPE)
    raise OSError(code, os.strerror(code))


class WorkerProcess:
    """A child process, forked from this one, that runs `work` on the chunks
    sent to it, one at a time.

    Chunks, results and turns to write pass through three pipes, and the
    child writes its text to `output`, a descriptor it inherits. It ignores
    SIGINT, because the parent handles Ctrl-C, and SIGPIPE, so that a closed
    output is an error it reports. Its stdin and stdout are /dev/null. It
    exits when its request pipe closes, or when the parent's end of another
    pipe does, so it also ends when the parent dies.
    """

    def __init__(
        self,
        work: Callable[[Any], Any],
        siblings: list[WorkerProcess],
        output: int | None = None,
        inherited: int = -1,
    ):
        import signal
        import warnings

        descriptors: list[int] = []
        try:
            for _ in range(3):
                descriptors.extend(os.pipe())
            (
                request_read,
                request_write,
                reply_read,
                reply_write,
                turn_read,
                turn_write,
            ) = descriptors
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
                if hasattr(signal, "SIGPIPE"):
                    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
                for descriptor in (request_write, reply_read, turn_write):
                    os.close(descriptor)
                for sibling in siblings:
                    for descriptor in (sibling.requests, sibling.replies, sibling.turns):
                        os.close(descriptor)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                _serve(work, request_read, reply_write, turn_read, inherited)
                code = 0
            finally:
                os._exit(code)
        for descriptor in (request_read, reply_write, turn_read):
            os.close(descriptor)
        self.pid = pid
        # Chunks sent whose results have not been received.
        self.in_flight = 0
        self.requests: int = request_write
        self.replies: int = reply_read
        self.turns: int = turn_write
        # The descriptor in this process of which the child's `inherited` is a
        # copy: the child writes the text that `PipedText.copy_to` sends there.
        self.output = output

    def send(self, message: list[Any]) -> None:
        """Send a chunk's message; raise WorkerError if the child has ended."""
        self._write(self.requests, message)

    def give_turn(self, turn: bytes) -> None:
        """Tell the child what to do with its oldest result's text."""
        self._write(self.turns, [turn])

    def _write(self, descriptor: int, parts: list[Any]) -> None:
        """Write to one of the child's pipes; raise WorkerError if it has ended.

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
            _write_all(descriptor, *parts)
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
        return value, PipedText(self, length)

    def stop(self, kill: bool) -> None:
        """End the child and wait for it: at once with `kill`, otherwise once
        it has read the end of its requests."""
        import signal

        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        for descriptor in (self.requests, self.replies, self.turns):
            os.close(descriptor)
        os.waitpid(self.pid, 0)


class _Slot:
    """A chunk sent to a worker process, and its result once received.

    A result that failed is kept as its exception, raised when the chunk's
    turn comes, after the results of the chunks before it.
    """

    def __init__(self, worker: WorkerProcess):
        self.worker = worker
        self.received = False
        self.value: Any = None
        self.error: BaseException | None = None

    def receive(self) -> None:
        try:
            self.value = self.worker.receive()
        except Exception as error:
            self.error = error
        self.received = True
        self.worker.in_flight -= 1

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class Pipeline:
    """Runs `work` on chunks, passing each result to `finish` in the order of
    the chunks.

    The first chunk runs in the calling thread, so a single chunk, as
    `softplus eval 1` has, starts nothing. Later ones go to one worker per
    core (at most MAX_WORKERS): processes when `processes` is set and the
    system can fork, otherwise threads. Each thread has at most one chunk.
    Each process has at most CHUNKS_PER_PROCESS chunks whose results this
    process has not received, and one received result whose text waits for
    its turn, which bounds memory.

    `work` returns a pair: a value and bytes of text. `finish` receives the
    pair, except that from a worker process the text is a `PipedText`, which
    `finish` must consume. Worker processes need picklable chunks and values.
    Where `finish` copies that text to the descriptor `output`, the worker
    process writes it there itself.
    """

    def __init__(
        self,
        work: Callable[[Any], Any],
        finish: Callable[[Any], None],
        processes: bool = False,
        output: int | None = None,
    ):
        self.work = work
        self.finish = finish
        self.output = output
        self.use_processes = processes and can_fork()
        self.first = True
        # Set when no worker thread could start: every chunk then runs in the
        # calling thread.
        self.inline = False
        self.workers = worker_count()
        self.executor: Any = None
        self.processes: list[WorkerProcess] = []
        # Futures of the thread pool, or a `_Slot` for each chunk sent to a
        # process, oldest first.
        self.pending: collections.deque[Any] = collections.deque()

    def submit(self, chunk: Any) -> None:
        if self.first or self.inline:
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
            self.pending.append(_Slot(worker))
        else:
            try:
                self.pending.append(self.executor.submit(self.work, chunk))
            except RuntimeError:
                # No thread could start, as under a low limit on processes:
                # this chunk and the rest run in this thread, in order.
                self.inline = True
                self.drain()
                self.finish(self.work(chunk))
                return
            if len(self.pending) > self.workers:
                self._finish_oldest()
        # Results that are ready go out now, which keeps the output flowing.
        while self.pending and self._oldest_ready():
            self._finish_oldest()
        if self.use_processes:
            self._receive_ready()

    def drain(self) -> None:
        """Pass every pending result to `finish`."""
        while self.pending:
            self._finish_oldest()

    def _start(self) -> None:
        if self.use_processes:
            inherited = -1
            try:
                if self.output is not None:
                    # A copy of the output for the workers, which make their
                    # descriptors 0 and 1 /dev/null. Once they have it, this
                    # process closes its own.
                    inherited = os.dup(self.output)
                for _ in range(self.workers):
                    self.processes.append(
                        WorkerProcess(self.work, self.processes, self.output, inherited)
                    )
            except OSError:
                # Out of file descriptors or processes: threads do the work.
                for worker in self.processes:
                    worker.stop(kill=True)
                self.processes = []
                self.use_processes = False
            finally:
                if inherited >= 0:
                    os.close(inherited)
        if not self.use_processes:
            from concurrent.futures import ThreadPoolExecutor

            self.executor = ThreadPoolExecutor(self.workers)

    def _oldest_ready(self) -> bool:
        oldest = self.pending[0]
        if not self.use_processes:
            return bool(oldest.done())
        return oldest.received or oldest.worker.reply_ready()

    def _receivable(self) -> list[_Slot]:
        """Return the slots whose results may be received now: the oldest
        slot of each worker that has no received result waiting for its turn.

        A worker sends its next value only after the text of the one before,
        so each worker has at most one received result waiting.
        """
        holding: set[WorkerProcess] = set()
        slots = []
        for slot in self.pending:
            if slot.worker not in holding:
                holding.add(slot.worker)
                if not slot.received:
                    slots.append(slot)
        return slots

    def _receive_ready(self, timeout: float | None = 0) -> int:
        """Receive the values of results that have arrived ahead of their
        turn, waiting up to `timeout` seconds (None: until one arrives); return
        how many.

        Each worker then has one chunk fewer in flight and can be sent
        another, while the text waits for the results before it.
        """
        import select

        slots = self._receivable()
        if not slots:
            return 0
        replies = {slot.worker.replies: slot for slot in slots}
        ready, _, _ = select.select(list(replies), [], [], timeout)
        for descriptor in ready:
            replies[descriptor].receive()
        return len(ready)

    def _worker_for(self, message: list[Any]) -> WorkerProcess:
        """Return a worker process to send `message` to, finishing the oldest
        results until one can take it.

        A worker with no chunk takes any message. One with a chunk, but fewer
        than CHUNKS_PER_PROCESS, takes a message that fits in its empty
        request pipe: the message waits there, and the worker starts on it as
        soon as it has sent its result. A larger message could block the
        sender while the worker blocks sending its result to it. Results
        received ahead of their turn count as sent: their text waits in the
        worker's sender thread, not in its pipes. A worker without that
        thread keeps reading its request pipe while it waits for the turn.
        """
        while True:
            for worker in self.processes:
                if worker.in_flight == 0:
                    return worker
            # The worker of the oldest chunk is likely to be free first.
            for slot in self.pending:
                worker = slot.worker
                if worker.in_flight < CHUNKS_PER_PROCESS and worker.fits(message):
                    return worker
            if self._receive_ready():
                continue
            if self.pending[0].received:
                self._finish_oldest()
            else:
                # Whichever result comes first: the oldest, or one that frees
                # a worker ahead of its turn.
                self._receive_ready(timeout=None)

    def _finish_oldest(self) -> None:
        oldest = self.pending.popleft()
        if self.use_processes and not oldest.received:
            oldest.receive()
        self.finish(oldest.result())

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

"""Reading a trace in a second process while this one replays it.

Reading a trace is a good part of replaying it: xz decompression, then splitting and
converting every line (:func:`~kmmlib.trace.parse.iter_records`; on the full trace about
0.9 s of CPU with the C parser, against 1.0–1.4 s of simulation). On a machine with two CPUs
the two can overlap, as a pipe between two programs would (``xzcat trace.xz | parse |
replay``): :class:`ChildRecords` forks a child that reads and parses
(:func:`~kmmlib.trace.parse.record_batches`), and sends the records back in batches of
:data:`BATCH` or more through a pipe, while the caller replays the batch before. The child
runs at a lower priority (:data:`CHILD_NICE`): the replay is the slower half. The records,
their order and the :class:`~kmmlib.trace.parse.TraceStats` are exactly those of reading in
this process — only the wall-clock time differs. (Stopped early, the stats count what the
child had read, which may be a few batches past what was replayed.)

How the pieces travel: a batch of records is a list of tuples of ints, floats and strings,
which :mod:`marshal` writes and reads at about a quarter of a microsecond a record (pickle
takes twice as long); the pipe's buffer (:data:`PIPE_BYTES`, room for a few batches) makes
the child wait when the replay falls behind. The child's stats come last (pickled), with its
error if it had one: the caller replays every record read before the error, then sees the
same exception as when reading in one process.

The child is a plain ``os.fork()`` with two pipes — records one way, "stop" the other — and
it ends with ``os._exit()``, running nothing of the parent's (atexit handlers, buffered
output). Nothing is left behind: leaving the ``with`` block asks the child to stop, keeps its
stats, and reaps it; if the parent dies, the child sees its "stop" pipe close, or fails its
next write, and ends.

:func:`can_fork` says when this is used: Linux (``fork`` is cheap there: the child shares the
parent's memory until it writes) with at least two CPUs available to this process.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import select
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from itertools import chain
from multiprocessing.connection import Connection
from pathlib import Path

from kmmlib.errors import ParseError
from kmmlib.trace.parse import TraceLines, TraceStats, record_batches

BATCH = 4096                       # records per message (at least; the last may have fewer)
MIN_BYTES = 64 * 1024              # a smaller file is read faster than a process starts
STOP_WAIT = 10.0                   # seconds to wait for a stopped child's stats
CHILD_NICE = 10                    # the child's priority, below the replay's
PIPE_BYTES = 1 << 20               # the records' pipe buffer (a batch is about 250 KiB)


def can_fork(path) -> bool:
    """Whether reading ``path`` in a child process is possible and worth it: Linux, two CPUs
    or more for this process, and a regular file of at least :data:`MIN_BYTES`."""
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        return False
    if not isinstance(path, (str, os.PathLike)) or str(path) == "-":
        return False
    try:
        p = Path(path)
        return p.is_file() and p.stat().st_size >= MIN_BYTES
    except OSError:
        return False


def _child(lines: TraceLines, out: Connection, stop_fd: int) -> None:
    """The child's whole life: parse, send batches, then its error (or None) and stats.
    It stops early when ``stop_fd`` becomes readable (the parent wrote to it, or died)."""
    # No cyclic garbage collection here: parsing makes no cycles, and a collection would walk
    # (and so copy) every object this process shares with its parent.
    gc.disable()
    # Ctrl-C is the parent's to handle: it stops this process when it stops reading.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The replay is the slower half: when this process's two threads (xz and parsing) and the
    # parent want the two CPUs at once, the parent should win (about 5 % sooner on the full
    # trace). Lowering one's own priority is always allowed.
    try:
        os.nice(CHILD_NICE)
    except OSError:
        pass
    stats = TraceStats()
    batches = record_batches(lines, stats)
    pending: list[tuple] = []
    error = None
    try:
        for recs in batches:
            pending += recs
            if len(pending) >= BATCH:
                out.send_bytes(b"B" + marshal.dumps((pending, stats.header)))
                pending = []
                if select.select([stop_fd], [], [], 0)[0]:
                    break
    except BaseException as err:                      # handed to the parent, raised there
        error = err
    if pending and (error is not None or not select.select([stop_fd], [], [], 0)[0]):
        # The last records; also those read before an error: the parent replays them first.
        try:
            out.send_bytes(b"B" + marshal.dumps((pending, stats.header)))
        except OSError:                               # the parent stopped listening
            pass
    batches.close()                                   # record_batches writes its counts back
    lines.close()
    try:
        msg = pickle.dumps((error, stats))
    except Exception:                                 # an exception that does not pickle
        msg = pickle.dumps((RuntimeError(f"reading the trace failed: {error!r}"), stats))
    try:
        out.send_bytes(b"P" + msg)
    except OSError:                                   # the parent stopped listening
        pass


class ChildRecords:
    """The records of ``path``, as :func:`~kmmlib.trace.parse.iter_records` yields them,
    read and parsed by a child process: ``with ChildRecords(path, stats) as records: for rec
    in records``. ``stats`` gets what reading found (the header with the first batch, the rest
    at the end). The file is opened and the child started here, so a missing file, or a
    machine that cannot fork now (``OSError``), raises at once; leaving the ``with`` (or
    :meth:`close`) stops the child, also when the caller stopped early or failed (a traceback
    kept by Jupyter would otherwise keep it waiting)."""

    def __init__(self, path, stats: TraceStats):
        self._batches = _batches_from_child(path, stats)
        next(self._batches)                 # open the file and start the child now

    def __iter__(self) -> Iterator[tuple]:
        # One batch at a time from the pipe, one record at a time to the caller (at C speed).
        return chain.from_iterable(self._batches)

    def close(self) -> None:
        self._batches.close()

    def __enter__(self) -> ChildRecords:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fork_child(lines: TraceLines) -> tuple[int, Connection, int]:
    """Start the child: (its pid, the records' reading end, the "stop" pipe's writing end).
    Raises OSError, with every descriptor closed, when the machine cannot fork now."""
    data_r, data_w = os.pipe()
    stop_r, stop_w = os.pipe()
    _widen(data_w)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads (a Jupyter kernel has
            # some) may deadlock the child on a lock another thread held. The child here
            # takes none of those: it parses, writes to its pipe and leaves by os._exit().
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        for fd in (data_r, data_w, stop_r, stop_w):
            os.close(fd)
        raise
    if pid == 0:                            # the child: never returns
        status = 0
        try:
            os.close(data_r)
            os.close(stop_w)
            _child(lines, Connection(data_w, readable=False), stop_r)
        except BaseException:               # noqa: BLE001 — nothing of the parent's may run
            status = 1
        finally:
            os._exit(status)
    os.close(data_w)
    os.close(stop_r)
    return pid, Connection(data_r, writable=False), stop_w


def _widen(fd: int) -> None:
    """Give the records' pipe a buffer of :data:`PIPE_BYTES` (``F_SETPIPE_SZ``; Linux's
    default is 64 KiB): a batch then goes through in one write and one read, not a dozen
    of each, with a wake-up of the other process between them. Where the system refuses
    (``/proc/sys/fs/pipe-max-size``), the default buffer works too, a little slower."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _batches_from_child(path, stats: TraceStats) -> Iterator[list[tuple]]:
    lines = TraceLines(path)                # opened here: errors are the caller's at once
    try:
        pid, recv, stop_w = _fork_child(lines)
    finally:
        lines.close()                       # the child has its own copy of the file
    finished = False
    try:
        yield []                            # (primed by ChildRecords: started eagerly)
        while True:
            try:
                msg = recv.recv_bytes()
            except EOFError:
                status = _reap(pid, wait=STOP_WAIT)
                pid = 0
                raise ParseError(f"{path}: the process reading the trace ended with exit "
                                 f"code {status} before it was done") from None
            if msg[:1] == b"P":             # the end: the child's error (or None), its stats
                finished = True
                error, child_stats = pickle.loads(msg[1:])
                stats.merge(child_stats)
                if error is not None:
                    raise error
                return
            batch, header = marshal.loads(msg[1:])
            stats.header.update(header)
            yield batch
    finally:
        try:
            if not finished and pid:
                try:
                    os.write(stop_w, b"s")
                except OSError:             # it has ended already
                    pass
                _keep_stats(recv, stats)
        finally:
            os.close(stop_w)
            recv.close()
            if pid:
                _reap(pid, wait=STOP_WAIT)


def _keep_stats(recv: Connection, stats: TraceStats) -> None:
    """The child was asked to stop after the batch it is on: read (and drop) what it still
    sends until its stats come, for :data:`STOP_WAIT` seconds at most."""
    deadline = time.monotonic() + STOP_WAIT
    try:
        while recv.poll(max(0.0, deadline - time.monotonic())):
            msg = recv.recv_bytes()
            if msg[:1] == b"P":
                stats.merge(pickle.loads(msg[1:])[1])
                return
    except (EOFError, OSError):
        pass


def _reap(pid: int, wait: float) -> int:
    """Wait for the child to end (``wait`` seconds, then SIGKILL); its exit code."""
    deadline = time.monotonic() + wait
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)


__all__ = ["BATCH", "MIN_BYTES", "ChildRecords", "can_fork"]

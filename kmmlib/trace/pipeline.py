"""Reading a trace in a second process while this one replays it.

Reading a trace costs about as much as replaying it: xz decompression, then splitting and
converting every line (:func:`~kmmlib.trace.parse.iter_records`). On a machine with two CPUs
the two can overlap, as a pipe between two programs would (``xzcat trace.xz | parse |
replay``): :class:`ChildRecords` forks a child that reads and parses, and sends the
records back in batches of :data:`BATCH` through a pipe, while the caller replays the batch
before. The records, their order and the :class:`~kmmlib.trace.parse.TraceStats` are exactly
those of reading in this process — only the wall-clock time differs.

How the pieces travel: a batch of records is a list of tuples of ints, floats and strings,
which :mod:`marshal` writes and reads at about a quarter of a microsecond a record (pickle
takes twice as long); the pipe's buffer makes the child wait when the replay falls behind,
so at most a few batches are in flight. The child's stats come last (pickled), its errors
too: the caller sees the same exception as when reading in one process.

:func:`can_fork` says when this is used: a Linux machine (``fork`` is the start method there,
and cheap: the child shares the parent's memory until it writes) with at least two CPUs
available to this process.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import signal
import sys
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path

from kmmlib.errors import ParseError
from kmmlib.trace.parse import TraceLines, TraceStats, iter_records

BATCH = 4096                       # records per message
MIN_BYTES = 64 * 1024              # a smaller file is read faster than a process starts


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


def _child(lines: TraceLines, conn) -> None:
    """The child's whole life: parse, send batches, then the stats (or the error)."""
    # No cyclic garbage collection here: parsing makes no cycles, and a collection would walk
    # (and so copy) every object this process shares with its parent.
    gc.disable()
    # Ctrl-C is the parent's to handle: it ends this process when it stops reading.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = TraceStats()
    records = iter_records(lines, stats)
    try:
        while batch := list(islice(records, BATCH)):
            # The header (read by then) travels with every batch: a progress bar's total.
            conn.send_bytes(b"B" + marshal.dumps((batch, stats.header)))
        lines.close()
        end = ("done", stats)
    except BaseException as err:                      # handed to the parent, raised there
        end = ("error", err)
    try:
        msg = pickle.dumps(end)
    except Exception:                                 # an exception that does not pickle
        msg = pickle.dumps(("error", RuntimeError(f"reading the trace failed: {end[1]!r}")))
    try:
        conn.send_bytes(b"P" + msg)
        conn.close()
    except OSError:                                   # the parent stopped listening
        pass


class ChildRecords:
    """The records of ``path``, as :func:`~kmmlib.trace.parse.iter_records` yields them,
    read and parsed by a child process: ``with ChildRecords(path, stats) as records: for rec
    in records``. ``stats`` gets what reading found (the header with the first batch, the rest
    at the end). Opening the file happens here, so a missing file raises before any process
    starts; leaving the ``with`` (or :meth:`close`) ends the child, also when the caller
    stopped early or failed (a traceback kept by Jupyter would otherwise keep it waiting)."""

    def __init__(self, path, stats: TraceStats):
        self._batches = _batches_from_child(path, stats)
        next(self._batches)                 # open the file now

    def __iter__(self) -> Iterator[tuple]:
        # One batch at a time from the pipe, one record at a time to the caller (at C speed).
        return chain.from_iterable(self._batches)

    def close(self) -> None:
        self._batches.close()

    def __enter__(self) -> ChildRecords:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _batches_from_child(path, stats: TraceStats) -> Iterator[list[tuple]]:
    import multiprocessing

    lines = TraceLines(path)                # opened here: errors are the caller's at once
    try:
        yield []                            # (primed by ChildRecords, so opening is eager)
    except GeneratorExit:
        lines.close()
        raise
    ctx = multiprocessing.get_context("fork")
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(lines, send_end), name="kmm-trace-reader",
                       daemon=True)
    try:
        proc.start()
        send_end.close()
        lines.close()                       # the child has its own copy of the file
        while True:
            try:
                msg = recv_end.recv_bytes()
            except EOFError:
                proc.join()
                raise ParseError(f"{path}: the process reading the trace ended with exit "
                                 f"code {proc.exitcode} before it was done") from None
            if msg[:1] == b"P":             # the end: the stats, or the child's error
                kind, value = pickle.loads(msg[1:])
                if kind == "error":
                    raise value
                stats.merge(value)
                return
            batch, header = marshal.loads(msg[1:])
            stats.header.update(header)
            yield batch
    finally:
        recv_end.close()
        if proc.is_alive():
            proc.terminate()
        proc.join()


__all__ = ["BATCH", "MIN_BYTES", "ChildRecords", "can_fork"]

"""Reading an ftrace text trace of the ``kmem`` events (``/sys/kernel/tracing/trace``).

The kernel's tracepoints (``include/trace/events/kmem.h``) print one line per event, after the
header ftrace writes for the nop tracer (kernel/trace/trace.c: ``s_show()``'s tracer line,
then ``trace_default_header()`` → ``print_func_help_header_irq()``, whose
``print_event_info()`` prints the entries line)::

    # tracer: nop
    # entries-in-buffer/entries-written: 442442/442442   #P:2
    #           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
                bash-2355    [001] .....  1042.955483: mm_page_alloc: page=… pfn=0x11e558 …

that is ``TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS``. TASK is the thread's ``comm`` (it may
hold spaces and dashes: the pid is what follows the *last* dash), FLAGS the irq/preempt column
(absent when the ``irq-info`` option is off), TIMESTAMP seconds of the trace clock. FIELDS are
the tracepoint's ``TP_printk()`` output, ``key=value`` pairs; pointers (``page=``, ``ptr=``)
are hashed by ``%p`` — the same object always hashes to the same value during one boot, which is
what lets a free be matched to its allocation — and ``call_site=`` may be ``func+0x1/0x2
[module]``, with a space.

Two readers:

- :func:`parse_line` — one line into a :class:`TraceEvent` with every field by name: clear and
  general, for looking at a few lines;
- :func:`iter_records` — the fast path for whole traces: the ten kmem events become small tuples
  (:data:`RECORD_FIELDS` names their slots), other events are only counted, and a line that is
  not an event is counted as malformed with its line number. Neither is ever fatal: a trace
  from another kernel version or with other events enabled still replays.

:func:`iter_records` is written in Python, and its hot path also in C
(``kmmlib/trace/_ftrace.c``, built by ``setup.py`` where there is a C compiler): the way the
standard library has ``json`` and its optional ``_json``. The C module reads the lines laid
out as Linux 6.18 prints them and hands every other line to the Python code, so the records
are the same either way (tests compare the two on real traces and on damaged lines); only the
time differs: the C module takes about a quarter of it (``make bench`` prints both speeds).
:data:`FAST_C` says whether the C module was built, :func:`hot_path` which one runs.

Older kernels print ``pfn=`` in decimal (before 5.14), have ``kmalloc_node``/
``kmem_cache_alloc_node`` (merged into ``kmalloc``/``kmem_cache_alloc`` in 6.1) and a ``cold=``
field on ``mm_page_free_batched``; all are read. ``CPU:N [LOST M EVENTS]`` lines (the ring
buffer overflowed) are added up in :attr:`TraceStats.lost_events`.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import NamedTuple, TextIO

from kmmlib.errors import ParseError

FTRACE_ABI = 1                          # _ftrace.c's ABI: scan(lines, start, counts)
SCAN_LINES = 4096                       # lines handed to the C module at a time


def _load_c(name: str = "kmmlib.trace._ftrace"):
    """The hot path in C, built by setup.py where there is a compiler (optional, as _json is
    for json): the module, or None. A module built from an older _ftrace.c (the source was
    updated, and not rebuilt since) is left aside with a warning, not called wrongly."""
    import importlib

    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if getattr(module, "ABI", None) != FTRACE_ABI:
        import warnings

        warnings.warn(f"{module.__file__} was built from an older kmmlib/trace/_ftrace.c: "
                      "run `make` (or `pip install -e .`) to rebuild it. Traces are parsed in "
                      "pure Python meanwhile (the same records, slower).", stacklevel=2)
        return None
    return module


_ftrace = _load_c()
FAST_C = _ftrace is not None            # whether the C module is built (and up to date)

# The ten kmem events this package replays (the order of the course's tables).
KMEM_EVENTS = ("kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free", "mm_page_free",
               "mm_page_free_batched", "mm_page_alloc", "mm_page_alloc_zone_locked",
               "mm_page_pcpu_drain", "mm_page_alloc_extfrag")
# Before 6.1 the NUMA variants were events of their own with the same fields plus node=.
ALIASES = {"kmalloc_node": "kmalloc", "kmem_cache_alloc_node": "kmem_cache_alloc"}

# Record codes: the first slot of every tuple iter_records() yields.
PAGE_ALLOC, PAGE_FREE, FREE_BATCHED, ZONE_LOCKED, PCPU_DRAIN, EXTFRAG, \
    KMALLOC, KFREE, CACHE_ALLOC, CACHE_FREE = range(10)
CODES = {"mm_page_alloc": PAGE_ALLOC, "mm_page_free": PAGE_FREE,
         "mm_page_free_batched": FREE_BATCHED, "mm_page_alloc_zone_locked": ZONE_LOCKED,
         "mm_page_pcpu_drain": PCPU_DRAIN, "mm_page_alloc_extfrag": EXTFRAG,
         "kmalloc": KMALLOC, "kfree": KFREE, "kmem_cache_alloc": CACHE_ALLOC,
         "kmem_cache_free": CACHE_FREE, "kmalloc_node": KMALLOC,
         "kmem_cache_alloc_node": CACHE_ALLOC}

# What each record holds after (code, timestamp, cpu, task_pid). Pointers stay the strings
# the trace printed (hashed values: only equality means anything); a NULL page is pfn -1.
RECORD_FIELDS = {
    PAGE_ALLOC: ("pfn", "order", "migratetype", "gfp_flags"),
    PAGE_FREE: ("pfn", "order"),
    FREE_BATCHED: ("pfn",),
    ZONE_LOCKED: ("pfn", "order", "migratetype", "percpu_refill"),
    PCPU_DRAIN: ("pfn", "order", "migratetype"),
    EXTFRAG: ("pfn", "alloc_order", "fallback_order", "alloc_migratetype",
              "fallback_migratetype", "change_ownership"),
    KMALLOC: ("ptr", "bytes_req", "bytes_alloc", "gfp_flags", "call_site"),
    KFREE: ("ptr", "call_site"),
    CACHE_ALLOC: ("ptr", "bytes_req", "bytes_alloc", "gfp_flags", "name", "call_site"),
    CACHE_FREE: ("ptr", "name", "call_site"),
}

NULL_PTR = "0000000000000000"       # %p prints NULL (and ERR_PTRs) unhashed
_HEAD = re.compile(r"^\s*(?P<task>.*)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                   r"(?:(?P<flags>\S+)\s+)??(?P<ts>\d+(?:\.\d+)?)$")
_ENTRIES = re.compile(r"entries-in-buffer/entries-written:\s*(\d+)/(\d+)\s+#P:(\d+)")
_LOST = re.compile(r"^CPU:\s*(\d+)\s+\[LOST\s+(\d+)\s+EVENTS\]")
_XZ_MAGIC = b"\xfd7zXZ\x00"
MAX_EXAMPLES = 5


class TraceEvent(NamedTuple):
    """One event line: who (``task``, ``pid``), where (``cpu``), ``flags`` (the irq/preempt
    column, "" when absent), when (``timestamp``, seconds), ``event`` and its ``fields`` by
    name, as strings."""

    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    event: str
    fields: dict[str, str]


def parse_fields(text: str) -> dict[str, str]:
    """``key=value`` pairs of a ``TP_printk()`` line. A word without ``=`` belongs to the value
    before it (``call_site=nf_ct_ext_add+0x54/0x1c0 [nf_conntrack]``)."""
    out: dict[str, str] = {}
    last = None
    for word in text.split():
        key, eq, value = word.partition("=")
        if eq and key:
            out[key] = value
            last = key
        elif last is not None:
            out[last] += " " + word
        else:
            raise ParseError(f"fields {text.strip()!r}: {word!r} is not key=value")
    return out


def _split_head(head: str) -> tuple[str, int, int, str, float]:
    """``TASK-PID [CPU] FLAGS TIMESTAMP`` → (task, pid, cpu, flags, timestamp)."""
    m = _HEAD.match(head)
    if m is None:
        raise ParseError(f"{head.strip()!r} is not 'TASK-PID [CPU] FLAGS TIMESTAMP'")
    return (m["task"].strip(), int(m["pid"]), int(m["cpu"]), m["flags"] or "", float(m["ts"]))


def parse_line(line: str) -> TraceEvent | None:
    """One line of ftrace text output: a :class:`TraceEvent`, or None for a comment, a blank
    line or a lost-events marker. Anything else that is not an event raises ParseError."""
    text = line.rstrip("\n")
    if not text.strip() or text.lstrip().startswith("#") or _LOST.match(text.strip()):
        return None
    head, sep, rest = text.partition(": ")
    event, sep2, fields = rest.partition(":")
    if not sep or not sep2 or not event.isidentifier():
        raise ParseError(f"{text.strip()!r} is not an ftrace event line "
                         "('TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS')")
    task, pid, cpu, flags, ts = _split_head(head)
    return TraceEvent(task, pid, cpu, flags, ts, event, parse_fields(fields))


@dataclass
class TraceStats:
    """What reading a trace found, besides the events themselves.

    ``events`` counts every event line by its name as printed (kmem or not); ``unknown`` the
    events that are not kmem events (counted, not replayed); ``malformed`` the lines that are
    not events at all, with up to five ``(line number, text)`` examples; ``lost_events`` the
    sum of ``[LOST n EVENTS]`` markers; ``header`` what the ``#`` lines said (``tracer``,
    ``entries_in_buffer``, ``entries_written``, ``nr_cpus``) and ``notes`` comment lines of
    ours (``# kmm-course: …``, e.g. how a bundled trace was trimmed)."""

    events: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)
    malformed: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    lost_events: int = 0
    lines: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    header: dict[str, int | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def nr_events(self) -> int:
        return sum(self.events.values())

    @property
    def duration(self) -> float:
        """Seconds of trace clock between the first and the last event (ftrace writes events
        in time order; a file whose last event is older than its first counts as 0 s)."""
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return max(0.0, self.last_ts - self.first_ts)

    @property
    def overwritten(self) -> int:
        """Events the ring buffer dropped before the trace was read: entries-written minus
        entries-in-buffer (0 when the header does not say)."""
        w, b = self.header.get("entries_written"), self.header.get("entries_in_buffer")
        return max(0, int(w) - int(b)) if w is not None and b is not None else 0

    def bad_line(self, lineno: int, text: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MAX_EXAMPLES:
            self.malformed_examples.append((lineno, text.rstrip("\n")[:200]))

    def comment(self, text: str) -> None:
        """Read what a ``#`` line says about the trace."""
        body = text.lstrip("# \t").rstrip()
        if body.startswith("tracer:"):
            self.header["tracer"] = body.split(":", 1)[1].strip()
        elif body.startswith("kmm-course:"):
            self.notes.append(body.split(":", 1)[1].strip())
        else:
            m = _ENTRIES.search(body)
            if m:
                self.header.update(entries_in_buffer=int(m[1]), entries_written=int(m[2]),
                                   nr_cpus=int(m[3]))

    def merge(self, other: TraceStats) -> None:
        """Add what reading more of a trace found (``other``): counts add up, malformed-line
        examples fill up to five (with the line numbers the other reader gave them), the
        first timestamp stays, the last is the other's."""
        self.events.update(other.events)
        self.unknown.update(other.unknown)
        self.malformed += other.malformed
        room = MAX_EXAMPLES - len(self.malformed_examples)
        self.malformed_examples.extend(other.malformed_examples[:max(room, 0)])
        self.lost_events += other.lost_events
        self.lines += other.lines
        if self.first_ts is None:
            self.first_ts = other.first_ts
        if other.last_ts is not None:
            self.last_ts = other.last_ts
        self.header.update(other.header)
        self.notes.extend(other.notes)

    def as_dict(self) -> dict:
        return {"lines": self.lines, "events": dict(self.events), "unknown": dict(self.unknown),
                "malformed": self.malformed,
                "malformed_examples": [list(e) for e in self.malformed_examples],
                "lost_events": self.lost_events, "overwritten": self.overwritten,
                "first_ts": self.first_ts, "last_ts": self.last_ts,
                "duration": round(self.duration, 6), "header": dict(self.header),
                "notes": list(self.notes)}


def open_trace(path: str | os.PathLike | TextIO) -> TextIO:
    """A text stream over a trace: a path to plain text or to xz (recognised by its magic
    bytes, whatever the name), ``-`` for stdin, or an open text stream (returned as is)."""
    if isinstance(path, io.TextIOBase) or hasattr(path, "readline"):
        return path  # type: ignore[return-value]
    if str(path) == "-":
        import sys
        return sys.stdin
    p = Path(path)
    try:
        with p.open("rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise ParseError(f"{p}: no such trace file") from None
    except IsADirectoryError:
        raise ParseError(f"{p}: is a directory, not a trace file") from None
    if magic == _XZ_MAGIC:
        import lzma
        return lzma.open(p, "rt", encoding="utf-8", errors="replace")
    return p.open("r", encoding="utf-8", errors="replace")


class TraceLines:
    """The lines of a trace, for ``with TraceLines(path) as lines: for line in lines``.

    An xz file is decompressed by a background thread, a megabyte at a time, while the caller
    parses: liblzma releases the GIL, so on a machine with two CPUs decompression costs the
    replay almost nothing. Plain files and open streams are read directly."""

    CHUNK = 1 << 20

    def __init__(self, path: str | os.PathLike | TextIO, *, threaded: bool = True):
        self._stream = open_trace(path)
        self._own = self._stream is not path and str(path) != "-"     # never close stdin
        self._thread = None
        self._stop = None
        import lzma
        raw = getattr(self._stream, "buffer", None)
        self.threaded = threaded and isinstance(raw, lzma.LZMAFile)

    def __enter__(self) -> TraceLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        if not self.threaded:
            return iter(self._stream)
        import itertools
        import queue
        import threading

        q: queue.Queue = queue.Queue(maxsize=8)
        self._stop = stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def reader() -> None:
            rest = ""
            try:
                while not stop.is_set():
                    chunk = self._stream.read(self.CHUNK)
                    if not chunk:
                        break
                    lines = (rest + chunk).split("\n")
                    rest = lines.pop()
                    if not put(lines):
                        return
                if rest:
                    put([rest])
            except BaseException as err:       # handed to the reading thread
                put(err)
            finally:
                put(None)

        def chunks() -> Iterator[list[str]]:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        self._thread = threading.Thread(target=reader, name="kmm-trace-reader", daemon=True)
        self._thread.start()
        return itertools.chain.from_iterable(chunks())

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._own:
            self._stream.close()


def _int(s: str) -> int:
    """A number as TP_printk prints it: decimal, or hex with 0x."""
    return int(s, 0) if s[:2] == "0x" else int(s)


class _Field(dict):
    """Token → value for one field, e.g. ``"order=3"`` → 3: each distinct token of a trace is
    converted once, then looked up (a trace repeats the same few orders, types, sizes, names
    and GFP strings hundreds of thousands of times). A token without the expected ``key=``
    raises KeyError, which sends its line the careful way. ``limit`` bounds a field whose
    values do not repeat much (pfns)."""

    def __init__(self, key: str, conv=str, limit: int = 0):
        super().__init__()
        self.key, self.n, self.conv, self.limit = key, len(key), conv, limit

    def __missing__(self, token: str):
        if token[:self.n] != self.key:
            raise KeyError(token)
        if self.limit and len(self) >= self.limit:
            self.clear()
        value = self[token] = self.conv(token[self.n:])
        return value


class _Cpus(dict):
    """``"[001]"`` → 1; any other token raises KeyError (not the default layout)."""

    def __missing__(self, token: str) -> int:
        if token[:1] != "[" or token[-1:] != "]" or not token[1:-1].isdigit():
            raise KeyError(token)
        value = self[token] = int(token[1:-1])
        return value


class _Tasks(dict):
    """``"bash-2355"`` → itself, once checked to end in ``-PID``; else KeyError."""

    def __missing__(self, token: str) -> str:
        _, dash, pid = token.rpartition("-")
        if not dash or not pid.isdigit():
            raise KeyError(token)
        self[token] = token
        return token



def _pfn(text: str) -> int:
    """``pfn=`` as TP_printk prints it: hex with 0x since 5.14 ("Unify PFN format strings"),
    decimal before."""
    return int(text[2:], 16) if text[:2] == "0x" else int(text)


def hot_path() -> str:
    """Which reader runs :func:`iter_records`' hot path: ``"C"`` or ``"Python"``."""
    return "C" if _ftrace is not None else "Python"


def iter_records(lines: Iterable[str], stats: TraceStats | None = None) -> Iterator[tuple]:
    """The kmem events of a trace as tuples ``(code, timestamp, cpu, task_pid, *fields)``
    (:data:`RECORD_FIELDS`), counting everything into ``stats``.

    The hot path splits a line once at whitespace and reads the tokens by position (a trace
    holds hundreds of thousands of lines, so every operation per line shows): ``TASK-PID``,
    ``[CPU]``, ``FLAGS``, ``TIMESTAMP:``, ``EVENT:``, then the fields. The numbers and
    names (pfn, order, migratetype, sizes, GFP flags, cache name) are looked up in a
    :class:`_Field` table that converts a token the first time it is seen and checks its
    ``key=``; pointers and call sites are taken by place (their layout is checked through
    their neighbours). The events are tested most frequent first. A line laid out
    differently — a task name with a space, no flags column, another kernel's fields or event
    names, a module symbol in ``call_site`` — is re-read by name (:func:`_careful_record`),
    and a line that still does not fit is counted as malformed. Nothing here raises for bad
    input.

    When the C module ``kmmlib.trace._ftrace`` was built (:data:`FAST_C`), it reads the lines
    of the hot path, a few thousand at a time, and gives each line to the Python code here
    only when it cannot read it: the records and the stats are the same, in a quarter of the
    time. (It takes lines from ``lines`` up to :data:`SCAN_LINES` ahead of the records it has
    given: a caller that stops early and goes on reading the same iterator finds them gone.)"""
    reader = _LineReader(stats)
    try:
        if _ftrace is None:
            read = reader.read
            for line in lines:
                rec = read(line)
                if rec is not None:
                    yield rec
            return
        by_code = reader.by_code
        for piece in _scanned(lines, reader):
            if piece.__class__ is tuple:                # a record read in Python
                yield piece
            elif piece is not None:                     # a run of records read in C
                given = iter(piece)
                try:
                    yield from given
                finally:
                    # Counted when scanned: take back what the consumer did not get, when it
                    # stopped early, so that the stats hold exactly the lines it was given.
                    rest = list(given)
                    if rest:
                        reader.lineno -= len(rest)
                        for rec in rest:
                            by_code[rec[0]] -= 1
                        reader.last = piece[-len(rest) - 1][1]
    finally:
        # Written back once, also when the consumer stops early.
        reader.done()


def record_batches(lines: Iterable[str], stats: TraceStats | None = None
                   ) -> Iterator[list[tuple]]:
    """:func:`iter_records`' records, a list for each :data:`SCAN_LINES` lines read (empty
    lists left out): for a consumer that takes them all, this saves handing on each record by
    itself. The stats count every line read when a list is given, the same with the C module
    and without. An error while reading the lines (a damaged xz file) comes after the list of
    the lines read before it."""
    reader = _LineReader(stats)
    try:
        if _ftrace is None:
            read = reader.read
            for batch in _line_batches(lines):
                out = [rec for rec in map(read, batch) if rec is not None]
                if out:
                    yield out
            return
        out = []
        for piece in _scanned(lines, reader):
            if piece is None:                           # the end of a batch of lines
                if out:
                    yield out
                    out = []
            elif piece.__class__ is tuple:
                out.append(piece)
            else:
                out += piece
    finally:
        reader.done()


def _line_batches(lines: Iterable[str]) -> Iterator[list[str]]:
    """Lists of :data:`SCAN_LINES` lines (the last shorter). When reading the lines fails,
    the lines read before the error come first, then the error."""
    it = iter(lines)
    while True:
        batch: list[str] = []
        try:
            batch.extend(islice(it, SCAN_LINES))    # keeps what was read before an error
        except Exception:
            if batch:
                yield batch
            raise
        if not batch:
            return
        yield batch


def _scanned(lines: Iterable[str], reader: _LineReader) -> Iterator[list[tuple] | tuple | None]:
    """The records with the C module, in order: a list for each run of lines it reads (one
    record per line, counted here), a tuple for each record of a line ``reader`` reads, and
    None after each batch of lines. A line the C module refuses goes to ``reader``; when it
    keeps refusing (a trace from another kernel, task names in UTF-8), runs of lines twice as
    long each time go to ``reader`` before it is asked again. Lines are read a batch ahead
    of the records given."""
    scan = _ftrace.scan
    read = reader.read
    by_code = reader.by_code
    run = 1                         # lines for Python after a refusal
    for batch in _line_batches(lines):
        i, end = 0, len(batch)
        while i < end:
            recs, stop = scan(batch, i, by_code)
            if recs:
                if reader.first is None:
                    reader.first = recs[0][1]
                reader.lineno += len(recs)
                reader.last = recs[-1][1]
                run = 1
                yield recs
            elif stop < end:
                run = min(2 * run, SCAN_LINES)
            i = min(stop + run, end)
            for line in batch[stop:i]:
                rec = read(line)
                if rec is not None:
                    yield rec
        yield None


class _LineReader:
    """The Python reading of one line at a time, and the counts of a whole trace
    (:func:`iter_records`). ``read(line)`` gives the line's record, or None for a line that
    is not a kmem event (counted in the stats); :meth:`done` writes the counts back."""

    def __init__(self, stats: TraceStats | None):
        self.stats = stats if stats is not None else TraceStats()   # one of its own, if none
        self.by_code = [0] * len(KMEM_EVENTS)       # fast-path events, by record code
        self.careful: dict[str, int] = {}           # the others, by name as printed
        self.lineno = 0
        self.first = self.last = None
        self.read = self._reader()

    def _reader(self) -> Callable[[str], tuple | None]:
        """The function that reads a line: a closure, so that its tables are locals."""
        stats, by_code, careful = self.stats, self.by_code, self.careful
        codes = _FAST_CODES
        cpus, tasks = _Cpus(), _Tasks()
        site = _Field("call_site=")
        order, mtype, gfp_flags = _Field("order=", int), _Field("migratetype=", int), \
            _Field("gfp_flags=")
        name_, bytes_req, bytes_alloc = _Field("name="), _Field("bytes_req=", int), \
            _Field("bytes_alloc=", int)
        # A pfn repeats less than the others (alloc, free, alloc again): at most 128k cached,
        # a dozen MiB, before the table starts afresh.
        refill, pfn_ = _Field("percpu_refill=", int), _Field("pfn=", _pfn, limit=1 << 17)
        # %p of NULL: zeros since 5.7, "(null)" up to 5.1.
        null_pages = {"page=" + NULL_PTR, "page=(null)"}
        ts_token, ts = "", 0.0                      # events come in bursts of one timestamp

        def read(line: str) -> tuple | None:
            nonlocal ts_token, ts
            self.lineno += 1
            t = line.split()
            try:
                # The event token in the fifth place and "[CPU]" in the second: the default
                # layout (the timestamp is checked by float() below).
                code = codes[t[4]]
                cpu = cpus[t[1]]
                task = tasks[t[0]]
                if t[3] != ts_token:
                    # SECONDS[.MICROSECONDS]: digits only, as _HEAD has it (float() would also
                    # take "nan", "1e3" or "1_0").
                    s = t[3][:-1]
                    if t[3][-1] != ":" or not s.replace(".", "", 1).isdigit() or \
                            s[0] == "." or s[-1] == ".":
                        raise ValueError(t[3])
                    ts = float(s)
                    ts_token = t[3]
                n = len(t)
                # Linux 6.18's TP_printk() layouts.
                if code == 0 and n == 10:                                   # mm_page_alloc
                    rec = (0, ts, cpu, task, -1 if t[5] in null_pages else pfn_[t[6]],
                           order[t[7]], mtype[t[8]], gfp_flags[t[9]])
                elif code == 8 and n == 13 and t[6][:4] == "ptr=" and \
                        t[11][:5] == "node=" and t[12][:10] == "accounted=":  # kmem_cache_alloc
                    rec = (8, ts, cpu, task, t[6][4:], bytes_req[t[8]], bytes_alloc[t[9]],
                           gfp_flags[t[10]], name_[t[7]], site[t[5]])
                elif code == 3 and n == 10:                         # mm_page_alloc_zone_locked
                    rec = (3, ts, cpu, task, pfn_[t[6]], order[t[7]], mtype[t[8]],
                           refill[t[9]])
                elif code == 1 and n == 8:                                  # mm_page_free
                    rec = (1, ts, cpu, task, pfn_[t[6]], order[t[7]])
                elif code == 9 and n == 8 and t[6][:4] == "ptr=":           # kmem_cache_free
                    rec = (9, ts, cpu, task, t[6][4:], name_[t[7]], site[t[5]])
                elif code == 2 and n == 8:                                  # free_batched
                    rec = (2, ts, cpu, task, pfn_[t[6]])
                elif code == 7 and n == 7 and t[6][:4] == "ptr=":           # kfree
                    rec = (7, ts, cpu, task, t[6][4:], site[t[5]])
                elif code == 4 and n == 9:                                  # mm_page_pcpu_drain
                    rec = (4, ts, cpu, task, pfn_[t[6]], order[t[7]], mtype[t[8]])
                elif code == 6 and n == 12 and t[6][:4] == "ptr=" and \
                        t[10][:5] == "node=" and t[11][:10] == "accounted=":  # kmalloc
                    rec = (6, ts, cpu, task, t[6][4:], bytes_req[t[7]], bytes_alloc[t[8]],
                           gfp_flags[t[9]], site[t[5]])
                else:
                    raise IndexError
                by_code[code] += 1
            except (IndexError, KeyError, ValueError):
                ts_token = ""
                if line[:1] == "#" or not t:
                    _odd_line(line, self.lineno, stats)
                    return None
                try:
                    ev, ts, rec = _careful_record(line)
                except (IndexError, KeyError, ValueError, ParseError):
                    _odd_line(line, self.lineno, stats)
                    return None
                if rec is None:
                    stats.unknown[ev] += 1
                careful[ev] = careful.get(ev, 0) + 1
            if self.first is None:
                self.first = ts
            self.last = ts
            return rec

        return read

    def done(self) -> None:
        """Add the counts to the stats (once)."""
        stats = self.stats
        stats.events.update({_CODE_NAMES[c]: n for c, n in enumerate(self.by_code) if n})
        stats.events.update(self.careful)
        if stats.first_ts is None:
            stats.first_ts = self.first
        if self.last is not None:
            stats.last_ts = self.last
        stats.lines += self.lineno
        self.by_code[:] = [0] * len(self.by_code)
        self.careful.clear()
        self.lineno = 0


# Event tokens the fast path reads (with their colon); the pre-6.1 *_node aliases go the
# careful way, so that the fast path can count by record code.
_FAST_CODES = {name + ":": code for name, code in CODES.items() if name not in ALIASES}
_CODE_NAMES = {code: name for name, code in CODES.items() if name not in ALIASES}


def _careful_record(line: str) -> tuple[str, float, tuple | None]:
    """(event, timestamp, record or None for a non-kmem event) of a line the fast path could
    not read; raises ParseError (or KeyError/ValueError) when it is not an event line."""
    head, sep, rest = line.partition(": ")
    ev, sep2, fields = rest.partition(": ")
    if not sep or not sep2:
        ev, sep2, fields = rest.rstrip("\n").partition(":")
    if not sep or not sep2 or not ev.isidentifier():
        raise ParseError("not an event line")
    task, pid, cpu, _, ts = _split_head(head)
    code = CODES.get(ev)
    if code is None:
        return ev, ts, None
    return ev, ts, _slow_record(code, ts, cpu, f"{task}-{pid}", fields)


def _odd_line(line: str, lineno: int, stats: TraceStats) -> None:
    """A line that is not ``HEAD: EVENT: FIELDS``: a comment, a blank, a lost-events marker,
    or malformed."""
    if line[:1] == "#":
        stats.comment(line)
        return
    s = line.strip()
    if not s:
        return
    m = _LOST.match(s)
    if m:
        stats.lost_events += int(m[2])
        return
    stats.bad_line(lineno, line)


def _slow_record(code: int, ts: float, cpu: int, task_pid: str, fields: str) -> tuple:
    """A kmem event whose fields are not in 6.18's layout: read them by name."""
    d = parse_fields(fields)
    if code == PAGE_ALLOC:
        null = d.get("page") in (NULL_PTR, "(null)")
        return (0, ts, cpu, task_pid, -1 if null else _int(d["pfn"]), int(d["order"]),
                int(d["migratetype"]), d["gfp_flags"])
    if code == PAGE_FREE:
        return (1, ts, cpu, task_pid, _int(d["pfn"]), int(d["order"]))
    if code == FREE_BATCHED:
        return (2, ts, cpu, task_pid, _int(d["pfn"]))
    if code == ZONE_LOCKED:
        refill = d.get("percpu_refill", "1" if d["order"] == "0" else "0")
        return (3, ts, cpu, task_pid, _int(d["pfn"]), int(d["order"]), int(d["migratetype"]),
                int(refill))
    if code == PCPU_DRAIN:
        return (4, ts, cpu, task_pid, _int(d["pfn"]), int(d["order"]), int(d["migratetype"]))
    if code == EXTFRAG:
        return (5, ts, cpu, task_pid, _int(d["pfn"]), int(d["alloc_order"]),
                int(d["fallback_order"]), int(d["alloc_migratetype"]),
                int(d["fallback_migratetype"]), int(d["change_ownership"]))
    if code == KMALLOC:
        return (6, ts, cpu, task_pid, d["ptr"], int(d["bytes_req"]), int(d["bytes_alloc"]),
                d["gfp_flags"], d["call_site"])
    if code == KFREE:
        return (7, ts, cpu, task_pid, d["ptr"], d["call_site"])
    if code == CACHE_ALLOC:
        return (8, ts, cpu, task_pid, d["ptr"], int(d["bytes_req"]), int(d["bytes_alloc"]),
                d["gfp_flags"], d.get("name"), d["call_site"])
    return (9, ts, cpu, task_pid, d["ptr"], d.get("name"), d["call_site"])


def read_trace(path: str | os.PathLike | TextIO) -> tuple[list[tuple], TraceStats]:
    """Every kmem record of a trace file (plain or xz) and what reading it found."""
    stats = TraceStats()
    with TraceLines(path) as lines:
        records = [rec for batch in record_batches(lines, stats) for rec in batch]
    return records, stats


__all__ = ["ALIASES", "CODES", "FAST_C", "KMEM_EVENTS", "RECORD_FIELDS", "TraceEvent",
           "TraceLines", "TraceStats", "hot_path", "iter_records", "open_trace", "parse_fields",
           "parse_line", "read_trace", "record_batches"]

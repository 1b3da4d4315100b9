"""Trace replay speed (issue 9): events per second and the real-time factor.

The bundled trace (60,000 real events, 0.775 s of the kernel's time) is replayed end to end —
xz decompression, parsing and simulating every page and slab event — on the snapshot's machine;
the figure is the median of five runs (wall clock, machine building excluded), since timings on
a shared machine are noisy. ``Replay.run`` reads the trace in a child process while it replays
(:mod:`kmmlib.trace.pipeline`) when the machine has two CPUs; a row "in one process" measures
the same without the child, for comparison. The real-time factor is the trace's seconds over
the replay's: above 1, the simulator replays faster than the kernel ran. A row times the
simulation alone on records parsed beforehand, two the parsing alone (the text decompressed
beforehand), with the C module (``kmmlib/trace/_ftrace.c``) and in pure Python. When the full
442,442-event trace from ``../shared/data`` is present (the project's build machine), it is
measured too and its rows say so.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

FULL_TRACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / \
    "kmem-trace.txt.xz"
TARGET = 300_000
RUNS = 5


def _end_to_end(path, runs: int = RUNS, parallel: bool | None = None
                ) -> tuple[float, float, int, bool]:
    """Median seconds, the trace's seconds, the number of events, and whether a child
    process read the trace."""
    from kmmlib.trace.replay import Replay

    times = []
    for _ in range(runs):
        rp = Replay()
        rp.run(path, parallel=parallel)
        times.append(rp.wall)
    return statistics.median(times), rp.stats.duration, rp.stats.nr_events, rp.parallel


def _rows(path, name: str, runs: int) -> list[dict]:
    secs, trace_secs, n, child = _end_to_end(path, runs)
    rate = n / secs
    how = "read by a child process" if child else "read in one process (pipeline.can_fork: no)"
    rows = [{"benchmark": f"trace replay end to end, {name} ({n} events, .xz), {how}, "
                          f"median of {runs}", "value": round(rate), "unit": "events/s",
             "target": f">= {TARGET}", "ok": rate >= TARGET},
            {"benchmark": f"real-time factor, {name} ({trace_secs:.3f} s of kernel time)",
             "value": round(trace_secs / secs, 2), "unit": "x", "target": ">= 1",
             "ok": trace_secs / secs >= 1}]
    if child:
        secs1, _, _, _ = _end_to_end(path, runs, parallel=False)
        rows.append({"benchmark": f"trace replay end to end, {name}, in one process",
                     "value": round(n / secs1), "unit": "events/s", "target": "(report only)",
                     "ok": True})
    return rows


def _simulate_only(path, runs: int = RUNS) -> float:
    from kmmlib.trace.parse import read_trace
    from kmmlib.trace.replay import Replay

    records, _ = read_trace(path)
    times = []
    for _ in range(runs):
        rp = Replay()
        t = time.perf_counter()
        rp.feed(records)
        times.append(time.perf_counter() - t)
    return len(records) / statistics.median(times)


def _parse_only(path, runs: int = RUNS) -> dict[str, float]:
    """Lines per second of iter_records() on text decompressed beforehand: with the C module
    (when it is built) and in pure Python."""
    import lzma

    from kmmlib.trace import parse

    lines = lzma.open(path, "rt").read().split("\n")
    out = {}
    built = parse._ftrace
    for name, module in (("C", built), ("Python", None)):
        if name == "C" and module is None:
            continue
        parse._ftrace = module
        try:
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                for _ in parse.iter_records(lines):
                    pass
                times.append(time.perf_counter() - t)
        finally:
            parse._ftrace = built
        out[name] = len(lines) / statistics.median(times)
    return out


def _build() -> float:
    from kmmlib.trace.replay import Replay

    times = []
    for _ in range(3):
        t = time.perf_counter()
        Replay()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run() -> list[dict]:
    from kmmlib.trace.capture import bundled_trace

    rows = _rows(bundled_trace(), "bundled trace", RUNS)
    sim = _simulate_only(bundled_trace())
    rows.append({"benchmark": "trace replay, simulation only (records parsed beforehand)",
                 "value": round(sim), "unit": "events/s", "target": "(report only)",
                 "ok": True})
    for name, rate in _parse_only(bundled_trace()).items():
        rows.append({"benchmark": f"trace parsing only, hot path in {name} (bundled trace, "
                                  "text decompressed beforehand)",
                     "value": round(rate), "unit": "lines/s", "target": "(report only)",
                     "ok": True})
    rows.append({"benchmark": "build the snapshot machine for replay (3 zones + slab pool)",
                 "value": round(_build(), 3), "unit": "s", "target": "(report only)",
                 "ok": True})
    if FULL_TRACE.exists():
        rows += _rows(FULL_TRACE, "FULL trace from ../shared", 3)
    return rows

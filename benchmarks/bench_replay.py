"""Trace replay speed (issue 9): events per second and the real-time factor.

The bundled trace (60,000 real events, 0.775 s of the kernel's time) is replayed end to end —
xz decompression, parsing and simulating every page and slab event — on the snapshot's machine;
the figure is the median of five runs (wall clock, machine building excluded), since timings on
a shared machine are noisy. The real-time factor is the trace's seconds over the replay's: above
1, the simulator replays faster than the kernel ran. A second row times the simulation alone on
records parsed beforehand. When the full 442,442-event trace from ``../shared/data`` is present
(the project's build machine), it is measured too and its rows say so.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

FULL_TRACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / \
    "kmem-trace.txt.xz"
TARGET = 300_000
RUNS = 5


def _end_to_end(path, runs: int = RUNS) -> tuple[float, float, int]:
    """Median seconds, the trace's seconds and the number of events."""
    from kmmlib.trace.replay import Replay

    times = []
    for _ in range(runs):
        rp = Replay()
        rp.run(path)
        times.append(rp.wall)
    return statistics.median(times), rp.stats.duration, rp.stats.nr_events


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

    rows = []
    secs, trace_secs, n = _end_to_end(bundled_trace())
    rate = n / secs
    rows.append({"benchmark": f"trace replay end to end, bundled trace ({n} events, .xz), "
                              "median of 5", "value": round(rate), "unit": "events/s",
                 "target": f">= {TARGET}", "ok": rate >= TARGET})
    rows.append({"benchmark": f"real-time factor, bundled trace ({trace_secs:.3f} s of kernel "
                              "time)", "value": round(trace_secs / secs, 2), "unit": "x",
                 "target": ">= 1", "ok": trace_secs / secs >= 1})
    sim = _simulate_only(bundled_trace())
    rows.append({"benchmark": "trace replay, simulation only (records parsed beforehand)",
                 "value": round(sim), "unit": "events/s", "target": "(report only)",
                 "ok": True})
    rows.append({"benchmark": "build the snapshot machine for replay (3 zones + slab pool)",
                 "value": round(_build(), 3), "unit": "s", "target": "(report only)",
                 "ok": True})
    if FULL_TRACE.exists():
        secs, trace_secs, n = _end_to_end(FULL_TRACE, runs=3)
        rate = n / secs
        rows.append({"benchmark": f"trace replay end to end, FULL trace from ../shared ({n} "
                                  "events), median of 3", "value": round(rate),
                     "unit": "events/s", "target": f">= {TARGET}", "ok": rate >= TARGET})
        rows.append({"benchmark": f"real-time factor, FULL trace ({trace_secs:.2f} s of kernel "
                                  "time)", "value": round(trace_secs / secs, 2), "unit": "x",
                     "target": ">= 1", "ok": trace_secs / secs >= 1})
    return rows

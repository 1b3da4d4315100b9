"""Stepping through a trace one kernel request at a time (the model under chapter 09's widget).

:class:`TraceStepModel` replays the page events of a trace, one per :meth:`apply`, into the
snapshot machine's Normal zone — the zone every page of the bundled trace came from — and the
simulator narrates what it did for each: which per-cpu list it took from, when it refilled one
with a batch from the buddy lists (what the kernel's ``mm_page_alloc_zone_locked`` events
show), which blocks it split and merged. It follows the :class:`~kmmlib.stepper.Stepper`
protocol (``events``, ``apply``, ``render``), so :func:`stepper_for` gives ``step()``,
``back()``, ``reset()`` and ``state_text()``, and the widget in :mod:`kmmlib.widgets.trace`
is a thin layer over it.

Simplified: one zone, and no slab events (their pages come from a pool of their own).
"""

from __future__ import annotations

from kmmlib.mm.migratetype import migratetype_names
from kmmlib.trace.parse import (
    FREE_BATCHED,
    PAGE_ALLOC,
    PAGE_FREE,
    PCPU_DRAIN,
    ZONE_LOCKED,
    TraceLines,
    iter_records,
)
from kmmlib.trace.replay import Replay

PAGE_CODES = (PAGE_ALLOC, PAGE_FREE, FREE_BATCHED, ZONE_LOCKED, PCPU_DRAIN)
_NAMES = {PAGE_ALLOC: "mm_page_alloc", PAGE_FREE: "mm_page_free",
          FREE_BATCHED: "mm_page_free_batched", ZONE_LOCKED: "mm_page_alloc_zone_locked",
          PCPU_DRAIN: "mm_page_pcpu_drain"}


def page_records(path, n: int = 200, *, skip: int = 0) -> list[tuple]:
    """The first ``n`` page-allocator records of a trace (after ``skip`` of them)."""
    out: list[tuple] = []
    with TraceLines(path) as lines:
        for rec in iter_records(lines):
            if rec[0] in PAGE_CODES:
                if skip:
                    skip -= 1
                    continue
                out.append(rec)
                if len(out) >= n:
                    break
    return out


def describe_record(rec: tuple) -> str:
    """A record as one line: who, where, what the kernel did."""
    code, ts, cpu, task = rec[:4]
    head = f"{ts:.6f} {task.strip()} cpu{cpu} {_NAMES.get(code, code)}"
    if code == PAGE_ALLOC:
        _, _, _, _, pfn, order, mt, gfp = rec
        return f"{head} order {order} {migratetype_names[mt]} {gfp}: kernel pfn {pfn:#x}"
    if code == PAGE_FREE:
        return f"{head} order {rec[5]}: kernel pfn {rec[4]:#x}"
    if code == ZONE_LOCKED:
        return (f"{head} order {rec[5]} {migratetype_names[rec[6]]}: the kernel took pfn "
                f"{rec[4]:#x} from its buddy lists" + (" (a per-cpu refill)" if rec[7] else ""))
    if code == PCPU_DRAIN:
        return f"{head} order {rec[5]}: the kernel drained pfn {rec[4]:#x} from a per-cpu list"
    return f"{head}: pfn {rec[4]:#x} (the second report of a free)"


class TraceStepModel:
    """One zone of the traced machine, replaying one page record per :meth:`apply`."""

    def __init__(self, machine: str = "x86_64-snapshot", zone: str = "Normal"):
        self.replay = Replay(machine, slab=False, zones=(zone,))
        self.zone = self.replay.zones[0]
        self.events = self.zone.events

    def apply(self, rec: tuple) -> str:
        """Replay one record; returns what the simulator answered."""
        code = rec[0]
        known = self.replay._live.get(rec[4]) if code == PAGE_FREE else None
        self.replay.feed([rec])
        if code == PAGE_ALLOC:
            got = self.replay._live.get(rec[4])
            return f"simulator pfn {got[1]:#x}" if got else "simulator: no page (NULL)"
        if code == PAGE_FREE:
            return (f"simulator frees pfn {known[1]:#x}" if known else
                    "allocated before the trace began: nothing to free in the simulator")
        return "counted: the simulator does this by itself"

    def render(self) -> str:
        z = self.zone
        rp = self.replay
        pcp = ", ".join(f"cpu{i} {p.count} pages" for i, p in enumerate(z.pcp))
        return "\n".join([
            z.buddyinfo_line().rstrip("\n"),
            f"per-cpu lists: {pcp}; {z.nr_free_pages} pages free in the buddy lists",
            f"so far — buddy takes: kernel {sum(rp.traced_takes)}, simulator {z.buddy_takes};"
            f" pages drained: kernel {rp.traced_drained}, simulator {z.drained_pages}",
        ])


def stepper_for(records: list[tuple], machine: str = "x86_64-snapshot"):
    """A :class:`~kmmlib.stepper.Stepper` over ``records`` (see :func:`page_records`)."""
    from kmmlib.stepper import Stepper

    return Stepper(lambda: TraceStepModel(machine), records, describe=describe_record,
                   checkpoint_every=64)

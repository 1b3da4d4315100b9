"""Pictures for chapter 02: a process's VMAs and their pages, the counters over time, and
what the OOM killer's badness is made of. Imports matplotlib; the data comes from
:mod:`kmmlib.userspace.process` and :mod:`kmmlib.userspace.oom`."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap

from kmmlib.userspace.oom import LONG_MIN, OomTask, oom_badness, select_bad_process
from kmmlib.userspace.process import PAGE_SHIFT, PAGE_SIZE, MmStruct

_STATES = ListedColormap(["#eeeeee", "#9ecae1", "#3182bd"])   # none, zero page, own page


def page_states(mm: MmStruct, vma, step: int = 1) -> list[int]:
    """For each page of the VMA (or each bin of ``step`` pages): 0 not present, 1 the zero
    page, 2 a page of its own (the most present state in the bin)."""
    n = vma.pages
    states = [0] * (-(-n // step))
    zero = mm.system.zero_pfn
    for a, table, i in mm._iter_ptes(vma.vm_start, vma.vm_end):
        pfn = (table.entries[i] >> PAGE_SHIFT) & ((1 << 40) - 1)
        k = ((a - vma.vm_start) >> PAGE_SHIFT) // step
        states[k] = max(states[k], 1 if pfn == zero else 2)
    return states


def plot_address_space(mm: MmStruct, ax=None, max_cells: int = 512):
    """One row per VMA, one cell per page: light grey not present (only promised), light blue the
    shared zero page (read, never written), blue a page of its own (counted in RSS)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * max(1, len(mm.vmas))))
    if not mm.vmas:
        ax.text(0.5, 0.5, "no VMAs: an empty address space", ha="center", va="center")
        ax.set_axis_off()
        return ax
    step = max(1, -(-max(v.pages for v in mm.vmas) // max_cells))   # one scale for all rows
    width = max(-(-v.pages // step) for v in mm.vmas) * step           # in pages
    for row, v in enumerate(reversed(mm.vmas)):
        cells = page_states(mm, v, step)
        ax.imshow([cells], cmap=_STATES, vmin=0, vmax=2, aspect="auto",
                  extent=(0, len(cells) * step, row, row + 0.8), interpolation="nearest")
        ax.text(width + 1, row + 0.4, f"{v} {v.pages * PAGE_SIZE >> 10} kB", va="center",
                fontsize=8, family="monospace")
    ax.set_xlim(0, width * 1.6)
    ax.set_ylim(0, len(mm.vmas))
    ax.set_yticks([])
    ax.set_xlabel("page of the VMA" if step == 1 else f"page of the VMA (one cell = {step} pages)")
    ax.set_title(f"{mm.task.comm}: VSZ {mm.total_vm << 2} kB, RSS {mm.get_mm_rss() << 2} kB")
    return ax


def plot_counters(rows: Sequence[dict], keys: Sequence[str] = ("VSZ", "RSS", "committed"),
                  ax=None):
    """The counters of :meth:`MmStruct.counters` (kB) after each step; ``rows`` are dicts
    with a ``"step"`` label and the keys."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.2))
    x = range(len(rows))
    styles = ["-", "--", ":", "-."]
    for k, key in enumerate(keys):
        ax.step(x, [r[key] / 1024 for r in rows], where="post", label=key,
                linewidth=2.5 - 0.5 * k, linestyle=styles[k % len(styles)])
    ax.set_xticks(list(x), [r["step"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("MiB")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_badness(tasks: Sequence[OomTask], totalpages: int, ax=None):
    """Each task's badness as stacked terms (rss, swap, page tables) plus the oom_score_adj
    shift; the victim ``select_bad_process()`` picks is outlined in red."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    victim, _ = select_bad_process(tasks, totalpages)
    unit = totalpages // 1000
    labelled = False
    for k, t in enumerate(tasks):
        parts = [(t.rss, "#3182bd", "rss"), (t.swapents, "#9ecae1", "swap"),
                 (t.pgtables_bytes >> PAGE_SHIFT, "#fd8d3c", "page tables")]
        bottom = 0
        for value, colour, label in parts:
            ax.bar(k, value, bottom=bottom, color=colour, label=label if k == 0 else None)
            bottom += value
        b = oom_badness(t, totalpages)
        adj = t.oom_score_adj * unit if b != LONG_MIN else 0    # "never": no score to shift
        if adj:
            # a positive adjustment adds a grey block; a negative one cuts a white one out
            ax.bar(k, abs(adj), bottom=min(bottom, bottom + adj),
                   color="#bbbbbb" if adj > 0 else "white", edgecolor="#777777", hatch="//",
                   label="oom_score_adj × totalpages/1000" if not labelled else None)
            labelled = True
        ax.text(k, max(bottom, bottom + adj), "never" if b == LONG_MIN else str(b),
                ha="center", va="bottom", fontsize=8)
        if t is victim:
            ax.bar(k, max(bottom + adj, bottom), fill=False, edgecolor="red", linewidth=2)
    ax.set_xticks(range(len(tasks)), [f"{t.comm}\n(pid {t.pid})" for t in tasks], fontsize=8)
    ax.set_ylabel("pages")
    ax.set_title("oom_badness(): the victim is outlined")
    ax.legend(fontsize=8)
    return ax

"""Pictures for chapter 01: where the memory goes, and how MemAvailable is built.

Both draw what the core computes — :func:`kmmlib.procfs.meminfo.memory_breakdown` and
:class:`kmmlib.mm.available.MemAvailable` — so a notebook can print the same numbers in a
checked cell beside the picture.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from kmmlib.mm.available import MemAvailable
from kmmlib.procfs.meminfo import memory_breakdown

# One colour per part, the same in every picture of the course.
COLOURS = {
    "apps (anonymous)": "#d62728",
    "shmem / tmpfs": "#ff9896",
    "page cache": "#1f77b4",
    "slab, reclaimable": "#aec7e8",
    "slab, unreclaimable": "#9467bd",
    "kernel stacks": "#8c564b",
    "page tables": "#e377c2",
    "per-cpu": "#bcbd22",
    "vmalloc": "#17becf",
    "hugetlb pool": "#ff7f0e",
    "kernel, not itemised": "#7f7f7f",
    "free": "#2ca02c",
}


def _mib(kb: int) -> float:
    return kb / 1024


def plot_memory_breakdown(mi: dict[str, int], title: str = "Where the memory goes",
                          ax=None):
    """Two stacked bars: all of MemTotal, and the part in use (MemTotal − MemFree) magnified,
    since on an idle machine "free" would hide everything else. Returns the Figure."""
    parts = [(name, kb) for name, kb in memory_breakdown(mi) if kb > 0]
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 3.2))
    else:
        fig = ax.figure
    rows = [("MemTotal", parts), ("in use (zoom)", [p for p in parts if p[0] != "free"])]
    for y, (_, row) in enumerate(rows):
        left = 0.0
        total = sum(kb for _, kb in row) or 1
        for name, kb in row:
            width = kb / total * 100
            ax.barh(y, width, left=left, color=COLOURS.get(name, "#cccccc"),
                    edgecolor="white", linewidth=0.5, label=name if y == 1 or name == "free"
                    else None)
            if width > 6:
                ax.text(left + width / 2, y, f"{_mib(kb):,.0f} MiB", ha="center",
                        va="center", fontsize=8, color="white")
            left += width
    ax.set_yticks(range(len(rows)), [f"{label}\n{_mib(sum(kb for _, kb in row)):,.0f} MiB"
                                     for label, row in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of the bar")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    order = [labels.index(name) for name in COLOURS if name in labels]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_available(result: MemAvailable, title: str = "MemAvailable, term by term", ax=None):
    """A waterfall of si_mem_available()'s terms, in MiB, ending at the result. Returns the
    Figure. The free term usually dwarfs the rest, so the axis starts near it."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.2))
    else:
        fig = ax.figure
    level = 0.0
    lows, highs = [], []
    for i, (_name, pages, _) in enumerate(result.terms()):
        mib = pages * result.page_kb / 1024
        start = level if i else 0.0
        ax.bar(i, mib, bottom=start, color="#2ca02c" if mib >= 0 else "#d62728")
        level = start + mib
        lows.append(min(start, level))
        highs.append(max(start, level))
    n = len(result.terms())
    ax.bar(n, result.available_kb / 1024, color="#1f77b4")
    top = max(highs + [result.available_kb / 1024])
    bottom = min(lows[1:] + [result.available_kb / 1024])
    pad = max((top - bottom) * 0.15, 1.0)
    ax.set_ylim(max(0.0, bottom - pad), top + pad)
    ax.set_xticks(range(n + 1), [name for name, _, _ in result.terms()] + ["= available"],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("MiB (axis cut below)")
    ax.set_title(title)
    fig.tight_layout()
    return fig

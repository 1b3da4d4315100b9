"""Chapter 06 pictures: the zone as a bar of blocks, buddyinfo histograms, free memory by order.

All three draw data the core computes (a :class:`~kmmlib.mm.page_alloc.Zone`, buddyinfo counts,
a history of ``nr_free``), so a notebook can print the same numbers beside the picture for
nbval to check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

# Free blocks by order: the same light-to-dark ramp as the widget (kmmlib.widgets.buddy).
ORDER_CMAP = "RdPu"
ALLOCATED = "#9e9e9e"
PCP = "#80cbc4"


def _order_color(order: int, max_order: int = 10):
    cmap = plt.get_cmap(ORDER_CMAP)
    return cmap(0.15 + 0.85 * order / max(max_order, 1))


def plot_memory_bar(zone, ax=None, *, row_pages: int | None = None, title: str | None = None):
    """The zone's pages in rows: free blocks coloured by order, allocated grey, per-cpu teal."""
    n = zone.spanned_pages
    row_pages = row_pages or min(n, 64 if n <= 512 else 512)
    rows = (n + row_pages - 1) // row_pages
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.45 * rows + 0.9))
    blocks = [(p, o, "free") for p, o, _ in zone.free_blocks()]
    blocks += [(p, o, "allocated") for p, o in zone.allocated_blocks().items()]
    for pcp in zone.pcp:
        for pindex, lst in enumerate(pcp.lists):
            blocks += [(p, zone.pindex_to_order(pindex), "pcp") for p in lst]
    for pfn, order, state in blocks:
        color = _order_color(order, zone.max_order) if state == "free" else \
            ALLOCATED if state == "allocated" else PCP
        start, size = pfn - zone.zone_start_pfn, 1 << order
        first = True
        while size > 0:                       # a block may continue on the next row
            r, c = divmod(start, row_pages)
            piece = min(size, row_pages - c)
            ax.broken_barh([(c, piece)], (rows - 1 - r, 0.8), facecolors=color,
                           edgecolors="#444", linewidth=0.3)
            if first and state == "free" and piece * 9 / row_pages >= 0.25:
                ax.text(c + piece / 2, rows - 1 - r + 0.4, str(order), ha="center",
                        va="center", fontsize=7, color="white" if order >= 4 else "black")
            first = False
            start += piece
            size -= piece
    ax.set_xlim(0, row_pages)
    ax.set_ylim(0, rows)
    ax.set_yticks([rows - 1 - r + 0.4 for r in range(rows)])
    ax.set_yticklabels([str(zone.zone_start_pfn + r * row_pages) for r in range(rows)],
                       fontsize=7)
    ax.set_xlabel("page within the row")
    ax.set_ylabel("first pfn of the row")
    top = zone.max_order                     # the colour scale's end (10, MAX_PAGE_ORDER, or less)
    ax.legend(handles=[Patch(color=_order_color(0, top), label="free, order 0"),
                       Patch(color=_order_color(top, top), label=f"free, order {top}"),
                       Patch(color=ALLOCATED, label="allocated"),
                       Patch(color=PCP, label="per-cpu list")],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title(title or f"zone {zone.name}: {zone.nr_free_pages} of {zone.managed_pages} "
                 "pages free", fontsize=9)
    return ax


def plot_buddyinfo(series: Mapping[str, Sequence[int]], ax=None, *, pages: bool = True,
                   title: str = "/proc/buddyinfo"):
    """Grouped bars per order, one colour per series (e.g. ``{"before": …, "after": …}``).
    ``pages=True`` plots free pages held at each order (nr_free << order) — where the free
    memory is — instead of the raw block counts the file prints."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    names = list(series)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        counts = list(series[name])
        ys = [n << o for o, n in enumerate(counts)] if pages else counts
        xs = [o - 0.4 + width * (i + 0.5) for o in range(len(counts))]
        ax.bar(xs, ys, width=width, label=name)
    orders = max(len(v) for v in series.values())
    ax.set_xticks(range(orders))
    ax.set_xlabel("order (block = 2^order pages)")
    ax.set_ylabel("free pages in blocks of this order" if pages else "free blocks (nr_free)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_free_by_order(history: Sequence[Sequence[int]], ax=None, *,
                       title: str = "free memory by order over time"):
    """A stacked area of free pages per order (``nr_free << order``) at each step of
    ``history`` (one ``nr_free`` list per step, e.g. from
    :func:`kmmlib.mm.buddy_model.nr_free_history`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    if not history:
        raise ValueError("an empty history")
    orders = len(history[0])
    ys = [[row[o] << o for row in history] for o in range(orders)]
    ax.stackplot(range(len(history)), ys, labels=[f"order {o}" for o in range(orders)],
                 colors=[_order_color(o, orders - 1) for o in range(orders)])
    ax.set_xlabel("step")
    ax.set_ylabel("free pages")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    return ax

"""Chapter 07 pictures: the pageblock map, the fragmentation index over time, compaction.

Every picture draws numbers the core computes (:func:`kmmlib.mm.fragmentation.pageblock_map`,
:class:`~kmmlib.mm.fragmentation.ExperimentResult`, a zone before and after
:func:`~kmmlib.mm.compaction.compact_zone`), so a notebook prints the same numbers beside it
for nbval to check.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

from kmmlib.mm.fragmentation import FREE, PCP, PageblockMap, pageblock_map
from kmmlib.mm.migratetype import MIGRATE_TYPES, migratetype_names
from kmmlib.mm.migratetype import MIGRATETYPE_COLORS as TYPE_COLORS

# One colour per migrate type, in the kernel's order (Unmovable, Movable, Reclaimable,
# HighAtomic, Isolate): the pageblock's own type is the cell's background, its used pages the
# bar inside it, coloured by *their* type.
FREE_COLOR = "#f2f2f2"


def _map(source) -> PageblockMap:
    return source if isinstance(source, PageblockMap) else pageblock_map(source)


def plot_pageblock_map(source, ax=None, *, columns: int = 8, title: str | None = None):
    """A grid, one cell per pageblock: the border and pale background are the pageblock's
    migratetype (its pageblock bits); the stacked bar inside shows its pages — used pages
    coloured by their allocation's type, free pages light. A red corner marks a mixed
    pageblock (an allocation of another type inside). ``source`` is a Zone or a PageblockMap."""
    pbm = _map(source)
    n = pbm.nr_pageblocks
    rows = (n + columns - 1) // columns
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * columns + 1.6, 0.9 * rows + 0.8))
    per = 1 << pbm.pageblock_order
    mixed = pbm.mixed_mask()
    for i in range(n):
        r, c = divmod(i, columns)
        x, y = c, rows - 1 - r
        mt = pbm.migratetype[i]
        ax.add_patch(Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor=TYPE_COLORS[mt],
                               alpha=0.18, edgecolor=TYPE_COLORS[mt], linewidth=2))
        left = x + 0.12
        for k in (*range(MIGRATE_TYPES), FREE):
            pages = int(pbm.pages[i, k]) + (int(pbm.pages[i, PCP]) if k == FREE else 0)
            if not pages:
                continue
            w = 0.76 * pages / per
            ax.add_patch(Rectangle((left, y + 0.3), w, 0.4, linewidth=0,
                                   facecolor=FREE_COLOR if k == FREE else TYPE_COLORS[k]))
            left += w
        if mixed[i]:
            ax.add_patch(Rectangle((x + 0.78, y + 0.78), 0.14, 0.14, facecolor="red",
                                   linewidth=0))
    ax.set_xlim(0, columns)
    ax.set_ylim(0, rows)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([rows - 1 - r + 0.5 for r in range(rows)])
    ax.set_yticklabels([str(pbm.start_pfn[r * columns]) for r in range(rows)], fontsize=7)
    ax.set_ylabel("first pfn of the row", fontsize=8)
    handles = [Patch(facecolor=TYPE_COLORS[mt], label=migratetype_names[mt])
               for mt in range(3)]
    handles += [Patch(facecolor=FREE_COLOR, edgecolor="#999", label="free"),
                Patch(facecolor="red", label="mixed")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False)
    ax.set_title(title or f"{n} pageblocks of {per} pages", fontsize=9)
    return ax


def plot_experiment(results: Sequence, axes=None, *, pageblock_order: int = 9):
    """Three panels over the requests of the mobility experiment, one line per run (grouping
    on / off): the fragmentation index at ``pageblock_order`` (-1000: a block of that order is
    free; near 1000: free memory only in small pieces), the largest free order, and the number
    of pageblocks holding kernel (unmovable or reclaimable) pages."""
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    styles = {True: ("#1b9e77", "grouping by mobility on"),
              False: ("#d95f02", "grouping by mobility off")}
    for res in results:
        color, label = styles[res.grouping]
        axes[0].plot(res.steps, res.fragindex, color=color, label=label)
        axes[1].plot(res.steps, res.largest_order, color=color, label=label)
        axes[2].plot(res.steps, res.pinned, color=color, label=label)
    axes[0].set_ylabel(f"fragmentation index\n(order {pageblock_order})", fontsize=8)
    axes[0].set_ylim(-1100, 1100)
    axes[0].axhline(500, color="#999", linewidth=0.6, linestyle=":")
    axes[1].set_ylabel("largest free order", fontsize=8)
    axes[1].axhline(pageblock_order, color="#999", linewidth=0.6, linestyle=":")
    axes[2].set_ylabel("pageblocks holding\nkernel pages", fontsize=8)
    axes[2].set_xlabel("request")
    axes[0].legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.tick_params(labelsize=7)
    return axes


def plot_page_map(zone, ax=None, *, title: str | None = None, row_pages: int | None = None):
    """A small zone page by page: used pages coloured by their allocation's type, free pages
    light, pageblock boundaries as vertical lines — for the compaction demonstrations."""
    n = zone.spanned_pages
    row_pages = row_pages or min(n, 64)
    rows = (n + row_pages - 1) // row_pages
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.35 * rows + 0.8))
    zs = zone.zone_start_pfn
    for pfn, order in zone.allocated_blocks().items():
        color = TYPE_COLORS[zone.allocation_migratetype(pfn)]
        for p in range(pfn, pfn + (1 << order)):
            r, c = divmod(p - zs, row_pages)
            ax.add_patch(Rectangle((c, rows - 1 - r), 0.9, 0.8, facecolor=color, linewidth=0))
    for pfn, order, _ in zone.free_blocks():
        for p in range(pfn, pfn + (1 << order)):
            r, c = divmod(p - zs, row_pages)
            ax.add_patch(Rectangle((c, rows - 1 - r), 0.9, 0.8, facecolor=FREE_COLOR,
                                   edgecolor="#bbb", linewidth=0.3))
    pb = zone.pageblock_nr_pages
    if pb <= row_pages:                      # pageblock edges are columns
        for c in range(0, row_pages + 1, pb):
            ax.axvline(c - 0.05, color="#333", linewidth=0.8)
    else:                                    # a pageblock spans rows: mark the rows it starts
        for p in range(zs - zs % pb + (pb if zs % pb else 0), zs + rows * row_pages, pb):
            r = (p - zs) // row_pages
            ax.axhline(rows - r - 0.1, color="#333", linewidth=0.8)
    ax.set_xlim(-0.5, row_pages)
    ax.set_ylim(-0.2, rows)
    ax.set_yticks([rows - 1 - r + 0.4 for r in range(rows)])
    ax.set_yticklabels([str(zs + r * row_pages) for r in range(rows)], fontsize=7)
    ax.set_xticks([])
    handles = [Patch(facecolor=TYPE_COLORS[mt], label=migratetype_names[mt]) for mt in (0, 1)]
    handles.append(Patch(facecolor=FREE_COLOR, edgecolor="#999", label="free"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax

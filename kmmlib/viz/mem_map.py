"""Pictures for chapter 04: a strip of struct pages, the page->flags word, and memmap cost.

Each function draws on a matplotlib Axes (a new figure when none is given) and returns it;
the notebook ends the cell with ``plt.show()``. The numbers behind each picture come from the
core (:mod:`kmmlib.mm.mem_map`, :mod:`kmmlib.mm.page_flags`, :mod:`kmmlib.mm.memory_model`),
so a notebook can print and check them beside the plot.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from kmmlib.mm import memory_model as mmod
from kmmlib.mm.mem_map import MemMap
from kmmlib.mm.page_flags import FlagsLayout

# One colour per page_kind(); free pages share the buddy head's colour, lighter.
KIND_COLORS = {
    "buddy": "#4c9a2a", "free": "#a8d08d", "unused": "#eeeeee", "reserved": "#7f7f7f",
    "slab": "#e6a100", "table": "#b5651d", "anon": "#d64541", "file": "#3b6fb6",
    "head": "#9b59b6", "tail": "#d2b4de", "allocated": "#c0c0c0",
    "offline": "#555555", "guard": "#333333", "hugetlb": "#8e44ad", "zsmalloc": "#16a085",
    "unaccepted": "#bbbbbb", "large_kmalloc": "#f39c12",
}


def _axes(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_mem_map(mm: MemMap, start: int | None = None, count: int | None = None,
                 ax=None, per_row: int = 32):
    """One cell per struct page, coloured by :meth:`MemMap.page_kind`; free buddy blocks
    get a frame and their order, compound pages a bracket. Returns the Axes."""
    start = mm.start_pfn if start is None else start
    count = mm.end_pfn - start if count is None else count
    rows = -(-count // per_row)
    ax = _axes(ax, (max(6, per_row * 0.38), 0.9 + 0.75 * rows))
    seen = {}
    for n in range(count):
        pfn = start + n
        r, c = divmod(n, per_row)
        kind = mm.page_kind(pfn)
        seen[kind] = KIND_COLORS.get(kind, "#c0c0c0")
        ax.add_patch(Rectangle((c, -r), 0.95, 0.9, color=seen[kind]))
        ax.text(c + 0.47, -r + 0.45, f"{pfn & 0xff:02x}", ha="center", va="center", fontsize=6)
        if kind == "buddy":
            order = mm.buddy_order(pfn)
            width = min(1 << order, per_row - c)
            ax.add_patch(Rectangle((c - 0.03, -r - 0.05), width, 1.0, fill=False, lw=1.5,
                                   edgecolor="#1e5631"))
            ax.text(c + 0.05, -r + 0.98, f"order {order}", fontsize=6, va="bottom")
        elif mm.compound_order(pfn):
            order = mm.compound_order(pfn)
            ax.text(c + 0.05, -r + 0.98, f"folio order {order}", fontsize=6, va="bottom")
    ax.set_xlim(-0.2, per_row + 0.2)
    ax.set_ylim(-rows + 0.7, 1.4)
    ax.axis("off")
    ax.set_title(f"mem_map: pfns {start:#x}-{start + count - 1:#x} (low byte shown)")
    handles = [Rectangle((0, 0), 1, 1, color=col) for col in seen.values()]
    ax.legend(handles, list(seen), loc="upper center", bbox_to_anchor=(0.5, -0.02),
              ncol=min(len(seen), 6), fontsize=7, frameon=False)
    return ax


def plot_flags_layout(layout: FlagsLayout, ax=None):
    """The bits of ``page->flags`` for one config: fields from the top, PG_* from bit 0."""
    ax = _axes(ax, (11, 1.6))
    colors = {"section": "#8e44ad", "node": "#2980b9", "zone": "#27ae60",
              "lastcpupid": "#e67e22", "kasantag": "#c0392b", "lru_gen": "#16a085",
              "lru_refs": "#1abc9c", "unused": "#ecf0f1", "flags": "#f1c40f"}
    bits = layout.config.bits_per_long
    for name, low, width in layout.table():
        x = bits - low - width                  # bit 63 on the left, as the kernel draws it
        ax.add_patch(Rectangle((x, 0), width, 1, facecolor=colors.get(name, "#bbb"),
                               edgecolor="black"))
        label = name if width >= 3 else name[:1]
        ax.text(x + width / 2, 0.5, f"{label}\n{width}", ha="center", va="center", fontsize=7)
        ax.text(x, -0.15, str(low + width - 1), ha="left", va="top", fontsize=6)
    ax.text(bits, -0.15, "0", ha="right", va="top", fontsize=6)
    ax.set_xlim(0, bits)
    ax.set_ylim(-0.5, 1.1)
    ax.axis("off")
    ax.set_title(f"page->flags, {layout.config.name}: NR_PAGEFLAGS = {layout.nr_pageflags}")
    return ax


def plot_memmap_cost(sizes, ax=None):
    """struct page memory as a percentage of RAM for several machine sizes: FLATMEM and
    SPARSEMEM_VMEMMAP on a PC-like map (RAM split around a PCI hole), x86_64 and 64K-page
    arm64. Returns the Axes."""
    ax = _axes(ax, (7, 3.6))
    sizes = list(sizes)
    gib = [s / (1 << 30) for s in sizes]
    x86 = mmod.memmap_cost_table(sizes)
    arm = mmod.memmap_cost_table(sizes, mmod.ARM64_64K)
    ax.plot(gib, [r["flatmem_percent"] for r in x86], "o-", label="x86_64 FLATMEM (4K pages)")
    ax.plot(gib, [r["vmemmap_percent"] for r in x86], "s-",
            label="x86_64 SPARSEMEM_VMEMMAP (4K)")
    ax.plot(gib, [r["vmemmap_percent"] for r in arm], "^-",
            label="arm64 SPARSEMEM_VMEMMAP (64K pages)")
    ax.axhline(100 * 64 / 4096, color="gray", lw=0.8, ls="--")
    ax.text(gib[0], 100 * 64 / 4096 + 0.03, "64 / 4096 = 1.5625%", fontsize=7, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("RAM (GiB)")
    ax.set_ylabel("struct pages, % of RAM")
    ax.set_title("What mem_map costs")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return ax

"""Pictures for chapter 03: the kernel's address space to scale, the classic column diagram,
32-bit lowmem and highmem, and a process's own mappings.

A 64-bit address space cannot be drawn to scale on a linear axis: the 4 KiB vsyscall page and
the 128 TiB linear map differ by 2**35. :func:`plot_layout` therefore draws each region as tall
as the log2 of its size — in address order, so the picture is still a map — and every region
from 2 MB to exabytes is visible. The data come from :mod:`kmmlib.layout`; this module only
draws.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.patches import Polygon, Rectangle

from kmmlib.layout.common import Layout, human_size, log_heights

COLORS = {"user": "#9ecae1", "linear": "#74c476", "ram": "#238b45", "kasan": "#fdd0a2",
          "bpf": "#fdae6b", "modules": "#fd8d3c", "kernel": "#e6550d", "vmalloc": "#bcbddc",
          "fixmap": "#f768a1", "pci_io": "#c994c7", "vmemmap": "#fc9272",
          "vmemmap_used": "#cb181d", "guard": "#eeeeee", "hole": "#ffffff", "ldt": "#dadaeb",
          "cpu_entry": "#dadaeb", "espfix": "#dadaeb", "efi": "#d9d9d9", "vsyscall": "#969696",
          "vector": "#969696", "pkmap": "#6baed6", "dtb": "#d9d9d9"}
GROUP_COLORS = {"text": "#e6550d", "data": "#fdae6b", "heap": "#74c476", "mmap": "#9ecae1",
                "stack": "#6a51a3", "vdso": "#969696"}


def plot_layout(layout: Layout, ax=None, floor_bits: int = 20):
    """The layout as a column, lowest address at the bottom, every region as tall as log2 of
    its size (so 2 MB and 128 TB both show), its start address on the left and its name and
    size on the right; overlays (KASAN shadow, RAM in use, vmemmap in use) as bars beside it.
    Returns the figure."""
    rows = log_heights(layout, floor_bits)
    total = rows[-1][1] + rows[-1][2]
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.06 * total + 1.5))
    else:
        fig = ax.figure
    w = (layout.bits + 3) // 4
    where = {}
    for r, y, h in rows:
        where[r.start] = (y, h)
        hatch = "//" if r.kind == "hole" and r.size >= 1 << 56 else None
        ax.add_patch(Rectangle((0, y), 1, h, facecolor=COLORS.get(r.kind, "#ccc"),
                               edgecolor="#555", lw=0.6, hatch=hatch))
        if h >= 2.2 or r.kind not in ("guard", "hole"):
            ax.text(1.04, y + h / 2, f"{r.name}  {human_size(r.size)}", va="center",
                    fontsize=7)
            ax.text(-0.04, y, f"{r.start:0{w}x}", ha="right", va="bottom", fontsize=6,
                    family="monospace")
    for o in layout.overlays:
        r = layout.region_at(o.start)
        y, h = where[r.start]
        frac0 = (o.start - r.start) / r.size
        frac1 = (min(o.end, r.end) - r.start) / r.size
        # place the overlay inside its region in log proportion of its offsets
        y0 = y + h * (math.log2(1 + frac0 * (2 ** h - 1)) / h if h else 0)
        y1 = y + h * (math.log2(1 + frac1 * (2 ** h - 1)) / h if h else 0)
        ax.add_patch(Rectangle((-0.18 if o.kind in ("ram", "vmemmap_used") else 1.0 - 0.1,
                                y0), 0.08, max(y1 - y0, 0.4),
                               facecolor=COLORS.get(o.kind, "#999"), edgecolor="#333", lw=0.4))
    ax.set_xlim(-1.6, 3.2)
    ax.set_ylim(-0.5, total + 0.5)
    ax.axis("off")
    ax.set_title(f"{layout.title}\n(height = log2 of size; bars: RAM and vmemmap in use, "
                 "KASAN shadow)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_column(layout: Layout, ax=None, kinds_hidden=("hole",)):
    """The classic column diagram (not to scale): one box per region, the highest address on
    top, with its start address and size — the kind of picture books draw of the kernel map."""
    regions = [r for r in sorted(layout.main_regions, key=lambda r: -r.start)
               if r.kind not in kinds_hidden and r.doc]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(regions) + 0.8))
    else:
        fig = ax.figure
    w = (layout.bits + 3) // 4
    for i, r in enumerate(regions):
        y = len(regions) - 1 - i
        ax.add_patch(Rectangle((0, y), 1, 1, facecolor=COLORS.get(r.kind, "#ccc"),
                               edgecolor="#444", lw=0.8))
        ax.text(0.5, y + 0.5, f"{r.name}  ({human_size(r.size)})", ha="center", va="center",
                fontsize=8)
        ax.text(-0.03, y, f"{r.start:0{w}x}", ha="right", va="center", fontsize=7,
                family="monospace")
        for o in layout.overlays:
            if r.start <= o.start < r.end and o.kind in ("ram", "vmemmap_used"):
                ax.text(1.03, y + 0.5, f"◀ {o.name}: {o.start:0{w}x}", fontsize=7,
                        va="center", color=COLORS[o.kind])
    ax.set_xlim(-0.75, 1.9)
    ax.set_ylim(-0.2, len(regions) + 0.2)
    ax.axis("off")
    ax.set_title(layout.title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_lowmem_highmem(ram: int = 1 << 30, ax=None):
    """32-bit x86's 3G/1G split: the kernel's 1 GiB of addresses (left) against 1 GiB of RAM
    (right). The first 896 MiB of RAM (2.6's MAXMEM; later kernels map a few MiB less) are
    mapped once and for all (lowmem); the last 128 MiB
    (highmem) have no kernel address, and kmap() borrows a slot of the 4 MiB pkmap window to
    reach one page at a time."""
    from kmmlib.layout.x86_32 import x86_32_layout

    lay = x86_32_layout(ram)
    S = lay.symbols
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 5.5))
    else:
        fig = ax.figure
    GB = 1 << 30
    po = S["PAGE_OFFSET"]

    def vy(addr):                      # virtual, 0xC0000000..4G -> 0..1
        return (addr - po) / GB

    def py(addr):                      # physical, 0..ram -> 0..1 scaled to RAM
        return addr / max(ram, GB)

    for r in lay.main_regions:
        if r.start < po:
            continue
        ax.add_patch(Rectangle((0, vy(r.start)), 1, vy(r.end) - vy(r.start),
                               facecolor=COLORS.get(r.kind, "#ddd"), edgecolor="#444", lw=0.6))
        if r.size >= 32 << 20 or r.kind == "pkmap":
            ax.text(-0.05, vy(r.start) + (vy(r.end) - vy(r.start)) / 2,
                    f"{r.name.split(':')[0]} {human_size(r.size)}", ha="right", va="center",
                    fontsize=8)
    low, high = S["lowmem_bytes"], S["highmem_bytes"]
    ax.add_patch(Rectangle((3, 0), 1, py(low), facecolor=COLORS["linear"], edgecolor="#444"))
    ax.text(4.05, py(low) / 2, f"lowmem\nZONE_DMA + ZONE_NORMAL\n{human_size(low)}",
            va="center", fontsize=8)
    if high:
        ax.add_patch(Rectangle((3, py(low)), 1, py(high), facecolor="#fcbba1",
                               edgecolor="#444"))
        ax.text(4.05, py(low) + py(high) / 2, f"highmem\nZONE_HIGHMEM\n{human_size(high)}",
                va="center", fontsize=8)
        pk = S["PKMAP_BASE"]
        ax.add_patch(Polygon([(1, vy(pk)), (1, vy(pk + (4 << 20))), (3, py(low + high)),
                              (3, py(low))], closed=True, facecolor="#fcbba1", alpha=0.35,
                             edgecolor="none"))
        ax.text(2, (vy(pk) + py(low)) / 2 + 0.05, "kmap(): one page at a time",
                ha="center", fontsize=8, rotation=8)
    ax.add_patch(Polygon([(1, 0), (1, vy(po + low)), (3, py(low)), (3, 0)], closed=True,
                         facecolor=COLORS["linear"], alpha=0.3, edgecolor="none"))
    ax.text(2, py(low) / 2, "linear map\n__va(pa) = pa + PAGE_OFFSET", ha="center",
            va="center", fontsize=8)
    ax.text(0.5, 1.03, "kernel virtual\n0xC0000000 - 4G", ha="center", fontsize=9)
    ax.text(3.5, py(max(ram, GB)) + 0.03, f"physical RAM\n0 - {human_size(ram)}",
            ha="center", fontsize=9)
    ax.set_xlim(-2.2, 5.6)
    ax.set_ylim(-0.05, 1.15)
    ax.axis("off")
    ax.set_title(f"32-bit 3G/1G split with {human_size(ram)} of RAM: "
                 f"{human_size(low)} lowmem, {human_size(high) if high else 'no'} highmem",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_process(pm, ax=None, gap_height: float = 0.6):
    """A process's mappings as a column, lowest address at the bottom: each VMA's height grows
    with log2 of its size, and the (huge) unmapped gaps between them are squeezed to a fixed
    height with their size written in. Colours are the six groups of
    :data:`kmmlib.userspace.maps.GROUPS`."""
    maps = pm.mappings
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, max(4.0, 0.32 * len(maps) + 1)))
    else:
        fig = ax.figure
    y = 0.0
    prev_end = None
    for m in maps:
        if prev_end is not None and m.start > prev_end:
            ax.plot([0.3, 0.7], [y + gap_height / 2] * 2, color="#999", ls=":", lw=1)
            ax.text(1.05, y + gap_height / 2, f"gap {human_size(m.start - prev_end)}",
                    fontsize=6, va="center", color="#777")
            y += gap_height
        h = 0.25 + 0.05 * max(math.log2(m.size / 4096), 0)
        ax.add_patch(Rectangle((0, y), 1, h, facecolor=GROUP_COLORS.get(m.group, "#ccc"),
                               edgecolor="#444", lw=0.5))
        name = m.path.rsplit("/", 1)[-1] or "(anonymous)"
        ax.text(1.05, y + h / 2, f"{m.start:x} {m.perms} {human_size(m.size):>6}  {m.kind:<8}"
                f" {name}", fontsize=6.5, va="center", family="monospace")
        y += h
        prev_end = m.end
    handles = [Rectangle((0, 0), 1, 1, facecolor=c) for c in GROUP_COLORS.values()]
    ax.legend(handles, list(GROUP_COLORS), loc="upper right", fontsize=7, ncol=2)
    ax.set_xlim(-0.1, 4.2)
    ax.set_ylim(0, y + 0.3)
    ax.axis("off")
    ax.set_title(f"{pm.exe or 'process'}: {len(maps)} mappings ({pm.origin})", fontsize=9)
    fig.tight_layout()
    return fig

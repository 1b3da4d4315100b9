"""Pictures for chapter 08: slab designs, a cache's slabs, kmalloc's waste, SLUB's orders on a
real machine, and kmalloc against vmalloc.

Each function draws from data the core computes (:mod:`kmmlib.slab`, :mod:`kmmlib.mm.vmalloc`);
the notebook prints the same data as checked text, since nbval does not compare images.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

from kmmlib.slab.calculate import PAGE_SIZE, calculate_order, order_objects
from kmmlib.slab.kmalloc import kmalloc_size_roundup

_USED, _CPU, _FREE = "#4c78a8", "#9bd39b", "#ffffff"


def _box(ax, x, y, w, h, color, text="", fs=8, ec="#444"):
    ax.add_patch(Rectangle((x, y), w, h, facecolor=color, edgecolor=ec, lw=0.8))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fs)


def _arrow(ax, a, b, color="#333"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="->", mutation_scale=9, color=color, lw=0.9))


def plot_allocator_designs():
    """SLAB, SLOB and SLUB side by side, as schematics.

    - SLAB (2.2 … 6.7): per-cpu *array caches* of object pointers, a shared array, and per-node
      lists of full, partial and free slabs, each slab with its own management data and
      colouring offset.
    - SLOB (… 6.3): one list of pages carved first-fit into blocks of any size, for tiny
      machines; a size header before every block.
    - SLUB (2.6.22 …, the only one since 6.8): no queues by default (6.18 adds opt-in per-cpu
      "sheaves" for a few caches, maple_node among them) — a per-cpu slab whose free objects
      are linked *through the objects*, and one partial list per node.
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax in axes:
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 10)
        ax.axis("off")
    a = axes[0]
    a.set_title("SLAB (removed in 6.8)", fontsize=10)
    for cpu in range(2):
        _box(a, 0.3 + cpu * 2.4, 8.2, 2.1, 1.0, "#f6d8ae", f"cpu {cpu}\narray_cache", fs=7)
        for k in range(4):
            _box(a, 0.4 + cpu * 2.4 + k * 0.48, 7.5, 0.42, 0.5, "#fff3b0")
    _box(a, 5.4, 8.2, 2.2, 1.0, "#f6d8ae", "shared\narray", fs=7)
    _box(a, 0.3, 5.7, 9.2, 1.2, "#eeeeee", "kmem_cache_node: slabs_full | slabs_partial | "
         "slabs_free", fs=7)
    for row, (label, used) in enumerate((("full", 8), ("partial", 4), ("free", 0))):
        y = 4.4 - row * 1.4
        a.text(0.3, y + 0.3, label, fontsize=7)
        _box(a, 1.5, y, 0.8, 0.6, "#dddddd", "mgmt", fs=6)
        _box(a, 2.3, y, 0.4, 0.6, "#f0f0f0", "", fs=6)       # colour offset
        for k in range(8):
            _box(a, 2.7 + k * 0.8, y, 0.8, 0.6, _USED if k < used else _FREE)
    a.text(0.3, 0.2, "object pointers queued per CPU; per-slab management\ndata and cache "
           "colouring; three lists per node", fontsize=7)
    b = axes[1]
    b.set_title("SLOB (removed in 6.4)", fontsize=10)
    sizes = [(1.4, True), (0.8, False), (2.2, True), (0.6, True), (1.6, False), (1.8, True)]
    for p in range(3):
        y = 7.6 - p * 2.4
        _box(b, 0.3, y, 9.2, 1.4, "#f7f7f7")
        b.text(0.3, y + 1.55, f"page {p}", fontsize=7)
        x = 0.4
        for k, (w, used) in enumerate(sizes[p:] + sizes[:p]):
            if x + w > 9.4:
                break
            _box(b, x, y + 0.15, 0.18, 1.1, "#cccccc")
            _box(b, x + 0.18, y + 0.15, w - 0.22, 1.1, _USED if used else _FREE,
                 "" if k % 2 else "", fs=6)
            x += w
    b.text(0.3, 0.2, "any size from the same pages, first fit;\na size header (grey) before "
           "each block; no per-cpu state", fontsize=7)
    c = axes[2]
    c.set_title("SLUB (the only one since 6.8)", fontsize=10)
    _box(c, 0.3, 8.3, 3.0, 0.9, "#f6d8ae", "cpu 0: slab, freelist")
    states = [_USED, _CPU, _USED, _CPU, _CPU, _USED, _USED, _CPU]
    for k, col in enumerate(states):
        _box(c, 0.8 + k * 1.05, 6.6, 1.0, 0.9, col)
    c.text(3.6, 8.6, "→ cpu slab (frozen) and its lockless freelist", fontsize=7)
    free = [k for k, col in enumerate(states) if col == _CPU]
    _arrow(c, (1.8, 8.3), (0.8 + free[0] * 1.05 + 0.5, 7.5))
    for a_, b_ in zip(free, free[1:], strict=False):
        _arrow(c, (0.8 + a_ * 1.05 + 0.7, 6.75), (0.8 + b_ * 1.05 + 0.3, 6.75), "#2e7d32")
    _box(c, 0.3, 4.8, 9.2, 0.9, "#eeeeee", "kmem_cache_node: partial list")
    for r in range(2):
        y = 3.5 - r * 1.3
        for k in range(8):
            _box(c, 0.8 + k * 1.05, y, 1.0, 0.9, _USED if (k + r) % 3 else _FREE)
    c.text(0.3, 0.2, "free pointer inside each free object; no queues (by default),\nfull "
           "slabs on no list; empty slabs back to the buddy allocator\nonce the node keeps "
           "min_partial partial slabs", fontsize=7)
    fig.tight_layout()
    return fig


def plot_cache(slub, cache, ax=None, max_cols: int = 32):
    """A cache's slabs as rows of squares: allocated (blue), free on a per-cpu freelist
    (green), free on its slab's freelist (white); labelled cpu / partial / full."""
    s = slub.cache(cache)
    state = slub.object_state(s)
    rows = [(f"cpu {i}", c.slab) for i, c in enumerate(s.cpu_slab) if c.slab is not None]
    rows += [(f"partial[{i}]", sl) for i, sl in enumerate(s.node.partial)]
    rows += [("full", sl) for sl in s.slabs.values() if sl.where in ("none", "full")]
    cols = min(max_cols, s.objects_per_slab)
    height = sum(-(-sl.objects // cols) for _, sl in rows) or 1
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * (height + len(rows))))
    else:
        fig = ax.figure
    y = 0
    colors = {"used": _USED, "cpu": _CPU, "free": _FREE}
    for label, slab in rows:
        ax.text(-0.5, -y - 0.5, f"{label}  pfn {slab.pfn:#x}", ha="right", va="center",
                fontsize=8)
        for i in range(slab.objects):
            st = state[slab.base + s.red_left_pad + i * s.size]
            _box(ax, i % cols, -y - 1 - i // cols, 0.92, 0.92, colors[st])
        y += -(-slab.objects // cols) + 0.4
    ax.set_xlim(-9, cols + 0.5)
    ax.set_ylim(-y - 0.5, 0.5)
    ax.axis("off")
    ax.set_title(f"{s.name}: {s.objects_per_slab} objects of {s.size} bytes per "
                 f"{1 << s.order}-page slab  (blue used, green per-cpu free, white slab free)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_kmalloc_waste(max_size: int = 1024, ax=None, trace_sizes=None):
    """Bytes kmalloc reserves against bytes asked, 1..``max_size``: the staircase of size
    classes, and the waste as a share of what was reserved. ``trace_sizes`` (requested sizes
    from a real trace) are marked along the axis."""
    sizes = list(range(1, max_size + 1))
    alloc = [kmalloc_size_roundup(n) for n in sizes]
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.8))
    else:
        fig = ax.figure
    ax.step(sizes, alloc, where="post", color="#4c78a8", label="bytes_alloc (size class)")
    ax.plot(sizes, sizes, color="#999", lw=0.8, ls="--", label="bytes_req")
    ax2 = ax.twinx()
    ax2.fill_between(sizes, [100 * (a - n) / a for a, n in zip(alloc, sizes, strict=True)],
                     color="#f58518", alpha=0.25, step="post", label="waste %")
    ax2.set_ylabel("waste, % of the bytes reserved")
    ax2.set_ylim(0, 100)
    if trace_sizes:
        ax.plot([t for t in trace_sizes if t <= max_size],
                [0] * sum(1 for t in trace_sizes if t <= max_size), "|", color="black",
                ms=10, label="sizes in the real trace")
    ax.set_xlabel("kmalloc(size): bytes requested")
    ax.set_ylabel("bytes reserved")
    ax.set_xlim(0, max_size)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = ax2.get_legend_handles_labels()         # the waste, on the twin axis
    ax.legend(handles + more, labels + more_labels, loc="upper left", fontsize=8)
    ax.set_title("kmalloc size classes: 8 … 64, 96, 128, 192, 256, 512, 1k …", fontsize=10)
    fig.tight_layout()
    return fig


def plot_slab_orders(rows, nr_cpus: int, ax=None):
    """Objects per slab against object size for every cache of a slabinfo: the kernel's figure
    (dots, coloured by pages per slab) on SLUB's predicted curve (line)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4))
    else:
        fig = ax.figure
    grid = sorted({8 * k for k in range(1, 1025)} | {r.objsize for r in rows})
    pred = [order_objects(calculate_order(z, nr_cpus), z) for z in grid]
    ax.plot(grid, pred, color="#999", lw=0.8, label=f"calculate_order(), {nr_cpus} CPUs")
    palette = ("#4c78a8", "#72b7b2", "#f58518", "#e45756", "#b279a2", "#9d755d")
    for k, pages in enumerate(sorted({r.pagesperslab for r in rows})):
        color = palette[k % len(palette)]
        pts = [(r.objsize, r.objperslab) for r in rows if r.pagesperslab == pages]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=14, color=color, zorder=3,
                       label=f"kernel: {pages} page{'s' if pages > 1 else ''} per slab")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("objsize (bytes)")
    ax.set_ylabel("objects per slab")
    ax.legend(fontsize=8)
    ax.set_title("every cache of the slabinfo lies on SLUB's curve", fontsize=10)
    fig.tight_layout()
    return fig


def plot_kmalloc_vs_vmalloc(slub, vm, kaddr: int, vaddr: int, ax=None):
    """Two memory maps side by side: the pages of a kmalloc'd block and of a vmalloc area,
    each virtual page joined to the physical page (pfn) behind it."""
    kpfn = slub.virt_to_pfn(kaddr)
    knr = max(1, slub.ksize(kaddr) // PAGE_SIZE)
    vmap = vm.mapping(vaddr)
    pfns = [kpfn + i for i in range(knr)] + [p for _, p in vmap]
    lo, hi = min(pfns), max(pfns)
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4.5))
    else:
        fig = ax.figure

    def py(pfn):                                  # physical memory on a scale
        return 9 * (pfn - lo) / max(hi - lo, 1)

    ax.add_patch(Rectangle((4.3, -0.3), 1.4, 9.6, facecolor="#f2f2f2", edgecolor="#888"))
    ax.text(5.0, 9.6, "physical memory\n(pfn)", ha="center", fontsize=8)
    ax.text(5.0, -0.9, f"pfn {lo:#x}", ha="center", fontsize=7)
    ax.text(5.7, 9.1, f"pfn {hi:#x}", ha="left", fontsize=7)
    for i in range(knr):
        y = 8 - i * 9 / max(knr, len(vmap), 1)
        _box(ax, 0.5, y, 2.0, 0.6, "#4c78a8", f"+{i * 4} KiB", fs=7)
        ax.plot([2.5, 4.3], [y + 0.3, py(kpfn + i)], color="#4c78a8", lw=1)
        ax.plot([4.3, 5.7], [py(kpfn + i)] * 2, color="#4c78a8", lw=2)
    for i, (_, pfn) in enumerate(vmap):
        y = 8 - i * 9 / max(knr, len(vmap), 1)
        _box(ax, 7.5, y, 2.0, 0.6, "#f58518", f"+{i * 4} KiB", fs=7)
        ax.plot([7.5, 5.7], [y + 0.3, py(pfn)], color="#f58518", lw=1)
        ax.plot([4.3, 5.7], [py(pfn)] * 2, color="#f58518", lw=2)
    ax.text(1.5, 9.4, f"kmalloc({knr * 4} KiB)\n{kaddr:#x}\n(linear map)", ha="center",
            fontsize=8)
    ax.text(8.5, 9.4, f"vmalloc({len(vmap) * 4} KiB)\n{vaddr:#x}\n(vmalloc area)",
            ha="center", fontsize=8)
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.2, 11)
    ax.axis("off")
    fig.tight_layout()
    return fig

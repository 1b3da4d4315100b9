"""Chapter 09 pictures: what a replayed kmem trace shows over time.

Every function draws data a :class:`~kmmlib.trace.replay.Replay` computed (its ``timeline``
and ``report()``), so a notebook can print the same numbers beside the picture for nbval.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from kmmlib.mm.migratetype import migratetype_names

# Orders from light to dark, as in chapter 06's pictures; migrate types as in chapter 07.
ORDER_CMAP = "RdPu"
MT_COLORS = {0: "#d95f02", 1: "#1b9e77", 2: "#7570b3"}
KERNEL, SIMULATOR = "#444444", "#e7298a"


def _order_color(order: int, max_order: int = 10):
    return plt.get_cmap(ORDER_CMAP)(0.15 + 0.85 * order / max(max_order, 1))


def _nothing(ax, what: str):
    """An empty axis that says why (a trace with no such events)."""
    ax.text(0.5, 0.5, f"no {what} in this trace", ha="center", va="center",
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_alloc_rate(replay, ax=None, *, by: str = "order", title: str | None = None):
    """Page allocations per second of trace time, stacked by ``order`` or ``migratetype``."""
    tl = replay.timeline
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    series = tl.alloc_rate(by)
    if not series:
        return _nothing(ax, "page allocations")
    keys = sorted(series)
    ys = [[n / tl.bin for n in series[k]] for k in keys]
    if by == "order":
        labels = [f"order {k}" for k in keys]
        colors = [plt.get_cmap("tab10")(k % 10) for k in keys]   # order 0 must stand out
    else:
        labels = [migratetype_names[k] for k in keys]
        colors = [MT_COLORS.get(k, "#999999") for k in keys]
    ax.stackplot(tl.t, ys, labels=labels, colors=colors, step="post")
    ax.set_xlabel("seconds since the first event")
    ax.set_ylabel("mm_page_alloc per second")
    ax.set_title(title or f"page allocations by {by} ({tl.bin * 1000:g} ms bins)", fontsize=9)
    ax.legend(fontsize=7, ncol=2 if len(keys) > 4 else 1, loc="upper right")
    ax.set_xlim(0, tl.t[-1] + tl.bin if tl.t else 1)
    return ax


def plot_busiest_caches(replay, ax=None, *, n: int = 10, title: str | None = None):
    """The slab caches the trace allocated from most (kmem_cache_alloc and kmalloc)."""
    rows = replay.report()["slab"]["busiest"][:n] if replay.slab is not None else []
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1))
    if not rows:
        return _nothing(ax, "slab allocations")
    names = [r[0] for r in rows][::-1]
    counts = [r[1] for r in rows][::-1]
    bars = ax.barh(names, counts, color=["#7570b3" if nm.startswith(("kmalloc", "dma-"))
                                          else "#1b9e77" for nm in names])
    for b, c in zip(bars, counts, strict=True):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {c}", va="center",
                fontsize=7)
    ax.set_xlabel("allocations in the trace")
    ax.set_title(title or "busiest slab caches (green: named caches, purple: kmalloc)",
                 fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    return ax


def plot_free_area(replay, zone: str = "Normal", ax=None, *, title: str | None = None):
    """The simulated zone's free pages held at each order (``nr_free << order``) over time."""
    tl = replay.timeline
    hist = tl.nr_free.get(zone)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    if not hist:
        return _nothing(ax, f"samples of zone {zone}")
    orders = len(hist[0])
    for o in range(orders):
        ys = [row[o] << o for row in hist]
        if any(ys):
            ax.plot(tl.ends(), ys, color=_order_color(o, orders - 1), label=f"order {o}",
                    linewidth=1.2)
    ax.set_yscale("symlog", linthresh=16)
    ax.set_xlabel("seconds since the first event")
    ax.set_ylabel("free pages (symlog)")
    ax.set_title(title or f"simulated free_area of zone {zone} over time", fontsize=9)
    ax.legend(fontsize=6, ncol=3, loc="lower left")
    return ax


def plot_in_use(replay, ax=None, *, title: str | None = None):
    """Pages the trace allocated and had not freed yet, and the simulated slab caches' pages."""
    tl = replay.timeline
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2.6))
    ax.plot(tl.ends(), tl.in_use, color=KERNEL,
            label="pages allocated in the trace, not yet freed")
    if any(tl.slab_pages):
        ax.plot(tl.ends(), tl.slab_pages, color=SIMULATOR,
                label="pages of the simulated slab caches")
    ax.set_xlabel("seconds since the first event")
    ax.set_ylabel("pages")
    ax.set_title(title or "memory in use during the trace", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def kernel_vs_simulator(replay) -> dict[str, tuple[int, int]]:
    """The figures both sides report: {what: (kernel, simulator)}."""
    pg = replay.report()["pages"]
    return {"buddy takes\n(zone_locked)": (pg["buddy_takes"]["kernel"],
                                          pg["buddy_takes"]["simulator"]),
            "per-cpu refill\ntakes": (pg["buddy_takes"]["kernel_percpu_refill"],
                                      pg["buddy_takes"]["simulator_percpu_refill"]),
            "pages drained\n(pcpu_drain)": (pg["pcp_drained_pages"]["kernel"],
                                            pg["pcp_drained_pages"]["simulator"]),
            "fallbacks\n(extfrag)": (pg["fallbacks"]["kernel"], pg["fallbacks"]["simulator"])}


def plot_kernel_vs_simulator(replay, ax=None, *, title: str | None = None):
    """Grouped bars of :func:`kernel_vs_simulator` (log scale: counts differ by thousands)."""
    data = kernel_vs_simulator(replay)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    xs = range(len(data))
    k = [v[0] for v in data.values()]
    s = [v[1] for v in data.values()]
    ax.bar([x - 0.2 for x in xs], k, width=0.4, color=KERNEL, label="kernel (trace)")
    ax.bar([x + 0.2 for x in xs], s, width=0.4, color=SIMULATOR, label="simulator")
    for x, a, b in zip(xs, k, s, strict=True):
        ax.text(x - 0.2, max(a, 1), str(a), ha="center", va="bottom", fontsize=7)
        ax.text(x + 0.2, max(b, 1), str(b), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(list(data), fontsize=8)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, max(k + s + [1]) * 10)          # room for the labels
    ax.set_ylabel("count (symlog)")
    ax.set_title(title or "what the kernel's tracepoints saw, and what the simulator did",
                 fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_overview(replay, zone: str = "Normal"):
    """The four pictures of chapter 09 in one figure."""
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), constrained_layout=True)
    plot_alloc_rate(replay, axes[0], by="order")
    plot_alloc_rate(replay, axes[1], by="migratetype")
    plot_free_area(replay, zone, axes[2])
    plot_in_use(replay, axes[3])
    return fig

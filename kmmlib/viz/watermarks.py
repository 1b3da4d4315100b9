"""Pictures for chapter 05: a zone's free pages against min, low and high through a burst.

The data come from :func:`kmmlib.mm.watermark.run_burst` (a seeded workload on
:class:`~kmmlib.mm.watermark.WatermarkModel`); this module only draws them, so a notebook can
print the same history's :meth:`~kmmlib.mm.watermark.BurstHistory.summary` as checked text.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from kmmlib.mm.watermark import BurstHistory, WatermarkModel, burst_ops, run_burst

_LEVELS = (("min", "#d62728"), ("low", "#ff7f0e"), ("high", "#2ca02c"))


def plot_burst(history: BurstHistory | None = None, *, seed: int = 1, ax=None,
               title: str | None = None):
    """Free pages per tick with the min/low/high lines, kswapd's awake ticks shaded and the
    ticks with direct reclaim marked. Without ``history``, runs :func:`burst_ops` (``seed``) on
    a 1 GiB one-zone machine. Returns the figure."""
    if history is None:
        history = run_burst(WatermarkModel.one_zone(), burst_ops(seed))
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4))
    else:
        fig = ax.figure
    ticks = range(1, len(history.free) + 1)
    for t, awake in zip(ticks, history.kswapd_awake, strict=True):
        if awake:
            ax.axvspan(t - 0.5, t + 0.5, color="#1f77b4", alpha=0.12, lw=0)
    ax.step(ticks, history.free, where="mid", color="black", lw=1.4, label="free pages")
    for name, color in _LEVELS:
        level = getattr(history.wmark, name)
        ax.axhline(level, color=color, ls="--", lw=1.2, label=f"{name} ({level})")
    stall_t = [t for t, s in zip(ticks, history.stalls, strict=True) if s]
    stall_y = [f for f, s in zip(history.free, history.stalls, strict=True) if s]
    if stall_t:
        ax.scatter(stall_t, stall_y, marker="v", color="#d62728", s=18, zorder=3,
                   label="direct reclaim (caller stalls)")
    ax.axvspan(0, 0, color="#1f77b4", alpha=0.12, label="kswapd awake")   # legend entry only
    w = history.wmark
    span = w.high - w.min
    ax.set_ylim(w.min - span, max(max(history.free), w.high) + span // 2)
    ax.set_xlim(0.5, len(history.free) + 0.5)
    ax.set_xlabel("tick")
    ax.set_ylabel(f"free pages in {history.zone}")
    ax.set_title(title or "kswapd wakes at low, sleeps at high; below min, callers reclaim")
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    fig.tight_layout()
    return fig


def plot_zone_levels(model: WatermarkModel, ax=None):
    """One bar per populated zone, from 0 to 1.3 × the larger of its free pages and its promo
    watermark plus its largest protection, with its
    min/low/high marks and its free pages (log scale: DMA and DMA32 differ 200-fold)."""
    zones = [z for z in model.zones if z.present]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 1 + 0.6 * len(zones)))
    else:
        fig = ax.figure
    for y, z in enumerate(zones):
        top = max(z.free, z.wmark.promo + max(z.lowmem_reserve)) * 1.3
        ax.barh(y, top, color="#eeeeee", height=0.6)
        ax.barh(y, max(z.free, 1), color="#1f77b4", height=0.35, label="free" if y == 0 else "")
        for name, color in _LEVELS:
            x = getattr(z.wmark, name)
            ax.plot([x, x], [y - 0.35, y + 0.35], color=color, lw=2,
                    label=name if y == 0 else "")
    ax.set_yticks(range(len(zones)), [z.name for z in zones])
    ax.set_xscale("log")
    ax.set_xlabel("pages (log scale)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig

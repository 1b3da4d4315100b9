"""What the figures say about what they draw: axes, legends and edge inputs (each found
wrong by an audit that read the matplotlib objects back)."""

from __future__ import annotations

import lzma

import pytest

plt = pytest.importorskip("matplotlib.pyplot")


def test_address_space_axis_counts_pages_not_cells():
    from kmmlib.userspace.process import PAGE_SIZE, System
    from kmmlib.viz.process import plot_address_space

    mm = System("64M").spawn("p").mm
    mm.mmap(0, 1024 * PAGE_SIZE)
    ax = plot_address_space(mm, max_cells=512)          # two pages a cell
    assert ax.images[0].get_extent()[1] == 1024
    assert "one cell = 2 pages" in ax.get_xlabel()
    plt.close("all")


def test_memory_bar_legend_names_the_zones_top_order():
    from kmmlib.mm.page_alloc import Zone
    from kmmlib.viz.buddy import _order_color, plot_memory_bar

    z = Zone(128, max_order=7, pageblock_order=4)
    ax = plot_memory_bar(z)
    labels = {t.get_text(): h for h, t in zip(ax.get_legend().legend_handles,
                                              ax.get_legend().get_texts(), strict=True)}
    assert "free, order 7" in labels and "free, order 10" not in labels
    assert tuple(labels["free, order 7"].get_facecolor()) == tuple(_order_color(7, 7))
    plt.close("all")


def test_page_map_marks_pageblocks_longer_than_a_row():
    from kmmlib.mm.page_alloc import Zone
    from kmmlib.viz.fragmentation import plot_page_map

    z = Zone(1024)                                        # 512-page pageblocks
    ax = plot_page_map(z)
    assert len(ax.lines) >= 2                             # pfn 0 and pfn 512
    plt.close("all")


def test_kmalloc_waste_legend_shows_the_waste_and_says_of_what():
    from kmmlib.viz.slab import plot_kmalloc_waste

    fig = plot_kmalloc_waste(256)
    ax, ax2 = fig.axes
    assert "waste %" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax2.get_ylabel() == "waste, % of the bytes reserved"
    plt.close("all")


def test_trace_figures_of_a_trace_without_events_say_so(tmp_path):
    from kmmlib.trace.capture import bundled_trace
    from kmmlib.trace.replay import Replay
    from kmmlib.viz import trace as vt

    with lzma.open(bundled_trace(), "rt") as f:
        header = [line for line in f.read().split("\n")[:20] if line.startswith("#")]
    (tmp_path / "empty.txt").write_text("\n".join(header) + "\n")
    rp = Replay().run(tmp_path / "empty.txt")
    for plot, what in ((vt.plot_alloc_rate, "page allocations"),
                       (vt.plot_free_area, "samples of zone Normal"),
                       (vt.plot_busiest_caches, "slab allocations")):
        ax = plot(rp)
        assert [t.get_text() for t in ax.texts] == [f"no {what} in this trace"]
    plt.close("all")

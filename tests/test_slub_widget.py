"""The slab explorer widget and chapter 08's pictures: buttons drive the model, the SVG shows
one square per object, and each plot is drawn from the data it claims to show."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from kmmlib.mm.vmalloc import Vmalloc  # noqa: E402
from kmmlib.procfs.slabinfo import parse_slabinfo  # noqa: E402
from kmmlib.slab.slub import Slub, make_zone  # noqa: E402
from kmmlib.viz import slab as V  # noqa: E402
from kmmlib.widgets.slab import DEFAULT_SCRIPT, SlabExplorerWidget, slabs_svg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_buttons_drive_the_model():
    w = SlabExplorerWidget(256, nr_pages=32)
    assert w.free_button.disabled and w.stepper.pos == 0
    for _ in range(17):
        w.step_button.click()
    model = w.stepper.model
    assert len(model.objects) == 17 and "cpu 0 slab" in w.text
    assert [v for _, v in w.free_choice.options] == list(range(1, 18))
    w.free_choice.value = 3
    w.free_button.click()                           # free #3 into its full slab
    assert 3 not in model.objects and "partial[0]" in w.text
    w.alloc_button.click()
    assert w.stepper.history[-1].op == ("alloc", 0) and len(model.objects) == 17
    w.shrink_button.click()
    assert "kmem_cache_shrink" in w.text
    w.back_button.click()                           # undo the shrink
    assert "cpu 0 slab" in w.text
    w.reset_button.click()
    assert w.stepper.pos == 0 and not w.stepper.model.objects


def test_the_picture_has_a_square_per_object():
    w = SlabExplorerWidget(256, nr_pages=32, script=DEFAULT_SCRIPT[:20])
    w.stepper.run()
    w.refresh()
    svg = w.drawing.value
    model = w.stepper.model
    slabs = len(model.cache.slabs)
    assert svg.count("<rect") == slabs * model.cache.objects_per_slab
    assert svg.count("object #") == len(model.objects)
    assert "free (per-cpu freelist)" in svg and "free (slab freelist)" in svg
    assert svg == slabs_svg(model)


def test_two_cpu_widget_frees_remotely():
    w = SlabExplorerWidget(512, nr_cpus=2, nr_pages=64, script=[("alloc", 0)] * 3)
    w.stepper.run()
    w.refresh()
    w.cpu_choice.value = 1
    w.free_choice.value = 2
    w.free_button.click()
    assert w.stepper.model.cache.stat["FREE_FROZEN"] == 1


def test_pictures_are_drawn_from_their_data():
    import matplotlib.pyplot as plt

    rows = parse_slabinfo((ROOT / "kmmlib" / "data" / "snapshot" / "slabinfo").read_text())
    fig = V.plot_slab_orders(rows, 2)
    dots = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert dots == len(rows)
    plt.close(fig)
    zone = make_zone(4096)
    slub = Slub(zone, nr_cpus=2)
    s = slub.kmem_cache_create("demo", 256)
    for _ in range(20):
        slub.kmem_cache_alloc(s)
    fig = V.plot_cache(slub, "demo")
    squares = [p for p in fig.axes[0].patches if p.get_width() < 1]
    assert len(squares) == 2 * s.objects_per_slab
    plt.close(fig)
    vm = Vmalloc(zone, slub)
    rng = random.Random(1)
    held = [zone.alloc_pages("GFP_KERNEL", 0) for _ in range(100)]
    for p in rng.sample(held, 50):
        zone.free(p, 0)
    fig = V.plot_kmalloc_vs_vmalloc(slub, vm, slub.kmalloc(16384), vm.vmalloc(16384))
    assert len(fig.axes[0].lines) == 2 * (4 + 4)
    plt.close(fig)
    for fig in (V.plot_allocator_designs(), V.plot_kmalloc_waste(256, trace_sizes=[60, 100])):
        assert fig.axes
        plt.close(fig)

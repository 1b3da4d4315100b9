"""The layout explorer widget and chapter 03's pictures: what they show follows the model."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from kmmlib.layout import layout  # noqa: E402
from kmmlib.userspace import maps  # noqa: E402
from kmmlib.viz import layout as viz  # noqa: E402
from kmmlib.widgets.layout import LayoutExplorer, layout_svg  # noqa: E402


def test_explorer_text_is_the_table_and_the_translation():
    w = LayoutExplorer(kernel="6.8", address="ffff000000123456")
    assert layout("arm64", kernel="6.8", ram=1 << 30).doc_table() in w.text
    assert "__pa()        = 0x40123456" in w.text
    assert "<pre" in w.view.value and "<svg" in w.drawing.value


def test_va_choices_follow_page_size_and_kernel():
    w = LayoutExplorer(kernel="6.1")
    w.page_size.value = "16K"
    assert tuple(w.va_bits.options) == (47, 48) and w.va_bits.value == 48
    w.kernel.value = "6.12"
    assert tuple(w.va_bits.options) == (47, 48, 52)
    w.page_size.value = "64K"
    w.va_bits.value = 52
    assert w.text.startswith("arm64, Linux 6.12 (6.9+ layout), 64K pages, 52-bit VA")


def test_other_arches_and_bad_input_show_messages_not_tracebacks():
    w = LayoutExplorer()
    w.arch.value = "x86_64"
    w.levels.value = 5
    assert w.kernel.disabled and not w.levels.disabled
    assert "5-level" in w.text
    w.arch.value = "arm"
    w.address.value = "c0001000"
    assert "__pa()        = 0x80001000" in w.text
    w.address.value = "nothex"
    assert "address 'nothex'" in w.text
    w.ram.value = "lots"
    assert w.text.startswith("error: cannot read 'lots'") and w.drawing.value == ""


def test_svg_marks_the_address_and_draws_every_region():
    lay = layout("arm64", kernel="6.12")
    svg = layout_svg(lay, mark=0xFFFF800000001000)
    assert svg.count("<rect") == len(lay.main_regions)
    assert svg.count("<polygon") == 1


def test_log_heights_are_log2_of_sizes():
    rows = viz.log_heights(layout("arm64", kernel="6.8"))
    by_name = {r.name: h for r, y, h in rows}
    assert by_name["vmemmap"] == 41 - 20 + 1            # 2 TB = 2**41 bytes
    assert by_name["modules"] == 31 - 20 + 1            # 2 GB
    ys = [y for _, y, _ in rows]
    assert ys == sorted(ys)                              # address order, no overlap


def test_pictures_draw(monkeypatch):
    import matplotlib.pyplot as plt

    for fig in (viz.plot_layout(layout("arm64", kernel="6.12", ram=1 << 30)),
                viz.plot_column(layout("arm64", kernel="4.14", ram=1 << 30)),
                viz.plot_lowmem_highmem(1 << 30), viz.plot_process(maps.sample())):
        texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
        assert texts
        plt.close(fig)
    fig = viz.plot_lowmem_highmem(1 << 30)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert re.search(r"lowmem\n.*\n896MB", texts) and "128MB" in texts
    plt.close(fig)


@pytest.mark.parametrize("arch", ["arm64", "x86_64", "arm"])
def test_ram_below_a_page_and_a_bad_address_get_a_plain_message(arch):
    from kmmlib.widgets.layout import LayoutExplorer

    w = LayoutExplorer(arch=arch)
    for ram in ("0", "100"):
        w.ram.value = ram
        assert w.text.startswith("error: RAM must be at least one page (4 KiB)"), w.text
    w.ram.value = "1G"
    w.address.value = "xyz"
    assert w.text.splitlines()[-1].startswith("address 'xyz': not a hexadecimal address")

"""Figures the chapters' prose states about what the code computes.

nbval checks every code cell's output, but nobody checks the markdown around it: a sentence can
go stale when the code changes. Each test here finds the sentence in its notebook and recomputes
its figure with kmmlib, so a change to either the text or the code shows up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def prose(name: str) -> str:
    """A notebook's markdown, with every run of whitespace made one space (sentences wrap)."""
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    text = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return " ".join(text.split())


def test_03_kasan_shadow_is_the_top_quarter_of_the_linear_map():
    from kmmlib.layout import layout

    assert "steals the top quarter of the linear map for its shadow bytes (32 TB: one shadow " \
           "byte for every 8 bytes of the kernel's 256 TB half)" in prose("03_virtual_layout.ipynb")
    regions = {r.name: r for r in layout("arm64", kernel="6.8", ram=1 << 30).regions}
    shadow = regions["kasan shadow region"]
    linear = regions["kernel logical memory map"]
    assert shadow.size == 32 << 40
    assert shadow.size * 4 == linear.size
    assert shadow.size * 8 == 256 << 40                     # the kernel's half of 48-bit VA
    assert shadow.start + shadow.size == linear.start + linear.size     # the top of it


def test_03_smallest_guard_of_the_log_scale_map_is_8_mb():
    from kmmlib.layout import layout

    assert "so that an 8 MB guard and a 128 TB region both show" in prose(
        "03_virtual_layout.ipynb")
    regions = layout("arm64", kernel="6.8", ram=1 << 30).regions
    guards = [r.size for r in regions if r.name == "[guard region]"]
    assert min(guards) == 8 << 20
    assert min(r.size for r in regions) == 8 << 20
    assert any(r.size == 128 << 40 for r in regions)


def test_03_vmemmap_is_64_bytes_per_page_of_the_linear_map():
    from kmmlib.layout import arm64, layout

    assert "vmemmap always 64 bytes per page of the linear map: 1/64 of it with 4 KiB pages, " \
           "1/256 with 16 KiB, 1/1024 with 64 KiB" in prose("03_virtual_layout.ipynb")
    seen = 0
    for psize in (4096, 16384, 65536):
        for va in arm64.va_bits_choices(psize, (6, 12)):
            lay = layout("arm64", kernel="6.12", va_bits=va, page_size=psize)
            linear = lay.region("linear").size
            assert lay.symbols["VMEMMAP_SIZE"] == linear // psize * 64, (psize, va)
            assert lay.symbols["VMEMMAP_SIZE"] * (psize // 64) == linear
            seen += 1
    assert seen == 9                                   # the table of section 4 has nine rows


@pytest.fixture(scope="module")
def bundled_replay():
    from kmmlib.trace.replay import Replay, default_trace

    return Replay().run(default_trace(), parallel=False)


def test_09_order_10_count_only_steps_down(bundled_replay):
    assert "the order-10 count steps down, from 157 to 152, as blocks are split; none is " \
           "merged back in this window" in prose("09_trace_replay.ipynb")
    counts = [row[10] for row in bundled_replay.timeline.nr_free["Normal"]]
    assert (counts[0], counts[-1]) == (157, 152)
    assert counts == sorted(counts, reverse=True)


def test_09_first_pfn_is_4_25_gib_into_memory():
    text = prose("09_trace_replay.ipynb")
    assert "`0x1103b0` is 4.25 GiB into physical memory, in ZONE_NORMAL" in text
    assert round(0x1103B0 * 4096 / (1 << 30), 2) == 4.25
    from kmmlib.trace.replay import machine_setup

    normal = next(z for z in machine_setup().zones if z.name == "Normal")
    assert normal.start_pfn <= 0x1103B0 < normal.start_pfn + normal.pages

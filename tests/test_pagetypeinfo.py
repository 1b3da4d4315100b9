"""/proc/pagetypeinfo: parse the real machine's, render it back byte for byte, render a
simulated zone's in the kernel's format (mm/vmstat.c ``pagetypeinfo_show()``)."""

from __future__ import annotations

import re

import pytest

from kmmlib.errors import ParseError
from kmmlib.mm.page_alloc import Zone
from kmmlib.procfs.buddyinfo import parse_buddyinfo
from kmmlib.procfs.pagetypeinfo import (
    explain,
    from_zones,
    parse_pagetypeinfo,
    read_pagetypeinfo,
    render_pagetypeinfo,
)
from kmmlib.procfs.source import ProcSource, snapshot


@pytest.fixture(scope="module")
def snap_text() -> str:
    return snapshot().read("pagetypeinfo")


def test_snapshot_round_trip_byte_for_byte(snap_text):
    assert render_pagetypeinfo(parse_pagetypeinfo(snap_text)) == snap_text


def test_snapshot_numbers(snap_text):
    info = parse_pagetypeinfo(snap_text)
    assert (info.pageblock_order, info.pages_per_block) == (9, 512)
    assert info.types == ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
    assert [z.zone for z in info.zones] == ["DMA", "DMA32", "Normal"]
    normal = info.zone("Normal")
    assert normal.free["Unmovable"] == [63, 26, 18, 8, 3, 1, 0, 0, 1, 1, 0]
    assert normal.blocks == {"Unmovable": 62, "Movable": 245, "Reclaimable": 13,
                             "HighAtomic": 0, "Isolate": 0}
    assert normal.mixed is None                   # the kernel has no page_owner table


def test_types_add_up_to_the_same_machines_buddyinfo(snap_text):
    # Both files were read from the same running kernel a moment apart: the per-type counts
    # summed over the types are /proc/buddyinfo's nr_free.
    info = parse_pagetypeinfo(snap_text)
    for line in parse_buddyinfo(snapshot().read("buddyinfo")):
        assert info.zone(line.zone).nr_free() == list(line.nr_free)
    assert info.zone("Normal").free_pages() == 41696


def test_block_counts_step_from_the_zone_start():
    # pagetypeinfo_showblockcount_print() steps by pageblock_nr_pages from zone_start_pfn:
    # ZONE_DMA of the snapshot's machine (pfns 1-4095) counts 8 pageblocks, as the real file
    # says (1 Unmovable + 7 Movable).
    dma = Zone(4095, 1, name="DMA")
    info = from_zones([dma])
    assert sum(info.zone("DMA").blocks.values()) == 8 == sum(
        parse_pagetypeinfo(snapshot().read("pagetypeinfo")).zone("DMA").blocks.values())


def test_simulated_zone_in_the_kernels_format(snap_text):
    z = Zone(4096, 0, name="Normal")
    assert z.alloc(0, "Unmovable") == 0        # claims the order-10 block at 0: 2 pageblocks
    text = render_pagetypeinfo(from_zones([z], page_owner=True))
    lines = text.splitlines()
    real = snap_text.splitlines()
    # The header lines are the real kernel's, byte for byte.
    assert lines[:4] == real[:4]
    assert lines[9] == "" and lines[10] == real[20]
    assert lines[4] == ("Node    0, zone   Normal, type    Unmovable "
                        + "     1 " * 10 + "     0 ")
    assert lines[5].endswith("     0      3 ")          # Movable: three order-10 blocks
    assert lines[11] == "Node 0, zone   Normal            2            6            0" \
                        "            0            0 "
    assert lines[12] == "" and lines[13].startswith("Number of mixed blocks ")
    assert parse_pagetypeinfo(text).zone("Normal").mixed == {
        "Unmovable": 0, "Movable": 0, "Reclaimable": 0, "HighAtomic": 0, "Isolate": 0}
    assert render_pagetypeinfo(parse_pagetypeinfo(text)) == text


def test_overflow_marker_and_cma_column():
    # A CMA kernel has six types; a list of 100000 blocks or more prints ">100000".
    names = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate"]
    text = ("Page block order: 9\nPages per block:  512\n\n"
            f"{'Free pages count per migrate type at order':<43} "
            + "".join(f"{o:6d} " for o in range(11)) + "\n")
    for t in names:
        counts = [100000 if t == "Movable" and o == 0 else o for o in range(11)]
        text += (f"Node {0:4d}, zone {'Normal':>8}, type {t:>12} "
                 + "".join(f"{'>' if n >= 100000 else ''}{n:6d} " for n in counts) + "\n")
    text += f"\n{'Number of blocks type ':<23}" + "".join(f"{t:>12} " for t in names) + "\n"
    text += f"Node 0, zone {'Normal':>8} " + "".join(f"{n:12d} " for n in range(6)) + "\n"
    info = parse_pagetypeinfo(text)
    assert info.types == tuple(names)
    z = info.zone("Normal")
    assert z.overflow["Movable"][0] and z.free["Movable"][0] == 100000
    assert z.blocks["CMA"] == 4
    assert render_pagetypeinfo(info) == text


def test_two_nodes():
    a, b = Zone(2048, 0, name="Normal", node=0), Zone(2048, 2048, name="Normal", node=1)
    text = render_pagetypeinfo(from_zones([a, b]))
    assert text.count("Page block order: 9") == 2
    info = parse_pagetypeinfo(text)
    assert [(z.node, z.zone) for z in info.zones] == [(0, "Normal"), (1, "Normal")]
    assert render_pagetypeinfo(info) == text


@pytest.mark.parametrize("bad", [
    "",
    "hello\n",
    "Page block order: 9\nPages per block:  512\n\nFree pages count per migrate type at order "
    "     0      1 \nNode    0, zone   Normal, type    Unmovable      1 \n",
    "Page block order: 9\nPages per block:  512\n\nFree pages count per migrate type at order "
    "     0 \nNode    0, zone   Normal, type    Unmovable      x \n",
    "Page block order: x\n",
])
def test_malformed_text_is_refused(bad):
    with pytest.raises(ParseError):
        parse_pagetypeinfo(bad)


def test_zones_must_agree():
    with pytest.raises(ParseError):
        from_zones([Zone(64), Zone(64, 64, pageblock_order=3)])


def test_read_and_explain(tmp_path, snap_text):
    (tmp_path / "pagetypeinfo").write_text(snap_text)
    info = read_pagetypeinfo(ProcSource(tmp_path))
    text = explain(info)
    assert "Node 0, zone Normal: 41696 free pages (162 MiB), 320 pageblocks" in text
    assert "Unmovable        62 pageblocks ( 19.4 %)" in text
    assert re.search(r"Movable\s+1528 pageblocks \(100\.0 %\)", text)

"""/proc/zoneinfo parsing, checked against the real snapshot and its sibling files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmmlib.errors import ParseError
from kmmlib.procfs.source import snapshot
from kmmlib.procfs.zoneinfo import ZoneInfo, parse_zoneinfo, zones_of_node


@pytest.fixture(scope="module")
def snap_zones() -> list[ZoneInfo]:
    return parse_zoneinfo(snapshot().read("zoneinfo"))


def _vmstat(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


def test_every_zone_in_file_order_unpopulated_too(snap_zones):
    text = snapshot().read("zoneinfo")
    headers = [line.split("zone")[1].strip() for line in text.splitlines()
               if line.startswith("Node ")]
    assert [z.name for z in snap_zones] == headers == ["DMA", "DMA32", "Normal", "Movable",
                                                      "Device"]
    assert [z.populated for z in snap_zones] == [True, True, True, False, False]
    # buddyinfo lists exactly the populated zones (frag_show walks populated zones only).
    buddy = [line.split()[3] for line in snapshot().read("buddyinfo").splitlines()]
    assert buddy == [z.name for z in snap_zones if z.populated]


def test_the_snapshot_figures(snap_zones):
    dma32 = snap_zones[1]
    assert (dma32.pages_free, dma32.min, dma32.low, dma32.high, dma32.promo) == \
        (772915, 13883, 17353, 20823, 24293)
    assert (dma32.spanned, dma32.present, dma32.managed) == (1044480, 782336, 772915)
    assert dma32.protection == [0, 0, 640, 640, 640]
    assert dma32.start_pfn == 4096
    assert dma32.stats["nr_free_pages_blocks"] == 771072 and dma32.stats["boost"] == 0


def test_zone_counters_add_up_to_vmstat(snap_zones):
    # /proc/vmstat's zone counters are the sum over zones (global_zone_page_state), and
    # they were read at the same moment as zoneinfo for these two.
    vm = _vmstat(snapshot().read("vmstat"))
    for name in ("nr_free_pages", "nr_free_pages_blocks", "nr_zone_active_file"):
        assert sum(z.stats.get(name, 0) for z in snap_zones) == vm[name], name
    assert sum(z.pages_free for z in snap_zones) == vm["nr_free_pages"]


def test_shapes(snap_zones):
    nproc = int(snapshot().read("nproc"))
    for z in snap_zones:
        assert len(z.protection) == len(snap_zones)     # one entry per zone type
        assert z.protection[: snap_zones.index(z) + 1] == [0] * (snap_zones.index(z) + 1)
        if z.populated:
            assert [p["cpu"] for p in z.pagesets] == list(range(nproc))
            assert {"count", "high", "batch", "vm_stats_threshold"} <= set(z.pagesets[0])
            assert z.start_pfn is not None and "nr_free_pages" in z.stats
        else:   # an unpopulated zone stops after its protection line
            assert z.pagesets == [] and z.start_pfn is None
            assert set(z.stats) == {"boost", "cma"}
    # per-node stats come once, before the node's first populated zone
    assert [bool(z.node_stats) for z in snap_zones] == [True, False, False, False, False]
    assert snap_zones[0].node_stats["nr_kernel_stack"] == 1272
    assert zones_of_node(snap_zones, 0) == snap_zones and zones_of_node(snap_zones, 1) == []


def test_pageset_high_is_not_the_watermark(snap_zones):
    normal = snap_zones[2]
    assert normal.high == 4413
    assert [p["high"] for p in normal.pagesets] == [1839, 2452]


OLD_4X = """\
Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 7
      nr_active_anon 9
  pages free     3977
        min      5
        low      6
        high     7
   node_scanned  0
        spanned  4095
        present  3998
        managed  3977
      nr_free_pages 3977
      nr_zone_inactive_anon 0
        protection: (0, 2893, 3821, 3821)
  pagesets
    cpu: 0
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 6
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone  Movable
  pages free     0
        min      0
        low      0
        high     0
   node_scanned  0
        spanned  0
        present  0
        managed  0
        protection: (0, 0, 0, 0)
"""


def test_an_older_layout_parses():
    dma, movable = parse_zoneinfo(OLD_4X)
    assert dma.promo is None and (dma.min, dma.low, dma.high) == (5, 6, 7)
    assert dma.protection == [0, 2893, 3821, 3821]
    assert dma.stats["node_scanned"] == 0 and dma.stats["nr_free_pages"] == 3977
    assert dma.pagesets == [{"cpu": 0, "count": 0, "high": 0, "batch": 1,
                             "vm_stats_threshold": 6}]
    assert dma.node_stats == {"nr_inactive_anon": 7, "nr_active_anon": 9}
    assert not movable.populated and movable.start_pfn is None


@pytest.mark.parametrize("text, where", [
    ("", "no 'Node N, zone NAME'"),
    ("  pages free 3\n", "line 1"),
    ("Node 0, zone DMA\n  pages free     x\n", "line 2"),
    ("Node 0, zone DMA\n  pages free 1\n  what is this\n", "line 3"),
    ("Node 0, zone DMA\n        min 5\n", "line 2"),
    ("Node 0, zone DMA\n  pages free 1\n    cpu: 0\n", "line 3"),
    ("Node 0, zone DMA\n  pages free 1\n  pagesets\n    count: 1\n", "line 4"),
    ("Node 0, zone DMA\n  pages free 1\n        protection: (0, x)\n", "line 3"),
    ("Node 0, zone DMA\nNode 0, zone DMA32\n  pages free 1\n", "line 2"),
    ("Node 0, zone DMA\n  pages free 1\nNode 0, zone DMA32\n", "DMA32"),
])
def test_malformed_text_names_the_line(text, where):
    with pytest.raises(ParseError, match=where):
        parse_zoneinfo(text)


@pytest.mark.skipif(not Path("/proc/zoneinfo").exists(), reason="no /proc/zoneinfo here")
def test_the_live_file_parses():
    zones = parse_zoneinfo(Path("/proc/zoneinfo").read_text())
    assert zones and any(z.populated for z in zones)
    for z in zones:
        assert z.min <= z.low <= z.high and z.managed <= z.present <= z.spanned
        assert (z.start_pfn is not None) == z.populated

"""Zone types per config, zone extents from RAM ranges, and the zonelist fallback order."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmmlib.errors import BadRequest, ParseError
from kmmlib.machine import PRESETS
from kmmlib.mm import gfp
from kmmlib.mm.zone import (
    CONFIGS,
    ZoneConfig,
    ZoneDesc,
    build_zonelists,
    build_zonerefs_node,
    for_each_zone_zonelist,
    free_area_init,
    node_zones,
    with_managed,
    zone_config,
)
from kmmlib.procfs.zoneinfo import parse_zoneinfo

SNAP = Path(__file__).resolve().parent.parent / "kmmlib" / "data" / "snapshot"


@pytest.fixture(scope="module")
def snap_zones():
    return parse_zoneinfo((SNAP / "zoneinfo").read_text())


def test_the_snapshots_kernel_is_the_x86_64_config(snap_zones):
    cfg = ZoneConfig.from_names([z.name for z in snap_zones])
    assert cfg.names == CONFIGS["x86_64"].names
    assert cfg.MAX_NR_ZONES == len(snap_zones[0].protection)   # protection has one per zone
    ratio = [int(x) for x in (SNAP / "lowmem_reserve_ratio").read_text().split()]
    assert cfg.default_lowmem_reserve_ratio() == ratio


def test_zone_indices_depend_on_the_config():
    x86_64, i386 = zone_config("x86_64"), zone_config("i386")
    assert x86_64.index("Normal") == 2 and i386.index("Normal") == 1
    assert i386.index("HighMem") == 2 and i386.is_highmem(2)
    with pytest.raises(BadRequest, match="has no zone 'HighMem'"):
        x86_64.index("HighMem")
    assert x86_64.wmark_small_min() == [False, False, False, True, False]
    with pytest.raises(BadRequest, match="unknown zone config"):
        zone_config("sparc")


def test_names_out_of_enum_order_are_refused():
    with pytest.raises(ParseError, match="not a kernel's enum zone_type"):
        ZoneConfig.from_names(["DMA32", "DMA", "Normal", "Movable"])
    with pytest.raises(ParseError):
        ZoneConfig.from_names(["DMA", "Normal"])          # Movable always exists


def test_free_area_init_gives_the_snapshots_zone_extents(snap_zones):
    # The snapshot's RAM: [1, 159) and [256, 786432) below 4 GiB (the PCI hole above 3 GiB),
    # then [4 GiB, 25 GiB). The zones' start/spanned/present must be the kernel's.
    zones = free_area_init([(1, 159), (256, 786432), (1 << 20, 6553600)], "x86_64")
    for z, zi in zip(zones, snap_zones, strict=True):
        assert (z.name, z.spanned, z.present) == (zi.name, zi.spanned, zi.present)
        if zi.present:
            assert z.start_pfn == zi.start_pfn


def test_free_area_init_small_machines():
    z = free_area_init([(0, 1 << 18)], "x86_64")           # 1 GiB: no ZONE_NORMAL at all
    assert [(x.name, x.spanned) for x in z if x.spanned] == [("DMA", 4096), ("DMA32", 258048)]
    z = free_area_init([(0, 1 << 18)], "i386")             # 1 GiB on 32-bit: 128 MiB highmem
    assert [(x.name, x.present) for x in z if x.present] == [
        ("DMA", 4096), ("Normal", (896 << 8) - 4096), ("HighMem", (1024 - 896) << 8)]
    z = free_area_init([(0, 100)], "x86_64", reserved=[10, 0, 0, 0, 0])
    assert z[0].managed == 90
    with pytest.raises(BadRequest, match="overlap"):
        free_area_init([(0, 10), (5, 20)])
    with pytest.raises(BadRequest, match="reserved"):
        free_area_init([(0, 10)], reserved=[11, 0, 0, 0, 0])


def test_zonedesc_checks_its_sizes():
    with pytest.raises(BadRequest, match="managed ≤ present ≤ spanned"):
        ZoneDesc("DMA", 0, 0, 10, 20, 5)
    with pytest.raises(BadRequest, match="negative"):
        ZoneDesc("DMA", 0, -1)
    z = ZoneDesc("Normal", 2, 100, 50, 40, 30)
    assert (z.end_pfn, z.populated, z.is_managed) == (150, True, True)


def test_machine_preset_zones_match_zoneinfo(snap_zones):
    zones = node_zones(PRESETS["x86_64-snapshot"].zones, "x86_64")
    got = [(z.name, z.start_pfn if z.present else None, z.spanned, z.present, z.managed)
           for z in zones]
    want = [(z.name, z.start_pfn, z.spanned, z.present, z.managed) for z in snap_zones]
    assert got == want


def test_zonelist_is_highest_populated_zone_first(snap_zones):
    zones = [ZoneDesc.from_zoneinfo(z, i) for i, z in enumerate(snap_zones)]
    zl = build_zonerefs_node(zones)
    assert [z.name for z in zl] == ["Normal", "DMA32", "DMA"]     # Movable, Device: empty
    assert [z.idx for z in zl] == sorted((z.idx for z in zl), reverse=True)
    names = tuple(z.name for z in snap_zones)

    def walk(mask):
        return [z.name for z in for_each_zone_zonelist(zl, gfp.gfp_zone(mask, names))]

    assert walk(gfp.GFP_KERNEL) == ["Normal", "DMA32", "DMA"]
    assert walk(gfp.GFP_HIGHUSER_MOVABLE) == ["Normal", "DMA32", "DMA"]
    assert walk(gfp.GFP_DMA32) == ["DMA32", "DMA"]
    assert walk(gfp.GFP_DMA) == ["DMA"]


def test_zonelist_counts_populated_not_managed_zones():
    # A zone whose pages were all ballooned out stays in the zonelist (populated_zone()).
    zones = node_zones(PRESETS["x86_64-snapshot"].zones, "x86_64")
    zones = with_managed(zones, {"DMA32": 0})
    assert [z.name for z in build_zonerefs_node(zones)] == ["Normal", "DMA32", "DMA"]


def test_two_nodes_local_first():
    n0 = free_area_init([(0, 1 << 20)], node=0)             # 4 GiB: DMA, DMA32
    n1 = free_area_init([(1 << 20, 1 << 21)], node=1)       # 4 GiB more: Normal only
    zl = build_zonelists([n0, n1], local=1)
    assert [(z.node, z.name) for z in zl] == [(1, "Normal"), (0, "DMA32"), (0, "DMA")]
    with pytest.raises(BadRequest, match="every node once"):
        build_zonelists([n0, n1], local=0, node_order=[1, 0])

"""A Machine builds its zones as boot does, and the result matches the real machine's."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.machine import Machine
from kmmlib.procfs.source import snapshot
from kmmlib.procfs.zoneinfo import parse_zoneinfo


def test_describing_a_machine_builds_nothing():
    m = Machine("x86_64-snapshot")
    m.describe()
    assert m._allocator is None


@pytest.fixture(scope="module")
def snapshot_machine():
    return Machine("x86_64-snapshot")


def test_snapshot_machine_has_the_kernels_watermarks_and_protection(snapshot_machine):
    # Built from the preset's managed pages and min_free_kbytes alone, the zones get exactly
    # the min/low/high/promo and protection arrays the real kernel printed.
    real = {z.name: z for z in parse_zoneinfo(snapshot().read("zoneinfo"))}
    for zone in snapshot_machine.zones:
        r = real[zone.name]
        assert zone.managed_pages == r.managed
        assert [zone.min_wmark_pages(), zone.low_wmark_pages(), zone.high_wmark_pages()] == \
            [r.min, r.low, r.high], zone.name
        assert zone.lowmem_reserve == r.protection, zone.name


def test_snapshot_machine_has_the_kernels_pcp_batch(snapshot_machine):
    real = {z.name: z for z in parse_zoneinfo(snapshot().read("zoneinfo"))}
    for zone in snapshot_machine.zones:
        assert all(p.batch == real[zone.name].pagesets[cpu]["batch"]
                   for cpu, p in enumerate(zone.pcp)), zone.name
        assert len(zone.pcp) == len(real[zone.name].pagesets) == 2


def test_gfp_masks_route_to_zones(snapshot_machine):
    m = snapshot_machine
    pfn = m.alloc_pages("GFP_HIGHUSER_MOVABLE", 0)
    assert m.page_allocator.zone_of(pfn).name == "Normal"
    dma = m.alloc_pages("GFP_DMA|__GFP_MOVABLE", 0)
    assert m.page_allocator.zone_of(dma).name == "DMA"
    m.free_pages(pfn)
    m.free_pages(dma)


def test_alloc_free_round_trip_restores_buddyinfo():
    m = Machine("tiny")
    before = m.buddyinfo()
    blocks = [(m.alloc_pages("GFP_HIGHUSER_MOVABLE", o), o) for o in (0, 3, 1, 2, 0)]
    assert all(pfn is not None for pfn, _ in blocks) and m.buddyinfo() != before
    for pfn, order in reversed(blocks):
        m.free_pages(pfn, order)
    assert m.buddyinfo() == before


def test_every_preset_boots_with_all_managed_pages_free():
    for name in ("arm64-virt-1g", "arm32-highmem-1g", "tiny"):
        m = Machine(name)
        for spec, zone in zip(m.zone_specs, m.zones, strict=True):
            assert zone.nr_free_pages == spec.managed_pages
    with pytest.raises(BadRequest, match="no populated zone"):
        Machine("tiny").zone("DMA32")

"""The buddy allocator (kmmlib.mm.page_alloc) against mm/page_alloc.c, 6.18.

Expected values are the kernel's: worked out from the source in the comments, or read from
the bundled snapshot of a real 6.18 machine. The hand-written end-to-end scenarios live in
tests/data/buddy/ (tests/test_buddy_cli.py); random sequences in test_page_alloc_properties.py.
"""

from __future__ import annotations

import pytest

from kmmlib.errors import BadPageState, BadRequest, KmmError
from kmmlib.events import Collect
from kmmlib.mm import gfp as G
from kmmlib.mm.mem_map import PAGE_OFFSET_X86_64
from kmmlib.mm.migratetype import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    MigrateType,
    parse_migratetype,
)
from kmmlib.mm.page_alloc import (
    ZONE_BELOW_HIGH,
    PageAllocator,
    Zone,
    boot_free_blocks,
    find_buddy_pfn,
    zone_batchsize,
    zone_highsize,
)
from kmmlib.procfs.source import ProcSource, snapshot
from kmmlib.procfs.zoneinfo import parse_zoneinfo

GFP_KERNEL = G.DEFAULT.masks["GFP_KERNEL"]
GFP_ATOMIC = G.DEFAULT.masks["GFP_ATOMIC"]
GFP_NOWARN = G.DEFAULT.masks["__GFP_NOWARN"]
GFP_COMP = G.DEFAULT.masks["__GFP_COMP"]
GFP_HIGH = G.DEFAULT.masks["__GFP_HIGH"]
GFP_MEMALLOC = G.DEFAULT.masks["__GFP_MEMALLOC"]


# -- boot ------------------------------------------------------------------------------------

def test_boot_blocks_follow_free_pages_memory():
    # order = min(MAX_PAGE_ORDER, __ffs(start)), lowered until it fits before end.
    assert boot_free_blocks(0, 37) == [(0, 5), (32, 2), (36, 0)]
    assert boot_free_blocks(0, 513) == [(0, 9), (512, 0)]
    assert boot_free_blocks(0, 3 << 10) == [(0, 10), (1024, 10), (2048, 10)]
    # ZONE_DMA on x86_64 starts at pfn 1 (pfn 0 is the firmware's): 1, 2-3, 4-7, … 2048-4095.
    assert boot_free_blocks(1, 4096) == [(1, 0), (2, 1), (4, 2), (8, 3), (16, 4), (32, 5),
                                         (64, 6), (128, 7), (256, 8), (512, 9), (1024, 10),
                                         (2048, 10), (3072, 10)]


def test_zone_boot_state():
    z = Zone(37)
    assert z.free_blocks() == [(0, 5, MIGRATE_MOVABLE), (32, 2, MIGRATE_MOVABLE),
                               (36, 0, MIGRATE_MOVABLE)]
    assert z.managed_pages == z.nr_free_pages == 37
    assert all(z.mem_map.refcount[i] == 0 for i in range(37))   # __free_pages_core()
    assert z.mem_map.PageBuddy(32) and z.mem_map.buddy_order(32) == 2
    assert not z.mem_map.PageBuddy(33)
    z.check()


def test_boot_blocks_go_to_the_tail_in_ascending_order():
    z = Zone(4 << 10)
    assert z.free_list(10) == [0, 1024, 2048, 3072]            # FPI_TO_TAIL


def test_reserved_ranges_stay_allocated():
    z = Zone(64, reserved=[(0, 1), (40, 48)])
    assert z.managed_pages == 64 - 9
    assert z.free_blocks() == [(p, o, 1) for p, o in
                               boot_free_blocks(1, 40) + boot_free_blocks(48, 64)]
    assert z.mem_map.refcount[0] == 1 and z.mem_map.refcount[40] == 1
    with pytest.raises(BadPageState, match="PG_reserved"):
        z.free(40, 0)
    z.check()


def test_arm64_64k_pages_have_larger_orders():
    # arm64 with 64 KiB pages: MAX_PAGE_ORDER 13 and pageblock_order 13 (512 MiB blocks).
    z = Zone(1 << 14, max_order=13, pageblock_order=13)
    assert z.free_list(13) == [0, 8192] and len(z.nr_free()) == 14
    assert len(z.buddyinfo().nr_free) == 14


# -- allocation: __rmqueue_smallest() and expand() ---------------------------------------------

def test_expand_narration_and_order():
    z = Zone(16)
    assert z.alloc(3) == 0            # splits the order-4 block: 8 goes to free_area[3]
    with Collect(z.events) as seen:
        assert z.alloc(0) == 8
    texts = [e.text for e in seen if e.kind == "split"]
    # The issue's own example line, then the next two halves, largest first.
    assert texts == ["split order-3 block at pfn 8: keep 8, free 12 to order 2",
                     "split order-2 block at pfn 8: keep 8, free 10 to order 1",
                     "split order-1 block at pfn 8: keep 8, free 9 to order 0"]
    assert z.free_list(2) == [12] and z.free_list(1) == [10] and z.free_list(0) == [9]
    assert z.nr_free_pages == 16 - 8 - 1


def test_split_halves_go_to_the_head():
    z = Zone(32)
    z.alloc(0)                         # [4]=16 [3]=8 [2]=4 [1]=2 [0]=1
    z.alloc(0)                         # 1
    z.alloc(2)                         # 4
    z.free(4, 2)                       # back to the head of [2]: parent 0's o3 buddy 8 free → tail
    assert z.free_list(2) == [4]
    assert z.alloc(1) == 2             # [1] head
    assert z.alloc(1) == 4             # [2] head 4 split: 6 to the HEAD of [1]
    assert z.free_list(1) == [6]


def test_exhaustion_returns_none_and_says_why():
    z = Zone(4)
    assert z.alloc(2) == 0
    with Collect(z.events) as seen:
        assert z.alloc(0) is None
    assert seen[-1].kind == "alloc_fail" and "no free Movable block" in seen[-1].text
    z.check()


def test_unmovable_falls_back_to_movable():
    # 8 pages: the pageblock (512) is not inside the zone, so try_to_claim_block() cannot
    # move it; __rmqueue_steal() takes the smallest Movable block (chapter 07).
    z = Zone(8)
    with Collect(z.events) as seen:
        assert z.alloc(0, "Unmovable") == 0
    assert [e.kind for e in seen if e.kind in ("steal", "extfrag")] == ["steal", "extfrag"]
    assert z.alloc(0, MigrateType.MOVABLE) == 1


# -- free: __free_one_page() and buddy_merge_likely() ------------------------------------------

def test_find_buddy_pfn_kernel_comment_example():
    # mm/internal.h: "B2 = B1 ^ (1 << O)": pfn 8 at order 1 has buddy 10; parent 8.
    assert find_buddy_pfn(8, 1) == 10 and find_buddy_pfn(10, 1) == 8
    assert find_buddy_pfn(8, 3) == 0 and (8 & find_buddy_pfn(8, 3)) == 0


def test_free_merges_and_narrates():
    z = Zone(8)
    assert z.alloc(0) == 0
    with Collect(z.events) as seen:
        z.free(0, 0)
    assert [e.kind for e in seen] == ["free", "merge", "merge", "merge", "place"]
    assert seen[1].text == "merge pfn 0 with its free buddy 1 → order-1 block at pfn 0"
    assert seen[-1].data == {"pfn": 0, "order": 3, "tail": False, "migratetype": 1}
    assert z.free_list(3) == [0] and z.nr_free() == [0, 0, 0, 1] + [0] * 7


def test_buddy_merge_likely_decides_tail():
    z = Zone(16)
    for _ in range(4):
        z.alloc(0)                    # 0, 1, 2, 3; [2]=4 [3]=8
    # Parent of 2 (order 1 at 2) has order-1 buddy 0: allocated → head.
    assert not z.buddy_merge_likely(2, 3, 0)
    z.free(0, 0)
    z.free(1, 0)                      # 0 and 1 merge: 0 is free at order 1
    assert z.buddy_merge_likely(3, 2, 0)          # parent 2's buddy 0 is free at order 1
    z.free(3, 0)
    with Collect(z.events) as seen:
        z.free(2, 0)                  # merges 2+3, then with 0, then with 4, then with 8
    assert z.free_list(4) == [0]
    assert seen[-1].data["order"] == 4
    z.check()


def test_no_merge_check_at_the_top_orders():
    # buddy_merge_likely() returns false for order >= MAX_PAGE_ORDER - 1.
    z = Zone(2048)
    assert not z.buddy_merge_likely(0, 512, 9)
    assert z.alloc(10) == 0
    z.free(0, 10)
    assert z.free_list(10) == [0, 1024]           # head, even though 1024 is free


# -- bad requests: named errors, kernel-like messages, state intact ----------------------------

def _bad(z: Zone, fn, exc, match):
    before = z.state_key()
    with pytest.raises(exc, match=match):
        fn()
    assert z.state_key() == before
    z.check()


def test_bad_requests_leave_state_intact():
    z = Zone(37)
    a = z.alloc(2)                     # 32
    b = z.alloc(0)                     # 36
    _bad(z, lambda: z.alloc(11), BadRequest, r"invalid order 11.*MAX_PAGE_ORDER \(10\)")
    _bad(z, lambda: z.alloc(-1), BadRequest, "invalid order")
    _bad(z, lambda: z.alloc("2"), BadRequest, "invalid order")
    _bad(z, lambda: z.alloc(0, "Sticky"), BadRequest, "unknown migratetype")
    _bad(z, lambda: z.free(a, 1), BadPageState,
         r"BUG: Bad page state in process kmm  pfn:00020\n.*freed with order 1 but allocated "
         "with order 2")
    _bad(z, lambda: z.free(a + 1, 0), BadPageState, "tail page of the order-2 block")
    _bad(z, lambda: z.free(0, 0), BadPageState, "double free: pfn 0 already heads a free "
                                                "order-5 block")
    _bad(z, lambda: z.free(5, 0), BadPageState, "inside the free order-5 block at pfn 0")
    _bad(z, lambda: z.free(37, 0), BadPageState,
         r"page 0x25 outside node 0 zone Normal \[ 0x0 - 0x25 \]")
    _bad(z, lambda: z.free(b, 11), BadRequest, "invalid order")
    _bad(z, lambda: z.free(1.5, 0), BadRequest, "integer")
    z.free(b, 0)
    _bad(z, lambda: z.free(b, 0), BadPageState, "double free")
    assert all(issubclass(e, KmmError) for e in (BadPageState, BadRequest))


def test_refcount_cannot_go_negative():
    z = Zone(8)
    p = z.alloc(0)
    z.free(p, 0)
    _bad(z, lambda: z.mem_map.put_page(p), BadPageState, "already free")


def test_a_mapped_page_cannot_be_freed():
    z = Zone(8)
    p = z.alloc(0)
    z.mem_map.mapcount[p] = 0          # mapped once
    _bad(z, lambda: z.free(p, 0), BadPageState, "nonzero mapcount")
    z.mem_map.mapcount[p] = -1
    z.free(p, 0)


def test_double_free_from_a_per_cpu_list():
    z = Zone(64, pcp=True)
    p = z.alloc(0)
    z.free(p, 0)                       # onto the per-cpu list, not the buddy lists
    _bad(z, lambda: z.free(p, 0), BadPageState, "per-cpu list")


# -- references: get_page / put_page and ___free_pages() ---------------------------------------

def test_free_with_an_extra_reference_frees_the_tail_halves():
    z = Zone(8)
    assert z.alloc(2) == 0             # [2] = 4
    z.mem_map.get_page(0)              # someone else holds the first page
    z.free(0, 2)                       # ___free_pages(): frees 2/o1 and 1/o0 now
    assert z.allocated_blocks() == {0: 0}
    # 2/o1: parent 0's o2 buddy 4 is free → tail; 1/o0: parent 0's o1 buddy 2 free → tail.
    assert z.free_list(1) == [2] and z.free_list(0) == [1]
    z.check()
    z.mem_map.put_page(0)              # the last reference: page 0 goes, everything merges
    assert z.free_list(3) == [0] and z.allocated_blocks() == {}
    z.check()


def test_compound_pages():
    z = Zone(16)
    p = z.alloc_pages(GFP_KERNEL | GFP_COMP | G.DEFAULT.masks["__GFP_MOVABLE"], 2)
    assert p == 0 and z.mem_map.PageHead(0) and z.mem_map.compound_order(0) == 2
    assert z.mem_map.compound_head_pfn(3) == 0
    z.mem_map.put_page(3)              # put_page() on a tail drops the head's reference
    assert not z.mem_map.PageHead(0) and z.mem_map.compound_head_pfn(3) == 3
    assert z.free_list(4) == [0]
    z.check()


# -- gfp level: watermarks, reserves, slow path, warn_alloc ------------------------------------

def test_watermarks_and_reserves():
    # 1024 pages, min 100, low 125, high 150 (mm/page_alloc.c __zone_watermark_ok()).
    z = Zone(1024, watermarks=(100, 125, 150))
    movable = G.DEFAULT.masks["__GFP_MOVABLE"]
    n = 0
    while z.alloc_pages(GFP_KERNEL | movable | GFP_NOWARN, 0) is not None:
        n += 1
    # Fast path at low, slow path at min: GFP_KERNEL stops when free <= min.
    assert n == 1024 - 100 and z.nr_free_pages == 100
    # __GFP_HIGH: min - min/2 = 50.
    high = 0
    while z.alloc_pages(GFP_KERNEL | GFP_HIGH | movable | GFP_NOWARN, 0) is not None:
        high += 1
    assert z.nr_free_pages == 50 and high == 50
    # GFP_ATOMIC (HIGH and cannot block): 50 more after min/2, then min/4 of that: 100-50-12=38.
    atomic = 0
    while z.alloc_pages(GFP_ATOMIC | movable | GFP_NOWARN, 0) is not None:
        atomic += 1
    assert z.nr_free_pages == 38 and atomic == 12
    # __GFP_MEMALLOC ignores watermarks altogether (ALLOC_NO_WATERMARKS).
    while z.alloc_pages(GFP_ATOMIC | GFP_MEMALLOC | movable | GFP_NOWARN, 0) is not None:
        pass
    assert z.nr_free_pages == 0
    z.check()


def test_slow_path_events_and_warn_alloc():
    z = Zone(128, watermarks=(10, 20, 30))
    movable = G.DEFAULT.masks["__GFP_MOVABLE"]
    for _ in range(128 - 20):
        assert z.alloc_pages(GFP_KERNEL | movable, 0) is not None
    with Collect(z.events) as seen:
        assert z.alloc_pages(GFP_KERNEL | movable, 0) is not None    # below low: slow path
    assert "kswapd" in [e.kind for e in seen]
    for _ in range(9):
        z.alloc_pages(GFP_KERNEL | movable, 0)
    assert z.nr_free_pages == 10
    with Collect(z.events) as seen:
        assert z.alloc_pages(GFP_KERNEL | movable, 0) is None
    kinds = [e.kind for e in seen]
    assert "reclaim" in kinds and kinds[-1] == "alloc_fail"
    assert z.allocator.dmesg == [
        "kmm: page allocation failure: order:0, mode:0xcc8(GFP_KERNEL|__GFP_MOVABLE), "
        "nodemask=(null)"]
    assert z.alloc_pages(GFP_KERNEL | movable | GFP_NOWARN, 0) is None
    assert len(z.allocator.dmesg) == 1                               # __GFP_NOWARN
    with pytest.raises(BadRequest, match="invalid order 11"):
        z.alloc_pages(GFP_KERNEL, 11)


def test_gfp_strings_and_migratetype_from_gfp():
    z = Zone(64)
    assert z.alloc_pages("GFP_HIGHUSER_MOVABLE", 0) == 0
    assert z.alloc_pages("GFP_KERNEL", 0) == 1    # UNMOVABLE: steals the order-0 block 1


def test_get_free_pages_returns_linear_map_addresses():
    z = Zone(64)
    addr = z.get_free_pages("GFP_KERNEL|__GFP_MOVABLE", 1)
    assert addr == PAGE_OFFSET_X86_64 + (0 << 12)
    addr2 = z.get_free_pages("GFP_KERNEL|__GFP_MOVABLE", 0)
    assert addr2 == PAGE_OFFSET_X86_64 + (2 << 12)
    z.free_pages(addr2, 0)
    z.free_pages(0, 3)                 # free_pages(0) is a no-op
    with pytest.raises(BadRequest, match="linear-map"):
        z.free_pages(0x1000, 0)
    z.free_pages(addr, 1)
    assert z.free_list(6) == [0]
    # __get_free_pages() clears __GFP_HIGHMEM (highmem has no linear-map address): the same
    # block GFP_KERNEL would get, not an error.
    high = z.get_free_pages("GFP_KERNEL|__GFP_HIGHMEM", 0)
    z.free_pages(high, 0)
    assert high == z.get_free_pages("GFP_KERNEL", 0) == PAGE_OFFSET_X86_64


def test_zonelist_routing_and_lowmem_reserve():
    # ZONE_DMA [0, 64), ZONE_DMA32 [64, 320), ZONE_NORMAL [320, 1344): Normal first for
    # GFP_KERNEL, then DMA32 (keeping its lowmem_reserve[Normal] = 100 pages), then DMA.
    dma = Zone(64, 0, name="DMA", pageblock_order=6)
    dma32 = Zone(256, 64, name="DMA32", lowmem_reserve=[0, 0, 100, 100, 100])
    normal = Zone(1024, 320, name="Normal")
    alloc = PageAllocator([dma, dma32, normal])
    hm = G.DEFAULT.masks
    assert alloc.alloc_pages(hm["GFP_HIGHUSER_MOVABLE"], 0) == 320          # Normal
    assert alloc.alloc_pages(hm["GFP_DMA32"] | hm["__GFP_MOVABLE"], 0) == 64  # DMA32
    assert alloc.alloc_pages(hm["GFP_DMA"] | hm["__GFP_MOVABLE"], 0) == 0     # DMA
    movable = hm["GFP_KERNEL"] | hm["__GFP_MOVABLE"] | hm["__GFP_NOWARN"]
    got = []
    while (p := alloc.alloc_pages(movable, 0)) is not None:
        got.append(alloc.zone_of(p).name)
    assert got.count("Normal") == 1023
    # DMA32 gives pages while free > min 0 + lowmem_reserve[Normal] 100: 255 - 100.
    assert got.count("DMA32") == 155 and dma32.nr_free_pages == 100
    assert got.count("DMA") == 63 and dma.nr_free_pages == 0
    # A DMA32 request may still use the reserve kept from Normal allocations.
    assert alloc.alloc_pages(hm["GFP_DMA32"] | hm["__GFP_MOVABLE"], 0) is not None
    alloc.free(320, 0)
    assert normal.free_list(0) == [320]
    with pytest.raises(BadPageState, match="none of this node's zones"):
        alloc.free(5000, 0)


# -- pageblock migratetypes and the 6.10+ free path ---------------------------------------------

def test_mergeable_pageblocks_merge_and_restamp():
    # Pageblock 512 UNMOVABLE at boot: free_one_page() frees the order-10 block one pageblock
    # at a time (types differ); 512/o9 then merges with 0/o9 (both types mergeable) and
    # change_pageblock_range() re-stamps pageblock 0 as UNMOVABLE.
    z = Zone(1024, boot=False)
    z.set_pageblock_migratetype(512, "Unmovable")
    z.memblock_free_all()
    assert z.free_blocks() == [(0, 10, MIGRATE_UNMOVABLE)]
    assert z.get_pageblock_migratetype(0) == MIGRATE_UNMOVABLE
    z.check()


def test_highatomic_pageblocks_do_not_merge():
    z = Zone(1024, boot=False)
    z.set_pageblock_migratetype(512, MIGRATE_HIGHATOMIC)
    z.memblock_free_all()
    assert z.free_blocks() == [(0, 9, MIGRATE_MOVABLE), (512, 9, MIGRATE_HIGHATOMIC)]
    assert z.nr_free_highatomic == 512 and z.nr_free_pages == 1024
    z.check()


def test_parse_migratetype():
    assert parse_migratetype("MIGRATE_RECLAIMABLE") == 2 == parse_migratetype("reclaimable")
    assert parse_migratetype(4) == 4 and str(MigrateType(3)) == "HighAtomic"
    with pytest.raises(BadRequest):
        parse_migratetype(5)


# -- per-cpu lists ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["snapshot", "live"])
def test_pcp_sizes_match_the_kernel(where):
    # /proc/zoneinfo prints batch, high_min and high_max per CPU: the bundled real 6.18
    # machine's, and this machine's own.
    src = snapshot() if where == "snapshot" else ProcSource(fallback=False)
    if where == "live":
        try:
            src.read("zoneinfo")
        except KmmError:
            pytest.skip("no readable /proc/zoneinfo here")
    nproc = int(src.read("nproc").split()[0])
    zones = [z for z in parse_zoneinfo(src.read("zoneinfo")) if z.managed]
    if where == "snapshot":
        assert [z.name for z in zones] == ["DMA", "DMA32", "Normal"]
    assert zones and all(z.pagesets for z in zones)
    for z in zones:
        batch = zone_batchsize(z.managed)
        for ps in z.pagesets:
            assert ps["batch"] == batch, z.name
            assert ps["high_min"] == zone_highsize(z.managed, z.low, batch, nproc), z.name
            assert ps["high_max"] == zone_highsize(z.managed, z.low, batch, nproc, 8), z.name


def test_pcp_pages_are_not_counted_free():
    z = Zone(1 << 12, pcp=True, nr_cpus=2)
    p = z.alloc(0)
    cached = z.pcp_pages()
    assert cached >= 0 and z.nr_free_pages == (1 << 12) - 1 - cached
    assert z.buddyinfo().free_pages == z.nr_free_pages
    z.free(p, 0)
    z.check()
    z.drain_pages()
    assert z.pcp_pages() == 0 and sorted(z.free_list(10)) == [0, 1024, 2048, 3072]
    assert z.nr_free_pages == 1 << 12
    z.check()


class PcpFrees:
    """mm/page_alloc.c's order-0 free path, written out again from the kernel source to check
    the simulator against: free_frozen_page_commit() counts the page and the run of frees
    (free_count, capped at batch << PCP_BATCH_SCALE_MAX = 5), nr_pcp_high() tunes pcp->high
    and says when to drain, nr_pcp_free() how much (clamp(free_count, batch, high - batch);
    high >= 4 * batch always, zone_highsize()). One CPU, one list."""

    def __init__(self, pcp, below_high: bool):
        self.count, self.high, self.free_count = pcp.count, pcp.high, pcp.free_count
        self.batch, self.high_min, self.high_max = pcp.batch, pcp.high_min, pcp.high_max
        self.below_high = below_high

    def free(self) -> int:
        """One free; returns the pages a drain gave back (0 if none)."""
        batch = self.batch
        self.count += 1
        if self.free_count < batch << 5:
            self.free_count += 1
        high = self.high = min(max(self.high, self.high_min), self.high_max)
        if self.high_min != self.high_max:
            if self.below_high:
                self.high = max(high - max(self.free_count, batch), self.high_min)
                high = max(self.count, self.high_min)
            elif self.count >= high:
                need = self.free_count + batch
                if self.high < need:
                    self.high = min(max(need, self.high_min), self.high_max)
        if self.count < high:
            return 0
        n = min(max(self.free_count, batch), high - batch, self.count)
        self.count -= n
        self.below_high = False          # the zone is above its high mark again: cleared
        return n


def pcp_frees_match_the_kernel(z: Zone, pages: list[int], below_high: bool) -> list[int]:
    """Free ``pages`` one by one; after each, the per-cpu list's count and high must be the
    ones the kernel's code computes. The pages each drain gave back."""
    pcp = z.pcp[0]
    want = PcpFrees(pcp, below_high)
    drained = []
    for p in pages:
        with Collect(z.events) as seen:
            z.free(p, 0)
        n = want.free()
        got = [e.data["count"] for e in seen if e.kind == "pcp_drain"]
        assert got == ([n] if n else []), (p, got, n)
        assert (pcp.count, pcp.high) == (want.count, want.high), p
        assert (ZONE_BELOW_HIGH in z.flags) == want.below_high
        drained += [n] if n else []
    return drained


def test_pcp_drains_above_high():
    # percpu_pagelist_high_fraction fixes high: 65536 / 1000 = 65 per CPU; batch 15. Each
    # drain returns the run of frees so far, at least a batch, leaving at least a batch.
    z = Zone(1 << 16, pcp=True, percpu_pagelist_high_fraction=1000)
    assert (z.pcp[0].batch, z.pcp[0].high_min, z.pcp[0].high_max) == (15, 65, 65)
    pages = [z.alloc(0) for _ in range(300)]
    drained = pcp_frees_match_the_kernel(z, pages, below_high=False)
    assert drained[0] < drained[-1] == 50 and len(drained) >= 5     # up to high - batch
    z.check()


def test_pcp_high_grows_to_hold_a_run_of_frees_and_decays_below_the_high_mark():
    # high_min 60, high_max 8192: nr_pcp_high() tunes pcp->high. Above the zone's high mark,
    # a drain first raises high to fit free_count + batch; with ZONE_BELOW_HIGH set (kswapd's
    # sign that the zone runs low), every free lowers it by a run of frees (at least a batch)
    # and a drain happens as soon as the list holds high_min, then the flag is cleared.
    for below_high in (False, True):
        z = Zone(1 << 16, pcp=True)
        pcp = z.pcp[0]
        assert (pcp.batch, pcp.high_min, pcp.high_max) == (15, 60, 8192)
        pages = [z.alloc(0) for _ in range(3000)]
        assert pcp.high > 3000                  # the refills raised it (nr_pcp_alloc())
        if below_high:
            z.flags.add(ZONE_BELOW_HIGH)
        else:
            # Start from high_min, where vmstat's decay_pcp_high() leaves it after a while.
            pcp.high = pcp.high_min
        start = pcp.high
        drained = pcp_frees_match_the_kernel(z, pages, below_high)
        assert drained
        if below_high:
            assert ZONE_BELOW_HIGH not in z.flags
            assert len(drained) >= 1 and pcp.high < start
        else:
            assert pcp.high > start
        z.check()


def test_pcp_refill_hands_out_ascending_pfns():
    z = Zone(1 << 14, pcp=True)
    got = [z.alloc(0) for _ in range(40)]
    assert got == list(range(40))     # rmqueue_bulk() appends split pieces in pfn order
    z.check()


def test_check_catches_corruption():
    z = Zone(16)
    z.alloc(0)
    z.mem_map.private[8] = 2          # lie about the order of the free block at 8
    with pytest.raises(BadPageState, match="not PageBuddy of order 3"):
        z.check()


def test_render_and_views():
    z = Zone(37)
    z.alloc(0)
    text = z.render()
    assert "free_area[2] Movable: 32" in text
    assert text.endswith(z.buddyinfo_line().rstrip("\n"))
    assert repr(z.free_area[5]) == "free_area[5] nr_free=1 (Movable: [0])"
    assert z.page_state().count(1) == 1 and len(z.page_state()) == 37


# -- the stepper model, the widget, the pictures and the practice problems ---------------------

def test_stepper_back_equals_a_fresh_replay():
    from kmmlib.mm.buddy_model import BuddyModel, random_scenario, stepper_for

    ops = random_scenario(128, 150, seed=4)
    st = stepper_for(128, ops)
    st.run()
    assert all(s.error is None for s in st.history)      # the generator only frees live blocks
    for n in (149, 100, 64, 33, 1, 0, 77):
        st.goto(n)
        fresh = BuddyModel(128)
        for op in ops[:n]:
            fresh.apply(op)
        assert st.model.zone.state_key() == fresh.zone.state_key(), n
    assert random_scenario(128, 150, seed=4) == ops != random_scenario(128, 150, seed=5)


def test_model_render_and_refusals():
    from kmmlib.mm.buddy_model import SCENARIOS, BuddyModel, describe_op, stepper_for

    m = BuddyModel(8)
    assert m.apply(("alloc", 0)) == 0
    assert m.render().splitlines()[0] == "     0 #01.2..."   # 0 used, 1 o0, 2-3 o1, 4-7 o2
    assert describe_op(("free", 8, 0)) == "free pfn 8 order 0"
    st = stepper_for(8, [("free", 3, 0), ("alloc", 1)])
    st.run()
    assert st.history[0].error and "Bad page state" in st.history[0].error
    assert st.history[1].result == 0
    pages, ops, _ = SCENARIOS["fragmentation"]
    st = stepper_for(pages, ops)
    st.run()
    assert st.history[-1].result == "NULL" and st.model.zone.nr_free_pages == pages // 2


def test_widget_buttons_drive_the_model():
    from kmmlib.widgets.buddy import RANDOM, BuddyWidget, memory_bar_svg

    w = BuddyWidget(scenario="split an order-3 block")
    w.steps_widget.step_button.click()
    assert w.text.startswith("step 1/5: alloc order 0 → 0")
    assert w.block.options == (("pfn 0 (order 0)", (0, 0)),)
    text = w.click_alloc(1)                 # the learner's op goes in before the script's 4 left
    assert "alloc order 1 → 2" in text and len(w.stepper.ops) == 6
    assert w.stepper.history[-1].op == ("alloc", 1) and w.stepper.pos == 2
    text = w.click_free(0, 0)
    assert "free pfn 0 order 0 → freed" in text and len(w.stepper.ops) == 7
    w.steps_widget.back_button.click()
    assert w.stepper.pos == 2
    w.steps_widget.reset_button.click()     # the scenario alone again
    assert len(w.stepper.ops) == 5 and w.stepper.pos == 0
    w.scenario.value = RANDOM
    assert len(w.stepper.ops) == 40 and w.stepper.pos == 0
    svg = memory_bar_svg(w.stepper.model)
    assert svg.startswith("<svg") and svg.count("<rect") == 1     # one free order-6 block


def test_pictures_draw_the_numbers(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    from kmmlib.mm.buddy_model import nr_free_history, random_scenario
    from kmmlib.viz.buddy import plot_buddyinfo, plot_free_by_order, plot_memory_bar

    z = Zone(64)
    z.alloc(0)
    ax = plot_memory_bar(z)
    assert len(ax.collections) == len(z.free_blocks()) + 1
    ax = plot_buddyinfo({"a": [1, 2], "b": [0, 1]})
    assert [round(p.get_height()) for p in ax.patches] == [1, 4, 0, 2]    # pages = n << order
    hist = nr_free_history(64, random_scenario(64, 20, seed=1))
    assert len(hist) == 21 and hist[0] == [0] * 6 + [1] + [0] * 4
    ax = plot_free_by_order(hist)
    assert len(ax.collections) == 11


def test_practice_problems_check_and_explain(capsys):
    from kmmlib.exercises.buddy_problems import (
        check_allocs,
        check_buddyinfo,
        main,
        make_problem,
    )
    from kmmlib.exercises.check import ExerciseFailed

    p = make_problem(3)
    assert p.allocs[:3] == [0, 1, 2]      # a fresh 32-page zone: 0, 1, then the order-1 at 2
    check_allocs(p, p.allocs)
    check_buddyinfo(p, p.nr_free)
    wrong = list(p.allocs)
    wrong[2] = 8
    with pytest.raises(ExerciseFailed, match=r"p2 = alloc\(order 1\) returns 2, you said 8"):
        check_allocs(p, wrong)
    with pytest.raises(ExerciseFailed, match="order 0 has"):
        check_buddyinfo(p, [9] + p.nr_free[1:])
    with pytest.raises(ExerciseFailed, match="one count per order, 0 to 10 .11 at most., not 12"):
        check_buddyinfo(p, p.nr_free + [0])
    capsys.readouterr()
    assert main(["-s", "3", "-c"]) == 0
    assert "p2 = alloc(order 1)  returned 2" in capsys.readouterr().out
    assert main(["-s", "3"]) == 0 and "returned ?" in capsys.readouterr().out


def test_pcp_free_goes_to_the_freeing_cpu():
    z = Zone(1 << 12, pcp=True, nr_cpus=2)
    p = z.alloc(0, cpu=0)
    z.free(p, 0, cpu=1)
    assert p in z.pcp[1].lists[z.order_to_pindex(MIGRATE_MOVABLE, 0)]
    assert z.alloc(0, cpu=1) == p        # the hot page is reused on the CPU that freed it
    _bad(z, lambda: z.free(p, 0, cpu=2), BadRequest, "CPUs 0..1")
    z.check()


def test_high_order_frees_drain_once_free_count_passes_batch_plus_half_high_min():
    """free_frozen_page_commit() for orders 1..3: after a run of such frees the per-cpu lists
    are drained at once ("free_high") when free_count reaches batch + high_min / 2 (6.18; the
    threshold was batch alone before N. Dhama's 2025 patch), well before count reaches high."""
    z = Zone(1 << 16)
    z.setup_pcp(1)
    pcp = z.pcp[0]
    held = [z.alloc(1) for _ in range(200)]
    assert pcp.free_count == 0
    threshold = pcp.batch + pcp.high_min // 2
    assert pcp.batch < threshold                   # the old rule would have drained sooner
    for pfn in held:
        before, count = pcp.free_count, pcp.count
        z.free(pfn, 1)
        if pcp.count < count + 2:                  # this free drained the lists
            break
    # The first free past the threshold (each order-1 free adds 2 to free_count).
    assert before >= threshold > before - 2 and before == 2 * held.index(pfn)
    assert count + 2 < pcp.high_min and pcp.count == 0     # not the count >= high rule
    z.check()


# -- the slow path's rules, traced by hand from __alloc_pages_slowpath() --------------------

def _highatomic_only_free() -> Zone:
    """A zone whose 31 free pages all sit in one HighAtomic pageblock (orders 0..4)."""
    z = Zone(4096, pageblock_order=5, watermarks=(1, 2, 3))
    z.reserve_highatomic_pageblock(z.alloc(0, "MOVABLE"), 0)
    while z.alloc(0, "MOVABLE") is not None:
        pass
    assert z.nr_free_pages == z.nr_free_highatomic == 31
    return z


def test_a_costly_order_does_not_take_back_the_highatomic_reserve():
    """Order 4 > PAGE_ALLOC_COSTLY_ORDER without __GFP_RETRY_MAYFAIL goes to nopage before
    should_reclaim_retry(), whose forced unreserve alone would free the HighAtomic block; with
    __GFP_RETRY_MAYFAIL (and __GFP_IO: it may compact) it gets there, and the order-4 block."""
    z = _highatomic_only_free()
    assert z.alloc_pages("GFP_KERNEL", 4) is None
    assert z.nr_reserved_highatomic == 32
    assert z.allocator.dmesg[-1].startswith("kmm: page allocation failure: order:4")
    z = _highatomic_only_free()
    assert z.alloc_pages("GFP_KERNEL|__GFP_RETRY_MAYFAIL", 4) == 16
    assert z.nr_reserved_highatomic == 0
    z = _highatomic_only_free()                          # order 3 is not costly
    assert z.alloc_pages("GFP_KERNEL", 3) == 8
    z.check()


def test_a_memalloc_retry_keeps_alloc_kswapd():
    """__GFP_MEMALLOC: alloc_flags = ALLOC_NO_WATERMARKS | (alloc_flags & ALLOC_KSWAPD), so a
    claim that boosts the watermarks also sets ZONE_BOOSTED_WATERMARK and rmqueue() wakes
    kswapd (which, here, ends the boost)."""
    z = Zone(4096, pageblock_order=5, watermarks=(100, 110, 120))
    while z.alloc(0, "MOVABLE") is not None:
        pass
    for pfn in range(20):
        z.free(pfn, 0)
    with Collect(z.events) as ev:
        assert z.alloc_pages("GFP_KERNEL|__GFP_MEMALLOC", 0) == 16
    assert any(e.kind == "kswapd" and "boosted" in e.text for e in ev)
    assert z.watermark_boost == 0
    z.check()


def test_nofragment_needs_only_a_normal_preferred_zone_on_one_node():
    """alloc_flags_nofragment(): with CONFIG_ZONE_DMA32, a preferred Normal zone gets
    ALLOC_NOFRAGMENT even alone (UMA: "assume … if Normal is populated then so is DMA32").
    The first pass, barred from fragmenting fallbacks, refills nothing but still runs
    nr_pcp_alloc(); the second then takes 30 blocks, not 15."""
    z = Zone(65536, name="Normal", watermarks=(0, 0, 0))
    while z.alloc(0, "MOVABLE") is not None:
        pass
    for k in range(40):
        z.free(k * 512, 0)               # a free page in each of 40 pageblocks: none to claim
    z.setup_pcp(1)
    pcp = z.pcp[0]
    assert (pcp.batch, pcp.high_min) == (15, 60)
    assert z.alloc_pages("GFP_KERNEL", 0) == 19968
    # pass 1: high 60 → 75, alloc_factor 1; pass 2: batch 15 << 1 = 30, high 105, factor 2
    assert (pcp.count, pcp.high, pcp.alloc_factor, z.nr_steals) == (29, 105, 2, 30)
    z.check()


def test_set_watermarks_ends_a_boost():
    """__setup_per_zone_wmarks() zeroes watermark_boost before writing _watermark[]."""
    z = Zone(4096, pageblock_order=5, watermarks=(64, 80, 96))
    z.watermark_boost = 32
    z.set_watermarks((64, 80, 96))
    assert z.watermark_boost == 0 and z.min_wmark_pages() == 64


def test_nofail_gets_into_the_reserves_before_it_would_loop():
    """__alloc_pages_may_oom(): a __GFP_NOFAIL request of order ≤ 3 for zones up to Normal is
    let in with ALLOC_NO_WATERMARKS (whether or not a task was killed): 80 free pages, below
    min 100, still serve it. A plain GFP_KERNEL request fails there."""
    z = Zone(1024, pageblock_order=5, watermarks=(100, 110, 120))
    for _ in range(1024 - 80):
        z.alloc(0, "UNMOVABLE")
    assert z.alloc_pages("GFP_KERNEL", 0) is None
    assert z.alloc_pages("GFP_KERNEL|__GFP_NOFAIL", 0) == 944
    assert len(z.allocator.dmesg) == 1                    # only the plain request's failure
    z.check()


def test_nofail_thisnode_skips_the_oom_path_and_its_no_watermarks():
    """__alloc_pages_may_oom() leaves before the OOM killer for __GFP_THISNODE ("The OOM killer
    may not free memory on a specific node"): such a __GFP_NOFAIL request only gets nopage's
    ALLOC_MIN_RESERVE, whose floor (half of min) is above what is left here."""
    z = Zone(1024, pageblock_order=5, watermarks=(64, 80, 96))
    while z.alloc_pages("GFP_KERNEL", 0) is not None:
        pass
    while z.nr_free_pages > 24 and z.alloc_pages("GFP_ATOMIC", 0) is not None:
        pass
    assert z.nr_free_pages == 24
    assert z.alloc_pages("GFP_KERNEL|__GFP_NOFAIL|__GFP_THISNODE|__GFP_NOWARN", 0) is None
    assert z.alloc_pages("GFP_KERNEL|__GFP_NOFAIL|__GFP_NOWARN", 0) is not None

"""Compaction (kmmlib.mm.compaction) against mm/compaction.c: the two scanners, where pages go,
when it stops, and what stops it. Expected moves are worked out by hand from the kernel's
rules in each test's comments."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.events import Collect
from kmmlib.mm.compaction import (
    COMPACT_CLUSTER_MAX,
    CompactResult,
    compact_gap,
    compact_memory,
    compact_zone,
    compaction_suitable,
    compaction_suitable_result,
    enable_direct_compaction,
)
from kmmlib.mm.fragmentation import largest_free_order, page_map_text
from kmmlib.mm.migratetype import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from kmmlib.mm.page_alloc import PageAllocator, Zone


def checkerboard(pages: int = 128, unmovable_every: int = 0) -> Zone:
    """A zone with pageblocks of 16 pages, every page allocated movable in pfn order, then
    every even pfn freed: half the zone free, no two free pages buddies. With
    ``unmovable_every`` N, the pfns 7, 7+N, 7+2N … are re-allocated as Unmovable instead
    (freed, then taken again by an Unmovable request, which steals the single free page)."""
    z = Zone(pages, pageblock_order=4, max_order=7)
    assert [z.alloc(0) for _ in range(pages)] == list(range(pages))
    if unmovable_every:
        for pfn in range(7, pages, unmovable_every):
            z.free(pfn, 0)
            assert z.alloc(0, MIGRATE_UNMOVABLE) == pfn
    for pfn in range(0, pages, 2):
        z.free(pfn, 0)
    return z


def test_compact_gap_and_constants():
    assert compact_gap(4) == 32 and compact_gap(9) == 1024
    assert COMPACT_CLUSTER_MAX == 32          # SWAP_CLUSTER_MAX
    assert CompactResult.COMPACT_SUCCESS.value > CompactResult.COMPACT_COMPLETE.value


def test_compaction_frees_an_order4_block_exactly_as_the_kernel_would():
    # compact_zone(order 4): the migration scanner starts at pfn 0 and picks up the movable
    # pages of pageblock 0 — 1, 3, …, 15 (8 < COMPACT_CLUSTER_MAX, so the whole pageblock) —
    # each added at the head of cc->migratepages, so they move 15 first. compaction_alloc()
    # finds no isolated free page and runs the free scanner: from the last pageblock (112)
    # down, a Movable pageblock, it takes 112, 114, … 126 (appended) until it has 8, and stops
    # at pfn 127. So 15 → 112, 13 → 114, …, 1 → 126. Each freed source merges with its free
    # buddy; pageblock 0 becomes one free order-4 block; at the pageblock boundary
    # __compact_finished() sees free_area[4] Movable non-empty: COMPACT_SUCCESS.
    z = checkerboard()
    assert compaction_suitable_result(z, 4) is CompactResult.COMPACT_CONTINUE
    cc = compact_zone(z, 4)
    assert cc.result is CompactResult.COMPACT_SUCCESS
    assert cc.moves == [(15, 112, 0), (13, 114, 0), (11, 116, 0), (9, 118, 0),
                        (7, 120, 0), (5, 122, 0), (3, 124, 0), (1, 126, 0)]
    assert z.free_list(4, MIGRATE_MOVABLE) == [0]
    assert cc.free_pfn == 127 and cc.migrate_pfn == 16
    z.check()


def test_compact_memory_runs_until_the_scanners_meet():
    # Order -1 (/proc/sys/vm/compact_memory) never stops early. Pageblock by pageblock: PB0's
    # 8 movable pages go to PB7's free pages (112, 114 … 126), PB1's to PB6, PB2's to PB5.
    # PB3's 8 are picked up next (the migration scanner is now at 64), but the free scanner
    # may only look above the migration scanner's pageblock (low_pfn = pageblock_end(64) = 80)
    # and PB5 is full: nothing isolated, -ENOMEM; the free scanner stopped at 64, so the
    # scanners met: COMPACT_COMPLETE with 24 pages moved and PB3, PB4 as they were.
    z = checkerboard()
    moved = {}
    cc = compact_memory(z, migrate=lambda old, new, order: moved.setdefault(old, new))
    assert cc.result is CompactResult.COMPACT_COMPLETE
    assert len(moved) == cc.nr_migrated == 24
    assert sorted(moved) == list(range(1, 48, 2))
    assert sorted(moved.values()) == list(range(80, 128, 2))
    assert z.nr_free() == [16, 0, 0, 0, 1, 1, 0, 0]      # 0-31/o5, 32-47/o4, evens 48-79
    z.check()


def test_an_unmovable_page_per_pageblock_defeats_compaction():
    # Same zone, but pfn 7, 23, 39 … (one per pageblock) are Unmovable allocations. The
    # migration scanner skips them ("not movable"); every order-4 pageblock keeps one used
    # page, so no order-4 block can form: the scanners meet, COMPACT_COMPLETE, and still only
    # order-3 blocks at best.
    z = checkerboard(unmovable_every=16)
    with Collect(z.events) as seen:
        cc = compact_zone(z, 4)
    assert cc.result is CompactResult.COMPACT_COMPLETE
    assert set(range(7, 128, 16)) >= set(cc.skipped_unmovable) >= {7}
    assert any(e.kind == "compact_skip" and e.data["pfn"] == 7 for e in seen)
    assert largest_free_order(z) < 4
    assert all(z.allocation_migratetype(p) == MIGRATE_UNMOVABLE for p in range(7, 128, 16))
    z.check()


def test_free_scanner_takes_only_movable_pageblocks():
    # suitable_migration_target(): free pages in an Unmovable pageblock are not used as
    # targets (unless ignore_block_suitable, as direct compaction at its highest priority).
    z = checkerboard()
    for pb in range(64, 128, 16):                # the top 4 pageblocks become Unmovable
        z.move_freepages_block(pb, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    cc = compact_memory(z)
    assert all(new < 64 for _, new, _ in cc.moves)
    z2 = checkerboard()
    for pb in range(64, 128, 16):
        z2.move_freepages_block(pb, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    cc2 = compact_zone(z2, -1, ignore_block_suitable=True)
    assert any(new >= 64 for _, new, _ in cc2.moves)
    z.check()
    z2.check()


def test_pinned_pages_stay():
    # A movable page with an extra reference (refcount 2, not mapped) cannot be migrated.
    free_to_move = compact_memory(checkerboard())
    assert 1 in [src for src, _, _ in free_to_move.moves]     # unpinned, pfn 1 does move
    z = checkerboard()
    z.mem_map.get_page(1)
    cc = compact_memory(z)
    assert 1 not in [src for src, _, _ in cc.moves]
    assert z.allocation_order(1) == 0
    z.mem_map.refcount[1] = 1
    # A page mapped once (mapcount 0) with a second reference (a GUP pin) is pinned too: the
    # kernel skips a page with more references than mappings.
    # Mapped once with only the mapping's reference, it moves. Each case on a fresh zone.
    for refs, pinned in ((2, True), (1, False)):
        z = checkerboard()
        z.mem_map.mapcount[1] = 0                # one mapping
        z.mem_map.refcount[1] = refs
        moved = [src for src, _, _ in compact_memory(z).moves]
        assert (1 not in moved) is pinned, refs


def test_free_scanner_skips_a_pageblock_that_starts_with_a_block_of_the_requested_order():
    # suitable_migration_target() (6.9+): a pageblock whose first page heads a free block of
    # cc->order or more is not a target — that block is what compaction tries to make. Here
    # the last pageblock (112-127) holds a free order-2 block at 112; compacting for order 2
    # takes no page from it, compacting for order 4 (its pageblock_order) does.
    from kmmlib.mm.compaction import CompactControl, suitable_migration_target

    z = checkerboard()
    for pfn in (113, 115):
        z.free(pfn, 0)                           # 112..115 merge into one order-2 block
    assert z.mem_map.PageBuddy(112) and z.mem_map.buddy_order(112) == 2
    assert not suitable_migration_target(CompactControl(z, order=2), 112)
    assert suitable_migration_target(CompactControl(z, order=4), 112)
    assert suitable_migration_target(CompactControl(z, order=-1), 112)   # pageblock_order 4
    z.check()


def test_moved_pages_keep_their_state():
    z = Zone(64, pageblock_order=4, max_order=6)
    pfns = [z.alloc(0) for _ in range(64)]
    for p in pfns[::2]:
        z.free(p, 0)
    z.mem_map.mapping[1] = 0xFFFF888000001001       # an anon page's mapping
    z.mem_map.pgoff[1] = 42
    moved = {}
    compact_memory(z, migrate=lambda o, n, k: moved.setdefault(o, n))
    new = moved[1]
    assert z.mem_map.mapping[new] == 0xFFFF888000001001 and z.mem_map.pgoff[new] == 42
    assert z.mem_map.mapping[1] == 0 and z.mem_map.refcount[new] == 1
    assert z.allocation_migratetype(new) == MIGRATE_MOVABLE
    z.check()


def test_compaction_suitable():
    # __compaction_suitable(): free pages must exceed the low watermark (order > 3, else min)
    # plus compact_gap(order) = 2 << order. checkerboard(128) has 64 free: enough for order 4
    # (32), not for order 5 (64 is not above 64).
    z = checkerboard()
    assert compaction_suitable(z, 4)
    assert compaction_suitable_result(z, 5) is CompactResult.COMPACT_SKIPPED
    # fragmentation_index() <= vm.extfrag_threshold (500) for a costly order: the failure is
    # lack of memory, not fragmentation. Six free order-8 blocks and an order-9 request:
    # 1000 - (1000 + 1536 * 1000 / 512) / 6 = 334.
    z = Zone(4096, reserved=[(256 + 512 * k, 512 * (k + 1)) for k in range(6)]
             + [(3072, 4096)])
    assert z.nr_free() == [0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0]
    assert compaction_suitable_result(z, 9) is CompactResult.COMPACT_NOT_SUITABLE_ZONE
    cc = compact_zone(z, 9)
    assert cc.result is CompactResult.COMPACT_SKIPPED and cc.moves == []
    # Below costly orders the index is not consulted.
    assert compaction_suitable(z, 3)


def test_compaction_not_needed_when_the_allocation_would_succeed():
    z = Zone(256, pageblock_order=4, max_order=7)
    assert compact_zone(z, 4).result is CompactResult.COMPACT_SUCCESS


def test_bad_requests():
    z = checkerboard()
    with pytest.raises(BadRequest):
        compact_zone(z, 11)
    with pytest.raises(BadRequest):
        compact_zone(z, -2)


def test_direct_compaction_in_the_allocator():
    # Wired into __alloc_pages_slowpath(): an order-4 request that fails gets a compaction run
    # and then succeeds; the holder is told where its pages went.
    z = checkerboard()
    alloc = PageAllocator([z])
    moves = []
    enable_direct_compaction(alloc, lambda o, n, k: moves.append((o, n)))
    pfn = alloc.alloc_pages("GFP_HIGHUSER_MOVABLE", 4)
    assert pfn == 0 and len(moves) == 8
    z.check()


def test_page_map_text_marks_types_and_pageblocks():
    z = checkerboard(64, unmovable_every=16)
    text = page_map_text(z)
    assert text.splitlines()[0].startswith("     0 .M.M.M.U.M.M.M.M|.M.M.M.U")


def test_the_scanned_counts_are_pages_as_the_kernels_counters():
    """compact_migrate_scanned / compact_free_scanned count pages: a free block skipped or
    isolated counts all its pages, not one. The migration scanner walked every page from the
    zone's start to where it stopped; the free scanner looked at least at every page it took."""
    z = checkerboard()
    for pfn in (1, 3, 113, 115):              # free order-2 blocks at 0 and 112
        z.free(pfn, 0)
    assert z.mem_map.buddy_order(0) == z.mem_map.buddy_order(112) == 2
    cc = compact_memory(z)
    moved = sum(1 << order for _, _, order in cc.moves)
    assert cc.total_migrate_scanned == cc.migrate_pfn - z.zone_start_pfn
    assert moved <= cc.total_free_scanned <= z.zone_end_pfn - cc.free_pfn + z.pageblock_nr_pages
    assert f"scanned {cc.total_migrate_scanned} pages for movable ones" in cc.summary()

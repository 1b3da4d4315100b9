"""Migratetype fallback (``__rmqueue_claim`` / ``__rmqueue_steal``, Linux 6.18), the extfrag
facts, the high-order atomic reserve and the watermark boost.

Each scenario's expected values are worked out in its comments from mm/page_alloc.c (6.15+
structure), or are the real kernel's: ``tests/data/extfrag/claim_refill.trace`` is one per-cpu
refill from the bundled machine's own trace, in which ZONE_NORMAL ran out of Unmovable blocks
and claimed a Movable order-10 block (the trace's one ``mm_page_alloc_extfrag`` event).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from kmmlib.events import Collect
from kmmlib.mm import gfp as G
from kmmlib.mm import watermark as wm
from kmmlib.mm.migratetype import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    fallbacks,
)
from kmmlib.mm.page_alloc import PageAllocator, Zone, format_extfrag
from kmmlib.trace.parse import parse_line

TRACE = Path(__file__).parent / "data" / "extfrag" / "claim_refill.trace"
U, M, R = MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE


def kinds(events, wanted=("claim", "claim_refused", "steal", "extfrag")) -> list[str]:
    return [e.kind for e in events if e.kind in wanted]


def extfrag(events) -> list[dict]:
    return [e.data for e in events if e.kind == "extfrag"]


# -- the rules, one by one ------------------------------------------------------------------

def test_fallback_table_is_the_kernels():
    # fallbacks[MIGRATE_PCPTYPES][MIGRATE_PCPTYPES - 1] in mm/page_alloc.c.
    assert fallbacks == {U: (R, M), M: (R, U), R: (U, M)}


def test_should_try_claim_block():
    z = Zone(64)                                   # pageblock_order 9: 9 // 2 = 4
    for order in range(11):
        assert z.should_try_claim_block(order, U) and z.should_try_claim_block(order, R)
        # Movable requests claim only from order >= pageblock_order / 2.
        assert z.should_try_claim_block(order, M) == (order >= 4)
    z.page_group_by_mobility_disabled = True
    assert z.should_try_claim_block(0, M)


def test_find_suitable_fallback_order_of_preference():
    # An Unmovable request looks at Reclaimable before Movable (fallbacks[U] = R, M).
    # 32 pages, pageblocks of 4: every block allocated, four pageblocks re-typed, and their
    # blocks freed again (their buddies stay allocated, so nothing merges).
    z = Zone(32, pageblock_order=2, max_order=5)
    assert [z.alloc(2) for _ in range(8)] == list(range(0, 32, 4))
    for pfn, mt in ((0, M), (8, R), (16, M), (24, U)):
        z.set_pageblock_migratetype(pfn, mt)
        z.free(pfn, 2)
    assert z.free_blocks() == [(0, 2, M), (8, 2, R), (16, 2, M), (24, 2, U)]
    assert z.find_suitable_fallback(2, U, False) == R
    assert z.find_suitable_fallback(2, M, False) == R
    assert z.find_suitable_fallback(2, R, False) == U
    assert z.find_suitable_fallback(1, U, False) == -1          # nothing of order 1
    # A movable request for a small block: should_try_claim_block() refuses → -2 (pageblock
    # order 2 // 2 = 1, so order 0 is "small").
    assert z.find_suitable_fallback(0, M, True) == -2
    assert z.find_suitable_fallback(1, M, True) == -1
    assert z.find_suitable_fallback(2, HIGHATOMIC := MIGRATE_HIGHATOMIC, False) == -1
    assert HIGHATOMIC == 3


# -- the real kernel's claim, from its own trace -----------------------------------------------

def trace_refill():
    events = [e for e in map(parse_line, TRACE.read_text().splitlines()) if e is not None]
    taken = [int(e.fields["pfn"], 16) for e in events
             if e.event in ("mm_page_alloc_zone_locked", "mm_page_alloc_extfrag")]
    frag = [e.fields for e in events if e.event == "mm_page_alloc_extfrag"]
    alloc = [e.fields for e in events if e.event == "mm_page_alloc"]
    return taken, frag, alloc


def trace_zone() -> Zone:
    """ZONE_NORMAL of the traced machine (it starts at pfn 0x100000), cut down to what the
    refill touches: the Unmovable pages it took before it ran dry, [0x123f7c, 0x124000), are
    free in an Unmovable pageblock, and one Movable order-10 block at 0x110400 is free;
    everything else is in use (memblock-reserved here)."""
    z = Zone(0x24000, 0x100000, boot=False,
             reserved=[(0x100000, 0x110400), (0x110800, 0x123f7c)], pcp=False)
    z.set_pageblock_migratetype(0x123e00, "Unmovable")
    z.memblock_free_all()
    return z


def test_trace_shows_one_claim_of_a_movable_order10_block():
    taken, frag, alloc = trace_refill()
    assert len(taken) == 248 and len(frag) == 1
    assert frag[0]["alloc_migratetype"] == "0" and frag[0]["fallback_migratetype"] == "1"
    assert alloc[0]["pfn"] == "0x123f7c" and alloc[0]["migratetype"] == "0"


def test_refill_reproduces_the_traced_claim():
    # The traced refill: a GFP_NOFS order-0 request on CPU 1 found its per-cpu Unmovable list
    # empty, and rmqueue_bulk() took batch 31 << alloc_factor 3 = 248 blocks. The zone's
    # Unmovable lists held 0x123f7c/o2 and 0x123f80/o7 (what boot makes of the range), so
    # __rmqueue_smallest() gave 0x123f7c … 0x123fff in ascending order (expand() keeps the low
    # half); then __rmqueue_claim() scanned from MAX_PAGE_ORDER down, found the Movable order-10
    # block at 0x110400 (fallbacks[U] = R, M; R had none), and — order 10 >= pageblock_order —
    # took it whole: re-typed both its pageblocks, expand()ed it into the Unmovable lists and
    # returned its first page, with no mm_page_alloc_zone_locked event of its own. The mode went
    # back to RMQUEUE_NORMAL and the rest came from the new Unmovable blocks, ascending.
    taken, frag, alloc = trace_refill()
    z = trace_zone()
    z.setup_pcp(1)
    pcp = z.pcp[0]
    pcp.batch, pcp.high_min, pcp.high_max, pcp.high, pcp.alloc_factor = 31, 1839, 10240, 1839, 3
    gfp = G.parse_gfp(alloc[0]["gfp_flags"])
    flags = wm.ALLOC_WMARK_LOW | wm.ALLOC_KSWAPD | wm.ALLOC_NOFRAGMENT   # the fast path
    with Collect(z.events) as seen:
        pfn = z.rmqueue(0, G.gfp_migratetype(gfp), flags, 0, gfp)
    assert pfn == taken[0] == int(alloc[0]["pfn"], 16)
    assert [pfn, *pcp.lists[z.order_to_pindex(U, 0)]] == taken
    [facts] = extfrag(seen)
    want = {k: int(v, 16) if k == "pfn" else int(v) for k, v in frag[0].items() if k != "page"}
    assert facts == want
    assert format_extfrag(facts) == " ".join(f"{k}={v}" for k, v in frag[0].items()
                                             if k != "page")
    assert kinds(seen) == ["claim", "extfrag"]
    assert z.get_pageblock_migratetype(0x110400) == z.get_pageblock_migratetype(0x110600) == U
    assert z.nr_claims == 1 and z.nr_steals == 0
    z.check()


def test_the_claim_without_nofragment_is_the_same():
    # The claim was of a whole pageblock, which ALLOC_NOFRAGMENT allows: without the flag the
    # same block is chosen (the scan goes from the top order down either way).
    taken, _, _ = trace_refill()
    z = trace_zone()
    lst: deque[int] = deque()
    assert z._rmqueue_bulk(0, 248, lst, U, 0) == 248
    assert list(lst) == taken


# -- claiming part of a pageblock, refusing, stealing ---------------------------------------------

def half_used_zone(movable_pages: int) -> Zone:
    """1024 pages = two pageblocks of 512. Pageblock 1 (512-1023) is all allocated movable;
    pageblock 0 has ``movable_pages`` movable pages allocated from its start (in blocks of the
    sizes the buddy allocator hands out) and the rest free."""
    z = Zone(1024)
    assert z.alloc(9) == 0 and z.alloc(9) == 512        # take both pageblocks …
    z.free(0, 9)                                        # … and give pageblock 0 back
    left = movable_pages
    while left:
        order = left.bit_length() - 1
        z.alloc(order)
        left -= 1 << order
    return z


def test_unmovable_claims_a_pageblock_with_half_of_it_free():
    # Pageblock 0: 192 movable pages in use (0-191), 320 free: 192/o6 and 256/o8. An Unmovable
    # order-0 request: no Unmovable or Reclaimable blocks; __rmqueue_claim() scans down from
    # order 10 and first meets the Movable order-8 block at 256. Order 8 < pageblock_order, so
    # try_to_claim_block() counts the pageblock: free 320, movable 192, alike (an unmovable
    # request in a movable pageblock: every used page that is not movable) 512 - 320 - 192 = 0;
    # 320 + 0 >= 256, so both free blocks move to the Unmovable lists (tail, ascending: 192
    # then 256), the pageblock becomes Unmovable, and __rmqueue_smallest(0, U) takes 192/o6 and
    # splits it: returns 192, leaving 193/o0 194/o1 196/o2 200/o3 208/o4 224/o5 and 256/o8.
    # The tracepoint says fragmenting=1 (order 8 < 9) and change_ownership=1.
    z = half_used_zone(192)
    assert z.free_blocks() == [(192, 6, M), (256, 8, M)]
    with Collect(z.events) as seen:
        assert z.alloc(0, U) == 192
    assert kinds(seen) == ["claim", "extfrag"]
    claim = next(e for e in seen if e.kind == "claim")
    assert (claim.data["free_pages"], claim.data["alike_pages"]) == (320, 0)
    assert extfrag(seen) == [{"pfn": 192, "alloc_order": 0, "fallback_order": 8,
                              "pageblock_order": 9, "alloc_migratetype": U,
                              "fallback_migratetype": M, "fragmenting": 1,
                              "change_ownership": 1}]
    assert z.get_pageblock_migratetype(0) == U
    assert z.free_blocks() == [(193, 0, U), (194, 1, U), (196, 2, U), (200, 3, U), (208, 4, U),
                               (224, 5, U), (256, 8, U)]
    z.check()


def claimed(z: Zone, mt: int, pfn: int) -> tuple[int, int]:
    """An order-0 ``mt`` request that must claim pageblock 0 and get ``pfn``: the claim's
    (free pages, alike pages)."""
    with Collect(z.events) as seen:
        assert z.alloc(0, mt) == pfn
    decision = next(e for e in seen if e.kind in ("claim", "claim_refused"))
    assert decision.kind == "claim" and z.get_pageblock_migratetype(0) == mt
    z.check()
    return decision.data["free_pages"], decision.data["alike_pages"]


def test_unmovable_request_counts_the_unmovable_pages_of_a_movable_pageblock_as_alike():
    # Pageblock 0, Movable: 0-127 used movable, 128-255 free (one order-7 block), 256-511 used
    # by an unmovable allocation. Free pages alone (128) are less than half the pageblock, but
    # try_to_claim_block() adds the "alike" pages: for an unmovable request in a movable
    # pageblock, every used page that is not movable, 512 - 128 - 128 = 256. 128 + 256 >= 256:
    # claimed, and the request is served from it (pfn 128).
    z = Zone(1024)
    assert z.alloc(9) == 0 and z.alloc(9) == 512
    z.free(0, 9)
    assert z.alloc(7, M) == 0 and z.alloc(7, M) == 128 and z.alloc(8, M) == 256
    z.set_pageblock_migratetype(0, U)                   # no free block in it: allowed
    z.free(128, 7)
    z.free(256, 8)
    assert z.alloc(8, U) == 256 and z.alloc(7, U) == 128     # now owned by unmovable requests
    z.set_pageblock_migratetype(0, M)
    z.free(128, 7)
    assert z.free_blocks() == [(128, 7, M)]
    assert claimed(z, U, 128) == (128, 256)


def test_movable_request_counts_the_movable_pages_of_an_unmovable_pageblock_as_alike():
    # The mirror case: pageblock 0, Unmovable, with 0-383 used by movable allocations and
    # 384-511 free. A movable request's alike pages are the movable ones: 128 free + 384 alike
    # >= 256, so the pageblock is claimed back to Movable.
    z = Zone(1024)
    assert z.alloc(9) == 0 and z.alloc(9) == 512
    z.free(0, 9)
    assert z.alloc(8, M) == 0 and z.alloc(7, M) == 256 and z.alloc(7, M) == 384
    z.set_pageblock_migratetype(0, U)
    z.free(384, 7)
    assert z.free_blocks() == [(384, 7, U)]
    assert claimed(z, M, 384) == (128, 384)


def test_too_busy_pageblock_is_not_claimed_and_one_block_is_stolen():
    # Pageblock 0 with 300 movable pages in use: free 212 = 300/o2 304/o4 320/o6 384/o7.
    # Claiming: orders 7, 6, 4, 2 each offer a Movable block in the same pageblock; each time
    # 212 free + 0 alike < 256: refused (four refusals). __rmqueue_steal() then takes the
    # *smallest* Movable block that fits an order-0 request, 300/o2, splits it within the
    # Movable lists (301/o0, 302/o1) and returns 300; the pageblock stays Movable: mixed.
    z = half_used_zone(300)
    assert z.free_blocks() == [(300, 2, M), (304, 4, M), (320, 6, M), (384, 7, M)]
    with Collect(z.events) as seen:
        assert z.alloc(0, U) == 300
    assert kinds(seen) == ["claim_refused"] * 4 + ["steal", "extfrag"]
    assert [e.data["order"] for e in seen if e.kind == "claim_refused"] == [7, 6, 4, 2]
    [facts] = extfrag(seen)
    assert (facts["fallback_order"], facts["fragmenting"], facts["change_ownership"]) == (2, 1, 0)
    assert z.get_pageblock_migratetype(0) == M
    assert (301, 0, M) in z.free_blocks() and (302, 1, M) in z.free_blocks()
    assert z.nr_steals == 1 and z.nr_claims == 0
    z.check()


def test_before_615_the_same_request_would_have_split_the_largest_block():
    # Teaching note made executable: classic __rmqueue_fallback() (<= 6.14) took the *largest*
    # fallback block (384/o7) when it could not claim, 6.15's __rmqueue_steal() the smallest
    # (300/o2). The 6.18 zone keeps 384/o7 whole.
    z = half_used_zone(300)
    z.alloc(0, U)
    assert (384, 7, M) in z.free_blocks()


def test_movable_small_request_steals_smallest_without_trying_to_claim():
    # Movable order-0 request, only Unmovable blocks free, of orders 0-2 (below
    # pageblock_order / 2 = 4): find_suitable_fallback(claimable) returns -2 at order 3, so the
    # claim scan stops at once; the steal takes the smallest block: order 0.
    z = Zone(1024, boot=False)
    z.set_pageblock_migratetype(0, U)
    z.set_pageblock_migratetype(512, U)
    z.memblock_free_all()
    for _ in range(3):
        z.alloc(8, U)                       # 0-767 used; 768/o8 free
    z.alloc(7, U)
    z.alloc(6, U)
    z.alloc(5, U)
    z.alloc(4, U)
    z.alloc(3, U)                           # left: 1016/o2 1020/o1 1022/o0 … after splits
    free = z.free_blocks()
    assert all(mt == U and o < 4 for _, o, mt in free)
    smallest = min(free, key=lambda b: (b[1], b[0]))
    with Collect(z.events) as seen:
        assert z.alloc(0, M) == smallest[0]
    assert kinds(seen) == ["steal", "extfrag"]
    z.check()


def test_nofragment_takes_whole_pageblocks_only_and_never_steals():
    # ALLOC_NOFRAGMENT: __rmqueue_claim() starts at pageblock_order, __rmqueue_steal() is off.
    z = half_used_zone(192)                 # free: 192/o6 256/o8 in a Movable pageblock
    lst: deque[int] = deque()
    with Collect(z.events) as seen:
        assert z._rmqueue_bulk(0, 1, lst, U, wm.ALLOC_NOFRAGMENT) == 0
    assert kinds(seen) == []
    z2 = Zone(2048)                          # two free order-10 blocks
    with Collect(z2.events) as seen:
        assert z2._rmqueue_bulk(0, 1, lst, U, wm.ALLOC_NOFRAGMENT) == 1
    assert kinds(seen) == ["claim", "extfrag"]
    assert extfrag(seen)[0]["fallback_order"] == 10


def test_rmqueue_bulk_remembers_that_it_had_to_steal():
    # "speed up fallbacks in rmqueue_bulk()": once a refill had to steal, the next blocks of the
    # same refill skip the claim attempts (enum rmqueue_mode = RMQUEUE_STEAL) ...
    z = half_used_zone(300)
    lst: deque[int] = deque()
    with Collect(z.events) as seen:
        assert z._rmqueue_bulk(0, 3, lst, U, 0) == 3
    assert kinds(seen) == ["claim_refused"] * 4 + ["steal", "extfrag"] * 3
    assert list(lst) == [300, 301, 302]
    # ... while three separate allocations try to claim each time.
    z = half_used_zone(300)
    with Collect(z.events) as seen:
        assert [z.alloc(0, U) for _ in range(3)] == [300, 301, 302]
    assert kinds(seen).count("claim_refused") > 4


def test_claim_needs_the_pageblock_inside_the_zone():
    # prep_move_freepages_block() refuses a pageblock that sticks out of the zone (only this
    # zone's lock is held): an 8-page zone with 512-page pageblocks can only steal.
    z = Zone(8)
    with Collect(z.events) as seen:
        assert z.alloc(0, U) == 0
    assert kinds(seen) == ["claim_refused", "steal", "extfrag"]
    assert z.get_pageblock_migratetype(0) == M
    assert z.alloc(0, M) == 1                  # the steal's split halves stayed Movable
    z.check()


def test_grouping_by_mobility_disabled():
    # page_group_by_mobility_disabled: gfp_migratetype() says Unmovable for everything, and
    # every fallback claims (should_try_claim_block and the half-pageblock rule both give way).
    z = Zone(2048, page_group_by_mobility_disabled=True)
    with Collect(z.events) as seen:
        p = z.alloc(0, M)
    assert p == 0 and kinds(seen) == ["claim", "extfrag"]
    assert z.get_pageblock_migratetype(0) == U
    assert z.allocation_migratetype(0) == M    # page_owner still knows what it really is
    alloc = PageAllocator([Zone(2048, page_group_by_mobility_disabled=True)])
    assert alloc.alloc_pages("GFP_HIGHUSER_MOVABLE", 0) == 0
    assert alloc.zonelist[0].get_pageblock_migratetype(0) == U


# -- watermark boost ---------------------------------------------------------------------------

def test_boost_watermark_formula():
    # boost_watermark(): max_boost = mult_frac(high, watermark_boost_factor, 10000), at least a
    # pageblock; each call adds pageblock_nr_pages up to it. Tiny zones (< 4 pageblocks) and
    # zones whose high watermark is 0 are not boosted.
    z = Zone(4096, watermarks=(400, 500, 1000))
    boosts = []
    for _ in range(4):
        assert z._boost_watermark()
        boosts.append(z.watermark_boost)
    assert boosts == [512, 1024, 1500, 1500]              # mult_frac(1000, 15000, 10000)
    assert z.wmark_pages(wm.WMARK_HIGH) == 1000 + 1500
    assert not Zone(1024, watermarks=(400, 500, 1000))._boost_watermark()
    assert not Zone(4096)._boost_watermark()
    z = Zone(4096, watermarks=(400, 500, 1000), watermark_boost_factor=0)
    assert not z._boost_watermark()


def test_sub_pageblock_claim_boosts_and_wakes_kswapd():
    # try_to_claim_block() boosts before counting; with ALLOC_KSWAPD it sets
    # ZONE_BOOSTED_WATERMARK, and rmqueue() then wakes kswapd (our stub resets the boost).
    z = Zone(4096, watermarks=(10, 20, 30))
    z.alloc(10, M)
    z.alloc(10, M)
    z.alloc(10, M)                               # 3072-4095 left: one order-10 block
    big = z.alloc(9, M)                          # 3072-3583
    z.alloc(7, M)                                # 3584-3711 used; 3712/o7 3840/o8 free
    assert big == 3072
    with Collect(z.events) as seen:
        pfn = z.rmqueue(0, U, wm.ALLOC_KSWAPD | wm.ALLOC_WMARK_LOW)
    assert pfn == 3712
    assert [e.kind for e in seen if e.kind in ("claim", "kswapd")] == ["claim", "kswapd"]
    assert z.watermark_boost == 0 and "ZONE_BOOSTED_WATERMARK" not in z.flags
    z2 = Zone(4096, watermarks=(10, 20, 30))
    for order in (10, 10, 10, 9, 7):
        z2.alloc(order, M)
    z2.rmqueue(0, U, wm.ALLOC_WMARK_LOW)         # no ALLOC_KSWAPD: boosted, nobody woken
    assert z2.watermark_boost == 512 and "ZONE_BOOSTED_WATERMARK" not in z2.flags


# -- the high-order atomic reserve -------------------------------------------------------------

def atomic_zone() -> Zone:
    # 65536 pages: 1 % = 655 → the reserve may grow to ALIGN(655, 512) = 1024 pages.
    return Zone(65536, watermarks=(1000, 2000, 3000))


def fill_to(z: Zone, free: int) -> None:
    while z.nr_free_pages > free:
        order = 9 if z.nr_free_pages - 512 >= free else 0
        z.alloc(order, M)


def test_highatomic_reserve_after_a_high_order_atomic_allocation():
    z = atomic_zone()
    assert z.max_highatomic_pages() == 1024
    fill_to(z, 1900)                             # below low (2000), above min (1000)
    with Collect(z.events) as seen:
        pfn = z.alloc_pages("GFP_ATOMIC", 1)
    # Fast path at the low watermark fails; the slow path (gfp_to_alloc_flags: MIN_RESERVE,
    # NON_BLOCK, HIGHATOMIC for order > 0) succeeds and reserves the block's pageblock.
    assert pfn is not None
    assert [e.kind for e in seen if e.kind == "highatomic"] == ["highatomic"]
    assert z.get_pageblock_migratetype(pfn) == MIGRATE_HIGHATOMIC
    assert z.nr_reserved_highatomic == 512
    assert z.nr_free_highatomic == sum(n << o for o, n in
                                       enumerate(z.nr_free_by_type()[MIGRATE_HIGHATOMIC]))
    # The next one is served from the reserve first (rmqueue_buddy tries HIGHATOMIC first) …
    nxt = z.alloc_pages("GFP_ATOMIC", 1)
    assert z.get_pageblock_migratetype(nxt) == MIGRATE_HIGHATOMIC
    # … and ordinary requests never touch it: the lists are not theirs, and the watermark
    # check subtracts the reserve's free pages.
    before = z.nr_free_by_type()[MIGRATE_HIGHATOMIC]
    z.alloc(0, U)
    z.alloc(0, M)
    assert z.nr_free_by_type()[MIGRATE_HIGHATOMIC] == before
    z.check()


def test_highatomic_reserve_is_capped_and_absent_in_small_zones():
    # 65536 pages: 1 % is 655, rounded up to whole pageblocks 1024: two pageblocks, then no
    # more (reserve_highatomic_pageblock(): nr_reserved_highatomic >= max_managed → return).
    z = atomic_zone()
    pb = z.pageblock_nr_pages
    assert z.max_highatomic_pages() == 2 * pb == 1024
    reserved = []
    for i in range(4):
        ok = z.reserve_highatomic_pageblock(i * pb, 0)
        reserved.append((ok, z.nr_reserved_highatomic))
    assert reserved == [(True, 512), (True, 1024), (False, 1024), (False, 1024)]
    assert [z.get_pageblock_migratetype(i * pb) for i in range(4)] == [
        MIGRATE_HIGHATOMIC, MIGRATE_HIGHATOMIC, M, M]
    z.check()
    small = Zone(16384, watermarks=(1000, 2000, 3000))   # 1 % = 163 < 512: no reserve
    assert small.max_highatomic_pages() == 0
    fill_to(small, 1900)
    small.alloc_pages("GFP_ATOMIC", 1)
    assert small.nr_reserved_highatomic == 0


def test_unreserve_gives_the_pageblock_back():
    z = atomic_zone()
    fill_to(z, 1900)
    pfn = z.alloc_pages("GFP_ATOMIC", 1)
    # Keeps one pageblock unless forced (the last step before OOM).
    assert not z.unreserve_highatomic_pageblock(M)
    assert z.unreserve_highatomic_pageblock(M, force=True)
    assert z.nr_reserved_highatomic == 0
    assert z.get_pageblock_migratetype(pfn) == M
    assert z.nr_free_highatomic == 0
    z.check()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_mixed_types_keep_the_invariants(seed):
    # Random requests of every type through the fallback paths; check() verifies that every
    # free block sits on its pageblock's type's list (6.10+ freelist hygiene) and the counts.
    import random

    rng = random.Random(seed)
    z = Zone(4096, pageblock_order=6, max_order=8)
    held = []
    with Collect(z.events) as seen:
        for step in range(6000):
            if held and rng.random() < 0.4:
                z.free(*held.pop(rng.randrange(len(held))))
            else:
                order = rng.choice([0, 0, 0, 1, 2, 3, 5])
                mt = rng.choice([U, M, M, M, R])
                pfn = z.alloc(order, mt)
                if pfn is not None:
                    held.append((pfn, order))
            if step % 500 == 0:
                z.check()
    z.check()
    facts = extfrag(seen)
    assert len(facts) == z.nr_claims + z.nr_steals      # each fallback reports once
    assert all(f["fragmenting"] == int(f["fallback_order"] < 6) for f in facts)
    # change_ownership is 1 exactly for claims: a steal leaves the pageblock's type alone.
    assert sum(f["change_ownership"] for f in facts) == z.nr_claims
    assert z.nr_claims and z.nr_steals

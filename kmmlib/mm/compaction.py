"""Memory compaction (``mm/compaction.c``): move movable pages out of the way of a big block.

Fragmentation leaves free memory in small pieces between used pages. When the used pages
are *movable* (user memory, page cache: anything the kernel can copy and remap), compaction
builds big free blocks again with two scanners that walk towards each other:

- the **migration scanner** (``isolate_migratepages()``) starts at the zone's first pageblock
  and walks *up*, pageblock by pageblock, picking up movable pages (at most
  COMPACT_CLUSTER_MAX = 32 pages a round, then the rest of the pageblock);
- the **free scanner** (``isolate_freepages()``) starts at the zone's last pageblock and walks
  *down*, taking free blocks out of the buddy lists, only in MOVABLE pageblocks and never a
  pageblock that starts with a free block of the requested order (6.9+);
- ``migrate_pages()`` copies each picked page into a taken free block
  (``compaction_alloc()``, which splits a bigger block when it must) and frees the old page,
  whose buddy may now be free: free space gathers at the bottom of the zone, used pages at the
  top.

It stops when the scanners meet in one pageblock (``compact_scanners_met()``: COMPACT_COMPLETE)
or, for a request of some order, as soon as a block of that order is free for its migrate
type, or could be claimed from another type (``__compact_finished()``: COMPACT_SUCCESS; it
looks only when the migration scanner is at a pageblock boundary, so the pageblock it was
emptying is finished first). Before starting, ``compaction_suitable()`` checks that there is
enough free memory to work with (the order-0 watermark plus ``compact_gap()`` = 2 × the
request) and that a failure would be due to fragmentation and not to a lack of memory
(``fragmentation_index()`` above ``vm.extfrag_threshold``, 500, for costly orders).

Pages that are not movable — kernel allocations: slab, page tables, DMA buffers — are skipped
by the migration scanner: they stay where they are, and every aligned block that contains one
can never become free. One unmovable page in each pageblock defeats compaction entirely; that
is why the allocator groups pages by mobility in the first place (chapter 07).

Which kernel: the structure of Linux 6.18's mm/compaction.c (read in the stored 6.6-era copy
of the file, plus the 6.9 change that keeps isolated free blocks whole in
``cc->freepages[order]`` and lets compaction move large folios). Simplifications, one line
each:

- The linear scanners only: ``fast_find_migrateblock()`` and ``fast_isolate_freepages()``
  (free-list searches used by direct compaction of order > 0) and the pageblock skip hints are
  not modelled — exactly what ``/proc/sys/vm/compact_memory`` (order -1, ``ignore_skip_hint``)
  does, and what direct compaction does at its highest priority, minus the fast searches.
- Synchronous mode only (stride 1, every pageblock a migration source); no async mode, no
  deferral (``defer_compaction()``), no capture of the freed page, no kcompactd or proactive
  compaction (``fragmentation_score()`` is computed, not acted on).
- A page is movable when it was allocated with a movable gfp (see :mod:`kmmlib.mm.page_alloc`)
  and is not pinned (more references than mappings; a bare allocation, whose mapping is not
  modelled, counts as mapped once); migration then always succeeds.
- Whoever holds the moved pages is told through the ``migrate`` callback ``(old, new, order)``
  — what ``remove_migration_ptes()`` does for page tables.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from kmmlib.errors import BadRequest
from kmmlib.mm import watermark as _wm
from kmmlib.mm.fragmentation import fragmentation_index
from kmmlib.mm.migratetype import MIGRATE_MOVABLE, migratetype_names, parse_migratetype

COMPACT_CLUSTER_MAX = 32          # SWAP_CLUSTER_MAX: pages isolated per round
PAGE_ALLOC_COSTLY_ORDER = 3
SYSCTL_EXTFRAG_THRESHOLD = 500    # vm.extfrag_threshold


class CompactResult(Enum):
    """``enum compact_result`` (include/linux/compaction.h), in the kernel's order."""

    COMPACT_NOT_SUITABLE_ZONE = 0
    COMPACT_SKIPPED = 1
    COMPACT_DEFERRED = 2
    COMPACT_NO_SUITABLE_PAGE = 3
    COMPACT_CONTINUE = 4
    COMPACT_COMPLETE = 5
    COMPACT_PARTIAL_SKIPPED = 6
    COMPACT_CONTENDED = 7
    COMPACT_SUCCESS = 8

    def __str__(self) -> str:
        return self.name


def compact_gap(order: int) -> int:
    """``compact_gap()``: free pages compaction wants beyond the watermark: twice the request.
    The kernel's reason: the free scanner may hold up to 2^order isolated pages and then
    split an order - 1 free block, so a gap of 2^order might not be enough."""
    return 2 << order


def __compaction_suitable(zone, order: int, highest_zoneidx: int,  # noqa: N807 - kernel name
                          wmark_target: int | None = None) -> bool:
    """``__compaction_suitable()``: is there room to compact? The order-0 watermark (low for
    costly orders, min otherwise) plus ``compact_gap(order)`` must be met by the free pages."""
    mark = zone.low_wmark_pages() if order > PAGE_ALLOC_COSTLY_ORDER else zone.min_wmark_pages()
    mark += compact_gap(order)
    free = zone.nr_free_pages if wmark_target is None else wmark_target
    return _wm.zone_watermark_ok(free, 0, mark, zone.lowmem_reserve, highest_zoneidx,
                                 _wm.ALLOC_CMA, nr_free_highatomic=zone.nr_free_highatomic)


def compaction_suitable(zone, order: int, highest_zoneidx: int = 0,
                        extfrag_threshold: int = SYSCTL_EXTFRAG_THRESHOLD) -> bool:
    """``compaction_suitable()``: compact this zone for ``order`` now? Not without enough free
    memory (:func:`__compaction_suitable`: COMPACT_SKIPPED), and, for costly orders (> 3), not
    when the fragmentation index says a failure would be due to too little memory rather than
    to fragmentation (0 ≤ index ≤ ``vm.extfrag_threshold``: COMPACT_NOT_SUITABLE_ZONE —
    reclaim is the cure then)."""
    return compaction_suitable_result(zone, order, highest_zoneidx, extfrag_threshold) is \
        CompactResult.COMPACT_CONTINUE


def compaction_suitable_result(zone, order: int, highest_zoneidx: int = 0,
                               extfrag_threshold: int = SYSCTL_EXTFRAG_THRESHOLD
                               ) -> CompactResult:
    """:func:`compaction_suitable` with the result the ``mm_compaction_suitable`` tracepoint
    reports: COMPACT_CONTINUE, COMPACT_SKIPPED or COMPACT_NOT_SUITABLE_ZONE."""
    if not __compaction_suitable(zone, order, highest_zoneidx):
        return CompactResult.COMPACT_SKIPPED
    if order > PAGE_ALLOC_COSTLY_ORDER:
        index = fragmentation_index(zone.nr_free(), order)
        if 0 <= index <= extfrag_threshold:
            return CompactResult.COMPACT_NOT_SUITABLE_ZONE
    return CompactResult.COMPACT_CONTINUE


@dataclass
class CompactControl:
    """``struct compact_control``: one compaction run of one zone, and what it did."""

    zone: object
    order: int = -1                      # -1: compact everything (/proc/sys/vm/compact_memory)
    migratetype: int = MIGRATE_MOVABLE
    ignore_block_suitable: bool = False  # free pages from any pageblock type (MIN_PRIORITY)
    migrate_pfn: int = 0
    free_pfn: int = 0
    freepages: list[deque] = field(default_factory=list)   # isolated free blocks, per order
    nr_freepages: int = 0
    migratepages: list[tuple[int, int]] = field(default_factory=list)  # (pfn, order), head 1st
    nr_migratepages: int = 0
    finish_pageblock: bool = False
    total_migrate_scanned: int = 0
    total_free_scanned: int = 0
    moves: list[tuple[int, int, int]] = field(default_factory=list)    # (from, to, order)
    skipped_unmovable: list[int] = field(default_factory=list)         # pfns not movable
    result: CompactResult | None = None

    @property
    def nr_migrated(self) -> int:
        """Pages moved."""
        return sum(1 << o for _, _, o in self.moves)

    def summary(self) -> str:
        """One line: the result and the work done."""
        what = ("everything" if self.order < 0 else
                f"order {self.order} ({migratetype_names[self.migratetype]})")
        return (f"compact_zone({self.zone.name}, {what}): {self.result}; moved "
                f"{self.nr_migrated} pages in {len(self.moves)} blocks; scanned "
                f"{self.total_migrate_scanned} pages for movable ones and "
                f"{self.total_free_scanned} for free ones; "
                f"{len(self.skipped_unmovable)} unmovable allocations left in place")


def _pageblock_start(pfn: int, nr: int) -> int:
    return pfn & ~(nr - 1)


def _pageblock_end(pfn: int, nr: int) -> int:
    return (pfn & ~(nr - 1)) + nr


def compact_scanners_met(cc: CompactControl) -> bool:
    """``compact_scanners_met()``: has the free scanner come down to the migration scanner's
    pageblock (or below)?"""
    pb = cc.zone.pageblock_order
    return cc.free_pfn >> pb <= cc.migrate_pfn >> pb


def __compact_finished(cc: CompactControl) -> CompactResult:  # noqa: N807 - kernel name
    """``__compact_finished()``: COMPACT_COMPLETE when the scanners met; for a request of some
    order, COMPACT_SUCCESS when (at a pageblock boundary) a free block of that order is on the
    request's own list or on a list it could claim from; else keep going."""
    zone = cc.zone
    if compact_scanners_met(cc):
        zone.compact_cached_migrate_pfn = zone.zone_start_pfn      # reset_cached_positions()
        zone.compact_cached_free_pfn = _pageblock_start(zone.zone_end_pfn - 1,
                                                        zone.pageblock_nr_pages)
        return CompactResult.COMPACT_COMPLETE
    if cc.order < 0:
        return CompactResult.COMPACT_CONTINUE
    if cc.migrate_pfn & (zone.pageblock_nr_pages - 1):
        return CompactResult.COMPACT_CONTINUE      # finish the pageblock being emptied first
    for order in range(cc.order, zone.nr_orders):
        if zone.free_list_head(order, cc.migratetype) >= 0:
            return CompactResult.COMPACT_SUCCESS
        if zone.find_suitable_fallback(order, cc.migratetype, True) >= 0:
            return CompactResult.COMPACT_SUCCESS
    return CompactResult.COMPACT_NO_SUITABLE_PAGE


def compact_finished(cc: CompactControl) -> CompactResult:
    """``compact_finished()``: COMPACT_NO_SUITABLE_PAGE means carry on."""
    ret = __compact_finished(cc)
    return CompactResult.COMPACT_CONTINUE if ret is CompactResult.COMPACT_NO_SUITABLE_PAGE \
        else ret


def _skip_isolation_on_order(order: int, target_order: int, pageblock_order: int) -> bool:
    """``skip_isolation_on_order()``: a large folio is not worth moving for a request no
    bigger than it, nor when it is a pageblock or more."""
    if target_order >= 0 and order >= target_order:
        return True
    return order >= pageblock_order


def isolate_migratepages_block(cc: CompactControl, low_pfn: int, end_pfn: int) -> None:
    """``isolate_migratepages_block()``: pick up the movable pages of [low_pfn, end_pfn) (one
    pageblock), at most COMPACT_CLUSTER_MAX pages unless the pageblock is to be finished.
    Free blocks are skipped whole; unmovable allocations are noted and left alone."""
    zone = cc.zone
    mm = zone.mem_map
    private = mm.private
    base = mm.start_pfn
    nr_isolated = 0
    log = zone.events
    start_pfn = low_pfn
    while low_pfn < end_pfn:
        i = low_pfn - base
        if mm.PageBuddy(low_pfn):                       # a free block: skip it
            low_pfn += 1 << private[i]
            continue
        mt = zone.allocation_migratetype(low_pfn)
        if mt < 0:                                      # a tail, a per-cpu or reserved page
            low_pfn += 1
            continue
        order = zone.allocation_order(low_pfn)
        if mt != MIGRATE_MOVABLE:
            cc.skipped_unmovable.append(low_pfn)
            if log.active:
                log.emit("compact_skip", f"migration scanner: pfn {low_pfn} is an unmovable "
                         f"({migratetype_names[mt]}) allocation: it stays, and no free block "
                         "can form around it", pfn=low_pfn, order=order, migratetype=mt)
            low_pfn += 1 << order
            continue
        if order and _skip_isolation_on_order(order, cc.order, zone.pageblock_order):
            low_pfn += 1 << order
            continue
        # Pinned: the kernel skips an anonymous page with more references than mappings. A
        # bare allocation stands for a user page whose one mapping is not modelled: it counts 1.
        if mm.refcount[i] > (mm.mapcount[i] + 1 or 1):
            low_pfn += 1 << order
            continue
        cc.migratepages.insert(0, (low_pfn, order))    # list_add(): at the head
        cc.nr_migratepages += 1 << order
        nr_isolated += 1 << order
        low_pfn += 1 << order
        if cc.nr_migratepages >= COMPACT_CLUSTER_MAX and not cc.finish_pageblock:
            break
    cc.migrate_pfn = min(low_pfn, end_pfn)
    # compact_migrate_scanned counts pages: a skipped free or compound block counts its size.
    cc.total_migrate_scanned += cc.migrate_pfn - start_pfn
    if nr_isolated and log.active:
        log.emit("compact_isolate", f"migration scanner: {nr_isolated} movable page(s) picked "
                 f"up, now at pfn {cc.migrate_pfn}", pfn=cc.migrate_pfn, nr=nr_isolated)


def isolate_migratepages(cc: CompactControl) -> bool:
    """``isolate_migratepages()``: from ``cc.migrate_pfn``, the first pageblock below the free
    scanner (synchronous mode: every pageblock is a source). True if pages were isolated."""
    zone = cc.zone
    nr = zone.pageblock_nr_pages
    low_pfn = cc.migrate_pfn
    block_start = max(_pageblock_start(low_pfn, nr), zone.zone_start_pfn)
    block_end = _pageblock_end(low_pfn, nr)
    while block_end <= cc.free_pfn:
        if block_start >= zone.zone_start_pfn and not _skip_persistent(zone, block_start):
            isolate_migratepages_block(cc, low_pfn, block_end)
            break
        cc.migrate_pfn = low_pfn = block_start = block_end
        block_end += nr
    return cc.nr_migratepages > 0


def _skip_persistent(zone, pfn: int) -> bool:
    """``pageblock_skip_persistent()``: a pageblock held by one allocation of pageblock_order
    or more has nothing to offer."""
    order = zone.allocation_order(pfn)
    return order >= zone.pageblock_order


def suitable_migration_target(cc: CompactControl, pfn: int) -> bool:
    """``suitable_migration_target()``: take free pages from this pageblock? Not when it
    starts with a free block of the requested order or more (of pageblock_order when compacting
    everything; 6.9+): that block is what compaction is trying to make. Else only a MOVABLE
    pageblock (unless told to ignore that) — filling an unmovable pageblock with movable pages
    would be fragmentation of its own."""
    zone = cc.zone
    mm = zone.mem_map
    order = cc.order if cc.order > 0 else zone.pageblock_order
    if mm.PageBuddy(pfn) and mm.buddy_order(pfn) >= order:
        return False
    if cc.ignore_block_suitable:
        return True
    return zone.get_pageblock_migratetype(pfn) == MIGRATE_MOVABLE


def isolate_freepages_block(cc: CompactControl, start_pfn: int, end_pfn: int) -> int:
    """``isolate_freepages_block()`` (stride 1): take the free blocks of [start_pfn, end_pfn)
    into ``cc.freepages[order]`` (each at the tail) until there are as many free pages as
    pages waiting to move. Returns the pfn the scan stopped at."""
    zone = cc.zone
    mm = zone.mem_map
    blockpfn = start_pfn
    while blockpfn < end_pfn:
        if not mm.PageBuddy(blockpfn):              # in use: no free page inside it
            order = zone.allocation_order(blockpfn)
            blockpfn += 1 << order if order > 0 else 1
            continue
        order = mm.buddy_order(blockpfn)
        isolated = zone.isolate_free_page(blockpfn, order)
        if not isolated:
            cc.total_free_scanned += 1              # the page it stopped at was looked at
            break
        cc.freepages[order].append(blockpfn)
        cc.nr_freepages += isolated
        blockpfn += isolated
        if cc.nr_migratepages <= cc.nr_freepages:
            break
    # compact_free_scanned counts pages too: an isolated free block counts all of its pages.
    cc.total_free_scanned += min(blockpfn, end_pfn) - start_pfn
    return min(blockpfn, end_pfn)


def isolate_freepages(cc: CompactControl) -> None:
    """``isolate_freepages()``: walk down from ``cc.free_pfn``, pageblock by pageblock, above
    the migration scanner's pageblock, taking free blocks from suitable pageblocks; remember
    where to go on next time."""
    zone = cc.zone
    nr = zone.pageblock_nr_pages
    isolate_start = cc.free_pfn
    block_start = _pageblock_start(isolate_start, nr)
    block_end = min(block_start + nr, zone.zone_end_pfn)
    low_pfn = _pageblock_end(cc.migrate_pfn, nr)
    before = cc.nr_freepages
    while block_start >= low_pfn:
        if block_start >= zone.zone_start_pfn and suitable_migration_target(cc, block_start):
            isolate_start = isolate_freepages_block(cc, isolate_start, block_end)
            if cc.nr_freepages >= cc.nr_migratepages:
                if isolate_start >= block_end:
                    isolate_start = block_start - nr
                break
            if isolate_start < block_end:
                break
        block_end = block_start
        block_start -= nr
        isolate_start = block_start
    cc.free_pfn = isolate_start
    log = zone.events
    if log.active:
        log.emit("compact_free", f"free scanner: {cc.nr_freepages - before} free page(s) taken, "
                 f"now at pfn {max(cc.free_pfn, 0)}", pfn=cc.free_pfn,
                 nr=cc.nr_freepages - before)


def compaction_alloc(cc: CompactControl, order: int) -> int:
    """``compaction_alloc()``: a free block of ``order`` for a page being moved: the first
    isolated block of that order or the next bigger one (split, upper halves kept for later),
    isolating more when none is left. -1 when the free scanner finds nothing more."""
    zone = cc.zone
    isolated = False
    while True:
        start = next((o for o in range(order, zone.nr_orders) if cc.freepages[o]), None)
        if start is not None:
            break
        if isolated:
            return -1
        isolate_freepages(cc)
        isolated = True
    pfn = cc.freepages[start].popleft()
    while start > order:
        start -= 1
        cc.freepages[start].appendleft(pfn + (1 << start))   # list_add(): at the head
    cc.nr_freepages -= 1 << order
    cc.nr_migratepages -= 1 << order
    return pfn


def migrate_pages(cc: CompactControl, migrate: Callable[[int, int, int], None] | None) -> bool:
    """``migrate_pages()``: move every isolated page, in list order, into a block from
    :func:`compaction_alloc`. False (-ENOMEM) when free blocks ran out; the pages not moved
    stay where they were (``putback_movable_pages()``)."""
    zone = cc.zone
    log = zone.events
    pages, cc.migratepages = cc.migratepages, []
    for n, (src, order) in enumerate(pages):
        dst = compaction_alloc(cc, order)
        if dst < 0:
            cc.nr_migratepages = 0
            if log.active:
                log.emit("compact_putback", f"no free block left for pfn {src}: "
                         f"{len(pages) - n} page(s) stay where they are", pfn=src)
            return False
        zone.migrate_block(src, dst, order)
        cc.moves.append((src, dst, order))
        if migrate is not None:
            migrate(src, dst, order)
        if log.active:
            log.emit("migrate", f"migrate: order-{order} movable block pfn {src} → {dst}",
                     src=src, dst=dst, order=order)
    cc.nr_migratepages = 0
    return True


def release_freepages(cc: CompactControl) -> None:
    """``release_free_list()``: give the isolated free blocks compaction did not use back to
    the buddy allocator (they merge with their buddies as any free does)."""
    zone = cc.zone
    for order, blocks in enumerate(cc.freepages):
        while blocks:
            zone.release_isolated_block(blocks.popleft(), order)
    cc.nr_freepages = 0


def compact_zone(zone, order: int = -1, migratetype: int | str = MIGRATE_MOVABLE, *,
                 migrate: Callable[[int, int, int], None] | None = None,
                 ignore_block_suitable: bool = False, highest_zoneidx: int = 0,
                 alloc_flags: int = _wm.ALLOC_WMARK_MIN) -> CompactControl:
    """``compact_zone()`` on a :class:`~kmmlib.mm.page_alloc.Zone`: order -1 compacts the whole
    zone (``echo 1 > /proc/sys/vm/compact_memory``); order N stops as soon as an order-N block
    is free for ``migratetype`` — if the zone passes :func:`compaction_suitable` and the
    allocation would not succeed already. ``migrate(old_pfn, new_pfn, order)`` is called for
    every block moved, so that its holder can follow it. Returns the :class:`CompactControl`
    with the result and every move."""
    if not isinstance(order, int) or isinstance(order, bool) or not -1 <= order <= \
            zone.max_order:
        raise BadRequest(f"compact_zone: order must be -1 (everything) or 0..{zone.max_order}, "
                         f"not {order!r}")
    mt = parse_migratetype(migratetype)
    nr = zone.pageblock_nr_pages
    cc = CompactControl(zone, order, mt, ignore_block_suitable,
                        freepages=[deque() for _ in range(zone.nr_orders)])
    log = zone.events
    if order >= 0:
        mark = zone.wmark_pages(alloc_flags & _wm.ALLOC_WMARK_MASK)
        if zone._watermark_ok(order, mark, highest_zoneidx, alloc_flags) and any(
                zone.free_list_head(o, mt) >= 0 for o in range(order, zone.nr_orders)):
            cc.result = CompactResult.COMPACT_SUCCESS       # it would succeed already
            return cc
        verdict = compaction_suitable_result(zone, order, highest_zoneidx)
        if verdict is not CompactResult.COMPACT_CONTINUE:
            cc.result = CompactResult.COMPACT_SKIPPED
            if log.active:
                log.emit("compact_end", f"compaction_suitable(order {order}): {verdict} — not "
                         "compacting", result=str(verdict))
            return cc
    cc.migrate_pfn = zone.zone_start_pfn
    cc.free_pfn = _pageblock_start(zone.zone_end_pfn - 1, nr)
    if log.active:
        log.emit("compact_begin", f"compact_zone: migration scanner at pfn {cc.migrate_pfn}, "
                 f"free scanner at pfn {cc.free_pfn}", migrate_pfn=cc.migrate_pfn,
                 free_pfn=cc.free_pfn, order=order)
    last_migrated = -1
    while True:
        ret = compact_finished(cc)
        if ret is not CompactResult.COMPACT_CONTINUE:
            break
        iteration_start = cc.migrate_pfn
        cc.finish_pageblock = last_migrated >= 0 and \
            _pageblock_start(last_migrated, nr) == _pageblock_start(iteration_start, nr)
        if isolate_migratepages(cc):
            last_migrated = max(zone.zone_start_pfn, _pageblock_start(cc.migrate_pfn - 1, nr))
            if not migrate_pages(cc, migrate) and not compact_scanners_met(cc):
                ret = CompactResult.COMPACT_CONTENDED
                break
        # check_drain: pages freed by migration may sit on per-cpu lists; flush them so they
        # merge, once the scanner has left the order-aligned block it migrated from.
        if order > 0 and last_migrated >= 0 and zone.pcp_enabled and \
                last_migrated < cc.migrate_pfn & ~((1 << order) - 1):
            zone.drain_pages()
            last_migrated = -1
    cc.result = ret
    release_freepages(cc)
    if zone.pcp_enabled:
        zone.drain_pages()
    if log.active:
        log.emit("compact_end", cc.summary(), result=str(ret), moved=cc.nr_migrated)
    return cc


def compact_memory(zone, migrate: Callable[[int, int, int], None] | None = None
                   ) -> CompactControl:
    """``echo 1 > /proc/sys/vm/compact_memory`` for one zone: :func:`compact_zone` with
    order -1 (until the scanners meet)."""
    return compact_zone(zone, -1, migrate=migrate)


def enable_direct_compaction(allocator, migrate: Callable[[int, int, int], None]) -> None:
    """Plug compaction into ``PageAllocator``'s slow path (``__alloc_pages_direct_compact()``),
    for callers that can follow their pages: ``migrate(old, new, order)`` is called for every
    block moved."""
    def compact(zone, order: int, gfp: int) -> int | None:
        from kmmlib.mm.gfp import gfp_migratetype

        cc = compact_zone(zone, order, gfp_migratetype(gfp), migrate=migrate,
                          highest_zoneidx=zone.zone_idx)
        return cc.nr_migrated

    allocator.compact = compact


__all__ = ["COMPACT_CLUSTER_MAX", "CompactControl", "CompactResult", "compact_gap",
           "compact_memory", "compact_zone", "compaction_suitable",
           "compaction_suitable_result", "enable_direct_compaction"]

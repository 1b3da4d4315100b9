"""The buddy allocator of ``mm/page_alloc.c``: free lists, split, merge, per-cpu lists.

Follows Linux 6.18. A :class:`Zone` owns ``free_area[0..MAX_PAGE_ORDER]``; each order has one
free list per migrate type and ``nr_free``, the number of free *blocks* of that order. A block
of order k is 2^k pages whose first pfn is a multiple of 2^k; its *buddy* is the block of the
same order that differs only in bit k of the pfn (``pfn ^ (1 << k)``), and two free buddies
merge into the order-(k+1) block that starts at ``pfn & buddy_pfn`` (below MAX_PAGE_ORDER, and
subject to the migrate-type rule under **free** below).

The free lists are intrusive doubly-linked lists through ``page->buddy_list`` (here the
``lru_next``/``lru_prev`` arrays of :class:`~kmmlib.mm.mem_map.MemMap`, holding pfns), and a free
block's head page is marked ``PageBuddy`` with its order in ``page->private``, exactly as the
kernel keeps them. What the simulator returns is what the kernel would return for the same
requests on the same free lists, because it follows the same rules:

- **boot** — ``memblock_free_all()`` → ``__free_pages_memory()`` (mm/memblock.c) frees every
  free range in the largest aligned blocks, ascending, each through ``__free_pages_core()`` with
  FPI_TO_TAIL, so boot blocks queue at the *tail* of their lists.
- **allocation** — ``__rmqueue_smallest()`` takes the *head* of the first non-empty list from
  the requested order upwards; ``expand()`` keeps the *lowest* part and puts each upper half at
  the *head* of the list one order down, largest half first.
- **free** — ``__free_one_page()`` merges with free buddies while order < MAX_PAGE_ORDER
  (refusing, at pageblock order and above, to merge HIGHATOMIC/ISOLATE blocks with ordinary
  ones), then puts the block at the *tail* when ``buddy_merge_likely()`` sees that its parent's
  buddy is free (it will probably merge again soon, so keep it unused), else at the *head*.
- **per-cpu lists** (optional, off for teaching) — orders 0..3 and the THP order go through a
  per-CPU cache: an empty list is refilled with ``batch`` blocks (``rmqueue_bulk()``, appended
  in ascending order), frees go to the list head, and once the CPU's lists together hold
  ``high`` pages or more, some go back (``free_pcppages_bulk()``, oldest first, round the
  lists).
- **migratetype fallback** (chapter 07) — when a request's own ``free_list[mt]`` has nothing
  big enough, ``__rmqueue_claim()`` looks at the *largest* free block of the types
  ``fallbacks[mt]`` lists, from MAX_PAGE_ORDER down, and claims its whole pageblock for ``mt``
  when the block is a pageblock or more, or when at least half the pageblock is free or
  "alike"; failing that, ``__rmqueue_steal()`` takes the *smallest* block that fits and leaves
  its pageblock's type alone (that mixes types in a pageblock: "fragmenting"). Both report the
  facts of the ``mm_page_alloc_extfrag`` tracepoint as an ``extfrag`` event. High-order atomic
  allocations keep a reserve of HIGHATOMIC pageblocks (about 1 % of the zone).

Which kernel: Linux 6.18's mm/page_alloc.c, read as the 6.15 rework left it (B. Jackman's
"Clarify terminology in migratetype fallback code" and J. Weiner's "don't steal single pages
from biggest buddy", "speed up fallbacks in rmqueue_bulk()" and "tighten up
find_suitable_fallback()"): ``__rmqueue_claim`` / ``__rmqueue_steal``, ``try_to_claim_block``,
``should_try_claim_block``, ``find_suitable_fallback(area, order, mt, claimable)`` returning -2
when claiming is pointless, and ``enum rmqueue_mode`` remembered across one ``rmqueue_bulk()``.
The 6.18 file itself could not be read here (the stored copy is 5.19-era): the code was put
together from those patches (lore) and from a line-by-line description of the v6.19 code;
treat the exact 6.18 text as NOT VERIFIED. Until 6.14 (6.1, 6.6, 6.12 before backports)
one ``__rmqueue_fallback()`` did both. It also went for the largest fallback block, but when
it could not claim that block's pageblock it *still* took that largest block
(``steal_suitable_fallback(..., whole_block)``: moved to the requester's list, and from 6.10
split in place) for an unmovable or reclaimable request, and for a movable one whenever the
block was of order ≥ pageblock_order/2 (``can_steal_fallback()`` judged the block found, not
the request), so big free blocks were broken up for single pages; only when a movable
request's largest fallback block was smaller than that did it search for the smallest block
instead. 6.15 made
claiming all-or-nothing and every steal smallest-first, and renamed ``can_steal_fallback`` →
``should_try_claim_block`` and ``steal_suitable_fallback`` → ``try_to_claim_block``; the
thresholds (order ≥ pageblock_order/2, unmovable and reclaimable always try, half a pageblock
free or alike) did not change.

Python mangles names that start with two underscores inside a class, so the methods are
spelt with one (``_rmqueue_smallest`` is ``__rmqueue_smallest``); the kernel's spellings
``__free_pages``, ``__get_free_pages`` … are aliases for use from notebooks and scripts.

Simplifications (one line each):
- CMA is not configured (as on the bundled snapshot's machine), so there is no
  ``__rmqueue_cma_fallback`` and no ``RMQUEUE_CMA`` step; ``defrag_mode`` is off.
- "Movable" pages, for claiming and for compaction, are the pages of allocations made with a
  movable gfp (page_owner's view), standing in for PageLRU() || page_has_movable_ops().
- Reclaim is a stub that reclaims nothing; kswapd is "woken" as an event only (and resets a
  boosted watermark); there is no OOM killer. Compaction (kmmlib.mm.compaction) runs only
  when someone can be told where pages moved: PageAllocator.compact is unset by default.
- The HighAtomic reserve goes back only in ``should_reclaim_retry()``'s forced unreserve
  before a failure (which a costly order reaches only with __GFP_RETRY_MAYFAIL); the unforced
  one after direct reclaim needs reclaim progress (never here).
- Page shuffling (``page_alloc.shuffle``) is off, as by default; DEBUG_PAGEALLOC guard pages,
  free page reporting and page poisoning are not modelled.
- Per-cpu lists: ``high`` auto-tuning follows ``nr_pcp_high()``/``nr_pcp_alloc()``, but the
  periodic ``decay_pcp_high()`` and vmstat drains are not modelled; one pfn list per
  (order, migratetype) is a ``deque`` rather than links through the pages.
- The order each block was allocated with is remembered (as CONFIG_PAGE_OWNER would) so that
  a free with the wrong order is caught instead of silently corrupting the lists.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from kmmlib.errors import BadPageState, BadRequest
from kmmlib.events import EventLog
from kmmlib.mm import gfp as _gfp
from kmmlib.mm import page_flags as _pf
from kmmlib.mm import watermark as _wm
from kmmlib.mm.mem_map import UINT_MAX, MemMap
from kmmlib.mm.migratetype import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    fallbacks,
    migratetype_names,
    parse_migratetype,
)
from kmmlib.procfs.buddyinfo import BuddyInfo, format_line

# include/linux/mmzone.h (6.18), 4 KiB pages.
MAX_PAGE_ORDER = 10
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
PAGE_ALLOC_COSTLY_ORDER = 3
PAGEBLOCK_ORDER = 9                 # x86_64/arm64 with 4K pages: min(HPAGE_PMD_ORDER, MAX)
PAGE_SHIFT = 12

# fpi_t flags (mm/page_alloc.c): internal flags of the non-pcp free path.
FPI_NONE = 0
FPI_SKIP_REPORT_NOTIFY = 1 << 0
FPI_TO_TAIL = 1 << 1

# Per-cpu page lists (mm/page_alloc.c): MIN_PERCPU_PAGELIST_HIGH_FRACTION, and
# CONFIG_PCP_BATCH_SCALE_MAX (mm/Kconfig, default 5, range 0..6: a build option, no sysctl).
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
PCP_BATCH_SCALE_MAX = 5
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0
PCPF_FREE_HIGH_BATCH = 1 << 1

# Zone flags used here (enum zone_flags).
ZONE_BELOW_HIGH = "ZONE_BELOW_HIGH"
ZONE_BOOSTED_WATERMARK = "ZONE_BOOSTED_WATERMARK"

# enum rmqueue_mode (mm/page_alloc.c, 6.15+): how far __rmqueue() had to go; rmqueue_bulk()
# starts the next block of a refill there. (RMQUEUE_CMA is skipped: no CMA in this build.)
RMQUEUE_NORMAL, RMQUEUE_CMA, RMQUEUE_CLAIM, RMQUEUE_STEAL = range(4)

_BUDDY = _pf.PGTY_buddy << 24       # page_type of a free block's head page (PageBuddy)
_NO_TYPE = UINT_MAX
_NO_ORDER = 0xFF                    # _alloc_order of a page that does not head an allocation
_NT = MIGRATE_TYPES
_MOVABLE_IDX = _gfp.X86_64_ZONES.index("Movable")

# GFP bits (include/linux/gfp_types.h), read once from kmmlib.mm.gfp.
_G = _gfp.DEFAULT.masks
GFP_NOWARN = _G["__GFP_NOWARN"]
GFP_COMP = _G["__GFP_COMP"]
GFP_DIRECT_RECLAIM = _G["__GFP_DIRECT_RECLAIM"]
GFP_KSWAPD_RECLAIM = _G["__GFP_KSWAPD_RECLAIM"]
GFP_MEMALLOC = _G["__GFP_MEMALLOC"]
GFP_NOMEMALLOC = _G["__GFP_NOMEMALLOC"]
GFP_NORETRY = _G["__GFP_NORETRY"]
GFP_RETRY_MAYFAIL = _G["__GFP_RETRY_MAYFAIL"]
GFP_NOFAIL = _G["__GFP_NOFAIL"]
GFP_IO = _G["__GFP_IO"]
GFP_THISNODE = _G["__GFP_THISNODE"]
_GFP_MOVABLE_MASK = _G["GFP_MOVABLE_MASK"]


def format_extfrag(data: dict) -> str:
    """The fields of an ``mm_page_alloc_extfrag`` trace line after ``page=%p`` (which is a
    hashed pointer), from an ``extfrag`` event's data: ``pfn=0x110400 alloc_order=0 …``."""
    return (f"pfn={data['pfn']:#x} alloc_order={data['alloc_order']} "
            f"fallback_order={data['fallback_order']} "
            f"pageblock_order={data['pageblock_order']} "
            f"alloc_migratetype={data['alloc_migratetype']} "
            f"fallback_migratetype={data['fallback_migratetype']} "
            f"fragmenting={data['fragmenting']} change_ownership={data['change_ownership']}")


def _mt_name(mt: int) -> str:
    return migratetype_names[mt] if 0 <= mt < len(migratetype_names) else str(mt)


def _pfns(pfn: int, order: int) -> str:
    return f"{pfn}" if order == 0 else f"{pfn}-{pfn + (1 << order) - 1}"


# -- per-cpu page list sizing (mm/page_alloc.c) ---------------------------------------------

def rounddown_pow_of_two(n: int) -> int:
    """``rounddown_pow_of_two()`` (include/linux/log2.h)."""
    return 1 << (n.bit_length() - 1) if n > 0 else 0


def zone_batchsize(managed_pages: int, page_size: int = 1 << PAGE_SHIFT) -> int:
    """``zone_batchsize()`` as ``zone_set_pageset_high_and_batch()`` uses it (``max(1, …)``):
    about a quarter of a thousandth of the zone, at most 1 MiB's worth / 4 (64 pages with 4 KiB
    pages), then ``rounddown_pow_of_two(batch * 3 / 2) - 1`` (a power of two was found to alias
    badly in CPU caches). 63 for any zone of 1 GiB or more with 4 KiB pages."""
    batch = min(managed_pages >> 10, (1 << 20) // page_size)
    batch //= 4
    if batch < 1:
        batch = 1
    batch = rounddown_pow_of_two(batch + batch // 2) - 1
    return max(1, batch)


def zone_highsize(managed_pages: int, low_wmark: int, batch: int, nr_cpus: int,
                  high_fraction: int = 0) -> int:
    """``zone_highsize()``: how many pages one CPU's lists may hold. By default the zone's low
    watermark split between the node's CPUs (so full per-cpu lists never wake kswapd early);
    with ``vm.percpu_pagelist_high_fraction`` set, managed/fraction split the same way. Never
    below 4·batch."""
    total = managed_pages // high_fraction if high_fraction else low_wmark
    high = total // max(1, nr_cpus)
    return max(high, batch << 2)


class PerCpuPages:
    """``struct per_cpu_pages`` (include/linux/mmzone.h, 6.18): one CPU's cache of free blocks
    for one zone. ``lists[pindex]`` holds pfns, head on the left."""

    __slots__ = ("count", "high", "high_min", "high_max", "batch", "flags", "alloc_factor",
                 "free_count", "lists")

    def __init__(self, nr_lists: int, batch: int, high_min: int, high_max: int):
        self.count = 0          # pages on all lists
        self.high = 0           # current high mark; clamped into [high_min, high_max] on use
        self.high_min = high_min
        self.high_max = high_max
        self.batch = batch
        self.flags = 0
        self.alloc_factor = 0   # batch scaling while allocating without freeing
        self.free_count = 0     # pages freed since the last allocation (decays on alloc)
        self.lists: list[deque[int]] = [deque() for _ in range(nr_lists)]

    def __repr__(self) -> str:
        return (f"PerCpuPages(count={self.count}, high={self.high}, batch={self.batch}, "
                f"high_min={self.high_min}, high_max={self.high_max})")


class FreeArea:
    """A read-only view of ``zone->free_area[order]``: ``nr_free`` and ``free_list[mt]``
    (pfns from head to tail, built on demand by walking the links)."""

    def __init__(self, zone: Zone, order: int):
        self._zone = zone
        self.order = order

    @property
    def nr_free(self) -> int:
        return self._zone._nr_free[self.order]

    @property
    def free_list(self) -> list[list[int]]:
        return [self._zone.free_list(self.order, mt) for mt in range(MIGRATE_TYPES)]

    def __repr__(self) -> str:
        lists = ", ".join(f"{_mt_name(mt)}: {pfns}" for mt, pfns in enumerate(self.free_list)
                          if pfns)
        return f"free_area[{self.order}] nr_free={self.nr_free}" + (f" ({lists})" if lists else "")


class Zone:
    """One zone's buddy allocator (``struct zone``'s free_area, counters and per-cpu lists).

    ``Zone(nr_pages, start_pfn)`` builds its ``mem_map`` and frees every page into the buddy
    lists the way boot does (unless ``boot=False``). Options:

    - ``pageblock_order`` (9 on x86_64; the teaching preset uses 3) and ``max_order``
      (MAX_PAGE_ORDER: 10 with 4 KiB pages; arm64 uses 11 with 16 KiB and 13 with 64 KiB).
    - ``reserved``: pfn ranges ``(start, end)`` memblock keeps (firmware, the kernel image);
      they stay allocated with PG_reserved and are not part of ``managed_pages``.
    - ``watermarks``: ``(min, low, high[, promo])`` pages, or a
      :class:`~kmmlib.mm.watermark.Watermarks`; none by default. ``lowmem_reserve``: the
      protection array (one entry per zone type).
    - ``pcp``: per-cpu lists on (``nr_cpus`` of them); ``percpu_pagelist_high_fraction`` as the
      sysctl (0: auto-tuned between the low watermark and 1/8 of the zone).
    - ``events``: the :class:`~kmmlib.events.EventLog` to report to (a new one by default).
    - ``page_group_by_mobility_disabled``: grouping by mobility off, as the kernel sets it on
      machines too small for it (every request uses the Unmovable lists and every fallback
      claims); ``watermark_boost_factor`` as the sysctl (15000: boost up to 150 % of high).
    """

    def __init__(self, nr_pages: int, start_pfn: int = 0, *, name: str = "Normal",
                 node: int = 0, zone_idx: int | None = None, max_order: int = MAX_PAGE_ORDER,
                 pageblock_order: int = PAGEBLOCK_ORDER, reserved: Iterable[tuple[int, int]] = (),
                 watermarks: Sequence[int] | _wm.Watermarks | None = None,
                 lowmem_reserve: Sequence[int] | None = None, pcp: bool = False,
                 nr_cpus: int = 1, percpu_pagelist_high_fraction: int = 0, thp: bool = True,
                 events: EventLog | None = None, mem_map: MemMap | None = None,
                 boot: bool = True, comm: str = "kmm",
                 page_group_by_mobility_disabled: bool = False,
                 watermark_boost_factor: int = 15000):
        for what, v in (("nr_pages", nr_pages), ("start_pfn", start_pfn),
                        ("max_order", max_order), ("pageblock_order", pageblock_order),
                        ("nr_cpus", nr_cpus)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise BadRequest(f"zone: {what} must be a non-negative integer, not {v!r}")
        if nr_pages < 1:
            raise BadRequest("zone: a zone needs at least one page")
        if not 0 < max_order <= 20:
            raise BadRequest(f"zone: MAX_PAGE_ORDER {max_order} outside 1..20")
        if pageblock_order > max_order:
            raise BadRequest(f"zone: pageblock_order {pageblock_order} > MAX_PAGE_ORDER "
                             f"{max_order} (the kernel caps it: min(HPAGE_PMD_ORDER, "
                             "MAX_PAGE_ORDER))")
        if pcp and nr_cpus < 1:
            raise BadRequest("zone: per-cpu lists need at least one CPU")
        self.name = name
        self.node = node
        if zone_idx is None:
            zone_idx = _gfp.X86_64_ZONES.index(name) if name in _gfp.X86_64_ZONES else 0
        self.zone_idx = zone_idx
        self.zone_start_pfn = start_pfn
        self.spanned_pages = nr_pages
        self.zone_end_pfn = start_pfn + nr_pages
        self.max_order = max_order
        self.nr_orders = max_order + 1
        self.pageblock_order = pageblock_order
        self.pageblock_nr_pages = 1 << pageblock_order
        self.comm = comm
        self.events = events if events is not None else EventLog()

        if mem_map is None:
            mem_map = MemMap(nr_pages, start_pfn)
        elif not (mem_map.start_pfn <= start_pfn and self.zone_end_pfn <= mem_map.end_pfn):
            raise BadRequest(f"zone: mem_map [{mem_map.start_pfn:#x}, {mem_map.end_pfn:#x}) does "
                             f"not cover the zone [{start_pfn:#x}, {self.zone_end_pfn:#x})")
        self.mem_map = mem_map
        self._base = mem_map.start_pfn
        mem_map.release = self._release

        # Free lists: heads/tails per (order, migratetype), flat index order * MIGRATE_TYPES + mt.
        n = self.nr_orders * _NT
        self._head = [-1] * n
        self._tail = [-1] * n
        self._nr_free = [0] * self.nr_orders          # free_area[order].nr_free
        self._nr_free_mt = [0] * n                    # blocks per (order, mt), for pagetypeinfo
        self.nr_free_pages = 0                        # NR_FREE_PAGES
        self.nr_free_highatomic = 0
        self.nr_reserved_highatomic = 0
        self.managed_pages = 0
        self._alloc_order = bytearray([_NO_ORDER]) * nr_pages   # page_owner's order, by index
        self._ao_base = start_pfn
        # page_owner's migratetype of each allocation (of its gfp mask): what the page *is*
        # (movable user memory or not), which compaction and the mixed-block count need even
        # when the free list it came from was another type's.
        self._alloc_mt = bytearray(nr_pages)
        # Anti-fragmentation (chapter 07): the sysctls, the rmqueue_bulk() fallback mode, the
        # watermark boost, and counters of what the fallback path did.
        self.page_group_by_mobility_disabled = bool(page_group_by_mobility_disabled)
        self.watermark_boost_factor = watermark_boost_factor
        self._rmqm = RMQUEUE_NORMAL
        self.nr_claims = 0              # pageblocks claimed by __rmqueue_claim()
        self.nr_steals = 0              # single buddies stolen by __rmqueue_steal()
        self.compact_cached_migrate_pfn = start_pfn
        self.compact_cached_free_pfn = 0   # set by kmmlib.mm.compaction
        # The pageblock bitmap's migratetype bits, one byte per pageblock; boot marks every
        # pageblock MOVABLE (memmap_init_range() → init_pageblock_migratetype()).
        self._pb_base = start_pfn & ~(self.pageblock_nr_pages - 1)
        nr_pb = ((self.zone_end_pfn - self._pb_base) + self.pageblock_nr_pages - 1) \
            >> pageblock_order
        self._pb_mt = bytearray([MIGRATE_MOVABLE]) * nr_pb
        self.flags: set[str] = set()
        # The hot paths unpack everything they touch from one tuple (the arrays and lists are
        # never replaced, only written), which is measurably faster than attribute loads.
        self._free_hot = (start_pfn, self.zone_end_pfn, max_order, self._base,
                          self._alloc_order, mem_map.refcount, mem_map.mapcount, self._pb_mt,
                          self._pb_base, pageblock_order, self._alloc_mt)
        self._hot = (mem_map.page_type, mem_map.private, mem_map.lru_next, mem_map.lru_prev,
                     self._head, self._tail, self._nr_free, self._nr_free_mt, self._base,
                     start_pfn, self.zone_end_pfn, max_order, pageblock_order)

        # Watermarks and lowmem_reserve.
        if watermarks is None:
            wm = (0, 0, 0, 0)
        elif isinstance(watermarks, _wm.Watermarks):
            wm = (watermarks.min, watermarks.low, watermarks.high, watermarks.promo)
        else:
            wm = tuple(int(x) for x in watermarks)
            if len(wm) == 3:
                wm = (*wm, wm[2] + (wm[2] - wm[1]))
            if len(wm) != 4 or any(x < 0 for x in wm):
                raise BadRequest("zone: watermarks are (min, low, high[, promo]) page counts")
        self._watermark = list(wm)
        self.watermark_boost = 0
        nz = len(_gfp.X86_64_ZONES)
        self.lowmem_reserve = list(lowmem_reserve) if lowmem_reserve is not None else [0] * nz

        # Reserved ranges (memblock.reserved): they keep refcount 1 and get PG_reserved.
        res = sorted((max(s, start_pfn), min(e, self.zone_end_pfn)) for s, e in reserved)
        res = [(s, e) for s, e in res if s < e]
        for s, e in res:
            for pfn in range(s, e):
                mem_map.set_flag(pfn, _pf.PG_reserved)
        self.reserved = res
        self.present_pages = nr_pages

        # Per-cpu lists.
        self.thp = thp
        self.percpu_pagelist_high_fraction = percpu_pagelist_high_fraction
        self.nr_cpus = nr_cpus
        self.pcp_enabled = False
        self.pcp: list[PerCpuPages] = []
        self._nr_pcp_lists = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1) + (2 if thp else 0)

        if boot:
            self.memblock_free_all()
        if pcp:
            self.setup_pcp(nr_cpus, percpu_pagelist_high_fraction)

    # -- helpers ----------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<Zone {self.name} pfns {self.zone_start_pfn}-{self.zone_end_pfn - 1}: "
                f"{self.nr_free_pages} of {self.managed_pages} pages free"
                f"{', pcp on' if self.pcp_enabled else ''}>")

    def zone_spans_pfn(self, pfn: int) -> bool:
        """``zone_spans_pfn()``."""
        return self.zone_start_pfn <= pfn < self.zone_end_pfn

    def _check_pfn(self, pfn: int, what: str = "pfn") -> None:
        if not isinstance(pfn, int) or isinstance(pfn, bool):
            raise BadRequest(f"{what} must be an integer, not {pfn!r}")
        if not self.zone_spans_pfn(pfn):
            # page_outside_zone_boundaries() (mm/page_alloc.c, CONFIG_DEBUG_VM)
            raise BadPageState(
                f"page 0x{pfn:x} outside node {self.node} zone {self.name} "
                f"[ 0x{self.zone_start_pfn:x} - 0x{self.zone_end_pfn:x} ]")

    def _check_order(self, order: int) -> None:
        if not isinstance(order, int) or isinstance(order, bool) or order < 0:
            raise BadRequest(f"invalid order {order!r}: an order is an integer 0..{self.max_order}")
        if order > self.max_order:
            # __alloc_pages(): WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp) → NULL
            raise BadRequest(f"invalid order {order}: above MAX_PAGE_ORDER ({self.max_order}); "
                             f"the kernel WARNs once and returns NULL (the largest block is "
                             f"2^{self.max_order} pages)")

    def get_pageblock_migratetype(self, pfn: int) -> int:
        """``get_pfnblock_migratetype()``: the migrate type of pfn's pageblock."""
        return self._pb_mt[(pfn - self._pb_base) >> self.pageblock_order]

    def set_pageblock_migratetype(self, pfn: int, mt: int | str) -> None:
        """``set_pageblock_migratetype()``: stamp pfn's pageblock. Free blocks already on a list
        stay there (moving them is ``move_freepages_block()``, chapter 07), so only use this on
        a pageblock with no free blocks, or before boot (``Zone(..., boot=False)``)."""
        self._check_pfn(pfn)
        mt = parse_migratetype(mt)
        self._pb_mt[(pfn - self._pb_base) >> self.pageblock_order] = mt

    def _change_pageblock_range(self, pfn: int, order: int, mt: int) -> None:
        """``change_pageblock_range()``: stamp every pageblock of an order ≥ pageblock block."""
        first = (pfn - self._pb_base) >> self.pageblock_order
        for i in range(first, first + (1 << (order - self.pageblock_order))):
            self._pb_mt[i] = mt

    # -- free list primitives (__add_to_free_list, __del_page_from_free_list) ----------------

    def _add_to_free_list(self, pfn: int, order: int, mt: int, tail: bool) -> None:
        """``__add_to_free_list()`` + ``set_buddy_order()``: link pfn at the head (``list_add``)
        or tail (``list_add_tail``) of ``free_area[order].free_list[mt]``."""
        base = self._base
        i = pfn - base
        k = order * _NT + mt
        nxt, prv = self.mem_map.lru_next, self.mem_map.lru_prev
        if tail:
            t = self._tail[k]
            prv[i] = t
            nxt[i] = -1
            if t < 0:
                self._head[k] = pfn
            else:
                nxt[t - base] = pfn
            self._tail[k] = pfn
        else:
            h = self._head[k]
            nxt[i] = h
            prv[i] = -1
            if h < 0:
                self._tail[k] = pfn
            else:
                prv[h - base] = pfn
            self._head[k] = pfn
        self.mem_map.private[i] = order
        self.mem_map.page_type[i] = _BUDDY
        self._nr_free[order] += 1
        self._nr_free_mt[k] += 1

    def _del_from_free_list(self, pfn: int, order: int, mt: int) -> None:
        """``__del_page_from_free_list()``: unlink, ``__ClearPageBuddy``, private = 0."""
        base = self._base
        i = pfn - base
        k = order * _NT + mt
        mm = self.mem_map
        nxt, prv = mm.lru_next, mm.lru_prev
        n, p = nxt[i], prv[i]
        if p < 0:
            self._head[k] = n
        else:
            nxt[p - base] = n
        if n < 0:
            self._tail[k] = p
        else:
            prv[n - base] = p
        nxt[i] = -1
        prv[i] = -1
        mm.private[i] = 0
        mm.page_type[i] = _NO_TYPE
        self._nr_free[order] -= 1
        self._nr_free_mt[k] -= 1

    def _account_freepages(self, nr_pages: int, mt: int) -> None:
        """``account_freepages()``: NR_FREE_PAGES (isolated pages are not counted)."""
        if mt == MIGRATE_ISOLATE:
            return
        self.nr_free_pages += nr_pages
        if mt == MIGRATE_HIGHATOMIC:
            self.nr_free_highatomic += nr_pages

    def _page_is_buddy(self, pfn: int, order: int) -> bool:
        """``page_is_buddy()``: pfn is in this zone, PageBuddy, and of this order."""
        if not self.zone_start_pfn <= pfn < self.zone_end_pfn:
            return False
        i = pfn - self._base
        return self.mem_map.page_type[i] == _BUDDY and self.mem_map.private[i] == order

    # -- boot: memblock_free_all() -----------------------------------------------------------

    def memblock_free_all(self) -> None:
        """Give the zone's free ranges to the buddy allocator, as ``memblock_free_all()`` →
        ``free_low_memory_core_early()`` does for each free memblock range."""
        start = self.zone_start_pfn
        for s, e in self.reserved:
            if start < s:
                self._free_pages_memory(start, s)
            start = max(start, e)
        if start < self.zone_end_pfn:
            self._free_pages_memory(start, self.zone_end_pfn)

    def _free_pages_memory(self, start: int, end: int) -> None:
        """``__free_pages_memory()`` (mm/memblock.c): free [start, end) in the largest chunks
        alignment allows — order min(MAX_PAGE_ORDER, __ffs(start)), lowered until the block
        fits before ``end`` — in ascending pfn order."""
        while start < end:
            if start:
                order = min(self.max_order, (start & -start).bit_length() - 1)
            else:
                order = self.max_order
            while start + (1 << order) > end:
                order -= 1
            self._free_pages_core(start, order)
            start += 1 << order

    def _free_pages_core(self, pfn: int, order: int) -> None:
        """``__free_pages_core()``: every page's refcount to 0, the pages become managed, then
        ``__free_pages_ok(page, order, FPI_TO_TAIL)``: boot blocks go to the list tail."""
        i = pfn - self._base
        n = 1 << order
        self.mem_map.refcount[i:i + n] = array("i", bytes(4 * n))
        self.managed_pages += n
        log = self.events
        if log.active:
            log.emit("boot_free", f"boot: free order-{order} block at pfn {pfn} "
                     f"(pfns {_pfns(pfn, order)}) to the tail of free_area[{order}]",
                     pfn=pfn, order=order)
        self._free_one_page_maybe_split(pfn, order, FPI_TO_TAIL)

    # -- allocation --------------------------------------------------------------------------

    def _rmqueue_smallest(self, order: int, mt: int) -> int:
        """``__rmqueue_smallest()``: the head of the first non-empty ``free_list[mt]`` from
        ``order`` upwards, split down to ``order`` by ``page_del_and_expand()``; -1 if none.

        This and :meth:`_expand` and :meth:`_free_one_page` are the hot paths: they do the list
        operations of :meth:`_del_from_free_list` / :meth:`_add_to_free_list` inline."""
        head = self._head
        for current in range(order, self.nr_orders):
            k = current * _NT + mt
            pfn = head[k]
            if pfn < 0:
                continue
            # __del_page_from_free_list() of the list head: its successor becomes the head.
            ptype, private, nxt, prv, _, tail, _, _, base = self._hot[:9]
            i = pfn - base
            n = nxt[i]
            head[k] = n
            if n < 0:
                tail[k] = -1
            else:
                prv[n - base] = -1
            nxt[i] = -1
            private[i] = 0
            ptype[i] = _NO_TYPE                 # __ClearPageBuddy()
            self._nr_free[current] -= 1
            self._nr_free_mt[k] -= 1
            log = self.events
            if log.active:
                where = (f"free_area[{current}]" if current == order else
                         f"free_area[{current}] (free_area[{order}] had no {_mt_name(mt)} block)")
                log.emit("alloc", f"alloc order-{order}: take order-{current} block at pfn {pfn} "
                         f"from the head of {where}", pfn=pfn, order=order,
                         from_order=current, migratetype=mt)
            if current > order:
                self._expand(pfn, order, current, mt)
            # account_freepages(zone, -(1 << order), mt): the pages handed out.
            if mt < MIGRATE_HIGHATOMIC:
                self.nr_free_pages -= 1 << order
            else:
                self._account_freepages(-(1 << order), mt)
            return pfn
        return -1

    def _expand(self, pfn: int, low: int, high: int, mt: int) -> None:
        """``expand()``: split an order-``high`` block down to ``low``. The caller keeps the
        lowest part; each upper half ``page[size]`` goes to the head of ``free_list[mt]`` one
        order down, largest first (so returned pages ascend, which helps I/O merging)."""
        ptype, private, nxt, prv, head, tail, nr_free, nr_free_mt, base = self._hot[:9]
        log = self.events if self.events.active else None
        size = 1 << high
        while high > low:
            high -= 1
            size >>= 1
            # __add_to_free_list(&page[size], zone, high, mt, tail=false); set_buddy_order()
            b = pfn + size
            i = b - base
            k = high * _NT + mt
            h = head[k]
            nxt[i] = h
            prv[i] = -1
            if h < 0:
                tail[k] = b
            else:
                prv[h - base] = b
            head[k] = b
            private[i] = high
            ptype[i] = _BUDDY
            nr_free[high] += 1
            nr_free_mt[k] += 1
            if log is not None:
                log.emit("split", f"split order-{high + 1} block at pfn {pfn}: keep {pfn}, "
                         f"free {b} to order {high}", pfn=pfn, order=high + 1,
                         keep=pfn, buddy=b, to_order=high, migratetype=mt)

    # -- migratetype fallback: __rmqueue_claim() and __rmqueue_steal() (6.15+) ------------------

    def should_try_claim_block(self, order: int, start_mt: int) -> bool:
        """``should_try_claim_block()``: a ``start_mt`` request found a free block of ``order``
        on another type's list; is it worth trying to claim that block's whole pageblock?
        Yes for big blocks (order >= pageblock_order / 2: the rest of the pageblock is likely
        free too), always for unmovable and reclaimable requests (scattered through movable
        pageblocks they would pin those for good), and when grouping by mobility is off. A
        small movable request only steals: compaction can move it out again later."""
        pb = self.pageblock_order
        if order >= pb or order >= pb // 2:
            return True
        if start_mt == MIGRATE_RECLAIMABLE or start_mt == MIGRATE_UNMOVABLE:
            return True
        return self.page_group_by_mobility_disabled

    def find_suitable_fallback(self, order: int, mt: int, claimable: bool) -> int:
        """``find_suitable_fallback()``: the first type in ``fallbacks[mt]`` whose list holds a
        free block of exactly ``order``; -1 if none does; -2 if ``claimable`` and
        :meth:`should_try_claim_block` refuses this order (the claim scan goes from large to
        small orders, so it can stop there: every lower order is refused too)."""
        if claimable and not self.should_try_claim_block(order, mt):
            return -2
        if not self._nr_free[order]:
            return -1
        head = self._head
        k = order * _NT
        for fmt in fallbacks.get(mt, ()):
            if head[k + fmt] >= 0:
                return fmt
        return -1

    def _rmqueue_fallback(self, order: int, mt: int, alloc_flags: int) -> int:
        """The fallback half of ``__rmqueue()`` when ``free_list[mt]`` has nothing big enough:
        ``RMQUEUE_CLAIM`` (take over a whole pageblock of another type, :meth:`_rmqueue_claim`),
        then ``RMQUEUE_STEAL`` (take one block and leave its pageblock as it was,
        :meth:`_rmqueue_steal`), which ALLOC_NOFRAGMENT forbids. ``rmqueue_bulk()`` remembers
        in ``self._rmqm`` how far it had to go, so the next block of the same refill starts
        there. Returns a pfn or -1. (No CMA here, so no ``RMQUEUE_CMA`` step.)"""
        if mt >= MIGRATE_PCPTYPES:          # HIGHATOMIC, ISOLATE: no fallbacks[] row
            return -1
        if self._rmqm <= RMQUEUE_CLAIM:
            pfn = self._rmqueue_claim(order, mt, alloc_flags)
            if pfn >= 0:
                self._rmqm = RMQUEUE_NORMAL     # replenished our own lists: back to normal
                return pfn
        if not alloc_flags & _wm.ALLOC_NOFRAGMENT:
            pfn = self._rmqueue_steal(order, mt)
            if pfn >= 0:
                self._rmqm = RMQUEUE_STEAL
                return pfn
        return -1

    def _rmqueue_claim(self, order: int, start_mt: int, alloc_flags: int) -> int:
        """``__rmqueue_claim()``: look at the *largest* free block of a fallback type first,
        from MAX_PAGE_ORDER down (a big free buddy roughly means a pageblock with many free
        pages, and counting them exactly would cost too much), and try to claim its pageblock
        (:meth:`_try_to_claim_block`). Under ALLOC_NOFRAGMENT only blocks of pageblock_order
        and up are considered: those never mix types in one pageblock. Returns a pfn or -1."""
        min_order = order
        if order < self.pageblock_order and alloc_flags & _wm.ALLOC_NOFRAGMENT:
            min_order = self.pageblock_order
        for current in range(self.max_order, min_order - 1, -1):
            fmt = self.find_suitable_fallback(current, start_mt, True)
            if fmt == -1:
                continue
            if fmt == -2:
                break
            pfn = self._try_to_claim_block(self._head[current * _NT + fmt], current, order,
                                           start_mt, fmt, alloc_flags)
            if pfn >= 0:
                self._trace_extfrag(pfn, order, current, start_mt, fmt)
                return pfn
        return -1

    def _try_to_claim_block(self, pfn: int, current_order: int, order: int, start_type: int,
                            block_type: int, alloc_flags: int) -> int:
        """``try_to_claim_block()``: make ``pfn``'s pageblock ``start_type`` and allocate from
        it, or return -1 and leave everything as it was.

        A free block of pageblock_order or more is a whole free pageblock (or several): take
        it, re-type its pageblocks and split it into ``start_type``'s lists. A smaller block
        first boosts the watermark (a fallback is a sign of fragmentation: have kswapd free a
        little more), then counts the pageblock: its free pages, plus the used pages that are
        "alike" (movable ones for a movable request; for an unmovable or reclaimable request
        taking from a movable pageblock, every used page that is not movable). If that is at
        least half the pageblock, all its free blocks move to ``start_type``'s lists, the
        pageblock is re-typed, and the request is served from there."""
        pb = self.pageblock_order
        log = self.events
        if current_order >= pb:
            self._del_from_free_list(pfn, current_order, block_type)
            self._change_pageblock_range(pfn, current_order, start_type)
            self.nr_claims += 1
            if log.active:
                n = 1 << (current_order - pb)
                log.emit("claim", f"claim: free order-{current_order} block at pfn {pfn} is "
                         f"{n} whole pageblock{'s' if n > 1 else ''}: re-type "
                         f"{_mt_name(block_type)} → {_mt_name(start_type)} and split it",
                         pfn=pfn, order=current_order, from_mt=block_type, to_mt=start_type,
                         whole=True)
            self._expand(pfn, order, current_order, start_type)
            self.nr_free_pages -= 1 << order     # del (-2^current) + expand's halves (+...)
            return pfn
        if self._boost_watermark() and alloc_flags & _wm.ALLOC_KSWAPD:
            self.flags.add(ZONE_BOOSTED_WATERMARK)
        counts = self._prep_move_freepages_block(pfn)
        start_pfn = pfn & ~(self.pageblock_nr_pages - 1)
        if counts is None:                   # the pageblock straddles the zone's edge
            if log.active:
                log.emit("claim_refused", f"claim: pageblock at pfn {start_pfn} is not wholly "
                         "inside the zone: cannot move it", pfn=start_pfn)
            return -1
        free_pages, movable_pages = counts
        if start_type == MIGRATE_MOVABLE:
            alike = movable_pages
        elif block_type == MIGRATE_MOVABLE:
            alike = self.pageblock_nr_pages - (free_pages + movable_pages)
        else:
            alike = 0
        half = 1 << (pb - 1)
        ok = free_pages + alike >= half or self.page_group_by_mobility_disabled
        if log.active:
            verdict = (f"≥ {half}: claim it" if free_pages + alike >= half else
                       "grouping by mobility is off: claim it" if ok else
                       f"< {half}: leave it {_mt_name(block_type)}")
            log.emit("claim" if ok else "claim_refused",
                     f"{'claim' if ok else 'no claim'}: {_mt_name(block_type)} pageblock at pfn "
                     f"{start_pfn} has {free_pages} free + {alike} alike pages of "
                     f"{self.pageblock_nr_pages} {verdict}", pfn=start_pfn,
                     order=current_order, from_mt=block_type, to_mt=start_type,
                     free_pages=free_pages, alike_pages=alike, whole=False)
        if not ok:
            return -1
        self._move_freepages_block(start_pfn, block_type, start_type)
        self._pb_mt[(start_pfn - self._pb_base) >> pb] = start_type
        self.nr_claims += 1
        return self._rmqueue_smallest(order, start_type)

    def _rmqueue_steal(self, order: int, start_mt: int) -> int:
        """``__rmqueue_steal()``: the *smallest* free block of a fallback type that fits, taken
        and split as ``__rmqueue_smallest()`` would; the pageblock keeps its type and the split
        halves stay on its type's lists. This is what mixes types within a pageblock: the
        extfrag tracepoint reports it as ``fragmenting=1``. Returns a pfn or -1."""
        for current in range(order, self.nr_orders):
            fmt = self.find_suitable_fallback(current, start_mt, False)
            if fmt < 0:
                continue
            pfn = self._head[current * _NT + fmt]
            log = self.events
            if log.active:
                log.emit("steal", f"steal: no pageblock worth claiming, take the order-"
                         f"{current} {_mt_name(fmt)} block at pfn {pfn} for a "
                         f"{_mt_name(start_mt)} order-{order} request; its pageblock stays "
                         f"{_mt_name(self.get_pageblock_migratetype(pfn))}", pfn=pfn,
                         order=current, from_mt=fmt, to_mt=start_mt)
            # page_del_and_expand(): off the list, split into the *fallback* type's lists.
            self._del_from_free_list(pfn, current, fmt)
            self._expand(pfn, order, current, fmt)
            self.nr_free_pages -= 1 << order
            self.nr_steals += 1
            self._trace_extfrag(pfn, order, current, start_mt, fmt)
            return pfn
        return -1

    def _trace_extfrag(self, pfn: int, alloc_order: int, fallback_order: int, alloc_mt: int,
                       fallback_mt: int) -> None:
        """``trace_mm_page_alloc_extfrag()``: the facts the tracepoint records, as an
        ``extfrag`` event. ``change_ownership`` is read now, after the claim or steal, as the
        tracepoint reads ``get_pageblock_migratetype(page)``; ``fragmenting`` is
        ``fallback_order < pageblock_order``."""
        log = self.events
        if not log.active:
            return
        data = {"pfn": pfn, "alloc_order": alloc_order, "fallback_order": fallback_order,
                "pageblock_order": self.pageblock_order, "alloc_migratetype": int(alloc_mt),
                "fallback_migratetype": int(fallback_mt),
                "fragmenting": int(fallback_order < self.pageblock_order),
                "change_ownership": int(alloc_mt == self.get_pageblock_migratetype(pfn))}
        what = ("claimed the pageblock" if data["change_ownership"] else
                "stole one block, the pageblock is now mixed")
        log.emit("extfrag", f"extfrag: {_mt_name(alloc_mt)} order-{alloc_order} fell back to "
                 f"{_mt_name(fallback_mt)} order-{fallback_order} at pfn {pfn}: {what} "
                 f"[{format_extfrag(data)}]", **data)

    def _pageblock_range(self, pfn: int) -> tuple[int, int]:
        """``pageblock_start_pfn()`` / ``pageblock_end_pfn()`` of pfn's pageblock."""
        start = pfn & ~(self.pageblock_nr_pages - 1)
        return start, start + self.pageblock_nr_pages

    def _prep_move_freepages_block(self, pfn: int) -> tuple[int, int] | None:
        """``prep_move_freepages_block()``: None if pfn's pageblock is not wholly inside the
        zone (only this zone is locked), else (free pages, movable pages) in it. "Movable"
        stands for the kernel's PageLRU() || page_has_movable_ops(): here, the pages of an
        allocation made with a movable gfp (simplified: every such page counts as on the LRU,
        and a movable block of order k counts as one folio of 2^k pages)."""
        start, end = self._pageblock_range(pfn)
        if start < self.zone_start_pfn or end > self.zone_end_pfn:
            return None
        ptype, private = self.mem_map.page_type, self.mem_map.private
        ao, amt = self._alloc_order, self._alloc_mt
        base, ab = self._base, self._ao_base
        free = movable = 0
        p = start
        while p < end:
            i = p - base
            if ptype[i] == _BUDDY:
                n = 1 << private[i]
                free += n
                p += n
                continue
            o = ao[p - ab]
            if o != _NO_ORDER:
                n = 1 << o
                if amt[p - ab] == MIGRATE_MOVABLE:
                    movable += min(n, end - p)
                p += n
                continue
            p += 1
        return free, movable

    def _move_freepages_block(self, start_pfn: int, old_mt: int, new_mt: int) -> int:
        """``__move_freepages_block()``: move every free block of the pageblock at start_pfn
        from ``old_mt``'s lists to the tail of ``new_mt``'s (``move_to_free_list()``), keeping
        the per-type counters right. The caller re-types the pageblock. Returns pages moved."""
        ptype, private = self.mem_map.page_type, self.mem_map.private
        base = self._base
        end = start_pfn + self.pageblock_nr_pages
        moved = 0
        p = start_pfn
        while p < end:
            i = p - base
            if ptype[i] != _BUDDY:
                p += 1
                continue
            o = private[i]
            self._del_from_free_list(p, o, old_mt)
            self._add_to_free_list(p, o, new_mt, tail=True)
            self._account_freepages(-(1 << o), old_mt)
            self._account_freepages(1 << o, new_mt)
            moved += 1 << o
            p += 1 << o
        return moved

    def move_freepages_block(self, pfn: int, old_mt: int, new_mt: int) -> int:
        """``move_freepages_block()``: move pfn's pageblock's free blocks from ``old_mt`` to
        ``new_mt`` and re-type the pageblock; -1 if it straddles the zone's edge."""
        start, end = self._pageblock_range(pfn)
        if start < self.zone_start_pfn or end > self.zone_end_pfn:
            return -1
        moved = self._move_freepages_block(start, old_mt, new_mt)
        self._pb_mt[(start - self._pb_base) >> self.pageblock_order] = new_mt
        return moved

    def _boost_watermark(self) -> bool:
        """``boost_watermark()``: after a fragmenting fallback, raise the watermarks by a
        pageblock (up to watermark_boost_factor/10000 of the high mark, 150 % by default), so
        that kswapd frees a little more and future requests find their own type's pages.
        Not in tiny zones (under 4 pageblocks) or before the watermarks are set."""
        factor = self.watermark_boost_factor
        if not factor:
            return False
        nr = self.pageblock_nr_pages
        if nr * 4 > self.managed_pages:
            return False
        high = self._watermark[_wm.WMARK_HIGH]
        max_boost = (high // 10000) * factor + (high % 10000) * factor // 10000   # mult_frac()
        if not max_boost:
            return False
        max_boost = max(nr, max_boost)
        self.watermark_boost = min(self.watermark_boost + nr, max_boost)
        return True

    def _wake_kswapd_boosted(self) -> None:
        """``rmqueue()``'s tail: ZONE_BOOSTED_WATERMARK is set, so wake kswapd. kswapd is a stub
        here: it reclaims nothing and resets the boost, as ``balance_pgdat()`` does once done."""
        self.flags.discard(ZONE_BOOSTED_WATERMARK)
        log = self.events
        if log.active:
            log.emit("kswapd", f"wakeup_kswapd(zone {self.name}, order 0): watermarks boosted by "
                     f"{self.watermark_boost} pages after a fallback (stub: kswapd resets the "
                     "boost)", zone=self.name, order=0, boost=self.watermark_boost)
        self.watermark_boost = 0

    # -- the high-order atomic reserve ------------------------------------------------------

    def max_highatomic_pages(self) -> int:
        """The reserve's cap: about 1 % of the zone rounded up to whole pageblocks, and none at
        all when 1 % is less than a pageblock."""
        nr = self.pageblock_nr_pages
        pct = self.managed_pages // 100
        return 0 if pct < nr else -(-pct // nr) * nr

    def reserve_highatomic_pageblock(self, pfn: int, order: int) -> bool:
        """``reserve_highatomic_pageblock()``: after a high-order atomic allocation succeeded,
        turn its pageblock into MIGRATE_HIGHATOMIC (its free blocks move to that list), so that
        the next one finds a block even when the zone is fragmented; up to about 1 % of the
        zone. Only ordinary (mergeable) pageblocks are taken. True if it reserved one."""
        cap = self.max_highatomic_pages()
        if not cap or self.nr_reserved_highatomic >= cap:
            return False
        mt = self.get_pageblock_migratetype(pfn)
        if mt >= MIGRATE_PCPTYPES:          # !migratetype_is_mergeable()
            return False
        if order < self.pageblock_order:
            if self.move_freepages_block(pfn, mt, MIGRATE_HIGHATOMIC) == -1:
                return False
            size = self.pageblock_nr_pages
        else:
            self._change_pageblock_range(pfn, order, MIGRATE_HIGHATOMIC)
            size = 1 << order
        self.nr_reserved_highatomic += size
        log = self.events
        if log.active:
            log.emit("highatomic", f"reserve_highatomic_pageblock: the {_mt_name(mt)} pageblock "
                     f"of pfn {pfn} becomes HighAtomic ({self.nr_reserved_highatomic} of at most "
                     f"{cap} pages reserved)", pfn=pfn, order=order, from_mt=mt,
                     reserved=self.nr_reserved_highatomic)
        return True

    def unreserve_highatomic_pageblock(self, mt: int, force: bool = False) -> bool:
        """``unreserve_highatomic_pageblock()`` for this zone: give one HIGHATOMIC pageblock
        (the first with a free block, by order) back to type ``mt``. Unless ``force`` (the last
        step before OOM), at least one pageblock stays reserved. True if one was given back."""
        nr = self.pageblock_nr_pages
        if not force and self.nr_reserved_highatomic <= nr:
            return False
        for order in range(self.nr_orders):
            pfn = self._head[order * _NT + MIGRATE_HIGHATOMIC]
            if pfn < 0:
                continue
            size = min(max(nr, 1 << order), self.nr_reserved_highatomic)
            self.nr_reserved_highatomic -= size
            if order < self.pageblock_order:
                moved = self.move_freepages_block(pfn, MIGRATE_HIGHATOMIC, mt)
            else:
                self._del_from_free_list(pfn, order, MIGRATE_HIGHATOMIC)
                self._add_to_free_list(pfn, order, mt, tail=True)
                self._account_freepages(-(1 << order), MIGRATE_HIGHATOMIC)
                self._account_freepages(1 << order, mt)
                self._change_pageblock_range(pfn, order, mt)
                moved = 1
            log = self.events
            if log.active:
                log.emit("highatomic", f"unreserve_highatomic_pageblock: pfn {pfn}'s HighAtomic "
                         f"pageblock goes back to {_mt_name(mt)}"
                         f"{' (forced, before OOM)' if force else ''}", pfn=pfn, to_mt=mt,
                         reserved=self.nr_reserved_highatomic)
            if moved > 0:
                return True
        return False

    # -- what compaction needs (mm/page_alloc.c, mm/migrate.c) --------------------------------

    def isolate_free_page(self, pfn: int, order: int) -> int:
        """``__isolate_free_page()``: take a free block off its list for compaction (it is then
        neither free nor allocated until used or given back). Refused (0) when it would take
        the zone below its min watermark. A block of at least half a pageblock makes its
        pageblock(s) Movable, as compaction will fill them with movable pages. Returns the
        number of pages taken."""
        i = pfn - self._base
        if self.mem_map.page_type[i] != _BUDDY or self.mem_map.private[i] != order:
            raise BadPageState(f"isolate_free_page: pfn {pfn} is not a free order-{order} block")
        mt = self.get_pageblock_migratetype(pfn)
        if mt != MIGRATE_ISOLATE:
            mark = self._watermark[_wm.WMARK_MIN] + (1 << order)
            if not self._watermark_ok(0, mark, 0, _wm.ALLOC_CMA):
                return 0
        self._del_from_free_list(pfn, order, mt)
        self._account_freepages(-(1 << order), mt)
        if order >= self.pageblock_order - 1:
            for p in range(pfn, pfn + (1 << order), self.pageblock_nr_pages):
                pmt = self.get_pageblock_migratetype(p)
                if pmt < MIGRATE_PCPTYPES and pmt != MIGRATE_MOVABLE:
                    self.move_freepages_block(p, pmt, MIGRATE_MOVABLE)
        return 1 << order

    def is_movable_allocation(self, pfn: int) -> bool:
        """Does ``pfn`` head an allocation compaction may move (made with a movable gfp)?"""
        return (self._alloc_order[pfn - self._ao_base] != _NO_ORDER
                and self._alloc_mt[pfn - self._ao_base] == MIGRATE_MOVABLE)

    def allocation_migratetype(self, pfn: int) -> int:
        """page_owner's migratetype of the allocation headed by ``pfn`` (-1 if none)."""
        if self._alloc_order[pfn - self._ao_base] == _NO_ORDER:
            return -1
        return self._alloc_mt[pfn - self._ao_base]

    def allocation_order(self, pfn: int) -> int:
        """The order of the allocation headed by ``pfn`` (page_owner), -1 if it heads none."""
        o = self._alloc_order[pfn - self._ao_base]
        return -1 if o == _NO_ORDER else o

    def free_list_head(self, order: int, mt: int) -> int:
        """The first pfn on ``free_area[order].free_list[mt]``, -1 when the list is empty."""
        return self._head[order * _NT + mt]

    def release_isolated_block(self, pfn: int, order: int) -> None:
        """Give back a block :meth:`isolate_free_page` took (``release_free_list()``): it is
        freed like any other block, merging with free buddies."""
        self._free_frozen_pages(pfn, order, FPI_NONE)

    def migrate_block(self, src: int, dst: int, order: int) -> None:
        """``migrate_folio()`` for compaction: the allocation at ``src`` (order ``order``) now
        lives at ``dst``, a block :meth:`isolate_free_page` took: its owner's type, refcount,
        mapcount, mapping, index and page flags move across (a compound page is rebuilt at
        ``dst``), and the old block is freed as ``folio_put()`` would free it."""
        ab, base = self._ao_base, self._base
        if self._alloc_order[src - ab] != order:
            raise BadPageState(f"migrate_block: pfn {src} does not head an order-{order} "
                               "allocation")
        mm = self.mem_map
        si, di = src - base, dst - base
        compound = bool(order and mm.flags[si] >> _pf.PG_head & 1)
        if compound:
            mm.destroy_compound_page(src)
        mask = mm.layout.pageflags_mask
        mm.flags[di] = (mm.flags[di] & ~mask) | (mm.flags[si] & mask)
        mm.flags[si] &= ~mask & 0xFFFFFFFFFFFFFFFF
        for arr, empty in ((mm.refcount, 0), (mm.mapcount, -1), (mm.mapping, 0),
                           (mm.pgoff, 0)):
            arr[di] = arr[si]
            arr[si] = empty
        mm.private[di] = 0
        self._alloc_order[dst - ab] = order
        self._alloc_mt[dst - ab] = self._alloc_mt[src - ab]
        if compound:
            mm.prep_compound_page(dst, order)
        self._free_frozen_pages(src, order, FPI_NONE)

    # -- the allocation paths ---------------------------------------------------------------

    def _rmqueue(self, order: int, mt: int, alloc_flags: int) -> int:
        """``__rmqueue()``: the requested type's lists (unless this refill already knows they
        are empty), then :meth:`_rmqueue_fallback`. Returns a pfn or -1."""
        if self._rmqm == RMQUEUE_NORMAL:
            pfn = self._rmqueue_smallest(order, mt)
            if pfn >= 0:
                return pfn
        return self._rmqueue_fallback(order, mt, alloc_flags)

    def _rmqueue_buddy(self, order: int, mt: int, alloc_flags: int) -> int:
        """``rmqueue_buddy()``: straight from the buddy lists. High-order atomic requests try
        the HIGHATOMIC reserve first; a failing OOM or non-blocking request may use it last."""
        pfn = -1
        if alloc_flags & _wm.ALLOC_HIGHATOMIC:
            pfn = self._rmqueue_smallest(order, MIGRATE_HIGHATOMIC)
        if pfn < 0:
            self._rmqm = RMQUEUE_NORMAL
            pfn = self._rmqueue(order, mt, alloc_flags)
            self._rmqm = RMQUEUE_NORMAL
            if pfn < 0 and alloc_flags & (_wm.ALLOC_OOM | _wm.ALLOC_NON_BLOCK):
                pfn = self._rmqueue_smallest(order, MIGRATE_HIGHATOMIC)
        return pfn

    def pcp_allowed_order(self, order: int) -> bool:
        """``pcp_allowed_order()``: orders 0..PAGE_ALLOC_COSTLY_ORDER, and the THP order."""
        return order <= PAGE_ALLOC_COSTLY_ORDER or (self.thp and order == self.pageblock_order)

    def rmqueue(self, order: int, mt: int, alloc_flags: int = 0, cpu: int = 0,
                gfp: int = 0, owner_mt: int = -1) -> int | None:
        """``rmqueue()``: through this CPU's per-cpu list when allowed, else (or when that
        fails) from the buddy lists; then ``prep_new_page()``. Returns a pfn or None. No
        watermark check here (that is :meth:`PageAllocator.alloc_pages`'s job). ``owner_mt``
        is what page_owner records (the gfp's own type, even when grouping by mobility is off
        and ``mt`` is Unmovable); by default it is read from ``gfp``, or is ``mt``."""
        pfn = -1
        if self.pcp_enabled and self.pcp_allowed_order(order):
            pfn = self._rmqueue_pcplist(order, mt, alloc_flags, cpu)
        if pfn < 0:
            pfn = self._rmqueue_buddy(order, mt, alloc_flags)
        if pfn < 0:
            return None
        if owner_mt < 0:
            owner_mt = (gfp & _GFP_MOVABLE_MASK) >> 3 if gfp else mt
        self._prep_new_page(pfn, order, gfp, owner_mt)
        if alloc_flags & _wm.ALLOC_KSWAPD and ZONE_BOOSTED_WATERMARK in self.flags:
            self._wake_kswapd_boosted()
        return pfn

    def _prep_new_page(self, pfn: int, order: int, gfp: int,
                       owner_mt: int = MIGRATE_MOVABLE) -> None:
        """``prep_new_page()`` → ``post_alloc_hook()``: private = 0, refcount 1 on the head page
        (tail pages of a non-compound block stay at 0), and a compound page for __GFP_COMP;
        page_owner notes the order and the migratetype."""
        i = pfn - self._base
        mm = self.mem_map
        mm.private[i] = 0
        mm.refcount[i] = 1
        self._alloc_order[pfn - self._ao_base] = order
        self._alloc_mt[pfn - self._ao_base] = owner_mt
        if order and gfp & GFP_COMP:
            mm.prep_compound_page(pfn, order)

    def alloc(self, order: int = 0, migratetype: int | str = MIGRATE_MOVABLE, *,
              cpu: int = 0) -> int | None:
        """Allocate 2^order pages of ``migratetype`` from this zone, without watermarks or a
        gfp mask (what ``kmm buddy`` and the teaching scenarios do): the type's own lists, then
        the migratetype fallback (claim, then steal). Returns the first pfn, or None when no
        block is big enough. See :meth:`alloc_pages` for the full path."""
        zs, _, max_order, base, alloc_order, refcount = self._free_hot[:6]
        if type(order) is not int or not 0 <= order <= max_order:
            self._check_order(order)
        owner = mt = migratetype if type(migratetype) is int and 0 <= migratetype < \
            MIGRATE_TYPES else parse_migratetype(migratetype)
        if self.page_group_by_mobility_disabled and mt < MIGRATE_PCPTYPES:
            mt = MIGRATE_UNMOVABLE                  # gfp_migratetype() with grouping off
        if self.pcp_enabled:
            self._check_cpu(cpu)
            pfn = self.rmqueue(order, mt, 0, cpu, owner_mt=owner)
        else:
            # rmqueue() → rmqueue_buddy() → __rmqueue() with no alloc_flags, then prep_new_page().
            pfn = self._rmqueue_smallest(order, mt)
            if pfn < 0:
                pfn = self._rmqueue_fallback(order, mt, 0)
                self._rmqm = RMQUEUE_NORMAL
            if pfn >= 0:
                # prep_new_page() → post_alloc_hook(): refcount 1 on the head page (private was
                # cleared when the block left its free list); page_owner's order and type.
                refcount[pfn - base] = 1
                alloc_order[pfn - zs] = order
                self._alloc_mt[pfn - zs] = owner
                return pfn
            pfn = None
        log = self.events
        if pfn is None and log.active:
            log.emit("alloc_fail", f"alloc order-{order} ({_mt_name(mt)}): no free "
                     f"{_mt_name(mt)} block of order {order} or above"
                     f"{self._why_no_fallback(order, mt)} → NULL", order=order, migratetype=mt)
        return pfn

    def _why_no_fallback(self, order: int, mt: int) -> str:
        """The rest of a failure's narration, when blocks big enough exist that this request
        may not use (the HighAtomic reserve, isolated pageblocks): say so."""
        held = {t: sum(self._nr_free_mt[o * _NT + t] << o for o in range(order, self.nr_orders))
                for t in range(MIGRATE_TYPES) if t != mt}
        rest = [f"{_mt_name(t)} {n} pages" for t, n in held.items() if n]
        if not rest or any(held.get(t) for t in fallbacks.get(mt, ())):
            return ""
        return (f"; only {', '.join(rest)} in blocks that big, which a "
                f"{_mt_name(mt)} request may not use")

    def _check_cpu(self, cpu: int) -> None:
        if self.pcp_enabled and not (isinstance(cpu, int) and 0 <= cpu < len(self.pcp)):
            raise BadRequest(f"cpu {cpu!r}: this zone has per-cpu lists for CPUs "
                             f"0..{len(self.pcp) - 1}")

    # -- free ------------------------------------------------------------------------------

    def _buddy_merge_likely(self, pfn: int, buddy_pfn: int, order: int) -> bool:
        """``buddy_merge_likely()``: below MAX_PAGE_ORDER - 1, is the buddy of the block one
        order up (the one that starts at ``buddy_pfn & pfn``) free at that order? Then this
        block will probably merge twice soon: queue it at the tail, out of the way."""
        if order >= self.max_order - 1:
            return False
        higher = buddy_pfn & pfn
        return self._page_is_buddy(higher ^ (1 << (order + 1)), order + 1)

    def _free_one_page(self, pfn: int, order: int, mt: int, fpi: int) -> None:
        """``__free_one_page()``: merge with free buddies while order < MAX_PAGE_ORDER, then
        add the block at the tail (FPI_TO_TAIL, or ``buddy_merge_likely()``) or the head."""
        if mt < MIGRATE_HIGHATOMIC:                    # account_freepages()
            self.nr_free_pages += 1 << order
        else:
            self._account_freepages(1 << order, mt)
        (ptype, private, nxt, prv, head, tail, nr_free, nr_free_mt, base, zs, ze, max_order,
         pb_order) = self._hot
        log = self.events if self.events.active else None
        if log is not None:
            log.emit("free", f"free order-{order} block at pfn {pfn} (pfns {_pfns(pfn, order)})",
                     pfn=pfn, order=order, migratetype=mt)
        buddy_pfn = 0
        while order < max_order:
            # find_buddy_page_pfn(): the buddy must be in the zone, PageBuddy, same order.
            buddy_pfn = pfn ^ (1 << order)
            if not zs <= buddy_pfn < ze:
                break
            bi = buddy_pfn - base
            if ptype[bi] != _BUDDY or private[bi] != order:
                break
            buddy_mt = mt
            if order >= pb_order:
                # Do not merge a HIGHATOMIC/ISOLATE pageblock with an ordinary one.
                buddy_mt = self._pb_mt[(buddy_pfn - self._pb_base) >> pb_order]
                if buddy_mt != mt and (mt >= MIGRATE_PCPTYPES or buddy_mt >= MIGRATE_PCPTYPES):
                    break
            # __del_page_from_free_list(buddy, zone, order, buddy_mt)
            k = order * _NT + buddy_mt
            n, p = nxt[bi], prv[bi]
            if p < 0:
                head[k] = n
            else:
                nxt[p - base] = n
            if n < 0:
                tail[k] = p
            else:
                prv[n - base] = p
            nxt[bi] = prv[bi] = -1
            private[bi] = 0
            ptype[bi] = _NO_TYPE
            nr_free[order] -= 1
            nr_free_mt[k] -= 1
            if buddy_mt != mt:
                # Match the buddy's pageblocks to ours, so expand() later files sub-blocks right.
                self._change_pageblock_range(buddy_pfn, order, mt)
            if log is not None:
                log.emit("merge", f"merge pfn {pfn} with its free buddy {buddy_pfn} → order-"
                         f"{order + 1} block at pfn {pfn & buddy_pfn}", pfn=pfn, buddy=buddy_pfn,
                         order=order, merged=pfn & buddy_pfn)
            pfn &= buddy_pfn
            order += 1
        # done_merging: head or tail?
        if fpi & FPI_TO_TAIL:
            to_tail = True
        elif order >= max_order - 1:
            to_tail = False                            # buddy_merge_likely(), inlined
        else:
            hb = (buddy_pfn & pfn) ^ (1 << (order + 1))
            to_tail = zs <= hb < ze and ptype[hb - base] == _BUDDY and \
                private[hb - base] == order + 1
        # __add_to_free_list(page, zone, order, mt, to_tail); set_buddy_order()
        i = pfn - base
        k = order * _NT + mt
        if to_tail:
            t = tail[k]
            prv[i] = t
            nxt[i] = -1
            if t < 0:
                head[k] = pfn
            else:
                nxt[t - base] = pfn
            tail[k] = pfn
        else:
            h = head[k]
            nxt[i] = h
            prv[i] = -1
            if h < 0:
                tail[k] = pfn
            else:
                prv[h - base] = pfn
            head[k] = pfn
        private[i] = order
        ptype[i] = _BUDDY
        nr_free[order] += 1
        nr_free_mt[k] += 1
        if log is not None:
            if fpi & FPI_TO_TAIL:
                why = "FPI_TO_TAIL"
            elif order >= max_order - 1:
                why = f"order {order} ≥ MAX_PAGE_ORDER-1: no merge check"
            else:
                pbuddy = (pfn & ~(1 << order)) ^ (1 << (order + 1))
                why = (f"buddy_merge_likely: its parent's buddy {pbuddy} is "
                       f"{'free' if to_tail else 'not free'} at order {order + 1}")
            log.emit("place", f"put order-{order} block at pfn {pfn} at the "
                     f"{'tail' if to_tail else 'head'} of free_area[{order}] ({why})",
                     pfn=pfn, order=order, tail=to_tail, migratetype=mt)

    def _free_one_page_maybe_split(self, pfn: int, order: int, fpi: int) -> None:
        """``free_one_page()`` → ``__free_one_page_maybe_split()``: a block bigger than a
        pageblock whose pageblocks differ in type is freed one pageblock at a time."""
        mt = self.get_pageblock_migratetype(pfn)
        if order <= self.pageblock_order or all(
                self.get_pageblock_migratetype(p) == mt
                for p in range(pfn + self.pageblock_nr_pages, pfn + (1 << order),
                               self.pageblock_nr_pages)):
            self._free_one_page(pfn, order, mt, fpi)
            return
        for p in range(pfn, pfn + (1 << order), self.pageblock_nr_pages):
            self._free_one_page(p, self.pageblock_order, self.get_pageblock_migratetype(p), fpi)

    def _describe_free_page(self, pfn: int) -> str:
        """Why ``pfn`` cannot be freed: it is free, inside a free block, or not a block head."""
        i = pfn - self._base
        mm = self.mem_map
        if mm.page_type[i] == _BUDDY:
            return (f"double free: pfn {pfn} already heads a free order-{mm.private[i]} block "
                    f"(PageBuddy)")
        for cpu, pcp in enumerate(self.pcp):
            for lst in pcp.lists:
                if pfn in lst:
                    return f"double free: pfn {pfn} is already free, on CPU {cpu}'s per-cpu list"
        block = self.find_free_block(pfn)
        if block is not None:
            return (f"double free: pfn {pfn} is inside the free order-{block[1]} block at pfn "
                    f"{block[0]}")
        head = self.find_allocation(pfn)
        if head is not None:
            return (f"pfn {pfn} is a tail page of the order-{head[1]} block allocated at pfn "
                    f"{head[0]}; free that block with its first pfn")
        if mm.test_flag(pfn, _pf.PG_reserved):
            return f"pfn {pfn} is PG_reserved: memblock kept it at boot, it was never allocated"
        return f"pfn {pfn} was not allocated"

    def free(self, pfn: int, order: int = 0, *, cpu: int = 0) -> None:
        """``__free_pages(page, order)`` on CPU ``cpu``: drop the caller's reference; at zero
        the block goes back (per-cpu list or buddy lists). If someone else still holds a
        reference to a non-compound block, the kernel frees all but its first page now (the
        first page goes when that reference is dropped).

        Refused, with the state untouched: a pfn outside the zone, an invalid order, a double
        free, a tail page, a wrong order, a page still mapped."""
        zs, ze, max_order, base, alloc_order, refcount, mapcount, pb_mt, pb_base, pb_order, _ = \
            self._free_hot
        if type(pfn) is not int or not zs <= pfn < ze:
            self._check_pfn(pfn)
        if type(order) is not int or not 0 <= order <= max_order:
            raise BadRequest(f"invalid order {order!r}: an order is an integer 0..{max_order}")
        i = pfn - base
        if alloc_order[pfn - zs] != order or refcount[i] <= 0 or mapcount[i] != -1:
            self._bad_free(pfn, order)
        if self.pcp_enabled:
            self._check_cpu(cpu)
        r = refcount[i] - 1                 # put_page_testzero()
        refcount[i] = r
        mm = self.mem_map
        if r == 0:
            if self.pcp_enabled or order > pb_order:
                self._free_frozen_pages(pfn, order, FPI_NONE, cpu=cpu)
            else:
                # __free_frozen_pages() → __free_pages_ok() → free_one_page(), inlined.
                alloc_order[pfn - zs] = _NO_ORDER
                if order and mm.flags[i] >> _pf.PG_head & 1:
                    mm.destroy_compound_page(pfn)
                self._free_one_page(pfn, order, pb_mt[(pfn - pb_base) >> pb_order], FPI_NONE)
        elif not mm.flags[i] >> _pf.PG_head & 1:
            # ___free_pages(): someone still holds the first page; give back the rest now.
            self._alloc_order[pfn - self._ao_base] = 0
            while order > 0:
                order -= 1
                self._free_frozen_pages(pfn + (1 << order), order, FPI_NONE, owner=False,
                                        cpu=cpu)

    def _bad_free(self, pfn: int, order: int) -> None:
        """Raise the ``bad_page()`` report for a free that must not happen."""
        i = pfn - self._base
        mm = self.mem_map
        got = self._alloc_order[pfn - self._ao_base]
        bug = f"BUG: Bad page state in process {self.comm}  pfn:{pfn:05x}\n"
        if got == _NO_ORDER or mm.refcount[i] <= 0:
            raise BadPageState(bug + "page dumped because: " + self._describe_free_page(pfn))
        if got != order:
            raise BadPageState(bug + f"page dumped because: freed with order {order} but "
                               f"allocated with order {got} (page_owner); freeing a different "
                               f"size would corrupt the free lists")
        raise BadPageState(bug + "page dumped because: nonzero mapcount (the page is still "
                           "mapped into a page table)")

    def _release(self, pfn: int, order: int) -> None:
        """``mem_map.release``: ``put_page()`` dropped the last reference. Simplified: the
        whole block is freed at the order it was allocated with."""
        got = self._alloc_order[pfn - self._ao_base]
        self._free_frozen_pages(pfn, order if got == _NO_ORDER else got, FPI_NONE)

    def _free_frozen_pages(self, pfn: int, order: int, fpi: int, owner: bool = True,
                           cpu: int = 0) -> None:
        """``__free_frozen_pages()``: ``free_pages_prepare()``, then the per-cpu list when the
        order allows (ISOLATE pageblocks bypass it; HIGHATOMIC goes on the MOVABLE list),
        else ``__free_pages_ok()`` → ``free_one_page()``."""
        mm = self.mem_map
        if owner:
            self._alloc_order[pfn - self._ao_base] = _NO_ORDER
        if order and mm.flags[pfn - self._base] >> _pf.PG_head & 1:
            mm.destroy_compound_page(pfn)
        if not self.pcp_enabled or not self.pcp_allowed_order(order):
            if order <= self.pageblock_order:
                self._free_one_page(pfn, order, self._pb_mt[(pfn - self._pb_base) >>
                                                            self.pageblock_order], fpi)
            else:
                self._free_one_page_maybe_split(pfn, order, fpi)
            return
        mt = self.get_pageblock_migratetype(pfn)
        if mt >= MIGRATE_PCPTYPES:
            if mt == MIGRATE_ISOLATE:
                self._free_one_page_maybe_split(pfn, order, fpi)
                return
            mt = MIGRATE_MOVABLE
        self._free_frozen_page_commit(cpu, pfn, mt, order)

    # -- per-cpu page lists -----------------------------------------------------------------

    def setup_pcp(self, nr_cpus: int = 1, percpu_pagelist_high_fraction: int = 0) -> None:
        """``zone_set_pageset_high_and_batch()``: batch and high_min/high_max for each CPU's
        lists, from the zone's size and low watermark; then turn the per-cpu lists on."""
        if nr_cpus < 1:
            raise BadRequest("per-cpu lists need at least one CPU")
        self.drain_pages()
        batch = zone_batchsize(self.managed_pages)
        if percpu_pagelist_high_fraction:
            high_min = high_max = zone_highsize(self.managed_pages, self._watermark[1], batch,
                                                nr_cpus, percpu_pagelist_high_fraction)
        else:
            high_min = zone_highsize(self.managed_pages, self._watermark[1], batch, nr_cpus)
            high_max = zone_highsize(self.managed_pages, self._watermark[1], batch, nr_cpus,
                                     MIN_PERCPU_PAGELIST_HIGH_FRACTION)
        self.nr_cpus = nr_cpus
        self.percpu_pagelist_high_fraction = percpu_pagelist_high_fraction
        self.pcp = [PerCpuPages(self._nr_pcp_lists, batch, high_min, high_max)
                    for _ in range(nr_cpus)]
        self.pcp_enabled = True

    def disable_pcp(self) -> None:
        """Drain every per-cpu list and stop using them (the teaching default)."""
        self.drain_pages()
        self.pcp = []
        self.pcp_enabled = False

    def order_to_pindex(self, mt: int, order: int) -> int:
        """``order_to_pindex()``: which of a CPU's lists holds (order, migratetype)."""
        if order > PAGE_ALLOC_COSTLY_ORDER:
            return MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1) + (mt == MIGRATE_MOVABLE)
        return MIGRATE_PCPTYPES * order + mt

    def pindex_to_order(self, pindex: int) -> int:
        """``pindex_to_order()``."""
        low = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
        return self.pageblock_order if pindex >= low else pindex // MIGRATE_PCPTYPES

    def _nr_pcp_alloc(self, pcp: PerCpuPages, order: int) -> int:
        """``nr_pcp_alloc()``: how many blocks one refill takes. Order-0 refills double (up to
        2^CONFIG_PCP_BATCH_SCALE_MAX·batch) while a CPU keeps allocating without freeing; pcp->high
        grows by a batch per refill towards high_max unless the zone is below its high mark."""
        base_batch = pcp.batch
        high = pcp.high = min(max(pcp.high, pcp.high_min), pcp.high_max)
        if high < base_batch:
            return 1
        batch = base_batch if order else base_batch << pcp.alloc_factor
        if pcp.high_min != pcp.high_max and ZONE_BELOW_HIGH not in self.flags:
            high = pcp.high = min(high + batch, pcp.high_max)
        if not order:
            max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
            if batch <= max_nr_alloc and pcp.alloc_factor < PCP_BATCH_SCALE_MAX:
                pcp.alloc_factor += 1
            batch = min(batch, max_nr_alloc)
        if batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def _rmqueue_bulk(self, order: int, count: int, lst: deque, mt: int,
                      alloc_flags: int) -> int:
        """``rmqueue_bulk()``: take ``count`` blocks under one lock hold, each appended at the
        list tail, so a split block's pieces come out in ascending pfn order. The fallback
        mode (``enum rmqueue_mode``) lives for one refill: once the own lists are known to be
        empty, or claiming failed, later blocks of the refill go straight to the next step."""
        i = 0
        self._rmqm = RMQUEUE_NORMAL
        while i < count:
            pfn = self._rmqueue(order, mt, alloc_flags)
            if pfn < 0:
                break
            lst.append(pfn)
            i += 1
        self._rmqm = RMQUEUE_NORMAL
        return i

    def _rmqueue_pcplist(self, order: int, mt: int, alloc_flags: int, cpu: int) -> int:
        """``rmqueue_pcplist()`` → ``__rmqueue_pcplist()``: refill an empty list in one batch,
        then take its first entry. -1 when even a refill finds nothing."""
        pcp = self.pcp[cpu]
        pcp.free_count >>= 1
        lst = pcp.lists[self.order_to_pindex(mt, order)]
        if not lst:
            batch = self._nr_pcp_alloc(pcp, order)
            alloced = self._rmqueue_bulk(order, batch, lst, mt, alloc_flags)
            pcp.count += alloced << order
            log = self.events
            if log.active:
                log.emit("pcp_refill", f"cpu {cpu}: per-cpu list (order {order}, "
                         f"{_mt_name(mt)}) empty: rmqueue_bulk took {alloced} of {batch} "
                         f"block(s): {list(lst)}", cpu=cpu, order=order, migratetype=mt,
                         batch=batch, alloced=alloced)
            if not lst:
                return -1
        pfn = lst.popleft()
        pcp.count -= 1 << order
        log = self.events
        if log.active:
            log.emit("pcp_alloc", f"cpu {cpu}: take pfn {pfn} from the head of the per-cpu "
                     f"list (order {order}, {_mt_name(mt)})", cpu=cpu, pfn=pfn, order=order)
        return pfn

    def _nr_pcp_high(self, pcp: PerCpuPages, batch: int, free_high: bool) -> int:
        """``nr_pcp_high()``: the count above which a free drains the lists (and pcp->high's
        own tuning: down when the zone is below its high mark, up to fit a batch of frees)."""
        high_min, high_max = pcp.high_min, pcp.high_max
        high = pcp.high = min(max(pcp.high, high_min), high_max)
        if not high:
            return 0
        if free_high:
            pcp.high = max(high - (batch << PCP_BATCH_SCALE_MAX), high_min)
            return 0
        if high_min == high_max:
            return high
        if ZONE_BELOW_HIGH in self.flags:
            free_count = max(pcp.free_count, batch)
            pcp.high = max(high - free_count, high_min)
            high = max(pcp.count, high_min)
        elif pcp.count >= high:
            need_high = pcp.free_count + batch
            if pcp.high < need_high:
                pcp.high = min(max(need_high, high_min), high_max)
        return high

    def _nr_pcp_free(self, pcp: PerCpuPages, batch: int, high: int, free_high: bool) -> int:
        """``nr_pcp_free()``: how many pages a drain returns: as many as were freed in a row,
        clamped to [batch, high - batch] (everything, up to a cap, for high-order frees)."""
        if free_high:
            return min(pcp.count, batch << PCP_BATCH_SCALE_MAX)
        if high < batch:
            return 1
        return min(max(pcp.free_count, batch), max(high - batch, batch))

    def _free_frozen_page_commit(self, cpu: int, pfn: int, mt: int, order: int) -> None:
        """``free_frozen_page_commit()``: add the block at the head of its per-cpu list; if the
        CPU now holds ``high`` pages or more, return some to the buddy lists."""
        pcp = self.pcp[cpu]
        pcp.alloc_factor >>= 1
        pindex = self.order_to_pindex(mt, order)
        pcp.lists[pindex].appendleft(pfn)
        pcp.count += 1 << order
        batch = pcp.batch
        free_high = False
        if order and order <= PAGE_ALLOC_COSTLY_ORDER:
            # As in 6.18: free_count must pass batch + high_min / 2, not only batch (N. Dhama's
            # "increase pcp->free_count threshold to trigger free_high", 2025).
            free_high = (pcp.free_count >= batch + pcp.high_min // 2
                         and bool(pcp.flags & PCPF_PREV_FREE_HIGH_ORDER)
                         and (not pcp.flags & PCPF_FREE_HIGH_BATCH or pcp.count >= batch))
            pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER
        elif pcp.flags & PCPF_PREV_FREE_HIGH_ORDER:
            pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
        if pcp.free_count < (batch << PCP_BATCH_SCALE_MAX):
            pcp.free_count += 1 << order
        log = self.events
        if log.active:
            log.emit("pcp_free", f"cpu {cpu}: free order-{order} pfn {pfn} to the head of the "
                     f"per-cpu list ({pcp.count} page(s) cached)", cpu=cpu, pfn=pfn, order=order)
        high = self._nr_pcp_high(pcp, batch, free_high)
        if pcp.count >= high:
            self._free_pcppages_bulk(pcp, self._nr_pcp_free(pcp, batch, high, free_high),
                                     pindex, cpu)
            if ZONE_BELOW_HIGH in self.flags and self._watermark_ok(
                    0, self.high_wmark_pages(), _MOVABLE_IDX, 0):
                self.flags.discard(ZONE_BELOW_HIGH)

    def _free_pcppages_bulk(self, pcp: PerCpuPages, count: int, pindex: int, cpu: int) -> None:
        """``free_pcppages_bulk()``: return ``count`` pages to the buddy lists, starting with
        the list just freed to and going round the others, each from its tail (the coldest)."""
        count = min(pcp.count, count)
        log = self.events
        if log.active:
            log.emit("pcp_drain", f"cpu {cpu}: per-cpu lists hold {pcp.count} page(s): "
                     f"return {count} to the buddy lists", cpu=cpu, count=count)
        pindex -= 1
        nr = len(pcp.lists)
        while count > 0:
            while True:
                pindex += 1
                if pindex > nr - 1:
                    pindex = 0
                lst = pcp.lists[pindex]
                if lst:
                    break
            order = self.pindex_to_order(pindex)
            nr_pages = 1 << order
            while True:
                pfn = lst.pop()
                count -= nr_pages
                pcp.count -= nr_pages
                self._free_one_page(pfn, order, self.get_pageblock_migratetype(pfn), FPI_NONE)
                if count <= 0 or not lst:
                    break

    def drain_pages(self, cpu: int | None = None) -> None:
        """``drain_pages_zone()`` for one CPU (or every CPU): everything back to the buddy."""
        for c, pcp in enumerate(self.pcp):
            if (cpu is None or c == cpu) and pcp.count:
                self._free_pcppages_bulk(pcp, pcp.count, 0, c)

    def pcp_pages(self) -> int:
        """Pages sitting on per-cpu lists (free, but not in NR_FREE_PAGES or buddyinfo)."""
        return sum(p.count for p in self.pcp)

    # -- watermarks ------------------------------------------------------------------------

    def wmark_pages(self, i: int) -> int:
        """``wmark_pages()``: a watermark plus the current boost."""
        return self._watermark[i] + self.watermark_boost

    def min_wmark_pages(self) -> int:
        return self.wmark_pages(_wm.WMARK_MIN)

    def low_wmark_pages(self) -> int:
        return self.wmark_pages(_wm.WMARK_LOW)

    def high_wmark_pages(self) -> int:
        return self.wmark_pages(_wm.WMARK_HIGH)

    def set_watermarks(self, watermarks: Sequence[int] | _wm.Watermarks) -> None:
        """New ``_watermark[]`` (as ``setup_per_zone_wmarks()`` would write), and new per-cpu
        high marks derived from them. A watermark boost ends here: ``__setup_per_zone_wmarks()``
        zeroes ``watermark_boost`` before it writes the marks."""
        if isinstance(watermarks, _wm.Watermarks):
            wm = [watermarks.min, watermarks.low, watermarks.high, watermarks.promo]
        else:
            wm = [int(x) for x in watermarks]
            if len(wm) == 3:
                wm.append(wm[2] + wm[2] - wm[1])
        if len(wm) != 4 or any(x < 0 for x in wm):
            raise BadRequest("watermarks are (min, low, high[, promo]) page counts")
        self.watermark_boost = 0
        self._watermark = wm
        if self.pcp_enabled:
            self.setup_pcp(self.nr_cpus, self.percpu_pagelist_high_fraction)

    def _free_blocks_for(self, alloc_flags: int) -> list[int]:
        """Free blocks per order on the lists ``__zone_watermark_ok()`` counts for a high-order
        request: the three ordinary types, plus HIGHATOMIC for ALLOC_HIGHATOMIC/ALLOC_OOM."""
        out = []
        for o in range(self.nr_orders):
            k = o * _NT
            n = self._nr_free_mt[k] + self._nr_free_mt[k + 1] + self._nr_free_mt[k + 2]
            if alloc_flags & (_wm.ALLOC_HIGHATOMIC | _wm.ALLOC_OOM):
                n += self._nr_free_mt[k + MIGRATE_HIGHATOMIC]
            out.append(n)
        return out

    def _watermark_ok(self, order: int, mark: int, highest_zoneidx: int,
                      alloc_flags: int) -> bool:
        """``__zone_watermark_ok()`` on this zone's counters (the arithmetic is
        :func:`kmmlib.mm.watermark.zone_watermark_ok`)."""
        return _wm.zone_watermark_ok(
            self.nr_free_pages, order, mark, self.lowmem_reserve, highest_zoneidx, alloc_flags,
            nr_free_highatomic=self.nr_free_highatomic,
            free_blocks=self._free_blocks_for(alloc_flags) if order else None)

    def zone_watermark_fast(self, order: int, mark: int, highest_zoneidx: int,
                            alloc_flags: int) -> bool:
        """``zone_watermark_fast()``: an order-0 shortcut, then ``__zone_watermark_ok()``,
        then (for __GFP_HIGH order-0 checks at min) one more try ignoring the boost."""
        if not order:
            reserved = 0 if alloc_flags & _wm.ALLOC_RESERVES else self.nr_free_highatomic
            usable = self.nr_free_pages - min(self.nr_free_pages, reserved)
            if usable > mark + self.lowmem_reserve[highest_zoneidx]:
                return True
        if self._watermark_ok(order, mark, highest_zoneidx, alloc_flags):
            return True
        if (not order and alloc_flags & _wm.ALLOC_MIN_RESERVE and self.watermark_boost
                and alloc_flags & _wm.ALLOC_WMARK_MASK == _wm.WMARK_MIN):
            return self._watermark_ok(order, self._watermark[_wm.WMARK_MIN], highest_zoneidx,
                                      alloc_flags)
        return False

    # -- the gfp-level interface (a one-zone PageAllocator) ---------------------------------

    @property
    def allocator(self) -> PageAllocator:
        """A :class:`PageAllocator` whose zonelist is just this zone."""
        alloc = self.__dict__.get("_allocator")
        if alloc is None:
            alloc = self._allocator = PageAllocator([self])
        return alloc

    def alloc_pages(self, gfp: int | str, order: int = 0, *, cpu: int = 0) -> int | None:
        """``alloc_pages(gfp, order)`` on this zone alone: watermarks, the slow path, and
        ``warn_alloc()`` on failure. Returns a pfn or None."""
        return self.allocator.alloc_pages(gfp, order, cpu=cpu)

    def get_free_pages(self, gfp: int | str, order: int = 0) -> int:
        """``__get_free_pages()``: the block's linear-map address, 0 on failure."""
        return self.allocator.get_free_pages(gfp, order)

    def free_pages(self, addr: int, order: int = 0) -> None:
        """``free_pages(addr, order)``: free by linear-map address (0 is ignored)."""
        self.allocator.free_pages(addr, order)

    # -- looking at the state --------------------------------------------------------------

    def free_list(self, order: int, mt: int | str = MIGRATE_MOVABLE) -> list[int]:
        """``free_area[order].free_list[mt]`` as pfns, head to tail."""
        mt = parse_migratetype(mt)
        out = []
        nxt = self.mem_map.lru_next
        pfn = self._head[order * _NT + mt]
        while pfn >= 0:
            out.append(pfn)
            pfn = nxt[pfn - self._base]
        return out

    @property
    def free_area(self) -> list[FreeArea]:
        """``zone->free_area[]``: one :class:`FreeArea` view per order."""
        return [FreeArea(self, o) for o in range(self.nr_orders)]

    def nr_free(self) -> list[int]:
        """``free_area[order].nr_free`` for every order (the /proc/buddyinfo numbers)."""
        return list(self._nr_free)

    def nr_free_by_type(self) -> list[list[int]]:
        """Free blocks per [migratetype][order] (/proc/pagetypeinfo's first table)."""
        return [[self._nr_free_mt[o * _NT + mt] for o in range(self.nr_orders)]
                for mt in range(MIGRATE_TYPES)]

    def buddyinfo(self) -> BuddyInfo:
        """This zone's /proc/buddyinfo line, as a :class:`BuddyInfo`."""
        return BuddyInfo(self.node, self.name, tuple(self._nr_free))

    def buddyinfo_line(self) -> str:
        """``frag_show_print()``: the line the kernel would print for this zone."""
        return format_line(self.node, self.name, self._nr_free)

    def free_blocks(self) -> list[tuple[int, int, int]]:
        """Every free block in the buddy lists as (pfn, order, migratetype), by pfn."""
        out = []
        for o in range(self.nr_orders):
            for mt in range(MIGRATE_TYPES):
                out.extend((p, o, mt) for p in self.free_list(o, mt))
        return sorted(out)

    def allocated_blocks(self) -> dict[int, int]:
        """Blocks handed out and not yet freed: {first pfn: order}."""
        ao = self._alloc_order
        return {self._ao_base + i: o for i, o in enumerate(ao) if o != _NO_ORDER}

    def find_free_block(self, pfn: int) -> tuple[int, int] | None:
        """The free buddy block (start pfn, order) that contains ``pfn``, if any."""
        for order in range(self.nr_orders):
            start = pfn & ~((1 << order) - 1)
            if self.zone_spans_pfn(start) and self._page_is_buddy(start, order):
                return start, order
        return None

    def find_allocation(self, pfn: int) -> tuple[int, int] | None:
        """The allocated block (start pfn, order) that contains ``pfn``, if any."""
        for order in range(self.nr_orders):
            start = pfn & ~((1 << order) - 1)
            if self.zone_spans_pfn(start) and \
                    self._alloc_order[start - self._ao_base] == order:
                return start, order
        return None

    def page_state(self) -> bytearray:
        """One byte per page of the zone for pictures: 0 free (buddy), 1 allocated,
        2 on a per-cpu list, 3 reserved."""
        n = self.spanned_pages
        out = bytearray([1]) * n
        zs = self.zone_start_pfn
        for pfn, order, _ in self.free_blocks():
            out[pfn - zs:pfn - zs + (1 << order)] = bytes(1 << order)
        for pcp in self.pcp:
            for pindex, lst in enumerate(pcp.lists):
                o = self.pindex_to_order(pindex)
                for pfn in lst:
                    out[pfn - zs:pfn - zs + (1 << o)] = b"\x02" * (1 << o)
        for s, e in self.reserved:
            out[s - zs:e - zs] = b"\x03" * (e - s)
        return out

    def state_key(self) -> tuple:
        """Everything that decides future results: each list's pfns in order, the counters,
        the per-cpu lists. Two zones with equal keys answer every request the same way."""
        lists = tuple(tuple(self.free_list(o, mt)) for o in range(self.nr_orders)
                      for mt in range(MIGRATE_TYPES))
        pcps = tuple(tuple(tuple(lst) for lst in p.lists) for p in self.pcp)
        return (lists, tuple(self._nr_free), self.nr_free_pages, pcps, bytes(self._pb_mt),
                self.nr_reserved_highatomic, self.watermark_boost)

    def check(self) -> None:
        """Verify the allocator's invariants; raise :class:`BadPageState` on the first broken
        one. Walks everything: for tests and for the curious, not for hot paths.

        - every list is well linked, its blocks are PageBuddy with the right order, aligned,
          inside the zone, on the list of their pageblock's type;
        - ``nr_free`` and NR_FREE_PAGES match the lists;
        - no two free buddies of the same order are left unmerged (below MAX_PAGE_ORDER);
        - free, per-cpu and allocated blocks never overlap, and together with the reserved
          pages cover the zone: free + per-cpu + allocated = managed.
        """
        mm, base = self.mem_map, self._base
        owner = bytearray(self.spanned_pages)          # 0 nobody, 1 free, 2 pcp, 3 alloc
        zs = self.zone_start_pfn
        nr_free_pages = 0

        def claim(pfn: int, order: int, kind: int, what: str) -> None:
            lo = pfn - zs
            hi = lo + (1 << order)
            if lo < 0 or hi > self.spanned_pages:
                raise BadPageState(f"{what} at pfn {pfn} (order {order}) leaves the zone")
            if owner[lo:hi].count(0) != hi - lo:
                raise BadPageState(f"{what} at pfn {pfn} (order {order}) overlaps another block")
            owner[lo:hi] = bytes([kind]) * (hi - lo)

        for o in range(self.nr_orders):
            count = 0
            for mt in range(MIGRATE_TYPES):
                k = o * _NT + mt
                prev = -1
                pfn = self._head[k]
                n = 0
                while pfn >= 0:
                    i = pfn - base
                    if mm.lru_prev[i] != prev:
                        raise BadPageState(f"free_area[{o}].free_list[{_mt_name(mt)}]: pfn {pfn}"
                                           f" has prev {mm.lru_prev[i]}, expected {prev}")
                    if mm.page_type[i] != _BUDDY or mm.private[i] != o:
                        raise BadPageState(f"pfn {pfn} on free_area[{o}] is not PageBuddy "
                                           f"of order {o}")
                    if pfn & ((1 << o) - 1):
                        raise BadPageState(f"pfn {pfn} on free_area[{o}] is not aligned")
                    pb_mt = self.get_pageblock_migratetype(pfn)
                    if pb_mt != mt:
                        raise BadPageState(f"pfn {pfn} is on the {_mt_name(mt)} list but its "
                                           f"pageblock is {_mt_name(pb_mt)}")
                    claim(pfn, o, 1, "free block")
                    if mt != MIGRATE_ISOLATE:
                        nr_free_pages += 1 << o
                    if o < self.max_order and self._page_is_buddy(pfn ^ (1 << o), o):
                        bmt = self.get_pageblock_migratetype(pfn ^ (1 << o))
                        if o < self.pageblock_order or bmt == mt or (
                                mt < MIGRATE_PCPTYPES and bmt < MIGRATE_PCPTYPES):
                            raise BadPageState(f"free buddies {pfn} and {pfn ^ (1 << o)} of "
                                               f"order {o} were not merged")
                    prev = pfn
                    pfn = mm.lru_next[i]
                    n += 1
                if self._tail[k] != prev:
                    raise BadPageState(f"free_area[{o}].free_list[{_mt_name(mt)}]: tail is "
                                       f"{self._tail[k]}, the last entry is {prev}")
                if self._nr_free_mt[k] != n:
                    raise BadPageState(f"free_area[{o}] {_mt_name(mt)} count {self._nr_free_mt[k]}"
                                       f" but the list has {n}")
                count += n
            if self._nr_free[o] != count:
                raise BadPageState(f"free_area[{o}].nr_free is {self._nr_free[o]} but the lists "
                                   f"hold {count} blocks")
        if nr_free_pages != self.nr_free_pages:
            raise BadPageState(f"NR_FREE_PAGES is {self.nr_free_pages} but the lists hold "
                               f"{nr_free_pages} pages")
        highatomic = sum(self._nr_free_mt[o * _NT + MIGRATE_HIGHATOMIC] << o
                         for o in range(self.nr_orders))
        if highatomic != self.nr_free_highatomic:
            raise BadPageState(f"nr_free_highatomic is {self.nr_free_highatomic} but the "
                               f"HighAtomic lists hold {highatomic} pages")
        pcp_pages = 0
        for cpu, pcp in enumerate(self.pcp):
            n = 0
            for pindex, lst in enumerate(pcp.lists):
                o = self.pindex_to_order(pindex)
                for pfn in lst:
                    claim(pfn, o, 2, f"cpu {cpu} per-cpu block")
                    n += 1 << o
            if n != pcp.count:
                raise BadPageState(f"cpu {cpu}: pcp->count is {pcp.count} but its lists hold "
                                   f"{n} pages")
            pcp_pages += n
        allocated = 0
        for pfn, o in self.allocated_blocks().items():
            claim(pfn, o, 3, "allocated block")
            allocated += 1 << o
        reserved = sum(e - s for s, e in self.reserved)
        if nr_free_pages + pcp_pages + allocated != self.managed_pages:
            raise BadPageState(f"free {nr_free_pages} + per-cpu {pcp_pages} + allocated "
                               f"{allocated} != managed {self.managed_pages}")
        if owner.count(0) != reserved:
            raise BadPageState(f"{owner.count(0) - reserved} page(s) are neither free, "
                               "allocated nor reserved")

    def render(self, migratetype: int | str | None = None) -> str:
        """The free lists (head to tail, non-empty orders), then the buddyinfo line."""
        lines = []
        mts = range(MIGRATE_TYPES) if migratetype is None else [parse_migratetype(migratetype)]
        for o in range(self.nr_orders):
            for mt in mts:
                pfns = self.free_list(o, mt)
                if pfns:
                    label = f"free_area[{o}]" + (f" {_mt_name(mt)}" if migratetype is None
                                                  else "")
                    lines.append(f"{label}: {' '.join(map(str, pfns))}")
        for cpu, pcp in enumerate(self.pcp):
            cached = [f"o{self.pindex_to_order(i)}/{_mt_name(i % MIGRATE_PCPTYPES)}: "
                      f"{' '.join(map(str, lst))}" for i, lst in enumerate(pcp.lists) if lst]
            if cached:
                lines.append(f"cpu {cpu} pcp (count {pcp.count}): " + "; ".join(cached))
        if not lines:
            lines.append("(no free blocks)")
        lines.append(self.buddyinfo_line().rstrip("\n"))
        return "\n".join(lines)


# The kernel's spellings, for notebooks and scripts (module level: no name mangling here).
Zone.__free_pages = Zone.free
Zone.__rmqueue_smallest = Zone._rmqueue_smallest
Zone.__rmqueue_fallback = Zone._rmqueue_fallback
Zone.__free_one_page = Zone._free_one_page
Zone.__get_free_pages = Zone.get_free_pages
Zone.buddy_merge_likely = Zone._buddy_merge_likely
Zone.expand = Zone._expand


def __find_buddy_pfn(pfn: int, order: int) -> int:  # noqa: N802 - the kernel's name
    """``__find_buddy_pfn()`` (mm/internal.h): the buddy of the order-``order`` block at pfn."""
    return pfn ^ (1 << order)


find_buddy_pfn = __find_buddy_pfn


class PageAllocator:
    """``__alloc_pages()`` over a zonelist: ``gfp_zone()`` picks the highest usable zone,
    zones are tried from there down (Normal, DMA32, DMA), each against its watermark, then the
    slow path (kswapd, reserves, reclaim/compaction stubs), then ``warn_alloc()``.

    ``zones`` are one node's zones (any order); ``zone_names`` is ``enum zone_type`` of the
    kernel config (x86_64's by default), so ``zone.zone_idx`` indexes into it.
    """

    def __init__(self, zones: Sequence[Zone], zone_names: Sequence[str] = _gfp.X86_64_ZONES,
                 comm: str = "kmm"):
        if not zones:
            raise BadRequest("a page allocator needs at least one zone")
        self.zone_names = tuple(zone_names)
        # build_zonerefs_node(): highest zone index first.
        self.zonelist = sorted(zones, key=lambda z: z.zone_idx, reverse=True)
        self.comm = comm
        self.dmesg: list[str] = []
        self.reclaim: Callable[[Zone, int, int], int] | None = None  # later chapters plug in
        self.compact: Callable[[Zone, int, int], int | None] | None = None

    @property
    def events(self) -> EventLog:
        return self.zonelist[0].events

    def zone_of(self, pfn: int) -> Zone:
        """``page_zone()``: the zone that spans pfn."""
        for z in self.zonelist:
            if z.zone_spans_pfn(pfn):
                return z
        raise BadPageState(f"BUG: Bad page state in process {self.comm}  pfn:{pfn:05x}\n"
                           f"page dumped because: pfn {pfn:#x} is in none of this node's zones")

    def _emit(self, kind: str, text: str, **data) -> None:
        log = self.events
        if log.active:
            log.emit(kind, text, **data)

    def get_page_from_freelist(self, gfp: int, order: int, alloc_flags: int,
                               highest_zoneidx: int, mt: int, cpu: int) -> int | None:
        """``get_page_from_freelist()``: the first zone of the zonelist (from
        ``highest_zoneidx`` down) that passes its watermark and has a block. With
        ALLOC_NOFRAGMENT (a request for a Normal zone, on a kernel with ZONE_DMA32) a first
        pass may only take whole pageblocks from other migrate types; if no zone can serve it,
        for whatever reason, the zonelist is walked again without it."""
        while True:
            no_fallback = alloc_flags & _wm.ALLOC_NOFRAGMENT
            for zone in self.zonelist:
                if zone.zone_idx > highest_zoneidx:
                    continue
                if ZONE_BELOW_HIGH not in zone.flags:
                    if zone.zone_watermark_fast(order, zone.high_wmark_pages(), highest_zoneidx,
                                                alloc_flags):
                        pfn = zone.rmqueue(order, mt, alloc_flags, cpu, gfp)
                        if pfn is not None:
                            if alloc_flags & _wm.ALLOC_HIGHATOMIC:
                                zone.reserve_highatomic_pageblock(pfn, order)
                            return pfn
                        continue
                    zone.flags.add(ZONE_BELOW_HIGH)
                mark = zone.wmark_pages(alloc_flags & _wm.ALLOC_WMARK_MASK)
                if not alloc_flags & _wm.ALLOC_NO_WATERMARKS and not zone.zone_watermark_fast(
                        order, mark, highest_zoneidx, alloc_flags):
                    if self.events.active:
                        which = _wm.WMARK_NAMES[alloc_flags & _wm.ALLOC_WMARK_MASK]
                        self._emit("watermark", f"zone {zone.name}: {zone.nr_free_pages} free "
                                   f"pages fail the {which} watermark ({mark}) + lowmem_reserve "
                                   f"({zone.lowmem_reserve[highest_zoneidx]}) for order {order}",
                                   zone=zone.name, order=order, mark=mark)
                    continue
                pfn = zone.rmqueue(order, mt, alloc_flags, cpu, gfp)
                if pfn is not None:
                    # A high-order atomic request that succeeded: keep its pageblock for the
                    # next one (the HIGHATOMIC reserve).
                    if alloc_flags & _wm.ALLOC_HIGHATOMIC:
                        zone.reserve_highatomic_pageblock(pfn, order)
                    return pfn
            if no_fallback:
                if self.events.active:
                    self._emit("nofragment", "no zone served it without fragmenting a "
                               "pageblock (ALLOC_NOFRAGMENT): walk the zonelist again, "
                               "fallbacks allowed")
                alloc_flags &= ~_wm.ALLOC_NOFRAGMENT
                continue
            return None

    def alloc_pages(self, gfp: int | str, order: int = 0, *, cpu: int = 0) -> int | None:
        """``alloc_pages(gfp, order)`` → ``__alloc_pages()``: the fast path at the low
        watermark, then :meth:`alloc_pages_slowpath`. Returns a pfn or None."""
        if isinstance(gfp, str):
            gfp = _gfp.parse_gfp(gfp)
        if not isinstance(gfp, int) or gfp < 0:
            raise BadRequest(f"gfp must be a mask or a flag string, not {gfp!r}")
        self.zonelist[0]._check_order(order)
        for z in self.zonelist:
            z._check_cpu(cpu)
        highest_zoneidx = self.zone_names.index(_gfp.gfp_zone_name(gfp, self.zone_names))
        _gfp.gfp_migratetype(gfp)           # refuses MOVABLE|RECLAIMABLE together
        mt = _gfp.gfp_migratetype(gfp, self.zonelist[0].page_group_by_mobility_disabled)
        alloc_flags = _wm.ALLOC_WMARK_LOW | (gfp & GFP_KSWAPD_RECLAIM)   # = ALLOC_KSWAPD
        pref = next((z for z in self.zonelist if z.zone_idx <= highest_zoneidx), None)
        alloc_flags |= self.alloc_flags_nofragment(pref)
        if self.events.active:
            self._emit("alloc_pages", f"alloc_pages({_gfp.format_gfp(gfp)}, order {order}): "
                       f"zones up to {self.zone_names[highest_zoneidx]}, {_mt_name(mt)}",
                       gfp=gfp, order=order, migratetype=mt)
        pfn = self.get_page_from_freelist(gfp, order, alloc_flags, highest_zoneidx, mt, cpu)
        if pfn is None:
            pfn = self.alloc_pages_slowpath(gfp, order, highest_zoneidx, mt, cpu)
        if pfn is not None:
            if self.events.active:
                self._emit("alloc_done", f"→ pfn {pfn} (zone {self.zone_of(pfn).name})",
                           pfn=pfn, order=order)
        return pfn

    def alloc_flags_nofragment(self, zone: Zone | None) -> int:
        """``alloc_flags_nofragment()``: ALLOC_NOFRAGMENT when the preferred ``zone`` is Normal
        on a kernel with CONFIG_ZONE_DMA32 (a DMA32 in enum zone_type): the request avoids
        fragmenting fallbacks first. On one node the kernel "assumes … that if Normal is
        populated then so is DMA32", and does not look."""
        if zone is not None and zone.name == "Normal" and "DMA32" in self.zone_names:
            return _wm.ALLOC_NOFRAGMENT
        return 0

    def alloc_pages_slowpath(self, gfp: int, order: int, highest_zoneidx: int, mt: int,
                             cpu: int = 0) -> int | None:
        """``__alloc_pages_slowpath()``, shortened: wake kswapd, retry at the min watermark
        with the reserves this gfp may use (``gfp_to_alloc_flags()``), then — for callers that
        may sleep — direct reclaim and compaction (stubs unless a later chapter plugs them in),
        then give up with ``warn_alloc()`` unless __GFP_NOWARN."""
        alloc_flags = _wm.gfp_to_alloc_flags(gfp, order)
        if alloc_flags & _wm.ALLOC_KSWAPD:
            for zone in self.zonelist:
                if zone.zone_idx <= highest_zoneidx:
                    if self.events.active:
                        self._emit("kswapd", f"wakeup_kswapd(zone {zone.name}, order {order}): "
                                   "kswapd would reclaim up to the high watermark (stub: nothing "
                                   "to reclaim in this model)", zone=zone.name, order=order)
        pfn = self.get_page_from_freelist(gfp, order, alloc_flags, highest_zoneidx, mt, cpu)
        if pfn is not None:
            return pfn
        if gfp & GFP_MEMALLOC and not gfp & GFP_NOMEMALLOC:
            # __gfp_pfmemalloc_flags(): ALLOC_NO_WATERMARKS for __GFP_MEMALLOC, from here on
            # (reclaim and the retries too), keeping ALLOC_KSWAPD so that a boosting fallback
            # still wakes kswapd.
            alloc_flags = _wm.ALLOC_NO_WATERMARKS | (alloc_flags & _wm.ALLOC_KSWAPD)
            pfn = self.get_page_from_freelist(gfp, order, alloc_flags, highest_zoneidx, mt,
                                              cpu)
            if pfn is not None:
                return pfn
        if gfp & GFP_DIRECT_RECLAIM:
            for zone in self.zonelist:
                if zone.zone_idx > highest_zoneidx:
                    continue
                got = self.reclaim(zone, order, gfp) if self.reclaim else 0
                if self.events.active:
                    self._emit("reclaim", f"direct reclaim in zone {zone.name}: {got} page(s) "
                               f"freed{'' if self.reclaim else ' (stub)'}", zone=zone.name,
                               reclaimed=got)
                if order and self.compact:
                    self.compact(zone, order, gfp)
                elif order:
                    if self.events.active:
                        self._emit("compact", f"direct compaction in zone {zone.name} for order "
                                   f"{order} (not wired: set PageAllocator.compact, see "
                                   "kmmlib.mm.compaction)", zone=zone.name, order=order)
            pfn = self.get_page_from_freelist(gfp, order, alloc_flags, highest_zoneidx, mt, cpu)
            if pfn is not None:
                return pfn
            # No retry loop for __GFP_NORETRY, nor for a costly order unless it is
            # __GFP_RETRY_MAYFAIL and may compact (gfp_compaction_allowed(): __GFP_IO): those
            # go to nopage before should_reclaim_retry().
            costly = order > PAGE_ALLOC_COSTLY_ORDER and not (gfp & GFP_RETRY_MAYFAIL
                                                              and gfp & GFP_IO)
            # should_reclaim_retry(): after MAX_RECLAIM_RETRIES rounds without progress, and
            # before the OOM killer, give the high-order atomic reserve back and try again.
            if not gfp & GFP_NORETRY and not costly and self.unreserve_highatomic_pageblock(
                    mt, highest_zoneidx, force=True):
                pfn = self.get_page_from_freelist(gfp, order, alloc_flags, highest_zoneidx, mt,
                                                  cpu)
                if pfn is not None:
                    return pfn
            if gfp & GFP_NOFAIL:
                # A request that must not fail gets into the reserves: all of them where the
                # OOM path runs (__alloc_pages_may_oom(): order ≤ PAGE_ALLOC_COSTLY_ORDER, not
                # __GFP_RETRY_MAYFAIL nor __GFP_THISNODE, zones up to Normal or above; no OOM
                # killer is modelled, and the kernel lets it in whether or not a task was
                # killed), else those of high-priority callers (nopage: ALLOC_MIN_RESERVE).
                # Then it would loop.
                oom_path = (not gfp & (GFP_NORETRY | GFP_RETRY_MAYFAIL | GFP_THISNODE)
                            and order <= PAGE_ALLOC_COSTLY_ORDER
                            and highest_zoneidx >= self.zone_names.index("Normal"))
                reserve = _wm.ALLOC_NO_WATERMARKS if oom_path else _wm.ALLOC_MIN_RESERVE
                pfn = self.get_page_from_freelist(gfp, order, reserve, highest_zoneidx, mt, cpu)
                if pfn is not None:
                    return pfn
        self.warn_alloc(gfp, order)
        return None

    def unreserve_highatomic_pageblock(self, mt: int, highest_zoneidx: int,
                                       force: bool = False) -> bool:
        """``unreserve_highatomic_pageblock()``: give one HIGHATOMIC pageblock of the first
        zone that has one back to ``mt`` (see :meth:`Zone.unreserve_highatomic_pageblock`)."""
        for zone in self.zonelist:
            if zone.zone_idx <= highest_zoneidx and zone.unreserve_highatomic_pageblock(mt, force):
                return True
        return False

    def warn_alloc(self, gfp: int, order: int) -> None:
        """``warn_alloc()``: the "page allocation failure" line dmesg would show (unless
        __GFP_NOWARN), kept in :attr:`dmesg` and emitted as an event."""
        line = (f"{self.comm}: page allocation failure: order:{order}, mode:{gfp:#x}"
                f"({_gfp.format_gfp(gfp)}), nodemask=(null)")
        if gfp & GFP_NOFAIL:
            line += "  [__GFP_NOFAIL: the kernel would retry forever]"
        if not gfp & GFP_NOWARN:
            self.dmesg.append(line)
        if self.events.active:
            self._emit("alloc_fail", line if not gfp & GFP_NOWARN else
                       f"allocation of order {order} failed (__GFP_NOWARN: no message)",
                       gfp=gfp, order=order)

    def free(self, pfn: int, order: int = 0) -> None:
        """``__free_pages(page, order)`` in whichever zone holds pfn."""
        if not isinstance(pfn, int) or isinstance(pfn, bool):
            raise BadRequest(f"pfn must be an integer, not {pfn!r}")
        self.zone_of(pfn).free(pfn, order)

    def get_free_pages(self, gfp: int | str, order: int = 0) -> int:
        """``__get_free_pages()``: the linear-map address of the block, 0 on failure.
        Highmem pages have no permanent address, so the kernel clears __GFP_HIGHMEM here
        (``alloc_pages(gfp_mask & ~__GFP_HIGHMEM, order)``) and the block comes from lowmem."""
        if isinstance(gfp, str):
            gfp = _gfp.parse_gfp(gfp)
        pfn = self.alloc_pages(gfp & ~_G["__GFP_HIGHMEM"], order)
        return 0 if pfn is None else self.zone_of(pfn).mem_map.page_address(pfn)

    def free_pages(self, addr: int, order: int = 0) -> None:
        """``free_pages(addr, order)``: ``__free_pages(virt_to_page(addr), order)``; 0 is a
        no-op, as in the kernel."""
        if addr == 0:
            return
        for z in self.zonelist:
            pfn = (addr - z.mem_map.page_offset) >> PAGE_SHIFT
            if addr >= z.mem_map.page_offset and z.zone_spans_pfn(pfn):
                z.free(pfn, order)
                return
        raise BadRequest(f"free_pages: {addr:#x} is not a linear-map address of this "
                         "node's memory (VM_BUG_ON(!virt_addr_valid(addr)))")


PageAllocator.__free_pages = PageAllocator.free
PageAllocator.__get_free_pages = PageAllocator.get_free_pages
PageAllocator.__alloc_pages_slowpath = PageAllocator.alloc_pages_slowpath


def boot_free_blocks(start_pfn: int, end_pfn: int,
                     max_order: int = MAX_PAGE_ORDER) -> list[tuple[int, int]]:
    """The (pfn, order) blocks ``__free_pages_memory()`` frees for [start_pfn, end_pfn), in
    order — a pure function, for exercises: 37 pages at pfn 0 → (0, 5), (32, 2), (36, 0)."""
    out = []
    start = start_pfn
    while start < end_pfn:
        order = min(max_order, (start & -start).bit_length() - 1) if start else max_order
        while start + (1 << order) > end_pfn:
            order -= 1
        out.append((start, order))
        start += 1 << order
    return out


__all__ = [
    "FPI_NONE", "FPI_TO_TAIL", "MAX_PAGE_ORDER", "NR_PAGE_ORDERS", "PAGE_ALLOC_COSTLY_ORDER",
    "PAGEBLOCK_ORDER", "FreeArea", "PageAllocator", "PerCpuPages", "Zone", "boot_free_blocks",
    "find_buddy_pfn", "zone_batchsize", "zone_highsize", "MIGRATE_MOVABLE", "MIGRATE_UNMOVABLE",
    "RMQUEUE_NORMAL", "RMQUEUE_CLAIM", "RMQUEUE_STEAL", "ZONE_BOOSTED_WATERMARK",
    "format_extfrag",
]

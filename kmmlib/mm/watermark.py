"""Watermarks: how much memory each zone keeps free, and who may dip into it.

Every zone has three levels (``enum zone_watermarks``, include/linux/mmzone.h), plus one for
memory tiering:

- **min** — only __GFP_HIGH allocations (GFP_ATOMIC), OOM victims and tasks that are freeing
  memory (PF_MEMALLOC) may go below it; not being able to wait (GFP_NOWAIT) is not enough.
  An ordinary allocation that finds a zone at min reclaims memory itself
  (*direct reclaim*): the caller stalls.
- **low** — an allocation that finds every usable zone at or below low wakes ``kswapd``,
  the per-node reclaim thread, and then tries again against min.
- **high** — kswapd reclaims until some zone is above high, then sleeps. The gap between
  low and high is the hysteresis that stops it waking for every page.
- **promo** — with NUMA memory tiering, kswapd aims for this instead of high.

The numbers come from one sysctl, ``vm.min_free_kbytes``, split between the zones in
proportion to their managed pages (``__setup_per_zone_wmarks()``, mm/page_alloc.c), with
``vm.watermark_scale_factor`` widening the gaps. Separately, ``lowmem_reserve`` (printed
as ``protection:`` in /proc/zoneinfo) keeps allocations that could have used a higher zone
from exhausting a lower one (``setup_per_zone_lowmem_reserve()``).

Everything here is a pure function over plain numbers (sizes in pages), so the live zone
(:class:`kmmlib.mm.page_alloc.Zone`), the ``kmm watermarks`` command and the exercises share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kmmlib.errors import BadRequest
from kmmlib.mm import gfp as _gfp

PAGE_SHIFT = 12                 # 4 KiB pages
SWAP_CLUSTER_MAX = 32           # include/linux/swap.h: reclaim works in batches of 32 pages
MIGRATE_PCPTYPES = 3            # unmovable, movable, reclaimable (include/linux/mmzone.h)
MIN_FREE_KBYTES_FLOOR = 128     # calculate_min_free_kbytes() clamps to [128, 262144]
MIN_FREE_KBYTES_CEILING = 262144
DEFAULT_WATERMARK_SCALE_FACTOR = 10   # 10/10000 = 0.1 % of a zone between min→low→high

# enum zone_watermarks (include/linux/mmzone.h)
WMARK_MIN, WMARK_LOW, WMARK_HIGH, WMARK_PROMO = 0, 1, 2, 3
WMARK_NAMES = ("min", "low", "high", "promo")

# alloc_flags (mm/internal.h, Linux 6.3+). The ALLOC_WMARK bits index the watermark array.
ALLOC_WMARK_MIN = WMARK_MIN
ALLOC_WMARK_LOW = WMARK_LOW
ALLOC_WMARK_HIGH = WMARK_HIGH
ALLOC_NO_WATERMARKS = 0x04      # don't check watermarks at all
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08                # an OOM victim: may use more reserves
ALLOC_NON_BLOCK = 0x10          # caller cannot block (no direct reclaim)
ALLOC_MIN_RESERVE = 0x20        # __GFP_HIGH: may use half of min
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800            # __GFP_KSWAPD_RECLAIM: may wake kswapd
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM


@dataclass(frozen=True)
class Watermarks:
    """One zone's ``_watermark[]``: min, low, high, promo (pages)."""

    min: int
    low: int
    high: int
    promo: int

    def __getitem__(self, wmark: int) -> int:
        """``wmark_pages(z, i)`` without the boost: ``Watermarks[WMARK_LOW]`` is ``low``."""
        return (self.min, self.low, self.high, self.promo)[wmark]

    def as_dict(self) -> dict[str, int]:
        return {"min": self.min, "low": self.low, "high": self.high, "promo": self.promo}

    def boosted(self, boost: int) -> Watermarks:
        """What /proc/zoneinfo prints: ``min_wmark_pages()`` & co. add ``watermark_boost``
        (raised for a while after a fragmenting fallback, see ``boost_watermark()``)."""
        return Watermarks(self.min + boost, self.low + boost, self.high + boost,
                          self.promo + boost)


def int_sqrt(x: int) -> int:
    """``int_sqrt()`` (lib/math/int_sqrt.c): the integer square root, rounded down."""
    if x < 0:
        raise BadRequest(f"int_sqrt of a negative number ({x})")
    return math.isqrt(x)


def nr_free_zone_pages(managed: Sequence[int], high: Sequence[int], highest_zoneidx: int
                       ) -> int:
    """``nr_free_zone_pages()`` (mm/page_alloc.c): pages above the high watermark in the zones
    an allocation up to ``highest_zoneidx`` may use. ``nr_free_buffer_pages()`` is this with
    ``gfp_zone(GFP_USER)`` = ZONE_NORMAL, i.e. "lowmem" without HighMem and Movable.
    At boot the watermarks are still 0, so it is simply the managed pages."""
    _same_length(managed=managed, high=high)
    return sum(max(0, m - h) for m, h in zip(managed[:highest_zoneidx + 1],
                                             high[:highest_zoneidx + 1], strict=True))


def calculate_min_free_kbytes(lowmem_kbytes: int, user_min_free_kbytes: int = -1) -> int:
    """``calculate_min_free_kbytes()`` (mm/page_alloc.c): 4·√(lowmem in KiB), clamped to
    [128, 262144] KiB — 16 MiB of lowmem gives 512 KiB, 1 GiB gives 4 MiB, 16 GiB 16 MiB.
    A value the user wrote to the sysctl (``user_min_free_kbytes`` ≥ the new one) wins.
    ``lowmem_kbytes`` is ``nr_free_buffer_pages()`` in KiB (see :func:`nr_free_zone_pages`)."""
    if lowmem_kbytes < 0:
        raise BadRequest("lowmem_kbytes must not be negative")
    new = int_sqrt(lowmem_kbytes * 16)
    if new > user_min_free_kbytes:
        return min(max(new, MIN_FREE_KBYTES_FLOOR), MIN_FREE_KBYTES_CEILING)
    return user_min_free_kbytes


def set_recommended_min_free_kbytes(nr_zones: int, nr_free_buffer_pages: int,
                                    min_free_kbytes: int, pageblock_order: int = 9,
                                    *, page_shift: int = PAGE_SHIFT) -> int:
    """``set_recommended_min_free_kbytes()`` (mm/khugepaged.c): with transparent huge pages on,
    raise min_free_kbytes so that each populated lowmem zone keeps 2 pageblocks free, plus
    MIGRATE_PCPTYPES² = 9 more so each migrate type has blocks to fall back to — capped at 5 %
    of lowmem. This, not the √ rule, is what most x86_64 machines end up with:
    3 zones × 512 pages × 11 = 16896 pages = 67584 KiB."""
    if nr_zones < 0 or nr_free_buffer_pages < 0 or pageblock_order < 0:
        raise BadRequest("zone and page counts must not be negative")
    pageblock_nr_pages = 1 << pageblock_order
    recommended = pageblock_nr_pages * nr_zones * 2
    recommended += pageblock_nr_pages * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    recommended = min(recommended, nr_free_buffer_pages // 20)
    recommended <<= page_shift - 10
    return max(recommended, min_free_kbytes)


def setup_per_zone_wmarks(managed: Sequence[int], is_highmem: Sequence[bool],
                          min_free_kbytes: int,
                          watermark_scale_factor: int = DEFAULT_WATERMARK_SCALE_FACTOR,
                          *, page_shift: int = PAGE_SHIFT) -> list[Watermarks]:
    """``__setup_per_zone_wmarks()`` (mm/page_alloc.c, Linux 6.18) for one node's zones.

    ``managed[i]`` is zone i's managed pages; ``is_highmem[i]`` is True for the zones that get
    a small fixed min and are left out of "lowmem": ZONE_HIGHMEM, and since Linux 6.6 also
    ZONE_MOVABLE (:meth:`kmmlib.mm.zone.ZoneConfig.wmark_small_min` gives the list).

    1. pages_min = min_free_kbytes in pages; lowmem_pages = Σ managed of the lowmem zones.
    2. Each lowmem zone gets min = pages_min · managed / lowmem_pages (its share, rounded
       down); a highmem zone gets min = managed/1024 clamped to [32, 128], because atomic
       allocations cannot use highmem anyway.
    3. delta = max(share/4, managed · watermark_scale_factor / 10000); low = min + delta,
       high = low + delta, promo = high + delta.
    """
    _same_length(managed=managed, is_highmem=is_highmem)
    if min_free_kbytes < 0 or watermark_scale_factor < 0 or any(m < 0 for m in managed):
        raise BadRequest("min_free_kbytes, watermark_scale_factor and managed pages must not "
                         "be negative")
    pages_min = min_free_kbytes >> (page_shift - 10)
    lowmem_pages = sum(m for m, hi in zip(managed, is_highmem, strict=True) if not hi)
    if lowmem_pages == 0:
        # The kernel divides by this; a node always has some lowmem.
        raise BadRequest("no lowmem: the zones that are not HighMem/Movable have 0 managed pages")
    out = []
    for m, hi in zip(managed, is_highmem, strict=True):
        tmp = pages_min * m // lowmem_pages          # u64 multiply, then do_div: rounds down
        if hi:
            wmin = min(max(m // 1024, SWAP_CLUSTER_MAX), 128)
        else:
            wmin = tmp
        # mult_frac(managed, scale, 10000) is exact integer arithmetic: managed·scale/10000.
        delta = max(tmp >> 2, m * watermark_scale_factor // 10000)
        out.append(Watermarks(wmin, wmin + delta, wmin + 2 * delta, wmin + 3 * delta))
    return out


def setup_per_zone_lowmem_reserve(managed: Sequence[int], ratio: Sequence[int]
                                  ) -> list[list[int]]:
    """``setup_per_zone_lowmem_reserve()`` (mm/page_alloc.c): the ``protection:`` arrays.

    Zone i's ``lowmem_reserve[j]`` for j > i is (Σ managed of zones i+1..j) / ratio[i]: the
    pages an allocation that could have used zone j must leave in zone i. It is 0 when
    ratio[i] is 0 or zone i has no managed pages, and for j ≤ i. Returns one array per zone,
    each as long as ``managed`` (MAX_NR_ZONES).
    """
    _same_length(managed=managed, ratio=ratio)
    if any(r < 0 for r in ratio):
        raise BadRequest("lowmem_reserve_ratio values must not be negative")
    n = len(managed)
    out = [[0] * n for _ in range(n)]
    for i in range(n - 1):
        if not ratio[i] or not managed[i]:
            continue
        above = 0
        for j in range(i + 1, n):
            above += managed[j]
            out[i][j] = above // ratio[i]
    return out


def calculate_totalreserve_pages(zones) -> int:
    """``calculate_totalreserve_pages()`` (mm/page_alloc.c): the pages user space cannot count
    on. For each zone of each node, the largest ``lowmem_reserve[j]`` for j from the zone's own
    index up, plus the high watermark, capped at the zone's managed pages; summed.
    ``si_mem_available()`` subtracts the total from free memory.

    ``zones`` are objects with ``.managed``, ``.high`` and ``.protection`` (a /proc/zoneinfo
    zone, or the live Zone), in the node's zone order; ``.node`` groups them when present.

    ``.high`` is taken as /proc/zoneinfo prints it, ``high_wmark_pages()``: with the zone's
    ``watermark_boost`` (``.boost``, or zoneinfo's ``boost`` line in ``.stats``), which is taken
    off again. The kernel sums the high marks only when it sets them up
    (``__setup_per_zone_wmarks()`` zeroes the boost first) or writes lowmem_reserve, so the
    total it keeps does not follow a boost raised later by a fragmenting fallback."""
    total = 0
    by_node: dict[int, list] = {}
    for z in zones:
        by_node.setdefault(getattr(z, "node", 0), []).append(z)
    for node_zones in by_node.values():
        for i, zone in enumerate(node_zones):
            reserve = max(zone.protection[i:], default=0)
            boost = getattr(zone, "boost", None)
            if boost is None:
                boost = getattr(zone, "stats", {}).get("boost", 0)
            total += min(reserve + zone.high - boost, zone.managed)
    return total


def gfp_to_alloc_flags(gfp_mask: int, order: int = 0) -> int:
    """``gfp_to_alloc_flags()`` (mm/page_alloc.c, Linux 6.3+), the slow path's flags:
    WMARK_MIN, plus __GFP_HIGH → ALLOC_MIN_RESERVE and __GFP_KSWAPD_RECLAIM → ALLOC_KSWAPD
    (the same bits on purpose); a caller that cannot direct-reclaim gets ALLOC_NON_BLOCK
    (unless __GFP_NOMEMALLOC), and for order > 0 with __GFP_HIGH, ALLOC_HIGHATOMIC.
    Simplified: no real-time-task boost, no cpuset or CMA flags."""
    g = _gfp.DEFAULT.masks
    # The kernel relies on __GFP_HIGH == ALLOC_MIN_RESERVE and __GFP_KSWAPD_RECLAIM ==
    # ALLOC_KSWAPD (BUILD_BUG_ON) to copy both bits in one go; so does this.
    flags = ALLOC_WMARK_MIN | (gfp_mask & (g["__GFP_HIGH"] | g["__GFP_KSWAPD_RECLAIM"]))
    if not gfp_mask & g["__GFP_DIRECT_RECLAIM"] and not gfp_mask & g["__GFP_NOMEMALLOC"]:
        flags |= ALLOC_NON_BLOCK
        if order > 0 and flags & ALLOC_MIN_RESERVE:
            flags |= ALLOC_HIGHATOMIC
    return flags


def watermark_reserve_min(mark: int, alloc_flags: int) -> int:
    """The level ``__zone_watermark_ok()`` really checks: ``mark`` lowered for callers allowed
    into the reserves. __GFP_HIGH may use half of it, GFP_ATOMIC (also non-blocking) a further
    quarter of the rest (so 3/8 of min remains), an OOM victim half again."""
    m = mark
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            m -= m // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                m -= m // 4
        if alloc_flags & ALLOC_OOM:
            m -= m // 2
    return m


def zone_watermark_ok(free_pages: int, order: int, mark: int,
                      lowmem_reserve: Sequence[int], highest_zoneidx: int,
                      alloc_flags: int = 0, *, nr_free_highatomic: int = 0,
                      nr_free_cma: int = 0, free_blocks: Sequence[int] | None = None) -> bool:
    """``__zone_watermark_ok()`` (mm/page_alloc.c, Linux 6.18): may this zone serve an
    allocation of 2^order pages whose highest usable zone is ``highest_zoneidx``?

    - Pages the caller cannot use are not counted: the 2^order - 1 beyond the first page,
      the free pages of the high-atomic reserve (``zone->nr_free_highatomic``, 6.13+; older
      kernels subtracted the whole ``nr_reserved_highatomic``) unless the caller may use
      reserves, free CMA pages (unless ALLOC_CMA).
    - The mark is lowered for reserve users (:func:`watermark_reserve_min`).
    - Fail if free ≤ mark + ``lowmem_reserve[highest_zoneidx]`` — this is where a lower zone
      protects itself from allocations that could have gone higher.
    - For order > 0, some free list of that order or above must be non-empty:
      ``free_blocks[o]`` is the number of free blocks of order o in the unmovable, movable and
      reclaimable lists (simplified: high-atomic and CMA blocks are not counted separately).
    """
    if order < 0:
        raise BadRequest(f"invalid order {order}")
    if not 0 <= highest_zoneidx < len(lowmem_reserve):
        raise BadRequest(f"highest_zoneidx {highest_zoneidx} outside the zone's "
                         f"{len(lowmem_reserve)}-entry lowmem_reserve")
    free = free_pages - ((1 << order) - 1)
    if not alloc_flags & ALLOC_RESERVES:
        free -= nr_free_highatomic
    if not alloc_flags & ALLOC_CMA:
        free -= nr_free_cma
    if free <= watermark_reserve_min(mark, alloc_flags) + lowmem_reserve[highest_zoneidx]:
        return False
    if order == 0:
        return True
    if free_blocks is None:
        raise BadRequest("an order > 0 check needs free_blocks (free blocks per order)")
    return any(n > 0 for n in free_blocks[order:])


def _same_length(**seqs: Sequence) -> None:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise BadRequest(f"one entry per zone is needed: {desc}")


# -- recomputing a real kernel's figures ---------------------------------------------------

WMARK_FIELDS = ("min", "low", "high", "promo", "protection")


@dataclass
class ZoneWatermarkCheck:
    """One zone's watermarks and protection as recomputed here beside the kernel's own.

    ``computed`` already includes the zone's ``watermark_boost``, as /proc/zoneinfo's figures
    do (``min_wmark_pages()`` = ``_watermark[WMARK_MIN] + watermark_boost``)."""

    node: int
    name: str
    idx: int
    managed: int
    present: int
    boost: int
    computed: dict
    kernel: dict

    @property
    def mismatches(self) -> list[str]:
        """The fields whose computed value differs from the kernel's (an absent kernel value,
        such as promo on kernels before it was printed, is not compared)."""
        return [f for f in WMARK_FIELDS
                if self.kernel.get(f) is not None and self.computed[f] != self.kernel[f]]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict:
        return {"node": self.node, "name": self.name, "present": self.present,
                "managed": self.managed, "boost": self.boost, "computed": self.computed,
                "kernel": self.kernel, "match": self.ok}


def recompute_zoneinfo(zones: Sequence, min_free_kbytes: int, watermark_scale_factor: int,
                       lowmem_reserve_ratio: Sequence[int]) -> list[ZoneWatermarkCheck]:
    """Recompute every zone's min/low/high/promo and protection array from its managed pages
    and the three sysctls, as ``__setup_per_zone_wmarks()`` and
    ``setup_per_zone_lowmem_reserve()`` do, beside the values the kernel printed.

    ``zones`` are parsed /proc/zoneinfo zones (:func:`kmmlib.procfs.zoneinfo.parse_zoneinfo`),
    all nodes, unpopulated zones included: lowmem is summed over every node (the kernel's
    ``for_each_zone``), lowmem_reserve is per node. The kernel computed its figures on the
    managed pages at its last setup (boot, a sysctl write, memory hotplug); if managed pages
    have changed since, the two columns differ, and that difference is real.
    """
    from kmmlib.mm.zone import ZoneConfig

    nodes: dict[int, list] = {}
    for z in zones:
        nodes.setdefault(z.node, []).append(z)
    small_min: list[bool] = []
    flat: list = []
    idxs: list[int] = []
    configs = {}
    for nid, nz in nodes.items():
        cfg = ZoneConfig.from_names([z.name for z in nz])
        configs[nid] = cfg
        if len(lowmem_reserve_ratio) != cfg.MAX_NR_ZONES:
            raise BadRequest(f"lowmem_reserve_ratio has {len(lowmem_reserve_ratio)} values but "
                             f"node {nid} has {cfg.MAX_NR_ZONES} zones "
                             f"({', '.join(cfg.names)})")
        small_min += cfg.wmark_small_min()
        flat += nz
        idxs += range(len(nz))
    wmarks = setup_per_zone_wmarks([z.managed for z in flat], small_min, min_free_kbytes,
                                   watermark_scale_factor)
    reserves: list[list[int]] = []
    for nz in nodes.values():
        reserves += setup_per_zone_lowmem_reserve([z.managed for z in nz], lowmem_reserve_ratio)
    out = []
    for z, idx, wm, prot in zip(flat, idxs, wmarks, reserves, strict=True):
        boost = z.stats.get("boost", 0) if hasattr(z, "stats") else 0
        computed = {**wm.boosted(boost).as_dict(), "protection": prot}
        kernel = {"min": z.min, "low": z.low, "high": z.high, "promo": z.promo,
                  "protection": list(z.protection)}
        out.append(ZoneWatermarkCheck(z.node, z.name, idx, z.managed, z.present, boost,
                                      computed, kernel))
    return out


def implied_lowmem_pages(pages_min: int, managed: int, kernel_min: int) -> tuple[int, int]:
    """The range of ``lowmem_pages`` for which ``pages_min · managed // lowmem_pages`` equals
    ``kernel_min``: what a zone's printed min says about the lowmem total the kernel used at
    its last setup (when that zone's managed pages have not changed since)."""
    if kernel_min <= 0 or managed <= 0:
        raise BadRequest("need a zone with managed pages and a positive min")
    prod = pages_min * managed
    # prod // L == k  ⇔  prod/(k+1) < L ≤ prod/k
    return prod // (kernel_min + 1) + 1, prod // kernel_min


# -- a node under memory pressure: the model behind the watermark widget --------------------

MAX_RECLAIM_RETRIES = 16        # mm/internal.h: direct reclaim retries before giving up


@dataclass
class ZoneState:
    """One zone of the pressure model: its size, watermarks, protection and free pages."""

    name: str
    idx: int
    present: int
    managed: int
    wmark: Watermarks
    lowmem_reserve: list[int]
    free: int

    def level(self) -> str:
        """Where the free pages stand against the watermarks."""
        w = self.wmark
        if self.free > w.high:
            return "above high"
        if self.free > w.low:
            return "low..high"
        if self.free > w.min:
            return "min..low"
        return "below min"


@dataclass
class AllocDecision:
    """What ``__alloc_pages()`` does with one request, and why (one line per check)."""

    gfp: int
    order: int
    highest_zoneidx: int
    path: str                    # "fast", "slow", "direct reclaim", "failed"
    zone: str | None             # the zone that serves it, None if it fails
    wake_kswapd: bool
    lines: list[str]

    def __str__(self) -> str:
        return "\n".join(self.lines)


class WatermarkModel:
    """A node's zones, their free pages and its kswapd: what the watermarks make the kernel do.

    An allocation follows ``__alloc_pages()`` (mm/page_alloc.c): the fast path walks the
    zonelist from ``gfp_zone(gfp)`` down and takes the first zone above its **low** watermark
    plus ``lowmem_reserve[gfp_zone]``; if none is, the slow path wakes kswapd
    (``wake_all_kswapds()``) and tries again against **min**, lowered for GFP_ATOMIC-like
    callers (:func:`gfp_to_alloc_flags`); if that fails too, a caller that may sleep reclaims
    pages itself (direct reclaim, ``SWAP_CLUSTER_MAX`` = 32 at a time) and retries, and one
    that may not gets NULL. kswapd reclaims in the background until some zone it serves is
    above **high** with its protection (``pgdat_balanced()``), then sleeps.

    Simplified: reclaim takes pages from one pool of reclaimable page cache (no LRU lists,
    no writeback) and gives them back to the highest eligible zone still short of its high
    watermark; an order-n block is assumed to exist wherever 2^n pages are free (no buddy
    lists here: see :mod:`kmmlib.mm.page_alloc`); no watermark boosting, no NUMA.

    It is a :class:`kmmlib.stepper.Stepper` model: ``apply(op)`` with ops
    ``("set_free", zone, pages)``, ``("alloc", gfp, order)``, ``("burst", pages, gfp)`` (one
    tick: a kswapd pass, then that many order-0 allocations) and ``("tick",)`` (kswapd only);
    ``render()`` is its text. Every change is reported to ``events``.
    """

    def __init__(self, zones: Sequence[ZoneState], zone_names: Sequence[str], *,
                 reclaimable: int = 0, kswapd_batch: int = 8 * SWAP_CLUSTER_MAX,
                 probe_gfp: int | str = "GFP_KERNEL", events=None):
        from kmmlib.events import EventLog

        if [z.idx for z in zones] != list(range(len(zone_names))):
            raise BadRequest("give one ZoneState per configured zone, in zone index order")
        if reclaimable < 0 or kswapd_batch < 0:
            raise BadRequest("reclaimable and kswapd_batch must not be negative")
        self.zones = list(zones)
        self.zone_names = tuple(zone_names)
        self.reclaimable = reclaimable
        self.kswapd_batch = kswapd_batch
        self.probe_gfp = self.parse_gfp(probe_gfp)
        self.events = events if events is not None else EventLog()
        self.kswapd_awake = False
        self.kswapd_highest_zoneidx = 0
        self.tick = 0
        self.stalls = 0              # direct reclaim passes (allocations that had to wait)
        self.failures = 0            # allocations that returned NULL
        self.allocated = 0
        self.min_free_kbytes: int | None = None
        self.trace: list[tuple[int, int, bool, int]] = []   # per burst: tick, free, awake, stalls

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_managed(cls, names: Sequence[str], managed: Sequence[int], *,
                     present: Sequence[int] | None = None, free: Sequence[int] | None = None,
                     min_free_kbytes: int | None = None,
                     watermark_scale_factor: int = DEFAULT_WATERMARK_SCALE_FACTOR,
                     lowmem_reserve_ratio: Sequence[int] | None = None, **kw) -> WatermarkModel:
        """Zones of a config (``names`` in enum order) with these managed pages, watermarks
        computed as the kernel does; min_free_kbytes defaults to the √ rule. Free pages
        default to just above each zone's high watermark plus its largest protection: a busy
        machine, where page cache fills the rest and kswapd stopped as soon as it could."""
        from kmmlib.mm.zone import ZoneConfig

        cfg = ZoneConfig.from_names(names, "model")
        present = list(managed) if present is None else list(present)
        _same_length(names=names, managed=managed, present=present)
        small = cfg.wmark_small_min()
        if min_free_kbytes is None:
            lowmem = sum(m for m, s in zip(managed, small, strict=True) if not s)
            min_free_kbytes = calculate_min_free_kbytes(lowmem << (PAGE_SHIFT - 10))
        ratio = (cfg.default_lowmem_reserve_ratio() if lowmem_reserve_ratio is None
                 else list(lowmem_reserve_ratio))
        wm = setup_per_zone_wmarks(managed, small, min_free_kbytes, watermark_scale_factor)
        prot = setup_per_zone_lowmem_reserve(managed, ratio)
        if free is None:
            free = [min(m, w.high + max(p) + 1) if m else 0
                    for m, w, p in zip(managed, wm, prot, strict=True)]
        _same_length(names=names, free=free)
        zones = [ZoneState(n, i, present[i], managed[i], wm[i], prot[i], free[i])
                 for i, n in enumerate(names)]
        model = cls(zones, names, **kw)
        model.min_free_kbytes = min_free_kbytes
        return model

    @classmethod
    def from_zoneinfo(cls, zones: Sequence, min_free_kbytes: int, watermark_scale_factor: int,
                      lowmem_reserve_ratio: Sequence[int], **kw) -> WatermarkModel:
        """Node 0 of a parsed /proc/zoneinfo, with its managed and free pages."""
        node0 = [z for z in zones if z.node == zones[0].node]
        kw.setdefault("free", [z.pages_free for z in node0])
        return cls.from_managed([z.name for z in node0], [z.managed for z in node0],
                                present=[z.present for z in node0],
                                min_free_kbytes=min_free_kbytes,
                                watermark_scale_factor=watermark_scale_factor,
                                lowmem_reserve_ratio=lowmem_reserve_ratio, **kw)

    @classmethod
    def from_snapshot(cls, **kw) -> WatermarkModel:
        """The bundled snapshot's machine, with its real free pages per zone."""
        from kmmlib.procfs.source import snapshot
        from kmmlib.procfs.zoneinfo import parse_zoneinfo

        src = snapshot()
        kw.setdefault("reclaimable", _meminfo_pages(src.read("meminfo"),
                                                    "Active(file)", "Inactive(file)"))
        return cls.from_zoneinfo(parse_zoneinfo(src.read("zoneinfo")),
                                 int(src.read("min_free_kbytes")),
                                 int(src.read("watermark_scale_factor")),
                                 [int(x) for x in src.read("lowmem_reserve_ratio").split()],
                                 **kw)

    @classmethod
    def one_zone(cls, pages: int = 1 << 18, **kw) -> WatermarkModel:
        """A 64-bit machine whose RAM is one ZONE_NORMAL of ``pages`` pages (1 GiB by default):
        the plainest picture of min, low and high."""
        kw.setdefault("reclaimable", pages // 4)
        return cls.from_managed(("Normal", "Movable"), (pages, 0), present=(pages, 0), **kw)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def parse_gfp(gfp: int | str) -> int:
        return _gfp.parse_gfp(gfp) if isinstance(gfp, str) else int(gfp)

    def zone(self, name: str) -> ZoneState:
        for z in self.zones:
            if z.name == name:
                return z
        raise BadRequest(f"no zone {name!r}; zones: {', '.join(self.zone_names)}")

    def zonelist(self) -> list[ZoneState]:
        """``build_zonerefs_node()``: populated zones, highest index first."""
        return [z for z in reversed(self.zones) if z.present > 0]

    def gfp_zone(self, gfp: int) -> int:
        return _gfp.gfp_zone(gfp, self.zone_names)

    def _emit(self, kind: str, text: str, **data) -> None:
        if self.events.active:
            self.events.emit(kind, text, **data)

    # -- the allocator's decisions -----------------------------------------------------------
    def _zone_ok(self, z: ZoneState, order: int, alloc_flags: int, highest: int) -> bool:
        if not z.managed or z.free < (1 << order):
            return False
        mark = z.wmark[alloc_flags & ALLOC_WMARK_MASK]
        return zone_watermark_ok(z.free, order, mark, z.lowmem_reserve, highest, alloc_flags,
                                 free_blocks=[1] * (order + 1))

    def get_page_from_freelist(self, order: int, alloc_flags: int, highest: int,
                               lines: list[str] | None = None) -> ZoneState | None:
        """``get_page_from_freelist()``: the first zone of the zonelist, from ``highest`` down,
        that passes the watermark check."""
        wname = WMARK_NAMES[alloc_flags & ALLOC_WMARK_MASK]
        for z in self.zonelist():
            if z.idx > highest:
                continue
            ok = self._zone_ok(z, order, alloc_flags, highest)
            if lines is not None:
                mark = watermark_reserve_min(z.wmark[alloc_flags & ALLOC_WMARK_MASK],
                                             alloc_flags)
                res = z.lowmem_reserve[highest]
                need = f"{wname} {mark}" + (f" + protection {res}" if res else "")
                if mark != z.wmark[alloc_flags & ALLOC_WMARK_MASK]:
                    need += f" (reserves: {wname} lowered from "\
                            f"{z.wmark[alloc_flags & ALLOC_WMARK_MASK]})"
                lines.append(f"  {z.name:<8} free {z.free:>8} {'>' if ok else '≤'} {need}"
                             f"  {'✔ take it' if ok else '✘ next zone'}")
            if ok:
                return z
        return None

    def pgdat_balanced(self, order: int = 0, highest: int | None = None) -> bool:
        """``pgdat_balanced()`` (mm/vmscan.c): kswapd may sleep once *any* managed zone up to
        ``highest`` is above its high watermark plus ``lowmem_reserve[highest]``."""
        highest = self.kswapd_highest_zoneidx if highest is None else highest
        managed = [z for z in self.zones[:highest + 1] if z.managed]
        if not managed:
            return True
        return any(zone_watermark_ok(z.free, order, z.wmark.high, z.lowmem_reserve, highest,
                                     free_blocks=[1] * (order + 1)) for z in managed)

    def decide(self, gfp: int | str, order: int = 0) -> AllocDecision:
        """What an allocation would do now, without doing it."""
        return self._alloc(self.parse_gfp(gfp), order, dry_run=True)

    def _alloc(self, gfp: int, order: int, dry_run: bool = False,
               narrate: bool = True) -> AllocDecision:
        if not 0 <= order <= 10:
            raise BadRequest(f"invalid order {order}")
        highest = self.gfp_zone(gfp)
        lines = [f"{_gfp.format_gfp(gfp)} order {order}: zones up to "
                 f"{self.zone_names[highest]}, zonelist "
                 + " → ".join(z.name for z in self.zonelist() if z.idx <= highest)] \
            if narrate else None

        def done(path: str, z: ZoneState | None, wake: bool) -> AllocDecision:
            if not dry_run and z is not None:
                z.free -= 1 << order
                self.allocated += 1 << order
            return AllocDecision(gfp, order, highest, path, z.name if z else None, wake,
                                 lines or [])

        # Fast path: the low watermark.
        if lines is not None:
            lines.append("fast path, against the low watermark:")
        z = self.get_page_from_freelist(order, ALLOC_WMARK_LOW, highest, lines)
        if z is not None:
            return done("fast", z, False)
        # Slow path: wake kswapd, then the min watermark with the caller's reserves.
        alloc_flags = gfp_to_alloc_flags(gfp, order)
        wake = bool(alloc_flags & ALLOC_KSWAPD)
        if wake and not dry_run:
            self.wakeup_kswapd(order, highest)
        if lines is not None:
            lines.append("slow path: " + ("wake kswapd; " if wake else "may not wake kswapd; ")
                         + "try again against the min watermark:")
        z = self.get_page_from_freelist(order, alloc_flags, highest, lines)
        if z is not None:
            return done("slow", z, wake)
        if not gfp & _gfp.DEFAULT.masks["__GFP_DIRECT_RECLAIM"]:
            if lines is not None:
                lines.append("cannot sleep, so no direct reclaim: the allocation fails (NULL)")
            if not dry_run:
                self.failures += 1
            return done("failed", None, wake)
        if dry_run:
            if lines is not None:
                lines.append("direct reclaim: the caller stalls to reclaim "
                             f"{SWAP_CLUSTER_MAX} pages itself, then retries")
            return done("direct reclaim", None, wake)
        for _ in range(MAX_RECLAIM_RETRIES):
            got = self.reclaim(SWAP_CLUSTER_MAX, highest)
            self.stalls += 1
            if lines is not None:
                lines.append(f"direct reclaim: the caller reclaimed {got} pages itself")
            z = self.get_page_from_freelist(order, alloc_flags, highest, lines)
            if z is not None:
                return done("direct reclaim", z, wake)
            if got == 0:
                break
        if lines is not None:
            lines.append("nothing left to reclaim: the OOM killer would run; NULL")
        self.failures += 1
        return done("failed", None, wake)

    # -- kswapd and reclaim ------------------------------------------------------------------
    def wakeup_kswapd(self, order: int, highest: int) -> None:
        """``wakeup_kswapd()`` (mm/vmscan.c): raise kswapd's target zone, and wake it unless
        the node is already balanced for this request."""
        self.kswapd_highest_zoneidx = max(self.kswapd_highest_zoneidx, highest) \
            if self.kswapd_awake else highest
        if self.kswapd_awake or self.pgdat_balanced(order, highest):
            return
        self.kswapd_awake = True
        self._emit("kswapd_wake", f"kswapd woken: no zone up to {self.zone_names[highest]} "
                   "is above its low watermark", highest_zoneidx=highest, tick=self.tick)

    def reclaim(self, nr_pages: int, highest: int) -> int:
        """Free up to ``nr_pages`` of page cache into zones up to ``highest`` (simplified: the
        highest zone still short of high + protection gets them first)."""
        got = min(nr_pages, self.reclaimable)
        self.reclaimable -= got
        left = got
        eligible = [z for z in self.zonelist() if z.idx <= highest and z.managed]
        for z in eligible:
            want = z.wmark.high + z.lowmem_reserve[highest] + 1 - z.free
            if want > 0 and left:
                put = min(want, left, z.managed - z.free)
                z.free += put
                left -= put
        if left and eligible:
            z = eligible[0]
            put = min(left, z.managed - z.free)
            z.free += put
            left -= put
        self.reclaimable += left      # what found no room stays cached
        return got - left

    def kswapd_run(self) -> int:
        """One pass of kswapd (``balance_pgdat()``): reclaim a batch if the node is not
        balanced, then go back to sleep if it is."""
        if not self.kswapd_awake:
            return 0
        got = 0
        if not self.pgdat_balanced():
            got = self.reclaim(self.kswapd_batch, self.kswapd_highest_zoneidx)
            if got:
                self._emit("kswapd_reclaim", f"kswapd reclaimed {got} pages", pages=got,
                           tick=self.tick)
        if self.pgdat_balanced():
            self.kswapd_awake = False
            self._emit("kswapd_sleep", "kswapd sleeps: a zone is above its high watermark",
                       tick=self.tick)
        elif got == 0:
            self._emit("kswapd_stuck", "kswapd found nothing to reclaim", tick=self.tick)
        return got

    # -- the Stepper interface -----------------------------------------------------------------
    def apply(self, op):
        """Do one operation; see the class docstring for the ops."""
        kind, *args = op if isinstance(op, tuple) else (op,)
        if kind == "set_free":
            name, pages = args[0], int(args[1])
            z = self.zone(name)
            if not 0 <= pages <= z.managed:
                raise BadRequest(f"{name} has {z.managed} managed pages; free must be "
                                 f"0..{z.managed}, not {pages}")
            z.free = pages
            d = self.decide(self.probe_gfp)
            if d.wake_kswapd and not self.kswapd_awake:
                self.wakeup_kswapd(0, d.highest_zoneidx)
            elif self.kswapd_awake and self.pgdat_balanced():
                self.kswapd_awake = False
                self._emit("kswapd_sleep", "kswapd sleeps: a zone is above its high watermark")
            return f"{name} free = {pages} ({z.level()}); {_gfp.format_gfp(self.probe_gfp)} " \
                   f"now: {d.path}" + (f" from {d.zone}" if d.zone else "")
        if kind == "alloc":
            gfp = self.parse_gfp(args[0] if args else self.probe_gfp)
            order = int(args[1]) if len(args) > 1 else 0
            d = self._alloc(gfp, order)
            for line in d.lines:
                self._emit("alloc_step", line)
            if d.zone is None:
                self._emit("alloc_fail", f"page allocation failure: order:{order}, "
                           f"mode:{_gfp.format_gfp(gfp)}")
            return f"{d.path}" + (f" from {d.zone}" if d.zone else ": NULL")
        if kind == "burst":
            pages = int(args[0])
            gfp = self.parse_gfp(args[1] if len(args) > 1 else self.probe_gfp)
            if pages < 0:
                raise BadRequest("a burst allocates a non-negative number of pages")
            self.tick += 1
            # kswapd ran while time passed since the last tick; then this tick's demand.
            self.kswapd_run()
            stalls, failures = self.stalls, self.failures
            for _ in range(pages):
                self._alloc(gfp, 0, narrate=False)
            if self.stalls > stalls:
                self._emit("direct_reclaim", f"{self.stalls - stalls} direct reclaim stall"
                           f"{'s' if self.stalls - stalls != 1 else ''} (free below min)",
                           stalls=self.stalls - stalls, tick=self.tick)
            if self.failures > failures:
                self._emit("alloc_fail", f"{self.failures - failures} allocations failed",
                           tick=self.tick)
            self.trace.append((self.tick, self.zonelist()[0].free, self.kswapd_awake,
                               self.stalls - stalls))
            return f"tick {self.tick}: {pages} pages allocated"
        if kind == "tick":
            self.tick += 1
            return f"tick {self.tick}: kswapd reclaimed {self.kswapd_run()} pages"
        raise BadRequest(f"unknown op {op!r}: use set_free, alloc, burst or tick")

    def render(self) -> str:
        """The zones' free pages against their watermarks, and kswapd's state."""
        state = "awake" if self.kswapd_awake else "asleep"
        lines = [f"kswapd {state} · direct reclaim stalls {self.stalls} · failed "
                 f"{self.failures} · page cache left {self.reclaimable}",
                 f"{'zone':<8}{'free':>9}{'min':>8}{'low':>8}{'high':>8}  where"]
        for z in self.zones:
            if not z.present:
                continue
            w = z.wmark
            lines.append(f"{z.name:<8}{z.free:>9}{w.min:>8}{w.low:>8}{w.high:>8}  {z.level()}")
        return "\n".join(lines)

    def snapshot_free(self) -> dict[str, int]:
        return {z.name: z.free for z in self.zones if z.present}


def burst_ops(seed: int = 1, ticks: int = 120, *, base: int = 60, burst: int = 600,
              start: int = 40, length: int = 30, gfp: str = "GFP_KERNEL") -> list[tuple]:
    """A seeded allocation burst: ``ticks`` ops ``("burst", pages, gfp)`` with about ``base``
    pages a tick, and about ``burst`` pages a tick from ``start`` for ``length`` ticks."""
    import random

    if min(ticks, base, burst, start, length) < 0:
        raise BadRequest("burst_ops parameters must not be negative")
    rng = random.Random(seed)
    ops = []
    for t in range(ticks):
        mean = burst if start <= t < start + length else base
        ops.append(("burst", max(0, int(rng.gauss(mean, mean / 4))), gfp))
    return ops


def _meminfo_pages(text: str, *fields: str) -> int:
    kb = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines() if ":" in line}
    return sum(kb[f] for f in fields) >> (PAGE_SHIFT - 10)


@dataclass
class BurstHistory:
    """Per tick of :func:`run_burst`: each zone's free pages after the tick, whether kswapd was
    awake during it, and the direct reclaim stalls and failures it saw."""

    zone: str
    wmark: Watermarks
    demand: list[int]
    free: list[int]
    kswapd_awake: list[bool]
    stalls: list[int]
    failures: list[int]

    def summary(self) -> str:
        """A few checked lines: when kswapd woke and slept, how often callers stalled."""
        wakes = [t for t in range(len(self.free))
                 if self.kswapd_awake[t] and (t == 0 or not self.kswapd_awake[t - 1])]
        sleeps = [t for t in range(1, len(self.free))
                  if not self.kswapd_awake[t] and self.kswapd_awake[t - 1]]
        stall_ticks = [t for t, s in enumerate(self.stalls) if s]
        w = self.wmark
        lines = [f"{self.zone}: min {w.min}, low {w.low}, high {w.high}; {len(self.free)} ticks, "
                 f"{sum(self.demand)} pages asked for",
                 f"free pages: lowest {min(self.free)}, highest {max(self.free)}",
                 f"kswapd woke {len(wakes)} times (first at tick {wakes[0] if wakes else '-'}), "
                 f"went back to sleep {len(sleeps)} times; awake {sum(self.kswapd_awake)} ticks",
                 f"direct reclaim: {sum(self.stalls)} stalls in {len(stall_ticks)} ticks"
                 + (f" (ticks {stall_ticks[0]}..{stall_ticks[-1]})" if stall_ticks else ""),
                 f"failed allocations: {sum(self.failures)}"]
        return "\n".join(lines)


def run_burst(model: WatermarkModel, ops: Sequence[tuple], zone: str | None = None
              ) -> BurstHistory:
    """Apply ``ops`` (e.g. :func:`burst_ops`) to ``model`` and record one zone each tick."""
    z = model.zone(zone) if zone else model.zonelist()[0]
    hist = BurstHistory(z.name, z.wmark, [], [], [], [], [])
    for op in ops:
        stalls, failures = model.stalls, model.failures
        awake_before = model.kswapd_awake
        model.apply(op)
        hist.demand.append(int(op[1]) if op[0] == "burst" else 0)
        hist.free.append(z.free)
        hist.kswapd_awake.append(model.kswapd_awake or awake_before)
        hist.stalls.append(model.stalls - stalls)
        hist.failures.append(model.failures - failures)
    return hist

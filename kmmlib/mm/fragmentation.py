"""How fragmented is a zone? The kernel's indices, pageblock maps, and the mobility experiment.

**The kernel's numbers** (``mm/vmstat.c``, Linux 6.18), all computed from ``nr_free`` per order
(what /proc/buddyinfo prints), by ``fill_contig_page_info()`` for a target order *o*:
free pages, free blocks, and the number of order-*o* pieces the free blocks could give.

- ``fragmentation_index(o)`` (``__fragmentation_index()``), in thousandths: -1000 when an
  order-*o* request would succeed; 0 when there are no free blocks at all; otherwise
  ``1000 - (1000 + free_pages * 1000 / 2^o) / free_blocks``: near 0 the request fails for lack
  of memory (reclaim helps), near 1000 it fails although plenty is free, in pieces too small
  (compaction helps). ``compaction_suitable()`` compares it with ``vm.extfrag_threshold`` (500).
  Shown in ``/sys/kernel/debug/extfrag/extfrag_index``.
- ``unusable_free_index(o)``: the share of free memory (in thousandths) sitting in blocks
  smaller than order *o*; ``/sys/kernel/debug/extfrag/unusable_index``.
- ``extfrag_for_order(o)``: the same share in percent; proactive compaction's
  ``fragmentation_score`` is it for the THP order, weighted by the zone's size.

**Pageblocks**: :func:`pageblock_map` counts, for every pageblock, its migrate type, its free
pages and its used pages by what they are (page_owner's migratetype of each allocation).
A pageblock is *mixed* when it holds an allocation of another type than its own
(:func:`mixed_pageblocks` is ``pagetypeinfo_showmixedcount_print()`` of ``mm/page_owner.c``,
the third table of /proc/pagetypeinfo on CONFIG_PAGE_OWNER kernels booted with
``page_owner=on``), and *pinned* when it
holds any unmovable or reclaimable page: then no amount of compaction can free it whole.

**The experiment** (:func:`mobility_workload`, :func:`run_mobility_experiment`): the same
seeded mix of long-lived kernel allocations and churning user pages, run on a zone with
grouping by mobility on and off (``page_group_by_mobility_disabled``), sampling the indices
as it goes. :class:`PageblockModel` steps it for the chapter's widget.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from kmmlib.errors import BadRequest
from kmmlib.events import Collect, EventLog
from kmmlib.mm.migratetype import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    migratetype_names,
    parse_migratetype,
)
from kmmlib.mm.page_flags import PGTY_buddy

COMPACTION_HPAGE_ORDER = 9          # HPAGE_PMD_ORDER on x86_64 with 4 KiB pages
_PGTY_BUDDY_WORD = PGTY_buddy << 24  # page->page_type of a free block's head (PageBuddy)


def _nr_free(source) -> list[int]:
    """``nr_free`` per order from a Zone, a BuddyInfo line or a plain sequence."""
    if hasattr(source, "nr_free"):
        nr = source.nr_free
        return list(nr() if callable(nr) else nr)
    nr = list(source)
    if any(not isinstance(n, int) or n < 0 for n in nr):
        raise BadRequest(f"nr_free must be counts (non-negative integers), not {nr!r}")
    return nr


@dataclass(frozen=True)
class ContigPageInfo:
    """``struct contig_page_info``: what the free lists hold, seen from one target order."""

    free_pages: int
    free_blocks_total: int
    free_blocks_suitable: int


def fill_contig_page_info(nr_free: Sequence[int], suitable_order: int) -> ContigPageInfo:
    """``fill_contig_page_info()``: free pages, free blocks, and how many order-
    ``suitable_order`` pieces the blocks of that order and above could be split into."""
    nr = _nr_free(nr_free)
    free_pages = sum(n << o for o, n in enumerate(nr))
    suitable = sum(n << (o - suitable_order) for o, n in enumerate(nr) if o >= suitable_order)
    return ContigPageInfo(free_pages, sum(nr), suitable)


def _check_order(order: int, nr: list[int]) -> None:
    if not isinstance(order, int) or isinstance(order, bool) or order < 0:
        raise BadRequest(f"order must be a non-negative integer, not {order!r}")
    if order >= len(nr):
        raise BadRequest(f"order {order} is above MAX_PAGE_ORDER ({len(nr) - 1}): the kernel "
                         "WARNs and returns 0")


def fragmentation_index(nr_free, order: int) -> int:
    """``fragmentation_index()`` → ``__fragmentation_index()`` for one zone's ``nr_free``:
    -1000 if an order-``order`` request would succeed, 0 if nothing is free, else
    ``1000 - (1000 + free_pages * 1000 / 2^order) / free_blocks`` (integer divisions)."""
    nr = _nr_free(nr_free)
    _check_order(order, nr)
    info = fill_contig_page_info(nr, order)
    if not info.free_blocks_total:
        return 0
    if info.free_blocks_suitable:
        return -1000
    requested = 1 << order
    return 1000 - (1000 + info.free_pages * 1000 // requested) // info.free_blocks_total


def unusable_free_index(nr_free, order: int) -> int:
    """``unusable_free_index()``: thousandths of the free memory that is in blocks too small
    for an order-``order`` request (1000 when nothing is free)."""
    nr = _nr_free(nr_free)
    _check_order(order, nr)
    info = fill_contig_page_info(nr, order)
    if not info.free_pages:
        return 1000
    return (info.free_pages - (info.free_blocks_suitable << order)) * 1000 // info.free_pages


def extfrag_for_order(nr_free, order: int) -> int:
    """``extfrag_for_order()``: the percentage of free memory unusable for ``order`` (0 when
    nothing is free) — proactive compaction's per-zone fragmentation score at the THP order."""
    nr = _nr_free(nr_free)
    _check_order(order, nr)
    info = fill_contig_page_info(nr, order)
    if not info.free_pages:
        return 0
    return (info.free_pages - (info.free_blocks_suitable << order)) * 100 // info.free_pages


def fragmentation_score_zone_weighted(nr_free, present_pages: int,
                                      node_present_pages: int) -> int:
    """``fragmentation_score_zone_weighted()``: the zone's extfrag_for_order at the THP order,
    scaled by its share of the node, so that small zones (DMA32) do not trigger proactive
    compaction. kcompactd compacts a node whose summed score is above
    ``min(w + min(10, w // 2), 100)`` with ``w = 100 - vm.compaction_proactiveness`` (6.16+;
    before, ``min(max(w, 5) + 10, 100)``): 90 with the default proactiveness of 20."""
    score = present_pages * extfrag_for_order(nr_free, COMPACTION_HPAGE_ORDER)
    return score // (node_present_pages + 1)


def largest_free_order(nr_free) -> int:
    """The highest order with a free block (-1 when nothing is free): the biggest request that
    could be served without compaction."""
    nr = _nr_free(nr_free)
    return max((o for o, n in enumerate(nr) if n), default=-1)


def free_pages_by_order(nr_free) -> list[int]:
    """Free pages held in blocks of each order (``nr_free << order``)."""
    return [n << o for o, n in enumerate(_nr_free(nr_free))]


def _fmt_index(index: int, width: int) -> str:
    """C's ``"%d.%03d"`` of ``index / 1000`` and ``index % 1000`` (both truncate to zero)."""
    whole = int(index / 1000)
    return f"{whole:{width}d}.{abs(index) % 1000:03d} "


def render_extfrag_index(zones) -> str:
    """``/sys/kernel/debug/extfrag/extfrag_index`` (``extfrag_show_print()``) for populated
    zones: ``Node N, zone NAME`` then ``"%2d.%03d "`` per order (-1.000: would succeed).
    ``zones`` are Zones or BuddyInfo lines (anything with node, a zone name and nr_free)."""
    out = []
    for z in zones:
        nr = _nr_free(z)
        out.append(f"Node {_node(z)}, zone {_zone_name(z):>8} "
                   + "".join(_fmt_index(fragmentation_index(nr, o), 2) for o in range(len(nr)))
                   + "\n")
    return "".join(out)


def render_unusable_index(zones) -> str:
    """``/sys/kernel/debug/extfrag/unusable_index`` (``unusable_show_print()``):
    ``"%d.%03d "`` per order."""
    out = []
    for z in zones:
        nr = _nr_free(z)
        out.append(f"Node {_node(z)}, zone {_zone_name(z):>8} "
                   + "".join(_fmt_index(unusable_free_index(nr, o), 1) for o in range(len(nr)))
                   + "\n")
    return "".join(out)


def _node(z) -> int:
    return getattr(z, "node", 0)


def _zone_name(z) -> str:
    name = getattr(z, "zone", None)
    return name if isinstance(name, str) else getattr(z, "name", "?")


# -- pageblocks ------------------------------------------------------------------------------

# Page states in a pageblock map, beside the allocation's migratetype (0..MIGRATE_TYPES-1).
FREE, PCP, RESERVED = MIGRATE_TYPES, MIGRATE_TYPES + 1, MIGRATE_TYPES + 2


@dataclass
class PageblockMap:
    """Every pageblock of a zone: ``migratetype[i]`` (its pageblock bits), ``start_pfn[i]``,
    and ``pages[i, k]``: pages that are allocations of type k (k < MIGRATE_TYPES), free in
    the buddy lists (FREE), on per-cpu lists (PCP) or reserved (RESERVED)."""

    pageblock_order: int
    start_pfn: list[int]
    migratetype: list[int]
    pages: object                      # numpy array [nr_pageblocks, MIGRATE_TYPES + 3]

    @property
    def nr_pageblocks(self) -> int:
        return len(self.migratetype)

    def used(self, i: int) -> int:
        """Pages of pageblock i in use (allocated)."""
        return int(self.pages[i, :MIGRATE_TYPES].sum())

    def free(self, i: int) -> int:
        return int(self.pages[i, FREE] + self.pages[i, PCP])

    def is_mixed(self, i: int) -> bool:
        """Holds an allocation whose type is not the pageblock's own."""
        return bool(self.mixed_mask()[i])

    def is_pinned(self, i: int) -> bool:
        """Holds an unmovable or reclaimable allocation: compaction cannot empty it."""
        return bool(self.pinned_mask()[i])

    def mixed_mask(self):
        """Per pageblock: does it hold an allocation of another type than its own?"""
        import numpy as np

        used = self.pages[:, :MIGRATE_TYPES] > 0
        own = np.zeros_like(used)
        own[np.arange(len(self.migratetype)), self.migratetype] = True
        return (used & ~own).any(axis=1)

    def pinned_mask(self):
        """Per pageblock: does it hold an allocation that is not movable?"""
        used = self.pages[:, :MIGRATE_TYPES] > 0
        used[:, MIGRATE_MOVABLE] = False
        return used.any(axis=1)

    def count_by_type(self) -> list[int]:
        """Pageblocks of each migratetype (/proc/pagetypeinfo's "Number of blocks type")."""
        return [self.migratetype.count(mt) for mt in range(MIGRATE_TYPES)]

    def nr_mixed(self) -> int:
        return int(self.mixed_mask().sum())

    def nr_pinned(self) -> int:
        return int(self.pinned_mask().sum())

    def nr_free_whole(self) -> int:
        """Pageblocks with no page in use at all (and none reserved)."""
        busy = self.pages[:, :MIGRATE_TYPES].sum(axis=1) + self.pages[:, RESERVED]
        return int((busy == 0).sum())

    def text(self, width: int = 16) -> str:
        """One character per pageblock, rows of ``width``: the type's initial (``U`` ``M``
        ``R`` ``H`` ``I``), or ``.`` when no page of it is in use; under each row, ``!``
        marks the mixed pageblocks."""
        letters = "UMRHI"
        rows = []
        for r in range(0, self.nr_pageblocks, width):
            idx = range(r, min(r + width, self.nr_pageblocks))
            rows.append(f"{self.start_pfn[r]:>8} "
                        + "".join("." if self.used(i) == 0 else letters[self.migratetype[i]]
                                  for i in idx))
            marks = "".join("!" if self.is_mixed(i) else " " for i in idx)
            if marks.strip():
                rows.append(f"{'mixed':>8} {marks}".rstrip())
        return "\n".join(rows)


def pageblock_map(zone) -> PageblockMap:
    """Count every pageblock's pages by state, vectorised over the zone's page_owner arrays
    (cheap enough to sample a 128 MiB zone hundreds of times)."""
    import numpy as np

    n = zone.spanned_pages
    zs = zone.zone_start_pfn
    pb_order = zone.pageblock_order
    pb_base = zs & ~(zone.pageblock_nr_pages - 1)
    state = np.full(n, RESERVED, dtype=np.uint8)
    ao = np.frombuffer(zone._alloc_order, dtype=np.uint8)
    heads = np.nonzero(ao != 0xFF)[0]
    if len(heads):
        sizes = np.left_shift(1, ao[heads].astype(np.int64))
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        idx = np.repeat(heads, sizes) + offsets
        keep = idx < n
        mts = np.frombuffer(zone._alloc_mt, dtype=np.uint8)[heads]
        state[idx[keep]] = np.repeat(mts, sizes)[keep]
    # Free blocks: their head pages are PageBuddy with the order in page->private.
    mm = zone.mem_map
    lo = zs - mm.start_pfn
    ptype = np.frombuffer(mm.page_type, dtype=np.uint32)[lo:lo + n]
    fheads = np.nonzero(ptype == _PGTY_BUDDY_WORD)[0]
    if len(fheads):
        orders = np.frombuffer(mm.private, dtype=np.uint64)[lo:lo + n][fheads].astype(np.int64)
        sizes = np.left_shift(1, orders)
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        state[np.repeat(fheads, sizes) + offsets] = FREE
    for pcp in zone.pcp:
        for pindex, lst in enumerate(pcp.lists):
            o = zone.pindex_to_order(pindex)
            for p in lst:
                state[p - zs:p - zs + (1 << o)] = PCP
    # Pages neither free nor heading/inside a recorded allocation nor reserved: tails of a
    # block freed in part (___free_pages with an extra reference) — count them as unmovable.
    reserved = np.zeros(n, dtype=bool)
    for s, e in zone.reserved:
        reserved[s - zs:e - zs] = True
    state[(state == RESERVED) & ~reserved] = MIGRATE_UNMOVABLE
    block = (np.arange(n) + (zs - pb_base)) >> pb_order
    nr_pb = int(block[-1]) + 1
    pages = np.zeros((nr_pb, MIGRATE_TYPES + 3), dtype=np.int64)
    np.add.at(pages, (block, state.astype(np.int64)), 1)
    starts = [pb_base + (i << pb_order) for i in range(nr_pb)]
    mts = [zone.get_pageblock_migratetype(max(s, zs)) for s in starts]
    return PageblockMap(pb_order, starts, mts, pages)


def mixed_pageblocks(zone) -> list[int]:
    """``pagetypeinfo_showmixedcount_print()`` (mm/page_owner.c): per pageblock migratetype,
    how many pageblocks hold at least one allocation whose ``gfp_migratetype()`` differs —
    the "Number of mixed blocks" table. With grouping by mobility disabled every gfp's
    migratetype reads Unmovable, as it does in the kernel."""
    pbm = pageblock_map(zone)
    counts = [0] * MIGRATE_TYPES
    disabled = zone.page_group_by_mobility_disabled
    for i in range(pbm.nr_pageblocks):
        mt = pbm.migratetype[i]
        types = [k for k in range(MIGRATE_TYPES) if pbm.pages[i, k]]
        if disabled:
            types = [MIGRATE_UNMOVABLE] if types else []
        if any(k != mt for k in types):
            counts[mt] += 1
    return counts


def page_map_text(zone, width: int = 64) -> str:
    """One character per page, rows of ``width``: ``M`` movable, ``U`` unmovable, ``R``
    reclaimable, ``H`` high-atomic allocation, ``.`` free, ``p`` on a per-cpu list, ``r``
    reserved; a ``|`` at each pageblock boundary. For small teaching zones."""
    zs = zone.zone_start_pfn
    n = zone.spanned_pages
    state = ["r"] * n
    letters = "UMRHI"
    for pfn, order in zone.allocated_blocks().items():
        state[pfn - zs:pfn - zs + (1 << order)] = \
            letters[zone.allocation_migratetype(pfn)] * (1 << order)
    for pfn, order, _ in zone.free_blocks():
        state[pfn - zs:pfn - zs + (1 << order)] = "." * (1 << order)
    for pcp in zone.pcp:
        for pindex, lst in enumerate(pcp.lists):
            o = zone.pindex_to_order(pindex)
            for p in lst:
                state[p - zs:p - zs + (1 << o)] = "p" * (1 << o)
    reserved = [False] * n
    for s, e in zone.reserved:
        reserved[s - zs:e - zs] = [True] * (e - s)
    nr = zone.pageblock_nr_pages
    rows = []
    for r in range(0, n, width):
        line = []
        for i in range(r, min(r + width, n)):
            if i != r and (zs + i) % nr == 0:
                line.append("|")
            line.append(state[i] if state[i] != "r" or reserved[i] else "U")
        rows.append(f"{zs + r:>6} {''.join(line)}")
    return "\n".join(rows)


# -- the mobility-grouping experiment ----------------------------------------------------------

@dataclass(frozen=True)
class WorkloadSpec:
    """A long mixed workload in cycles, on a zone of ``nr_pages``: user memory (movable pages)
    fills the zone up to ``user_high`` of it; then a big job exits and user memory drops to
    ``user_low``; then compaction runs (as kcompactd would, or a huge-page request's direct
    compaction), ``cycles`` times. Meanwhile kernel memory (unmovable, some reclaimable: slab,
    page tables) stays near ``kernel`` of the zone, allocated and freed slowly: ``kernel_ops``
    of the requests are kernel ones."""

    nr_pages: int = 16384
    cycles: int = 3
    steps_per_cycle: int = 40000
    user_high: float = 0.88
    user_low: float = 0.20
    kernel: float = 0.10
    kernel_ops: float = 0.12
    reclaimable: float = 0.25       # share of kernel allocations that are reclaimable
    compact: bool = True
    seed: int = 1

    @property
    def steps(self) -> int:
        return self.cycles * self.steps_per_cycle


def describe_request(op: Sequence) -> str:
    """A workload request in words: ``alloc Unmovable order 0 (#12)``, ``free #12``."""
    if op and op[0] == "alloc" and len(op) == 4:
        return f"alloc {migratetype_names[parse_migratetype(op[2])]} order {op[1]} (#{op[3]})"
    if op and op[0] == "free" and len(op) == 2:
        return f"free #{op[1]}"
    if op and op[0] == "compact":
        return "compact the zone" + (f" for order {op[1]}" if len(op) > 1 else "")
    return " ".join(map(str, op))


def mobility_workload(spec: WorkloadSpec = WorkloadSpec()) -> list[tuple]:
    """The requests of the experiment, independent of where pages land: ``("alloc", order,
    migratetype, handle)``, ``("free", handle)`` and ``("compact",)``. User requests are
    movable pages (order 0); kernel requests are unmovable or reclaimable, order 0 (one in
    five order 1). Each class allocates while below its target
    and frees a random page of its own otherwise; compaction runs at 90 % of each cycle (in
    the low phase). Deterministic for ``spec.seed``."""
    rng = random.Random(spec.seed)
    n = spec.nr_pages
    ops: list[tuple] = []
    held: dict[bool, list[tuple[int, int]]] = {True: [], False: []}   # kernel? → handles
    used = {True: 0, False: 0}
    handle = 0
    per = spec.steps_per_cycle
    for step in range(spec.steps):
        if spec.compact and step % per == per * 9 // 10:
            ops.append(("compact",))
        user_target = int(n * (spec.user_high if step % per < per // 2 else spec.user_low))
        kernel = rng.random() < spec.kernel_ops
        target = int(n * spec.kernel) if kernel else user_target
        pool = held[kernel]
        if used[kernel] < target or not pool:
            if kernel:
                mt = MIGRATE_RECLAIMABLE if rng.random() < spec.reclaimable else MIGRATE_UNMOVABLE
                order = 1 if rng.random() < 0.2 else 0
            else:
                mt, order = MIGRATE_MOVABLE, 0
            ops.append(("alloc", order, mt, handle))
            pool.append((handle, 1 << order))
            used[kernel] += 1 << order
            handle += 1
        else:
            k = rng.randrange(len(pool))
            pool[k], pool[-1] = pool[-1], pool[k]
            h, pages = pool.pop()
            ops.append(("free", h))
            used[kernel] -= pages
    return ops


class PageblockModel:
    """A zone driven by a workload of handles, for the experiment, the stepper and the widget.

    ``apply(("alloc", order, mt, handle))`` allocates and remembers where the handle's pages
    are (nowhere if the allocation failed); ``apply(("free", handle))`` frees them;
    ``apply(("compact"[, order]))`` runs :func:`kmmlib.mm.compaction.compact_zone` (ignoring
    pageblock types for its targets, as direct compaction does at its highest priority) and
    follows the pages it moves. The model's own :attr:`events` get one line per request plus
    the anti-fragmentation events (claims, steals, the ``extfrag`` facts, compaction's
    result), not every split and merge. Grouping off (``grouping=False``) is the kernel's
    ``page_group_by_mobility_disabled``: every request takes Unmovable lists, though its pages
    are still what they are (page_owner's type, which the pageblock map shows)."""

    KEEP = ("claim", "claim_refused", "steal", "extfrag", "highatomic", "alloc_fail",
            "compact_end", "kswapd")

    def __init__(self, nr_pages: int = 16384, *, pageblock_order: int = 9,
                 grouping: bool = True, start_pfn: int = 0, max_order: int = 10):
        from kmmlib.mm.page_alloc import Zone

        self.zone = Zone(nr_pages, start_pfn, pageblock_order=pageblock_order,
                         max_order=max_order, page_group_by_mobility_disabled=not grouping)
        self.events = EventLog()
        self.handles: dict[int, tuple[int, int]] = {}     # handle → (pfn, order)
        self.owner: dict[int, int] = {}                    # pfn → handle
        self.failed = 0
        self.compactions: list = []

    @property
    def grouping(self) -> bool:
        return not self.zone.page_group_by_mobility_disabled

    def alloc(self, order: int, mt: int, handle: int) -> int | None:
        pfn = self.zone.alloc(order, mt)
        if pfn is None:
            self.failed += 1
        else:
            self.handles[handle] = (pfn, order)
            self.owner[pfn] = handle
        return pfn

    def free(self, handle: int) -> int | None:
        got = self.handles.pop(handle, None)
        if got is None:
            return None
        del self.owner[got[0]]
        self.zone.free(*got)
        return got[0]

    def compact(self, order: int = -1):
        from kmmlib.mm.compaction import compact_zone

        cc = compact_zone(self.zone, order, migrate=self._moved, ignore_block_suitable=True)
        self.compactions.append(cc)
        return cc

    def _moved(self, old: int, new: int, order: int) -> None:
        h = self.owner.pop(old)
        self.owner[new] = h
        self.handles[h] = (new, order)

    def apply(self, op: Sequence) -> str:
        """Do one request; returns what came of it (``pfn 1024``, ``NULL``, ``freed``, or
        compaction's result)."""
        z = self.zone
        verb = op[0] if op else None
        with Collect(z.events) as seen:
            if verb == "alloc" and len(op) == 4:
                _, order, mt, h = op
                pfn = self.alloc(order, parse_migratetype(mt), h)
                result = "NULL" if pfn is None else f"pfn {pfn}"
            elif verb == "free" and len(op) == 2:
                pfn = self.free(op[1])
                result = f"freed pfn {pfn}" if pfn is not None else "nothing to free (it failed)"
            elif verb == "compact" and len(op) in (1, 2):
                cc = self.compact(-1 if len(op) == 1 else op[1])
                result = str(cc.result)
            else:
                raise BadRequest(f"unknown operation {op!r}: use ('alloc', order, mt, handle), "
                                 "('free', handle) or ('compact'[, order])")
        for ev in seen:
            if ev.kind in self.KEEP:
                self.events.emit(ev.kind, ev.text, **ev.data)
        return result

    def render(self) -> str:
        """The pageblock map (letters by type, ``!`` under mixed ones) and the numbers."""
        return f"{self.pageblock_map().text()}\n{self.summary()}"

    def pageblock_map(self) -> PageblockMap:
        return pageblock_map(self.zone)

    def summary(self) -> str:
        z = self.zone
        nr = z.nr_free()
        pbm = self.pageblock_map()
        by_type = ", ".join(f"{migratetype_names[mt]} {n}"
                            for mt, n in enumerate(pbm.count_by_type()) if n)
        return (f"pageblocks: {by_type}; mixed {pbm.nr_mixed()}, holding kernel pages "
                f"{pbm.nr_pinned()}\nfree pages {z.nr_free_pages}, largest free order "
                f"{largest_free_order(nr)}, fragmentation index at order {z.pageblock_order}: "
                f"{fragmentation_index(nr, z.pageblock_order)}; claims {z.nr_claims}, "
                f"steals {z.nr_steals}")


@dataclass
class ExperimentResult:
    """One run of the workload: samples every ``every`` requests, and the final model."""

    grouping: bool
    steps: list[int] = field(default_factory=list)
    fragindex: list[int] = field(default_factory=list)      # at pageblock_order
    unusable: list[int] = field(default_factory=list)       # unusable_free_index, same order
    largest_order: list[int] = field(default_factory=list)
    huge_blocks: list[int] = field(default_factory=list)    # free pageblock-sized blocks
    pinned: list[int] = field(default_factory=list)         # pageblocks holding kernel pages
    mixed: list[int] = field(default_factory=list)
    free_pages: list[int] = field(default_factory=list)
    compacted_at: list[int] = field(default_factory=list)   # sample index after compaction
    model: PageblockModel | None = None

    @property
    def failed(self) -> int:
        return self.model.failed if self.model else 0

    def sample(self, i: int) -> dict:
        """Sample ``i`` (negative counts from the end) as a dict of every series."""
        return {name: getattr(self, name)[i] for name in
                ("steps", "fragindex", "unusable", "largest_order", "huge_blocks", "pinned",
                 "mixed", "free_pages")}

    def after_compactions(self) -> list[dict]:
        """The samples taken right after each compaction run."""
        return [self.sample(i) for i in self.compacted_at]


def run_mobility_experiment(grouping: bool, spec: WorkloadSpec = WorkloadSpec(),
                            every: int = 500, ops: list[tuple] | None = None
                            ) -> ExperimentResult:
    """Run :func:`mobility_workload` on a fresh zone with grouping by mobility on or off,
    sampling every ``every`` requests (and right after each compaction): the fragmentation
    and unusable-free-space indices at pageblock_order, the largest free order, the free
    pageblock-sized blocks, and the pageblocks that hold kernel pages."""
    ops = mobility_workload(spec) if ops is None else ops
    model = PageblockModel(spec.nr_pages, grouping=grouping)
    z = model.zone
    pb = z.pageblock_order
    res = ExperimentResult(grouping, model=model)

    def sample(step: int) -> None:
        nr = z.nr_free()
        pbm = pageblock_map(z)
        res.steps.append(step)
        res.fragindex.append(fragmentation_index(nr, pb))
        res.unusable.append(unusable_free_index(nr, pb))
        res.largest_order.append(largest_free_order(nr))
        res.huge_blocks.append(sum(n << (o - pb) for o, n in enumerate(nr) if o >= pb))
        res.pinned.append(pbm.nr_pinned())
        res.mixed.append(pbm.nr_mixed())
        res.free_pages.append(z.nr_free_pages)

    sample(0)
    alloc, free = model.alloc, model.free
    for n, op in enumerate(ops, 1):
        verb = op[0]
        if verb == "alloc":
            alloc(op[1], op[2], op[3])
        elif verb == "free":
            free(op[1])
        else:
            model.compact()
            sample(n)
            res.compacted_at.append(len(res.steps) - 1)
            continue
        if n % every == 0 or n == len(ops):
            sample(n)
    return res


__all__ = ["ContigPageInfo", "ExperimentResult", "PageblockMap", "PageblockModel",
           "WorkloadSpec", "extfrag_for_order", "fill_contig_page_info",
           "fragmentation_index", "fragmentation_score_zone_weighted", "free_pages_by_order",
           "largest_free_order", "mixed_pageblocks", "mobility_workload", "page_map_text",
           "pageblock_map", "render_extfrag_index", "render_unusable_index",
           "run_mobility_experiment", "unusable_free_index", "describe_request"]

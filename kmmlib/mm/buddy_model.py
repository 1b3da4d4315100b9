"""The buddy stepper's model: a small zone, operations on it, and a text picture of it.

:class:`BuddyModel` is what the chapter 06 widget steps through (with
:class:`kmmlib.stepper.Stepper`, which gives it ``step()``, ``back()``, ``reset()`` and
``state_text()``). Operations are tuples:

- ``("alloc", order)`` or ``("alloc", order, "Unmovable")`` → the pfn ``alloc_pages`` returned,
  or None (``__rmqueue_smallest()`` + ``expand()``);
- ``("free", pfn, order)`` → ``__free_pages()`` (``__free_one_page()``: merges, head or tail).

Everything the allocator does on the way is an event with one line of narration ("split
order-3 block at pfn 8: keep 8, free 12 to order 2"), which the stepper shows under each step.
:func:`random_scenario` makes a valid random script from a seed (frees only free what is
allocated), and :data:`SCENARIOS` holds the scripted ones the chapter uses.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from kmmlib.errors import BadRequest
from kmmlib.mm.migratetype import MIGRATE_MOVABLE, migratetype_names, parse_migratetype
from kmmlib.mm.page_alloc import Zone
from kmmlib.stepper import Stepper

# Characters of the text memory bar: a free block shows its order at its first page.
_FREE_ORDER = "0123456789ABCDEF"
ALLOCATED, INSIDE_FREE, PCP, RESERVED = "#", ".", "p", "r"


class BuddyModel:
    """One zone of ``nr_pages`` pages at ``start_pfn`` (all free after boot), for stepping.

    Teaching defaults: per-cpu lists off, pageblock_order 3 (so pageblocks are visible in a
    64-page zone; this changes nothing for one migrate type). ``render()`` prints the memory
    bar, the free lists head to tail and the /proc/buddyinfo line."""

    def __init__(self, nr_pages: int = 64, start_pfn: int = 0, *, pageblock_order: int = 3,
                 pcp: bool = False, max_order: int = 10):
        if not 1 <= nr_pages <= 1 << 16:
            raise BadRequest(f"the buddy stepper takes 1..{1 << 16} pages, not {nr_pages}")
        self.zone = Zone(nr_pages, start_pfn, pageblock_order=min(pageblock_order, max_order),
                         pcp=pcp, max_order=max_order)
        self.events = self.zone.events

    # -- the Stepper protocol ------------------------------------------------------------------

    def apply(self, op: Sequence) -> int | None | str:
        """Perform one operation (see the module docstring); returns what it returned."""
        if not op:
            raise BadRequest("an empty operation")
        verb = op[0]
        if verb == "alloc" and len(op) in (2, 3):
            mt = parse_migratetype(op[2]) if len(op) == 3 else MIGRATE_MOVABLE
            pfn = self.zone.alloc(op[1], mt)
            return "NULL" if pfn is None else pfn
        if verb == "free" and len(op) == 3:
            self.zone.free(op[1], op[2])
            return "freed"
        raise BadRequest(f"unknown operation {op!r}: use ('alloc', order[, migratetype]) or "
                         "('free', pfn, order)")

    def render(self, width: int = 64) -> str:
        """Memory bar, free lists (head to tail), buddyinfo."""
        return f"{self.bar(width)}\n{self.zone.render()}"

    # -- pictures in text -----------------------------------------------------------------------

    def bar(self, width: int = 64) -> str:
        """One character per page (rows of ``width``): a free block's first page shows its
        order (0-9, A = 10), its other pages '.', allocated pages '#', per-cpu 'p'.
        Zones above 1024 pages are summarised instead."""
        z = self.zone
        n = z.spanned_pages
        if n > 1024:
            free = z.nr_free_pages
            return (f"[{n} pages: {free} free in the buddy lists, {z.pcp_pages()} on per-cpu "
                    f"lists, {n - free - z.pcp_pages()} in use]")
        state = z.page_state()
        chars = [ALLOCATED if s == 1 else PCP if s == 2 else RESERVED if s == 3 else INSIDE_FREE
                 for s in state]
        for pfn, order, _ in z.free_blocks():
            chars[pfn - z.zone_start_pfn] = _FREE_ORDER[order]
        rows = []
        for i in range(0, n, width):
            rows.append(f"{z.zone_start_pfn + i:>6} {''.join(chars[i:i + width])}")
        return "\n".join(rows)

    def blocks(self) -> list[tuple[int, int, str]]:
        """Every block of the zone in pfn order as (pfn, order, state) with state 'free',
        'allocated', 'pcp': what the widget draws and lets a learner click."""
        z = self.zone
        out = [(p, o, "free") for p, o, _ in z.free_blocks()]
        out += [(p, o, "allocated") for p, o in z.allocated_blocks().items()]
        for pcp in z.pcp:
            for pindex, lst in enumerate(pcp.lists):
                out += [(p, z.pindex_to_order(pindex), "pcp") for p in lst]
        return sorted(out)


def describe_op(op: Sequence) -> str:
    """``("alloc", 3)`` → ``alloc order 3``; ``("free", 8, 0)`` → ``free pfn 8 order 0``."""
    if op and op[0] == "alloc":
        mt = "" if len(op) < 3 else f" {migratetype_names[parse_migratetype(op[2])]}"
        return f"alloc order {op[1]}{mt}"
    if op and op[0] == "free" and len(op) == 3:
        return f"free pfn {op[1]} order {op[2]}"
    return " ".join(map(str, op))


def stepper_for(nr_pages: int = 64, ops: Sequence = (), **model_options) -> Stepper:
    """A :class:`~kmmlib.stepper.Stepper` over a fresh :class:`BuddyModel` and ``ops``."""
    return Stepper(lambda: BuddyModel(nr_pages, **model_options), ops, describe=describe_op)


def random_scenario(nr_pages: int, n: int, seed: int, *, max_order: int = 3,
                    free_fraction: float = 0.45, start_pfn: int = 0) -> list[tuple]:
    """A random but valid script of ``n`` operations: allocations of orders 0..max_order
    (small ones likelier) and frees of blocks that are allocated at that point, in the order
    a program would free them (any of them). Deterministic for a seed."""
    if n < 0 or not 0 <= max_order <= 10:
        raise BadRequest("n must be >= 0 and max_order 0..10")
    rng = random.Random(seed)
    zone = Zone(nr_pages, start_pfn, pageblock_order=3)
    weights = [2 ** (max_order - o) for o in range(max_order + 1)]
    held: list[tuple[int, int]] = []
    ops: list[tuple] = []
    for _ in range(n):
        if held and rng.random() < free_fraction:
            pfn, order = held.pop(rng.randrange(len(held)))
            zone.free(pfn, order)
            ops.append(("free", pfn, order))
        else:
            order = rng.choices(range(max_order + 1), weights)[0]
            pfn = zone.alloc(order)
            if pfn is not None:
                held.append((pfn, order))
            ops.append(("alloc", order))
    return ops


def fragmentation_ops(nr_pages: int = 32) -> list[tuple]:
    """Allocate every page one by one, then free every other page: half the zone is free,
    yet no two free pages are buddies, so an order-1 request fails."""
    ops: list[tuple] = [("alloc", 0)] * nr_pages
    ops += [("free", pfn, 0) for pfn in range(0, nr_pages, 2)]
    ops.append(("alloc", 1))
    return ops


# Scripted scenarios: name → (pages, ops, what it shows).
SCENARIOS: dict[str, tuple[int, list[tuple], str]] = {
    "split an order-3 block": (
        8, [("alloc", 0)] * 5,
        "expand() keeps the lowest part and frees the upper halves, largest first"),
    "split and merge back": (
        16, [("alloc", 0), ("alloc", 1), ("alloc", 2), ("free", 2, 1), ("free", 0, 0),
             ("free", 4, 2)],
        "a free merges only with a free buddy: pfn 2 waits for pfn 0, then all merges back into "
        "the order-4 block boot made"),
    "merge likely → tail": (
        32, [("alloc", 0)] * 5 + [("free", 0, 0), ("free", 1, 0), ("free", 3, 0),
                                  ("alloc", 0), ("alloc", 0)],
        "buddy_merge_likely() queues pfn 3 at the tail, so pfn 5 is handed out first"),
    "fragmentation": (
        32, fragmentation_ops(32),
        "half the zone is free, yet an order-1 request fails: no two free pages are buddies"),
    "odd zone: 37 pages": (
        37, [("alloc", 0), ("alloc", 0), ("alloc", 1), ("alloc", 0), ("alloc", 0),
             ("free", 33, 0), ("free", 36, 0), ("free", 34, 1), ("free", 32, 0)],
        "boot cuts 37 pages into 32 + 4 + 1; merging stops at the zone's end"),
}


def nr_free_history(nr_pages: int, ops: Sequence, **model_options) -> list[list[int]]:
    """``free_area[order].nr_free`` for every order, at boot and after each operation (a
    refused operation changes nothing and repeats the previous row)."""
    from kmmlib.errors import KmmError

    model = BuddyModel(nr_pages, **model_options)
    rows = [model.zone.nr_free()]
    for op in ops:
        try:
            model.apply(op)
        except KmmError:
            pass
        rows.append(model.zone.nr_free())
    return rows


class NoMergeZone(Zone):
    """A what-if for the chapter: a zone whose frees never merge (each block goes back to the
    head of its own order's list). Not the kernel: it shows what merging buys."""

    def _free_one_page(self, pfn: int, order: int, mt: int, fpi: int) -> None:
        self._account_freepages(1 << order, mt)
        self._add_to_free_list(pfn, order, mt, bool(fpi & 2))   # FPI_TO_TAIL at boot only

    def check(self) -> None:          # unmerged buddies are the point here
        pass


def largest_free_order(zone: Zone) -> int:
    """The highest order with a free block (-1 when nothing is free): the biggest request
    the zone could serve right now."""
    nr = zone.nr_free()
    return max((o for o, n in enumerate(nr) if n), default=-1)


def demo_node(pcp: bool = True, nr_cpus: int = 2):
    """A small x86_64-like node for the GFP examples: ZONE_DMA (pfns 1-4095, as on the
    snapshot's machine), a 128 MiB ZONE_DMA32 and a 256 MiB ZONE_NORMAL, with watermarks and
    lowmem_reserve computed as the kernel does (default sysctls) and per-cpu lists on.

    Boot marks every pageblock MOVABLE; a running kernel has already claimed some pageblocks
    for unmovable and reclaimable allocations (the snapshot's /proc/pagetypeinfo counts them,
    and chapter 07 shows how they are claimed). Here a few are marked up front: the first
    pageblock of DMA, the first two of DMA32 and the first four of Normal UNMOVABLE, and the
    next two of Normal RECLAIMABLE, so that GFP_KERNEL requests have somewhere to go without
    chapter 07's fallback. They come in pairs because a pair makes one order-10 block, and
    ``__free_one_page()`` re-stamps a buddy's pageblock with the type of the block it merges
    with. Returns a :class:`~kmmlib.mm.page_alloc.PageAllocator`."""
    from kmmlib.mm import watermark as wm
    from kmmlib.mm.page_alloc import PageAllocator

    specs = [("DMA", 1, 4095), ("DMA32", 4096, 32768), ("Normal", 36864, 65536)]
    zones = [Zone(n, s, name=name, boot=False) for name, s, n in specs]
    zones[0].set_pageblock_migratetype(1, "Unmovable")
    for k in range(2):
        zones[1].set_pageblock_migratetype(4096 + k * 512, "Unmovable")
    for k in range(6):
        zones[2].set_pageblock_migratetype(36864 + k * 512, "Unmovable" if k < 4 else
                                           "Reclaimable")
    for z in zones:
        z.memblock_free_all()
    # Watermarks and protection as __setup_per_zone_wmarks() and
    # setup_per_zone_lowmem_reserve() compute them (zones DMA, DMA32, Normal, Movable, Device).
    managed = [z.managed_pages for z in zones] + [0, 0]
    lowmem_kb = sum(managed) * 4
    mfk = wm.calculate_min_free_kbytes(lowmem_kb)
    marks = wm.setup_per_zone_wmarks(managed, [False, False, False, True, True], mfk)
    reserve = wm.setup_per_zone_lowmem_reserve(managed, [256, 256, 32, 0, 0])
    for i, z in enumerate(zones):
        z.set_watermarks(marks[i])
        z.lowmem_reserve = reserve[i]
        if pcp:
            z.setup_pcp(nr_cpus)
    alloc = PageAllocator(zones)
    alloc.min_free_kbytes = mfk
    return alloc


def run_workload(zone: Zone, n: int, seed: int, *, max_order: int = 3,
                 free_fraction: float = 0.45) -> Zone:
    """Drive ``zone`` with ``n`` random requests that do not depend on the pfns returned: each
    step allocates (orders 0..max_order, small likelier) or frees the k-th block still held
    (a failed allocation holds nothing, and freeing it is a no-op). So two different
    allocators given the same seed see exactly the same requests. Returns the zone."""
    rng = random.Random(seed)
    weights = [2 ** (max_order - o) for o in range(max_order + 1)]
    held: list[tuple[int | None, int]] = []
    for _ in range(n):
        if held and rng.random() < free_fraction:
            pfn, order = held.pop(rng.randrange(len(held)))
            if pfn is not None:
                zone.free(pfn, order)
        else:
            order = rng.choices(range(max_order + 1), weights)[0]
            held.append((zone.alloc(order), order))
    return zone

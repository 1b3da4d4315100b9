"""Replaying a real kernel's kmem trace through the simulated page and slab allocators.

The trace says what the kernel was *asked* and what it *answered*: every ``mm_page_alloc`` has
the order, migrate type and GFP mask of a request and the pfn the kernel returned; every
``kmem_cache_alloc`` the cache and sizes. :class:`Replay` makes the same requests, in the same
order and on the same CPU, to a simulated machine sized like the traced one, and lets the
simulator choose its own answers. Where the two choose differently is the lesson: the kernel's
free lists held a running system's history, the simulator's start from boot.

- **pages** — ``mm_page_alloc`` → ``__alloc_pages()``'s fast path
  (:meth:`~kmmlib.mm.page_alloc.PageAllocator.get_page_from_freelist`, then the slow path),
  per-cpu lists on, on the traced CPU. A map from traced pfn to simulated block serves each
  ``mm_page_free``; frees of pages allocated before the trace began are counted apart.
  ``mm_page_free_batched`` is the second event of a free that ``mm_page_free`` already
  reported (``free_unref_folios()`` traces both), so it is only counted;
  ``mm_page_alloc_zone_locked`` (a block taken from the buddy lists under the zone lock),
  ``mm_page_pcpu_drain`` (a block drained from a per-cpu list) and ``mm_page_alloc_extfrag``
  (a migrate-type fallback) are things the *simulator* does for itself, so the report sets
  the kernel's counts beside the simulator's.
- **slab** — ``kmem_cache_alloc``/``kmem_cache_free`` into SLUB caches created on first sight
  with the traced name and sizes (``bytes_req`` is ``s->object_size``, ``bytes_alloc``
  ``s->size``), ``kmalloc``/``kfree`` through the kmalloc caches (or ``kmalloc_large``). A
  map from traced (hashed) pointer to simulated object serves the frees.

The machine (:func:`machine_setup`): one simulated zone per zone with managed pages, holding its
managed pages from its start pfn, with the kernel's watermarks, lowmem_reserve, per-cpu
``batch``/``high`` (computed as the kernel computes them; for the bundled snapshot they equal
its /proc/zoneinfo) and pageblock migrate types in the proportions of /proc/pagetypeinfo.

Simplifications (one line each):
- the simulated zones start freshly booted (all free); the kernel's held a running system;
- the Normal zone of the snapshot's machine is its 163840 managed pages (its kernel, booted
  with deferred_init=lazy, had not yet given the rest of its 21 GiB span to the buddy
  allocator; no traced pfn lies outside them);
- pageblock types are laid out in whole MAX_PAGE_ORDER blocks (Unmovable, then Reclaimable,
  then Movable), since boot merges would re-type a lone pageblock;
- the slab caches take their slabs from a page pool of their own, because the trace's
  ``mm_page_alloc`` events already include the kernel's slab pages (sharing one zone would
  count them twice); caches are created unmerged (``slab_nomerge``), since a trace names each
  cache by its ``s->name``;
- each free goes to the traced CPU's per-cpu list (``Zone.free(..., cpu=)``), and
  :class:`ReplayZone` counts buddy takes, per-cpu drains and fallbacks as the kernel's
  tracepoints would (it overrides four methods and calls the originals);
- a trace from a machine with more CPUs than the simulated one folds them onto it
  (``cpu % nr_cpus``);
- the kernel's ``mm_page_alloc`` is replayed through ``get_page_from_freelist()`` directly
  (its first, order-0 zone test inlined for speed), skipping ``alloc_pages()``'s argument
  checks and narration: a trace holds only requests the kernel accepted.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from kmmlib.errors import BadRequest, KmmError, ParseError
from kmmlib.mm import gfp as _gfp
from kmmlib.mm import watermark as _wm
from kmmlib.mm.migratetype import MIGRATE_PCPTYPES, MIGRATE_TYPES, migratetype_names
from kmmlib.mm.page_alloc import PAGE_ALLOC_COSTLY_ORDER, PageAllocator, Zone
from kmmlib.trace import parse as _parse
from kmmlib.trace.parse import NULL_PTR, TraceLines, TraceStats, record_batches

NR_ORDERS = 11                    # NR_PAGE_ORDERS with 4 KiB pages
_NT = MIGRATE_TYPES
_MISSING = object()
_ALLOC_RESERVES = _wm.ALLOC_RESERVES
PROGRESS_EVERY = 4096            # records between progress callbacks (keeps the loop tight)
DEFAULT_BIN = 0.01               # seconds of trace time per timeline bin


# -- the machine ---------------------------------------------------------------------------

@dataclass
class ZoneSetup:
    """How to build one simulated zone: its pfns, watermarks, protection and pageblock types
    (counts of pageblocks by migrate type name, as /proc/pagetypeinfo's second table)."""

    name: str
    start_pfn: int
    pages: int
    watermarks: _wm.Watermarks
    lowmem_reserve: list[int]
    pageblocks: dict[str, int] = field(default_factory=dict)


@dataclass
class MachineSetup:
    """The traced machine as the replay builds it."""

    name: str
    description: str
    nr_cpus: int
    zones: list[ZoneSetup]
    notes: list[str] = field(default_factory=list)
    zone_names: tuple[str, ...] = _gfp.X86_64_ZONES     # enum zone_type of the kernel config


def parse_pagetypeinfo_blocks(text: str) -> dict[str, dict[str, int]]:
    """The "Number of blocks type" table of /proc/pagetypeinfo (``pagetypeinfo_showblockcount``
    in mm/vmstat.c): {zone: {migrate type: pageblocks}} for node 0."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Number of blocks type"):
            names = line.split()[4:]
            out: dict[str, dict[str, int]] = {}
            for row in lines[i + 1:]:
                words = row.replace(",", " ").split()
                if len(words) < 4 or words[0] != "Node" or words[2] != "zone":
                    break
                if words[1] != "0":
                    continue
                counts = words[4:]
                if len(counts) != len(names):
                    raise ParseError(f"pagetypeinfo: {row.strip()!r} has {len(counts)} counts "
                                     f"for {len(names)} migrate types")
                out[words[3]] = {n: int(c) for n, c in zip(names, counts, strict=True)}
            return out
    raise ParseError("pagetypeinfo: no 'Number of blocks type' table")


def machine_setup(machine: str = "x86_64-snapshot", source=None) -> MachineSetup:
    """The zones to simulate for ``machine``:

    - ``"x86_64-snapshot"`` (the bundled trace's machine) — the preset's zones, with
      min_free_kbytes, watermark_scale_factor, lowmem_reserve_ratio and the pageblock types
      of the bundled /proc snapshot: the same figures /proc/zoneinfo shows;
    - ``"proc"`` — the zones of ``source``'s /proc/zoneinfo (a :class:`ProcSource`: the live
      machine, or ``--from DIR``), with its own watermarks and protection, for a trace
      captured there;
    - any other preset of :mod:`kmmlib.machine` — its zones, watermarks computed from
      ``calculate_min_free_kbytes()``, pageblock types in the snapshot's proportions.
    """
    from kmmlib.machine import PRESETS
    from kmmlib.procfs.source import ProcSource, snapshot

    snap = snapshot()
    snap_blocks = parse_pagetypeinfo_blocks(snap.read("pagetypeinfo"))
    default_blocks = snap_blocks.get("Normal", {})
    if machine == "proc":
        from kmmlib.procfs.zoneinfo import parse_zoneinfo, zones_of_node

        source = source if source is not None else ProcSource()
        zinfo = [z for z in zones_of_node(parse_zoneinfo(source.read("zoneinfo")), 0)]
        try:
            blocks = parse_pagetypeinfo_blocks(source.read("pagetypeinfo"))
            if source.fell_back("pagetypeinfo") and not source.fell_back("zoneinfo"):
                blocks = {}          # the snapshot's counts belong to another machine
        except KmmError:
            blocks = {}
        zones = [ZoneSetup(z.name, z.start_pfn or 0, z.managed,
                           _wm.Watermarks(z.min, z.low, z.high,
                                          z.promo if z.promo is not None else z.high),
                           list(z.protection), blocks.get(z.name, default_blocks))
                 for z in zinfo if z.managed > 0]
        nr_cpus = int(source.read("nproc").split()[0])
        notes = [f"zones from {source.origin('zoneinfo')}"] + source.notes()
        from kmmlib.mm.zone import ZoneConfig
        names = ZoneConfig.from_names([z.name for z in zinfo]).names
        return MachineSetup("proc", f"the machine of {source.root}", nr_cpus, zones, notes,
                            names)
    if machine not in PRESETS:
        raise BadRequest(f"unknown machine {machine!r}; choose 'proc' or one of: "
                         f"{', '.join(PRESETS)}")
    preset = PRESETS[machine]
    from kmmlib.mm.zone import CONFIGS, node_zones

    # 32-bit ARM has HighMem like i386's config; arm64 and x86_64 have their own.
    config = CONFIGS["i386"] if preset.arch == "arm" else CONFIGS.get(preset.arch,
                                                                      CONFIGS["x86_64"])
    all_zones = node_zones(preset.zones, config)
    managed = [z.managed for z in all_zones]
    if machine == "x86_64-snapshot":
        mfk = int(snap.read("min_free_kbytes"))
        wsf = int(snap.read("watermark_scale_factor"))
        ratio = [int(x) for x in snap.read("lowmem_reserve_ratio").split()]
        ratio += [0] * (len(managed) - len(ratio))
        blocks_by_zone = snap_blocks
    else:
        lowmem = sum(m for m, hi in zip(managed, config.wmark_small_min(), strict=True)
                     if not hi)
        mfk = _wm.calculate_min_free_kbytes(lowmem * 4)
        wsf = _wm.DEFAULT_WATERMARK_SCALE_FACTOR
        ratio = config.default_lowmem_reserve_ratio()
        blocks_by_zone = {}
    wmarks = _wm.setup_per_zone_wmarks(managed, config.wmark_small_min(), mfk, wsf)
    reserve = _wm.setup_per_zone_lowmem_reserve(managed, ratio[:len(managed)])
    zones = [ZoneSetup(z.name, z.start_pfn, z.managed, wmarks[i], reserve[i],
                       blocks_by_zone.get(z.name, default_blocks))
             for i, z in enumerate(all_zones) if z.managed > 0]
    return MachineSetup(preset.name, preset.description, preset.nr_cpus, zones,
                        [f"min_free_kbytes {mfk}, watermark_scale_factor {wsf}"],
                        config.names)


class ReplayZone(Zone):
    """A :class:`~kmmlib.mm.page_alloc.Zone` that counts what the kernel's tracepoints
    report: blocks taken from the buddy lists
    (``mm_page_alloc_zone_locked``, which ``__rmqueue_smallest()`` fires; its
    ``percpu_refill`` flag is ``pcp_allowed_order(order) && migratetype < MIGRATE_PCPTYPES``),
    pages drained from per-cpu lists (``mm_page_pcpu_drain``) and migrate-type fallbacks
    (``mm_page_alloc_extfrag``, with the tracepoint's fields)."""

    def __init__(self, *args, **kwargs):
        self.buddy_takes = 0            # every block __rmqueue_smallest() hands out
        self.refill_takes = 0           # … of orders and types the per-cpu lists serve
        self.lock_trips = 0             # zone->lock taken to allocate: a refill, or one block
        self.drained_pages = 0
        self.fallback_tries = 0
        self.fallbacks = 0
        self.extfrag: list[dict] = []
        super().__init__(*args, **kwargs)

    def _rmqueue_smallest(self, order: int, mt: int) -> int:
        # Where the tracepoint is: the normal path, the HIGHATOMIC reserve and a partial
        # pageblock claim go through __rmqueue_smallest(); a whole-block claim and a steal
        # split their block themselves, untraced.
        pfn = Zone._rmqueue_smallest(self, order, mt)
        if pfn >= 0:
            self.buddy_takes += 1
            if (order <= PAGE_ALLOC_COSTLY_ORDER or order == self.pageblock_order) \
                    and mt < MIGRATE_PCPTYPES:
                self.refill_takes += 1
        return pfn

    def _rmqueue_bulk(self, order, count, lst, mt, alloc_flags) -> int:
        self.lock_trips += 1            # rmqueue_bulk(): one lock hold for the whole batch
        return Zone._rmqueue_bulk(self, order, count, lst, mt, alloc_flags)

    def _rmqueue_buddy(self, order: int, mt: int, alloc_flags: int) -> int:
        self.lock_trips += 1            # rmqueue_buddy(): one lock hold for one block
        return Zone._rmqueue_buddy(self, order, mt, alloc_flags)

    def _rmqueue_fallback(self, order: int, mt: int, alloc_flags: int) -> int:
        self.fallback_tries += 1
        pfn = Zone._rmqueue_fallback(self, order, mt, alloc_flags)
        if pfn >= 0:
            self.fallbacks += 1
        return pfn

    def _trace_extfrag(self, pfn, alloc_order, fallback_order, alloc_mt, fallback_mt) -> None:
        self.extfrag.append({
            "pfn": pfn, "alloc_order": alloc_order, "fallback_order": fallback_order,
            "alloc_migratetype": alloc_mt, "fallback_migratetype": fallback_mt,
            "change_ownership": int(alloc_mt == self.get_pageblock_migratetype(pfn))})
        Zone._trace_extfrag(self, pfn, alloc_order, fallback_order, alloc_mt, fallback_mt)

    def _free_pcppages_bulk(self, pcp, count, pindex, cpu) -> None:
        before = pcp.count
        Zone._free_pcppages_bulk(self, pcp, count, pindex, cpu)
        self.drained_pages += before - pcp.count


def _type_pageblocks(zone: Zone, counts: dict[str, int]) -> dict[str, int]:
    """Stamp the zone's pageblocks Unmovable, Reclaimable, then Movable, in the proportions of
    ``counts``, in whole MAX_PAGE_ORDER blocks. Returns the pageblocks of each type."""
    pb = zone.pageblock_nr_pages
    unit = max(1, (1 << zone.max_order) // pb)            # pageblocks per max-order block
    first = zone.zone_start_pfn & ~(pb - 1)
    nr_pb = (zone.zone_end_pfn - first + pb - 1) // pb
    total = sum(counts.get(t, 0) for t in ("Unmovable", "Reclaimable", "Movable")) or 1

    def share(t: str) -> int:
        want = nr_pb * counts.get(t, 0) / total
        n = -(-round(want) // unit) * unit if want > 0 else 0
        return max(n, unit) if counts.get(t, 0) else 0

    plan = {"Unmovable": share("Unmovable"), "Reclaimable": share("Reclaimable")}
    plan["Unmovable"] = min(plan["Unmovable"], nr_pb)
    plan["Reclaimable"] = min(plan["Reclaimable"], nr_pb - plan["Unmovable"])
    plan["Movable"] = nr_pb - plan["Unmovable"] - plan["Reclaimable"]
    i = 0
    for mt in ("Unmovable", "Reclaimable", "Movable"):
        for _ in range(plan[mt]):
            zone.set_pageblock_migratetype(max(first + i * pb, zone.zone_start_pfn), mt)
            i += 1
    return plan


def build_zones(setup: MachineSetup, pcp: bool = True) -> list[ReplayZone]:
    """The simulated zones of ``setup``, booted (``memblock_free_all()``) after their
    pageblocks were typed, with per-cpu lists sized from their managed pages."""
    zones = []
    for zs in setup.zones:
        z = ReplayZone(zs.pages, zs.start_pfn, name=zs.name,
                       zone_idx=setup.zone_names.index(zs.name), watermarks=zs.watermarks,
                       lowmem_reserve=zs.lowmem_reserve, boot=False)
        zs.pageblocks = _type_pageblocks(z, zs.pageblocks)
        z.memblock_free_all()
        if pcp:
            z.setup_pcp(setup.nr_cpus)
        zones.append(z)
    return zones


# -- the replay ----------------------------------------------------------------------------

@dataclass
class Timeline:
    """What the replay sampled every ``bin`` seconds of trace time: ``t`` (bin start, seconds
    from the first event), traced page allocations per bin by ``[order][migratetype]``,
    each simulated zone's ``nr_free`` per order at the end of the bin, pages the trace had
    allocated and not yet freed, and pages of the simulated slab caches."""

    bin: float
    t: list[float] = field(default_factory=list)
    allocs: list[list[int]] = field(default_factory=list)       # [bin][order * NT + mt]
    nr_free: dict[str, list[list[int]]] = field(default_factory=dict)
    in_use: list[int] = field(default_factory=list)
    slab_pages: list[int] = field(default_factory=list)

    def ends(self) -> list[float]:
        """When each bin's samples (``nr_free``, ``in_use``, ``slab_pages``) were taken: the
        bin's end, after its last event (``t`` is its start, where its allocations begin)."""
        return [round(t + self.bin, 9) for t in self.t]

    def alloc_rate(self, by: str = "order") -> dict[int, list[int]]:
        """Allocations per bin, by ``order`` or by ``migratetype``."""
        keys = range(NR_ORDERS) if by == "order" else range(_NT)
        out = {k: [0] * len(self.allocs) for k in keys}
        for b, row in enumerate(self.allocs):
            for i, n in enumerate(row):
                if n:
                    out[i // _NT if by == "order" else i % _NT][b] += n
        return {k: v for k, v in out.items() if any(v)}


class Replay:
    """One replay: a simulated machine plus everything the trace and the simulator did.

    ``Replay(machine="x86_64-snapshot")`` builds the machine (see :func:`machine_setup`;
    ``zones=("Normal",)`` keeps only those zones, ``slab=False`` replays page events only);
    :meth:`run` reads a trace file and replays it; :meth:`feed` replays records from
    :func:`~kmmlib.trace.parse.iter_records`; :meth:`report` summarises.
    """

    def __init__(self, machine: str = "x86_64-snapshot", *, source=None, pcp: bool = True,
                 slab: bool = True, bin_width: float = DEFAULT_BIN, slab_pool_pages: int = 0,
                 zones: Iterable[str] | None = None):
        if bin_width <= 0:
            raise BadRequest(f"bin width must be positive, not {bin_width!r}")
        self.setup = machine_setup(machine, source)
        if machine == "proc" and source is None:
            from kmmlib.procfs.source import ProcSource
            source = ProcSource()
        self.source = source
        if zones is not None:
            # Only some zones (a smaller machine for stepping by hand).
            keep = set(zones)
            self.setup.zones = [z for z in self.setup.zones if z.name in keep]
        self.zones = build_zones(self.setup, pcp)
        if not self.zones:
            raise BadRequest(f"machine {machine!r} has no zone with managed pages")
        self.allocator = PageAllocator(self.zones, self.setup.zone_names)
        self.zonelist = self.allocator.zonelist            # highest zone first
        self.zone_names = self.allocator.zone_names
        self.nr_cpus = self.setup.nr_cpus
        self.stats = TraceStats()
        self.timeline = Timeline(bin_width)
        self._gfp: dict[str, tuple] = {}
        self._live: dict[int, tuple | None] = {}            # traced pfn → (zone, pfn, order)
        self.c: Counter[str] = Counter()                     # the page side's counts
        self.by_order = [0] * NR_ORDERS
        self.by_mt = [0] * _NT
        self.traced_takes = [0, 0]                  # zone_locked by percpu_refill=0 and =1
        # zone->lock holds seen in the trace: a run of mm_page_alloc_zone_locked on one CPU
        # before its mm_page_alloc is one rmqueue_bulk() or rmqueue_buddy() (no other event
        # can fire on that CPU while it holds the lock with interrupts off).
        self.traced_lock_trips = 0
        self._in_lock: set[int] = set()
        self.traced_drained = 0
        self.extfrag: list[dict] = []
        self.in_use = 0
        self.peak = (0, 0.0)                                 # (pages in use, when)
        self.tasks: dict[str, int] = {}
        self.elapsed = 0.0
        self._t0: float | None = None
        self._finished = False
        self._edge = 0.0
        self._bin_row = [0] * (NR_ORDERS * _NT)
        self.slab = SlabReplay(self, slab_pool_pages) if slab else None

    # -- helpers ---------------------------------------------------------------------------
    def gfp_info(self, text: str) -> tuple:
        """(mask, highest_zoneidx, migratetype, alloc_flags, preferred zone) for a traced gfp
        string, as ``PageAllocator.alloc_pages()`` derives them (cached: a trace has a few
        dozen)."""
        info = self._gfp.get(text)
        if info is None:
            mask = _gfp.parse_gfp(text)
            names = self.zone_names
            highest = names.index(_gfp.gfp_zone_name(mask, names))
            mt = _gfp.gfp_migratetype(mask)
            alloc_flags = _wm.ALLOC_WMARK_LOW | (mask & _wm.ALLOC_KSWAPD)
            pref = next((z for z in self.zonelist if z.zone_idx <= highest), None)
            alloc_flags |= self.allocator.alloc_flags_nofragment(pref)
            if pref is None:
                raise BadRequest(f"no zone of this machine can serve {text}")
            info = self._gfp[text] = (mask, highest, mt, alloc_flags, pref)
        return info

    def _sample(self, ts: float) -> None:
        """Close the bins up to ``ts``: record the free lists and counters."""
        tl = self.timeline
        while ts >= self._edge:
            tl.t.append(round(self._edge - tl.bin - self._t0, 9))
            tl.allocs.append(self._bin_row)
            self._bin_row = [0] * (NR_ORDERS * _NT)
            for z in self.zonelist:
                tl.nr_free.setdefault(z.name, []).append(z.nr_free())
            tl.in_use.append(self.in_use)
            tl.slab_pages.append(self.slab.slub.slab_pages() if self.slab else 0)
            self._edge += tl.bin

    # -- the replay loop -------------------------------------------------------------------
    def feed(self, records: Iterable[tuple], progress: Callable[[int], None] | None = None
             ) -> int:
        """Replay records (tuples from :func:`~kmmlib.trace.parse.iter_records`). Returns
        how many.

        Python's cyclic garbage collector is off meanwhile: a replay keeps hundreds of
        thousands of small tuples alive (traced pfn and pointer → simulated block), makes no
        garbage cycles, and each collection would walk them all again (a fifth of the
        replay's time on the full trace). It is back on, as it was, when this returns."""
        was_on = gc.isenabled()
        gc.disable()
        try:
            return self._feed(records, progress)
        finally:
            if was_on:
                gc.enable()

    def _feed(self, records: Iterable[tuple], progress: Callable[[int], None] | None) -> int:
        """:meth:`feed`'s loop, the hot path (hundreds of thousands of events a second):
        everything is a local, the most frequent events are tested first, and the slab events
        are handled inline rather than through a method call each."""
        live = self._live
        gfp_get = self._gfp.get
        gfp_info = self.gfp_info
        gpff = self.allocator.get_page_from_freelist
        slowpath = self.allocator.alloc_pages_slowpath
        zonelist = self.zonelist
        nr_cpus = self.nr_cpus
        c = self.c
        by_order, by_mt = self.by_order, self.by_mt
        tasks = self.tasks
        tasks_get = tasks.get
        traced_takes = self.traced_takes
        in_lock = self._in_lock
        lock_trips = 0
        frees = 0
        in_use = self.in_use
        peak = self.peak[0]
        edge = self._edge
        row = self._bin_row
        slab = self.slab
        if slab is not None:
            objs = slab.objs
            sc = slab.c
            slub = slab.slub
            slab_alloc_node = slub.slab_alloc_node
            slab_free = slub.slab_free
            kfree = slub.kfree
            kmalloc_slab = slub.kmalloc_slab
            caches_get = slab.caches.get
            cache_for = slab.cache_for
            mask_get = slab._mask.get
            slab_mask = slab.mask
            allocs_by_cache = slab.allocs_by_cache
            abc_get = allocs_by_cache.get
            max_cache = slab._max_cache
            cache_frees = kfrees = kfree_null = 0
            live_bytes = slab.live_bytes
            peak_objs = slab.peak_live[0]
        n = 0
        # An int, also when there is no progress to report: int < float is slower than int < int.
        every = PROGRESS_EVERY if progress is not None else 1 << 62
        next_progress = every
        t_start = time.perf_counter()
        for n, rec in enumerate(records, 1):
            if n >= next_progress:
                progress(n)
                next_progress += every
            code = rec[0]
            ts = rec[1]
            if ts >= edge:
                if self._t0 is None:
                    self._t0 = ts
                    self._edge = edge = ts + self.timeline.bin
                else:
                    self.in_use = in_use
                    self._bin_row = row
                    self._sample(ts)
                    edge = self._edge
                    row = self._bin_row
            if code >= 6:                                   # the slab events
                if slab is None:
                    continue
                if code == 8:                               # kmem_cache_alloc
                    _, ts, cpu, task, ptr, req, alloc, gfp, name, site = rec
                    s = caches_get(name) or cache_for(name or f"size-{alloc}", req, alloc)
                    mask = mask_get(gfp) or slab_mask(gfp)
                    obj = slab_alloc_node(s, mask, cpu % nr_cpus, s.object_size,
                                          "kmem_cache_alloc")
                    name = s.name
                    allocs_by_cache[name] = abc_get(name, 0) + 1
                elif code == 9 or code == 7:                # kmem_cache_free, kfree
                    ptr = rec[4]
                    ent = objs.pop(ptr, None)
                    if ent is None:
                        if ptr == NULL_PTR:
                            kfree_null += 1
                        else:
                            sc["pretrace_frees"] += 1
                            slab.pretrace_by_cache[rec[5] if code == 9 else "kfree"] += 1
                        continue
                    obj, s, nbytes = ent
                    if code == 9:
                        cache_frees += 1
                    else:
                        kfrees += 1
                    live_bytes -= nbytes
                    if s is not None:
                        slab_free(s, obj, rec[2] % nr_cpus, "kmem_cache_free")
                    elif obj:
                        kfree(obj, cpu=rec[2] % nr_cpus)
                    continue
                else:                                       # kmalloc
                    _, ts, cpu, task, ptr, req, alloc, gfp, site = rec
                    mask = mask_get(gfp) or slab_mask(gfp)
                    if 0 < req <= max_cache:
                        s = kmalloc_slab(req, mask)
                        obj = slab_alloc_node(s, mask, cpu % nr_cpus, req, "kmalloc")
                        name = s.name
                        allocs_by_cache[name] = abc_get(name, 0) + 1
                    else:
                        s = None
                        try:
                            obj = slub.kmalloc(req, mask, cpu=cpu % nr_cpus)
                        except KmmError:
                            obj = None
                        name = "kmalloc_large" if req else "ZERO_SIZE_PTR"
                        allocs_by_cache[name] = abc_get(name, 0) + 1
                if s is not None and s.size != alloc:
                    slab.size_mismatch[(s.name, s.size, alloc)] += 1
                old = objs.get(ptr)
                if old is not None:
                    # Allocated again while we thought it live: the kernel freed it without
                    # a kfree/kmem_cache_free event (kmem_cache_free_bulk(), RCU sheaves).
                    live_bytes -= old[2]
                    slab.untraced_free(old, cpu % nr_cpus)
                if not obj:
                    sc["sim_failed"] += 1
                    obj = 0
                    s = None
                objs[ptr] = (obj, s, alloc)
                live_bytes += alloc
                if len(objs) > peak_objs:
                    peak_objs = len(objs)
                    slab.peak_live = (peak_objs, live_bytes)
            elif code == 0:                                 # mm_page_alloc
                _, ts, cpu, task, pfn, order, mt, gfp = rec
                in_lock.discard(cpu)                        # its zone->lock hold, if any, ended
                mask, highest, gmt, alloc_flags, pref = gfp_get(gfp) or gfp_info(gfp)
                if pfn < 0:
                    c["traced_failed"] += 1
                    continue
                if gmt != mt:
                    c["migratetype_mismatch"] += 1
                old = live.pop(pfn, _MISSING)
                if old is not _MISSING:
                    # Allocated again without a free we saw: the free was not traced.
                    c["missed_frees"] += 1
                    if old is not None:
                        z, spfn, o = old
                        z.free(spfn, o, cpu=cpu % nr_cpus)
                        in_use -= 1 << o
                by_order[order] += 1
                by_mt[mt] += 1
                row[order * _NT + mt] += 1
                tasks[task] = tasks_get(task, 0) + (1 << order)
                cpu %= nr_cpus
                # get_page_from_freelist()'s first test, inlined for order 0 (most of the
                # trace): the preferred zone, not below its high mark, above it with room.
                spfn = None
                if not order and not pref.flags and pref.nr_free_pages - (
                        0 if alloc_flags & _ALLOC_RESERVES else pref.nr_free_highatomic) > \
                        pref.high_wmark_pages() + pref.lowmem_reserve[highest]:
                    spfn = pref.rmqueue(0, gmt, alloc_flags, cpu, mask)
                    z = pref
                if spfn is None:
                    spfn = gpff(mask, order, alloc_flags, highest, gmt, cpu)
                    if spfn is None:
                        spfn = slowpath(mask, order, highest, gmt, cpu)
                        if spfn is None:
                            c["sim_failed"] += 1
                            live[pfn] = None
                            continue
                    for z in zonelist:                      # the zone that served it
                        if spfn >= z.zone_start_pfn:
                            break
                if spfn == pfn:
                    c["same_pfn"] += 1
                live[pfn] = (z, spfn, order)
                in_use += 1 << order
                if in_use > peak:
                    peak = in_use
                    self.peak = (peak, ts)
            elif code == 1:                                 # mm_page_free
                old = live.pop(rec[4], _MISSING)
                if old is _MISSING:
                    c["pretrace_frees"] += 1
                    c["pretrace_free_pages"] += 1 << rec[5]
                    continue
                if old is None:
                    c["frees_of_failed"] += 1
                    continue
                z, spfn, o = old
                if o != rec[5]:
                    c["wrong_order_frees"] += 1
                z.free(spfn, o, cpu=rec[2] % nr_cpus)
                in_use -= 1 << o
                frees += 1
            elif code == 3:                                 # mm_page_alloc_zone_locked
                traced_takes[rec[7]] += 1
                if rec[2] not in in_lock:                   # the first block of a lock hold
                    in_lock.add(rec[2])
                    lock_trips += 1
            elif code == 2:                                 # mm_page_free_batched
                pass                                        # counted by the parser
            elif code == 4:                                 # mm_page_pcpu_drain
                self.traced_drained += 1 << rec[5]
                c["pcpu_drain_events"] += 1
            else:                                           # mm_page_alloc_extfrag
                _, ts, cpu, task, pfn, ao, fo, amt, fmt, own = rec
                self.extfrag.append({"time": ts, "cpu": cpu, "task": task.strip(), "pfn": pfn,
                                     "alloc_order": ao, "fallback_order": fo,
                                     "alloc_migratetype": amt, "fallback_migratetype": fmt,
                                     "change_ownership": own})
        self.in_use = in_use
        self._bin_row = row
        self.traced_lock_trips += lock_trips
        c["frees"] += frees
        if slab is not None:
            slab.live_bytes = live_bytes
            sc["kmem_cache_free"] += cache_frees
            sc["kfree"] += kfrees
            sc["kfree_null"] += kfree_null
        self.elapsed += time.perf_counter() - t_start
        if progress is not None:
            progress(n)
        return n

    def finish(self) -> None:
        """Close the last timeline bin (once the whole trace is in)."""
        if self._t0 is not None and not self._finished:
            self._sample(self._edge)
        self._finished = True

    def run(self, path, progress: Callable[[int], None] | None = None, *,
            parallel: bool | None = None) -> Replay:
        """Read a trace file (plain or .xz) and replay all of it.

        With ``parallel`` (by default when :func:`~kmmlib.trace.pipeline.can_fork` says it
        pays: Linux, two CPUs, a file of 64 KiB or more) a child process reads and parses
        the trace while this one replays it (:mod:`kmmlib.trace.pipeline`); the result is the
        same either way, only faster. ``parallel=False`` reads here, and so does the default
        when the child cannot be started (``self.parallel`` says which it was)."""
        from kmmlib.trace import pipeline

        auto = parallel is None
        if auto:
            parallel = pipeline.can_fork(path)
        t = time.perf_counter()
        cpu = time.process_time()
        records = None
        if parallel:
            try:
                records = pipeline.ChildRecords(path, self.stats)
            except OSError:
                if not auto:
                    raise
                # The machine cannot fork now (EAGAIN, ENOMEM): read here instead.
        self.parallel = records is not None
        if records is not None:
            with records:
                self.feed(records, progress)
        else:
            with TraceLines(path) as lines:
                self.feed(chain.from_iterable(record_batches(lines, self.stats)), progress)
        self.finish()
        self.wall = time.perf_counter() - t
        self.cpu_time = time.process_time() - cpu
        self.path = str(path)
        return self

    # -- the report ------------------------------------------------------------------------
    def disagreements(self) -> list[str]:
        """Where the simulator and the kernel part ways, one readable line each, with why."""
        c = self.c
        out = []
        allocs = sum(self.by_order)
        if allocs:
            out.append(
                f"pfns: the simulator returned the kernel's own pfn for {c['same_pfn']} of "
                f"{allocs} page allocations — it starts from freshly booted free lists, the "
                "kernel's held a running system's history (page cache, other CPUs' lists)")
        if c["pretrace_frees"]:
            out.append(
                f"{c['pretrace_frees']} mm_page_free events ({c['pretrace_free_pages']} pages) "
                "freed pages allocated before the trace began (or tail pages of a split "
                "block): counted apart, the simulator never handed them out")
        if c["missed_frees"]:
            out.append(f"{c['missed_frees']} pfns were allocated again with no mm_page_free "
                       "in between: a free the trace did not show")
        if c["sim_failed"]:
            out.append(
                f"{c['sim_failed']} allocations failed in the simulator that the kernel met"
                + (f" (it tried {self._fallback_tries()} migrate-type fallbacks and made "
                   f"{self._fallbacks()})" if self._fallback_tries() else ""))
        sim_takes = sum(z.buddy_takes for z in self.zones)
        sim_refill = sum(z.refill_takes for z in self.zones)
        sim_trips = sum(z.lock_trips for z in self.zones)
        tr = sum(self.traced_takes)
        if tr or sim_takes:
            out.append(
                f"buddy takes (mm_page_alloc_zone_locked): kernel {tr} ({self.traced_takes[1]} "
                f"with percpu_refill=1) in {self.traced_lock_trips} zone->lock holds, "
                f"simulator {sim_takes} ({sim_refill}) in {sim_trips} — each CPU's per-cpu "
                "lists start empty here and were warm in the kernel, the kernel's lists also "
                f"got back the {self.c['pretrace_free_pages']} pages freed in the trace that "
                "were allocated before it (the simulator never had them), and the kernel's "
                "pcp->high moves with vmstat's decay and other CPUs' drains")
        sim_drained = sum(z.drained_pages for z in self.zones)
        if self.traced_drained or sim_drained:
            out.append(
                f"per-cpu drains (mm_page_pcpu_drain): kernel {self.traced_drained} pages, "
                f"simulator {sim_drained} — the kernel drains a CPU's lists when frees push "
                "them past high, frees of pages allocated before the trace included (those "
                "never reach the simulator's lists), and also on timers and on demand "
                "(vmstat's decay, drain_all_pages), which the simulator does not model")
        if self.extfrag or self._fallbacks():
            out.append(
                f"migrate-type fallbacks (mm_page_alloc_extfrag): kernel {len(self.extfrag)}, "
                f"simulator {self._fallbacks()} — the simulator's pageblocks were typed in the "
                "snapshot's proportions at boot, the kernel's had drifted with use")
        if c["migratetype_mismatch"]:
            out.append(f"{c['migratetype_mismatch']} allocations' migratetype field differs "
                       "from gfp_migratetype() of their gfp_flags")
        if c["wrong_order_frees"]:
            out.append(f"{c['wrong_order_frees']} pages were freed with another order than "
                       "they were allocated with (split pages); freed at the allocation order")
        if self.slab is not None:
            out.extend(self.slab.disagreements())
        return out

    def _fallbacks(self) -> int:
        return sum(z.fallbacks for z in self.zones)

    def _fallback_tries(self) -> int:
        return sum(z.fallback_tries for z in self.zones)

    def buddyinfo(self) -> list[str]:
        """The simulated /proc/buddyinfo after the replay, the kernel's exact format."""
        return [z.buddyinfo_line().rstrip("\n") for z in sorted(self.zones,
                                                                key=lambda z: z.zone_idx)]

    def report(self) -> dict:
        """Everything the replay found, as plain data (the JSON of ``kmm replay``)."""
        c = self.c
        mt_names = {i: migratetype_names[i] for i in range(_NT)}
        zones = []
        for zs, z in zip(self.setup.zones, self.zones, strict=True):
            pcp = z.pcp[0] if z.pcp else None
            zones.append({"name": zs.name, "start_pfn": zs.start_pfn, "pages": zs.pages,
                          "watermarks": zs.watermarks.as_dict(),
                          "protection": list(zs.lowmem_reserve),
                          "pcp_batch": pcp.batch if pcp else None,
                          "pcp_high_min": pcp.high_min if pcp else None,
                          "pcp_high_max": pcp.high_max if pcp else None,
                          "pageblocks": dict(zs.pageblocks)})
        peak_pages, peak_t = self.peak
        pages = {
            "allocs": sum(self.by_order),
            "alloc_pages": sum(n << o for o, n in enumerate(self.by_order)),
            "by_order": {str(o): n for o, n in enumerate(self.by_order) if n},
            "by_migratetype": {mt_names[m]: n for m, n in enumerate(self.by_mt) if n},
            "frees": c["frees"], "pretrace_frees": c["pretrace_frees"],
            "pretrace_free_pages": c["pretrace_free_pages"], "missed_frees": c["missed_frees"],
            "batched_frees": self.stats.events["mm_page_free_batched"],
            "traced_failed": c["traced_failed"],
            "sim_failed": c["sim_failed"], "frees_of_failed": c["frees_of_failed"],
            "wrong_order_frees": c["wrong_order_frees"],
            "migratetype_mismatch": c["migratetype_mismatch"], "same_pfn": c["same_pfn"],
            "buddy_takes": {"kernel": sum(self.traced_takes),
                            "kernel_percpu_refill": self.traced_takes[1],
                            "kernel_lock_trips": self.traced_lock_trips,
                            "simulator": sum(z.buddy_takes for z in self.zones),
                            "simulator_percpu_refill": sum(z.refill_takes for z in self.zones),
                            "simulator_lock_trips": sum(z.lock_trips for z in self.zones)},
            "pcp_drained_pages": {"kernel": self.traced_drained,
                                  "simulator": sum(z.drained_pages for z in self.zones)},
            "fallbacks": {"kernel": len(self.extfrag), "kernel_events": list(self.extfrag),
                          "simulator": self._fallbacks(),
                          "simulator_tries": self._fallback_tries(),
                          "simulator_events": [e for z in self.zones for e in z.extfrag]},
            "peak_in_use": {"pages": peak_pages,
                            "time": round(peak_t - (self._t0 or 0.0), 6)},
            "in_use_at_end": self.in_use,
            "top_tasks": [[t, n] for t, n in Counter(self.tasks).most_common(5)],
        }
        out = {
            "machine": {"name": self.setup.name, "description": self.setup.description,
                        "nr_cpus": self.nr_cpus, "zones": zones, "notes": self.setup.notes},
            "trace": {k: v for k, v in self.stats.as_dict().items() if k != "events"},
            "pages": pages,
            "buddyinfo": self.buddyinfo(),
            "disagreements": self.disagreements(),
        }
        if self.slab is not None:
            out["slab"] = self.slab.report()
            out["slabinfo"] = self.slab.slabinfo()
        return out

    def summary(self, speed: bool = True, slabinfo: int = 10) -> str:
        """The report as a learner reads it (what ``kmm replay`` prints)."""
        rep = self.report()
        st = self.stats
        pg = rep["pages"]
        hdr = st.header
        lines = [f"trace: {Path(getattr(self, 'path', '(records)')).name}: {st.nr_events} events, "
                 f"{st.duration:.3f} s of trace time"
                 + (f", {hdr['nr_cpus']} CPUs" if "nr_cpus" in hdr else "")]
        lines += [f"  ({note})" for note in st.notes]
        if st.overwritten or st.lost_events:
            lines.append(f"  the ring buffer lost {st.overwritten + st.lost_events} events: "
                         "frees and allocations are missing")
        lines.append("events as parsed:")
        for ev, n in sorted(st.events.items(), key=lambda kv: (-kv[1], kv[0])):
            extra = "  (not a kmem event: counted, not replayed)" if ev in st.unknown else ""
            lines.append(f"  {ev:<28} {n:>8}{extra}")
        lines.append(f"  malformed lines: {st.malformed}"
                     + "".join(f"\n    line {no}: {text}" for no, text in st.malformed_examples))
        lines.append(f"machine: {self.setup.name} — {self.setup.description}")
        for z in rep["machine"]["zones"]:
            w = z["watermarks"]
            pcp = (f", pcp batch {z['pcp_batch']} high {z['pcp_high_min']}..{z['pcp_high_max']}"
                   if z["pcp_batch"] else "")
            pb = " ".join(f"{k} {v}" for k, v in z["pageblocks"].items() if v)
            lines.append(f"  {z['name']:<7} pfn {z['start_pfn']:#x}+{z['pages']} pages, "
                         f"min/low/high {w['min']}/{w['low']}/{w['high']}{pcp}; "
                         f"pageblocks {pb}")
        by_order = " ".join(f"{o}:{n}" for o, n in pg["by_order"].items())
        by_mt = ", ".join(f"{k} {v}" for k, v in pg["by_migratetype"].items())
        lines += [
            f"pages: {pg['allocs']} allocations ({pg['alloc_pages']} pages); by order "
            f"{by_order}; {by_mt}",
            f"  {pg['frees']} frees of them, {pg['pretrace_frees']} frees of older pages, "
            f"{pg['batched_frees']} mm_page_free_batched (second reports of frees)",
            f"  in use: peak {pg['peak_in_use']['pages']} pages at "
            f"+{pg['peak_in_use']['time']:.3f} s, {pg['in_use_at_end']} at the end; failed: "
            f"kernel {pg['traced_failed']}, simulator {pg['sim_failed']}"]
        if "slab" in rep:
            sl = rep["slab"]
            agree = sum(1 for x in sl["shapes"] if x["agree"])
            lines += [
                f"slab: {sl['allocs']['kmem_cache_alloc']} kmem_cache_alloc + "
                f"{sl['allocs']['kmalloc']} kmalloc, {sl['frees']['kmem_cache_free']} "
                f"kmem_cache_free + {sl['frees']['kfree']} kfree ({sl['kfree_null']} "
                f"kfree(NULL)); {sl['caches_created']} caches created",
                "  busiest: " + ", ".join(f"{k} {n}" for k, n in sl["busiest"][:6]),
                f"  slab shapes (objects × pages per slab) equal to the traced machine's "
                f"slabinfo: "
                f"{agree} of {len(sl['shapes'])} caches"]
        lines.append("where the simulator and the kernel disagree, and why:")
        lines += [f"  - {d}" for d in rep["disagreements"]]
        lines.append("/proc/buddyinfo after the replay (simulated):")
        lines += rep["buddyinfo"]
        if "slabinfo" in rep and slabinfo:
            lines.append(f"/proc/slabinfo after the replay (simulated, the {slabinfo} "
                         "fullest caches the trace used):")
            lines += rep["slabinfo"][:slabinfo]
        if speed:
            sp = self.speed()
            lines.append(f"speed: {sp['events']} events in {sp['seconds']:.3f} s = "
                         f"{sp['events_per_s']:,} events/s; {sp['trace_seconds']:.3f} s of "
                         f"trace time, so {sp['realtime_factor']}× real time (parsed in "
                         f"{sp['parser']}{', by a child process' if sp['read_in_child'] else ''})")
        return "\n".join(lines)

    def speed(self) -> dict:
        """Events per second of the last :meth:`run` (file reading included) and the
        real-time factor: trace seconds replayed per second; whether a child process read
        the trace, and whether the parser's hot path ran in C or in Python."""
        n = self.stats.nr_events
        wall = getattr(self, "wall", self.elapsed) or 1e-9
        return {"events": n, "seconds": round(wall, 3), "events_per_s": round(n / wall),
                "read_in_child": getattr(self, "parallel", False),
                "parser": _parse.hot_path(),
                "trace_seconds": round(self.stats.duration, 6),
                "realtime_factor": round(self.stats.duration / wall, 2)}


class SlabReplay:
    """The slab half of a replay: a :class:`~kmmlib.slab.slub.Slub` on a page pool of its own
    (``slab_pool_pages``, by default as many pages as the machine's largest zone, at most
    1 GiB), with caches created as the trace names them."""

    def __init__(self, replay: Replay, pool_pages: int = 0):
        from kmmlib.slab.slub import Slub, make_zone

        if not pool_pages:
            pool_pages = min(max(z.managed_pages for z in replay.zones), 1 << 18)
        pool_pages = max(4096, pool_pages // 1024 * 1024)
        self.replay = replay
        self.pool = make_zone(pool_pages)
        self.slub = Slub(self.pool, nr_cpus=replay.nr_cpus, merge=False)
        self.nr_cpus = replay.nr_cpus
        self.caches: dict[str, object] = {}
        # traced ptr → (simulated object or 0 if it failed, its cache or None, bytes_alloc)
        self.objs: dict[str, tuple] = {}
        self.c: Counter[str] = Counter()
        self.allocs_by_cache: dict[str, int] = {}
        self.pretrace_by_cache: Counter[str] = Counter()
        self.untraced_by_cache: Counter[str] = Counter()
        self.live_bytes = 0
        self.peak_live = (0, 0)                         # (objects, bytes)
        self.size_mismatch: Counter[tuple] = Counter()
        # caches made with the traced slot as their object size: name → (bytes_req, bytes_alloc)
        self.resized: dict[str, tuple[int, int]] = {}
        self._mask: dict[str, int] = {}
        from kmmlib.slab import kmalloc as K
        self._max_cache = K.KMALLOC_MAX_CACHE_SIZE

    def mask(self, text: str) -> int:
        m = self._mask.get(text)
        if m is None:
            m = self._mask[text] = _gfp.parse_gfp(text)
        return m

    def cache_for(self, name: str, req: int, alloc: int):
        """The simulated cache for a traced name: an existing one (kmalloc-*), or
        ``kmem_cache_create(name, bytes_req, …)`` with the first of no flags,
        SLAB_HWCACHE_ALIGN, or an alignment that makes ``s->size`` the traced ``bytes_alloc``."""
        from kmmlib.slab import flags as F
        from kmmlib.slab.calculate import calculate_sizes

        s = self.slub.caches.get(name)
        if s is None:
            choice = None
            for flags, align in ((0, 0), (F.SLAB_HWCACHE_ALIGN, 0), (0, 16), (0, 32),
                                 (0, 64), (0, 128), (0, 256), (0, 512)):
                try:
                    if calculate_sizes(req, flags, align, nr_cpus=self.nr_cpus).size == alloc:
                        choice = (req, align, flags)
                        break
                except KmmError:
                    break
            if choice is None:
                # A constructor or SLAB_TYPESAFE_BY_RCU moved the free pointer out of the
                # object: the slot is what matters here, so make the object that size.
                choice = (alloc, 0, 0)
                self.c["caches_resized"] += 1
                self.resized[name] = (req, alloc)
            try:
                s = self.slub.kmem_cache_create(name, *choice)
            except KmmError:
                s = self.slub.kmem_cache_create(f"{name}-{alloc}", alloc) if (
                    f"{name}-{alloc}" not in self.slub.caches) else self.slub.caches[
                        f"{name}-{alloc}"]
            self.c["caches_created"] += 1
        self.caches[name] = s
        return s

    def untraced_free(self, old: tuple, cpu: int) -> None:
        """A pointer allocated again while we thought it live: the kernel freed it without a
        kfree/kmem_cache_free event (kmem_cache_free_bulk(), RCU sheaves). Free it here."""
        obj, s, _ = old
        self.c["untraced_frees"] += 1
        self.untraced_by_cache[s.name if s is not None else "kmalloc_large"] += 1
        if s is not None:
            self.slub.slab_free(s, obj, cpu, "kmem_cache_free_bulk")
        elif obj:
            self.slub.kfree(obj, cpu=cpu)

    # -- report ------------------------------------------------------------------------------
    def shapes(self) -> list[dict]:
        """Each created cache's slab shape beside the real slabinfo's, where the traced
        machine's /proc/slabinfo (the snapshot's, or the source's for ``proc``) has a row of
        that name."""
        from kmmlib.procfs.slabinfo import parse_slabinfo
        from kmmlib.procfs.source import snapshot

        src = self.replay.source if self.replay.setup.name == "proc" else snapshot()
        real = {r.name: r for r in parse_slabinfo(src.read("slabinfo"))}
        out = []
        for name, s in sorted(self.caches.items()):
            r = real.get(name)
            if r is None:
                continue
            out.append({"cache": name, "objsize": [s.size, r.objsize],
                        "objperslab": [s.objects_per_slab, r.objperslab],
                        "pagesperslab": [1 << s.order, r.pagesperslab],
                        "agree": (s.size, s.objects_per_slab, 1 << s.order) ==
                        (r.objsize, r.objperslab, r.pagesperslab)})
        return out

    def disagreements(self) -> list[str]:
        c = self.c
        out = []
        if c["untraced_frees"]:
            top = ", ".join(f"{n} {k}" for k, n in self.untraced_by_cache.most_common(3))
            out.append(f"{c['untraced_frees']} slab pointers were allocated again while still "
                       f"live ({top}): the kernel freed them without a kfree/kmem_cache_free "
                       "event (kmem_cache_free_bulk(), RCU-deferred frees); freed here then")
        if c["pretrace_frees"]:
            top = ", ".join(f"{n} {k}" for k, n in self.pretrace_by_cache.most_common(3))
            out.append(f"{c['pretrace_frees']} slab frees of objects allocated before the trace "
                       f"began ({top}): counted apart")
        if self.resized:
            which = ", ".join(f"{n} {r}→{a}" for n, (r, a) in list(self.resized.items())[:3])
            out.append(f"{len(self.resized)} caches ({which}) were created with the traced slot "
                       "as their object size: their free pointer lies outside the object (a "
                       "constructor, or SLAB_TYPESAFE_BY_RCU), which the trace does not say")
        if self.size_mismatch:
            bad = ", ".join(f"{k[0]} {k[1]} vs {k[2]}" for k in list(self.size_mismatch)[:3])
            out.append(f"{sum(self.size_mismatch.values())} slab allocations got another slot "
                       f"size than the trace's bytes_alloc ({bad})")
        wrong = [s for s in self.shapes() if not s["agree"]]
        if wrong:
            out.append(f"{len(wrong)} of {len(self.shapes())} caches have another slab shape "
                       "than the traced machine's slabinfo (" + ", ".join(
                           f"{s['cache']} {s['objperslab'][0]}×{s['pagesperslab'][0]}p vs "
                           f"{s['objperslab'][1]}×{s['pagesperslab'][1]}p" for s in wrong[:3])
                       + ")")
        if c["sim_failed"]:
            out.append(f"{c['sim_failed']} slab allocations failed in the simulator")
        return out

    def slabinfo(self, limit: int = 10) -> list[str]:
        """The busiest simulated caches' /proc/slabinfo lines (most objects first)."""
        used = self.allocs_by_cache
        rows = [r for r in self.slub.slabinfo_rows() if r.name in used and r.num_objs]
        rows.sort(key=lambda r: (-r.active_objs, r.name))
        return [r.line().rstrip("\n") for r in rows[:limit]]

    def report(self) -> dict:
        c = self.c
        ev = self.replay.stats.events
        return {
            "allocs": {"kmem_cache_alloc": ev["kmem_cache_alloc"] + ev["kmem_cache_alloc_node"],
                       "kmalloc": ev["kmalloc"] + ev["kmalloc_node"]},
            "frees": {"kmem_cache_free": c["kmem_cache_free"], "kfree": c["kfree"]},
            "kfree_null": c["kfree_null"], "pretrace_frees": c["pretrace_frees"],
            "untraced_frees": c["untraced_frees"], "sim_failed": c["sim_failed"],
            "caches_created": c["caches_created"],
            "busiest": [[k, n] for k, n in Counter(self.allocs_by_cache).most_common(10)],
            "live_objects_at_end": len(self.objs),
            "peak_live": {"objects": self.peak_live[0], "bytes": self.peak_live[1]},
            "slab_pages_at_end": self.slub.slab_pages(),
            "shapes": self.shapes(),
        }


def replay(path, machine: str = "x86_64-snapshot", *, source=None,
           progress: Callable[[int], None] | None = None, **kw) -> Replay:
    """Build a machine and replay a trace file through it: ``replay(bundled_trace())``."""
    return Replay(machine, source=source, **kw).run(path, progress)


def tqdm_progress(total: int | Callable[[], int | None] | None = None, desc: str = "replay"):
    """A progress callback drawing a tqdm bar on stderr when stderr is a terminal (redirected
    to a file or a pipe, a bar would only fill it with redraws); call ``.close()`` when done.
    ``total`` may be a function, asked until it knows (a trace's header gives its event count
    only once the first lines are read)."""
    import sys

    from tqdm import tqdm

    bar = tqdm(total=None if callable(total) else total, unit="ev", unit_scale=True,
               desc=desc, file=sys.stderr, mininterval=0.2, leave=False,
               disable=not sys.stderr.isatty())
    done = [0]

    def update(n: int) -> None:
        if bar.total is None and callable(total):
            bar.total = total()
        bar.update(n - done[0])
        done[0] = n

    update.close = bar.close               # type: ignore[attr-defined]
    update.bar = bar                       # type: ignore[attr-defined]
    return update


def default_trace() -> Path:
    """The trimmed real trace shipped with kmmlib (see :mod:`kmmlib.trace.capture`)."""
    from kmmlib.trace.capture import bundled_trace
    return bundled_trace()


__all__ = ["MachineSetup", "Replay", "ReplayZone", "SlabReplay", "Timeline", "ZoneSetup",
           "build_zones", "machine_setup", "parse_pagetypeinfo_blocks", "replay",
           "tqdm_progress"]

"""SLUB, the slab allocator of Linux 6.18 (mm/slub.c, mm/slab_common.c), over the buddy allocator.

A *cache* (``struct kmem_cache``) hands out objects of one size. It cuts *slabs* — blocks of
2^order pages from the page allocator, marked with the ``slab`` page type (6.x's PG_slab) — into
equal slots, and keeps each slab's free objects on a *freelist threaded through the free objects
themselves*: the first word-aligned word at ``s->offset`` inside a free object holds the address
of the next free one. Nothing outside the slab records which objects are free, which is why a
double free or a write after free corrupts the allocator, and why SLUB's debug options exist.

Where the objects are (``___slab_alloc()``, ``__slab_free()``, ``deactivate_slab()``):

- each CPU has one *cpu slab* (``kmem_cache_cpu.slab``, frozen: no list owns it) and a lockless
  *per-cpu freelist* (``c->freelist``) of its free objects. ``kmem_cache_alloc()`` pops its
  head and ``kmem_cache_free()`` of an object of that slab pushes it back: the fast paths, no
  lock and no list touched;
- frees of objects in other slabs go to *that slab's* freelist (``slab->freelist``): a slab that
  was full joins the tail of the node's *partial list*; one that becomes empty is given back to
  the buddy allocator, unless the node keeps fewer than ``min_partial`` partial slabs
  (5..10, from the object size), in which case it stays, empty, for the next allocations;
- when the cpu freelist is empty, the slow path takes the remote frees of the cpu slab, else
  the head of the node's partial list, else a *new slab* from the page allocator (tried at the
  cache's order with __GFP_NORETRY, then at the smallest order that holds one object: the
  ORDER_FALLBACK of a fragmented machine);
- a full slab is on no list at all (SLUB tracks full slabs only for debugging caches that
  record owners, SLAB_STORE_USER).

``kmalloc()`` is a set of such caches, one per size class (:mod:`kmmlib.slab.kmalloc`), made at
boot; sizes above 8 KiB go straight to the page allocator (``kmalloc_large``). ``kfree()`` finds
which from the page: a slab page gives its cache.

Python mangles names that start with two underscores inside a class, so the kernel's
``___slab_alloc`` is :meth:`Slub._slab_alloc` and ``__slab_free`` is :meth:`Slub._slab_free`
(``slab_alloc_node`` and ``slab_free`` keep their names).

Simplifications (one line each):
- one NUMA node; no per-cpu *partial* lists (CONFIG_SLUB_CPU_PARTIAL off, as for debug caches)
  and no 6.18 sheaves (opt-in per cache, off by default);
- freelists are in allocation order (CONFIG_SLAB_FREELIST_RANDOM off) and free pointers are
  stored in clear (CONFIG_SLAB_FREELIST_HARDENED's XOR obfuscation off);
- memory is a ``bytearray`` per slab; new pages read as zeros (a real kernel's hold old data);
- a shadow set of live objects (as KASAN's shadow memory would be) lets a double free in a cache
  without ``slab_debug`` be reported instead of silently corrupting the freelist;
- SLAB_TYPESAFE_BY_RCU slabs are freed at once, not after an RCU grace period;
- ``kmem_cache`` and ``kmem_cache_node`` are real caches here too, sized as the snapshot's
  slabinfo shows them (256 and 128 bytes).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kmmlib.errors import BadPageState, BadRequest
from kmmlib.events import EventLog
from kmmlib.mm import gfp as _gfp
from kmmlib.mm import page_flags as _pf
from kmmlib.mm.mem_map import UINT_MAX
from kmmlib.procfs.slabinfo import SlabinfoRow, format_slabinfo, slabtop
from kmmlib.slab import debug as D
from kmmlib.slab import flags as F
from kmmlib.slab import kmalloc as K
from kmmlib.slab.calculate import (
    ALIGN,
    PAGE_SHIFT,
    PAGE_SIZE,
    SIZEOF_VOID_P,
    Layout,
    calculate_alignment,
    calculate_sizes,
    get_order,
    order_objects,
)

_Q = struct.Struct("<Q")          # a free pointer: one little-endian 64-bit word
_G = _gfp.DEFAULT.masks
GFP_ZERO = _G["__GFP_ZERO"]
GFP_COMP = _G["__GFP_COMP"]
GFP_NOWARN = _G["__GFP_NOWARN"]
GFP_NORETRY = _G["__GFP_NORETRY"]
GFP_NOFAIL = _G["__GFP_NOFAIL"]
GFP_NOMEMALLOC = _G["__GFP_NOMEMALLOC"]
GFP_RECLAIM = _G["__GFP_RECLAIM"]
GFP_DIRECT_RECLAIM = _G["__GFP_DIRECT_RECLAIM"]
# new_slab(): only these of the caller's flags reach the page allocator; the zone and mobility
# come from the cache (s->allocflags).
GFP_RECLAIM_MASK = (GFP_RECLAIM | _G["__GFP_HIGH"] | _G["__GFP_IO"] | _G["__GFP_FS"]
                    | GFP_NOWARN | _G["__GFP_RETRY_MAYFAIL"] | GFP_NOFAIL | GFP_NORETRY
                    | _G["__GFP_MEMALLOC"] | GFP_NOMEMALLOC)
GFP_CONSTRAINT_MASK = _G["__GFP_HARDWALL"] | _G["__GFP_THISNODE"]

MIN_PARTIAL = 5                  # mm/slub.c: partial slabs a node keeps even when empty …
MAX_PARTIAL = 10                 # … at most this many, by object size (set_min_partial())
SHRINK_PROMOTE_MAX = 32          # __kmem_cache_do_shrink(): sort slabs with few free objects
SLUB_STATS = ("ALLOC_FASTPATH", "ALLOC_SLOWPATH", "FREE_FASTPATH", "FREE_SLOWPATH",
              "FREE_FROZEN", "FREE_ADD_PARTIAL", "FREE_REMOVE_PARTIAL", "ALLOC_FROM_PARTIAL",
              "ALLOC_SLAB", "ALLOC_REFILL", "FREE_SLAB", "CPUSLAB_FLUSH", "DEACTIVATE_FULL",
              "DEACTIVATE_EMPTY", "DEACTIVATE_TO_HEAD", "DEACTIVATE_TO_TAIL",
              "DEACTIVATE_REMOTE_FREES", "DEACTIVATE_BYPASS", "ORDER_FALLBACK")
VMEMMAP_START = 0xFFFFEA0000000000
STRUCT_PAGE_SIZE = 64


def ilog2(n: int) -> int:
    return n.bit_length() - 1


class Slab:
    """``struct slab`` (it overlays the struct page of the slab's first page): where the slab
    is, its objects, ``inuse`` (objects not on ``freelist``; all of them while frozen),
    ``freelist`` (address of the first free object, 0 = NULL) and ``frozen`` (it is a CPU's
    cpu slab). ``mem`` is the slab's memory; ``where`` says which list holds it."""

    __slots__ = ("cache", "pfn", "order", "base", "mem", "objects", "inuse", "freelist",
                 "frozen", "where", "cpu")

    def __init__(self, cache: KmemCache, pfn: int, order: int, base: int, objects: int):
        self.cache = cache
        self.pfn = pfn
        self.order = order
        self.base = base                   # slab_address(): the first page's address
        self.mem = bytearray(PAGE_SIZE << order)
        self.objects = objects
        self.inuse = 0
        self.freelist = 0
        self.frozen = False
        self.where = "new"                 # "cpu", "partial", "full" (debug list), "none"
        self.cpu = -1                      # the CPU whose cpu slab it is

    @property
    def nr_pages(self) -> int:
        return 1 << self.order

    def __repr__(self) -> str:
        return (f"<slab {self.cache.name} pfn {self.pfn:#x} order {self.order}: "
                f"{self.inuse}/{self.objects} inuse, {self.where}>")


@dataclass
class KmemCacheCpu:
    """``struct kmem_cache_cpu``: the CPU's lockless freelist, its slab, and the transaction id
    that makes the lockless cmpxchg safe (counted here, for the curious)."""

    freelist: int = 0
    slab: Slab | None = None
    tid: int = 0


class KmemCacheNode:
    """``struct kmem_cache_node``: the node's partial list (head first), and its slab and object
    counts. ``full`` is only used by caches with SLAB_STORE_USER (``slab_debug=U``), as in the
    kernel (``add_full()``)."""

    def __init__(self) -> None:
        self.partial: list[Slab] = []
        self.full: list[Slab] = []
        self.nr_slabs = 0
        self.total_objects = 0

    @property
    def nr_partial(self) -> int:
        return len(self.partial)


class KmemCache:
    """``struct kmem_cache``: one cache's geometry (``object_size``, ``size``, ``offset`` …, from
    :func:`~kmmlib.slab.calculate.calculate_sizes`), its slab order and objects per slab
    (``oo``), fallback order (``min``), flags, constructor, per-cpu and per-node state."""

    def __init__(self, name: str, layout: Layout, flags: int, ctor: Callable | None,
                 nr_cpus: int, allocflags: int):
        self.name = name
        self.layout = layout
        self.object_size = layout.object_size
        self.size = layout.size
        self.align = layout.align
        self.inuse = layout.inuse
        self.offset = layout.offset
        self.red_left_pad = layout.red_left_pad
        self.flags = flags | (F.SLAB_OBJECT_POISON if layout.object_poison else 0)
        self.ctor = ctor
        self.oo = (layout.order, layout.objects)            # oo_order(), oo_objects()
        self.min = (layout.min_order, order_objects(layout.min_order, layout.size))
        self.allocflags = allocflags
        # set_min_partial(s, ilog2(s->size) / 2), clamped to [MIN_PARTIAL, MAX_PARTIAL].
        self.min_partial = min(MAX_PARTIAL, max(MIN_PARTIAL, ilog2(layout.size) // 2))
        self.refcount = 1
        self.aliases: list[str] = []
        self.cpu_slab = [KmemCacheCpu() for _ in range(nr_cpus)]
        self.node = KmemCacheNode()
        self.stat: Counter[str] = Counter()
        self.slabs: dict[int, Slab] = {}      # every slab by first pfn (for pictures and checks)
        self.ctor_calls = 0
        self.struct_addr = 0                  # the kmem_cache object describing this cache
        self.node_struct_addr = 0
        self.slub: Slub | None = None

    @property
    def order(self) -> int:
        return self.oo[0]

    @property
    def objects_per_slab(self) -> int:
        return self.oo[1]

    @property
    def debug(self) -> bool:
        """``kmem_cache_debug()``: any SLUB debug option on (no fast paths then)."""
        return bool(self.flags & F.SLAB_DEBUG_FLAGS)

    def __repr__(self) -> str:
        return (f"<kmem_cache {self.name}: object_size {self.object_size}, size {self.size}, "
                f"{self.objects_per_slab} per order-{self.order} slab>")

    def describe(self) -> str:
        """The cache's geometry, one fact a line, with the kernel's field names."""
        L = self.layout
        where = "after the object" if L.freeptr_outside else "inside the object"
        lines = [f"kmem_cache {self.name}",
                 f"  object_size {self.object_size}  size {self.size}  align {self.align}  "
                 f"inuse {self.inuse}  offset {self.offset} (free pointer {where})",
                 f"  order {self.order}: {self.objects_per_slab} objects per slab of "
                 f"{PAGE_SIZE << self.order} bytes, "
                 f"{(PAGE_SIZE << self.order) - self.objects_per_slab * self.size} bytes left "
                 f"over; min_partial {self.min_partial}",
                 f"  flags {F.format_flags(self.flags)}"]
        if self.red_left_pad:
            lines.append(f"  red_left_pad {self.red_left_pad}")
        if self.aliases:
            lines.append(f"  aliases (merged caches): {', '.join(self.aliases)}")
        return "\n".join(lines)

    # -- counts ----------------------------------------------------------------------------
    def count_partial_free(self) -> int:
        """``count_partial(n, count_free)``: free objects on the node's partial list."""
        return sum(s.objects - s.inuse for s in self.node.partial)

    def slabinfo_row(self) -> SlabinfoRow:
        """This cache's /proc/slabinfo line as ``get_slabinfo()`` computes it: free objects in
        the cpu slabs count as active."""
        n = self.node
        return SlabinfoRow(self.name, n.total_objects - self.count_partial_free(),
                           n.total_objects, self.size, self.objects_per_slab,
                           1 << self.order, 0, 0, 0, n.nr_slabs, n.nr_slabs, 0)


class Slub:
    """The slab allocator of one simulated machine: its caches (``slab_caches``, newest first),
    the kmalloc caches, and the page allocator it takes slabs from.

    ``pages`` is a :class:`~kmmlib.mm.page_alloc.Zone` or
    :class:`~kmmlib.mm.page_alloc.PageAllocator` (anything with ``alloc_pages(gfp, order)`` →
    pfn or None and ``free(pfn, order)``); by default a 16 MiB zone from :func:`make_zone`.
    ``nr_cpus`` is the number of present CPUs (it sets the slab orders). ``slab_debug`` is the
    boot option's letters (``"FZPU"``; ``""`` = all four), applied to every cache or to
    ``slab_debug_caches`` only. ``merge=False`` is the ``slab_nomerge`` boot option.
    ``events`` defaults to the page allocator's log, so one stream tells both stories.
    """

    def __init__(self, pages=None, *, nr_cpus: int = 2, slab_debug: str | None = None,
                 slab_debug_caches: list[str] | None = None, merge: bool = True,
                 kmalloc: bool = True, events: EventLog | None = None):
        if not isinstance(nr_cpus, int) or not 1 <= nr_cpus <= 4096:
            raise BadRequest(f"nr_cpus must be 1..4096, not {nr_cpus!r}")
        self.pages = pages if pages is not None else make_zone(4096)
        zones = getattr(self.pages, "zonelist", None) or [self.pages]
        self._zones = zones
        self.page_offset = zones[0].mem_map.page_offset
        self.nr_cpus = nr_cpus
        self.events = events if events is not None else self.pages.events
        self.debug_flags = F.parse_slab_debug(slab_debug) if slab_debug is not None else 0
        self.debug_caches = set(slab_debug_caches or ())
        self.merge = merge
        self.slab_caches: list[KmemCache] = []
        self.caches: dict[str, KmemCache] = {}      # by name, aliases included
        self.kmalloc_caches: list[list[KmemCache | None]] = [
            [None] * (K.KMALLOC_SHIFT_HIGH + 1) for _ in range(K.NR_KMALLOC_TYPES)]
        self._slab_by_pfn: dict[int, Slab] = {}     # every page of every slab
        self._large: dict[int, int] = {}            # kmalloc_large: head pfn → order
        self._live: dict[int, int] = {}             # shadow: live object → requested size
        self.nr_slab_reclaimable = 0                # NR_SLAB_RECLAIMABLE_B, in pages
        self.nr_slab_unreclaimable = 0              # NR_SLAB_UNRECLAIMABLE_B, in pages
        self.dmesg: list[str] = []
        self.tainted = False
        self.jiffies = 0                            # a tick per alloc/free, for track ages
        self.pid = 1
        self._tracks: dict[tuple[int, int], tuple] = {}   # SLAB_STORE_USER: (obj, kind) → …
        self._boot()
        if kmalloc:
            self.create_kmalloc_caches()

    # -- page allocator glue ----------------------------------------------------------------
    def _mem_map(self, pfn: int):
        for z in self._zones:
            if z.zone_start_pfn <= pfn < z.zone_end_pfn:
                return z.mem_map
        raise BadPageState(f"BUG: pfn {pfn:#x} is in none of the zones")

    def virt_to_pfn(self, addr: int) -> int:
        """``virt_to_pfn()`` for a direct-map address."""
        if not isinstance(addr, int) or addr < self.page_offset:
            raise BadRequest(f"{addr!r} is not a direct-map (linear map) kernel address")
        return (addr - self.page_offset) >> PAGE_SHIFT

    def page_address(self, pfn: int) -> int:
        return self.page_offset + (pfn << PAGE_SHIFT)

    def _emit(self, kind: str, text: str, **data) -> None:
        log = self.events
        if log.active:
            log.emit(kind, text, **data)

    # -- boot: the caches that describe caches ----------------------------------------------
    def _boot(self) -> None:
        """``kmem_cache_init()``: kmem_cache_node and kmem_cache are made first (statically in
        the kernel, then moved into slab objects by ``bootstrap()``); every cache created after
        takes one object of each."""
        self._boot_caches: dict[str, KmemCache] = {}
        for name, size in (("kmem_cache_node", 128), ("kmem_cache", 256)):
            s = self._new_cache(name, size, 0, F.SLAB_HWCACHE_ALIGN | F.SLAB_NO_MERGE, None)
            self._boot_caches[name] = s
        for s in list(self.slab_caches)[::-1]:
            self._alloc_cache_structs(s)

    def _alloc_cache_structs(self, s: KmemCache) -> None:
        boot = self._boot_caches
        s.struct_addr = self.slab_alloc_node(boot["kmem_cache"], K._mask("GFP_KERNEL"), 0,
                                         boot["kmem_cache"].object_size, "kmem_cache_create")
        s.node_struct_addr = self.slab_alloc_node(boot["kmem_cache_node"], K._mask("GFP_KERNEL"),
                                                  0, boot["kmem_cache_node"].object_size,
                                                  "init_kmem_cache_nodes")
        if not s.struct_addr or not s.node_struct_addr:
            raise BadRequest(f"kmem_cache_create({s.name}) failed with error -12 (ENOMEM): no "
                             "memory for its struct kmem_cache")

    def create_kmalloc_caches(self) -> None:
        """``create_kmalloc_caches()``: for each family (normal, rcl, dma, cg), the classes 96
        and 192, then 8 … 8k; kmalloc-* caches are SLAB_NO_MERGE (MEMCG), kmalloc-rcl-*
        SLAB_RECLAIM_ACCOUNT, dma-kmalloc-* SLAB_CACHE_DMA, kmalloc-cg-* SLAB_ACCOUNT."""
        family_flags = {K.KMALLOC_NORMAL: F.SLAB_NO_MERGE, K.KMALLOC_RECLAIM:
                        F.SLAB_RECLAIM_ACCOUNT, K.KMALLOC_DMA: F.SLAB_CACHE_DMA,
                        K.KMALLOC_CGROUP: F.SLAB_ACCOUNT}
        for kind in range(K.NR_KMALLOC_TYPES):
            for idx in (1, 2, *range(K.KMALLOC_SHIFT_LOW, K.KMALLOC_SHIFT_HIGH + 1)):
                size = K.KMALLOC_INFO[idx][0]
                # create_boot_cache(): kmalloc objects are aligned to their largest
                # power-of-two divisor (a 2^n object to 2^n).
                align = max(8, size & -size)
                s = self._new_cache(K.kmalloc_cache_name(idx, kind), size, align,
                                    family_flags[kind] | F.SLAB_KMALLOC, None)
                self._alloc_cache_structs(s)
                self.kmalloc_caches[kind][idx] = s

    # -- kmem_cache_create / destroy ---------------------------------------------------------
    def _cache_flags(self, name: str, flags: int) -> int:
        """``kmem_cache_flags()``: add the ``slab_debug=`` options for this cache."""
        if self.debug_flags and (not self.debug_caches or name in self.debug_caches):
            flags |= self.debug_flags
        return flags

    def _new_cache(self, name: str, size: int, align: int, flags: int,
                   ctor: Callable | None, freeptr_offset: int | None = None) -> KmemCache:
        flags = self._cache_flags(name, flags)
        layout = calculate_sizes(size, flags, align, ctor=ctor is not None, nr_cpus=self.nr_cpus,
                                 freeptr_offset=freeptr_offset)
        allocflags = GFP_COMP
        if flags & F.SLAB_CACHE_DMA:
            allocflags |= _G["GFP_DMA"]
        if flags & F.SLAB_CACHE_DMA32:
            allocflags |= _G["GFP_DMA32"]
        if flags & F.SLAB_RECLAIM_ACCOUNT:
            allocflags |= _G["__GFP_RECLAIMABLE"]
        s = KmemCache(name, layout, flags, ctor, self.nr_cpus, allocflags)
        s.slub = self
        self.slab_caches.insert(0, s)           # list_add(&s->list, &slab_caches)
        self.caches[name] = s
        return s

    def find_mergeable(self, size: int, align: int, flags: int, name: str,
                       ctor: Callable | None) -> KmemCache | None:
        """``find_mergeable()`` (mm/slab_common.c): an existing cache whose objects can serve
        this one — no constructor on either side, no debugging, the same accounting and DMA
        flags, a compatible alignment and a size less than a word larger (both are rounded to
        a word first, so in effect the same size). The oldest such cache wins."""
        if not self.merge or ctor is not None:
            return None
        flags = self._cache_flags(name, flags)
        if flags & F.SLAB_NEVER_MERGE:
            return None
        size = ALIGN(size, SIZEOF_VOID_P)
        align = calculate_alignment(flags, align, size)
        size = ALIGN(size, align)
        for s in reversed(self.slab_caches):     # list_for_each_entry_reverse: oldest first
            if s.flags & F.SLAB_NEVER_MERGE or s.ctor is not None or s.refcount < 0:
                continue
            if s.layout.freeptr_outside and s.flags & F.SLAB_TYPESAFE_BY_RCU:
                continue
            if size > s.size:
                continue
            if flags & F.SLAB_MERGE_SAME != s.flags & F.SLAB_MERGE_SAME:
                continue
            if s.size & ~(align - 1) != s.size:
                continue
            if s.size - size >= SIZEOF_VOID_P:
                continue
            return s
        return None

    def kmem_cache_create(self, name: str, size: int, align: int = 0, flags: int | str = 0,
                          ctor: Callable | None = None, *,
                          freeptr_offset: int | None = None) -> KmemCache:
        """``kmem_cache_create(name, size, align, flags, ctor)``: a new cache, or an existing
        compatible one with this name as an alias (cache merging). ``ctor(obj)`` gets a writable
        memoryview of each object, once, when its slab is created."""
        if not isinstance(name, str) or not name or len(name.split()) != 1:
            raise BadRequest(f"kmem_cache_create: a cache needs a one-word name, not {name!r}")
        if name in self.caches:
            raise BadRequest(f"kmem_cache_create({name}) failed: a cache of that name exists "
                             "(sysfs: cannot create duplicate filename '/kernel/slab/"
                             f"{name}')")
        if ctor is not None and not callable(ctor):
            raise BadRequest("kmem_cache_create: ctor must be callable (or None)")
        if not isinstance(size, int) or not 1 <= size <= K.KMALLOC_MAX_SIZE:
            raise BadRequest(f"kmem_cache_create({name}): size {size!r} outside 1.."
                             f"{K.KMALLOC_MAX_SIZE}")
        if not isinstance(align, int) or align < 0 or align & (align - 1):
            raise BadRequest(f"kmem_cache_create({name}): align {align!r} is not 0 or a power "
                             "of two")
        flags = F.parse_flags(flags)
        s = self.find_mergeable(size, align, flags, name, ctor) if freeptr_offset is None \
            else None
        if s is not None:
            # __kmem_cache_alias(): the old cache grows to cover both object sizes.
            s.refcount += 1
            s.object_size = max(s.object_size, size)
            s.inuse = max(s.inuse, ALIGN(size, SIZEOF_VOID_P))
            s.aliases.append(name)
            self.caches[name] = s
            if self.events.active:
                self._emit("cache_merge", f"kmem_cache_create({name}, {size}): merged into "
                           f"{s.name} (size {s.size}); refcount {s.refcount}",
                           cache=s.name, alias=name)
            return s
        s = self._new_cache(name, size, align, flags, ctor, freeptr_offset)
        self._alloc_cache_structs(s)
        if self.events.active:
            self._emit("cache_create", f"kmem_cache_create({name}, {size}): size {s.size}, "
                       f"{s.objects_per_slab} objects per order-{s.order} slab", cache=name)
        return s

    def cache(self, name_or_cache: str | KmemCache) -> KmemCache:
        """The cache of that name (aliases too), or the cache itself."""
        if type(name_or_cache) is KmemCache:
            if name_or_cache.refcount > 0 and name_or_cache.slub is self:
                return name_or_cache
            if self.caches.get(name_or_cache.name) is not name_or_cache:
                raise BadRequest(f"kmem_cache {name_or_cache.name} was destroyed")
            return name_or_cache
        try:
            return self.caches[name_or_cache]
        except (KeyError, TypeError):
            raise BadRequest(f"no slab cache named {name_or_cache!r}") from None

    def kmem_cache_destroy(self, cache: str | KmemCache) -> None:
        """``kmem_cache_destroy()``: drop a reference; at the last one flush the cpu slabs,
        free every (necessarily empty) slab to the page allocator and forget the cache. A cache
        that still has objects gets the kernel's report; the kernel then unlinks the cache
        anyway and leaks it, the simulator refuses and leaves it as it was (free the objects
        and destroy it again)."""
        s = self.cache(cache)
        if s.struct_addr and s in self._boot_caches.values():
            raise BadRequest(f"kmem_cache_destroy({s.name}): a boot cache cannot be destroyed")
        alias = cache if isinstance(cache, str) and cache != s.name else None
        if s.refcount > 1:
            s.refcount -= 1
            name = alias or s.name
            if alias:
                s.aliases.remove(alias)
                del self.caches[alias]
            elif s.aliases:
                # The kernel's cache keeps its name; only the count shows the alias went.
                pass
            if self.events.active:
                self._emit("cache_destroy", f"kmem_cache_destroy({name}): refcount now "
                           f"{s.refcount}, {s.name} stays", cache=s.name)
            return
        live = sum(1 for v in self.object_state(s).values() if v == "used")
        if live:
            report = D.objects_remaining(self, s, live)
            raise D.ObjectsRemaining(report, cache=s.name)
        self.flush_all(s)
        for slab in list(s.node.partial) + list(s.node.full):
            self._remove_from_lists(s, slab)
            self.discard_slab(s, slab)
        for slab in list(s.slabs.values()):          # full slabs on no list: none can remain
            raise BadPageState(f"BUG: slab {slab} still in {s.name} after shutdown")
        self.slab_caches.remove(s)
        for name in [s.name, *s.aliases]:
            self.caches.pop(name, None)
        boot = self._boot_caches
        self.slab_free(boot["kmem_cache_node"], s.node_struct_addr, 0, "kmem_cache_destroy")
        self.slab_free(boot["kmem_cache"], s.struct_addr, 0, "kmem_cache_destroy")
        s.refcount = 0
        if self.events.active:
            self._emit("cache_destroy", f"kmem_cache_destroy({s.name}): gone", cache=s.name)

    # -- slabs from the page allocator -------------------------------------------------------
    def _alloc_slab_page(self, gfp: int, order: int) -> int | None:
        return self.pages.alloc_pages(gfp, order)

    def allocate_slab(self, s: KmemCache, gfp: int) -> Slab | None:
        """``allocate_slab()``: pages at the cache's order, trying without retries first; if
        that fails, at ``s->min`` (one object's order) with the caller's flags (ORDER_FALLBACK,
        counted even when ``s->min`` has the same order: the retry may reclaim). Then the page
        gets the slab type, the objects are set up — debug poison and red zones, the
        constructor once per object — and linked into the freelist in address order."""
        flags = (gfp & (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK)) | s.allocflags
        order, objects = s.oo
        alloc_gfp = (flags | GFP_NOWARN | GFP_NORETRY) & ~GFP_NOFAIL
        if alloc_gfp & GFP_DIRECT_RECLAIM and order > s.min[0]:
            alloc_gfp = (alloc_gfp | GFP_NOMEMALLOC) & ~GFP_RECLAIM
        pfn = self._alloc_slab_page(alloc_gfp, order)
        if pfn is None:
            order, objects = s.min
            pfn = self._alloc_slab_page(flags, order)
            if pfn is None:
                return None
            s.stat["ORDER_FALLBACK"] += 1
            if self.events.active:
                how = (f"fell back to order {order}" if order < s.oo[0] else
                       "retried it with the caller's flags (reclaim allowed)")
                self._emit("order_fallback", f"{s.name}: no order-{s.oo[0]} block; {how} "
                           f"({objects} object{'s' if objects != 1 else ''})",
                           cache=s.name, order=order)
        mm = self._mem_map(pfn)
        i = mm.index(pfn)
        if mm.page_type[i] != UINT_MAX:
            raise BadPageState(f"BUG: Bad page state: pfn {pfn:#x} from the page allocator "
                               f"already has page_type {mm.page_type[i]:#x}")
        mm.page_type[i] = _pf.PGTY_slab << 24           # __folio_set_slab()
        slab = Slab(s, pfn, order, self.page_address(pfn), objects)
        for p in range(pfn, pfn + (1 << order)):
            self._slab_by_pfn[p] = slab
        s.slabs[pfn] = slab
        if s.flags & F.SLAB_RECLAIM_ACCOUNT:            # account_slab()
            self.nr_slab_reclaimable += 1 << order
        else:
            self.nr_slab_unreclaimable += 1 << order
        if s.flags & F.SLAB_POISON:                     # setup_slab_debug()
            slab.mem[:] = bytes([D.POISON_INUSE]) * len(slab.mem)
        # The freelist in address order, each object set up (setup_object()) as it is linked.
        mem, size, off = slab.mem, s.size, s.offset
        first = s.red_left_pad                          # fixup_red_left()
        debug_init = s.flags & (F.SLAB_STORE_USER | F.SLAB_RED_ZONE | F.SLAB_OBJECT_POISON)
        for idx in range(objects):
            o = first + idx * size
            if debug_init:
                D.init_object(s, slab, o, D.SLUB_RED_INACTIVE)
            if s.ctor is not None:
                s.ctor(memoryview(mem)[o:o + s.object_size])
                s.ctor_calls += 1
            nxt = slab.base + o + size if idx < objects - 1 else 0
            _Q.pack_into(mem, o + off, nxt)
        slab.freelist = slab.base + first
        if self.events.active:
            self._emit("slab_new", f"{s.name}: new slab of {1 << order} page"
                       f"{'s' if order else ''} at pfn {pfn:#x} from the buddy allocator "
                       f"({objects} objects{', ctor run on each' if s.ctor else ''})",
                       cache=s.name, pfn=pfn, order=order)
        return slab

    def discard_slab(self, s: KmemCache, slab: Slab) -> None:
        """``discard_slab()`` → ``__free_slab()``: check a debug cache's objects one last time,
        clear the slab page type, unaccount, and give the pages back to the buddy allocator."""
        if s.flags & F.SLAB_CONSISTENCY_CHECKS:
            for o in range(s.red_left_pad, slab.objects * s.size, s.size):
                D.check_object(self, s, slab, o, D.SLUB_RED_INACTIVE, report_only=True)
        n = s.node
        n.nr_slabs -= 1
        n.total_objects -= slab.objects
        mm = self._mem_map(slab.pfn)
        mm.page_type[mm.index(slab.pfn)] = UINT_MAX      # __folio_clear_slab()
        for p in range(slab.pfn, slab.pfn + slab.nr_pages):
            del self._slab_by_pfn[p]
        del s.slabs[slab.pfn]
        if s.flags & F.SLAB_RECLAIM_ACCOUNT:
            self.nr_slab_reclaimable -= slab.nr_pages
        else:
            self.nr_slab_unreclaimable -= slab.nr_pages
        slab.where = "freed"
        s.stat["FREE_SLAB"] += 1
        self.pages.free(slab.pfn, slab.order)
        if self.events.active:
            self._emit("slab_free", f"{s.name}: empty slab at pfn {slab.pfn:#x} goes back to the "
                       f"buddy allocator ({slab.nr_pages} page{'s' if slab.order else ''})",
                       cache=s.name, pfn=slab.pfn, order=slab.order)

    # -- lists ----------------------------------------------------------------------------
    def add_partial(self, s: KmemCache, slab: Slab, tail: bool) -> None:
        """``add_partial()``: DEACTIVATE_TO_TAIL or to the head of the node's partial list."""
        if tail:
            s.node.partial.append(slab)
        else:
            s.node.partial.insert(0, slab)
        slab.where = "partial"

    def _add_full(self, s: KmemCache, slab: Slab) -> None:
        """``add_full()``: a debugging cache that records owners (SLAB_STORE_USER, the
        ``U`` of slab_debug) keeps its full slabs on the node's full list, at the head, so
        that validation can find their objects; any other cache leaves them on no list."""
        if s.flags & F.SLAB_STORE_USER:
            s.node.full.insert(0, slab)
            slab.where = "full"

    def _remove_from_lists(self, s: KmemCache, slab: Slab) -> None:
        if slab.where == "partial":
            s.node.partial.remove(slab)
        elif slab.where == "full":
            s.node.full.remove(slab)
        slab.where = "none"

    # -- the free pointer --------------------------------------------------------------------
    def get_freepointer(self, s: KmemCache, slab: Slab, obj: int) -> int:
        """``get_freepointer()``: the word at ``obj + s->offset``."""
        return _Q.unpack_from(slab.mem, obj - slab.base + s.offset)[0]

    def set_freepointer(self, s: KmemCache, slab: Slab, obj: int, fp: int) -> None:
        _Q.pack_into(slab.mem, obj - slab.base + s.offset, fp)

    # -- allocation --------------------------------------------------------------------------
    def kmem_cache_alloc(self, cache: str | KmemCache, gfp: int | str = "GFP_KERNEL", *,
                         cpu: int = 0, caller: str = "kmem_cache_alloc") -> int | None:
        """``kmem_cache_alloc(s, gfp)`` on ``cpu``: an object's address, or None (NULL) when the
        page allocator has no slab to give."""
        s = self.cache(cache)
        self._check_cpu(cpu)
        gfp = K._mask(gfp)
        if s.ctor is not None and gfp & GFP_ZERO:
            raise BadRequest(f"{s.name}: __GFP_ZERO on a cache with a constructor would wipe "
                             "what the constructor set up (WARN_ON_ONCE in mm/slub.c)")
        return self.slab_alloc_node(s, gfp, cpu, s.object_size, caller)

    def _check_cpu(self, cpu: int) -> None:
        if type(cpu) is not int or not 0 <= cpu < self.nr_cpus:
            raise BadRequest(f"cpu {cpu!r}: this machine has CPUs 0..{self.nr_cpus - 1}")

    def slab_alloc_node(self, s: KmemCache, gfp: int, cpu: int, orig_size: int,
                    caller: str) -> int | None:
        """``slab_alloc_node()``: the lockless fast path, else ``__slab_alloc()``; then
        ``slab_post_alloc_hook()`` zeroes for __GFP_ZERO."""
        self.jiffies += 1
        c = s.cpu_slab[cpu]
        obj = c.freelist
        if obj and c.slab is not None:
            slab = c.slab
            # this_cpu_cmpxchg_double(freelist, tid): pop the head of the cpu freelist.
            c.freelist = _Q.unpack_from(slab.mem, obj - slab.base + s.offset)[0]
            c.tid += 1
            s.stat["ALLOC_FASTPATH"] += 1
            log = self.events
            if log.active:
                log.emit("obj_alloc", f"{s.name}: cpu {cpu} fast path: pop {obj:#x} from the "
                         f"per-cpu freelist", cache=s.name, obj=obj, cpu=cpu, path="fast")
        else:
            obj, slab = self._slab_alloc(s, gfp, c, cpu, orig_size, caller)
            if not obj:
                return None
        if gfp & GFP_ZERO:
            o = obj - slab.base
            zero = orig_size if s.flags & F.SLAB_RED_ZONE and s.flags & F.SLAB_KMALLOC \
                else s.object_size
            slab.mem[o:o + zero] = bytes(zero)
        self._live[obj] = orig_size
        return obj

    def _slab_alloc(self, s: KmemCache, gfp: int, c: KmemCacheCpu, cpu: int,
                      orig_size: int, caller: str) -> tuple[int, Slab | None]:
        """``___slab_alloc()``: the slow path (the cpu freelist is empty)."""
        s.stat["ALLOC_SLOWPATH"] += 1
        slab = c.slab
        if slab is not None:
            # get_freelist(): objects other CPUs freed into our slab meanwhile.
            freelist = slab.freelist
            slab.freelist = 0
            slab.inuse = slab.objects
            slab.frozen = bool(freelist)
            if freelist:
                s.stat["ALLOC_REFILL"] += 1
                if self.events.active:
                    self._emit("cpu_refill", f"{s.name}: cpu {cpu}: per-cpu freelist empty; take "
                               f"the slab's own freelist (objects freed by other CPUs)",
                               cache=s.name, cpu=cpu, pfn=slab.pfn)
                return self._load_freelist(s, c, slab, freelist, cpu), slab
            # The cpu slab is full: unfreeze it; it is on no list now.
            c.slab = None
            slab.where, slab.cpu = "none", -1
            s.stat["DEACTIVATE_BYPASS"] += 1
            if self.events.active:
                self._emit("cpu_slab_full", f"{s.name}: cpu {cpu}: cpu slab at pfn {slab.pfn:#x} "
                           "is full; it leaves the CPU and is on no list (full slabs are not "
                           "tracked)", cache=s.name, cpu=cpu, pfn=slab.pfn)
        if s.debug:
            return self._alloc_debug(s, gfp, orig_size, caller)
        # get_partial(): the head of the node's partial list.
        n = s.node
        if n.partial:
            slab = n.partial.pop(0)
            s.stat["ALLOC_FROM_PARTIAL"] += 1
            freelist = slab.freelist            # freeze_slab()
            slab.freelist = 0
            slab.inuse = slab.objects
            slab.frozen = True
            if self.events.active:
                self._emit("cpu_slab", f"{s.name}: cpu {cpu} takes the partial slab at pfn "
                           f"{slab.pfn:#x} as its cpu slab", cache=s.name, cpu=cpu, pfn=slab.pfn)
        else:
            slab = self.allocate_slab(s, gfp)
            if slab is None:
                return self._out_of_memory(s, gfp), None
            s.stat["ALLOC_SLAB"] += 1
            freelist = slab.freelist
            slab.freelist = 0
            slab.inuse = slab.objects
            slab.frozen = True
            n.nr_slabs += 1                      # inc_slabs_node()
            n.total_objects += slab.objects
        c.slab = slab
        slab.where, slab.cpu = "cpu", cpu
        return self._load_freelist(s, c, slab, freelist, cpu), slab

    def _load_freelist(self, s: KmemCache, c: KmemCacheCpu, slab: Slab, freelist: int,
                       cpu: int) -> int:
        """``load_freelist:`` the first object is returned, the rest becomes the cpu
        freelist."""
        c.freelist = self.get_freepointer(s, slab, freelist)
        c.tid += 1
        if self.events.active:
            self._emit("obj_alloc", f"{s.name}: cpu {cpu} slow path: {freelist:#x}, the rest of "
                       f"the slab's freelist becomes the per-cpu freelist",
                       cache=s.name, obj=freelist, cpu=cpu, path="slow")
        return freelist

    def _out_of_memory(self, s: KmemCache, gfp: int) -> int:
        """``slab_out_of_memory()``: the warning (unless __GFP_NOWARN), and NULL."""
        if not gfp & GFP_NOWARN:
            line = (f"SLUB: Unable to allocate memory on node -1, gfp={gfp:#x}"
                    f"({_gfp.format_gfp(gfp)})\n  cache: {s.name}, object size: "
                    f"{s.object_size}, buffer size: {s.size}, default order: {s.order}, "
                    f"min order: {s.min[0]}")
            self.dmesg.append(line)
        if self.events.active:
            self._emit("alloc_fail", f"{s.name}: no slab to be had from the page allocator → NULL",
                       cache=s.name)
        return 0

    def _alloc_debug(self, s: KmemCache, gfp: int, orig_size: int,
                     caller: str) -> tuple[int, Slab | None]:
        """A debugging cache allocates one object at a time under the node lock, from a partial
        slab (``alloc_single_from_partial()``) or a new one (``alloc_single_from_new_slab()``),
        checking the object first (``alloc_debug_processing()``)."""
        n = s.node
        for slab in list(n.partial):
            obj = slab.freelist
            slab.freelist = self.get_freepointer(s, slab, obj)
            slab.inuse += 1
            try:
                D.alloc_debug_processing(self, s, slab, obj, orig_size, caller)
            except D.SlubDebugError:
                # The kernel marks all the slab's objects used and takes it off the list.
                n.partial.remove(slab)
                slab.where = "none"
                raise
            if slab.inuse == slab.objects:
                n.partial.remove(slab)
                slab.where = "none"
                self._add_full(s, slab)
            if self.events.active:
                self._emit("obj_alloc", f"{s.name}: debug cache: {obj:#x} from the partial slab "
                           f"at pfn {slab.pfn:#x}", cache=s.name, obj=obj, path="debug")
            return obj, slab
        slab = self.allocate_slab(s, gfp)
        if slab is None:
            return self._out_of_memory(s, gfp), None
        s.stat["ALLOC_SLAB"] += 1
        obj = slab.freelist
        slab.freelist = self.get_freepointer(s, slab, obj)
        slab.inuse = 1
        D.alloc_debug_processing(self, s, slab, obj, orig_size, caller)
        if slab.inuse == slab.objects:
            self._add_full(s, slab)
        else:
            self.add_partial(s, slab, tail=False)
        n.nr_slabs += 1
        n.total_objects += slab.objects
        if self.events.active:
            self._emit("obj_alloc", f"{s.name}: debug cache: {obj:#x} from the new slab",
                       cache=s.name, obj=obj, path="debug")
        return obj, slab

    # -- free ------------------------------------------------------------------------------
    def _cache_of_object(self, addr: int) -> KmemCache | None:
        slab = self._slab_by_pfn.get((addr - self.page_offset) >> PAGE_SHIFT)
        return slab.cache if slab is not None else None

    def kmem_cache_free(self, cache: str | KmemCache, obj: int, *, cpu: int = 0,
                        caller: str = "kmem_cache_free") -> None:
        """``kmem_cache_free(s, obj)`` on ``cpu``. Refused with the kernel's report, state
        intact: an address that is not an object of this cache, a double free; with
        slab_debug, a red zone or poison found overwritten."""
        s = self.cache(cache)
        self._check_cpu(cpu)
        if not isinstance(obj, int) or obj <= K.ZERO_SIZE_PTR:
            raise BadRequest(f"kmem_cache_free({s.name}, {obj!r}): not an object pointer")
        slab = self._slab_by_pfn.get((obj - self.page_offset) >> PAGE_SHIFT)
        if slab is None:
            raise BadRequest(f"kmem_cache_free({s.name}, {obj:#x}): the address is not in a "
                             "slab page (virt_to_slab() is NULL: "
                             "'kmem_cache_free: Object is not a Slab page!')")
        if slab.cache is not s:
            raise BadRequest(f"kmem_cache_free: Wrong slab cache. {s.name} but object is from "
                             f"{slab.cache.name}  (cache_from_obj() in mm/slub.c)")
        self.slab_free(s, obj, cpu, caller, slab)

    def slab_free(self, s: KmemCache, obj: int, cpu: int, caller: str,
                   slab: Slab | None = None) -> None:
        """``slab_free()`` → ``do_slab_free()``: push on the cpu freelist when the object is in
        this CPU's slab (fast path), else ``__slab_free()``."""
        if slab is None:
            slab = self._slab_by_pfn[(obj - self.page_offset) >> PAGE_SHIFT]
        self.jiffies += 1
        if s.flags & F.SLAB_CONSISTENCY_CHECKS:
            self._free_debug(s, slab, obj, caller)     # the kernel's own checks and reports
            return
        # Without slab_debug=F: the checks the kernel does not make (see the module docstring).
        rel = obj - slab.base - s.red_left_pad
        if rel < 0 or rel % s.size or rel // s.size >= slab.objects:
            raise D.InvalidObjectPointer(D.invalid_pointer_report(self, s, slab, obj),
                                         cache=s.name, obj=obj)
        if obj not in self._live:
            raise D.ObjectAlreadyFree(D.double_free_report(self, s, slab, obj, cpu),
                                      cache=s.name, obj=obj)
        if s.debug:
            self._free_debug(s, slab, obj, caller)
            return
        del self._live[obj]
        c = s.cpu_slab[cpu]
        if slab is c.slab:
            _Q.pack_into(slab.mem, obj - slab.base + s.offset, c.freelist)
            c.freelist = obj
            c.tid += 1
            s.stat["FREE_FASTPATH"] += 1
            log = self.events
            if log.active:
                log.emit("obj_free", f"{s.name}: cpu {cpu} fast path: push {obj:#x} on the "
                         "per-cpu freelist", cache=s.name, obj=obj, cpu=cpu, path="fast")
            return
        self._slab_free(s, slab, obj, cpu)

    def _slab_free(self, s: KmemCache, slab: Slab, obj: int, cpu: int) -> None:
        """``__slab_free()``: into the slab's own freelist; then fix the lists. A frozen slab
        (another CPU's cpu slab) needs nothing more; a full slab joins the partial list's tail;
        an empty one goes back to the page allocator unless the node keeps it (min_partial)."""
        s.stat["FREE_SLOWPATH"] += 1
        n = s.node
        prior = slab.freelist
        self.set_freepointer(s, slab, obj, prior)
        slab.freelist = obj
        slab.inuse -= 1
        if slab.frozen:
            s.stat["FREE_FROZEN"] += 1
            if self.events.active:
                self._emit("obj_free", f"{s.name}: cpu {cpu} frees {obj:#x} into cpu "
                           f"{slab.cpu}'s slab (its own freelist: a remote free)",
                           cache=s.name, obj=obj, cpu=cpu, path="remote")
            return
        if slab.inuse == 0 and n.nr_partial >= s.min_partial:
            kept = n.nr_partial                     # counted before this slab leaves the list
            if prior:
                n.partial.remove(slab)
                s.stat["FREE_REMOVE_PARTIAL"] += 1
            slab.where = "none"
            if self.events.active:
                self._emit("obj_free", f"{s.name}: {obj:#x} freed; its slab is empty and the node "
                           f"already keeps {kept} ≥ min_partial {s.min_partial} partial slabs",
                           cache=s.name, obj=obj, cpu=cpu, path="slow")
            self.discard_slab(s, slab)
            return
        if not prior:
            self.add_partial(s, slab, tail=True)
            s.stat["FREE_ADD_PARTIAL"] += 1
            if self.events.active:
                self._emit("obj_free", f"{s.name}: {obj:#x} freed into a full slab (pfn "
                           f"{slab.pfn:#x}): it joins the tail of the partial list",
                           cache=s.name, obj=obj, cpu=cpu, path="slow")
            return
        if self.events.active:
            self._emit("obj_free", f"{s.name}: {obj:#x} freed into its partial slab (pfn "
                       f"{slab.pfn:#x}, {slab.inuse} in use"
                       f"{', kept empty: min_partial' if not slab.inuse else ''})",
                       cache=s.name, obj=obj, cpu=cpu, path="slow")

    def _free_debug(self, s: KmemCache, slab: Slab, obj: int, caller: str) -> None:
        """``free_to_partial_list()``: a debugging cache checks the object
        (``free_debug_processing()``), poisons it, and fixes the lists under the node lock."""
        D.free_debug_processing(self, s, slab, obj, caller)
        self._live.pop(obj, None)
        n = s.node
        prior = slab.freelist
        self.set_freepointer(s, slab, obj, prior)
        slab.freelist = obj
        slab.inuse -= 1
        discard = slab.inuse == 0 and n.nr_partial >= s.min_partial
        if not prior:
            self._remove_from_lists(s, slab)         # remove_full()
            if not discard:
                self.add_partial(s, slab, tail=True)
                s.stat["FREE_ADD_PARTIAL"] += 1
        elif discard:
            n.partial.remove(slab)
            slab.where = "none"
            s.stat["FREE_REMOVE_PARTIAL"] += 1
        if self.events.active:
            self._emit("obj_free", f"{s.name}: debug cache: {obj:#x} checked, poisoned, freed",
                       cache=s.name, obj=obj, path="debug")
        if discard:
            self.discard_slab(s, slab)

    # -- flushing and shrinking -------------------------------------------------------------
    def deactivate_slab(self, s: KmemCache, slab: Slab, freelist: int) -> None:
        """``deactivate_slab()``: give the cpu slab back to the node. The cpu freelist is
        spliced onto the slab's; then the slab is discarded (empty, and the node has enough
        partial slabs), added to the partial list (at the tail if other CPUs had freed into it,
        else the head), or left on no list (full)."""
        tail = bool(slab.freelist)
        if tail:
            s.stat["DEACTIVATE_REMOTE_FREES"] += 1
        # Stage one: count the cpu freelist and find its tail.
        free_delta, last, o = 0, 0, freelist
        while o:
            free_delta += 1
            last = o
            o = self.get_freepointer(s, slab, o)
        # Stage two: splice it in front of the slab's freelist, unfreeze.
        if last:
            self.set_freepointer(s, slab, last, slab.freelist)
            slab.freelist = freelist
            slab.inuse -= free_delta
        slab.frozen = False
        slab.where, slab.cpu = "none", -1
        n = s.node
        if not slab.inuse and n.nr_partial >= s.min_partial:
            s.stat["DEACTIVATE_EMPTY"] += 1
            self.discard_slab(s, slab)
        elif slab.freelist:
            self.add_partial(s, slab, tail)
            s.stat["DEACTIVATE_TO_TAIL" if tail else "DEACTIVATE_TO_HEAD"] += 1
            if self.events.active:
                self._emit("deactivate", f"{s.name}: cpu slab at pfn {slab.pfn:#x} goes to the "
                           f"{'tail' if tail else 'head'} of the partial list ({slab.inuse} of "
                           f"{slab.objects} in use)", cache=s.name, pfn=slab.pfn)
        else:
            s.stat["DEACTIVATE_FULL"] += 1

    def flush_all(self, s: KmemCache) -> None:
        """``flush_all()``: deactivate every CPU's slab (``flush_slab()``)."""
        for c in s.cpu_slab:
            if c.slab is not None:
                slab, freelist = c.slab, c.freelist
                c.slab, c.freelist = None, 0
                c.tid += 1
                s.stat["CPUSLAB_FLUSH"] += 1
                self.deactivate_slab(s, slab, freelist)

    def kmem_cache_shrink(self, cache: str | KmemCache) -> int:
        """``kmem_cache_shrink()`` → ``__kmem_cache_shrink()``: flush the cpu slabs, give every
        empty partial slab back to the page allocator (min_partial notwithstanding), and sort
        the partial list so the fullest slabs are used first. Returns the pages freed."""
        s = self.cache(cache)
        self.flush_all(s)
        n = s.node
        discard: list[Slab] = []
        promote: list[list[Slab]] = [[] for _ in range(SHRINK_PROMOTE_MAX)]
        keep: list[Slab] = []
        for slab in n.partial:
            free = slab.objects - slab.inuse
            if free == slab.objects:
                discard.insert(0, slab)              # list_move(): to the head
            elif free <= SHRINK_PROMOTE_MAX:
                promote[free - 1].insert(0, slab)
            else:
                keep.append(slab)
        # list_splice() each promote list to the head, the most-free first, so that slabs with
        # one free object end up at the very head.
        n.partial = [sl for i in range(SHRINK_PROMOTE_MAX) for sl in promote[i]] + keep
        pages = 0
        for slab in discard:
            slab.where = "none"
            pages += slab.nr_pages
            self.discard_slab(s, slab)
        if self.events.active:
            plural = "s" if len(discard) != 1 else ""
            self._emit("shrink", f"kmem_cache_shrink({s.name}): {len(discard)} empty slab"
                       f"{plural} ({pages} page{'s' if pages != 1 else ''})"
                       " back to the buddy allocator; partial list sorted fullest first",
                       cache=s.name, pages=pages)
        return pages

    # -- kmalloc --------------------------------------------------------------------------
    def kmalloc_slab(self, size: int, gfp: int) -> KmemCache:
        """``kmalloc_slab()``: the cache for a size (1..8192) and gfp."""
        return self.kmalloc_caches[K.kmalloc_type(gfp)][K.kmalloc_slab_index(size)]

    def kmalloc(self, size: int, gfp: int | str = "GFP_KERNEL", *, cpu: int = 0,
                caller: str = "kmalloc") -> int | None:
        """``kmalloc(size, gfp)``: an object of the size class (``__do_kmalloc_node()``), pages
        from ``kmalloc_large`` above 8 KiB, ZERO_SIZE_PTR for 0, None when memory runs out."""
        size = K._check_size(size)
        mask = K._mask(gfp)
        self._check_cpu(cpu)
        if size > K.KMALLOC_MAX_CACHE_SIZE:
            return self._kmalloc_large(size, mask)
        if size == 0:
            return K.ZERO_SIZE_PTR
        s = self.kmalloc_slab(size, mask)
        obj = self.slab_alloc_node(s, mask, cpu, size, caller)
        if obj:
            if self.events.active:
                self._emit("kmalloc", f"kmalloc({size}, {_gfp.format_gfp(mask)}) → {s.name}: "
                           f"bytes_req={size} bytes_alloc={s.size}", cache=s.name, obj=obj,
                           bytes_req=size, bytes_alloc=s.size)
        return obj or None

    def kzalloc(self, size: int, gfp: int | str = "GFP_KERNEL", **kw) -> int | None:
        """``kzalloc()``: kmalloc with __GFP_ZERO."""
        return self.kmalloc(size, K._mask(gfp) | GFP_ZERO, **kw)

    def _kmalloc_large(self, size: int, gfp: int) -> int | None:
        """``__kmalloc_large_node()``: a compound page of ``get_order(size)`` from the buddy
        allocator, typed large_kmalloc (6.17+) and counted as unreclaimable slab memory."""
        order = get_order(size)
        if order > 10:
            self.dmesg.append(f"WARNING: kmalloc({size}): order {order} > MAX_PAGE_ORDER")
            if self.events.active:
                self._emit("alloc_fail", f"kmalloc({size}): order {order} > MAX_PAGE_ORDER → NULL")
            return None
        pfn = self.pages.alloc_pages(gfp | GFP_COMP, order)
        if pfn is None:
            return None
        mm = self._mem_map(pfn)
        mm.page_type[mm.index(pfn)] = _pf.PGTY_large_kmalloc << 24
        self._large[pfn] = order
        self.nr_slab_unreclaimable += 1 << order
        addr = self.page_address(pfn)
        if self.events.active:
            self._emit("kmalloc", f"kmalloc({size}, {_gfp.format_gfp(gfp)}) → kmalloc_large: "
                       f"order-{order} pages at pfn {pfn:#x}: bytes_req={size} "
                       f"bytes_alloc={PAGE_SIZE << order}", obj=addr, bytes_req=size,
                       bytes_alloc=PAGE_SIZE << order, pfn=pfn, order=order)
        return addr

    def kfree(self, addr: int | None, *, cpu: int = 0, caller: str = "kfree") -> None:
        """``kfree(p)``: NULL and ZERO_SIZE_PTR are ignored; a slab object goes back to its
        cache, a kmalloc_large block to the buddy allocator."""
        if addr is None or (isinstance(addr, int) and 0 <= addr <= K.ZERO_SIZE_PTR):
            return
        self._check_cpu(cpu)
        pfn = self.virt_to_pfn(addr)
        slab = self._slab_by_pfn.get(pfn)
        if slab is not None:
            self.slab_free(slab.cache, addr, cpu, caller, slab)
            return
        if pfn in self._large:
            order = self._large.pop(pfn)
            if addr != self.page_address(pfn):
                self._large[pfn] = order
                raise BadRequest(f"kfree({addr:#x}): inside a kmalloc_large block at "
                                 f"{self.page_address(pfn):#x}, not its start")
            mm = self._mem_map(pfn)
            mm.page_type[mm.index(pfn)] = UINT_MAX
            self.nr_slab_unreclaimable -= 1 << order
            self.pages.free(pfn, order)
            if self.events.active:
                self._emit("kfree", f"kfree({addr:#x}): kmalloc_large block of order {order} back "
                           "to the buddy allocator", obj=addr, order=order)
            return
        raise BadRequest(f"kfree({addr:#x}): neither a slab object nor a kmalloc_large block "
                         "(the kernel WARNs in free_large_kmalloc(): 'object pointer: 0x…')")

    def ksize(self, addr: int) -> int:
        """``ksize()``: the usable size of an allocation (``slab_ksize()``: the slot without
        debugging, the object alone with red zones or poison), or the whole pages of a
        kmalloc_large block; 0 for ZERO_SIZE_PTR."""
        if addr == K.ZERO_SIZE_PTR:
            return 0
        pfn = self.virt_to_pfn(addr)
        if pfn in self._large:
            return PAGE_SIZE << self._large[pfn]
        slab = self._slab_by_pfn.get(pfn)
        if slab is None:
            raise BadRequest(f"ksize({addr:#x}): not a kmalloc'd address")
        s = slab.cache
        if s.flags & (F.SLAB_RED_ZONE | F.SLAB_POISON):
            return s.object_size
        if s.flags & (F.SLAB_TYPESAFE_BY_RCU | F.SLAB_STORE_USER):
            return s.inuse
        return s.size

    # -- memory access (for experiments and for bugs) --------------------------------------
    def _locate(self, addr: int, n: int) -> tuple[Slab, int]:
        slab = self._slab_by_pfn.get((addr - self.page_offset) >> PAGE_SHIFT) \
            if isinstance(addr, int) else None
        if slab is None:
            raise BadRequest(f"BUG: unable to handle page fault for address {addr!r}: not in "
                             "a slab page of this simulator")
        off = addr - slab.base
        if n < 0 or off + n > len(slab.mem):
            raise BadRequest(f"access of {n} bytes at {addr:#x} runs past its slab")
        return slab, off

    def write(self, addr: int, data: bytes) -> None:
        """Store bytes at a kernel address inside a slab — anywhere, as buggy code can:
        past the object, into a red zone, into a freed object."""
        slab, off = self._locate(addr, len(data))
        slab.mem[off:off + len(data)] = bytes(data)

    def memset(self, addr: int, value: int, n: int) -> None:
        """``memset(addr, value, n)`` inside a slab."""
        self.write(addr, bytes([value & 0xFF]) * n)

    def read(self, addr: int, n: int) -> bytes:
        """The ``n`` bytes at ``addr`` inside a slab."""
        slab, off = self._locate(addr, n)
        return bytes(slab.mem[off:off + n])

    def hexdump(self, addr: int, n: int, label: str = "") -> str:
        """``print_hex_dump()``-style lines for ``n`` bytes at ``addr``."""
        return "\n".join(D.hex_dump_lines(label, addr, self.read(addr, n)))

    # -- looking at it ----------------------------------------------------------------------
    def slabinfo_rows(self) -> list[SlabinfoRow]:
        return [s.slabinfo_row() for s in self.slab_caches]

    def slabinfo(self) -> str:
        """/proc/slabinfo of the simulated machine, in the kernel's exact format."""
        return format_slabinfo(self.slabinfo_rows())

    def slabtop(self, limit: int | None = 10, sort: str = "objs") -> str:
        return slabtop(self.slabinfo_rows(), limit, sort)

    def meminfo(self) -> dict[str, int]:
        """The slab lines of /proc/meminfo, in kB: Slab, SReclaimable, SUnreclaim."""
        rec = self.nr_slab_reclaimable * PAGE_SIZE // 1024
        unrec = self.nr_slab_unreclaimable * PAGE_SIZE // 1024
        return {"Slab": rec + unrec, "SReclaimable": rec, "SUnreclaim": unrec}

    def slab_pages(self) -> int:
        """Pages held by slabs and kmalloc_large blocks."""
        return self.nr_slab_reclaimable + self.nr_slab_unreclaimable

    def object_state(self, s: KmemCache) -> dict[int, str]:
        """Every object of every slab of ``s``: ``used``, ``cpu`` (on a per-cpu freelist) or
        ``free`` (on its slab's freelist). Walks the freelists, as ``get_map()`` does."""
        out: dict[int, str] = {}
        for slab in s.slabs.values():
            for o in range(slab.objects):
                out[slab.base + s.red_left_pad + o * s.size] = "used"
            p, seen = slab.freelist, 0
            while p and seen <= slab.objects:
                out[p] = "free"
                p, seen = self.get_freepointer(s, slab, p), seen + 1
        for c in s.cpu_slab:
            p, seen = c.freelist, 0
            while p and c.slab is not None and seen <= c.slab.objects:
                out[p] = "cpu"
                p, seen = self.get_freepointer(s, c.slab, p), seen + 1
        return out

    def check(self) -> None:
        """Verify SLUB's invariants for every cache; raise BadPageState on the first broken one.

        - every slab's objects = inuse + its freelist (+ the cpu freelist when frozen);
        - objects the shadow says are live = objects in use; node counts match the slabs;
        - partial slabs have free objects, list membership matches ``where``;
        - slab pages are typed slab in mem_map and accounted in the Slab counters."""
        pages = 0
        live_by_cache: Counter[str] = Counter()
        for a in self._live:
            c = self._cache_of_object(a)
            if c is None:
                raise BadPageState(f"BUG: live object {a:#x} is in no slab")
            live_by_cache[c.name] += 1
        for s in self.slab_caches:
            n = s.node
            state = self.object_state(s)
            in_use = sum(1 for v in state.values() if v == "used")
            if n.nr_slabs != len(s.slabs) or n.total_objects != sum(
                    sl.objects for sl in s.slabs.values()):
                raise BadPageState(f"BUG {s.name}: node counts {n.nr_slabs} slabs/"
                                   f"{n.total_objects} objects disagree with its slabs")
            if in_use != live_by_cache[s.name] and not s.debug:
                raise BadPageState(f"BUG {s.name}: {in_use} objects in use by the freelists, "
                                   f"{live_by_cache[s.name]} live")
            for slab in s.slabs.values():
                free = sum(1 for o in range(slab.objects)
                           if state[slab.base + s.red_left_pad + o * s.size] != "used")
                nfree = 0
                p = slab.freelist
                while p:
                    nfree += 1
                    p = self.get_freepointer(s, slab, p)
                    if nfree > slab.objects:
                        raise BadPageState(f"BUG {s.name}: Freechain corrupt in {slab}")
                if slab.frozen:
                    if slab.where != "cpu" or s.cpu_slab[slab.cpu].slab is not slab:
                        raise BadPageState(f"BUG {s.name}: frozen {slab} is no CPU's slab")
                elif slab.objects - slab.inuse != nfree:
                    raise BadPageState(f"BUG {s.name}: {slab} inuse {slab.inuse} but "
                                       f"{nfree} on its freelist")
                if slab.where == "partial" and (slab not in n.partial or not nfree):
                    raise BadPageState(f"BUG {s.name}: {slab} wrongly on the partial list")
                if slab.where != "partial" and slab in n.partial:
                    raise BadPageState(f"BUG {s.name}: {slab} on the partial list as "
                                       f"{slab.where}")
                if (slab.where == "full") != (slab in n.full) or (
                        slab.where == "full" and not s.flags & F.SLAB_STORE_USER):
                    raise BadPageState(f"BUG {s.name}: {slab} and the full list disagree "
                                       "(only SLAB_STORE_USER caches keep one)")
                if not slab.frozen and slab.where == "none" and free and not s.debug:
                    raise BadPageState(f"BUG {s.name}: {slab} has free objects but is on no "
                                       "list")
                mm = self._mem_map(slab.pfn)
                if mm.page_type[mm.index(slab.pfn)] >> 24 != _pf.PGTY_slab:
                    raise BadPageState(f"BUG: slab page {slab.pfn:#x} is not typed slab")
                pages += slab.nr_pages
        pages += sum(1 << o for o in self._large.values())
        if pages != self.slab_pages():
            raise BadPageState(f"BUG: slabs hold {pages} pages, counters say "
                               f"{self.slab_pages()}")

    # -- the Stepper model protocol ----------------------------------------------------------
    def apply(self, op: tuple):
        """``("create", name, size[, flags])``, ``("alloc", cache[, cpu])``,
        ``("free", addr[, cpu])``, ``("kmalloc", size[, gfp])``, ``("kfree", addr)``,
        ``("shrink", cache)``, ``("destroy", cache)``."""
        kind, *args = op
        if kind == "create":
            return self.kmem_cache_create(*args).name
        if kind == "alloc":
            return self.kmem_cache_alloc(args[0], cpu=args[1] if len(args) > 1 else 0)
        if kind == "free":
            return self.kfree(args[0], cpu=args[1] if len(args) > 1 else 0)
        if kind == "kmalloc":
            return self.kmalloc(*args)
        if kind == "kfree":
            return self.kfree(args[0])
        if kind == "shrink":
            return self.kmem_cache_shrink(args[0])
        if kind == "destroy":
            return self.kmem_cache_destroy(args[0])
        raise BadRequest(f"unknown operation {op!r}")

    def render(self, caches: list[str] | None = None) -> str:
        """Each (named, or non-empty user) cache's slabs as rows of objects."""
        names = caches or [s.name for s in self.slab_caches
                           if s.node.nr_slabs and s not in self._boot_caches.values()
                           and not s.flags & F.SLAB_KMALLOC]
        return "\n".join(render_cache(self, self.cache(n)) for n in names) or "(no slabs)"


def render_cache(slub: Slub, s: KmemCache, width: int = 64) -> str:
    """A cache's slabs as text rows: ``#`` object in use, ``c`` free on a per-cpu freelist,
    ``.`` free on the slab's own freelist; cpu slabs first, then the partial list (head first),
    then slabs on no list (full)."""
    state = slub.object_state(s)

    def row(slab: Slab) -> str:
        marks = {"used": "#", "cpu": "c", "free": "."}
        cells = "".join(marks[state[slab.base + s.red_left_pad + i * s.size]]
                        for i in range(slab.objects))
        if len(cells) > width:
            cells = cells[:width - 1] + "…"
        used = sum(1 for ch in cells if ch == "#")
        return f"pfn {slab.pfn:#x} [{cells}] {used}/{slab.objects}"

    lines = [f"{s.name}: {s.object_size}-byte objects in {s.size}-byte slots, "
             f"{s.objects_per_slab} per slab of {1 << s.order} page"
             f"{'s' if s.order else ''}; min_partial {s.min_partial}"]
    for cpu, c in enumerate(s.cpu_slab):
        if c.slab is not None:
            lines.append(f"  cpu {cpu} slab   {row(c.slab)}")
    for i, slab in enumerate(s.node.partial):
        lines.append(f"  partial[{i}]   {row(slab)}")
    rest = [sl for sl in s.slabs.values() if sl.where in ("none", "full")]
    for slab in rest:
        lines.append(f"  {'full (debug)' if slab.where == 'full' else 'full':<12} {row(slab)}")
    if not s.slabs:
        lines.append("  (no slabs)")
    lines.append(f"  slabinfo: {s.slabinfo_row().line().rstrip()}")
    return "\n".join(lines)


def make_zone(nr_pages: int = 4096, start_pfn: int = 0x100000, *,
              events: EventLog | None = None):
    """A ZONE_NORMAL for slab experiments: ``nr_pages`` pages at ``start_pfn`` (4 GiB), with its
    pageblocks already typed as a running system's would be — the first half Unmovable (for
    GFP_KERNEL slabs), a quarter Reclaimable (SLAB_RECLAIM_ACCOUNT caches), the rest Movable —
    so that slab pages come from pageblocks of their own type, not by stealing (chapter 07).
    The types are laid out in whole MAX_PAGE_ORDER blocks, since the buddy allocator re-types
    a pageblock it merges into a bigger free block (``__free_one_page()``): a zone of at least
    4096 pages has the real geometry (pageblock order 9, max order 10); a smaller one has max
    order 3 (8-page pageblocks and blocks)."""
    from kmmlib.mm.page_alloc import Zone

    if not isinstance(nr_pages, int) or nr_pages < 8:
        raise BadRequest(f"make_zone: at least 8 pages, not {nr_pages!r}")
    if nr_pages >= 4096 and nr_pages % 1024 == 0:
        pageblock_order, max_order = 9, 10
    else:
        pageblock_order = max_order = 3
    unit = 1 << max_order
    if start_pfn % unit:
        raise BadRequest(f"make_zone: start_pfn {start_pfn:#x} must be a multiple of {unit}")
    z = Zone(nr_pages, start_pfn, name="Normal", pageblock_order=pageblock_order,
             max_order=max_order, boot=False, events=events)
    # __init_single_page() → set_page_links(): the zone (ZONE_NORMAL) and node in page->flags.
    z.mem_map.set_page_links(start_pfn, start_pfn + nr_pages, z.zone_idx)
    units = -(-nr_pages // unit)
    unmovable = max(1, units // 2)
    reclaimable = max(1, units // 4) if units > 1 else 0
    for u in range(units):
        mt = ("Unmovable" if u < unmovable else
              "Reclaimable" if u < unmovable + reclaimable else "Movable")
        for pfn in range(start_pfn + u * unit, min(start_pfn + (u + 1) * unit,
                                                   start_pfn + nr_pages), 1 << pageblock_order):
            z.set_pageblock_migratetype(pfn, mt)
    z.memblock_free_all()
    return z


class SlabExplorer:
    """The model under the slab explorer widget: one cache on a small machine, objects named
    by the order they were allocated in (``#1``, ``#2`` …) so that a script reads well.

    Ops: ``("alloc",)`` or ``("alloc", cpu)``; ``("free", n)`` or ``("free", n, cpu)`` frees
    object ``#n``; ``("shrink",)``."""

    def __init__(self, object_size: int = 256, *, name: str = "demo", nr_pages: int = 64,
                 nr_cpus: int = 1, flags: int | str = 0, min_partial: int | None = None,
                 slab_debug: str | None = None):
        zone = make_zone(nr_pages)
        self.slub = Slub(zone, nr_cpus=nr_cpus, kmalloc=False, slab_debug=slab_debug,
                         slab_debug_caches=[name] if slab_debug is not None else None)
        self.events = EventLog()
        self.slub.events = self.events
        self.zone = zone
        self.cache = self.slub.kmem_cache_create(name, object_size, 0, flags)
        if min_partial is not None:          # /sys/kernel/slab/<cache>/min_partial
            self.cache.min_partial = min_partial
        self.objects: dict[int, int] = {}     # label → address
        self.labels: dict[int, int] = {}      # address → label
        self.next_label = 1

    def apply(self, op: tuple):
        kind, *args = op
        if kind == "alloc":
            cpu = args[0] if args else 0
            addr = self.slub.kmem_cache_alloc(self.cache, cpu=cpu)
            if addr is None:
                return "NULL"
            label = self.next_label
            self.next_label += 1
            self.objects[label] = addr
            self.labels[addr] = label
            return f"#{label} at {addr:#x}"
        if kind == "free":
            if not args or args[0] not in self.objects:
                raise BadRequest(f"free: no live object #{args[0] if args else '?'}; live: "
                                 f"{', '.join(f'#{n}' for n in self.objects) or 'none'}")
            label = args[0]
            addr = self.objects[label]
            self.slub.kmem_cache_free(self.cache, addr, cpu=args[1] if len(args) > 1 else 0)
            del self.objects[label]
            del self.labels[addr]
            return None
        if kind == "shrink":
            pages = self.slub.kmem_cache_shrink(self.cache)
            return f"{pages} page{'s' if pages != 1 else ''} freed"
        raise BadRequest(f"unknown operation {op!r}: use ('alloc',), ('free', n), ('shrink',)")

    def render(self) -> str:
        s = self.cache
        state = self.slub.object_state(s)

        def row(slab: Slab) -> str:
            cells = []
            for i in range(slab.objects):
                a = slab.base + s.red_left_pad + i * s.size
                st = state[a]
                cells.append(f"{self.labels[a]:>3}" if st == "used" else
                             ("  c" if st == "cpu" else "  ."))
            return f"pfn {slab.pfn:#x} |{''.join(cells)} |"

        lines = [f"{s.name}: {s.objects_per_slab} objects of {s.size} bytes per slab "
                 f"({1 << s.order} page{'s' if s.order else ''}); the node keeps up to "
                 f"min_partial={s.min_partial} partial slabs, even empty ones"]
        for cpu, c in enumerate(s.cpu_slab):
            if c.slab is not None:
                free = []
                p = c.freelist
                while p:
                    free.append(p)
                    p = self.slub.get_freepointer(s, c.slab, p)
                order = " → ".join(f"slot {(a - c.slab.base) // s.size}" for a in free[:4])
                lines.append(f"cpu {cpu} slab    {row(c.slab)} freelist: "
                             f"{order or 'empty'}{' …' if len(free) > 4 else ''}")
        for i, slab in enumerate(s.node.partial):
            lines.append(f"{f'partial[{i}]':<14}{row(slab)}")
        for slab in s.slabs.values():
            if slab.where in ("none", "full"):
                lines.append(f"full          {row(slab)}")
        zone = self.zone
        held = sum(sl.nr_pages for sl in s.slabs.values())
        lines.append(f"{s.name} holds {held} page{'s' if held != 1 else ''} in "
                     f"{len(s.slabs)} slab{'s' if len(s.slabs) != 1 else ''}; the buddy "
                     f"allocator has {zone.nr_free_pages} of {zone.managed_pages} pages free")
        lines.append("(number: object in use, c: free on the per-cpu freelist, .: free on the "
                     "slab's freelist)")
        return "\n".join(lines)


__all__ = ["KmemCache", "KmemCacheCpu", "KmemCacheNode", "Slab", "SlabExplorer", "Slub",
           "make_zone", "render_cache"]

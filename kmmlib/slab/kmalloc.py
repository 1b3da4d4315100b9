"""kmalloc's size classes: which cache serves ``kmalloc(size, gfp)``, and how much it hands out.

``kmalloc()`` is a set of ready-made slab caches, one per size class, plus the page allocator
for anything bigger (include/linux/slab.h, mm/slab_common.c, mm/slub.c, Linux 6.18, x86_64 with
4 KiB pages):

- The classes are 8, 16, 32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k and 8k bytes. 96 and 192
  exist because 65..96 and 129..192 byte requests are common and the next power of two would
  waste up to a third. A request takes the smallest class that holds it: 1..8 → 8, 9..16 → 16,
  17..32 → 32, 33..64 → 64, 65..96 → 96, 97..128 → 128, 129..192 → 192, then the next power of
  two (``kmalloc_size_index[]`` for sizes up to 192, ``fls(size - 1)`` above).
- Above KMALLOC_MAX_CACHE_SIZE (8 KiB, two pages) ``kmalloc_large()`` takes whole pages:
  ``PAGE_SIZE << get_order(size)`` bytes, a compound page straight from the buddy allocator.
  Above KMALLOC_MAX_SIZE (4 MiB, MAX_PAGE_ORDER) the allocation fails: NULL.
- ``kmalloc(0)`` returns ZERO_SIZE_PTR (16), a pointer that faults when used and that
  ``kfree()`` accepts.
- Each class exists in several families chosen by the gfp flags (``kmalloc_type()``):
  ``dma-kmalloc-*`` for __GFP_DMA, ``kmalloc-rcl-*`` for __GFP_RECLAIMABLE (reclaimable,
  counted in SReclaimable), ``kmalloc-cg-*`` for __GFP_ACCOUNT (charged to the caller's memory
  cgroup), ``kmalloc-*`` otherwise. There is no DMA32 family.

Everything here is pure arithmetic; the caches themselves are in :mod:`kmmlib.slab.slub`.
Simplification: CONFIG_RANDOM_KMALLOC_CACHES (16 copies of every normal cache, picked by a hash
of the call site) and ``kmem_buckets`` are not modelled; the bundled snapshot's kernel has
neither.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kmmlib.errors import BadRequest
from kmmlib.mm import gfp as _gfp
from kmmlib.slab.calculate import PAGE_SHIFT, PAGE_SIZE, fls, get_order

KMALLOC_MIN_SIZE = 8                      # ARCH_KMALLOC_MINALIGN on x86_64
KMALLOC_SHIFT_LOW = 3
KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1       # 13
KMALLOC_SHIFT_MAX = 10 + PAGE_SHIFT       # MAX_PAGE_ORDER + PAGE_SHIFT = 22
KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH    # 8192
KMALLOC_MAX_SIZE = 1 << KMALLOC_SHIFT_MAX           # 4 MiB
ZERO_SIZE_PTR = 16                        # ((void *)16)

# enum kmalloc_cache_type (include/linux/slab.h) for the snapshot's config: ZONE_DMA and MEMCG,
# no random caches, not SLUB_TINY. create_kmalloc_caches() makes the families in this order.
KMALLOC_NORMAL, KMALLOC_RECLAIM, KMALLOC_DMA, KMALLOC_CGROUP = 0, 1, 2, 3
NR_KMALLOC_TYPES = 4
KMALLOC_TYPES = ("KMALLOC_NORMAL", "KMALLOC_RECLAIM", "KMALLOC_DMA", "KMALLOC_CGROUP")
_PREFIX = ("kmalloc-", "kmalloc-rcl-", "dma-kmalloc-", "kmalloc-cg-")

# kmalloc_info[] (mm/slab_common.c): index → (size, name suffix). Index 1 and 2 are the odd
# classes 96 and 192; index n ≥ 3 is 2^n.
KMALLOC_INFO: tuple[tuple[int, str], ...] = (
    (0, "0"), (96, "96"), (192, "192"), (8, "8"), (16, "16"), (32, "32"), (64, "64"),
    (128, "128"), (256, "256"), (512, "512"), (1024, "1k"), (2048, "2k"), (4096, "4k"),
    (8192, "8k"), (16384, "16k"), (32768, "32k"), (65536, "64k"), (131072, "128k"),
    (262144, "256k"), (524288, "512k"), (1048576, "1M"), (2097152, "2M"),
)

# kmalloc_size_index[24] (mm/slab_common.c): the class index for each 8-byte step up to 192,
# looked up with size_index_elem(size) = (size - 1) / 8.
KMALLOC_SIZE_INDEX = (3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2)

_G = _gfp.DEFAULT.masks


def _check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"kmalloc: size must be a non-negative integer, not {size!r}")
    return size


def kmalloc_index(size: int) -> int:
    """``__kmalloc_index()`` (include/linux/slab.h), the compile-time form: the class index of a
    constant size (0 for 0; 1 for 65..96; 2 for 129..192; else the smallest n with size ≤ 2^n).
    Its table ends at 2 MiB (index 21): a larger size is refused, as the kernel's
    ``BUILD_BUG_ON_MSG(1, "unexpected size in kmalloc_index()")`` refuses it."""
    size = _check_size(size)
    if size == 0:
        return 0
    if size <= KMALLOC_MIN_SIZE:
        return KMALLOC_SHIFT_LOW
    if KMALLOC_MIN_SIZE <= 32 and 64 < size <= 96:
        return 1
    if KMALLOC_MIN_SIZE <= 64 and 128 < size <= 192:
        return 2
    if size > 2 << 20:
        raise BadRequest(f"kmalloc_index: unexpected size {size} (its table ends at 2 MiB)")
    return max(KMALLOC_SHIFT_LOW, (size - 1).bit_length())


def size_index_elem(size: int) -> int:
    """``size_index_elem()``: the slot of ``kmalloc_size_index[]`` for sizes 1..192."""
    return (size - 1) // 8


def kmalloc_slab_index(size: int) -> int:
    """The runtime lookup in ``kmalloc_slab()``: the table for sizes up to 192, then
    ``fls(size - 1)``. Only for 1 ≤ size ≤ KMALLOC_MAX_CACHE_SIZE."""
    size = _check_size(size)
    if not 1 <= size <= KMALLOC_MAX_CACHE_SIZE:
        raise BadRequest(f"kmalloc_slab: {size} bytes is not served by a kmalloc cache "
                         f"(1..{KMALLOC_MAX_CACHE_SIZE})")
    if size <= 192:
        return KMALLOC_SIZE_INDEX[size_index_elem(size)]
    return fls(size - 1)


_PARSED: dict[str, int] = {}


def _mask(gfp: int | str) -> int:
    if isinstance(gfp, str):
        mask = _PARSED.get(gfp)
        if mask is None:
            mask = _PARSED[gfp] = _gfp.parse_gfp(gfp)
        return mask
    if not isinstance(gfp, int) or gfp < 0:
        raise BadRequest(f"gfp must be a mask or a flag string, not {gfp!r}")
    return gfp


def kmalloc_type(gfp: int | str) -> int:
    """``kmalloc_type()``: KMALLOC_NORMAL unless a "not normal" bit is set; then __GFP_DMA wins,
    then __GFP_RECLAIMABLE, then __GFP_ACCOUNT (KMALLOC_CGROUP)."""
    gfp = _mask(gfp)
    if not gfp & (_G["__GFP_RECLAIMABLE"] | _G["__GFP_DMA"] | _G["__GFP_ACCOUNT"]):
        return KMALLOC_NORMAL
    if gfp & _G["__GFP_DMA"]:
        return KMALLOC_DMA
    if gfp & _G["__GFP_RECLAIMABLE"]:
        return KMALLOC_RECLAIM
    return KMALLOC_CGROUP


def kmalloc_cache_name(index: int, kind: int = KMALLOC_NORMAL) -> str:
    """The cache name for a class index and family: ``kmalloc-rcl-192``, ``dma-kmalloc-1k``."""
    if not 1 <= index <= KMALLOC_SHIFT_HIGH:
        raise BadRequest(f"kmalloc: no cache for index {index}")
    return _PREFIX[kind] + KMALLOC_INFO[index][1]


def kmalloc_cache_names() -> list[str]:
    """Every kmalloc cache in the order ``create_kmalloc_caches()`` makes them: family by family
    (normal, rcl, dma, cg), each in class-index order (96 and 192 first, then 8 … 8k).
    /proc/slabinfo lists caches newest first, so it shows them in the reverse order."""
    return [kmalloc_cache_name(i, kind) for kind in range(len(_PREFIX))
            for i in range(1, KMALLOC_SHIFT_HIGH + 1)]


def kmalloc_size_roundup(size: int) -> int:
    """``kmalloc_size_roundup()``: how many bytes ``kmalloc(size)`` really reserves, so a caller
    can use them all (the object size of the class, whole pages for kmalloc_large); 0 and sizes
    kmalloc cannot serve are returned as they are."""
    size = _check_size(size)
    if 0 < size <= KMALLOC_MAX_CACHE_SIZE:
        return KMALLOC_INFO[kmalloc_slab_index(size)][0]
    if 0 < size <= KMALLOC_MAX_SIZE:
        return PAGE_SIZE << get_order(size)
    return size


@dataclass(frozen=True)
class KmallocClass:
    """What ``kmalloc(bytes_req, gfp)`` does: the cache (None for kmalloc_large, kmalloc(0) and
    failures), ``bytes_alloc`` as the ``kmalloc`` tracepoint prints it, and for kmalloc_large
    the page order. For the two cases the tracepoint does not cover, the simulator's own
    convention: 0 for kmalloc(0) (which returns ZERO_SIZE_PTR before any event fires), and
    None for a request the kernel refuses; a kmalloc_large that fails is traced with
    ``ptr=0`` and ``bytes_alloc`` = PAGE_SIZE << order."""

    bytes_req: int
    cache: str | None
    bytes_alloc: int | None
    gfp: str
    order: int | None = None
    note: str = ""

    @property
    def waste(self) -> int | None:
        """Bytes reserved but not asked for (internal fragmentation)."""
        return None if self.bytes_alloc is None else self.bytes_alloc - self.bytes_req

    def as_dict(self) -> dict:
        d = asdict(self)
        d["waste"] = self.waste
        return d


def kmalloc_class(size: int, gfp: int | str = "GFP_KERNEL") -> KmallocClass:
    """``__do_kmalloc_node()``'s choice for ``kmalloc(size, gfp)``: kmalloc_large above 8 KiB,
    ZERO_SIZE_PTR for 0, else ``kmalloc_slab()``: the family from the gfp, the class from the
    size. ``bytes_alloc`` is the cache's object size (``s->size`` without debugging)."""
    size = _check_size(size)
    mask = _mask(gfp)
    flags = _gfp.format_gfp(mask)
    if size > KMALLOC_MAX_CACHE_SIZE:
        order = get_order(size)
        if size > KMALLOC_MAX_SIZE:
            return KmallocClass(size, None, None, flags, order,
                                f"NULL: order {order} > MAX_PAGE_ORDER 10 (alloc_pages WARNs)")
        return KmallocClass(size, None, PAGE_SIZE << order, flags, order,
                            f"kmalloc_large: order-{order} compound page from the buddy "
                            "allocator")
    if size == 0:
        return KmallocClass(0, None, 0, flags, None, "ZERO_SIZE_PTR (16): no memory at all")
    index = kmalloc_slab_index(size)
    return KmallocClass(size, kmalloc_cache_name(index, kmalloc_type(mask)),
                        KMALLOC_INFO[index][0], flags)


__all__ = [
    "KMALLOC_INFO", "KMALLOC_MAX_CACHE_SIZE", "KMALLOC_MAX_SIZE", "KMALLOC_MIN_SIZE",
    "KMALLOC_SIZE_INDEX", "KmallocClass", "ZERO_SIZE_PTR", "kmalloc_cache_name",
    "kmalloc_cache_names", "kmalloc_class", "kmalloc_index", "kmalloc_size_roundup",
    "kmalloc_slab_index", "kmalloc_type",
]

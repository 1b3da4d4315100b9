"""How big a slab is and where an object's bytes go: SLUB's arithmetic, as pure functions.

A *slab* is one block of 2^order pages from the buddy allocator cut into equal objects.
SLUB chooses the order per cache in ``calculate_order()`` (mm/slub.c): big enough to hold a
minimum number of objects — more on machines with more CPUs, so the per-cpu slab lasts longer
before the node's list lock is taken — but no bigger than ``slub_max_order`` (3) unless one
object needs more (then ``get_order(size)``), and the order whose leftover at the end of the
slab is a small enough fraction of it (1/16, then 1/8, 1/4, 1/2). ``/proc/slabinfo``'s
``<objperslab>`` and ``<pagesperslab>`` are this choice; the functions here reproduce every row
of a real 6.18 kernel's slabinfo from the row's ``objsize`` and the CPU count (``kmm slub``
checks it).

``calculate_sizes()`` turns a cache's ``object_size`` into ``s->size`` (the slot each object
occupies): alignment, the free pointer when it cannot live inside the object, and the SLUB
debug metadata (red zones, alloc/free tracks). ``calculate_alignment()`` (mm/slab_common.c) is
what SLAB_HWCACHE_ALIGN does.

Linux 6.7+ algorithm; :func:`calculate_order_legacy` is the ≤ 6.6 loop, which gives the same
orders with the default tunables (the tests check it over every size and CPU count).
"""

from __future__ import annotations

from dataclasses import dataclass

from kmmlib.errors import BadRequest
from kmmlib.slab import flags as F

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_PAGE_ORDER = 10
PAGE_ALLOC_COSTLY_ORDER = 3
MAX_OBJS_PER_PAGE = 32767          # slab->objects is a 15-bit field
OO_SHIFT = 16                      # s->oo packs (order << 16) + objects
SIZEOF_VOID_P = 8                  # x86_64 / arm64
SIZEOF_UNSIGNED_INT = 4
SIZEOF_TRACK = 32                  # struct track with CONFIG_STACKDEPOT: addr, handle, cpu, pid,
                                   # when (8 + 4 + 4 + 4 + 4 padding + 8)
CACHE_LINE_SIZE = 64               # cache_line_size() on x86_64
ARCH_SLAB_MINALIGN = 8             # __alignof__(unsigned long long)

# Caches whose creator names a field of the object for the free pointer
# (kmem_cache_args.use_freeptr_offset, 6.12+), so that SLAB_TYPESAFE_BY_RCU costs no extra
# word: fs/file_table.c files_init() (filp, bfilp) and, since vm_area_struct became
# SLAB_TYPESAFE_BY_RCU (6.15), mm/vma_init.c vma_state_init(). /sys/kernel/slab does not show
# it, so a reading of sysfs needs this list.
FREEPTR_OFFSET_CACHES = ("filp", "bfilp", "vm_area_struct")

# The boot tunables (slab_min_order=, slab_max_order=, slab_min_objects=; mm/slub.c).
SLUB_MIN_ORDER = 0
SLUB_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER
SLUB_MIN_OBJECTS = 0               # 0: computed from the CPU count


def fls(x: int) -> int:
    """``fls()``: the 1-based index of the highest set bit, 0 for 0 (fls(1)=1, fls(2)=2)."""
    return int(x).bit_length()


def get_order(size: int, page_shift: int = PAGE_SHIFT) -> int:
    """``get_order()`` (include/asm-generic/getorder.h): the smallest order whose block of
    ``PAGE_SIZE << order`` bytes holds ``size`` bytes (size ≥ 1)."""
    if size < 1:
        raise BadRequest(f"get_order: size must be at least 1 byte, not {size}")
    return max(0, (size - 1).bit_length() - page_shift)


def order_objects(order: int, size: int, page_size: int = PAGE_SIZE) -> int:
    """``order_objects()``: how many objects of ``size`` bytes fit in a slab of that order."""
    return (page_size << order) // size


def oo_make(order: int, size: int, page_size: int = PAGE_SIZE) -> int:
    """``oo_make()``: ``s->oo`` packs the order and the objects per slab in one word."""
    return (order << OO_SHIFT) + order_objects(order, size, page_size)


def min_objects_for(nr_cpus: int, nr_cpu_ids: int | None = None,
                    slub_min_objects: int = SLUB_MIN_OBJECTS) -> int:
    """The automatic minimum number of objects per slab in ``calculate_order()``:
    ``4 * (fls(nr_cpus) + 1)`` where nr_cpus is ``num_present_cpus()``, or ``nr_cpu_ids``
    when that says 1 (some architectures mark CPUs present only as they come online)."""
    if slub_min_objects:
        return slub_min_objects
    if nr_cpus < 1:
        raise BadRequest(f"nr_cpus must be at least 1, not {nr_cpus}")
    if nr_cpus <= 1 and nr_cpu_ids:
        nr_cpus = nr_cpu_ids
    return 4 * (fls(nr_cpus) + 1)


def calc_slab_order(size: int, min_order: int, max_order: int, fract_leftover: int,
                    page_size: int = PAGE_SIZE) -> int:
    """``calc_slab_order()`` (6.7+): the first order in [min_order, max_order] whose leftover
    ``(PAGE_SIZE << order) % size`` is at most ``1/fract_leftover`` of the slab, or
    ``max_order + 1`` when none is."""
    for order in range(min_order, max_order + 1):
        slab_size = page_size << order
        if slab_size % size <= slab_size // fract_leftover:
            return order
    return max_order + 1


def calculate_order(size: int, nr_cpus: int, *, nr_cpu_ids: int | None = None,
                    slub_min_order: int = SLUB_MIN_ORDER, slub_max_order: int = SLUB_MAX_ORDER,
                    slub_min_objects: int = SLUB_MIN_OBJECTS,
                    page_size: int = PAGE_SIZE) -> int:
    """``calculate_order()`` (mm/slub.c, Linux 6.7+): the slab order for objects of ``size``
    bytes (``s->size``, slabinfo's ``objsize``) on a machine with ``nr_cpus`` present CPUs.

    Raises BadRequest where the kernel returns -ENOSYS (one object needs more than
    MAX_PAGE_ORDER)."""
    if not isinstance(size, int) or size < 1:
        raise BadRequest(f"calculate_order: size must be a positive integer, not {size!r}")
    page_shift = page_size.bit_length() - 1
    min_objects = min_objects_for(nr_cpus, nr_cpu_ids, slub_min_objects)
    # Caches whose objects are so big that slub_max_order holds fewer than min_objects.
    max_objects = max(order_objects(slub_max_order, size, page_size), 1)
    min_objects = min(min_objects, max_objects)
    min_order = max(slub_min_order, get_order(min_objects * size, page_shift))
    if order_objects(min_order, size, page_size) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE, page_shift) - 1
    # First try to keep the waste at most 1/16 of the slab, then accept more.
    for fraction in (16, 8, 4, 2):
        order = calc_slab_order(size, min_order, slub_max_order, fraction, page_size)
        if order <= slub_max_order:
            return order
    # Nothing up to slub_max_order: one object in the smallest block that holds it.
    order = get_order(size, page_shift)
    if order > MAX_PAGE_ORDER:
        raise BadRequest(f"calculate_order: an object of {size} bytes needs order {order} > "
                         f"MAX_PAGE_ORDER {MAX_PAGE_ORDER} (-ENOSYS)")
    return order


def calculate_order_legacy(size: int, nr_cpus: int, *, nr_cpu_ids: int | None = None,
                           slub_min_order: int = SLUB_MIN_ORDER,
                           slub_max_order: int = SLUB_MAX_ORDER,
                           slub_min_objects: int = SLUB_MIN_OBJECTS,
                           page_size: int = PAGE_SIZE) -> int:
    """``calculate_order()`` as Linux ≤ 6.6 wrote it: for min_objects down to 2, try the
    fractions 16, 8, 4 (each from ``max(slub_min_order, get_order(min_objects * size))``);
    then one object with any leftover up to slub_max_order, then up to MAX_ORDER."""
    page_shift = page_size.bit_length() - 1
    min_objects = min_objects_for(nr_cpus, nr_cpu_ids, slub_min_objects)
    max_objects = order_objects(slub_max_order, size, page_size)
    min_objects = min(min_objects, max_objects)

    def calc(min_objs: int, max_order: int, fract: int) -> int:
        if order_objects(slub_min_order, size, page_size) > MAX_OBJS_PER_PAGE:
            return get_order(size * MAX_OBJS_PER_PAGE, page_shift) - 1
        start = max(slub_min_order, get_order(min_objs * size, page_shift))
        return calc_slab_order(size, start, max_order, fract, page_size)

    while min_objects > 1:
        for fraction in (16, 8, 4):
            order = calc(min_objects, slub_max_order, fraction)
            if order <= slub_max_order:
                return order
        min_objects -= 1
    order = calc(1, slub_max_order, 1)
    if order <= slub_max_order:
        return order
    order = calc(1, MAX_PAGE_ORDER, 1)
    if order <= MAX_PAGE_ORDER:
        return order
    raise BadRequest(f"calculate_order: an object of {size} bytes does not fit MAX_PAGE_ORDER")


def slab_shape(size: int, nr_cpus: int, **tunables) -> tuple[int, int]:
    """(objects per slab, pages per slab) — slabinfo's ``<objperslab> <pagesperslab>``."""
    order = calculate_order(size, nr_cpus, **tunables)
    page_size = tunables.get("page_size", PAGE_SIZE)
    return order_objects(order, size, page_size), 1 << order


def explain_order(size: int, nr_cpus: int) -> str:
    """``calculate_order()`` step by step, in words (for the notebook and ``kmm slub``)."""
    mo = min_objects_for(nr_cpus)
    lines = [f"size {size} bytes, {nr_cpus} CPU{'s' if nr_cpus != 1 else ''}:",
             f"  min_objects = 4 * (fls({nr_cpus}) + 1) = {mo}"]
    max_objects = max(order_objects(SLUB_MAX_ORDER, size), 1)
    if max_objects < mo:
        lines.append(f"  only {max_objects} fit in an order-{SLUB_MAX_ORDER} slab: "
                     f"min_objects = {max_objects}")
        mo = max_objects
    min_order = get_order(mo * size)
    lines.append(f"  min_order = get_order({mo} * {size} = {mo * size}) = {min_order}")
    for fraction in (16, 8, 4, 2):
        for order in range(min_order, SLUB_MAX_ORDER + 1):
            slab = PAGE_SIZE << order
            left = slab % size
            ok = left <= slab // fraction
            lines.append(f"  1/{fraction:<2} order {order}: {slab} % {size} = {left} bytes left"
                         f" {'≤' if ok else '>'} {slab // fraction}"
                         f" {'✔' if ok else '✘'}")
            if ok:
                n = order_objects(order, size)
                lines.append(f"  → order {order}: {n} objects in {1 << order} page"
                             f"{'s' if order else ''}, {left} bytes unused per slab")
                return "\n".join(lines)
    order = get_order(size)
    lines.append(f"  → no order up to {SLUB_MAX_ORDER} is good enough: get_order({size}) = "
                 f"{order}, {order_objects(order, size)} object(s) per slab")
    return "\n".join(lines)


# -- object layout: calculate_alignment() and calculate_sizes() -------------------------------

def ALIGN(x: int, a: int) -> int:  # noqa: N802 - the kernel's macro
    return (x + a - 1) & ~(a - 1)


def calculate_alignment(flags: int, align: int, size: int,
                        cache_line_size: int = CACHE_LINE_SIZE) -> int:
    """``calculate_alignment()`` (mm/slab_common.c): SLAB_HWCACHE_ALIGN aligns to the cache
    line, halved while the object fits in half of it (a 20-byte object gets 32, 40 gets 64);
    never below ARCH_SLAB_MINALIGN, always a multiple of the pointer size."""
    if flags & F.SLAB_HWCACHE_ALIGN:
        ralign = cache_line_size
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return ALIGN(align, SIZEOF_VOID_P)


@dataclass(frozen=True)
class Layout:
    """Where each part of an object's slot lies (offsets from the *object* pointer; the left
    red zone is before it). ``size`` is ``s->size``, the slot; ``inuse`` where the metadata
    starts; ``offset`` the free pointer's offset; ``red_left_pad`` the left red zone."""

    object_size: int
    size: int
    align: int
    inuse: int
    offset: int
    red_left_pad: int
    track_offset: int        # -1 without SLAB_STORE_USER
    orig_size_offset: int    # -1 unless kmalloc with SLAB_STORE_USER
    order: int
    objects: int
    min_order: int           # s->min: the order for one object (fallback under fragmentation)
    object_poison: bool      # __OBJECT_POISON: the object itself is poisoned when free

    @property
    def freeptr_outside(self) -> bool:
        """``freeptr_outside_object()``: the free pointer sits after the object."""
        return self.offset >= self.inuse


def calculate_sizes(object_size: int, flags: int = 0, align: int = 0, *, ctor: bool = False,
                    nr_cpus: int = 1, cache_line_size: int = CACHE_LINE_SIZE,
                    freeptr_offset: int | None = None, **tunables) -> Layout:
    """``calculate_sizes()`` (mm/slub.c, 6.12+): ``s->size``, ``s->inuse``, ``s->offset``,
    ``s->red_left_pad`` and the order for ``object_size`` with these flags.

    - The free pointer lives *inside* a free object, in its middle
      (``ALIGN_DOWN(object_size / 2, sizeof(void *))``: a write just past the previous object
      or at the start of this one does not clobber it), unless the object's bytes must survive
      while it is free — a constructor, SLAB_TYPESAFE_BY_RCU (unless the cache gives a
      ``freeptr_offset``), poisoning — or red zoning an object smaller than a word, or a
      kmalloc object whose requested size is recorded (with SLAB_STORE_USER); then it goes
      *after* the object and the slot grows by a word.
    - SLAB_STORE_USER adds two ``struct track`` (who allocated, who freed), plus the original
      kmalloc size for kmalloc caches; SLAB_RED_ZONE adds a word of padding and a left red
      zone of ``red_left_pad`` bytes.
    """
    if not isinstance(object_size, int) or object_size < 1:
        raise BadRequest(f"kmem_cache_create: object size must be at least 1, "
                         f"not {object_size!r}")
    if align and align & (align - 1):
        raise BadRequest(f"kmem_cache_create: align {align} is not a power of two")
    size = ALIGN(object_size, SIZEOF_VOID_P)
    s_align = calculate_alignment(flags, align, object_size, cache_line_size)
    # __OBJECT_POISON: poisoning the object itself needs it to hold no live data while free.
    object_poison = bool(flags & F.SLAB_POISON) and not flags & F.SLAB_TYPESAFE_BY_RCU \
        and not ctor
    if flags & F.SLAB_RED_ZONE and size == object_size:
        size += SIZEOF_VOID_P            # room for a right red zone
    inuse = size
    kmalloc_orig = bool(flags & F.SLAB_STORE_USER and flags & F.SLAB_KMALLOC)
    if ((flags & F.SLAB_TYPESAFE_BY_RCU and freeptr_offset is None) or flags & F.SLAB_POISON
            or ctor or (flags & F.SLAB_RED_ZONE and
                        (object_size < SIZEOF_VOID_P or kmalloc_orig))):
        offset = size
        size += SIZEOF_VOID_P
    elif flags & F.SLAB_TYPESAFE_BY_RCU:
        offset = int(freeptr_offset)
    else:
        offset = (object_size // 2) & ~(SIZEOF_VOID_P - 1)
    track_offset = orig_size_offset = -1
    if flags & F.SLAB_STORE_USER:
        track_offset = size
        size += 2 * SIZEOF_TRACK
        if flags & F.SLAB_KMALLOC:
            orig_size_offset = size
            size += SIZEOF_UNSIGNED_INT
    red_left_pad = 0
    if flags & F.SLAB_RED_ZONE:
        # Padding after the metadata, so that a write before the *next* object hits this
        # padding rather than our tracks or free pointer; then the left red zone.
        size += SIZEOF_VOID_P
        red_left_pad = ALIGN(SIZEOF_VOID_P, s_align)
        size += red_left_pad
    size = ALIGN(size, s_align)
    order = calculate_order(size, nr_cpus, **tunables)
    page_size = tunables.get("page_size", PAGE_SIZE)
    return Layout(object_size=object_size, size=size, align=s_align, inuse=inuse,
                  offset=offset, red_left_pad=red_left_pad, track_offset=track_offset,
                  orig_size_offset=orig_size_offset, order=order,
                  objects=order_objects(order, size, page_size),
                  min_order=get_order(size, page_size.bit_length() - 1),
                  object_poison=object_poison)


__all__ = [
    "ALIGN", "FREEPTR_OFFSET_CACHES", "Layout", "MAX_OBJS_PER_PAGE", "PAGE_SIZE", "calc_slab_order",
    "calculate_alignment", "calculate_order", "calculate_order_legacy", "calculate_sizes",
    "explain_order", "fls", "get_order", "min_objects_for", "oo_make", "order_objects",
    "slab_shape",
]

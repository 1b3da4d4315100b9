"""vmalloc: virtually contiguous memory built from single pages (mm/vmalloc.c, Linux 6.18).

``kmalloc()`` returns memory that is *physically* contiguous: an object inside a slab, or for
big sizes a block of 2^order pages from the buddy allocator, reached through the kernel's linear
map (``PAGE_OFFSET + physical address``). Finding 2^order free contiguous pages gets harder as
memory fragments, and above 4 MiB it is impossible.

``vmalloc(size)`` asks for something weaker: memory that is contiguous *in virtual addresses*
only. It

1. reserves a range of addresses in the vmalloc area (x86_64: 32 TiB from
   ``0xffffc90000000000``) — ``alloc_vmap_area()`` takes the lowest free range that fits, plus
   one unmapped *guard page* after it so that an overrun faults instead of corrupting the
   neighbour;
2. allocates the pages *one at a time* (order 0, wherever the buddy allocator finds them) —
   ``vm_area_alloc_pages()``;
3. maps them one after the other into that range with page-table entries —
   ``vmap_pages_range()``.

So the pages can be anywhere in physical memory; the price is the page-table setup, a TLB
entry per 4 KiB page instead of the linear map's huge pages, and a TLB flush when the area is
freed. ``vfree()`` unmaps and frees the pages at once but gives the *addresses* back lazily: they
sit on a purge list until ``lazy_max_pages()`` worth have gathered (32 MiB × fls(CPUs)), so that
one TLB flush serves many frees — which is why successive vmallocs get ever higher addresses.

The bookkeeping comes from the slab allocator, as in the kernel: a ``struct vm_struct``
(``kzalloc(72)`` → kmalloc-96), a ``struct vmap_area`` from the ``vmap_area`` cache, and the
array of page pointers (``kmalloc(8 × nr_pages)``, or itself vmalloc'd above a page). A real
trace of a fork shows exactly this for the 16 KiB kernel stack: kmalloc 72 → 96, vmap_area,
kmalloc 32 (4 pages × 8 bytes).

Simplifications (one line each):
- one ``struct vmap_area`` per area (the kernel also preallocates one per CPU for splitting
  free ranges);
- pages come through ``alloc_pages(gfp, 0)`` one by one (the kernel's bulk allocator takes them
  from the per-cpu lists in batches); no huge-page mappings (VM_ALLOW_HUGE_VMAP);
- the page tables are a dict from virtual page to pfn; KASLR is off (the vmalloc area starts at
  its default base).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from kmmlib.errors import BadRequest
from kmmlib.events import EventLog

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# arch/x86/include/asm/pgtable_64_types.h, 4-level paging, no KASLR: vmalloc_base and
# VMALLOC_SIZE_TB = 32.
VMALLOC_START = 0xFFFFC90000000000
VMALLOC_END = VMALLOC_START + (32 << 40) - 1
# include/linux/vmalloc.h
VM_IOREMAP = 0x00000001
VM_ALLOC = 0x00000002
VM_MAP = 0x00000004
VM_USERMAP = 0x00000008
VM_UNINITIALIZED = 0x00000020
VM_NO_GUARD = 0x00000040
LAZY_MAX_BYTES = 32 << 20          # lazy_max_pages(): 32 MiB per fls(num_online_cpus())


def PAGE_ALIGN(x: int) -> int:  # noqa: N802 - the kernel's macro
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass
class VmStruct:
    """``struct vm_struct``: one vmalloc area — its address, size (guard page included), flags,
    the pages mapped in it (pfns, in virtual order) and who asked for it."""

    addr: int
    size: int
    flags: int
    caller: str
    pages: list[int] = field(default_factory=list)
    struct_addr: int = 0          # the kmalloc'd vm_struct itself
    pages_array: int = 0          # where the page pointer array lives (kmalloc or vmalloc)
    pages_array_vmalloc: bool = False
    va_struct: int = 0            # the vmap_area object

    @property
    def nr_pages(self) -> int:
        return len(self.pages)

    def get_vm_area_size(self) -> int:
        """``get_vm_area_size()``: the usable size, without the guard page."""
        return self.size - (0 if self.flags & VM_NO_GUARD else PAGE_SIZE)


class Vmalloc:
    """The vmalloc allocator of one simulated machine: the free and busy ranges of the vmalloc
    area, the lazily freed ones, and the page tables of the mapped pages.

    ``pages`` is the page allocator (a Zone or PageAllocator); ``slub`` (optional) a
    :class:`~kmmlib.slab.slub.Slub` from which the bookkeeping structures are allocated — with
    it, vmalloc's own kmalloc calls show up in the slab caches as they do on a real machine.
    ``nr_cpus`` sets ``lazy_max_pages()``.
    """

    def __init__(self, pages, slub=None, *, nr_cpus: int = 2, start: int = VMALLOC_START,
                 end: int = VMALLOC_END, events: EventLog | None = None):
        if start % PAGE_SIZE or end < start:
            raise BadRequest("vmalloc area: start must be page aligned and end above it")
        self.pages = pages
        self.slub = slub
        self.nr_cpus = nr_cpus
        self.start, self.end = start, end
        self.free_ranges: list[tuple[int, int]] = [(start, end + 1)]   # [start, end), sorted
        self.busy: dict[int, VmStruct] = {}
        self.purge_list: list[tuple[int, int, int]] = []               # (start, end, va obj)
        self.page_tables: dict[int, int] = {}                          # virtual page → pfn
        self.events = events if events is not None else pages.events
        self.dmesg: list[str] = []
        if slub is not None and "vmap_area" not in slub.caches:
            # mm/vmalloc.c: vmap_area_cachep = KMEM_CACHE(vmap_area, SLAB_PANIC)
            slub.kmem_cache_create("vmap_area", 72, 8, 0)

    def _emit(self, kind: str, text: str, **data) -> None:
        if self.events.active:
            self.events.emit(kind, text, **data)

    @property
    def lazy_max_pages(self) -> int:
        """``lazy_max_pages()``: how many lazily freed pages of address space wait for a purge."""
        return self.nr_cpus.bit_length() * (LAZY_MAX_BYTES // PAGE_SIZE)

    # -- address space ----------------------------------------------------------------------
    def _find_lowest_match(self, size: int, align: int) -> int | None:
        """``find_vmap_lowest_match()``: the lowest free range that holds ``size`` bytes at
        ``align``; returns the start address."""
        for lo, hi in self.free_ranges:
            start = (lo + align - 1) & ~(align - 1)
            if start + size <= hi:
                return start
        return None

    def _take_range(self, start: int, size: int) -> None:
        """Carve [start, start+size) out of the free range that holds it (the kernel's
        ``va_clip()``: FL_FIT, LE_FIT, RE_FIT or NE_FIT)."""
        for i, (lo, hi) in enumerate(self.free_ranges):
            if lo <= start and start + size <= hi:
                parts = [(lo, start)] if lo < start else []
                if start + size < hi:
                    parts.append((start + size, hi))
                self.free_ranges[i:i + 1] = parts
                return
        raise BadRequest(f"vmalloc: range {start:#x}+{size:#x} is not free")

    def _give_back_range(self, start: int, end: int) -> None:
        """``merge_or_add_vmap_area()``: return a range to the free tree, merged with its
        neighbours."""
        i = bisect.bisect(self.free_ranges, (start, end))
        if i > 0 and self.free_ranges[i - 1][1] == start:
            i -= 1
            start = self.free_ranges[i][0]
            del self.free_ranges[i]
        if i < len(self.free_ranges) and self.free_ranges[i][0] == end:
            end = self.free_ranges[i][1]
            del self.free_ranges[i]
        self.free_ranges.insert(i, (start, end))

    def purge_vmap_area_lazy(self) -> int:
        """``purge_vmap_area_lazy()``: one TLB flush for all lazily freed areas, whose address
        ranges become free again. Returns the pages of address space purged."""
        pages = 0
        for start, end, va in self.purge_list:
            self._give_back_range(start, end)
            pages += (end - start) >> PAGE_SHIFT
            if self.slub is not None and va:
                self.slub.kmem_cache_free("vmap_area", va)
        self.purge_list.clear()
        if pages:
            self._emit("vmap_purge", f"purge_vmap_area_lazy(): one TLB flush; {pages} pages of "
                       "vmalloc address space free again", pages=pages)
        return pages

    def alloc_vmap_area(self, size: int, align: int) -> int | None:
        """``alloc_vmap_area()``: the lowest fit; when there is none, purge the lazy list and
        try once more."""
        for attempt in range(2):
            start = self._find_lowest_match(size, align)
            if start is not None:
                self._take_range(start, size)
                return start
            if attempt == 0 and not self.purge_vmap_area_lazy():
                break
        self.dmesg.append(f"vmalloc_node_range for size {size} failed: Address range "
                          f"restricted to {self.start:#x} - {self.end + 1:#x}")
        return None

    # -- vmalloc / vfree ----------------------------------------------------------------------
    def vmalloc(self, size: int, gfp: int | str = "GFP_KERNEL", *, align: int = PAGE_SIZE,
                caller: str = "vmalloc", flags: int = 0) -> int | None:
        """``vmalloc(size)`` → ``__vmalloc_node_range()``: the area's address, or None."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"vmalloc: size must be a non-negative integer, not {size!r}")
        if align < PAGE_SIZE or align & (align - 1):
            raise BadRequest(f"vmalloc: align {align} must be a power of two ≥ PAGE_SIZE")
        size = PAGE_ALIGN(size)
        total = getattr(self.pages, "managed_pages", None)
        if total is None:
            total = sum(z.managed_pages for z in self.pages.zonelist)
        if not size or (size >> PAGE_SHIFT) > total:
            self.dmesg.append(f"vmalloc error: size {size}, exceeds total pages")
            return None
        flags |= VM_ALLOC | VM_UNINITIALIZED
        real = size + (0 if flags & VM_NO_GUARD else PAGE_SIZE)
        # __get_vm_area_node(): the vm_struct (kzalloc), then the address range.
        vm_struct = self.slub.kzalloc(72, caller="__get_vm_area_node") if self.slub else 0
        if self.slub is not None and not vm_struct:
            return None
        va = self.slub.kmem_cache_alloc("vmap_area", caller="alloc_vmap_area") \
            if self.slub else 0
        addr = self.alloc_vmap_area(real, align)
        if addr is None:
            if self.slub:
                self.slub.kmem_cache_free("vmap_area", va)
                self.slub.kfree(vm_struct)
            return None
        area = VmStruct(addr, real, flags, caller, struct_addr=vm_struct, va_struct=va)
        self.busy[addr] = area
        self._emit("vmap_area", f"vmalloc({size}): addresses {addr:#x}-{addr + real - 1:#x} "
                   f"({size >> PAGE_SHIFT} pages + a guard page), the lowest free range",
                   addr=addr, size=real)
        nr_pages = size >> PAGE_SHIFT
        # __vmalloc_area_node(): the page array, then the pages, then the mapping.
        array_size = nr_pages * 8
        if self.slub is not None:
            if array_size > PAGE_SIZE:
                area.pages_array = self.vmalloc(array_size, caller="__vmalloc_area_node") or 0
                area.pages_array_vmalloc = True
            else:
                area.pages_array = self.slub.kzalloc(array_size,
                                                     caller="__vmalloc_node_range_noprof") or 0
            if not area.pages_array:
                self._fail(area, size)
                return None
        for i in range(nr_pages):
            pfn = self.pages.alloc_pages(gfp, 0)
            if pfn is None:
                self._fail(area, size)
                return None
            area.pages.append(pfn)
            self.page_tables[addr + (i << PAGE_SHIFT)] = pfn
        area.flags &= ~VM_UNINITIALIZED
        self._emit("vmalloc", f"vmalloc({size}) → {addr:#x}: {nr_pages} single pages at pfns "
                   f"{_pfn_list(area.pages)}, mapped one after the other",
                   addr=addr, pfns=list(area.pages))
        return addr

    def _fail(self, area: VmStruct, size: int) -> None:
        self.dmesg.append(f"{area.caller}: vmalloc error: size {size}, failed to allocate "
                          "pages, mode:0xcc0(GFP_KERNEL)")
        self._emit("alloc_fail", f"vmalloc({size}): not enough pages → NULL", size=size)
        self._teardown(area)

    def _teardown(self, area: VmStruct) -> None:
        for i, pfn in enumerate(area.pages):
            del self.page_tables[area.addr + (i << PAGE_SHIFT)]
            self.pages.free(pfn, 0)
        area.pages.clear()
        if self.slub is not None:
            if area.pages_array:
                if area.pages_array_vmalloc:
                    self.vfree(area.pages_array)
                else:
                    self.slub.kfree(area.pages_array)
            self.slub.kfree(area.struct_addr)
        del self.busy[area.addr]
        # free_vmap_area_noflush(): the addresses wait on the purge list.
        self.purge_list.append((area.addr, area.addr + area.size, area.va_struct))
        if sum((e - s) >> PAGE_SHIFT for s, e, _ in self.purge_list) > self.lazy_max_pages:
            self.purge_vmap_area_lazy()

    def vfree(self, addr: int | None) -> None:
        """``vfree(addr)``: unmap and free the pages now; the address range goes on the lazy
        purge list. NULL is ignored; a bad address is refused with the kernel's warning."""
        if not addr:
            return
        if not isinstance(addr, int) or addr % PAGE_SIZE:
            raise BadRequest(f"Trying to vfree() bad address ({addr!r})")
        area = self.busy.get(addr)
        if area is None:
            raise BadRequest(f"Trying to vfree() nonexistent vm area ({addr:#x})")
        n = area.nr_pages
        self._teardown(area)
        self._emit("vfree", f"vfree({addr:#x}): {n} pages back to the buddy allocator; the "
                   "addresses wait for a lazy purge", addr=addr)

    # -- looking at it ----------------------------------------------------------------------
    def vmalloc_to_pfn(self, addr: int) -> int:
        """``vmalloc_to_pfn()``: walk the page tables for the page holding ``addr``."""
        page = addr & ~(PAGE_SIZE - 1)
        if page not in self.page_tables:
            raise BadRequest(f"vmalloc_to_pfn({addr:#x}): no page mapped there")
        return self.page_tables[page]

    def is_vmalloc_addr(self, addr: int) -> bool:
        return self.start <= addr <= self.end

    def vmallocinfo(self) -> str:
        """/proc/vmallocinfo for the simulated areas: ``0x%pK-0x%pK %7ld caller pages=N
        vmalloc [vpages] N0=N`` in address order, then the lazily freed ranges as
        ``unpurged vm_area`` (``show_purge_info()``)."""
        lines = []
        for addr in sorted(self.busy):
            v = self.busy[addr]
            line = f"0x{v.addr:016x}-0x{v.addr + v.size:016x} {v.size:7d} {v.caller}"
            if v.nr_pages:
                line += f" pages={v.nr_pages}"
            line += " vmalloc"
            if v.pages_array_vmalloc:
                line += " vpages"
            if v.nr_pages:
                line += f" N0={v.nr_pages}"
            lines.append(line)
        for start, end, _ in sorted(self.purge_list):
            lines.append(f"0x{start:016x}-0x{end:016x} {end - start:7d} unpurged vm_area")
        return "".join(x + "\n" for x in lines)

    def meminfo(self) -> dict[str, int]:
        """The vmalloc lines of /proc/meminfo in kB: VmallocTotal (the area's size),
        VmallocUsed (pages of vmalloc'd memory), VmallocChunk (always 0 since 4.4;
        5.3 brought VmallocUsed back)."""
        used = sum(v.nr_pages for v in self.busy.values())
        return {"VmallocTotal": (self.end - self.start) >> 10,
                "VmallocUsed": used * PAGE_SIZE >> 10, "VmallocChunk": 0}

    def mapping(self, addr: int) -> list[tuple[int, int]]:
        """(virtual address, pfn) of every page of the area at ``addr``."""
        v = self.busy.get(addr)
        if v is None:
            raise BadRequest(f"no vmalloc area at {addr:#x}")
        return [(v.addr + (i << PAGE_SHIFT), pfn) for i, pfn in enumerate(v.pages)]


def _pfn_list(pfns: list[int], limit: int = 8) -> str:
    shown = ", ".join(f"{p:#x}" for p in pfns[:limit])
    return shown + (f", … ({len(pfns)} in all)" if len(pfns) > limit else "")


def kmalloc_vs_vmalloc(slub, vm: Vmalloc, kaddr: int, vaddr: int) -> str:
    """The seed's interview question as two memory maps side by side: for each page of a
    kmalloc'd block and of a vmalloc area, its virtual address and the physical page (pfn)
    behind it. kmalloc's pfns are consecutive; vmalloc's need not be."""
    knr = slub.ksize(kaddr) // PAGE_SIZE or 1
    # The linear map: virt_to_pfn() of each page is a subtraction, so these come out
    # consecutive whenever the buddy allocator handed out one block.
    kpfns = [slub.virt_to_pfn(kaddr + i * PAGE_SIZE) for i in range(knr)]
    vmap = vm.mapping(vaddr)
    rows = max(knr, len(vmap))
    lines = [f"{'kmalloc (linear map)':<42}  {'vmalloc (vmalloc area)':<42}",
             f"{'virtual address':<20} {'pfn':>10}            "
             f"{'virtual address':<20} {'pfn':>10}"]
    for i in range(rows):
        left = (f"{kaddr + i * PAGE_SIZE:#018x}   {kpfns[i]:#10x}" if i < knr else "")
        right = (f"{vmap[i][0]:#018x}   {vmap[i][1]:#10x}" if i < len(vmap) else "")
        lines.append(f"{left:<42}  {right}")
    kcont = all(kpfns[i + 1] == kpfns[i] + 1 for i in range(knr - 1))
    vcont = all(vmap[i + 1][1] == vmap[i][1] + 1 for i in range(len(vmap) - 1))
    lines.append(f"{'physically contiguous: ' + ('yes' if kcont else 'no'):<42}  "
                 f"physically contiguous: {'yes' if vcont else 'no'}")
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["PAGE_ALIGN", "VMALLOC_END", "VMALLOC_START", "VM_ALLOC", "VM_NO_GUARD", "VmStruct",
           "Vmalloc", "kmalloc_vs_vmalloc"]

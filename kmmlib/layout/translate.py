"""Address translation the kernel does by arithmetic: ``__pa``, ``__va``, ``virt_to_page``,
``page_to_virt``, ``pfn_to_page`` and ``page_to_pfn``, on any :class:`~kmmlib.layout.Layout`.

Only the linear map (arm64's "kernel logical memory map", x86_64's direct map, 32-bit lowmem)
translates by a subtraction, and that is the point of having one:

- arm64 (arch/arm64/include/asm/memory.h): ``__phys_to_virt(x) = ((x) - PHYS_OFFSET) |
  PAGE_OFFSET``; ``__lm_to_phys(addr) = ((addr) - PAGE_OFFSET) + PHYS_OFFSET`` since 5.11
  (22cd5edb2d9c; 5.4-5.9 added ``physvirt_offset``, 4.x and 5.10 computed
  ``(addr & ~PAGE_OFFSET) + PHYS_OFFSET``: the same for linear-map addresses);
  ``__is_lm_address()`` decides whether an address is in the linear map — in 5.4-5.10 by
  testing bit ``vabits_actual - 1``, in 4.x by testing bit ``VA_BITS - 1`` the other way
  round. Anything else is a kernel-image address (``addr - kimage_voffset``), which depends on
  where the bootloader put the image and is not modelled.
- x86_64 (arch/x86/include/asm/page_64.h ``__phys_addr_nodebug``): below
  ``__START_KERNEL_map``, ``x - PAGE_OFFSET``; above it, ``x - __START_KERNEL_map + phys_base``.
- 32-bit ARM and x86: ``x - PAGE_OFFSET + PHYS_OFFSET`` for lowmem only; a highmem page has no
  address until ``kmap()`` gives it one.

``struct page`` s: with SPARSEMEM_VMEMMAP (arm64, x86_64) ``pfn_to_page(pfn) = vmemmap + pfn``
(include/asm-generic/memory_model.h), where arm64's ``vmemmap`` is ``VMEMMAP_START -
(memstart_addr >> PAGE_SHIFT)`` struct pages, so the first RAM page's struct page is the first
one in the vmemmap region; :func:`memory_model_arch` hands the same numbers to chapter 04's
:class:`kmmlib.mm.memory_model.SparsememVmemmap`. 32-bit ARM is FLATMEM: ``mem_map +
(pfn - ARCH_PFN_OFFSET)``, and ``mem_map`` is wherever memblock allocated it at boot.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmmlib.errors import BadRequest
from kmmlib.layout.common import U64, Layout


def _ram(layout: Layout) -> tuple[int, int] | None:
    """[first, last) physical address of the layout's RAM, when a RAM size was given."""
    ram = layout.config.get("ram")
    if ram is None:
        return None
    start = layout.config.get("dram_start", layout.config.get("phys_offset", 0))
    return start, start + ram


def is_linear(layout: Layout, va: int) -> bool:
    """``__is_lm_address()``: is ``va`` in the linear map?"""
    S = layout.symbols
    if layout.arch == "arm64":
        if layout.era in ("4.6", "5.0"):
            return bool(va & (1 << (S["VA_BITS"] - 1))) and va >= S["PAGE_OFFSET"]
        return layout.region("linear").start <= va < S["PAGE_END"]
    if layout.arch == "x86_64":
        return S["PAGE_OFFSET"] <= va < layout.region("linear").end
    return S["PAGE_OFFSET"] <= va < S["high_memory"]


def virt_to_phys(layout: Layout, va: int) -> int:
    """``__pa(va)``: the physical address behind a linear-map (or x86_64 kernel-text) address."""
    S = layout.symbols
    if layout.arch == "x86_64" and S["__START_KERNEL_map"] <= va < S["MODULES_VADDR"]:
        return va - S["__START_KERNEL_map"] + S["phys_base"]
    if not is_linear(layout, va):
        region = layout.region_at(va)
        raise BadRequest(f"__pa({va:#x}): the address is in {region.name!r}, not in the "
                         "linear map, so no arithmetic gives its physical address (the page "
                         "tables do)")
    if layout.arch == "arm64":
        return (va - S["PAGE_OFFSET"] + S["PHYS_OFFSET"]) % U64
    return va - S["PAGE_OFFSET"] + S["PHYS_OFFSET"]


def phys_to_virt(layout: Layout, pa: int) -> int:
    """``__va(pa)``: the linear-map address of a physical address."""
    S = layout.symbols
    if pa < 0:
        raise BadRequest("a physical address is not negative")
    if layout.arch == "arm64":
        va = ((pa - S["PHYS_OFFSET"]) | S["PAGE_OFFSET"]) % U64
    else:
        va = pa - S["PHYS_OFFSET"] + S["PAGE_OFFSET"]
    if not is_linear(layout, va) or va >= 1 << layout.bits:
        if layout.arch in ("arm", "x86_32") and pa >= S["PHYS_OFFSET"]:
            raise BadRequest(f"__va({pa:#x}): a highmem address — above lowmem's "
                             f"{S['lowmem_bytes'] >> 20} MB, so it has no permanent kernel "
                             "mapping; kmap() its page into the pkmap window first")
        raise BadRequest(f"__va({pa:#x}): outside what the linear map covers")
    return va


def _check_vmemmap(layout: Layout) -> None:
    if "vmemmap" not in layout.symbols:
        S = layout.symbols
        raise BadRequest(f"{layout.arch} uses FLATMEM: page = mem_map + (pfn - ARCH_PFN_OFFSET "
                         f"{S.get('ARCH_PFN_OFFSET', 0):#x}); mem_map's address is chosen by "
                         "memblock at boot, so it cannot be computed from the layout")


def pfn_to_page(layout: Layout, pfn: int) -> int:
    """``pfn_to_page(pfn) = vmemmap + pfn`` (a byte address: struct pages are 64 bytes)."""
    _check_vmemmap(layout)
    if pfn < 0:
        raise BadRequest("a pfn is not negative")
    S = layout.symbols
    return (S["vmemmap"] + pfn * S["STRUCT_PAGE_SIZE"]) % U64


def page_to_pfn(layout: Layout, page: int) -> int:
    """``page_to_pfn(page) = page - vmemmap`` (in struct pages)."""
    _check_vmemmap(layout)
    S = layout.symbols
    off, rem = divmod((page - S["vmemmap"]) % U64, S["STRUCT_PAGE_SIZE"])
    vm = layout.region("vmemmap")
    if rem or page not in vm:
        raise BadRequest(f"{page:#x} is not the address of a struct page in vmemmap "
                         f"[{vm.start:#x}, {vm.end:#x})")
    return off


def virt_to_page(layout: Layout, va: int) -> int:
    """``virt_to_page(va)``: the struct page of a linear-map address
    (``pfn_to_page(__pa(va) >> PAGE_SHIFT)``)."""
    return pfn_to_page(layout, virt_to_phys(layout, va) >> layout.symbols["PAGE_SHIFT"])


def page_to_virt(layout: Layout, page: int) -> int:
    """``page_to_virt(page)``: the linear-map address of the page a struct page describes."""
    return phys_to_virt(layout, page_to_pfn(layout, page) << layout.symbols["PAGE_SHIFT"])


@dataclass
class Translation:
    """Everything the layout explorer says about one virtual address."""

    va: int
    region: str
    kind: str
    overlays: list[str]
    phys: int | None
    pfn: int | None
    page: int | None
    how: str

    def text(self) -> str:
        w = 16 if self.va >= 1 << 32 else 8
        lines = [f"{self.va:#0{w + 2}x} is in: {self.region}"]
        if self.overlays:
            lines.append(f"  also inside: {', '.join(self.overlays)}")
        if self.phys is not None:
            lines.append(f"  __pa()        = {self.phys:#x}")
            lines.append(f"  pfn           = {self.pfn:#x}")
        if self.page is not None:
            lines.append(f"  virt_to_page()= {self.page:#x}")
        lines.append(f"  {self.how}")
        return "\n".join(lines)


def translate(layout: Layout, va: int) -> Translation:
    """Which region holds ``va`` and, for the linear map, the physical address, pfn and
    struct page behind it."""
    r = layout.region_at(va)
    over = [o.name for o in layout.overlays_at(va)]
    S = layout.symbols
    try:
        pa = virt_to_phys(layout, va)
    except BadRequest as err:
        return Translation(va, r.name, r.kind, over, None, None, None, str(err))
    pfn = pa >> S["PAGE_SHIFT"]
    try:
        page = pfn_to_page(layout, pfn)
    except BadRequest:
        page = None
    if layout.arch == "x86_64" and va >= S["__START_KERNEL_map"]:
        how = (f"kernel text: __pa = va - __START_KERNEL_map + phys_base "
               f"({S['phys_base']:#x})")
    else:
        how = (f"linear map: __pa = va - PAGE_OFFSET ({S['PAGE_OFFSET']:#x}) + PHYS_OFFSET "
               f"({S['PHYS_OFFSET']:#x})")
    ram = _ram(layout)
    if ram is not None and not ram[0] <= pa < ram[1]:
        how += "; but no RAM is there on this machine (virt_addr_valid() is false)"
    return Translation(va, r.name, r.kind, over, pa, pfn, page, how)


def memory_model_arch(layout: Layout):
    """The layout's constants as chapter 04's :class:`kmmlib.mm.memory_model.Arch`, with
    ``vmemmap_start`` set to the (biased) ``vmemmap`` pointer so that its
    ``SparsememVmemmap.pfn_to_page`` agrees with :func:`pfn_to_page`."""
    from kmmlib.mm.memory_model import Arch

    _check_vmemmap(layout)
    S = layout.symbols
    shift = S["PAGE_SHIFT"]
    section = S.get("SECTION_SIZE_BITS", 27)           # x86_64: 27
    max_phys = S.get("MAX_PHYSMEM_BITS", 52 if S.get("VA_BITS", 48) > 48 else 48)
    return Arch(layout.title, page_shift=shift, section_size_bits=section,
                max_physmem_bits=max_phys, vmemmap_start=S["vmemmap"],
                page_offset=S["PAGE_OFFSET"], struct_page_size=S["STRUCT_PAGE_SIZE"])

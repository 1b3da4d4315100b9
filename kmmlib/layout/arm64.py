"""The arm64 kernel virtual address layout, computed from the kernel's own macros, era by era.

The layout is defined in ``arch/arm64/include/asm/memory.h`` (``PAGE_OFFSET``, ``MODULES_VADDR``,
``VMEMMAP_START`` ...) and ``pgtable.h`` (``VMALLOC_START``/``VMALLOC_END``), and it moved more
than once. :data:`ERAS` lists the layouts modelled here; ``arm64_layout(kernel=...)`` picks the
one in force for a release:

========  ===================================================================================
from      what changed (commit)
========  ===================================================================================
4.6       linear map in the *upper* half (``PAGE_OFFSET = -(1 << (VA_BITS - 1))``), modules,
          vmalloc, fixmap, PCI I/O and vmemmap below it from ``VA_START = -(1 << VA_BITS)``;
          vmemmap right below the linear map (3e1907d5bf5a "arm64: mm: move vmemmap region
          right below the linear region"). mem_init() prints "Virtual kernel memory layout"
          until commit 071929dbdd86 "arm64: Stop printing the virtual memory layout"
          (v4.16 — release NOT VERIFIED), which removed it because printing kernel addresses
          defeats KASLR.
5.0       a 128 MB BPF JIT region below the modules (91fc957c9b1d "arm64/bpf: don't allocate
          BPF JIT programs in module memory").
5.4       the VA space *flipped* (14c127c957c1 "arm64: mm: Flip kernel VA space"): the linear
          map is now the lower half, ``PAGE_OFFSET = -(1 << VA_BITS)``; vmemmap at the very top
          (``-VMEMMAP_SIZE - SZ_2M``); 52-bit kernel VAs with 64K pages.
5.11      vmemmap (sized to the linear map since 5.4) placed at
          ``-(1 << (VA_BITS - VMEMMAP_SHIFT))``,
          fixmap and PCI I/O just below it; the 52-bit linear map extended to ``PAGE_END``
          (f4693c2716b3 "arm64: mm: extend linear region for 52-bit VA configurations").
5.17      the BPF JIT region removed again (b89ddf4cca43 "arm64/bpf: Remove 128MB limit for
          BPF JIT programs", in 5.17-rc1 as the crash utility's arm64 code records; stable
          backported it to 5.16.4 and 5.15.18). memory.rst kept showing it until 6.0
          (5bed6a93920d).
6.5       modules 128 MB → 2 GB (Mark Rutland's module VA rework, 3e35d303ab7d "arm64: module:
          rework module VA range selection").
6.9       PCI I/O, then the fixmap moved *above* vmemmap, vmemmap ends at -1 GB, vmalloc may
          use the unused part of a 52-bit vmemmap (Ard Biesheuvel's LPA2 series: "arm64: mm:
          Move fixmap region above vmemmap region" ...); 52-bit VA with 4K and 16K pages (LPA2).
          Documentation/arch/arm64/memory.rst was *not* updated and still shows 6.5-6.8.
========  ===================================================================================

Each era's formulas were read in the kernel's headers: the torvalds/linux copies stored in the
search index (memory.h at 00ef54341936, a 5.11-rc version, and 84d484012af9, a 3.x one;
memory.rst at 34069d12e239 and 57b421369dd7), copies of v4.x, v5.10 and v6.12 headers found
in other repositories, and the patches named above (the 6.9+ memory.h/pgtable.h lines as
quoted in Ard Biesheuvel's series). The boundary releases 5.0, 5.11, 6.5 and 6.9 come from the
patches' merge windows and are not verified against tags; each era's *values* are checked
against the documentation of that era in tests/test_layout_arm64.py. A later tree seen only in
a mirror (commit fd10f08cb57b, release NOT VERIFIED) deletes the two tables from memory.rst
altogether.

Simplified: no KASLR (``CONFIG_RANDOMIZE_BASE`` moves the kernel image and may shift the linear
map), ``sizeof(struct page)`` is 64, and the fixmap's size is the enum of
``arch/arm64/include/asm/fixmap.h`` for a chosen set of options (it varies with the config).
"""

from __future__ import annotations

from dataclasses import dataclass

from kmmlib.errors import BadRequest
from kmmlib.layout.common import (
    SZ_1G,
    SZ_2G,
    SZ_2M,
    SZ_8M,
    SZ_16M,
    SZ_32M,
    SZ_64K,
    SZ_128M,
    SZ_256M,
    U64,
    Layout,
    Region,
    exact_or_floor_size,
    fmt_kernel,
    human_size,
    neg,
    parse_kernel,
    parse_page_size,
)


@dataclass(frozen=True)
class Era:
    since: tuple[int, int]
    name: str
    summary: str


ERAS = (
    Era((4, 6), "4.6", "linear map in the upper half; modules at VA_START"),
    Era((5, 0), "5.0", "a 128 MB BPF JIT region below the modules"),
    Era((5, 4), "5.4", "VA space flipped: linear map in the lower half, vmemmap at the top"),
    Era((5, 11), "5.11", "vmemmap placed as a projection of the linear map; fixmap and PCI I/O "
                         "below it"),
    Era((5, 17), "5.17", "BPF JIT region removed"),
    Era((6, 5), "6.5", "modules 128 MB -> 2 GB"),
    Era((6, 9), "6.9", "PCI I/O and fixmap moved above vmemmap, which ends at -1 GB"),
)
NEWEST = (6, 18)          # the newest release modelled (the bundled snapshot's kernel)
PRINT_REMOVED = (4, 16)   # mem_init()'s "Virtual kernel memory layout" print (NOT VERIFIED)
STRUCT_PAGE_MAX_SHIFT = 6


def era_for(kernel: tuple[int, int]) -> Era:
    """The layout era of a release (the last era whose first release is not after it)."""
    if kernel < ERAS[0].since:
        raise BadRequest(f"arm64 layouts before 4.6 are not modelled (asked for "
                         f"{fmt_kernel(kernel)}): 4.6 moved the kernel image and vmemmap")
    return [e for e in ERAS if e.since <= kernel][-1]


def va_bits_choices(page_size: int, kernel: tuple[int, int]) -> tuple[int, ...]:
    """``CONFIG_ARM64_VA_BITS`` values modelled for a page size (arch/arm64/Kconfig): 4K 39/48,
    16K 47/48, 64K 42/48, plus 52 for 64K since 5.4 and for 4K/16K (LPA2) since 6.9. (16K/36
    exists too but is not modelled.)"""
    base = {4096: (39, 48), 16384: (47, 48), 65536: (42, 48)}[page_size]
    if page_size == 65536 and kernel >= (5, 4) or kernel >= (6, 9):
        return (*base, 52)
    return base


def pgtable_levels(va_bits: int, page_shift: int) -> int:
    """``ARM64_HW_PGTABLE_LEVELS(va_bits) = ((va_bits) - 4) / (PAGE_SHIFT - 3)``
    (arch/arm64/include/asm/pgtable-hwdef.h)."""
    return (va_bits - 4) // (page_shift - 3)


def pud_size(va_bits: int, page_shift: int) -> int:
    """``PUD_SIZE``: with 4 or more levels ``1 << ARM64_HW_PGTABLE_LEVEL_SHIFT(1)``; with fewer
    the PUD is folded into the PGD (include/asm-generic/pgtable-nopud.h) and PUD_SIZE is
    PGDIR_SIZE, ``1 << ((PAGE_SHIFT - 3) * levels + 3)``."""
    levels = pgtable_levels(va_bits, page_shift)
    shift = (page_shift - 3) * (3 if levels > 3 else levels) + 3
    return 1 << shift


def fixmap_pages(page_size: int, *, ghes: bool = True, sdei: bool = False,
                 kpti: bool = True) -> int:
    """``__end_of_permanent_fixed_addresses`` of ``enum fixed_addresses``
    (arch/arm64/include/asm/fixmap.h): FIX_HOLE, the FDT window (``MAX_FDT_SIZE + SZ_2M`` =
    4 MB of pages), FIX_EARLYCON_MEM_BASE, FIX_TEXT_POKE0, then two GHES slots
    (CONFIG_ACPI_APEI_GHES), two SDEI slots (CONFIG_ARM_SDE_INTERFACE) and two KPTI trampoline
    slots (CONFIG_UNMAP_KERNEL_AT_EL0). The v5.4 memory.rst tables imply 1031 pages with 4K
    pages (ghes and kpti, no sdei); newer kernels add slots not modelled here."""
    fdt = (4 << 20) // page_size
    return 1 + fdt + 2 + 2 * ghes + 2 * sdei + 2 * kpti


def section_size_bits(page_shift: int, ver: tuple[int, int] = NEWEST) -> int:
    """``SECTION_SIZE_BITS`` (arch/arm64/include/asm/sparsemem.h): 30 (1 GiB sections) until
    5.12 cut it to 27, or 29 with 64K pages (f0b13ee23241 "arm64/sparsemem: reduce
    SECTION_SIZE_BITS")."""
    if ver < (5, 12):
        return 30
    return 29 if page_shift == 16 else 27


def memstart_align(page_shift: int, ver: tuple[int, int] = NEWEST) -> int:
    """``ARM64_MEMSTART_ALIGN`` (arch/arm64/include/asm/kernel-pgtable.h): PUD_SIZE (1 GiB)
    with 4K pages, CONT_PMD_SIZE (1 GiB) with 16K, PMD_SIZE (512 MiB) with 64K; never less
    than a sparsemem section (:func:`section_size_bits`: so 1 GiB with 64K pages too before
    5.12)."""
    shift = {12: 30, 14: 30, 16: 29}[page_shift]
    return 1 << max(shift, section_size_bits(page_shift, ver))


def arm64_layout(kernel: str | tuple[int, int] | None = None, va_bits: int = 48,
                 page_size: str | int = "4K", *, ram: int | None = None,
                 dram_start: int = 0x4000_0000, memstart_addr: int | None = None,
                 kasan: bool = False, vabits_actual: int | None = None,
                 fixmap: dict | None = None) -> Layout:
    """The arm64 layout of ``kernel`` (default: the newest modelled) for one configuration.

    ``ram`` bytes of RAM starting at physical ``dram_start`` (QEMU's virt board puts RAM at
    1 GiB) add overlays for the part of the linear map and of vmemmap that RAM uses.
    ``memstart_addr`` (``PHYS_OFFSET``) defaults to ``dram_start`` rounded down to
    ``ARM64_MEMSTART_ALIGN``, as ``arm64_memblock_init()`` sets it without KASLR.
    ``kasan`` builds with CONFIG_KASAN_GENERIC (the shadow takes 1/8 of the kernel VA space);
    without it the shadow is still listed as a bracketed overlay, as memory.rst does.
    ``vabits_actual`` is the VA size the CPU supports at run time (52-bit kernels fall back
    to 48; default: ``va_bits``). ``fixmap`` passes options to :func:`fixmap_pages`.
    """
    ver = parse_kernel(kernel, NEWEST)
    era = era_for(ver)
    psize = parse_page_size(page_size)
    pshift = psize.bit_length() - 1
    if va_bits not in va_bits_choices(psize, ver):
        raise BadRequest(f"arm64 {fmt_kernel(ver)} with {psize >> 10}K pages builds "
                         f"VA_BITS {', '.join(map(str, va_bits_choices(psize, ver)))}, "
                         f"not {va_bits}")
    actual = va_bits if vabits_actual is None else vabits_actual
    va_min = va_bits if va_bits <= 48 else (47 if psize == 16384 else 48)
    if not va_min <= actual <= va_bits:
        raise BadRequest(f"vabits_actual must be between VA_BITS_MIN {va_min} and {va_bits}")
    fixmap_size = fixmap_pages(psize, **(fixmap or {})) * psize
    S: dict[str, int] = {"VA_BITS": va_bits, "VA_BITS_MIN": va_min, "vabits_actual": actual,
                         "PAGE_SHIFT": pshift, "PAGE_SIZE": psize, "PCI_IO_SIZE": SZ_16M,
                         "SECTION_SIZE_BITS": section_size_bits(pshift, ver),
                         "FIXADDR_SIZE": fixmap_size, "TASK_SIZE_64": 1 << actual}

    def _page_end(va: int) -> int:            # _PAGE_END(va) = -(UL(1) << ((va) - 1))
        return neg(1 << (va - 1))

    if era.since < (5, 4):
        _pre_flip(S, era, va_bits, pshift, kasan)
    else:
        _flipped(S, era, va_bits, va_min, actual, pshift, kasan, _page_end)
    S["FIXADDR_START"] = S["FIXADDR_TOP"] - fixmap_size
    S["VMALLOC_START"] = S["MODULES_END"]
    S["KIMAGE_VADDR"] = S["MODULES_END"]
    S["VMEMMAP_END"] = S["VMEMMAP_START"] + S["VMEMMAP_SIZE"]

    # PHYS_OFFSET and the vmemmap pointer (pgtable.h: "#define vmemmap ((struct page
    # *)VMEMMAP_START - (memstart_addr >> PAGE_SHIFT))"; 4.x aligned it down to a section).
    start = memstart_addr if memstart_addr is not None else \
        dram_start - dram_start % memstart_align(pshift, ver)
    if memstart_addr is None and actual < va_bits:
        # arm64_memblock_init(): a 52-bit kernel on a 48-bit CPU keeps PAGE_OFFSET and moves
        # memstart_addr instead, so that __va() lands in the part of the linear map it can use
        start -= neg(1 << actual) - S["PAGE_OFFSET"]
    S["PHYS_OFFSET"] = start
    pfn_off = start >> pshift
    if era.since < (5, 4):
        section_pages = 1 << (S["SECTION_SIZE_BITS"] - pshift)
        pfn_off -= pfn_off % section_pages                   # SECTION_ALIGN_DOWN
    S["vmemmap"] = (S["VMEMMAP_START"] - pfn_off * 64) % U64
    S["STRUCT_PAGE_SIZE"] = 64

    regions = _regions(S, era, va_bits, kasan)
    notes = [f"era {era.name}+: {era.summary}"]
    if ram is not None:
        regions += _ram_overlays(S, era, dram_start, ram)
    if ver > NEWEST:
        notes.append(f"{fmt_kernel(ver)} is newer than the newest release modelled "
                     f"({fmt_kernel(NEWEST)}); showing the {era.name}+ layout")
    if era.since == (6, 9):
        notes.append("Documentation/arch/arm64/memory.rst still shows the 6.5-6.8 layout "
                     "(kmm layout arm64 --kernel 6.8)")
    if va_bits != va_min:
        notes.append(f"52-bit build: VA_BITS_MIN {va_min}; this CPU runs with "
                     f"vabits_actual {actual}")
    title = (f"arm64, Linux {fmt_kernel(ver)} ({era.name}+ layout), {psize >> 10}K pages, "
             f"{va_bits}-bit VA, {pgtable_levels(va_bits, pshift)} levels")
    lay = Layout("arm64", title, regions, S, 64, fmt_kernel(ver), era.name,
                 {"page_size": psize, "va_bits": va_bits, "kasan": kasan, "ram": ram,
                  "dram_start": dram_start}, notes,
                 ["arch/arm64/include/asm/memory.h", "arch/arm64/include/asm/pgtable.h",
                  "arch/arm64/include/asm/fixmap.h", "Documentation/arch/arm64/memory.rst"],
                 doc_formatter=doc_table)
    return lay


def _pre_flip(S: dict, era: Era, va_bits: int, pshift: int, kasan: bool) -> None:
    """4.6-5.3 (memory.h of v4.x/v5.0): ``VA_START = -(1 << VA_BITS)``,
    ``PAGE_OFFSET = -(1 << (VA_BITS - 1))``, ``VMEMMAP_SIZE = 1 << (VA_BITS - PAGE_SHIFT - 1 +
    STRUCT_PAGE_MAX_SHIFT)`` (a struct page for every page of the linear half),
    ``VMEMMAP_START = PAGE_OFFSET - VMEMMAP_SIZE``, ``PCI_IO_END = VMEMMAP_START - SZ_2M``,
    ``FIXADDR_TOP = PCI_IO_START - SZ_2M``; pgtable.h: ``VMALLOC_END = PAGE_OFFSET - PUD_SIZE -
    VMEMMAP_SIZE - SZ_64K``."""
    S["VA_START"] = neg(1 << va_bits)
    S["PAGE_OFFSET"] = neg(1 << (va_bits - 1))
    S["PAGE_END"] = U64                                  # the linear map runs to the top
    S["KASAN_SHADOW_SIZE"] = (1 << (va_bits - 3)) if kasan else 0
    if kasan:
        S["KASAN_SHADOW_START"] = S["VA_START"]
        S["KASAN_SHADOW_END"] = S["VA_START"] + S["KASAN_SHADOW_SIZE"]
    base = S["VA_START"] + S["KASAN_SHADOW_SIZE"]
    if era.since >= (5, 0):
        S["BPF_JIT_REGION_START"] = base
        S["BPF_JIT_REGION_END"] = base + SZ_128M
        base = S["BPF_JIT_REGION_END"]
    S["MODULES_VADDR"] = base
    S["MODULES_END"] = base + SZ_128M
    S["VMEMMAP_SIZE"] = 1 << (va_bits - pshift - 1 + STRUCT_PAGE_MAX_SHIFT)
    S["VMEMMAP_START"] = S["PAGE_OFFSET"] - S["VMEMMAP_SIZE"]
    S["PCI_IO_END"] = S["VMEMMAP_START"] - SZ_2M
    S["PCI_IO_START"] = S["PCI_IO_END"] - SZ_16M
    S["FIXADDR_TOP"] = S["PCI_IO_START"] - SZ_2M
    S["PUD_SIZE"] = pud_size(va_bits, pshift)
    S["VMALLOC_END"] = S["PAGE_OFFSET"] - S["PUD_SIZE"] - S["VMEMMAP_SIZE"] - SZ_64K


def _flipped(S: dict, era: Era, va_bits: int, va_min: int, actual: int, pshift: int,
             kasan: bool, _page_end) -> None:
    """5.4 and later: ``PAGE_OFFSET = _PAGE_OFFSET(VA_BITS) = -(1 << VA_BITS)``, the linear
    map below ``PAGE_END``; the rest depends on the era (see the module docstring)."""
    S["PAGE_OFFSET"] = neg(1 << va_bits)
    top_min = _page_end(va_min)                          # _PAGE_END(VA_BITS_MIN)
    if era.since == (5, 4):
        # 5.4-5.10: __is_lm_address() tests bit vabits_actual - 1, so the linear map is the
        # lower half of the kernel VA space the CPU uses; KASAN's shadow (Kconfig
        # KASAN_SHADOW_OFFSET 0xdfffa00000000000 for 48-bit) sits right above
        # _PAGE_END(VA_BITS_MIN).
        S["PAGE_END"] = neg(1 << actual) + (1 << (actual - 1))
        if kasan:
            S["KASAN_SHADOW_END"] = top_min + (1 << (va_min - 3))
            S["KASAN_SHADOW_START"] = S["KASAN_SHADOW_END"] - (1 << (actual - 3))
            bpf = S["KASAN_SHADOW_END"]
        else:
            bpf = top_min                                # KASAN_SHADOW_END without KASAN
    else:
        # 5.11+: the shadow ends at _PAGE_END(VA_BITS_MIN) (Kconfig offset 0xdfff800000000000
        # for 48-bit) and, with KASAN, the linear map stops where it starts.
        S["KASAN_SHADOW_END"] = top_min
        S["KASAN_SHADOW_START"] = top_min - (1 << (actual - 3))
        S["PAGE_END"] = S["KASAN_SHADOW_START"] if kasan else top_min
        bpf = top_min
    if era.since < (5, 17):
        S["BPF_JIT_REGION_START"] = bpf
        S["BPF_JIT_REGION_END"] = bpf + SZ_128M
        S["MODULES_VADDR"] = S["BPF_JIT_REGION_END"]
    else:
        S["MODULES_VADDR"] = top_min
    S["MODULES_END"] = S["MODULES_VADDR"] + (SZ_2G if era.since >= (6, 5) else SZ_128M)
    vmemmap_shift = pshift - STRUCT_PAGE_MAX_SHIFT
    if era.since == (5, 4):
        # VMEMMAP_SIZE = (_PAGE_END(VA_BITS_MIN) - PAGE_OFFSET) >> VMEMMAP_SHIFT
        S["VMEMMAP_SIZE"] = (top_min - S["PAGE_OFFSET"]) >> vmemmap_shift
        S["VMEMMAP_START"] = neg(S["VMEMMAP_SIZE"] + SZ_2M)
        S["PCI_IO_END"] = S["VMEMMAP_START"] - SZ_2M
        S["PCI_IO_START"] = S["PCI_IO_END"] - SZ_16M
        S["FIXADDR_TOP"] = S["PCI_IO_START"] - SZ_2M
        S["PUD_SIZE"] = pud_size(va_bits, pshift)
        S["VMALLOC_END"] = neg(S["PUD_SIZE"] + S["VMEMMAP_SIZE"] + SZ_64K)
    elif era.since < (6, 9):
        S["VMEMMAP_SIZE"] = (top_min - S["PAGE_OFFSET"]) >> vmemmap_shift
        S["VMEMMAP_START"] = neg(1 << (va_bits - vmemmap_shift))
        S["PCI_IO_END"] = S["VMEMMAP_START"] - SZ_8M
        S["PCI_IO_START"] = S["PCI_IO_END"] - SZ_16M
        S["FIXADDR_TOP"] = S["VMEMMAP_START"] - SZ_32M
        S["VMALLOC_END"] = S["VMEMMAP_START"] - SZ_256M
    else:
        # VMEMMAP_RANGE = _PAGE_END(VA_BITS_MIN) - PAGE_OFFSET;
        # VMEMMAP_SIZE = (VMEMMAP_RANGE >> PAGE_SHIFT) * sizeof(struct page)
        S["VMEMMAP_SIZE"] = ((top_min - S["PAGE_OFFSET"]) >> pshift) * 64
        S["VMEMMAP_END"] = neg(SZ_1G)
        S["VMEMMAP_START"] = S["VMEMMAP_END"] - S["VMEMMAP_SIZE"]
        S["PCI_IO_START"] = S["VMEMMAP_END"] + SZ_8M
        S["PCI_IO_END"] = S["PCI_IO_START"] + SZ_16M
        S["FIXADDR_TOP"] = neg(SZ_8M)
        # pgtable.h: a 52-bit kernel on a 48-bit CPU lends the unused vmemmap to vmalloc.
        unused_npages = (neg(1 << actual) - S["PAGE_OFFSET"]) >> pshift
        S["VMALLOC_END"] = S["VMEMMAP_START"] + unused_npages * 64 - SZ_8M


def _regions(S: dict, era: Era, va_bits: int, kasan: bool) -> list[Region]:
    """Tile [0, 2**64) in the order memory.rst lists it."""
    R: list[Region] = []

    def add(start, end, name, kind, **kw):
        if end > start:
            R.append(Region(start, end, name, kind, **kw))

    def fixmap_to_vmemmap():
        """vmalloc's end to vmemmap's, with the guard regions between (tables up to v5.4)."""
        add(S["VMALLOC_END"], S["FIXADDR_START"], "[guard region]", "guard")
        add(S["FIXADDR_START"], S["FIXADDR_TOP"], "fixed mappings", "fixmap")
        add(S["FIXADDR_TOP"], S["PCI_IO_START"], "[guard region]", "guard")
        add(S["PCI_IO_START"], S["PCI_IO_END"], "PCI I/O space", "pci_io")
        add(S["PCI_IO_END"], S["VMEMMAP_START"], "[guard region]", "guard")
        add(S["VMEMMAP_START"], S["VMEMMAP_END"], "vmemmap", "vmemmap")

    user_end = S["TASK_SIZE_64"]
    # the lowest kernel address the CPU can use: TTBR1 covers vabits_actual bits
    kernel_start = S.get("VA_START", max(S["PAGE_OFFSET"], neg(1 << S["vabits_actual"])))
    add(0, user_end, "user", "user")
    add(user_end, kernel_start, "non-canonical (TTBR0/TTBR1 gap)", "hole", doc=False)
    shadow = ("KASAN_SHADOW_START" in S) and (S["KASAN_SHADOW_START"], S["KASAN_SHADOW_END"])
    if era.since < (5, 4):
        pos = kernel_start
        if kasan:
            add(pos, S["KASAN_SHADOW_END"], "kasan shadow region", "kasan")
            pos = S["KASAN_SHADOW_END"]
        if "BPF_JIT_REGION_START" in S:
            add(S["BPF_JIT_REGION_START"], S["BPF_JIT_REGION_END"], "bpf jit region", "bpf")
        add(S["MODULES_VADDR"], S["MODULES_END"], "modules", "modules")
        add(S["VMALLOC_START"], S["VMALLOC_END"], "vmalloc", "vmalloc")
        fixmap_to_vmemmap()
        add(S["PAGE_OFFSET"], U64, "kernel logical memory map", "linear")
        return R
    add(kernel_start, S["PAGE_END"], "kernel logical memory map", "linear")
    if era.since == (5, 4):
        after_lm = S.get("KASAN_SHADOW_START", S.get("BPF_JIT_REGION_START"))
        add(S["PAGE_END"], after_lm, "[gap]", "hole")
        if kasan:
            add(S["KASAN_SHADOW_START"], S["KASAN_SHADOW_END"], "kasan shadow region", "kasan")
    else:
        if kasan:
            add(*shadow, "kasan shadow region", "kasan")
        else:
            add(*shadow, "kasan shadow region", "kasan", overlay=True,
                note="only with CONFIG_KASAN, which ends the linear map here")
    if "BPF_JIT_REGION_START" in S:
        add(S["BPF_JIT_REGION_START"], S["BPF_JIT_REGION_END"], "bpf jit region", "bpf")
    add(S["MODULES_VADDR"], S["MODULES_END"], "modules", "modules")
    add(S["VMALLOC_START"], S["VMALLOC_END"], "vmalloc", "vmalloc")
    if era.since == (5, 4):
        # v5.4's table shows the fixmap's real extent, with the guard regions around it
        fixmap_to_vmemmap()
        add(S["VMEMMAP_END"], U64, "[guard region]", "guard")
    elif era.since < (6, 9):
        # the 5.11+ table gives the whole window below FIXADDR_TOP to the fixmap
        add(S["VMALLOC_END"], S["FIXADDR_TOP"], "fixed mappings (top down)", "fixmap",
            note=f"FIXADDR_START = FIXADDR_TOP - {S['FIXADDR_SIZE'] >> 10} KB in this config")
        add(S["FIXADDR_TOP"], S["PCI_IO_START"], "[guard region]", "guard")
        add(S["PCI_IO_START"], S["PCI_IO_END"], "PCI I/O space", "pci_io")
        add(S["PCI_IO_END"], S["VMEMMAP_START"], "[guard region]", "guard")
        add(S["VMEMMAP_START"], S["VMEMMAP_END"], "vmemmap", "vmemmap")
        add(S["VMEMMAP_END"], U64, "[guard region]", "guard")
    else:
        # on a 52-bit kernel running with 48 bits, vmalloc took the unused start of vmemmap
        vstart = S["VMALLOC_END"] + SZ_8M
        add(S["VMALLOC_END"], vstart, "[guard region]", "guard")
        add(vstart, S["VMEMMAP_END"], "vmemmap", "vmemmap")
        add(S["VMEMMAP_END"], S["PCI_IO_START"], "[guard region]", "guard")
        add(S["PCI_IO_START"], S["PCI_IO_END"], "PCI I/O space", "pci_io")
        # vmalloc no longer ends below this window (it stops below vmemmap), so the space
        # between PCI I/O and the fixmap's real start belongs to nobody.
        add(S["PCI_IO_END"], S["FIXADDR_START"], "[guard region]", "guard")
        add(S["FIXADDR_START"], S["FIXADDR_TOP"], "fixed mappings (top down)", "fixmap",
            note=f"FIXADDR_START = FIXADDR_TOP - {S['FIXADDR_SIZE'] >> 10} KB in this config")
        add(S["FIXADDR_TOP"], U64, "[guard region]", "guard")
    return R


def _ram_overlays(S: dict, era: Era, dram_start: int, ram: int) -> list[Region]:
    """The linear map and vmemmap that ``ram`` bytes at ``dram_start`` actually use."""
    if ram <= 0:
        raise BadRequest("RAM size must be positive")
    linear = S["PAGE_END"] - S["PAGE_OFFSET"]
    if dram_start + ram - S["PHYS_OFFSET"] > linear or dram_start < S["PHYS_OFFSET"]:
        raise BadRequest(f"{human_size(ram)} of RAM at {dram_start:#x} does not fit the linear "
                         f"map ({human_size(linear)} from PHYS_OFFSET {S['PHYS_OFFSET']:#x})")
    lo = phys_to_virt_arm64(S, era, dram_start)
    hi = phys_to_virt_arm64(S, era, dram_start + ram - 1) + 1
    shift = S["PAGE_SHIFT"]
    p0 = (S["vmemmap"] + (dram_start >> shift) * 64) % U64
    p1 = (S["vmemmap"] + ((dram_start + ram) >> shift) * 64) % U64
    return [Region(lo, hi, f"RAM: {human_size(ram)} linear map", "ram", overlay=True),
            Region(p0, p1, "vmemmap in use", "vmemmap_used", overlay=True)]


def phys_to_virt_arm64(S: dict, era: Era | None, phys: int) -> int:
    """``__phys_to_virt(x) = ((x) - PHYS_OFFSET) | PAGE_OFFSET``: the same number in every era
    (5.4-5.9 wrote it as ``(x) - physvirt_offset``; 5.10 went back to this form)."""
    return ((phys - S["PHYS_OFFSET"]) | S["PAGE_OFFSET"]) % U64


# -- the table as memory.rst prints it ----------------------------------------------------------
def doc_table(layout: Layout) -> str:
    """The table in the format of Documentation/arch/arm64/memory.rst: tab-separated, the end
    being the last byte, overlays in brackets. Sizes follow the doc of the era: rounded with a
    ``~`` when approximate (5.11+), or exact-else-truncated (the 5.4 table)."""
    fmt = exact_or_floor_size if layout.era in ("5.4",) else human_size
    psize = layout.config["page_size"] >> 10
    levels = pgtable_levels(layout.config["va_bits"], layout.symbols["PAGE_SHIFT"])
    lines = [f"AArch64 Linux memory layout with {psize}KB pages + {levels} levels "
             f"({layout.config['va_bits']}-bit), Linux {layout.kernel}::", "",
             "  Start\t\t\tEnd\t\t\tSize\t\tUse",
             "  " + "-" * 71]
    for r in sorted((r for r in layout.regions if r.doc and r.kind not in ("ram", "vmemmap_used")),
                    key=lambda r: (r.start, r.overlay)):
        size = fmt(r.size)
        if r.overlay:
            lines.append(f" [{r.start:016x}\t{r.last:016x}]\t{size:>6}\t\t[{r.name}]")
        else:
            lines.append(f"  {r.start:016x}\t{r.last:016x}\t{size:>6}\t\t{r.name}")
    return "\n".join(lines)


# -- the 4.x boot print --------------------------------------------------------------------------
def mem_init_print(layout: Layout, dram_start: int, dram_end: int) -> str:
    """What ``mem_init()`` (arch/arm64/mm/init.c, v4.6-v4.15) printed under "Virtual kernel
    memory layout:", for a pre-5.4 layout and DRAM ``[dram_start, dram_end)`` (kernels from
    4.16 on no longer print it; for them this shows what it would have said). The kernel
    image lines (.text, .rodata, .init, .data, .bss) depend on the built image and are left
    out. MLK/MLM/MLG shift the size right by 10/20/30, as the kernel's macros do."""
    if layout.arch != "arm64" or layout.era not in ("4.6", "5.0"):
        raise BadRequest("mem_init()'s layout print exists only for pre-5.4 arm64 layouts "
                         "(kmm layout arm64 --kernel 4.14)")
    S = layout.symbols

    def line(label, b, t, shift, unit, extra=""):
        return f"    {label:<7} : 0x{b:16x} - 0x{t:16x}   ({(t - b) >> shift:6d} {unit}{extra})"

    shift = S["PAGE_SHIFT"]

    def to_page(phys):
        return (S["vmemmap"] + (phys >> shift) * 64) % U64

    high_memory = phys_to_virt_arm64(S, None, dram_end)
    out = ["Virtual kernel memory layout:"]
    if "KASAN_SHADOW_START" in S:
        out.append(line("kasan", S["KASAN_SHADOW_START"], S["KASAN_SHADOW_END"], 30, "GB"))
    out += [line("modules", S["MODULES_VADDR"], S["MODULES_END"], 20, "MB"),
            line("vmalloc", S["VMALLOC_START"], S["VMALLOC_END"], 30, "GB"),
            line("fixed", S["FIXADDR_START"], S["FIXADDR_TOP"], 10, "KB"),
            line("PCI I/O", S["PCI_IO_START"], S["PCI_IO_END"], 20, "MB"),
            line("vmemmap", S["VMEMMAP_START"], S["VMEMMAP_START"] + S["VMEMMAP_SIZE"], 30,
                 "GB", " maximum"),
            f"              0x{to_page(dram_start):16x} - 0x{to_page(dram_end):16x}   "
            f"({(to_page(dram_end) - to_page(dram_start)) >> 20:6d} MB actual)",
            line("memory", phys_to_virt_arm64(S, None, dram_start), high_memory, 20, "MB")]
    return "\n".join(out)

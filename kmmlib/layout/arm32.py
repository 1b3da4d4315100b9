"""32-bit ARM with the 3G/1G split: lowmem, highmem, pkmap, vmalloc, fixmap, vectors.

A 32-bit kernel has 1 GiB of virtual space above ``PAGE_OFFSET`` (0xC0000000 with
CONFIG_VMSPLIT_3G) for everything: the linear map of RAM ("lowmem"), vmalloc, the fixmap and
the vector page. So only part of RAM can be mapped permanently. ``adjust_lowmem_bounds()``
(arch/arm/mm/mmu.c) keeps ``vmalloc_min = VMALLOC_END - (240 << 20) - VMALLOC_OFFSET`` free
for vmalloc (``vmalloc=`` on the command line changes the 240 MB) and maps RAM below it;
everything above is **highmem**: it has ``struct page`` s but no kernel address until
``kmap()`` maps a page into the 2 MB pkmap window just below PAGE_OFFSET (or ``kmap_local``
into the fixmap).

Constants: ``arch/arm/include/asm/memory.h`` (``TASK_SIZE = PAGE_OFFSET - SZ_16M``,
``MODULES_VADDR = PAGE_OFFSET - SZ_16M``, ``MODULES_END = PAGE_OFFSET - PMD_SIZE`` with
HIGHMEM), ``asm/highmem.h`` (``PKMAP_BASE = PAGE_OFFSET - PMD_SIZE``, ``LAST_PKMAP =
PTRS_PER_PTE`` = 512 pages), ``asm/pgtable.h`` (``VMALLOC_OFFSET`` 8 MB, ``VMALLOC_START =
(high_memory + VMALLOC_OFFSET) & ~(VMALLOC_OFFSET - 1)``, ``VMALLOC_END`` 0xff800000),
``asm/fixmap.h`` (0xffc80000-0xfff00000), and Documentation/arch/arm/memory.rst (6.12) for the
rest of the top 8 MB. Older kernels differ: 3.x kernels had ``VMALLOC_END`` 0xff000000 and the
fixmap at 0xfff00000-0xfffe0000 (pass ``vmalloc_end`` and ``fixmap``); which release moved
them is NOT VERIFIED here.

Note that ARM's default lowmem is 760 MB (VMALLOC_END 0xff000000) or 768 MB (0xff800000), not
896 MB: 896 MB is 32-bit x86's figure (:mod:`kmmlib.layout.x86_32`).

Simplified: no KASAN (whose shadow would sit between TASK_SIZE and MODULES_VADDR), no LPAE
differences, RAM is one bank at ``phys_offset``.
"""

from __future__ import annotations

from kmmlib.errors import BadRequest
from kmmlib.layout.common import SZ_2M, SZ_4K, SZ_8M, SZ_16M, Layout, Region, human_size

PMD_SIZE = SZ_2M
VMALLOC_OFFSET = SZ_8M
VECTORS_BASE = 0xFFFF0000
PCI_IO_VIRT_BASE = 0xFEE00000


def arm_layout(ram: int = 1 << 30, *, page_offset: int = 0xC000_0000,
               phys_offset: int = 0x8000_0000, vmalloc_size: int = 240 << 20,
               vmalloc_end: int = 0xFF80_0000, fixmap: tuple[int, int] = (0xFFC8_0000,
                                                                            0xFFF0_0000),
               highmem: bool = True) -> Layout:
    """The layout of a 32-bit ARM kernel with ``ram`` bytes of RAM at ``phys_offset``.

    ``vmalloc_size`` is what ``vmalloc=`` sets (default 240 MB); ``highmem`` is
    CONFIG_HIGHMEM (without it, RAM above lowmem is simply not used).
    """
    if ram <= 0:
        raise BadRequest("RAM size must be positive")
    if page_offset not in (0x4000_0000, 0x8000_0000, 0xB000_0000, 0xC000_0000):
        raise BadRequest("PAGE_OFFSET is 0xC0000000 (VMSPLIT_3G), 0xB0000000 (3G_OPT), "
                         "0x80000000 (2G) or 0x40000000 (1G)")
    # early_vmalloc(): vmalloc_max = VMALLOC_END - (PAGE_OFFSET + SZ_32M + VMALLOC_OFFSET).
    if not 16 << 20 <= vmalloc_size <= vmalloc_end - (page_offset + (32 << 20) + VMALLOC_OFFSET):
        raise BadRequest("vmalloc= must be at least 16 MB and leave 32 MB of lowmem "
                         "(early_vmalloc() in arch/arm/mm/mmu.c clamps it)")
    vmalloc_min = vmalloc_end - vmalloc_size - VMALLOC_OFFSET
    vmalloc_limit = vmalloc_min - page_offset + phys_offset        # physical
    lowmem_limit = min(phys_offset + ram, vmalloc_limit)           # arm_lowmem_limit
    lowmem = lowmem_limit - phys_offset
    high_memory = page_offset + lowmem                    # __va(arm_lowmem_limit - 1) + 1
    vmalloc_start = (high_memory + VMALLOC_OFFSET) & ~(VMALLOC_OFFSET - 1)
    highmem_bytes = ram - lowmem if highmem else 0
    fix_start, fix_end = fixmap
    S = {"PAGE_OFFSET": page_offset, "PHYS_OFFSET": phys_offset, "PAGE_SHIFT": 12,
         "PAGE_SIZE": SZ_4K, "TASK_SIZE": page_offset - SZ_16M,
         "MODULES_VADDR": page_offset - SZ_16M,
         "MODULES_END": page_offset - PMD_SIZE if highmem else page_offset,
         "PKMAP_BASE": page_offset - PMD_SIZE, "LAST_PKMAP": 512,
         "high_memory": high_memory, "VMALLOC_OFFSET": VMALLOC_OFFSET,
         "VMALLOC_START": vmalloc_start, "VMALLOC_END": vmalloc_end,
         "vmalloc_min": vmalloc_min, "arm_lowmem_limit": lowmem_limit,
         "FIXADDR_START": fix_start, "FIXADDR_END": fix_end,
         "VECTORS_BASE": VECTORS_BASE, "lowmem_bytes": lowmem, "highmem_bytes": highmem_bytes,
         "ARCH_PFN_OFFSET": phys_offset >> 12}

    R: list[Region] = []

    def add(start, end, name, kind, **kw):
        if end > start:
            R.append(Region(start, end, name, kind, **kw))

    add(0, 0x1000, "CPU vector page / null pointer trap", "vector")
    add(0x1000, S["TASK_SIZE"], "user space mappings", "user")
    add(S["MODULES_VADDR"], S["MODULES_END"], "kernel modules", "modules")
    if highmem:
        add(S["PKMAP_BASE"], page_offset, "permanent kernel mappings (pkmap, kmap())", "pkmap")
    add(page_offset, high_memory, "kernel direct-mapped RAM (lowmem)", "linear")
    add(high_memory, vmalloc_start, "[guard: VMALLOC_OFFSET hole]", "guard")
    add(vmalloc_start, vmalloc_end, "vmalloc() / ioremap() space", "vmalloc")
    if vmalloc_start <= PCI_IO_VIRT_BASE and PCI_IO_VIRT_BASE + SZ_2M <= vmalloc_end:
        add(PCI_IO_VIRT_BASE, PCI_IO_VIRT_BASE + SZ_2M, "PCI I/O space (static mapping)",
            "pci_io", overlay=True)
    if vmalloc_end == 0xFF80_0000 and fix_start == 0xFFC8_0000:
        add(0xFF80_0000, 0xFFC0_0000, "firmware DT blob (read-only)", "dtb")
        add(0xFFC0_0000, 0xFFC8_0000, "[guard region]", "guard")
    else:
        add(vmalloc_end, fix_start, "reserved", "guard")
    add(fix_start, fix_end, "fixmap (fix_to_virt())", "fixmap")
    add(fix_end, VECTORS_BASE, "reserved (XScale cache flush, ITCM/DTCM)", "guard")
    add(VECTORS_BASE, VECTORS_BASE + SZ_4K, "CPU vector page", "vector")
    add(VECTORS_BASE + SZ_4K, 0xFFFF_8000, "reserved", "guard")
    add(0xFFFF_8000, 1 << 32, "copy_user_page / clear_user_page", "guard")
    notes = [f"lowmem {lowmem >> 20} MB, highmem {highmem_bytes >> 20} MB of "
             f"{ram >> 20} MB RAM"]
    if ram > lowmem and not highmem:
        notes.append(f"without CONFIG_HIGHMEM the top {(ram - lowmem) >> 20} MB are not used")
    split = f"{page_offset >> 30}G/{((1 << 32) - page_offset) >> 30}G"
    title = f"arm (32-bit), {split} split, {human_size(ram)} RAM at {phys_offset:#x}"
    return Layout("arm", title, R, S, 32, None, None,
                  {"ram": ram, "phys_offset": phys_offset, "vmalloc_size": vmalloc_size,
                   "highmem": highmem}, notes,
                  ["Documentation/arch/arm/memory.rst", "arch/arm/include/asm/memory.h",
                   "arch/arm/include/asm/highmem.h", "arch/arm/include/asm/pgtable.h",
                   "arch/arm/mm/mmu.c"], doc_formatter=doc_table)


def doc_table(layout: Layout) -> str:
    """Start, end (last byte) and use, from the top down as Documentation/arch/arm/memory.rst
    lists them."""
    lines = ["Start\t\tEnd\t\tUse", "-" * 74]
    for r in sorted(layout.regions, key=lambda r: (-r.start, r.overlay)):
        s, e = f"{r.start:08x}", f"{r.last:08x}"
        lines.append(f"{'[' if r.overlay else ''}{s}\t{e}{']' if r.overlay else ''}\t{r.name}")
    return "\n".join(lines)


def mem_init_print(layout: Layout) -> str:
    """The "Virtual kernel memory layout:" block that ARM's ``mem_init()`` printed
    (arch/arm/mm/init.c, until commit 1c31d4e96b8c "ARM: 8820/1: mm: Stop printing the
    virtual memory layout", 2019; release NOT VERIFIED). MLK/MLM print the size >> 10 / >> 20.
    The kernel image lines (.text, .init, .data, .bss) are left out."""
    S = layout.symbols

    def line(label, b, t, shift, unit):
        return f"    {label:<7} : 0x{b:08x} - 0x{t:08x}   ({(t - b) >> shift:4d} {unit})"

    out = ["Virtual kernel memory layout:",
           line("vector", VECTORS_BASE, VECTORS_BASE + SZ_4K, 10, "kB"),
           line("fixmap", S["FIXADDR_START"], S["FIXADDR_END"], 10, "kB"),
           line("vmalloc", S["VMALLOC_START"], S["VMALLOC_END"], 20, "MB"),
           line("lowmem", S["PAGE_OFFSET"], S["high_memory"], 20, "MB")]
    if layout.config["highmem"]:
        out.append(line("pkmap", S["PKMAP_BASE"], S["PKMAP_BASE"] + S["LAST_PKMAP"] * SZ_4K,
                        20, "MB"))
    out.append(line("modules", S["MODULES_VADDR"], S["MODULES_END"], 20, "MB"))
    return "\n".join(out)

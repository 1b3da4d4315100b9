"""Classic 32-bit x86 with the 3G/1G split: where "896 MB of lowmem" comes from.

``PAGE_OFFSET`` is 0xC0000000, so the kernel has 1 GiB of addresses. 2.6's
include/asm-i386/page.h reserved ``__VMALLOC_RESERVE`` = 128 MiB of it for vmalloc, pkmap and
the fixmap, and mapped at most ``MAXMEM = -__PAGE_OFFSET - __VMALLOC_RESERVE`` = 896 MiB of RAM
linearly: ZONE_NORMAL ends at 896 MiB, and any RAM above is ZONE_HIGHMEM, reachable only
through ``kmap()``. Above lowmem (arch/x86/include/asm/pgtable_32_areas.h and, in 2.6,
asm-i386/pgtable.h, highmem.h, fixmap.h): a hole of at least 8 MiB (2.6's ``VMALLOC_START =
(high_memory + 2 * VMALLOC_OFFSET - 1) & ~(VMALLOC_OFFSET - 1)``; today's kernels add
VMALLOC_OFFSET without rounding), vmalloc up to two pages below ``PKMAP_BASE = (FIXADDR_START -
PAGE_SIZE * (LAST_PKMAP + 1)) & PMD_MASK`` (LAST_PKMAP 1024 pages = 4 MiB without PAE; 2.6
computes it from FIXADDR_BOOT_START, the boot-time fixmap, and today's kernels put it below the
CPU entry area, ``(LDT_BASE_ADDR - PAGE_SIZE) & PMD_MASK``: the same 4 MiB slot here), then the
fixmap up to ``FIXADDR_TOP`` 0xfffff000.

A 2008 change made ``MAXMEM = VMALLOC_END - PAGE_OFFSET - __VMALLOC_RESERVE``, a little less
(e.g. 887 MB); it is not modelled. The fixmap's size varies with the config: pass the
``FIXADDR_START`` a boot log printed (0xfff4f000 in the default here, a 1 GiB machine's 2.6 log
quoted in the c-sky kernel tracker). Simplified: non-PAE, one RAM bank from physical 0.
"""

from __future__ import annotations

from kmmlib.errors import BadRequest
from kmmlib.layout.common import SZ_4K, SZ_8M, Layout, Region, human_size

PAGE_OFFSET = 0xC000_0000
VMALLOC_RESERVE = 128 << 20              # __VMALLOC_RESERVE
MAXMEM = (1 << 32) - PAGE_OFFSET - VMALLOC_RESERVE
FIXADDR_TOP = 0xFFFF_F000
LAST_PKMAP = 1024
PMD_MASK = ~((4 << 20) - 1) & 0xFFFF_FFFF   # non-PAE: a PMD maps 4 MiB


def x86_32_layout(ram: int = 1 << 30, *, fixaddr_start: int = 0xFFF4_F000) -> Layout:
    """The classic i386 layout for ``ram`` bytes of RAM."""
    if ram <= 0:
        raise BadRequest("RAM size must be positive")
    if not PAGE_OFFSET < fixaddr_start < FIXADDR_TOP or fixaddr_start % SZ_4K:
        raise BadRequest("FIXADDR_START must be a page address below FIXADDR_TOP 0xfffff000")
    lowmem = min(ram, MAXMEM)
    high_memory = PAGE_OFFSET + lowmem
    pkmap_base = (fixaddr_start - SZ_4K * (LAST_PKMAP + 1)) & PMD_MASK
    S = {"PAGE_OFFSET": PAGE_OFFSET, "PHYS_OFFSET": 0, "PAGE_SHIFT": 12, "PAGE_SIZE": SZ_4K,
         "__VMALLOC_RESERVE": VMALLOC_RESERVE, "MAXMEM": MAXMEM, "high_memory": high_memory,
         "VMALLOC_START": (high_memory + 2 * SZ_8M - 1) & ~(SZ_8M - 1),
         "VMALLOC_END": pkmap_base - 2 * SZ_4K, "PKMAP_BASE": pkmap_base,
         "LAST_PKMAP": LAST_PKMAP, "FIXADDR_START": fixaddr_start, "FIXADDR_TOP": FIXADDR_TOP,
         "lowmem_bytes": lowmem, "highmem_bytes": ram - lowmem, "ARCH_PFN_OFFSET": 0}
    pk_end = pkmap_base + LAST_PKMAP * SZ_4K
    R = [Region(0, PAGE_OFFSET, "user space", "user"),
         Region(PAGE_OFFSET, high_memory, "lowmem: direct mapping of RAM (ZONE_DMA, "
                "ZONE_NORMAL)", "linear"),
         Region(high_memory, S["VMALLOC_START"], "[guard: VMALLOC_OFFSET hole]", "guard"),
         Region(S["VMALLOC_START"], S["VMALLOC_END"], "vmalloc", "vmalloc"),
         Region(S["VMALLOC_END"], pkmap_base, "[guard pages]", "guard"),
         Region(pkmap_base, pk_end, "pkmap (kmap() of highmem pages)", "pkmap"),
         Region(pk_end, fixaddr_start, "[unused]", "guard"),
         Region(fixaddr_start, FIXADDR_TOP, "fixmap", "fixmap"),
         Region(FIXADDR_TOP, 1 << 32, "[top page]", "guard")]
    notes = [f"lowmem {lowmem >> 20} MB, highmem {(ram - lowmem) >> 20} MB of "
             f"{human_size(ram)} RAM"]
    return Layout("x86_32", f"i386 (2.6-era), 3G/1G split, {human_size(ram)} RAM", R, S, 32,
                  None, "2.6", {"ram": ram}, notes,
                  ["include/asm-i386/page.h (2.6)", "arch/x86/include/asm/pgtable_32_areas.h"])


def mem_init_print(layout: Layout) -> str:
    """2.6 i386 ``mem_init()``'s "virtual kernel memory layout:" lines for fixmap, pkmap,
    vmalloc and lowmem (arch/x86/mm/init_32.c; removed by 681ff0181bbf "x86/mm/init/32: Stop
    printing the virtual memory layout", 2020, release NOT VERIFIED)."""
    S = layout.symbols

    def line(label, b, t, shift, unit):
        return f"    {label:<7} : 0x{b:08x} - 0x{t:08x}   ({(t - b) >> shift:4d} {unit})"

    return "\n".join([
        "virtual kernel memory layout:",
        line("fixmap", S["FIXADDR_START"], S["FIXADDR_TOP"], 10, "kB"),
        line("pkmap", S["PKMAP_BASE"], S["PKMAP_BASE"] + LAST_PKMAP * SZ_4K, 10, "kB"),
        line("vmalloc", S["VMALLOC_START"], S["VMALLOC_END"], 20, "MB"),
        line("lowmem", S["PAGE_OFFSET"], S["high_memory"], 20, "MB")])

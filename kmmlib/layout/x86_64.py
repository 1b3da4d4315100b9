"""The x86_64 kernel virtual address layout, with 4-level (47-bit) and 5-level (56-bit) paging.

Every boundary comes from a macro, named in the region's construction below:
``arch/x86/include/asm/page_64_types.h`` (``__PAGE_OFFSET_BASE_L4/L5``, ``__START_KERNEL_map``,
``KERNEL_IMAGE_SIZE``), ``pgtable_64_types.h`` (``LDT_PGD_ENTRY``, ``__VMALLOC_BASE_L4/L5``,
``VMALLOC_SIZE_TB_L4/L5``, ``__VMEMMAP_BASE_L4/L5``, ``CPU_ENTRY_AREA_PGD``,
``ESPFIX_PGD_ENTRY``, ``EFI_VA_START/END``, ``MODULES_VADDR/END``), ``asm/kasan.h``
(``KASAN_SHADOW_START = KASAN_SHADOW_OFFSET + ((-1UL << __VIRTUAL_MASK_SHIFT) >> 3)``, with
Kconfig's ``KASAN_SHADOW_OFFSET`` 0xdffffc0000000000) and ``uapi/asm/vsyscall.h``
(``VSYSCALL_ADDR`` = -10 MB). ``Documentation/arch/x86/x86_64/mm.rst`` tabulates them.

Two windows are the documentation's, not a macro's: the direct map gets 64 TB (L4, which is
``1 << MAX_PHYSMEM_BITS`` with MAX_PHYSMEM_BITS 46) or 32 PB (L5, the code maps at most
``1 << 52`` = 4 PB of it), and vmemmap gets the struct pages for that window (64 bytes per
4 KiB page: 1 TB or 0.5 PB). mm.rst also rounds one boundary: with 5-level paging it starts the
KASAN shadow at ffdf000000000000 ("~8 PB"), where the macro gives ffdffc0000000000 — this
module uses the macro.

Simplified: no KASLR. With ``CONFIG_RANDOMIZE_MEMORY`` the direct map, vmalloc and vmemmap
bases move at boot (in order), and ``KERNEL_IMAGE_SIZE`` is 1 GiB with CONFIG_RANDOMIZE_BASE
(``kaslr=True``), which starts the modules at ffffffffc0000000 instead of ffffffffa0000000.
The fixmap (``FIXADDR_START`` .. ``FIXADDR_TOP``) has a config-dependent size; mm.rst shows it
as "FIXADDR_START ~-11 MB"; here its window from ``MODULES_END`` is used.
"""

from __future__ import annotations

from kmmlib.errors import BadRequest
from kmmlib.layout.common import (
    SZ_1G,
    SZ_1M,
    SZ_2M,
    SZ_4K,
    U64,
    GiB,
    KiB,
    Layout,
    MiB,
    PiB,
    Region,
    TiB,
    neg,
)

KASAN_SHADOW_OFFSET = 0xDFFFFC0000000000      # arch/x86/Kconfig, CONFIG_KASAN_SHADOW_OFFSET
START_KERNEL_MAP = 0xFFFFFFFF80000000         # __START_KERNEL_map
MODULES_END = 0xFFFFFFFFFF000000              # "The module sections ends with the start of
VSYSCALL_ADDR = neg(10 * SZ_1M)               #  the fixmap"; uapi vsyscall.h: -10UL << 20

LEVELS = {
    4: {"shift": 47, "PGDIR_SHIFT": 39, "__PAGE_OFFSET_BASE": 0xFFFF888000000000,
        "__VMALLOC_BASE": 0xFFFFC90000000000, "VMALLOC_SIZE_TB": 32,
        "__VMEMMAP_BASE": 0xFFFFEA0000000000, "MAX_PHYSMEM_BITS": 46,
        "direct_window": 64 * TiB},
    5: {"shift": 56, "PGDIR_SHIFT": 48, "__PAGE_OFFSET_BASE": 0xFF11000000000000,
        "__VMALLOC_BASE": 0xFFA0000000000000, "VMALLOC_SIZE_TB": 12800,
        "__VMEMMAP_BASE": 0xFFD4000000000000, "MAX_PHYSMEM_BITS": 52,
        "direct_window": 32 * PiB},
}


def x86_64_layout(levels: int = 4, *, ram: int | None = None, kaslr: bool = False,
                  phys_base: int = 0) -> Layout:
    """The x86_64 layout with ``levels`` of page tables (4 or 5).

    ``ram`` adds an overlay for the part of the direct map that RAM uses (RAM above 3 GiB
    remapped above 4 GiB, as :func:`kmmlib.mm.memory_model.pc_ranges` models a PC).
    ``phys_base`` is where the kernel image was loaded (``__pa`` of kernel text subtracts
    ``__START_KERNEL_map`` and adds it).
    """
    if levels not in LEVELS:
        raise BadRequest(f"x86_64 has 4- or 5-level paging, not {levels}")
    c = LEVELS[levels]
    shift = c["shift"]
    S: dict[str, int] = {
        "__VIRTUAL_MASK_SHIFT": shift, "PAGE_SHIFT": 12, "PAGE_SIZE": SZ_4K,
        "PGDIR_SHIFT": c["PGDIR_SHIFT"], "P4D_SHIFT": 39, "MAX_PHYSMEM_BITS":
        c["MAX_PHYSMEM_BITS"], "STRUCT_PAGE_SIZE": 64, "phys_base": phys_base, "PHYS_OFFSET": 0,
        "TASK_SIZE_MAX": (1 << shift) - SZ_4K,
        "LDT_BASE_ADDR": neg(240 << c["PGDIR_SHIFT"]),          # LDT_PGD_ENTRY -240UL
        "PAGE_OFFSET": c["__PAGE_OFFSET_BASE"],                  # page_offset_base
        "VMALLOC_START": c["__VMALLOC_BASE"],
        "VMEMMAP_START": c["__VMEMMAP_BASE"],
        "KASAN_SHADOW_START": (KASAN_SHADOW_OFFSET + (neg(1 << shift) >> 3)) % U64,
        "CPU_ENTRY_AREA_BASE": neg(4 << 39),                    # CPU_ENTRY_AREA_PGD -4
        "ESPFIX_BASE_ADDR": neg(2 << 39),                       # ESPFIX_PGD_ENTRY -2
        "EFI_VA_END": neg(68 * SZ_1G), "EFI_VA_START": neg(4 * SZ_1G),
        "__START_KERNEL_map": START_KERNEL_MAP,
        "KERNEL_IMAGE_SIZE": SZ_1G if kaslr else 512 * MiB,
        "MODULES_END": MODULES_END, "VSYSCALL_ADDR": VSYSCALL_ADDR,
    }
    S["LDT_END_ADDR"] = S["LDT_BASE_ADDR"] + (1 << c["PGDIR_SHIFT"])
    S["VMALLOC_END"] = S["VMALLOC_START"] + (c["VMALLOC_SIZE_TB"] << 40) - 1   # inclusive!
    S["KASAN_SHADOW_END"] = S["KASAN_SHADOW_START"] + (1 << (shift - 3))
    S["MODULES_VADDR"] = START_KERNEL_MAP + S["KERNEL_IMAGE_SIZE"]
    S["CPU_ENTRY_AREA_END"] = S["CPU_ENTRY_AREA_BASE"] + (1 << 39)
    S["ESPFIX_END"] = S["ESPFIX_BASE_ADDR"] + (1 << 39)
    direct = c["direct_window"]
    S["vmemmap"] = S["VMEMMAP_START"]                     # pfn_to_page(pfn) = vmemmap + pfn
    S["FIXADDR_TOP"] = -(-(VSYSCALL_ADDR + SZ_4K) // SZ_2M) * SZ_2M - SZ_4K
    vmemmap_size = (direct >> 12) * 64

    R: list[Region] = []

    def add(start, end, name, kind, **kw):
        R.append(Region(start, end, name, kind, **kw))

    hole = "... unused hole"
    add(0, 1 << shift, "user-space virtual memory, different per mm", "user")
    add(1 << shift, neg(1 << shift), "... huge, almost 64 bits wide hole of non-canonical"
        if levels == 4 else "... huge, still almost 64 bits wide hole of non-canonical", "hole")
    add(neg(1 << shift), S["LDT_BASE_ADDR"], "... guard hole, also reserved for hypervisor",
        "guard")
    add(S["LDT_BASE_ADDR"], S["LDT_END_ADDR"], "LDT remap for PTI", "ldt")
    add(S["PAGE_OFFSET"], S["PAGE_OFFSET"] + direct,
        "direct mapping of all physical memory (page_offset_base)", "linear")
    add(S["PAGE_OFFSET"] + direct, S["VMALLOC_START"], hole, "hole")
    add(S["VMALLOC_START"], S["VMALLOC_END"] + 1, "vmalloc/ioremap space (vmalloc_base)",
        "vmalloc")
    add(S["VMALLOC_END"] + 1, S["VMEMMAP_START"], hole, "hole")
    add(S["VMEMMAP_START"], S["VMEMMAP_START"] + vmemmap_size,
        "virtual memory map (vmemmap_base)", "vmemmap")
    add(S["VMEMMAP_START"] + vmemmap_size, S["KASAN_SHADOW_START"], hole, "hole")
    add(S["KASAN_SHADOW_START"], S["KASAN_SHADOW_END"], "KASAN shadow memory", "kasan",
        note="only with CONFIG_KASAN")
    add(S["KASAN_SHADOW_END"], S["CPU_ENTRY_AREA_BASE"], hole, "hole",
        note="vaddr_end for KASLR")
    add(S["CPU_ENTRY_AREA_BASE"], S["CPU_ENTRY_AREA_END"], "cpu_entry_area mapping",
        "cpu_entry")
    add(S["CPU_ENTRY_AREA_END"], S["ESPFIX_BASE_ADDR"], hole, "hole")
    add(S["ESPFIX_BASE_ADDR"], S["ESPFIX_END"], "%esp fixup stacks", "espfix")
    add(S["ESPFIX_END"], S["EFI_VA_END"], hole, "hole")
    add(S["EFI_VA_END"], S["EFI_VA_START"], "EFI region mapping space", "efi")
    add(S["EFI_VA_START"], START_KERNEL_MAP, hole, "hole")
    add(START_KERNEL_MAP, S["MODULES_VADDR"],
        "kernel text mapping, mapped to physical address 0", "kernel")
    add(S["MODULES_VADDR"], MODULES_END, "module mapping space", "modules")
    add(MODULES_END, VSYSCALL_ADDR, "kernel-internal fixmap range, variable size and offset",
        "fixmap", note="FIXADDR_START varies with the config (mm.rst: ~-11 MB)")
    add(VSYSCALL_ADDR, VSYSCALL_ADDR + SZ_4K, "legacy vsyscall ABI", "vsyscall")
    # asm/fixmap.h: FIXADDR_TOP = round_up(VSYSCALL_ADDR + PAGE_SIZE, PMD_SIZE) - PAGE_SIZE, and
    # the fixmap grows down from it: the vsyscall page is its slot 511 (VSYSCALL_PAGE), slots
    # 0..510 lie above it, the rest below. Nothing is mapped from FIXADDR_TOP up to -2 MB.
    add(VSYSCALL_ADDR + SZ_4K, S["FIXADDR_TOP"], "fixmap above the vsyscall page (slots 0..510), "
        "up to FIXADDR_TOP", "fixmap", doc=False)
    add(S["FIXADDR_TOP"], neg(SZ_2M), hole, "hole", doc=False)
    add(neg(SZ_2M), U64, hole, "hole")
    notes = []
    if ram is not None:
        from kmmlib.mm.memory_model import pc_ranges

        top = pc_ranges(ram)[-1][1] << 12
        if top > direct:
            raise BadRequest(f"{ram} bytes of RAM do not fit the direct map")
        add(S["PAGE_OFFSET"], S["PAGE_OFFSET"] + top, f"RAM up to {top:#x} (max_pfn)", "ram",
            overlay=True)
        add(S["VMEMMAP_START"], S["VMEMMAP_START"] + (top >> 12) * 64, "vmemmap in use",
            "vmemmap_used", overlay=True)
        notes.append("the direct map covers the RAM ranges below max_pfn (and the first "
                     "1 MiB); holes such as the PCI hole under 4 GiB stay unmapped, and MMIO is "
                     "reached through ioremap()")
    title = f"x86_64, {levels}-level paging ({shift}-bit user space)"
    return Layout("x86_64", title, R, S, 64, None, f"L{levels}",
                  {"levels": levels, "ram": ram, "kaslr": kaslr}, notes,
                  ["Documentation/arch/x86/x86_64/mm.rst",
                   "arch/x86/include/asm/pgtable_64_types.h",
                   "arch/x86/include/asm/page_64_types.h", "arch/x86/include/asm/kasan.h"],
                  doc_formatter=doc_table)


# -- the table as mm.rst prints it ----------------------------------------------------------------
_UNITS = (("EB", 1 << 60), ("PB", PiB), ("TB", TiB), ("GB", GiB), ("MB", MiB), ("kB", KiB))


def _quarters(value: float) -> bool:
    return abs(value * 4 - round(value * 4)) < 1e-9


def mm_size(n: int, big: str) -> str:
    """A size the way mm.rst writes them: fractions of TB and PB in quarters ("0.5 TB",
    "3.75 PB"), whole GB/MB/kB ("444 GB", "1520 MB"), and the non-canonical hole as
    "~16M TB" / "~16K PB" (in units of the user space's size)."""
    if n >= 1 << 62:
        return "~16M TB" if big == "TB" else "~16K PB"
    for unit, size in _UNITS[1:]:
        v = n / size
        if unit in ("PB", "TB") and v >= 0.25 and _quarters(v):
            return f"{v:g} {unit}"
        if unit not in ("PB", "TB") and v >= 1 and v == int(v):
            return f"{int(v)} {unit}"
    return f"{n} B"


def mm_offset(start: int) -> str:
    """The Offset column: the distance from 0 (user half) or from the top (kernel half),
    in TB/PB quarters, else whole GB or MB."""
    if start == 0:
        return "    0"
    dist = start if start < 1 << 63 else U64 - start
    sign = "+" if start < 1 << 63 else "-"
    for unit, size in (("PB", PiB), ("TB", TiB)):
        v = dist / size
        if v >= 1 and _quarters(v):
            whole, frac = f"{v:g}".partition(".")[::2]
            frac = "." + frac if frac else ""
            return f"{sign + whole:>5}{frac:<3} {unit}"
    for unit, size in (("GB", GiB), ("MB", MiB)):
        if dist >= size and dist % size == 0:
            return f"{sign + str(dist // size):>5}    {unit}"
    return f"{sign}{dist:#x}"


def doc_table(layout: Layout) -> str:
    """The table in the format of Documentation/arch/x86/x86_64/mm.rst (region rows only;
    the doc's continuation lines and its two marker rows are not repeated)."""
    big = "TB" if layout.config["levels"] == 4 else "PB"
    bar = "  " + "=" * 120
    lines = [bar, "      Start addr    |   Offset   |     End addr     |  Size   | "
             "VM area description", bar]
    for r in layout.main_regions:
        if not r.doc:
            continue
        if r.kind == "fixmap":
            start, off, size = "   FIXADDR_START", " ~-11    MB", "~0.5 MB"
            end = f"{VSYSCALL_ADDR - 1:016x}"
        else:
            start, off = f"{r.start:016x}", mm_offset(r.start)
            end, size = f"{r.last:016x}", mm_size(r.size, big)
        lines.append(f"   {start} |{off:<11} | {end} | {size:>7} | {r.name}")
    return "\n".join(lines)

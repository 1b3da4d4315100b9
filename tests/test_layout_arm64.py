"""arm64's kernel layout against the kernel's own documentation, era by era.

Reference data (tests/data/layout/, each file says where it comes from):
- arm64_memory_rst_6.5-6.8.txt: Documentation/arch/arm64/memory.rst's two tables, verbatim;
- arm64_memory_rst_5.4-5.10.txt: the v5.4 tables (CONFIG_KASAN=y);
- arm64_memory_rst_5.4_patch_all_configs.txt: the v5.4 author's tables for the other configs;
- arm64_memory_rst_5bed6a93_diff.txt: the rows the 6.0 doc fix changed (5.11-5.15 vs 6.1);
- arm64_boot_4.x_py-cpuinfo-112.txt: a real 4.x kernel's "Virtual kernel memory layout" print.
For 6.9+ the documentation was not updated, so those tests spell out memory.h's macros.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.layout import layout
from kmmlib.layout.arm64 import ERAS, era_for, fixmap_pages, mem_init_print, va_bits_choices

DATA = Path(__file__).parent / "data" / "layout"
U64 = 1 << 64
SZ_8M, SZ_16M, SZ_1G, SZ_2G = 8 << 20, 16 << 20, 1 << 30, 2 << 30


def doc_tables(name: str) -> dict[str, list[str]]:
    """{title: [row lines]} of a memory.rst copy (rows: lines starting with an address)."""
    tables: dict[str, list[str]] = {}
    title = None
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("AArch64 Linux memory layout"):
            title = line
            tables[title] = []
        elif title and re.match(r"^ ?\s?\[?[0-9a-f]{16}", line):
            tables[title].append(line)
    return tables


def kmm_rows(capsys, *argv: str) -> list[str]:
    assert main(["layout", "arm64", *argv]) == 0
    out = capsys.readouterr().out
    return [line for line in out.splitlines() if re.match(r"^ ?\s?\[?[0-9a-f]{16}", line)]


def fields(line: str) -> tuple[str, ...]:
    """start, end, size, use of a row, whatever the whitespace (tabs or expanded)."""
    return tuple(line.replace("\t", " ").split(None, 3))


# -- 6.5-6.8: the current Documentation/arch/arm64/memory.rst, byte for byte ------------------
DOC_68 = doc_tables("arm64_memory_rst_6.5-6.8.txt")


@pytest.mark.parametrize("kernel", ["6.5", "6.6", "6.8"])
def test_4k_48bit_matches_memory_rst_row_by_row(capsys, kernel):
    doc = DOC_68["AArch64 Linux memory layout with 4KB pages + 4 levels (48-bit)::"]
    got = kmm_rows(capsys, "--kernel", kernel, "--page-size", "4K", "--va-bits", "48")
    assert len(got) == len(doc) == 11
    for mine, theirs in zip(got, doc, strict=True):
        assert mine == theirs            # tabs, brackets, "124TB" and all


@pytest.mark.parametrize("kernel", ["6.5", "6.8"])
def test_64k_52bit_matches_memory_rst_row_by_row(capsys, kernel):
    doc = DOC_68["AArch64 Linux memory layout with 64KB pages + 3 levels (52-bit with HW "
                 "support)::"]
    got = kmm_rows(capsys, "--kernel", kernel, "--page-size", "64K", "--va-bits", "52")
    assert got == doc


def test_the_doc_is_stale_from_6_9(capsys):
    """6.9 moved fixmap, PCI I/O and vmemmap; memory.rst still prints the 6.8 table."""
    doc = DOC_68["AArch64 Linux memory layout with 4KB pages + 4 levels (48-bit)::"]
    got = kmm_rows(capsys, "--kernel", "6.9")
    assert got[:4] == doc[:4]                       # user .. modules unchanged
    assert got[4].split("\t")[0] == doc[4].split("\t")[0]     # vmalloc starts there too
    assert fields(got[4])[1] != fields(doc[4])[1]   # but ends elsewhere, and so on down
    assert [fields(r)[3] for r in got[5:]] != [fields(r)[3] for r in doc[5:]]
    assert "still shows the 6.5-6.8 layout" in "\n".join(layout("arm64", kernel="6.12").notes)


# -- 5.4-5.10 (CONFIG_KASAN=y, as the doc was computed) -----------------------------------------
DOC_54 = doc_tables("arm64_memory_rst_5.4-5.10.txt")
PATCH_54 = doc_tables("arm64_memory_rst_5.4_patch_all_configs.txt")
CONFIGS_54 = [
    (DOC_54, "4KB pages + 4 levels (48-bit)", ["--page-size", "4K", "--va-bits", "48"]),
    (DOC_54, "64KB pages + 3 levels (52-bit with HW support)",
     ["--page-size", "64K", "--va-bits", "52"]),
    (PATCH_54, "4KB pages + 3 levels (39-bit)", ["--page-size", "4K", "--va-bits", "39"]),
    (PATCH_54, "64KB pages + 2 levels (42-bit)", ["--page-size", "64K", "--va-bits", "42"]),
    (PATCH_54, "64KB pages + 3 levels (48-bit)", ["--page-size", "64K", "--va-bits", "48"]),
]


@pytest.mark.parametrize("kernel", ["5.4", "5.10"])
@pytest.mark.parametrize("tables,title,argv", CONFIGS_54, ids=[c[1] for c in CONFIGS_54])
def test_5_4_era_matches_its_tables_row_by_row(capsys, kernel, tables, title, argv):
    doc = tables[f"AArch64 Linux memory layout with {title}::"]
    got = kmm_rows(capsys, "--kernel", kernel, "--kasan", *argv)
    assert [fields(r) for r in got] == [fields(r) for r in doc]


def test_5_4_52bit_kernel_on_a_48bit_cpu():
    """The patch's "52-bit w/o HW support" table: the CPU's TTBR1 covers 48 bits, so the
    usable linear map is the 48-bit one, while vmemmap stays sized for 52 bits."""
    doc = PATCH_54["AArch64 Linux memory layout with 64KB pages + 3 levels (52-bit w/o HW "
                   "support)::"]
    lay = layout("arm64", kernel="5.4", kasan=True, va_bits=52, page_size="64K",
                 vabits_actual=48)
    rows = [fields(r) for r in lay.doc_table().splitlines() if re.match(r"^\s+[0-9a-f]{16}", r)]
    assert rows == [fields(r) for r in doc]


# -- 5.11-5.15 and 6.0-6.4: the rows the 6.0 doc fix changed --------------------------------------
def diff_rows(sign: str) -> list[tuple[str, ...]]:
    return [tuple(line[2:].split(None, 3)) for line in
            (DATA / "arm64_memory_rst_5bed6a93_diff.txt").read_text().splitlines()
            if line.startswith(sign + " ")]


@pytest.mark.parametrize("kernel,sign", [("5.11", "-"), ("5.16", "-"), ("5.17", "+"),
                                         ("6.1", "+"), ("6.4", "+")])
def test_bpf_jit_region_rows(capsys, kernel, sign):
    got = [fields(r) for r in kmm_rows(capsys, "--kernel", kernel)]
    want = diff_rows(sign)
    start = got.index(want[0])
    assert got[start:start + len(want)] == want
    # and the rest of the table is the 6.5-6.8 doc's, from the fixmap down
    doc = [fields(r) for r in DOC_68["AArch64 Linux memory layout with 4KB pages + 4 levels "
                                      "(48-bit)::"]]
    assert got[start + len(want):] == doc[5:]


# -- 4.x: upper-half linear map and the boot print -----------------------------------------------
BOOT = [line for line in (DATA / "arm64_boot_4.x_py-cpuinfo-112.txt").read_text().splitlines()
        if line and not line.startswith("#")]


def test_4x_boot_print_matches_a_real_kernel():
    """The sample's kernel had KASLR: its linear map starts at 0xffffca8400200000. memstart_addr
    is recovered from that one number (__phys_to_virt(0x200000) = (0x200000 - memstart) |
    PAGE_OFFSET); every other number below is then computed, and must match. Its fixmap was
    1027 pages (4108 KB): FIX_HOLE + 1024 FDT pages + EARLYCON + TEXT_POKE0, no GHES or KPTI
    slots."""
    page_offset = U64 - (1 << 47)
    memstart = 0x200000 - (0xffffca8400200000 - page_offset)
    lay = layout("arm64", kernel="4.14", memstart_addr=memstart,
                 fixmap={"ghes": False, "kpti": False})
    printed = mem_init_print(lay, dram_start=0x200000, dram_end=0x1800000000).splitlines()
    want = [b for b in BOOT if not re.match(r"\s+\.(text|rodata|init|data|bss)", b)]
    assert printed == want


def test_4x_layout_has_the_linear_map_on_top():
    lay = layout("arm64", kernel="4.14")
    assert lay.region_at(U64 - 1).kind == "linear"
    assert lay.symbols["PAGE_OFFSET"] == 0xFFFF800000000000
    assert lay.symbols["VA_START"] == 0xFFFF000000000000
    assert lay.region_at(0xFFFF000000000000).kind == "modules"
    with pytest.raises(BadRequest, match="pre-5.4"):
        mem_init_print(layout("arm64", kernel="5.4"), 0, 1 << 30)


def test_5_0_adds_the_bpf_region_below_the_modules():
    lay = layout("arm64", kernel="5.0")
    assert lay.region_at(0xFFFF000000000000).name == "bpf jit region"
    assert lay.symbols["MODULES_VADDR"] == 0xFFFF000000000000 + (128 << 20)


# -- 6.9+: the macros of arch/arm64/include/asm/memory.h and pgtable.h ----------------------------
@pytest.mark.parametrize("page_shift,va_bits", [(12, 39), (12, 48), (14, 47), (14, 48),
                                                (16, 42), (16, 48), (16, 52), (12, 52)])
def test_6_9_plus_follows_memory_h(page_shift, va_bits):
    lay = layout("arm64", kernel="6.12", va_bits=va_bits, page_size=1 << page_shift)
    S = lay.symbols
    va_min = va_bits if va_bits <= 48 else (47 if page_shift == 14 else 48)
    page_offset = U64 - (1 << va_bits)                       # _PAGE_OFFSET(VA_BITS)
    page_end = U64 - (1 << (va_min - 1))                      # _PAGE_END(VA_BITS_MIN)
    vmemmap_size = ((page_end - page_offset) >> page_shift) * 64
    vmemmap_end = U64 - SZ_1G                                 # -UL(SZ_1G)
    assert S["PAGE_OFFSET"] == page_offset
    assert S["MODULES_VADDR"] == page_end
    assert S["MODULES_END"] == S["KIMAGE_VADDR"] == page_end + SZ_2G
    assert S["VMEMMAP_START"] == vmemmap_end - vmemmap_size
    assert S["PCI_IO_START"] == vmemmap_end + SZ_8M
    assert S["PCI_IO_END"] == vmemmap_end + SZ_8M + SZ_16M
    assert S["FIXADDR_TOP"] == U64 - SZ_8M
    assert S["VMALLOC_END"] == vmemmap_end - vmemmap_size - SZ_8M     # VA_BITS == actual
    assert lay.region_at(S["VMEMMAP_START"]).kind == "vmemmap"
    assert lay.region_at(S["FIXADDR_TOP"] - 1).kind == "fixmap"


def test_6_12_48bit_4k_numbers_in_the_reference():
    """4K/48 with 6.12: VMEMMAP_START = -1 GiB - 2 TiB; the same vmemmap_start chapter 04's
    memory model uses for arm64 (kmmlib.mm.memory_model.ARM64_4K)."""
    from kmmlib.mm.memory_model import ARM64_4K, ARM64_64K

    assert layout("arm64", kernel="6.12").symbols["VMEMMAP_START"] == 0xFFFFFDFFC0000000 \
        == ARM64_4K.vmemmap_start
    assert layout("arm64", kernel="6.12", page_size="64K").symbols["VMEMMAP_START"] \
        == ARM64_64K.vmemmap_start


def test_52bit_kernel_on_48bit_cpu_lends_vmemmap_to_vmalloc():
    """pgtable.h 6.9+: VMALLOC_END = VMEMMAP_START + VMEMMAP_UNUSED_NPAGES * sizeof(struct
    page) - SZ_8M, VMEMMAP_UNUSED_NPAGES = (_PAGE_OFFSET(vabits_actual) - PAGE_OFFSET) >>
    PAGE_SHIFT."""
    big = layout("arm64", kernel="6.12", va_bits=52, page_size="64K", vabits_actual=48)
    S = big.symbols
    unused = ((U64 - (1 << 48)) - (U64 - (1 << 52))) >> 16
    assert S["VMALLOC_END"] == S["VMEMMAP_START"] + unused * 64 - SZ_8M
    small = layout("arm64", kernel="6.12", va_bits=48, page_size="64K")
    assert big.region("vmemmap").start == small.symbols["VMEMMAP_START"]


# -- the model's own invariants --------------------------------------------------------------
@pytest.mark.parametrize("era", [e.name for e in ERAS])
def test_every_configuration_of_every_era_tiles_the_address_space(era):
    kernel = era
    for psize in (4096, 16384, 65536):
        for va in va_bits_choices(psize, tuple(map(int, era.split(".")))):
            for kasan in (False, True):
                lay = layout("arm64", kernel=kernel, va_bits=va, page_size=psize, kasan=kasan)
                main_regions = lay.main_regions
                assert main_regions[0].start == 0 and main_regions[-1].end == U64
                kinds = {r.kind for r in main_regions}
                assert {"user", "linear", "modules", "vmalloc", "vmemmap", "pci_io",
                        "fixmap"} <= kinds
                S = lay.symbols
                # vmemmap must hold a struct page for every page of the linear map
                lm = lay.region("linear")
                assert S["VMEMMAP_SIZE"] >= (lm.size >> S["PAGE_SHIFT"]) * 64


def test_eras_and_va_bits_are_checked():
    assert era_for((6, 8)).name == "6.5" and era_for((6, 9)).name == "6.9"
    assert era_for((5, 17)).name == "5.17" and era_for((5, 16)).name == "5.11"
    with pytest.raises(BadRequest, match="before 4.6"):
        layout("arm64", kernel="4.4")
    with pytest.raises(BadRequest, match="VA_BITS"):
        layout("arm64", kernel="6.1", va_bits=52, page_size="4K")      # LPA2 came in 6.9
    with pytest.raises(BadRequest, match="VA_BITS"):
        layout("arm64", kernel="5.3", va_bits=52, page_size="64K")
    with pytest.raises(BadRequest):
        layout("arm64", page_size="8K")
    assert "newer than" in "\n".join(layout("arm64", kernel="7.2").notes)


def test_fixmap_pages_follow_the_enum():
    # the v5.4 doc's 4124 KB (4K) and 4544 KB (64K); the 4.x boot print's 4108 KB
    assert fixmap_pages(4096) * 4 == 4124
    assert fixmap_pages(65536) * 64 == 4544
    assert fixmap_pages(4096, ghes=False, kpti=False) * 4 == 4108


def test_ram_overlays_show_the_used_linear_map_and_vmemmap():
    lay = layout("arm64", kernel="6.12", ram=1 << 30)        # QEMU virt: RAM at 0x40000000
    ram = lay.region("ram")
    assert (ram.start, ram.size) == (0xFFFF000000000000, 1 << 30)
    used = lay.region("vmemmap_used")
    assert used.start == lay.symbols["VMEMMAP_START"]          # the first RAM page's struct page
    assert used.size == (1 << 30 >> 12) * 64                   # 16 MiB of struct pages
    with pytest.raises(BadRequest, match="does not fit"):
        layout("arm64", kernel="6.12", va_bits=39, ram=1 << 40)


def test_sections_were_1_gib_until_5_12_which_moves_memstart_with_64k_pages():
    """SECTION_SIZE_BITS was 30 until 5.12 (then 27, or 29 with 64K pages), and
    ARM64_MEMSTART_ALIGN is never less than a section: with 64K pages and RAM at 1.5 GiB,
    PHYS_OFFSET rounds down to 1 GiB before 5.12 and to 1.5 GiB (512 MiB steps) after."""
    old = layout("arm64", kernel="5.10", page_size="64K", dram_start=0x6000_0000).symbols
    new = layout("arm64", kernel="5.12", page_size="64K", dram_start=0x6000_0000).symbols
    assert (old["SECTION_SIZE_BITS"], new["SECTION_SIZE_BITS"]) == (30, 29)
    assert (old["PHYS_OFFSET"], new["PHYS_OFFSET"]) == (0x4000_0000, 0x6000_0000)
    four_k = layout("arm64", kernel="5.12", page_size="4K", dram_start=0x6000_0000).symbols
    assert four_k["SECTION_SIZE_BITS"] == 27 and four_k["PHYS_OFFSET"] == 0x4000_0000  # PUD


def test_since_6_9_the_fixmap_is_its_size_and_the_rest_of_the_window_a_guard():
    """6.9+: FIXADDR_TOP = -8 MB and the fixmap is FIXADDR_SIZE below it; vmalloc ends below
    the vmemmap now, so from PCI_IO_END to FIXADDR_START nothing is mapped."""
    lay = layout("arm64", kernel="6.12")
    fix = [r for r in lay.main_regions if r.kind == "fixmap"]
    assert len(fix) == 1 and fix[0].size == lay.symbols["FIXADDR_SIZE"]
    assert fix[0].end == lay.symbols["FIXADDR_TOP"] == (1 << 64) - (8 << 20)
    assert lay.region_at(lay.symbols["PCI_IO_END"]).kind == "guard"

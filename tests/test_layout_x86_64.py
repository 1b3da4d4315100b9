"""x86_64's layout against Documentation/arch/x86/x86_64/mm.rst, row by row, for 4- and 5-level
paging (tests/data/layout/x86_64_mm_rst.txt is the doc's two tables verbatim).

Each region row of the doc must have a row in ``kmm layout x86_64`` with the same start, end,
description and size. Sizes are compared as numbers: the doc writes them by hand ("512 MB" but
"0.5 TB"), and a "~" in the doc means approximately (within 5%). Two rows differ on purpose:
mm.rst's 5-level KASAN shadow starts at ffdf000000000000 ("~8 PB"), but arch/x86/include/asm/
kasan.h computes KASAN_SHADOW_OFFSET + ((-1UL << 56) >> 3) = ffdffc0000000000, so the hole
before it ends there too; the test checks both numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.layout import layout
from kmmlib.layout.x86_64 import mm_size

DOC = Path(__file__).parent / "data" / "layout" / "x86_64_mm_rst.txt"
ROW = re.compile(r"^\s+(\w+) \|\s*(~?[-+]?[\d.]+\s+\w+|0)\s*\| ([0-9a-f]{16}) \|\s*(\S+ \S+) \| "
                 r"(.*)$")
UNITS = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "PB": 1 << 50}


def doc_rows(levels: int) -> list[tuple[str, str, str, str]]:
    text = DOC.read_text().split("Complete virtual memory map with 5-level page tables")
    part = text[0] if levels == 4 else text[1]
    return [(m.group(1), m.group(3), m.group(4), m.group(5)) for line in part.splitlines()
            if (m := ROW.match(line))]


def kmm_rows(capsys, levels: int) -> list[tuple[str, str, str, str]]:
    assert main(["layout", "x86_64", "--levels", str(levels)]) == 0
    out = capsys.readouterr().out
    return [(m.group(1), m.group(3), m.group(4), m.group(5)) for line in out.splitlines()
            if (m := ROW.match(line))]


def size_bytes(text: str) -> tuple[float, bool]:
    """("0.5 TB") -> (bytes, approximate?); "~16M TB" is 16 * 2**20 TB."""
    approx = text.startswith("~")
    num, unit = text.lstrip("~").split()
    mult = {"M": 1 << 20, "K": 1 << 10}.get(num[-1], 1)
    return float(num.rstrip("MK")) * mult * UNITS[unit], approx


@pytest.mark.parametrize("levels", [4, 5])
def test_every_row_of_mm_rst(capsys, levels):
    doc = doc_rows(levels)
    mine = kmm_rows(capsys, levels)
    assert len(doc) == len(mine) == 23
    # mm.rst's 5-level KASAN row starts at ffdf000000000000; the macro gives ffdffc0000000000
    kasan_start = 0xDFFFFC0000000000 + (((1 << 64) - (1 << 56)) >> 3)   # asm/kasan.h
    assert kasan_start == 0xFFDFFC0000000000
    assert kasan_start & ~((1 << 48) - 1) == 0xFFDF000000000000        # rounded to 0.25 PB
    rounded = {"ffdf000000000000": f"{kasan_start:016x}",
               "ffdeffffffffffff": f"{kasan_start - 1:016x}"} if levels == 5 else {}
    for (ds, de, dsize, dname), (ms, me, msize, mname) in zip(doc, mine, strict=True):
        assert mname == dname.strip()
        if ds in rounded or de in rounded:     # the two rows around the rounded boundary
            ds, de = rounded.get(ds, ds), rounded.get(de, de)
            assert (ms, me) == (ds, de)
            assert size_bytes(msize)[0] == int(de, 16) + 1 - int(ds, 16)
            continue
        assert (ms, me) == (ds, de)
        got, _ = size_bytes(msize)
        want, approx = size_bytes(dsize)
        if approx:
            assert abs(got - want) <= 0.05 * want
        else:
            assert got == want


def test_fixmap_row_is_the_docs_variable_one(capsys):
    mine = kmm_rows(capsys, 4)
    fix = [r for r in mine if r[0] == "FIXADDR_START"]
    assert fix == [("FIXADDR_START", "ffffffffff5fffff", "~0.5 MB",
                    "kernel-internal fixmap range, variable size and offset")]


def test_constants_from_the_headers():
    """page_64_types.h / pgtable_64_types.h: the macros the rows come from."""
    four, five = layout("x86_64").symbols, layout("x86_64", levels=5).symbols
    assert four["PAGE_OFFSET"] == 0xFFFF888000000000 and five["PAGE_OFFSET"] == \
        0xFF11000000000000
    assert four["LDT_BASE_ADDR"] == ((1 << 64) - (240 << 39))        # LDT_PGD_ENTRY -240
    assert five["LDT_BASE_ADDR"] == ((1 << 64) - (240 << 48))
    assert four["VMALLOC_END"] == 0xFFFFC90000000000 + (32 << 40) - 1
    assert four["MODULES_VADDR"] == 0xFFFFFFFF80000000 + (512 << 20)
    assert layout("x86_64", kaslr=True).symbols["MODULES_VADDR"] == 0xFFFFFFFFC0000000
    assert four["TASK_SIZE_MAX"] == (1 << 47) - 4096


def test_size_formatting_matches_the_doc_where_it_can():
    assert [mm_size(n, "TB") for n in (1 << 39, 444 << 30, 1520 << 20, 512 << 20, 4096)] == \
        ["0.5 TB", "444 GB", "1520 MB", "512 MB", "4 kB"]
    assert mm_size(3 << 48, "PB") == "0.75 PB" and mm_size((1 << 64) - (1 << 57), "PB") == \
        "~16K PB"


def test_x86_64_option_errors():
    with pytest.raises(BadRequest):
        layout("x86_64", levels=3)
    with pytest.raises(BadRequest, match="no option va_bits"):
        layout("x86_64", va_bits=48)


def test_ram_overlay_uses_the_pc_hole():
    lay = layout("x86_64", ram=8 << 30)        # 3 GiB below the hole, 5 GiB above 4 GiB
    ram = lay.region("ram")
    assert ram.start == 0xFFFF888000000000 and ram.size == 9 << 30


@pytest.mark.parametrize("levels", [4, 5])
def test_the_fixmap_ends_at_fixaddr_top(levels):
    """asm/fixmap.h: FIXADDR_TOP = round_up(VSYSCALL_ADDR + PAGE_SIZE, 1 << PMD_SHIFT) -
    PAGE_SIZE = 0xffffffffff7ff000, and fix_to_virt(VSYSCALL_PAGE = 511) is the vsyscall
    page: slots 0..510 lie above it, nothing from FIXADDR_TOP up to -2 MB."""
    lay = layout("x86_64", levels=levels)
    top = ((0xffffffffff600000 + 4096 + (1 << 21) - 1) & ~((1 << 21) - 1)) - 4096
    assert lay.symbols["FIXADDR_TOP"] == top == 0xffffffffff7ff000
    assert top - 511 * 4096 == 0xffffffffff600000                  # the vsyscall slot
    assert lay.region_at(top - 4096).kind == "fixmap"
    assert lay.region_at(top).kind == lay.region_at(0xffffffffff900000).kind == "hole"


def test_plain_sizes_are_not_rounded_by_a_third():
    """mm.rst writes the module space as 1520 MB; a whole-GB rounding said ~1GB."""
    from kmmlib.layout.common import human_size

    assert human_size(1520 << 20, finer=True) == "1520MB"
    assert human_size(3 << 30, finer=True) == "3GB"
    assert human_size((3968 << 40), finer=True) == "3968TB"
    assert human_size(3968 << 40) == "~4PB"                        # memory.rst's own rounding
    assert "1520MB  module mapping space" in layout("x86_64").table()

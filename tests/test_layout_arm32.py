"""32-bit layouts: ARM's lowmem/highmem split and its boot print, and i386's 896 MB.

Reference data: a BeagleBone Black's boot print (tests/data/layout/arm_boot_beaglebone_black.txt,
a 3.x kernel: VMALLOC_END 0xff000000, fixmap at 0xfff00000) and the i386 lines of a 2.6 boot
log quoted in the c-sky kernel tracker (github.com/c-sky/csky-linux issue 3: fixmap
0xfff4f000-0xfffff000, pkmap 0xff800000-0xffc00000, vmalloc 0xf8800000-0xff7fe000, lowmem
0xc0000000-0xf8000000, 896 MB), whose arm_32 lines (vmalloc 0xf0800000-0xff800000 240 MB,
lowmem 0xc0000000-0xf0000000 768 MB, pkmap 0xbfe00000, modules 0xbf000000-0xbfe00000) are the
modern ARM defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest
from kmmlib.layout import arm32, layout, x86_32

DATA = Path(__file__).parent / "data" / "layout"


def squash(line: str) -> str:
    return re.sub(r"\(\s+", "(", re.sub(r"\s+", " ", line)).strip()


def test_beaglebone_black_boot_print():
    """512 MB at 0x80000000, all of it lowmem: VMALLOC_START = high_memory + 8 MB."""
    lay = layout("arm", ram=512 << 20, vmalloc_end=0xFF00_0000,
                 fixmap=(0xFFF0_0000, 0xFFFE_0000))
    printed = [squash(x) for x in arm32.mem_init_print(lay).splitlines()]
    real = [squash(x) for x in (DATA / "arm_boot_beaglebone_black.txt").read_text().splitlines()
            if x and not x.startswith("#") and not x.startswith("Memory")]
    assert printed[:len(real)] == real
    assert lay.symbols["highmem_bytes"] == 0


def test_modern_arm_defaults_with_1g():
    lay = layout("arm", ram=1 << 30)
    S = lay.symbols
    # vmalloc_min = VMALLOC_END - 240 MB - VMALLOC_OFFSET
    assert S["vmalloc_min"] == 0xFF80_0000 - (240 << 20) - (8 << 20) == 0xF000_0000
    assert (S["PAGE_OFFSET"], S["high_memory"]) == (0xC000_0000, 0xF000_0000)   # 768 MB
    assert (S["VMALLOC_START"], S["VMALLOC_END"]) == (0xF080_0000, 0xFF80_0000)
    assert S["lowmem_bytes"] == 768 << 20 and S["highmem_bytes"] == 256 << 20
    assert (S["PKMAP_BASE"], S["MODULES_VADDR"], S["MODULES_END"]) == \
        (0xBFE0_0000, 0xBF00_0000, 0xBFE0_0000)
    assert lay.region_at(0xFEE0_0000).kind == "vmalloc"
    assert [o.kind for o in lay.overlays_at(0xFEE0_0000)] == ["pci_io"]
    assert lay.region_at(0xFF90_0000).kind == "dtb"
    assert lay.region_at(0xFFFF_0000).kind == "vector"


@pytest.mark.parametrize("ram_mb,lowmem_mb", [(256, 256), (760, 760), (768, 768), (2048, 768)])
def test_lowmem_is_ram_up_to_768_mb(ram_mb, lowmem_mb):
    lay = layout("arm", ram=ram_mb << 20)
    assert lay.symbols["lowmem_bytes"] == lowmem_mb << 20
    assert lay.symbols["highmem_bytes"] == (ram_mb - lowmem_mb) << 20


def test_vmalloc_option_and_no_highmem():
    lay = layout("arm", ram=1 << 30, vmalloc_size=128 << 20)     # vmalloc=128M
    assert lay.symbols["lowmem_bytes"] == (0xFF80_0000 - (136 << 20) - 0xC000_0000)
    no_hi = layout("arm", ram=1 << 30, highmem=False)
    assert no_hi.symbols["highmem_bytes"] == 0 and no_hi.symbols["MODULES_END"] == 0xC000_0000
    assert "not used" in " ".join(no_hi.notes)
    with pytest.raises(BadRequest, match="vmalloc="):
        layout("arm", vmalloc_size=1 << 20)
    # The largest vmalloc= early_vmalloc() allows still leaves 32 MB of lowmem:
    # VMALLOC_END - (PAGE_OFFSET + SZ_32M + VMALLOC_OFFSET).
    largest = 0xFF80_0000 - (0xC000_0000 + (32 << 20) + (8 << 20))
    assert layout("arm", ram=1 << 30, vmalloc_size=largest).symbols["lowmem_bytes"] == 32 << 20
    with pytest.raises(BadRequest, match="leave 32 MB of lowmem"):
        layout("arm", ram=1 << 30, vmalloc_size=largest + (8 << 20))
    with pytest.raises(BadRequest):
        layout("arm", page_offset=0x9000_0000)


def test_i386_896_mb_and_its_boot_lines():
    lay = layout("x86_32", ram=1 << 30)
    S = lay.symbols
    assert S["MAXMEM"] == 896 << 20 and S["highmem_bytes"] == 128 << 20
    lines = x86_32.mem_init_print(lay).splitlines()[1:]
    assert [tuple(re.findall(r"0x[0-9a-f]{8}", x)) for x in lines] == [
        ("0xfff4f000", "0xfffff000"), ("0xff800000", "0xffc00000"),
        ("0xf8800000", "0xff7fe000"), ("0xc0000000", "0xf8000000")]
    assert lines[3].endswith("( 896 MB)")
    small = layout("x86_32", ram=512 << 20)
    assert small.symbols["highmem_bytes"] == 0 and small.symbols["VMALLOC_START"] == 0xE080_0000


def test_i386_vmalloc_starts_at_least_8_mb_above_lowmem():
    """2.6's VMALLOC_START = (high_memory + 2 * VMALLOC_OFFSET - 1) & ~(VMALLOC_OFFSET - 1):
    rounded up, so the hole that catches overruns of lowmem is never under 8 MiB."""
    for ram_mb, start in ((1024, 0xF880_0000), (510, 0xE080_0000), (512, 0xE080_0000)):
        s = layout("x86_32", ram=ram_mb << 20).symbols
        assert s["VMALLOC_START"] == start, ram_mb
        assert 8 << 20 <= s["VMALLOC_START"] - s["high_memory"] < 16 << 20

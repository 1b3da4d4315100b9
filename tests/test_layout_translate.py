"""__pa/__va/virt_to_page on each architecture, and agreement with chapter 04's memory model.

The expected numbers are the kernel's macros worked out in the test: arm64
``__phys_to_virt(x) = ((x) - PHYS_OFFSET) | PAGE_OFFSET`` and ``vmemmap = (struct page
*)VMEMMAP_START - (memstart_addr >> PAGE_SHIFT)``; x86_64 ``x - PAGE_OFFSET`` and
``vmemmap_base + pfn``; ARM ``x - PAGE_OFFSET + PHYS_OFFSET``.
"""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.layout import layout
from kmmlib.layout.translate import (
    memory_model_arch,
    page_to_pfn,
    page_to_virt,
    pfn_to_page,
    phys_to_virt,
    translate,
    virt_to_page,
    virt_to_phys,
)
from kmmlib.mm.memory_model import SparsememVmemmap

VIRT_BOARD = 0x4000_0000          # QEMU virt: RAM at 1 GiB


def test_arm64_linear_map_round_trip():
    lay = layout("arm64", kernel="6.12", ram=1 << 30)
    pa = VIRT_BOARD + 0x12_3456
    va = phys_to_virt(lay, pa)
    assert va == ((pa - VIRT_BOARD) | 0xFFFF000000000000) == 0xFFFF000000123456
    assert virt_to_phys(lay, va) == pa
    page = virt_to_page(lay, va)
    # vmemmap = VMEMMAP_START - (memstart_addr >> PAGE_SHIFT) struct pages
    assert page == 0xFFFFFDFFC0000000 - (VIRT_BOARD >> 12) * 64 + (pa >> 12) * 64
    assert page_to_pfn(lay, page) == pa >> 12
    assert page_to_virt(lay, page) == va & ~0xFFF


def test_arm64_pre_flip_linear_map_is_the_upper_half():
    lay = layout("arm64", kernel="4.14", dram_start=0)
    assert phys_to_virt(lay, 0x200000) == 0xFFFF800000200000
    assert virt_to_phys(lay, 0xFFFF800000200000) == 0x200000
    with pytest.raises(BadRequest, match="not in the linear map"):
        virt_to_phys(lay, 0xFFFF000010000000)          # vmalloc: the page tables know


def test_x86_64_direct_map_and_kernel_text():
    lay = layout("x86_64")
    assert virt_to_phys(lay, 0xFFFF888000000000 + 0x1000) == 0x1000
    assert phys_to_virt(lay, 0x1000) == 0xFFFF888000001000
    assert virt_to_phys(lay, 0xFFFFFFFF81000000) == 0x1000000     # text: phys_base 0
    assert pfn_to_page(lay, 0x1000) == 0xFFFFEA0000000000 + 0x1000 * 64
    t = translate(lay, 0xFFFFC90000001000)
    assert t.kind == "vmalloc" and t.phys is None and "page tables" in t.how


def test_arm32_lowmem_and_highmem():
    lay = layout("arm", ram=1 << 30, phys_offset=0x8000_0000)
    assert virt_to_phys(lay, 0xC000_1000) == 0x8000_1000
    assert phys_to_virt(lay, 0xAFFF_F000) == 0xEFFF_F000               # last lowmem page
    with pytest.raises(BadRequest, match="highmem"):
        phys_to_virt(lay, 0xB000_0000)                                  # 768 MB in: highmem
    with pytest.raises(BadRequest, match="FLATMEM"):
        virt_to_page(lay, 0xC000_1000)


def test_translate_says_where_and_what():
    lay = layout("arm64", kernel="6.12", ram=1 << 30)
    t = translate(lay, 0xFFFF000000123456)
    assert (t.kind, t.phys, t.pfn) == ("linear", 0x40123456, 0x40123)
    assert "RAM" in " ".join(t.overlays)
    assert "__pa()" in t.text()
    beyond = translate(lay, 0xFFFF000100000000)            # 4 GiB into the linear map
    assert "no RAM is there" in beyond.how


def test_agrees_with_chapter_04s_sparsemem_vmemmap():
    """memory_model_arch() hands the layout's vmemmap to kmmlib.mm.memory_model; both must
    give the same struct page for every pfn of the RAM."""
    for lay in (layout("arm64", kernel="6.12", ram=1 << 30),
                layout("arm64", kernel="5.10", ram=1 << 30, page_size="64K"),
                layout("x86_64", ram=4 << 30)):
        model = SparsememVmemmap([(VIRT_BOARD >> 12, (VIRT_BOARD + (1 << 30)) >> 12)],
                                 memory_model_arch(lay))
        for pfn in (VIRT_BOARD >> 12, (VIRT_BOARD >> 12) + 12345):
            assert model.pfn_to_page(pfn) == pfn_to_page(lay, pfn)


def test_bad_addresses():
    lay = layout("arm64", kernel="6.12")
    with pytest.raises(BadRequest):
        lay.region_at(1 << 64)
    with pytest.raises(BadRequest):
        phys_to_virt(lay, -1)
    with pytest.raises(BadRequest):
        page_to_pfn(lay, 0xFFFF000000000000)                 # not in vmemmap

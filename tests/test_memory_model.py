"""FLATMEM, classic SPARSEMEM and SPARSEMEM_VMEMMAP: pfn_to_page arithmetic and memmap cost.

The real figure: the bundled snapshot's /proc/vmstat says ``nr_memmap_boot_pages 98304`` (the
struct pages of a 24 GiB machine), which the section arithmetic must reproduce from zoneinfo.
"""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.mm import memory_model as mmod
from kmmlib.mm.memory_model import Flatmem, Sparsemem, SparsememVmemmap
from kmmlib.procfs.source import snapshot

GiB = 1 << 30


def test_snapshot_memmap_equals_the_kernels_nr_memmap_boot_pages():
    res = mmod.snapshot_vmemmap(snapshot())
    assert res["kernel_pages"] is not None
    assert res["computed_pages"] == res["kernel_pages"]
    # 2 MiB of struct pages per 128 MiB section.
    assert res["computed_pages"] == res["present_sections"] * 512


def test_struct_pages_cost_64_of_every_4096_bytes():
    for ram in (GiB, 16 * GiB, 24 * GiB):
        c = mmod.memmap_cost(ram)
        assert c["memmap_bytes"] * 4096 == ram * 64
        assert c["percent"] == pytest.approx(1.5625)
    assert mmod.memmap_cost(GiB, mmod.ARM64_64K)["percent"] == pytest.approx(100 * 64 / 65536)


def test_vmemmap_pfn_to_page_is_plain_arithmetic():
    vm = SparsememVmemmap([(0, 1 << 20)])
    assert vm.pfn_to_page(0) == 0xFFFFEA0000000000
    assert vm.pfn_to_page(0x1234) - vm.pfn_to_page(0x1233) == 64
    assert vm.page_to_pfn(vm.pfn_to_page(0x6543)) == 0x6543
    with pytest.raises(BadRequest):
        vm.page_to_pfn(vm.pfn_to_page(5) + 3)
    # The whole possible array: 2**(46-12) pages x 64 bytes = 1 TiB on x86_64 (mm.rst's
    # "1 TB virtual memory map").
    assert vm.vmemmap_size == 1 << 40


def test_flatmem_arithmetic_and_holes():
    fm = Flatmem([(0x100, 0x200), (0x400, 0x500)], mem_map_addr=0xC1000000)
    assert fm.arch_pfn_offset == 0x100 and fm.max_mapnr == 0x400
    assert fm.pfn_to_page(0x100) == 0xC1000000
    assert fm.pfn_to_page(0x401) == 0xC1000000 + (0x401 - 0x100) * 64
    assert fm.page_to_pfn(fm.pfn_to_page(0x1FF)) == 0x1FF
    assert fm.pfn_valid(0x300)                          # a hole still has a struct page
    assert not fm.pfn_valid(0xFF) and not fm.pfn_valid(0x500)
    with pytest.raises(BadRequest):
        fm.pfn_to_page(0x500)
    assert fm.memmap_bytes == 0x400 * 64                # holes are paid for


def test_classic_sparsemem_is_pre_biased():
    sm = Sparsemem([(0, 32768), (3 * 32768, 4 * 32768)], first_map_addr=0x10000000)
    assert sm.present_sections == [0, 3]
    assert sm.pfn_to_page(5) == 0x10000000 + 5 * 64
    # Section 3's map follows section 0's directly, though its pfns are far away.
    assert sm.pfn_to_page(3 * 32768) == 0x10000000 + 32768 * 64
    with pytest.raises(BadRequest, match="not present"):
        sm.pfn_to_page(32768)


def test_vmemmap_skips_holes_flatmem_does_not():
    ranges = mmod.pc_ranges(4 * GiB)                  # 3 GiB low, 1 GiB above 4 GiB
    assert ranges == [(0, 3 * GiB >> 12), (4 * GiB >> 12, 5 * GiB >> 12)]
    c = mmod.compare_models(ranges)
    assert c["vmemmap_bytes"] == 4 * GiB // 64       # 64 B per 4 KiB of RAM
    assert c["flatmem_bytes"] == 5 * GiB // 64       # and the 1 GiB hole too
    rows = mmod.memmap_cost_table([GiB, 4 * GiB])
    assert rows[0]["flatmem_percent"] == rows[0]["vmemmap_percent"]
    assert rows[1]["flatmem_percent"] > rows[1]["vmemmap_percent"]


def test_sections_round_up():
    vm = SparsememVmemmap([(0, 1)])                   # one page makes a whole section present
    assert vm.present_sections == [0] and vm.memmap_pages == 512
    assert vm.pfn_valid(32767) and not vm.pfn_valid(32768)


def test_bad_ranges():
    for bad in ([(5, 5)], [(0, 10), (5, 20)], [(-1, 3)]):
        with pytest.raises(BadRequest):
            SparsememVmemmap(bad)
    with pytest.raises(BadRequest, match="MAX_PHYSMEM_BITS"):
        SparsememVmemmap([(1 << 34, (1 << 34) + 1)])

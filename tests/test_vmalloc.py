"""vmalloc: areas in the vmalloc range built from single pages, guard pages, lazy purging,
/proc/vmallocinfo and meminfo's Vmalloc lines against the real kernel's, the bookkeeping kmallocs
the real trace shows, and kmalloc vs vmalloc side by side."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest
from kmmlib.events import Collect
from kmmlib.mm.vmalloc import (
    PAGE_SIZE,
    VMALLOC_START,
    Vmalloc,
    kmalloc_vs_vmalloc,
)
from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.slab.slub import Slub, make_zone

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "kmmlib" / "data" / "snapshot"
SEEN = Path(__file__).parent.parent / "kmmlib" / "data" / "kmalloc_seen.txt"
VMALLOCINFO_LINE = re.compile(
    r"^0x[0-9a-f]{16}-0x[0-9a-f]{16} +(\d+) (\S+)( pages=(\d+))? vmalloc( vpages)?"
    r"( N0=(\d+))?$")


@pytest.fixture()
def machine():
    zone = make_zone(4096)
    slub = Slub(zone, nr_cpus=2)
    return zone, slub, Vmalloc(zone, slub)


def test_areas_are_lowest_fit_with_a_guard_page(machine):
    zone, _, vm = machine
    a = vm.vmalloc(10000)                  # 3 pages + guard
    b = vm.vmalloc(4096)
    assert a == VMALLOC_START and b == a + 4 * PAGE_SIZE
    assert vm.busy[a].size == 4 * PAGE_SIZE and vm.busy[a].get_vm_area_size() == 3 * PAGE_SIZE
    assert vm.is_vmalloc_addr(a) and not vm.is_vmalloc_addr(0xFFFF888000000000)
    with pytest.raises(BadRequest):
        vm.vmalloc_to_pfn(a + 3 * PAGE_SIZE)               # the guard page is not mapped
    c = vm.vmalloc(8192, align=16384)
    assert c % 16384 == 0 and c >= b + 2 * PAGE_SIZE


def test_pages_are_single_pages_from_the_buddy_allocator(machine):
    zone, _, vm = machine
    before = zone.nr_free_pages
    a = vm.vmalloc(5 * PAGE_SIZE)
    pfns = [vm.vmalloc_to_pfn(a + i * PAGE_SIZE + 17) for i in range(5)]
    assert pfns == vm.busy[a].pages
    blocks = zone.allocated_blocks()
    assert all(blocks.get(p) == 0 for p in pfns)            # each an order-0 allocation
    used = before - zone.nr_free_pages
    assert used >= 5
    vm.vfree(a)
    assert zone.nr_free_pages == before - (used - 5)         # the pages are back at once …
    assert a not in vm.busy and vm.purge_list[0][0] == a     # … the addresses are not
    zone.check()


def test_lazy_purge_defers_address_reuse(machine):
    _, _, vm = machine
    a = vm.vmalloc(PAGE_SIZE)
    vm.vfree(a)
    b = vm.vmalloc(PAGE_SIZE)
    assert b == a + 2 * PAGE_SIZE                # not reused: the range waits to be purged
    assert "unpurged vm_area" in vm.vmallocinfo()
    assert vm.purge_vmap_area_lazy() == 2
    assert vm.vmalloc(PAGE_SIZE) == a            # the lowest fit again
    assert vm.lazy_max_pages == 2 * 8192         # fls(2 CPUs) × 32 MiB


def test_exhausted_address_space_purges_and_retries():
    zone = make_zone(256)
    vm = Vmalloc(zone, None, start=VMALLOC_START, end=VMALLOC_START + 8 * PAGE_SIZE - 1)
    a = vm.vmalloc(3 * PAGE_SIZE)                # 4 pages with its guard
    b = vm.vmalloc(3 * PAGE_SIZE)                # the other 4
    vm.vfree(a)
    with Collect(vm.events) as seen:
        c = vm.vmalloc(3 * PAGE_SIZE)            # no room until the lazy list is purged
    assert c == a and any(e.kind == "vmap_purge" for e in seen)
    assert vm.vmalloc(PAGE_SIZE) is None and "failed" in vm.dmesg[-1]
    vm.vfree(b)
    vm.vfree(c)


def test_lazy_list_is_purged_past_lazy_max_pages():
    zone = make_zone(32768)                      # 16384 Unmovable pages
    vm = Vmalloc(zone, None, nr_cpus=1)          # lazy_max_pages = 8192
    a = vm.vmalloc(8192 * PAGE_SIZE)             # 8192 pages + guard = 8193 pages of space
    vm.vfree(a)
    assert vm.purge_list == [] and vm.free_ranges[0][0] == VMALLOC_START


def test_failure_returns_null_and_leaks_nothing():
    zone = make_zone(64)
    slub = Slub(zone, nr_cpus=1, kmalloc=True)
    vm = Vmalloc(zone, slub)
    before = zone.nr_free_pages + slub.slab_pages()
    assert vm.vmalloc(200 * PAGE_SIZE) is None   # more pages than the zone has …
    assert "exceeds total pages" in vm.dmesg[-1]
    want = zone.nr_free_pages + 1                # … more than it has free
    assert vm.vmalloc(want * PAGE_SIZE) is None
    assert "failed to allocate pages" in vm.dmesg[-1] and not vm.busy
    slub.check()
    zone.check()
    # Every page taken on the way (and the bookkeeping objects) was given back; only slabs
    # the bookkeeping caches keep may remain.
    assert zone.nr_free_pages + slub.slab_pages() == before
    assert not vm.page_tables
    assert vm.vmalloc(0) is None


def test_bad_vfree(machine):
    _, _, vm = machine
    vm.vfree(None)
    vm.vfree(0)
    a = vm.vmalloc(PAGE_SIZE)
    with pytest.raises(BadRequest, match="bad address"):
        vm.vfree(a + 8)
    with pytest.raises(BadRequest, match="nonexistent vm area"):
        vm.vfree(a + PAGE_SIZE)
    with pytest.raises(BadRequest):
        vm.vmalloc(-1)
    with pytest.raises(BadRequest):
        vm.vmalloc(PAGE_SIZE, align=3000)


def test_bookkeeping_kmallocs_match_the_real_trace(machine):
    """A 16 KiB vmalloc (a kernel stack) makes the kmalloc calls a fork makes in the trace:
    the vm_struct (72 → kmalloc-96) and the page array (4 × 8 = 32 bytes), both zeroed."""
    _, slub, vm = machine
    with Collect(slub.events) as seen:
        vm.vmalloc(16384, caller="kernel_clone+0x94/0x3e0")
    km = [(e.data["bytes_req"], e.data["bytes_alloc"]) for e in seen if e.kind == "kmalloc"]
    assert km == [(72, 96), (32, 32)]
    traced = {tuple(line.split()[:3]) for line in SEEN.read_text().splitlines()
              if not line.startswith("#")}
    for req, alloc in km:
        assert (str(req), str(alloc), "GFP_KERNEL|__GFP_ZERO") in traced
    assert any(e.kind == "obj_alloc" and e.data["cache"] == "vmap_area" for e in seen)


def test_big_areas_vmalloc_their_page_array(machine):
    _, _, vm = machine
    a = vm.vmalloc(600 * PAGE_SIZE)              # 600 × 8 bytes > a page
    area = vm.busy[a]
    assert area.pages_array_vmalloc and vm.is_vmalloc_addr(area.pages_array)
    assert " vpages N0=600" in vm.vmallocinfo()
    vm.vfree(a)
    assert not vm.busy


def test_vmallocinfo_and_meminfo_look_like_the_kernels(machine):
    _, _, vm = machine
    vm.vmalloc(16384, caller="kernel_clone+0x94/0x3e0")
    line = vm.vmallocinfo().splitlines()[0]
    m = VMALLOCINFO_LINE.match(line)
    assert m and m.group(1) == "20480" and m.group(4) == m.group(7) == "4"
    snap = parse_meminfo((SNAPSHOT / "meminfo").read_text())
    mine = vm.meminfo()
    assert mine["VmallocTotal"] == snap["VmallocTotal"] == 34359738367
    assert mine["VmallocUsed"] == 16 and mine["VmallocChunk"] == snap["VmallocChunk"] == 0


def test_live_vmallocinfo_vmalloc_lines_have_our_shape():
    p = Path("/proc/vmallocinfo")
    if not p.exists() or not os.access(p, os.R_OK):
        pytest.skip("/proc/vmallocinfo is missing or root-only here")
    lines = [x for x in p.read_text().splitlines() if re.search(r" vmalloc( |$)", x)]
    if not lines:
        pytest.skip("no vmalloc areas listed")
    for x in lines:
        m = VMALLOCINFO_LINE.match(x)
        assert m, x
        if m.group(4):
            # size = pages + one guard page (every vmalloc area has one unless VM_NO_GUARD)
            assert int(m.group(1)) in (int(m.group(4)) * PAGE_SIZE + PAGE_SIZE,
                                       int(m.group(4)) * PAGE_SIZE), x


def test_kmalloc_vs_vmalloc_side_by_side(machine):
    zone, slub, vm = machine
    rng = random.Random(8)
    held = [zone.alloc_pages("GFP_KERNEL", 0) for _ in range(300)]
    for p in rng.sample(held, 150):              # a fragmented machine
        zone.free(p, 0)
    v = vm.vmalloc(16384)
    k = slub.kmalloc(16384)
    text = kmalloc_vs_vmalloc(slub, vm, k, v)
    assert text.splitlines()[-1].split() == ["physically", "contiguous:", "yes",
                                              "physically", "contiguous:", "no"]
    kp = slub.virt_to_pfn(k)
    assert f"{kp + 3:#10x}" in text
    # The kmalloc column's four pages are one order-2 block of the buddy allocator
    # (kmalloc_large()), which is why they are contiguous.
    assert zone.allocated_blocks().get(kp) == 2

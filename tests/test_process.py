"""The process model: VMAs, demand paging, the fault path's eight steps, and the counters
(RSS, VSZ, VmPTE, Committed_AS) that /proc would show for each system call."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest, KmmError
from kmmlib.events import Collect
from kmmlib.userspace.process import (
    MADV_DONTNEED,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MMAP_BASE,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    START_BRK,
    FaultDemo,
    ProcessKilled,
    SegmentationFault,
    System,
    fault_stepper,
    pt_index,
)

MiB = 1 << 20
PRIVATE = MAP_PRIVATE | MAP_ANONYMOUS


@pytest.fixture
def sysm():
    return System(4096)


@pytest.fixture
def mm(sysm):
    return sysm.spawn("test").mm


def fault_steps(events) -> list[int]:
    return [e.data["step"] for e in events if e.kind == "fault" and e.text[0].isdigit()]


# -- mmap reserves, touching allocates -------------------------------------------------------
def test_mmap_reserves_address_space_and_a_promise_but_no_memory(sysm, mm):
    free = sysm.zone.nr_free_pages
    a = mm.mmap(0, 10 * MiB)
    assert a == MMAP_BASE - 10 * MiB                  # top-down from mmap_base
    assert mm.counters() == {"VSZ": 10240, "RSS": 0, "VmPTE": 0, "VmLck": 0,
                             "committed": 10240}
    assert sysm.vm.committed_as == 10 * MiB // PAGE_SIZE
    assert sysm.zone.nr_free_pages == free            # not one page taken
    b = mm.mmap(0, 4096)
    assert b == a - 4096 and len(mm.vmas) == 1        # adjacent, same flags: one VMA
    sysm.check()


def test_a_write_to_a_new_page_takes_one_page_and_three_tables(sysm, mm):
    a = mm.mmap(0, MiB)
    free = sysm.zone.nr_free_pages
    assert mm.touch(a + 5) == "new page"
    assert mm.counters()["RSS"] == 4 and mm.pgtables_bytes == 3 * PAGE_SIZE
    assert sysm.zone.nr_free_pages == free - 4         # PUD, PMD, PTE tables + the page
    assert mm.task.min_flt == 1
    assert mm.touch(a + 100) == "tlb hit" and mm.task.min_flt == 1
    assert mm.touch(a + PAGE_SIZE) == "new page" and mm.pgtables_bytes == 3 * PAGE_SIZE
    assert mm.counters()["RSS"] == 8 and mm.task.min_flt == 2
    sysm.check()


def test_a_written_page_gets_the_x86_bits_of_a_private_dirty_page(mm):
    a = mm.mmap(0, PAGE_SIZE)
    mm.touch(a)
    pte = mm.follow_pte(a)
    # NX | pfn | soft-dirty dirty accessed user rw present: the 0x...867 of real page dumps
    assert pte & 0xFFF == 0x867 and pte >> 63 == 1
    pfn = (pte >> 12) & ((1 << 40) - 1)
    page = mm.system.zone.mem_map.page(pfn)
    assert page.anon and page.mapcount == 1 and page.count == 1
    assert page.index == a >> 12                       # linear_page_index()


def test_a_read_maps_the_zero_page_and_a_later_write_copies_it(sysm, mm):
    a = mm.mmap(0, MiB)
    free = sysm.zone.nr_free_pages
    assert mm.touch(a, write=False) == "zero page"
    assert mm.counters()["RSS"] == 0
    assert sysm.zone.nr_free_pages == free - 3         # only the page tables
    assert (mm.follow_pte(a) >> 12) & ((1 << 40) - 1) == sysm.zero_pfn
    assert mm.touch(a, write=False) == "tlb hit"
    with Collect(sysm.events) as seen:
        assert mm.touch(a) == "cow"                    # do_wp_page()
    assert fault_steps(seen) == list(range(1, 9))
    assert any("error code 0x7" in e.text for e in seen)   # user|write|protection
    assert mm.counters()["RSS"] == 4 and mm.task.min_flt == 2
    sysm.check()


def test_the_fault_path_has_eight_steps_a_walk_hit_three_a_tlb_hit_two(sysm, mm):
    a = mm.mmap(0, MiB)
    with Collect(sysm.events) as first:
        mm.touch(a)
    assert fault_steps(first) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [e.kind for e in first].count("alloc_pages") == 4   # 3 tables, then the page
    assert "error code 0x6" in next(e.text for e in first if e.data.get("step") == 5)
    with Collect(sysm.events) as hit:
        mm.touch(a)
    assert fault_steps(hit) == [1, 2]
    mm.tlb.clear()                                     # a TLB miss, but the PTE is there
    with Collect(sysm.events) as walk:
        assert mm.touch(a) == "hit"
    assert fault_steps(walk) == [1, 2, 3]


def test_fault_path_steps_one_at_a_time_and_counts_what_is_left(mm):
    a = mm.mmap(0, MiB)
    fp = mm.access(a + 3 * PAGE_SIZE, write=True)
    assert fp.steps_left == 8
    for n in range(1, 9):
        fp.step()
        assert fp.n == n and fp.steps_left == 8 - n
    assert fp.done and fp.outcome == "new page"
    assert mm.access(a + 3 * PAGE_SIZE).steps_left == 2          # TLB hit
    assert mm.access(a - PAGE_SIZE).steps_left == 5              # SIGSEGV at step 5


def test_page_table_indices_split_the_address_as_the_mmu_does():
    assert pt_index(MMAP_BASE - PAGE_SIZE + 0x123) == (255, 511, 447, 510, 0x123)
    assert pt_index(START_BRK) == (170, 341, 170, 345, 0)


# -- segmentation faults -------------------------------------------------------------------
@pytest.mark.parametrize("case", ["unmapped", "readonly", "protnone", "protnone_touched"])
def test_bad_accesses_kill_the_process_with_the_kernels_line(sysm, mm, case):
    """The error code is the x86 one: 4 user, 2 write, 1 protection (the PTE was present). A
    PROT_NONE entry, even over a page in memory, has _PAGE_PRESENT clear: no protection bit."""
    a = mm.mmap(0, 2 * PAGE_SIZE)
    if case == "readonly":
        mm.mprotect(a, 2 * PAGE_SIZE, PROT_READ)
    if case.startswith("protnone"):
        if case == "protnone_touched":
            mm.touch(a, True)
        mm.mprotect(a, 2 * PAGE_SIZE, PROT_NONE)
    addr, write, code = {"unmapped": (a - 0x10, True, 6), "readonly": (a, True, 6),
                         "protnone": (a, False, 4), "protnone_touched": (a, True, 6)}[case]
    with pytest.raises(SegmentationFault, match="Segmentation fault"):
        mm.touch(addr, write)
    assert sysm.dmesg[-1] == f"test[{mm.task.pid}]: segfault at {addr:x} error {code}"
    assert not mm.task.alive and mm.task.pid not in sysm.tasks
    with pytest.raises(ProcessKilled):
        mm.mmap(0, PAGE_SIZE)
    sysm.check()


# -- munmap, madvise, mprotect, mlock, mremap, brk ---------------------------------------------
def test_munmap_returns_the_pages_and_the_tables_and_splits_vmas(sysm, mm):
    free = sysm.zone.nr_free_pages
    a = mm.mmap(0, 8 * PAGE_SIZE)
    mm.touch_range(a, 8 * PAGE_SIZE)
    assert mm.counters()["RSS"] == 32
    mm.munmap(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE)         # a hole in the middle
    assert [(v.vm_start - a, v.vm_end - a) for v in mm.vmas] == [(0, 8192), (16384, 32768)]
    assert mm.counters() == {"VSZ": 24, "RSS": 24, "VmPTE": 12, "VmLck": 0, "committed": 24}
    mm.munmap(a, 8 * PAGE_SIZE)
    assert mm.vmas == [] and mm.pgtables_bytes == 0
    assert sysm.zone.nr_free_pages == free and sysm.vm.committed_as == 0
    assert mm.munmap(a, PAGE_SIZE) == 0                  # unmapping nothing is fine
    with pytest.raises(BadRequest, match="EINVAL"):
        mm.munmap(a + 1, PAGE_SIZE)
    sysm.check()


def test_madvise_dontneed_drops_rss_but_keeps_vsz_commit_and_tables(sysm, mm):
    a = mm.mmap(0, MiB)
    mm.touch_range(a, MiB)
    before = mm.counters()
    assert before["RSS"] == 1024
    assert mm.madvise(a, MiB, MADV_DONTNEED) == 0
    assert mm.counters() == {**before, "RSS": 0}
    assert mm.touch(a) == "new page"                    # a fresh zero-filled page
    with pytest.raises(BadRequest, match="not mapped"):
        mm.madvise(a - PAGE_SIZE, 2 * PAGE_SIZE, MADV_DONTNEED)
    sysm.check()


def test_mprotect_charges_writable_private_memory_once(sysm, mm):
    a = mm.mmap(0, 4 * PAGE_SIZE, PROT_READ)            # read-only: no promise needed
    assert sysm.vm.committed_as == 0
    mm.mprotect(a, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE)
    assert sysm.vm.committed_as == 2 and len(mm.vmas) == 2
    mm.touch(a)
    mm.mprotect(a, 2 * PAGE_SIZE, PROT_READ)            # written: the charge stays (6.x)
    assert sysm.vm.committed_as == 2
    with pytest.raises(SegmentationFault):
        mm.touch(a, write=True)
    sysm.check()


def test_mprotect_read_only_of_never_written_memory_gives_the_charge_back(sysm, mm):
    a = mm.mmap(0, 4 * PAGE_SIZE)
    assert sysm.vm.committed_as == 4
    mm.mprotect(a, 4 * PAGE_SIZE, PROT_READ)
    assert sysm.vm.committed_as == 0
    mm.mprotect(a, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE)
    assert sysm.vm.committed_as == 4 and len(mm.vmas) == 1
    with pytest.raises(BadRequest, match="ENOMEM"):
        mm.mprotect(a, 5 * PAGE_SIZE, PROT_READ)
    sysm.check()


def test_mlock_faults_everything_in_and_dontneed_refuses_it(sysm, mm):
    a = mm.mmap(0, 16 * PAGE_SIZE)
    mm.mlock(a + 4 * PAGE_SIZE, 4 * PAGE_SIZE)
    assert mm.counters()["RSS"] == 16 and mm.counters()["VmLck"] == 16
    assert len(mm.vmas) == 3 and sysm.meminfo()["Mlocked"] == 16
    with pytest.raises(BadRequest, match="mlocked"):
        mm.madvise(a, 16 * PAGE_SIZE, MADV_DONTNEED)
    mm.munlock(a, 16 * PAGE_SIZE)
    assert len(mm.vmas) == 1 and mm.counters()["RSS"] == 16 and mm.locked_vm == 0
    b = mm.mmap(0, 8 * PAGE_SIZE, flags=PRIVATE | MAP_LOCKED)
    assert mm.counters()["VmLck"] == 32 and mm.follow_pte(b + 7 * PAGE_SIZE)
    sysm.check()


def test_mlock_of_prot_none_is_enomem_with_the_range_locked(sysm, mm):
    """do_mlock(): VM_LOCKED goes on first, then __mm_populate() stops at the PROT_NONE VMA
    (GUP refuses it) and the call fails with ENOMEM; what lies after it is not faulted in
    (seen on a 6.18 kernel: mlock of PROT_NONE memory is -1 ENOMEM and VmLck grows)."""
    a = mm.mmap(0, 12 * PAGE_SIZE)
    mm.mprotect(a + 4 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_NONE)
    assert mm.mlock(a, 12 * PAGE_SIZE) == -12
    assert mm.counters()["VmLck"] == 48                     # all 12 pages VM_LOCKED …
    assert mm.counters()["RSS"] == 16                       # … the first 4 faulted in, no more
    assert not mm.follow_pte(a + 8 * PAGE_SIZE)
    b = mm.mmap(0, 4 * PAGE_SIZE)
    assert mm.mlock(b, 4 * PAGE_SIZE) == 0 and mm.counters()["RSS"] == 32
    sysm.check()


def test_madv_populate_read_of_unreadable_memory_is_einval(sysm, mm):
    """faultin_page_range() → check_vma_flags(): a read needs VM_READ; madvise says EINVAL
    (seen on a 6.18 kernel for PROT_NONE memory), and nothing is faulted in."""
    a = mm.mmap(0, 4 * PAGE_SIZE, prot=PROT_NONE)
    with pytest.raises(BadRequest, match="EINVAL"):
        mm.madvise(a, 4 * PAGE_SIZE, MADV_POPULATE_READ)
    b = mm.mmap(0, 4 * PAGE_SIZE, prot=PROT_WRITE)
    with pytest.raises(BadRequest, match="EINVAL"):
        mm.madvise(b, 4 * PAGE_SIZE, MADV_POPULATE_READ)
    assert mm.counters()["RSS"] == 0 and not mm.follow_pte(a)
    sysm.check()


def test_only_a_mapping_overlapping_the_heap_is_named_heap(sysm, mm):
    """vma_is_initial_heap() compares strictly (6.18): mappings that only touch [start_brk,
    brk) — one ending at start_brk, one starting at brk — are not [heap] (seen on a 6.18
    kernel with a MAP_FIXED mapping at each end)."""
    mm.sbrk(2 * PAGE_SIZE)
    anon = PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    mm.mmap(mm.brk, PAGE_SIZE, *anon)
    mm.mmap(START_BRK - 16 * PAGE_SIZE, 16 * PAGE_SIZE, *anon)
    named = [ln.split()[0] for ln in mm.maps().splitlines() if ln.endswith("[heap]")]
    assert named == [f"{START_BRK:x}-{START_BRK + 2 * PAGE_SIZE:x}"]


def test_map_populate_and_map_noreserve(sysm, mm):
    a = mm.mmap(0, 8 * PAGE_SIZE, flags=PRIVATE | MAP_POPULATE)
    assert mm.counters()["RSS"] == 32                   # write-populated: own pages
    mm.mmap(0, 8 * PAGE_SIZE, flags=PRIVATE | MAP_NORESERVE)
    assert sysm.vm.committed_as == 8                     # NORESERVE: no promise (mode 0)
    sysm.vm.overcommit_memory = 2
    mm.mmap(0, 8 * PAGE_SIZE, flags=PRIVATE | MAP_NORESERVE)
    assert sysm.vm.committed_as == 16                    # mode 2 ignores MAP_NORESERVE
    assert a
    sysm.check()


def test_map_fixed_replaces_and_noreplace_refuses(sysm, mm):
    a = mm.mmap(0, 4 * PAGE_SIZE)
    mm.touch_range(a, 4 * PAGE_SIZE)
    b = mm.mmap(a + PAGE_SIZE, PAGE_SIZE, flags=PRIVATE | MAP_FIXED)
    assert b == a + PAGE_SIZE and mm.counters()["RSS"] == 12     # the old page is gone
    assert sysm.vm.committed_as == 4                              # the promise moved over
    with pytest.raises(BadRequest, match="EEXIST"):
        mm.mmap(a, PAGE_SIZE, flags=PRIVATE | MAP_FIXED_NOREPLACE)
    sysm.check()


def test_mremap_moves_the_page_table_entries_not_the_pages(sysm, mm):
    above = mm.mmap(0, PAGE_SIZE, PROT_READ)             # other flags: it will not merge
    a = mm.mmap(0, 4 * PAGE_SIZE)
    assert a + 4 * PAGE_SIZE == above and len(mm.vmas) == 2
    mm.touch_range(a, 4 * PAGE_SIZE)
    pfns = [mm.follow_pte(a + i * PAGE_SIZE) >> 12 for i in range(4)]
    moved = mm.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE)   # no room above: it must move
    assert moved == a - 8 * PAGE_SIZE                     # the next gap, top-down
    assert [mm.follow_pte(moved + i * PAGE_SIZE) >> 12 for i in range(4)] == pfns
    assert mm.follow_pte(a) == 0 and mm.counters()["RSS"] == 16
    assert sysm.vm.committed_as == 8                      # 4 + the growth: charged once
    assert mm.mremap(moved, 8 * PAGE_SIZE, 2 * PAGE_SIZE) == moved
    assert mm.counters()["RSS"] == 8
    sysm.check()


def test_mremap_grows_in_place_when_the_space_above_is_free(sysm, mm):
    a = mm.mmap(0, 8 * PAGE_SIZE)
    mm.munmap(a + 4 * PAGE_SIZE, 4 * PAGE_SIZE)
    assert mm.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE) == a
    assert len(mm.vmas) == 1 and sysm.vm.committed_as == 8
    with pytest.raises(BadRequest, match="EFAULT"):
        mm.mremap(a, 16 * PAGE_SIZE, 32 * PAGE_SIZE)
    sysm.check()


def test_brk_grows_and_shrinks_the_heap(sysm, mm):
    assert mm.brk == START_BRK and mm.sbrk(0) == START_BRK
    assert mm.sbrk(10000) == START_BRK
    assert mm.brk == START_BRK + 10000
    assert mm.maps().splitlines() == [
        "555555559000-55555555c000 rw-p 00000000 00:00 0                          [heap]"]
    mm.touch_range(START_BRK, 10000)
    assert mm.counters()["RSS"] == 12 and sysm.vm.committed_as == 3
    assert mm.brk_syscall(START_BRK - PAGE_SIZE) == START_BRK + 10000   # refused: old break
    assert mm.brk_syscall(START_BRK + 100) == START_BRK + 100
    assert mm.counters()["RSS"] == 4 and sysm.vm.committed_as == 1
    sysm.check()


# -- overcommit: the seed's two stories --------------------------------------------------------
@pytest.fixture(scope="module")
def two_gib():
    return System(1 << 19, watermarks=False)


def test_malloc_4g_on_a_2g_machine(two_gib):
    sysm = two_gib
    mm = sysm.spawn("big").mm
    assert mm.mmap(0, 4 << 30) is None                   # mode 0: one request > RAM + swap
    assert sysm.vm.dmesg[-1] == (f"__vm_enough_memory: pid: {mm.task.pid}, comm: big, bytes: "
                                 f"{4 << 30} not enough memory for the allocation")
    got = [mm.mmap(0, 1 << 30) for _ in range(4)]        # but four 1 GiB requests are fine
    assert None not in got and mm.counters()["committed"] == 4 << 20
    assert sysm.meminfo()["Committed_AS"] > sysm.meminfo()["MemTotal"]
    assert mm.counters()["RSS"] == 0
    sysm.vm.overcommit_memory = 1
    assert mm.mmap(0, 4 << 30) is not None               # mode 1: always
    sysm.vm.overcommit_memory = 2
    assert mm.mmap(0, 1 << 30) is None                   # mode 2: far beyond CommitLimit
    mm.task.kill("test done")
    sysm.vm.overcommit_memory = 0
    assert sysm.vm.committed_as == 0


def test_mode_2_stops_at_commit_limit_less_the_reserves():
    sysm = System(4096, overcommit_memory=2, watermarks=False)
    mm = sysm.spawn("strict").mm
    got = 0
    while mm.mmap(0, PAGE_SIZE) is not None:
        got += 1
    vm = sysm.vm

    def allowed(total_vm: int) -> int:
        return vm.commit_limit - (vm.admin_reserve_kbytes >> 2) - min(
            total_vm // 32, vm.user_reserve_kbytes >> 2)

    # Each request is charged first and must leave Committed_AS strictly below "allowed".
    assert vm.committed_as == got
    assert got < allowed(got - 1) and got + 1 >= allowed(got)
    assert got < vm.commit_limit < sysm.totalram_pages
    assert sysm.spawn("root", uid=0).mm.mmap(0, PAGE_SIZE) is not None   # the admin reserve


def test_malloc_forever_ends_in_the_oom_killer():
    sysm = System(8192)
    db = sysm.spawn("postgres")
    x = db.mm.mmap(0, 4 * MiB)
    db.mm.touch_range(x, 4 * MiB)
    hog = sysm.spawn("hog")
    with pytest.raises(ProcessKilled, match="Out of memory: Killed process"):
        while True:
            p = hog.mm.mmap(0, MiB)
            hog.mm.touch_range(p, MiB)
    assert not hog.alive and db.alive and sysm.oom_kills == 1
    kill = [line for line in sysm.dmesg if "Killed process" in line][0]
    assert re.fullmatch(rf"Out of memory: Killed process {hog.pid} \(hog\) total-vm:\d+kB, "
                        r"anon-rss:\d+kB, file-rss:0kB, shmem-rss:0kB, UID:1000 "
                        r"pgtables:\d+kB oom_score_adj:0", kill)
    # The pages came back: only init, postgres and the allocator's reserve remain.
    sysm.check()
    assert sysm.zone.nr_free_pages > 8192 - 1024 - 64


# -- invariants under random work --------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_random_syscalls_keep_every_counter_consistent(seed):
    rng = random.Random(seed)
    sysm = System(2048, watermarks=False)
    tasks = [sysm.spawn(f"p{i}") for i in range(2)]
    for _ in range(150):
        mm = rng.choice(tasks).mm
        if not mm.task.alive:
            continue
        op = rng.choice(["mmap", "mmap", "touch", "touch", "read", "munmap", "dontneed",
                         "mprotect", "mremap", "brk", "mlock"])
        base = mm.vmas[rng.randrange(len(mm.vmas))].vm_start if mm.vmas else MMAP_BASE
        n = rng.randint(1, 6) * PAGE_SIZE
        try:
            if op == "mmap":
                mm.mmap(0, n)
            elif op in ("touch", "read"):
                v = rng.choice(mm.vmas) if mm.vmas else None
                if v is not None and v.vm_flags & 3 == 3:
                    mm.touch(rng.randrange(v.vm_start, v.vm_end), write=op == "touch")
            elif op == "munmap":
                mm.munmap(base, n)
            elif op == "dontneed":
                mm.madvise(base, n, MADV_DONTNEED)
            elif op == "mprotect":
                mm.mprotect(base, n, rng.choice([PROT_READ, PROT_READ | PROT_WRITE]))
            elif op == "mremap":
                v = mm.find_vma(base)
                if v is not None:
                    mm.mremap(base, min(n, v.vm_end - base), rng.randint(1, 8) * PAGE_SIZE)
            elif op == "brk":
                mm.brk_syscall(mm.brk + rng.randint(-3, 5) * 1000)
            elif op == "mlock":
                mm.mlock(base, n)
        except (BadRequest, KmmError):
            pass
        sysm.check()
    for t in tasks:
        t.kill("end of test")
    sysm.check()
    assert sysm.vm.committed_as == 0
    assert sysm.zone.nr_free_pages == sysm.zone.managed_pages - 1     # init's PGD


# -- /proc formats ------------------------------------------------------------------------------
def test_status_lines_have_the_kernels_layout(mm):
    a = mm.mmap(0, MiB)
    mm.touch_range(a, 64 * PAGE_SIZE)
    text = mm.status()
    assert "VmRSS:\t     256 kB" in text.splitlines()
    assert "VmSize:\t    1024 kB" in text.splitlines() and "VmPTE:\t      12 kB" in text
    for line in text.splitlines():
        assert re.fullmatch(r"[A-Za-z]+:\t[ \d]{8} kB", line), line


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_maps_and_status_match_the_live_kernels_format(mm):
    """Our /proc/PID/maps puts a name in the same column as the real file does, and each
    status line we print has the shape of the real line of the same name."""
    mm.sbrk(PAGE_SIZE)
    ours = mm.maps().splitlines()[0]
    real = [ln for ln in Path("/proc/self/maps").read_text().splitlines()
            if len(ln.split()) == 6 and len(ln.split()[0]) == 25]   # named, 12-digit addresses
    assert real, "no named mapping in /proc/self/maps"
    assert {ln.index(ln.split()[5]) for ln in real} == {ours.index("[heap]")} == {73}
    live = {ln.split(":")[0]: ln for ln in Path("/proc/self/status").read_text().splitlines()}
    for line in mm.status().splitlines():
        key = line.split(":")[0]
        shape = rf"{key}:\t[ \d]{{8}} kB"
        assert re.fullmatch(shape, line) and re.fullmatch(shape, live[key]), (line, live[key])


# -- the stepper model ------------------------------------------------------------------------
def test_fault_stepper_plan_and_back():
    st = fault_stepper()
    assert len(st.ops) == 8 + 2 + 8 + 8          # write, TLB hit, read (zero page), COW write
    st.run()
    assert [s.result for s in st.history if s.result] == ["new page", "tlb hit", "zero page",
                                                          "cow"]
    end = st.state_text()
    assert "RSS 8 kB" in end and "minor faults 3" in end
    st.goto(8)
    assert "RSS 4 kB" in st.state_text()
    st.run()
    assert st.state_text() == end


def test_fault_demo_refuses_bad_ops_and_records_a_segfault():
    demo = FaultDemo([(0, "write")])
    with pytest.raises(BadRequest):
        demo.apply(("jump",))
    with pytest.raises(BadRequest):
        demo.addr(9)
    st = fault_stepper([(0, "write")])
    st.do(("access", 0, "read"))
    assert st.history[-1].error is None
    demo.mm.mprotect(demo.base, PAGE_SIZE, PROT_READ)
    demo.apply(("access", 0, "write"))
    with pytest.raises(SegmentationFault):
        for _ in range(5):
            demo.apply(("step",))


def test_bad_arguments_are_refused_with_the_errno(mm):
    for call in (lambda: mm.mmap(0, 0), lambda: mm.mmap(0, 4096, flags=MAP_ANONYMOUS),
                 lambda: mm.mmap(0, 4096, prot=0x10), lambda: mm.madvise(0, 4096, 99),
                 lambda: mm.mmap(4096, 4096, flags=PRIVATE | MAP_FIXED)):
        with pytest.raises(BadRequest):
            call()
    with pytest.raises(BadRequest):
        System(4)


def test_the_core_does_not_import_jupyter():
    import subprocess

    code = ("import sys, kmmlib.userspace.process, kmmlib.userspace.malloc, "
            "kmmlib.userspace.oom, kmmlib.userspace.overcommit, kmmlib.userspace.live; "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'IPython') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_fault_widget_steps_and_starts_accesses():
    pytest.importorskip("ipywidgets")
    from kmmlib.widgets.fault import FaultStepperWidget, walk_svg

    w = FaultStepperWidget([(2, "write")])
    assert len(w.stepper.ops) == 8 and "no access yet" in walk_svg(w.stepper)
    for _ in range(8):
        w.step_button.click()
    assert w.step_button.disabled and "done: new page" in w.text
    assert "pfn 16" in w.drawing.value and "PTE[509]" in w.drawing.value
    w.page.value, w.kind.value = 3, "read"
    w.access_button.click()
    assert len(w.stepper.ops) == 16 and w.stepper.pos == 9 and not w.step_button.disabled
    while not w.stepper.at_end:
        w.step_button.click()
    assert "done: zero page" in w.text and "(zero)" in w.drawing.value
    w.back_button.click()
    assert w.stepper.pos == 15 and "step 7 of 8 done" in w.text


def test_madv_populate_read_maps_the_zero_page_and_write_allocates(sysm, mm):
    """MADV_POPULATE_READ read-faults (faultin_page_range(write=false)): untouched private
    anonymous memory gets the shared zero page, no RSS; MADV_POPULATE_WRITE allocates. (Not
    MAP_POPULATE's rule, which write-faults a private writable mapping.)"""
    a = mm.mmap(0, 4 * PAGE_SIZE)
    free = sysm.zone.nr_free_pages
    mm.madvise(a, 4 * PAGE_SIZE, MADV_POPULATE_READ)
    assert all(mm.follow_pte(a + i * PAGE_SIZE) for i in range(4))     # mapped …
    assert mm.counters()["RSS"] == 0                                     # … to the zero page
    tables = free - sysm.zone.nr_free_pages                              # only page tables
    assert tables * 4096 == mm.pgtables_bytes
    mm.madvise(a, 4 * PAGE_SIZE, MADV_POPULATE_WRITE)
    assert mm.counters()["RSS"] == 16 and free - sysm.zone.nr_free_pages == tables + 4
    b = mm.mmap(0, 4 * PAGE_SIZE, flags=PRIVATE | MAP_POPULATE)
    assert mm.counters()["RSS"] == 32 and b


@pytest.mark.parametrize("pressed", [0, 3, 9, 15])
def test_an_access_mid_plan_ends_the_plan_and_runs_to_its_end(pressed):
    """The fault stepper's script is a plan of steps for its accesses: a new access replaces
    what is left of it, and its own steps then run to "done" with none refused."""
    pytest.importorskip("ipywidgets")
    from kmmlib.widgets.fault import FaultStepperWidget

    w = FaultStepperWidget()
    for _ in range(pressed):
        w.step_button.click()
    w.page.value, w.kind.value = 3, "write"
    w.access_button.click()
    while not w.stepper.at_end:
        w.step_button.click()
    assert not [s for s in w.stepper.history[pressed:] if s.error]
    assert "done:" in w.text
    w.reset_button.click()
    assert w.stepper.ops == w.stepper._script

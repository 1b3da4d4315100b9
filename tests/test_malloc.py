"""The toy malloc: glibc's chunk sizes and heap growth, malloc/free/calloc/realloc semantics,
and how an overflow corrupts the allocator — detected (glibc's abort messages) or silently."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.userspace.malloc import (
    IS_MMAPPED,
    M_MMAP_THRESHOLD,
    MINSIZE,
    PREV_INUSE,
    MallocAbort,
    ToyMalloc,
    request2size,
)
from kmmlib.userspace.process import (
    MMAP_BASE,
    PAGE_SIZE,
    START_BRK,
    ProcessKilled,
    SegmentationFault,
    System,
)


@pytest.fixture
def heap():
    return ToyMalloc()


def test_request2size_is_glibcs():
    # malloc(0..24) take the 32-byte minimum chunk, 25..40 a 48-byte one: 8 bytes of header,
    # 16-byte alignment, and the next chunk's prev_size field is usable while in use.
    assert [request2size(n) for n in (0, 1, 24, 25, 40, 41, 100, 1000)] == \
        [32, 32, 32, 48, 48, 64, 112, 1008]


def test_the_first_malloc_makes_a_132_kib_heap_with_one_resident_page(heap):
    p = heap.malloc(24)
    assert p == START_BRK + 16 and heap.usable_size(p) == 24
    assert heap.mm.maps().splitlines() == [
        "555555559000-55555557a000 rw-p 00000000 00:00 0                          [heap]"]
    assert heap.system_mem == 0x21000                  # 32 + M_TOP_PAD + MINSIZE, page-aligned
    assert heap.mm.counters()["RSS"] == 4              # only the headers' page was written
    assert heap.chunks()[-1] == (START_BRK + 32, 0x21000 - 32, "top")


def test_free_then_malloc_reuses_and_neighbours_merge(heap):
    p, q, r, g = (heap.malloc(24) for _ in range(4))
    assert [q - p, r - q, g - r] == [32, 32, 32]
    heap.free(q)
    assert heap.free_list() == [q - 16] and heap.malloc(10) == q    # first fit
    heap.free(q)
    heap.free(r)                                         # merges backwards with q
    assert heap.free_list() == [q - 16] and heap.chunksize(q - 16) == 64
    heap.free(g)                                         # g, q+r merge into the top
    assert heap.chunks()[-1][2] == "top" and heap.chunks()[-1][0] == q - 16
    assert heap.free_list() == []
    heap.free(None)                                      # free(NULL) does nothing


def test_a_split_leaves_the_rest_on_the_bin(heap):
    a = heap.malloc(200)
    heap.malloc(8)                                       # keeps a away from the top
    heap.free(a)
    b = heap.malloc(40)
    assert b == a and heap.free_list() == [a - 16 + 48]
    assert heap.chunksize(a - 16 + 48) == request2size(200) - 48


def test_big_requests_get_their_own_mmap_and_go_back_at_free(heap):
    p = heap.malloc(1 << 20)
    assert p == MMAP_BASE - ((1 << 20) + PAGE_SIZE) + 16    # 1 MiB + header → 1028 KiB
    assert heap.mm.counters()["VSZ"] == 1028 and heap.mm.counters()["RSS"] == 4
    assert heap.usable_size(p) == (1 << 20) + PAGE_SIZE - 16
    heap.free(p)
    assert heap.mm.counters() == {"VSZ": 0, "RSS": 0, "VmPTE": 0, "VmLck": 0, "committed": 0}
    assert heap.malloc(M_MMAP_THRESHOLD - 100) is not None and heap.n_mmaps == 0


def test_a_big_request_that_fits_in_the_top_comes_from_the_heap(heap):
    """glibc 2.36: after malloc(24), malloc(131072) is heap+0x2c0 (after its tcache), size
    field 0x20011, and the break stays: _int_malloc splits the top before sysmalloc() would
    look at the mmap threshold. malloc(200000) does not fit, and is mmapped."""
    heap.malloc(24)
    p = heap.malloc(131072)                               # nb = 0x20010 >= the threshold
    assert p == heap.heap_start + 0x30 == 0x555555559030
    assert heap._size_field(p - 16) == 0x20010 | PREV_INUSE == 0x20011
    assert heap.n_mmaps == 0 and heap.system_mem == 0x21000   # no mmap, no sbrk
    assert heap.chunks()[-1] == (p - 16 + 0x20010, 0xfd0, "top")
    q = heap.malloc(200000)
    assert heap._size_field(q - 16) == 0x31000 | IS_MMAPPED and heap.n_mmaps == 1


def test_freeing_an_mmapped_chunk_raises_the_mmap_threshold(heap):
    """glibc 2.36: free() of a mmapped 300000-byte block, then malloc(300000) comes from the
    heap (size field 0x493f1, brk + 0x6a000), and its free() does not trim."""
    e = heap.malloc(300000)
    assert heap._size_field(e - 16) == 0x4a002
    heap.free(e)
    assert heap.mmap_threshold == 0x4a000 and heap.trim_threshold == 0x94000
    f = heap.malloc(300000)
    assert f == heap.heap_start + 16 and heap._size_field(f - 16) == 0x493f1
    assert heap.n_mmaps == 0 and heap.mm.brk == START_BRK + 0x6a000
    heap.free(f)                                          # top 0x6a000 < 0x94000: kept
    assert heap.mm.brk == START_BRK + 0x6a000 and heap.system_mem == 0x6a000


def test_the_threshold_stops_adapting_at_32_mib(heap):
    heap.free(heap.malloc(40 << 20))                     # 40 MiB > DEFAULT_MMAP_THRESHOLD_MAX
    assert heap.mmap_threshold == M_MMAP_THRESHOLD
    # That mapping covered the address the model gives libc's bin head; munmap must not have
    # wiped the bin (it used to: the next malloc followed fd = 0 and segfaulted).
    assert heap.free_list() == [] and heap.malloc(24) == START_BRK + 16
    heap.free(heap.malloc(1 << 20))
    assert heap.mmap_threshold == (1 << 20) + PAGE_SIZE
    heap.free(heap.malloc(200000))                       # smaller than the threshold now: heap
    assert heap.mmap_threshold == (1 << 20) + PAGE_SIZE and heap.n_mmaps == 0


@pytest.mark.parametrize("tunable", ["mmap_threshold", "trim_threshold", "top_pad"])
def test_a_threshold_set_by_the_program_does_not_adapt(tunable):
    """mallopt() sets no_dyn_threshold; so does passing a tunable to ToyMalloc."""
    heap = ToyMalloc(**{tunable: 128 * 1024})
    heap.free(heap.malloc(300000))
    assert heap.mmap_threshold == M_MMAP_THRESHOLD and heap.trim_threshold == 128 * 1024
    f = heap.malloc(300000)
    assert heap._size_field(f - 16) & IS_MMAPPED and heap.n_mmaps == 1


def test_realloc_shrinks_an_mmapped_chunk_with_mremap(heap):
    """glibc 2.36: realloc of 1 MiB to 200 KiB gives size 0x33002, 208880 usable, and the
    mapping shrinks; to 100 bytes, 0x1002 and 4080 usable — still mmapped, not copied."""
    big = heap.malloc(1 << 20)
    heap.write(big, b"kept")
    r = heap.realloc(big, 200 * 1024)
    assert r == big and heap._size_field(r - 16) == 0x33002
    assert heap.usable_size(r) == 208880
    vma = heap.mm.find_vma(r)
    assert (vma.vm_start, vma.vm_end) == (r - 16, r - 16 + 0x33000)
    assert heap.mm.counters()["VSZ"] == 0x33000 // 1024
    r2 = heap.realloc(r, 100)
    assert r2 == r and heap._size_field(r2 - 16) == 0x1002 and heap.usable_size(r2) == 4080
    assert heap.mm.counters()["VSZ"] == 4 and heap.n_mmaps == 1
    assert heap.read(r2, 4) == b"kept" and heap.heap_start is None   # no heap chunk used
    assert heap.realloc(r2, 4000) == r2 and heap._size_field(r2 - 16) == 0x1002


def test_calloc_zeroes_and_checks_the_multiplication(heap):
    p = heap.malloc(64)
    heap.write(p, b"\xff" * 64)
    heap.free(p)
    q = heap.calloc(8, 8)
    assert q == p and heap.read(q, 64) == bytes(64)
    assert heap.calloc(1 << 40, 1 << 40) is None         # overflow: NULL, not a tiny block
    big = heap.calloc(1000, 1000)                         # mmapped: already zero, not touched
    assert heap.read(big + 500_000, 4) == bytes(4)
    with pytest.raises(BadRequest):
        heap.calloc(-1, 4)


def test_realloc_in_place_by_copy_and_by_mremap(heap):
    p = heap.malloc(100)
    heap.write(p, b"hello")
    assert heap.realloc(p, 50) == p                       # shrink in place
    assert heap.realloc(p, 1000) == p                     # grows into the top
    q = heap.malloc(8)                                    # now p cannot grow in place
    r = heap.realloc(p, 5000)
    assert r != p and heap.read(r, 5) == b"hello" and q
    assert heap.realloc(None, 10) is not None             # realloc(NULL, n) = malloc(n)
    assert heap.realloc(r, 0) is None                     # realloc(p, 0) frees (glibc)
    big = heap.malloc(1 << 20)
    pte = heap.mm.follow_pte(big - 16)
    moved = heap.realloc(big, 8 << 20)
    assert heap.mm.follow_pte(moved - 16) == pte          # mremap: the same page, no copy


def test_malloc_returns_null_when_the_kernel_refuses(heap):
    assert heap.malloc(4 << 30) is None                   # > RAM + swap of a 256 MiB machine
    sysm = System(4096, overcommit_memory=1)
    h = ToyMalloc(sysm.spawn("a.out").mm)
    assert h.malloc(4 << 30) is not None                  # mode 1 promises anything
    with pytest.raises(BadRequest):
        heap.malloc(-1)


def test_free_of_the_top_gives_memory_back_to_the_kernel():
    heap = ToyMalloc(mmap_threshold=1 << 30)             # keep even big blocks on the heap
    keep = heap.malloc(100)
    a = heap.malloc(500_000)
    vsz, mem = heap.mm.counters()["VSZ"], heap.system_mem
    assert mem >= 500_000 + 128 * 1024
    heap.free(a)                                          # a merges into the top: trim it
    assert heap.system_mem == 0x21000 < mem               # back to what the top pad keeps
    assert heap.mm.counters()["VSZ"] == vsz - (mem - 0x21000) // 1024
    b = heap.malloc(100)                                  # a hole below the top is not trimmed
    c = heap.malloc(200_000)
    heap.malloc(100)
    before = heap.system_mem
    heap.free(c)
    assert heap.system_mem == before and heap.free_list() == [c - 16] and keep and b


# -- corruption ----------------------------------------------------------------------------------
@pytest.mark.parametrize("what, message", [
    ("double", "double free or corruption (!prev)"),
    ("double-top", "double free or corruption (top)"),
    ("misaligned", "free(): invalid pointer"),
    ("overflow", "free(): invalid next size (normal)"),
    ("smashed-size", "double free or corruption (out)"),
])
def test_glibcs_checks_abort_the_process(heap, what, message):
    p, q = heap.malloc(24), heap.malloc(24)
    heap.malloc(24)
    if what == "double":
        heap.free(p)
        bad = p
    elif what == "double-top":
        bad = heap.malloc(24)
        heap.free(bad)
    elif what == "misaligned":
        bad = p + 8
    elif what == "overflow":                 # 40 bytes into a 24-byte buffer: q's size field
        heap.write(p, b"A" * 40)
        bad = p
    else:
        heap.write(p, b"A" * 40)
        bad = q
    with pytest.raises(MallocAbort, match=message.replace("(", r"\(").replace(")", r"\)")):
        heap.free(bad)
    assert not heap.mm.task.alive
    with pytest.raises(ProcessKilled):
        heap.malloc(1)


@pytest.mark.parametrize("what, message", [
    ("next", "realloc(): invalid next size"),
    ("old", "realloc(): invalid old size"),
    ("misaligned", "realloc(): invalid pointer"),
])
def test_realloc_checks_the_sizes_before_it_follows_them(heap, what, message):
    """glibc 2.36: 40 bytes of 'A' into a (24 usable) reach b's size field; realloc(a, 100)
    aborts with "realloc(): invalid next size" — it does not walk to a + 0x4141414141414140."""
    a, b = heap.malloc(24), heap.malloc(24)
    heap.malloc(24)
    if what == "next":
        heap.write(a, b"A" * 40)
        bad = a
    elif what == "old":                    # b's own size smashed to the whole heap's size
        heap.write(a, b"A" * 24 + (0x21000 | PREV_INUSE).to_bytes(8, "little"))
        bad = b
    else:
        bad = a + 8
    with pytest.raises(MallocAbort, match=message.replace("(", r"\(").replace(")", r"\)")):
        heap.realloc(bad, 100)
    assert not heap.mm.task.alive
    assert not any("segfault" in line for line in heap.mm.system.dmesg)
    assert heap.mm.system.dmesg[-1].endswith(f"{message} (SIGABRT)")


def test_a_plausible_overflow_goes_unnoticed_and_hands_out_live_memory(heap):
    """Overwrite q's size with 0x41 (64 | PREV_INUSE): free(q) believes it, the next malloc
    of 48 bytes returns q again — and that block covers r, which is still in use."""
    p, q, r, g = (heap.malloc(24) for _ in range(4))
    heap.write(r, b"secret!!")
    heap.write(p, b"A" * 24 + (0x41).to_bytes(8, "little"))
    heap.free(q)                                          # no complaint
    n = heap.malloc(48)
    assert n == q and n < r < n + heap.usable_size(n)
    heap.write(n, b"B" * 56)
    assert heap.read(r, 8) == b"BBBBBBBB"                # r's data is gone; nothing noticed
    assert heap.mm.task.alive and g


@pytest.mark.parametrize("fd, error", [("heap", MallocAbort), ("wild", SegmentationFault)])
def test_a_list_pointer_overwritten_is_caught_by_unlink_or_crashes(heap, fd, error):
    """Overflow p into the free chunk q after it: its fd pointer is ours. unlink checks
    fd->bk == q: reading a wild fd is a segfault; a heap address fails the check."""
    p, q = heap.malloc(24), heap.malloc(24)
    heap.malloc(24)
    heap.free(q)
    target = p - 16 if fd == "heap" else 0x4141414140
    heap.write(p, b"A" * 24 + (0x21).to_bytes(8, "little") + target.to_bytes(8, "little"))
    with pytest.raises(error, match="corrupted double-linked list" if fd == "heap" else
                       "Segmentation fault"):
        heap.malloc(24)


def test_writing_past_the_heap_is_a_segmentation_fault(heap):
    p = heap.malloc(24)
    with pytest.raises(SegmentationFault):
        heap.write(p + 0x21000, b"x")


def test_render_shows_chunks_flags_and_the_bin(heap):
    assert "not created yet" in heap.render()
    p = heap.malloc(24)
    heap.malloc(24)
    heap.free(p)
    text = heap.render().splitlines()
    assert text[0].startswith("heap 0x555555559000-0x55555557a000 (132 KiB")
    assert "[P] free" in text[1] and "fd 0x7ffff7dd1b68" in text[1]
    assert "[-] in use" in text[2]                        # its PREV_INUSE bit is clear
    assert text[-1] == f"bin: {p - 16:#x}" and MINSIZE == 32

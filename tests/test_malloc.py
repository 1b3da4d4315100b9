"""The toy malloc: glibc's chunk sizes and heap growth, malloc/free/calloc/realloc semantics,
and how an overflow corrupts the allocator — detected (glibc's abort messages) or silently."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.userspace.malloc import (
    M_MMAP_THRESHOLD,
    MINSIZE,
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

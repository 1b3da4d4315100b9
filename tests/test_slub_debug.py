"""SLUB debugging: red zones and poison laid out as the kernel lays them, and the reports for a
write past the object, a use after free, a double free, a bad pointer and a corrupt free
pointer — raised as named exceptions, with the state left as the kernel leaves it."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest, KmmError
from kmmlib.slab import debug as D
from kmmlib.slab import flags as F
from kmmlib.slab.slub import Slub, make_zone


@pytest.fixture()
def slub() -> Slub:
    return Slub(make_zone(512), nr_cpus=2, slab_debug="FZPU",
                slab_debug_caches=["demo", "kmalloc-64", "poison_only"])


def test_slab_debug_letters():
    assert F.parse_slab_debug("") == F.DEBUG_DEFAULT_FLAGS
    assert F.parse_slab_debug("fz") == F.SLAB_CONSISTENCY_CHECKS | F.SLAB_RED_ZONE
    assert F.parse_slab_debug("FZ-P") == F.SLAB_POISON
    assert F.debug_letters(F.DEBUG_DEFAULT_FLAGS) == "FZPU"
    with pytest.raises(BadRequest, match="option 'Q' unknown"):
        F.parse_slab_debug("FQ")


def test_only_the_named_caches_are_debugged(slub):
    assert slub.cache("kmalloc-64").debug and not slub.cache("kmalloc-128").debug
    s = slub.kmem_cache_create("demo", 40)
    assert s.debug and s.flags & F.SLAB_RED_ZONE
    # Debug caches never merge, and have no per-cpu fast path.
    a = slub.kmem_cache_alloc(s)
    assert s.stat["ALLOC_FASTPATH"] == 0 and s.cpu_slab[0].slab is None
    slub.kmem_cache_free(s, a)


def test_object_layout_in_memory(slub):
    s = slub.kmem_cache_create("demo", 40)
    assert (s.red_left_pad, s.inuse, s.offset, s.size) == (8, 48, 48, 136)
    a = slub.kmem_cache_alloc(s)
    left, obj, right = slub.read(a - 8, 8), slub.read(a, 40), slub.read(a + 40, 8)
    assert left == right == bytes([D.SLUB_RED_ACTIVE]) * 8
    assert obj == bytes([D.POISON_FREE]) * 39 + bytes([D.POISON_END])   # uninitialised
    slub.kmem_cache_free(s, a)
    assert slub.read(a - 8, 8) == bytes([D.SLUB_RED_INACTIVE]) * 8
    assert slub.read(a, 40) == bytes([D.POISON_FREE]) * 39 + bytes([D.POISON_END])
    # The end of the slot after the metadata is padding, 0x5a.
    assert slub.read(a + D.info_end(s), 8) == bytes([D.POISON_INUSE]) * 8


def test_write_past_a_kmalloc_object(slub):
    p = slub.kmalloc(50, caller="my_probe+0x2c/0x90")
    slub.write(p + 50, b"!")                      # one byte past the 50 asked for
    live = dict(slub._live)
    with pytest.raises(D.RedzoneOverwritten) as err:
        slub.kfree(p, caller="my_remove+0x10/0x40")
    report = err.value.report
    lines = report.splitlines()
    assert lines[0] == "=" * 77
    assert lines[1] == "BUG kmalloc-64 (Not tainted): kmalloc Redzone overwritten"
    assert f"0x{p + 50:016x}-0x{p + 50:016x} @offset=" in report
    assert "First byte 0x21 instead of 0xcc" in report
    assert "Allocated in my_probe+0x2c/0x90 age=" in report
    assert "FIX kmalloc-64: Restoring kmalloc Redzone" in report
    assert lines[-1] == f"FIX kmalloc-64: Object at 0x{p:016x} not freed"
    # State: the byte restored, the object still allocated, the allocator consistent.
    assert slub.read(p + 50, 1) == bytes([D.SLUB_RED_ACTIVE]) and slub._live == live
    assert slub.dmesg[-1] == report and slub.tainted
    slub.check()
    slub.kfree(p)                                 # now it frees cleanly
    with pytest.raises(D.ObjectAlreadyFree):
        slub.kfree(p)


def test_write_into_the_right_red_zone(slub):
    s = slub.kmem_cache_create("demo", 40)
    a = slub.kmem_cache_alloc(s)
    slub.write(a + 40, b"\x00\x00")
    with pytest.raises(D.RedzoneOverwritten, match="Right Redzone overwritten"):
        slub.kmem_cache_free(s, a)
    slub.write(a - 1, b"\x00")
    with pytest.raises(D.RedzoneOverwritten, match="Left Redzone overwritten"):
        slub.kmem_cache_free(s, a)
    slub.kmem_cache_free(s, a)


def test_use_after_free_is_found_on_the_next_allocation(slub):
    s = slub.kmem_cache_create("demo", 40)
    keep = slub.kmem_cache_alloc(s)
    a = slub.kmem_cache_alloc(s, caller="alloc_thing")
    slub.kmem_cache_free(s, a, caller="free_thing")
    slub.write(a + 3, b"\x00\x01")               # the bug: a write after kfree
    slab = slub._slab_by_pfn[slub.virt_to_pfn(a)]
    with pytest.raises(D.PoisonOverwritten) as err:
        slub.kmem_cache_alloc(s)
    report = err.value.report
    assert "BUG demo (Not tainted): Poison overwritten" in report
    assert "First byte 0x0 instead of 0x6b" in report
    assert "Freed in free_thing" in report and "Allocated in alloc_thing" in report
    assert "FIX demo: Marking all objects used" in report
    # As the kernel does: the slab is given up (all objects marked used, off the lists) …
    assert slab.inuse == slab.objects and slab.freelist == 0 and slab.where == "none"
    assert slub.read(a + 3, 2) == bytes([D.POISON_FREE]) * 2     # … the poison restored …
    b = slub.kmem_cache_alloc(s)                                 # … and the next works.
    assert slub.virt_to_pfn(b) != slub.virt_to_pfn(a)
    slub.kmem_cache_free(s, b)
    slub.kmem_cache_free(s, keep)
    slub.check()


def test_double_free_object_already_free(slub):
    s = slub.kmem_cache_create("demo", 40)
    a = slub.kmem_cache_alloc(s, caller="a_alloc")
    b = slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, a, caller="a_free")
    before = (slub.object_state(s), slub.slabinfo())
    with pytest.raises(D.ObjectAlreadyFree) as err:
        slub.kmem_cache_free(s, a, caller="a_free_again")
    report = err.value.report
    assert "BUG demo (Not tainted): Object already free" in report
    assert "Freed in a_free" in report
    assert f"Object 0x{a:016x} @offset=" in report and "Redzone  " in report
    assert report.splitlines()[-1] == f"FIX demo: Object at 0x{a:016x} not freed"
    assert (slub.object_state(s), slub.slabinfo()) == before
    assert isinstance(err.value, KmmError) and err.value.cache == "demo" and err.value.obj == a
    slub.kmem_cache_free(s, b)
    # With every object free the kernel's first check fires instead.
    with pytest.raises(D.ObjectAlreadyFree, match="Slab has 0 allocated objects"):
        slub.kmem_cache_free(s, b)


def test_invalid_pointer_in_a_debug_cache(slub):
    s = slub.kmem_cache_create("demo", 40)
    a = slub.kmem_cache_alloc(s)
    with pytest.raises(D.InvalidObjectPointer, match="Invalid object pointer"):
        slub.kmem_cache_free(s, a + 16)
    slub.kmem_cache_free(s, a)


def test_corrupt_free_pointer(slub):
    s = slub.kmem_cache_create("demo", 40)
    keep = slub.kmem_cache_alloc(s)
    a = slub.kmem_cache_alloc(s)
    b = slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, b)
    slub.kmem_cache_free(s, a)                    # freelist: a → b → …
    slub.write(a + s.offset, (0xDEADBEEF).to_bytes(8, "little"))
    with pytest.raises(D.FreepointerCorrupt, match="Freepointer corrupt"):
        slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, keep)


def test_poison_without_red_zones_checks_alignment_padding():
    slub = Slub(make_zone(256), nr_cpus=1, kmalloc=False, slab_debug="FP")
    s = slub.kmem_cache_create("poison_only", 36)
    assert s.flags & F.SLAB_POISON and not s.flags & F.SLAB_RED_ZONE
    a = slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, a)
    slub.write(a + 37, b"\x01")                   # in the padding up to the word boundary
    with pytest.raises(D.PaddingOverwritten, match="Alignment padding overwritten"):
        slub.kmem_cache_alloc(s)


def test_debug_without_consistency_checks_still_refuses_double_frees():
    slub = Slub(make_zone(256), nr_cpus=1, kmalloc=False, slab_debug="ZP")
    s = slub.kmem_cache_create("zp", 64)
    a = slub.kmem_cache_alloc(s)
    b = slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, a)
    with pytest.raises(D.ObjectAlreadyFree, match="BUG_ON"):      # a heads the freelist
        slub.kmem_cache_free(s, a)
    slub.kmem_cache_free(s, b)
    with pytest.raises(D.ObjectAlreadyFree, match="slab_debug=F"):  # b does: silent corruption
        slub.kmem_cache_free(s, a)


def test_discarding_a_slab_checks_its_objects(slub):
    s = slub.kmem_cache_create("demo", 40)
    s.min_partial = 0                              # give empty slabs back at once
    a = slub.kmem_cache_alloc(s)
    b = slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, a)
    slub.write(a, b"\x00")                         # use after free …
    slub.kmem_cache_free(s, b)                     # … then the slab empties and is discarded
    assert "Poison overwritten" in slub.dmesg[-1]
    assert not s.slabs


def test_hex_dump_format():
    lines = D.hex_dump_lines("Object   ", 0xFFFF888100000000, bytes(range(0x41, 0x41 + 20)))
    assert lines[0] == ("Object   ffff888100000000: 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e "
                        "4f 50  ABCDEFGHIJKLMNOP")
    assert lines[1] == "Object   ffff888100000010: 51 52 53 54" + " " * 38 + "QRST"

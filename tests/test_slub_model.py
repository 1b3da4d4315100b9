"""The kmem_cache model: slabs from the buddy allocator (typed slab, accounted, given back),
per-cpu slab and lockless freelist, partial lists and min_partial, constructors, free pointer
placement, SLAB_HWCACHE_ALIGN, merging, ORDER_FALLBACK, shrink and destroy, and the kernel-like
refusals with the state left intact."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.events import Collect
from kmmlib.mm import page_flags as pf
from kmmlib.slab import debug as D
from kmmlib.slab import flags as F
from kmmlib.slab.slub import SlabExplorer, Slub, make_zone
from kmmlib.stepper import Stepper


@pytest.fixture()
def slub() -> Slub:
    return Slub(make_zone(4096), nr_cpus=2, kmalloc=False)


def page_type(slub: Slub, pfn: int) -> int:
    mm = slub.pages.mem_map
    return mm.page_type[mm.index(pfn)] >> 24


def test_slabs_come_from_the_buddy_allocator_and_go_back(slub):
    zone = slub.pages
    s = slub.kmem_cache_create("demo", 512)                 # 16 per order-1 slab (2 CPUs)
    assert (s.order, s.objects_per_slab) == (1, 16)
    before = zone.nr_free_pages
    with Collect(slub.events) as seen:
        objs = [slub.kmem_cache_alloc(s) for _ in range(40)]
    new = [e for e in seen if e.kind == "slab_new"]
    assert len(new) == 3 and zone.nr_free_pages == before - 6
    for e in new:
        assert page_type(slub, e.data["pfn"]) == pf.PGTY_slab         # PG_slab (a page type)
        assert zone.mem_map.test_flag(e.data["pfn"], pf.PG_head)      # __GFP_COMP
        assert slub.virt_to_pfn(objs[0]) in {ev.data["pfn"] for ev in new}
    assert slub.meminfo()["SUnreclaim"] >= 24
    slub.check()
    for o in objs:
        slub.kmem_cache_free(s, o)
    slub.kmem_cache_destroy(s)
    assert zone.nr_free_pages == before                      # pages taken = pages returned
    assert all(page_type(slub, e.data["pfn"]) != pf.PGTY_slab for e in new)
    assert "demo" not in slub.caches and "demo" not in slub.slabinfo()
    zone.check()
    slub.check()


def test_fast_and_slow_paths(slub):
    s = slub.kmem_cache_create("demo", 256)                 # 16 per slab
    a = slub.kmem_cache_alloc(s)                             # slow: a new slab
    b = slub.kmem_cache_alloc(s)                             # fast: pop the cpu freelist
    assert b == a + 256                                      # the freelist is in address order
    slub.kmem_cache_free(s, b)                               # fast: push on the cpu freelist
    assert slub.kmem_cache_alloc(s) == b                     # LIFO
    assert s.stat["ALLOC_SLAB"] == 1 and s.stat["ALLOC_FASTPATH"] == 2
    assert s.stat["FREE_FASTPATH"] == 1 and s.stat["ALLOC_SLOWPATH"] == 1
    c1 = slub.kmem_cache_alloc(s, cpu=1)                     # cpu 1 gets its own slab
    assert slub.virt_to_pfn(c1) != slub.virt_to_pfn(a) and s.stat["ALLOC_SLAB"] == 2


def test_remote_free_goes_to_the_slab_freelist_and_is_taken_back(slub):
    s = slub.kmem_cache_create("demo", 256)
    objs = [slub.kmem_cache_alloc(s, cpu=0) for _ in range(16)]   # cpu 0's slab, full
    slub.kmem_cache_free(s, objs[3], cpu=1)     # cpu 1 frees into cpu 0's (frozen) slab
    assert s.stat["FREE_FROZEN"] == 1 and s.cpu_slab[0].freelist == 0
    assert slub.kmem_cache_alloc(s, cpu=0) == objs[3]      # get_freelist(): ALLOC_REFILL
    assert s.stat["ALLOC_REFILL"] == 1
    slub.check()


@pytest.mark.parametrize("size, want", [
    (8, 5), (256, 5),                     # ilog2 / 2 = 1, 4: raised to MIN_PARTIAL
    (4096, 6), (1 << 16, 8),              # 6, 8: as computed
    (1 << 20, 10), (1 << 22, 10),         # 10, 11: at most MAX_PARTIAL
])
def test_min_partial_is_half_the_log_of_the_size_within_5_and_10(size, want):
    """set_min_partial(s, ilog2(s->size) / 2), with MIN_PARTIAL 5 and MAX_PARTIAL 10
    (mm/slub.c): the bigger the objects, the more empty slabs a node keeps."""
    slub = Slub(make_zone(1 << 14), nr_cpus=1, kmalloc=False)
    assert slub.kmem_cache_create(f"c{size}", size).min_partial == want


def test_full_slab_joins_the_partial_tail_and_min_partial_keeps_empties(slub):
    s = slub.kmem_cache_create("demo", 256)
    assert s.min_partial == 5                       # ilog2(256) / 2 = 4, raised to MIN_PARTIAL
    objs = [slub.kmem_cache_alloc(s) for _ in range(16 * 8)]   # 8 full slabs, the last is
    slabs = {slub.virt_to_pfn(o) for o in objs}                 # still cpu 0's slab
    assert len(slabs) == 8 and s.node.nr_partial == 0          # full slabs are on no list
    first_of = {}
    for o in objs:
        first_of.setdefault(slub.virt_to_pfn(o), o)
    order = list(first_of)
    for pfn in order[:-1]:                 # one free in each full slab: each joins the tail
        slub.kmem_cache_free(s, first_of[pfn])
    assert [sl.pfn for sl in s.node.partial] == order[:-1]
    assert s.stat["FREE_ADD_PARTIAL"] == 7
    zone = slub.pages
    before = zone.nr_free_pages
    for o in objs:                          # empty them all
        if o not in {first_of[p] for p in order[:-1]}:
            slub.kmem_cache_free(s, o)
    # Seven partial slabs emptied one after the other: a slab that becomes empty goes back
    # while the node has nr_partial >= min_partial (7, 6, 5), then the node keeps them (4).
    assert s.node.nr_partial == 4 and zone.nr_free_pages == before + 3
    assert all(sl.inuse == 0 for sl in s.node.partial)
    # shrink: the (empty) cpu slab is flushed to the partial list, then every empty slab goes.
    assert slub.kmem_cache_shrink(s) == 5
    assert s.node.nr_slabs == 0 and zone.nr_free_pages == before + 8
    slub.check()


def test_shrink_sorts_the_partial_list_fullest_first(slub):
    s = slub.kmem_cache_create("demo", 256)
    objs = [slub.kmem_cache_alloc(s) for _ in range(16 * 3 + 1)]   # 3 full, 1 cpu slab
    by_slab: dict[int, list[int]] = {}
    for o in objs:
        by_slab.setdefault(slub.virt_to_pfn(o), []).append(o)
    pfns = list(by_slab)
    for k, pfn in enumerate(pfns[:3]):      # free 3, 1 and 2 objects from the full slabs
        for o in by_slab[pfn][:(3, 1, 2)[k]]:
            slub.kmem_cache_free(s, o)
    assert [sl.pfn for sl in s.node.partial] == pfns[:3]
    slub.kmem_cache_shrink(s)               # cpu slab (15 free) flushed, then sorted by free
    assert [sl.pfn for sl in s.node.partial] == [pfns[1], pfns[2], pfns[0], pfns[3]]


def test_constructor_runs_once_per_object_when_the_slab_is_made(slub):
    calls = []

    def ctor(obj):
        calls.append(1)
        obj[:4] = b"INIT"

    s = slub.kmem_cache_create("ctor_demo", 100, 0, 0, ctor)
    assert s.layout.freeptr_outside and s.size == 112       # room for the free pointer after
    a = slub.kmem_cache_alloc(s)
    assert len(calls) == s.objects_per_slab == s.ctor_calls
    assert slub.read(a, 4) == b"INIT"
    slub.write(a, b"USED")
    slub.kmem_cache_free(s, a)
    b = slub.kmem_cache_alloc(s)
    assert b == a and slub.read(b, 4) == b"USED"            # no ctor on reuse
    assert len(calls) == s.objects_per_slab
    with pytest.raises(BadRequest, match="constructor"):
        slub.kmem_cache_alloc(s, "GFP_KERNEL|__GFP_ZERO")


def test_free_pointer_lives_in_the_middle_of_a_free_object(slub):
    s = slub.kmem_cache_create("mid", 100)
    assert (s.offset, s.size) == (48, 104)
    a = slub.kmem_cache_alloc(s)
    b = slub.kmem_cache_alloc(s)
    slub.kmem_cache_free(s, b)
    slub.kmem_cache_free(s, a)          # a is the head; its next is b
    assert int.from_bytes(slub.read(a + 48, 8), "little") == b
    assert slub.get_freepointer(s, slub._slab_by_pfn[slub.virt_to_pfn(a)], a) == b


def test_hwcache_align(slub):
    plain = slub.kmem_cache_create("plain20", 20)
    aligned = slub.kmem_cache_create("aligned20", 20, 0, "SLAB_HWCACHE_ALIGN")
    assert (plain.size, aligned.size) == (24, 32)
    objs = [slub.kmem_cache_alloc(aligned) for _ in range(5)]
    assert all(o % 32 == 0 for o in objs)
    assert slub.kmem_cache_create("aligned40", 40, 0, F.SLAB_HWCACHE_ALIGN).size == 64


def test_cache_merging(slub):
    a = slub.kmem_cache_create("a40", 40)
    b = slub.kmem_cache_create("b40", 36)                   # rounds to 40: same slots
    assert b is a and a.aliases == ["b40"] and a.refcount == 2
    assert "b40" not in slub.slabinfo()                     # aliases have no row
    assert slub.kmem_cache_create("c40", 40, 0, 0, lambda o: None) is not a   # ctor
    assert slub.kmem_cache_create("d40", 40, 0, "SLAB_RECLAIM_ACCOUNT") is not a
    assert slub.kmem_cache_create("e48", 48) is not a       # a word larger: no
    obj = slub.kmem_cache_alloc("b40")
    assert slub._cache_of_object(obj) is a
    slub.kmem_cache_free("b40", obj)
    slub.kmem_cache_destroy("b40")
    assert a.refcount == 1 and "b40" not in slub.caches and "a40" in slub.caches
    nomerge = Slub(make_zone(256), nr_cpus=1, kmalloc=False, merge=False)
    x = nomerge.kmem_cache_create("x", 40)
    assert nomerge.kmem_cache_create("y", 40) is not x


def test_create_refusals(slub):
    slub.kmem_cache_create("demo", 64)
    with pytest.raises(BadRequest, match="duplicate"):
        slub.kmem_cache_create("demo", 64)
    for bad in (("", 64), ("two words", 64), ("z", 0), ("z", 8 << 20)):
        with pytest.raises(BadRequest):
            slub.kmem_cache_create(*bad)
    with pytest.raises(BadRequest):
        slub.kmem_cache_create("z", 64, 24)
    with pytest.raises(BadRequest, match="unknown slab flag"):
        slub.kmem_cache_create("z", 64, 0, "SLAB_SHINY")
    with pytest.raises(BadRequest):
        slub.cache("nope")
    with pytest.raises(BadRequest, match="boot cache"):
        slub.kmem_cache_destroy("kmem_cache")


def test_order_fallback_under_fragmentation():
    zone = make_zone(64)                      # 8-page blocks; first 32 pages Unmovable
    slub = Slub(zone, nr_cpus=2, kmalloc=False)
    s = slub.kmem_cache_create("big", 1024)   # order 2 (16 per slab) on 2 CPUs
    assert s.order == 2 and s.min[0] == 0
    # Fragment the unmovable pages: keep every other page.
    held = []
    while (pfn := zone.alloc_pages("GFP_KERNEL", 0)) is not None:
        held.append(pfn)
    for pfn in held[::2]:
        zone.free(pfn, 0)
    with Collect(slub.events) as seen:
        obj = slub.kmem_cache_alloc(s)
    assert obj is not None and s.stat["ORDER_FALLBACK"] == 1
    assert any(e.kind == "order_fallback" for e in seen)
    slab = slub._slab_by_pfn[slub.virt_to_pfn(obj)]
    assert (slab.order, slab.objects) == (0, 4)
    slub.check()


def test_out_of_memory_returns_null_and_warns():
    zone = make_zone(32)
    slub = Slub(zone, nr_cpus=1, kmalloc=False)
    s = slub.kmem_cache_create("big", 4096)
    got = [slub.kmem_cache_alloc(s) for _ in range(40)]
    assert None in got
    assert any("SLUB: Unable to allocate memory" in line for line in slub.dmesg)
    before = len(slub.dmesg)
    assert slub.kmem_cache_alloc(s, "GFP_KERNEL|__GFP_NOWARN") is None
    assert len(slub.dmesg) == before
    slub.check()


def test_destroy_with_objects_is_refused_and_changes_nothing(slub):
    s = slub.kmem_cache_create("leaky", 128)
    objs = [slub.kmem_cache_alloc(s) for _ in range(3)]
    info = slub.slabinfo()
    with pytest.raises(D.ObjectsRemaining) as err:
        slub.kmem_cache_destroy(s)
    assert "Objects remaining in leaky on __kmem_cache_shutdown()" in err.value.report
    assert "3 objects still allocated" in str(err.value)
    assert slub.slabinfo() == info and "leaky" in slub.caches
    for o in objs:
        slub.kmem_cache_free(s, o)
    slub.kmem_cache_destroy(s)


def test_bad_frees_are_refused_with_state_intact(slub):
    s = slub.kmem_cache_create("demo", 256)
    t = slub.kmem_cache_create("other", 512)
    a = slub.kmem_cache_alloc(s)
    b = slub.kmem_cache_alloc(s)
    x = slub.kmem_cache_alloc(t)
    state = slub.object_state(s)
    with pytest.raises(BadRequest, match="Wrong slab cache"):
        slub.kmem_cache_free(s, x)
    with pytest.raises(D.InvalidObjectPointer):
        slub.kmem_cache_free(s, a + 8)
    with pytest.raises(BadRequest, match="not in a slab page"):
        slub.kmem_cache_free(s, slub.page_address(slub.pages.zone_end_pfn - 1))
    slub.kmem_cache_free(s, b)
    with pytest.raises(D.ObjectAlreadyFree, match="BUG_ON"):     # b is the freelist head
        slub.kmem_cache_free(s, b)
    slub.kmem_cache_free(s, a)
    with pytest.raises(D.ObjectAlreadyFree, match="no message"):  # b is not the head
        slub.kmem_cache_free(s, b)
    assert slub.object_state(s) != state
    slub.check()
    # Both objects come back exactly once.
    assert {slub.kmem_cache_alloc(s), slub.kmem_cache_alloc(s)} == {a, b}
    assert len({slub.kmem_cache_alloc(s) for _ in range(14)} | {a, b}) == 16


def test_memory_access_stays_inside_slabs(slub):
    s = slub.kmem_cache_create("demo", 64)
    a = slub.kmem_cache_alloc(s)
    slub.memset(a, 0x41, 64)
    assert slub.read(a, 64) == b"A" * 64
    assert "41 41 41" in slub.hexdump(a, 16)
    with pytest.raises(BadRequest):
        slub.read(slub.page_address(slub.pages.zone_end_pfn - 1), 8)
    with pytest.raises(BadRequest):
        slub.write(a, b"x" * 8192)


def test_explorer_steps_forward_and_back():
    ops = [("alloc",)] * 17 + [("free", 3), ("free", 17), ("shrink",)]
    st = Stepper(lambda: SlabExplorer(256, nr_pages=32), ops)
    for _ in range(17):
        st.step()
    text17 = st.state_text()
    assert "cpu 0 slab" in text17 and "full" in text17
    st.step()
    assert "partial[0]" in st.state_text()
    st.back()
    assert st.state_text() == text17
    st.run()
    # 16 objects of 256 bytes a page: #17 alone in the second slab, the cpu slab; freeing it
    # leaves that slab empty, and shrink hands its one page back (the first keeps 15 of 16).
    text = st.narration()
    assert text.startswith("step 20/20: shrink → 1 page freed\n"), text
    assert "empty slab at pfn 0x100003 goes back to the buddy allocator (1 page)" in text
    bad = st.do(("free", 99))
    assert bad.error and "no live object #99" in bad.error
    ex = SlabExplorer(64, nr_pages=32)
    with pytest.raises(BadRequest):
        ex.apply(("explode",))


def test_apply_ops_on_a_slub():
    slub = Slub(make_zone(4096), nr_cpus=2)                 # with the kmalloc caches
    name = slub.apply(("create", "ops", 128))
    assert name == "ops"
    addr = slub.apply(("alloc", name))
    assert slub._cache_of_object(addr).name == "ops" and addr in slub._live
    assert "ops" in slub.render() and "#" in slub.render(["ops"])
    slub.apply(("free", addr))
    assert addr not in slub._live
    p = slub.apply(("kmalloc", 64))
    assert slub._cache_of_object(p).name == "kmalloc-64"
    # The one slab of "ops" is empty now: shrink gives its page back.
    assert slub.cache("ops").order == 0 and slub.apply(("shrink", name)) == 1
    slub.apply(("destroy", name))
    assert "ops" not in slub.caches and slub.render() == "(no slabs)"
    with pytest.raises(BadRequest):
        slub.apply(("fly",))


def test_a_failed_first_try_is_retried_with_the_callers_flags_even_at_the_same_order():
    """allocate_slab(): the first try adds __GFP_NORETRY|__GFP_NOWARN; when it fails, the
    kernel tries s->min with the caller's own flags, even when s->min has the same order (an
    order-0 cache), and counts ORDER_FALLBACK."""
    from kmmlib.slab import slub as slub_mod

    slub = Slub(make_zone(64), nr_cpus=1, kmalloc=False)
    s = slub.kmem_cache_create("small", 64)
    assert s.order == s.min[0] == 0
    tries = []
    real = slub._alloc_slab_page

    def first_fails(gfp, order):
        tries.append((gfp, order))
        return None if len(tries) == 1 else real(gfp, order)

    slub._alloc_slab_page = first_fails
    assert slub.kmem_cache_alloc(s, "GFP_KERNEL") is not None
    (g1, o1), (g2, o2) = tries
    assert o1 == o2 == 0
    assert g1 & slub_mod.GFP_NORETRY and g1 & slub_mod.GFP_NOWARN
    assert not g2 & slub_mod.GFP_NORETRY and not g2 & slub_mod.GFP_NOWARN
    assert s.stat["ORDER_FALLBACK"] == 1
    slub.check()


@pytest.mark.parametrize("letters, listed", [("FZ", False), ("FZU", True)])
def test_only_owner_tracking_caches_keep_a_full_list(letters, listed):
    """add_full() returns at once unless SLAB_STORE_USER: a full slab of a debugging cache
    without U is on no list, as for any other cache."""
    slub = Slub(make_zone(64), nr_cpus=1, kmalloc=False, slab_debug=letters)
    s = slub.kmem_cache_create("dbg", 1024)
    objs = [slub.kmem_cache_alloc(s) for _ in range(s.oo[1])]     # exactly one slab's worth
    slab = slub._slab_by_pfn[slub.virt_to_pfn(objs[0])]
    assert slab.inuse == slab.objects
    assert (s.node.full == [slab]) is listed and (slab.where == "full") is listed
    slub.kmem_cache_free(s, objs[0])                 # full → partial either way
    assert s.node.full == [] and s.node.partial == [slab] and slab.where == "partial"
    slub.check()


def test_an_empty_slab_given_back_is_narrated_with_the_count_that_decided_it():
    """__slab_free(): an empty slab goes back when the node already keeps min_partial partial
    slabs, counted before this one leaves the list; the narration prints that count."""
    import re

    slub = Slub(make_zone(64), nr_cpus=1, kmalloc=False)
    s = slub.kmem_cache_create("demo", 1024)                 # 4 objects per order-0 slab
    s.min_partial = 1
    per = s.oo[1]
    objs = [slub.kmem_cache_alloc(s) for _ in range(3 * per)]   # three full slabs
    with Collect(slub.events) as seen:
        for o in objs:
            slub.kmem_cache_free(s, o)
    said = [e.text for e in seen if "already keeps" in e.text]
    assert said
    for text in said:
        kept, min_partial = map(int, re.search(r"keeps (\d+) ≥ min_partial (\d+)", text).groups())
        assert kept >= min_partial == 1
    slub.check()

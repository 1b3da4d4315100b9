"""Stateful property test of the slab accounting: random create / alloc / free (on any CPU) /
kmalloc / kfree / shrink / destroy sequences, with and without SLUB debugging, must keep

- every cache's objects in use + free = slabs × objects per slab (``Slub.check()`` walks every
  freelist), the node counts equal to the slabs, and slabinfo's num_objs equal to them;
- every page of the zone either free in the buddy allocator or held by a slab or a
  kmalloc_large block (pages taken = pages returned), the buddy allocator consistent;
- no object handed out twice while live;

and, at the end, after everything is freed and every cache destroyed and shrunk, the zone gets
back every page the test's caches took."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from kmmlib.procfs.slabinfo import parse_slabinfo
from kmmlib.slab import debug as D
from kmmlib.slab.slub import Slub, make_zone

SIZES = st.sampled_from([8, 24, 40, 64, 100, 192, 256, 700, 1024, 3000])
FLAGS = st.sampled_from([0, "SLAB_HWCACHE_ALIGN", "SLAB_RECLAIM_ACCOUNT", "SLAB_ACCOUNT"])


class SlabMachine(RuleBasedStateMachine):
    caches = Bundle("caches")

    def __init__(self):
        super().__init__()
        self.zone = make_zone(2048)
        self.slub = Slub(self.zone, nr_cpus=2, slab_debug="FZPU",
                         slab_debug_caches=["dbg0", "dbg1", "dbg2"])
        self.live: dict[int, str] = {}          # address → cache name (or "kmalloc")
        self.n = 0

    @rule(target=caches, size=SIZES, flags=FLAGS, ctor=st.booleans(), debug=st.booleans())
    def create(self, size, flags, ctor, debug):
        name = f"{'dbg' if debug and self.n < 3 else 'c'}{self.n}"
        self.n += 1
        fn = (lambda obj: obj.__setitem__(slice(0, 1), b"C")) if ctor else None
        s = self.slub.kmem_cache_create(name, size, 0, flags, fn)
        return name if s.name == name or name in s.aliases else s.name

    @rule(cache=caches, cpu=st.integers(0, 1), count=st.integers(1, 40))
    def alloc(self, cache, cpu, count):
        if cache not in self.slub.caches:
            return
        for _ in range(count):
            a = self.slub.kmem_cache_alloc(cache, cpu=cpu)
            if a is None:
                break
            assert a not in self.live
            self.live[a] = cache

    @rule(data=st.data(), cpu=st.integers(0, 1), count=st.integers(1, 40))
    def free(self, data, cpu, count):
        for _ in range(min(count, len(self.live))):
            a = data.draw(st.sampled_from(sorted(self.live)))
            name = self.live.pop(a)
            if name == "kmalloc":
                self.slub.kfree(a, cpu=cpu)
            else:
                self.slub.kmem_cache_free(name, a, cpu=cpu)

    @rule(size=st.sampled_from([1, 50, 96, 150, 500, 4000, 8192, 9000, 20000]),
          gfp=st.sampled_from(["GFP_KERNEL", "GFP_KERNEL_ACCOUNT",
                               "GFP_KERNEL|__GFP_RECLAIMABLE"]), cpu=st.integers(0, 1))
    def kmalloc(self, size, gfp, cpu):
        a = self.slub.kmalloc(size, gfp, cpu=cpu)
        if a is not None:
            assert a not in self.live
            self.live[a] = "kmalloc"

    @rule(cache=caches)
    def shrink(self, cache):
        if cache in self.slub.caches:
            self.slub.kmem_cache_shrink(cache)

    @rule(data=st.data())
    def double_free_is_refused(self, data):
        """Free something already freed: refused, nothing changes."""
        dead = [a for a, s in list(self.slub._tracks) if a not in self.live] \
            if self.slub._tracks else []
        if not dead:
            return
        a = data.draw(st.sampled_from(sorted(set(dead))))
        slab = self.slub._slab_by_pfn.get(self.slub.virt_to_pfn(a))
        if slab is None or a in self.slub._live:
            return
        before = self.slub.slabinfo()
        try:
            self.slub.kfree(a)
        except D.SlubDebugError:
            pass
        else:
            raise AssertionError(f"double free of {a:#x} accepted")
        assert self.slub.slabinfo() == before

    @rule(cache=consumes(caches))
    def destroy(self, cache):
        if cache not in self.slub.caches:
            return
        s = self.slub.cache(cache)
        mine = [a for a, n in self.live.items() if n in (s.name, *s.aliases)]
        if mine:
            try:
                self.slub.kmem_cache_destroy(cache)
            except D.ObjectsRemaining:
                return
            # An alias went; the merged cache and its objects stay (freed by its own name).
            assert s.refcount >= 1 and cache not in s.aliases
            for a in mine:
                self.live[a] = s.name if s.name in self.slub.caches else s.aliases[0]
            return
        self.slub.kmem_cache_destroy(cache)

    @invariant()
    def accounting(self):
        slub = self.slub
        slub.check()
        assert self.zone.nr_free_pages + slub.slab_pages() == self.zone.managed_pages
        for row in parse_slabinfo(slub.slabinfo()):
            s = slub.caches[row.name]
            assert row.num_objs == sum(sl.objects for sl in s.slabs.values())
            assert row.num_slabs == len(s.slabs)
            if not s.stat["ORDER_FALLBACK"]:
                assert row.num_objs == row.num_slabs * row.objperslab
        structs = {a for c in slub.slab_caches for a in (c.struct_addr, c.node_struct_addr)}
        large = {slub.page_address(pfn) for pfn in slub._large}
        assert set(self.live) == (set(slub._live) - structs) | large

    def teardown(self):
        slub = self.slub
        for a, name in list(self.live.items()):
            if name == "kmalloc":
                slub.kfree(a)
            else:
                slub.kmem_cache_free(name, a)
        self.live.clear()
        for s in list(slub.slab_caches):
            if s.name.startswith(("c", "dbg")):
                while s.refcount > 0:
                    slub.kmem_cache_destroy(s.aliases[-1] if s.aliases else s.name)
        for s in slub.slab_caches:
            slub.kmem_cache_shrink(s)
        slub.check()
        self.zone.check()
        # Every page the test's caches and kmalloc calls took came back. What is left are the
        # slabs of kmem_cache and kmem_cache_node, holding one object per remaining cache.
        boot = slub._boot_caches
        for s in slub.slab_caches:
            if s in boot.values():
                state = slub.object_state(s)
                assert sum(v == "used" for v in state.values()) == len(slub.slab_caches)
                assert all(sl.inuse for sl in s.slabs.values())      # no empty slab kept
            else:
                assert not s.slabs, s.name
        assert slub.slab_pages() == sum(sl.nr_pages for s in boot.values()
                                        for sl in s.slabs.values())
        assert self.zone.nr_free_pages + slub.slab_pages() == self.zone.managed_pages


SlabMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                         deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestSlabAccounting = SlabMachine.TestCase

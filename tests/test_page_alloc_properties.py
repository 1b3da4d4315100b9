"""Property-based tests of the buddy allocator (hypothesis, stateful).

After any sequence of allocations and frees (per-cpu lists on or off, odd zone sizes, zones
that do not start at pfn 0):

- no two free buddies of equal order stay unmerged, blocks never overlap, every list is well
  linked and ``nr_free`` / NR_FREE_PAGES match the lists, free + per-cpu + allocated pages =
  managed pages (:meth:`Zone.check` walks all of it after every step);
- with per-cpu lists off, every returned pfn and every free list (in order) equals that of a
  deliberately naive second implementation of the same kernel rules (Python lists, no
  intrusive links), written from mm/page_alloc.c separately;
- freeing everything (and draining the per-cpu lists) restores the boot blocks and counters.

The runs below take thousands of steps in all (examples x steps).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from kmmlib.errors import KmmError
from kmmlib.mm.page_alloc import MAX_PAGE_ORDER, Zone


class NaiveBuddy:
    """The same rules as mm/page_alloc.c with plain lists: free_area[o] is a list, head first.
    One migrate type, no per-cpu lists. Deliberately simple, so it can be trusted by reading."""

    def __init__(self, start: int, end: int, max_order: int = MAX_PAGE_ORDER):
        self.start, self.end, self.max_order = start, end, max_order
        self.lists: list[list[int]] = [[] for _ in range(max_order + 1)]
        pfn = start                                    # __free_pages_memory()
        while pfn < end:
            order = max_order if pfn == 0 else min(max_order, (pfn & -pfn).bit_length() - 1)
            while pfn + (1 << order) > end:
                order -= 1
            self.free(pfn, order, to_tail=True)
            pfn += 1 << order

    def is_free(self, pfn: int, order: int) -> bool:
        return self.start <= pfn < self.end and pfn in self.lists[order]

    def alloc(self, order: int) -> int | None:
        for cur in range(order, self.max_order + 1):  # __rmqueue_smallest(): list heads
            if self.lists[cur]:
                pfn = self.lists[cur].pop(0)
                while cur > order:                    # expand(): upper halves to the head
                    cur -= 1
                    self.lists[cur].insert(0, pfn + (1 << cur))
                return pfn
        return None

    def free(self, pfn: int, order: int, to_tail: bool = False) -> None:
        buddy = 0
        while order < self.max_order:                 # __free_one_page()
            buddy = pfn ^ (1 << order)
            if not self.is_free(buddy, order):
                break
            self.lists[order].remove(buddy)
            pfn &= buddy
            order += 1
        if not to_tail and order < self.max_order - 1:   # buddy_merge_likely()
            higher = buddy & pfn
            to_tail = self.is_free(higher ^ (1 << (order + 1)), order + 1)
        if to_tail:
            self.lists[order].append(pfn)
        else:
            self.lists[order].insert(0, pfn)


class BuddyMachine(RuleBasedStateMachine):
    @initialize(nr_pages=st.integers(1, 700), start=st.sampled_from([0, 0, 1, 512, 4096 + 37]),
                pcp=st.booleans(), pageblock_order=st.sampled_from([3, 9]))
    def boot(self, nr_pages, start, pcp, pageblock_order):
        self.zone = Zone(nr_pages, start, pcp=pcp, nr_cpus=1 + int(pcp),
                         pageblock_order=pageblock_order)
        self.pcp = pcp
        self.naive = None if pcp else NaiveBuddy(start, start + nr_pages)
        self.boot_blocks = self.zone.free_blocks()
        self.boot_nr_free = self.zone.nr_free()
        self.held: list[tuple[int, int]] = []

    @rule(order=st.integers(0, MAX_PAGE_ORDER).filter(lambda o: o < 6 or o % 3 == 0),
          cpu=st.integers(0, 1))
    def alloc(self, order, cpu):
        pfn = self.zone.alloc(order, cpu=cpu if self.pcp else 0)
        if self.naive is not None:
            assert pfn == self.naive.alloc(order)
        if pfn is not None:
            self.held.append((pfn, order))

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 10_000))
    def free(self, i):
        pfn, order = self.held.pop(i % len(self.held))
        self.zone.free(pfn, order)
        if self.naive is not None:
            self.naive.free(pfn, order)

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 10_000), delta=st.sampled_from([-1, 1]))
    def bad_free_changes_nothing(self, i, delta):
        pfn, order = self.held[i % len(self.held)]
        before = self.zone.state_key()
        try:
            self.zone.free(pfn, order + delta)       # the wrong order
        except KmmError:
            pass
        else:
            raise AssertionError("a free with the wrong order was accepted")
        assert self.zone.state_key() == before

    @precondition(lambda self: self.pcp)
    @rule()
    def drain(self):
        self.zone.drain_pages()

    @invariant()
    def consistent(self):
        if hasattr(self, "zone"):
            self.zone.check()
            if self.naive is not None:
                z = self.zone
                assert [z.free_list(o) for o in range(z.nr_orders)] == self.naive.lists

    def teardown(self):
        if not hasattr(self, "zone"):
            return
        for pfn, order in self.held:
            self.zone.free(pfn, order)
        self.zone.drain_pages()
        self.zone.check()
        assert self.zone.free_blocks() == self.boot_blocks
        assert self.zone.nr_free() == self.boot_nr_free
        assert self.zone.nr_free_pages == self.zone.managed_pages


BuddyMachine.TestCase.settings = settings(
    max_examples=120, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestBuddyMachine = BuddyMachine.TestCase


def test_naive_model_agrees_on_a_long_random_run():
    """One long run (20,000 steps) on a 1000-page zone, checked against the naive model."""
    import random

    rng = random.Random(7)
    z = Zone(1000)
    naive = NaiveBuddy(0, 1000)
    held: list[tuple[int, int]] = []
    for _ in range(20_000):
        if held and rng.random() < 0.5:
            pfn, order = held.pop(rng.randrange(len(held)))
            z.free(pfn, order)
            naive.free(pfn, order)
        else:
            order = rng.choice([0, 0, 0, 1, 2, 3, 5])
            pfn = z.alloc(order)
            assert pfn == naive.alloc(order)
            if pfn is not None:
                held.append((pfn, order))
    assert [z.free_list(o) for o in range(11)] == naive.lists
    z.check()

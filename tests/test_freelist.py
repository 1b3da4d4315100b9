"""xv6's one-list page allocator (chapter 00's stepping example)."""

import pytest

from kmmlib.errors import BadPageState, BadRequest
from kmmlib.mm.freelist import FreeListAllocator


def test_kalloc_is_lifo_from_the_top_after_freerange():
    a = FreeListAllocator(4)
    assert [a.kalloc() for _ in range(4)] == [3, 2, 1, 0]
    assert a.kalloc() is None  # exhausted: NULL, not an exception
    a.kfree(1)
    a.kfree(3)
    assert a.kalloc() == 3 and a.kalloc() == 1


def test_bad_frees_leave_state_intact():
    a = FreeListAllocator(4)
    a.kalloc()
    before = (list(a.freelist), set(a.in_use))
    with pytest.raises(BadPageState, match="already free"):
        a.kfree(0)
    with pytest.raises(BadRequest, match="not one of"):
        a.kfree(9)
    with pytest.raises(BadRequest, match="unknown operation"):
        a.apply(("malloc", 1))
    assert (a.freelist, a.in_use) == before


def test_render():
    a = FreeListAllocator(4)
    a.kalloc()
    assert a.render() == "frames  [...#]  (3 free)\nfreelist: 2 → 1 → 0"

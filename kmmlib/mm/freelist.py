"""The simplest page allocator: one free list of pages, as xv6's ``kernel/kalloc.c`` has.

xv6 keeps every free page on a singly linked list (``kmem.freelist``); ``kalloc()`` pops the
head and ``kfree()`` pushes the page back on the head. It is a page of C and every line is
obvious — and it can only hand out one page at a time, so it can never give a driver 16
physically contiguous pages. Chapter 00 steps through it to show how the course's widgets
work; chapter 06 shows how Linux's buddy allocator (``mm/page_alloc.c``) does better.

The list starts as ``freerange()`` leaves it: ``kfree`` of every page in ascending address
order, so the *last* page is the head and ``kalloc()`` returns pages from the top down.
"""

from __future__ import annotations

from kmmlib.errors import BadPageState, BadRequest
from kmmlib.events import EventLog


class FreeListAllocator:
    """``nr_pages`` page frames (pfn 0..nr_pages-1) and xv6's LIFO free list."""

    def __init__(self, nr_pages: int = 8):
        if not 1 <= nr_pages <= 4096:
            raise BadRequest(f"nr_pages must be 1..4096, not {nr_pages}")
        self.nr_pages = nr_pages
        self.events = EventLog()
        self.freelist: list[int] = []      # head is the end of the Python list
        self.in_use: set[int] = set()
        for pfn in range(nr_pages):        # freerange(): kfree each page, ascending
            self.freelist.append(pfn)

    def kalloc(self) -> int | None:
        """Take the head of the free list; None when memory is exhausted (xv6 returns 0)."""
        if not self.freelist:
            self.events.emit("alloc_fail", "kalloc: the free list is empty → NULL")
            return None
        pfn = self.freelist.pop()
        self.in_use.add(pfn)
        head = self.freelist[-1] if self.freelist else None
        self.events.emit("alloc", f"kalloc: take the head, page {pfn}; the new head is "
                         f"{'page ' + str(head) if head is not None else 'nothing'}", pfn=pfn)
        return pfn

    def kfree(self, pfn: int) -> None:
        """Push ``pfn`` on the head of the free list. xv6 panics on a bad pfn; we raise."""
        if not 0 <= pfn < self.nr_pages:
            raise BadRequest(f"kfree: page {pfn} is not one of this machine's "
                             f"0..{self.nr_pages - 1}")
        if pfn not in self.in_use:
            raise BadPageState(f"BUG: Bad page state: kfree of page {pfn}, which is already free")
        self.in_use.remove(pfn)
        self.freelist.append(pfn)
        self.events.emit("free", f"kfree: page {pfn} goes on the head of the free list", pfn=pfn)

    # -- the Stepper model protocol --------------------------------------------------------
    def apply(self, op: tuple) -> int | None:
        """``("kalloc",)`` or ``("kfree", pfn)``."""
        if op[0] == "kalloc":
            return self.kalloc()
        if op[0] == "kfree" and len(op) == 2:
            self.kfree(int(op[1]))
            return None
        raise BadRequest(f"unknown operation {op!r}: use ('kalloc',) or ('kfree', pfn)")

    def render(self) -> str:
        """The frames as a row of cells (``#`` in use, ``.`` free) and the list from its head."""
        cells = "".join("#" if p in self.in_use else "." for p in range(self.nr_pages))
        order = " → ".join(str(p) for p in reversed(self.freelist)) or "(empty)"
        return f"frames  [{cells}]  ({len(self.freelist)} free)\nfreelist: {order}"

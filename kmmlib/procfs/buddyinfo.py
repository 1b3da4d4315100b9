"""/proc/buddyinfo: how many free blocks of each order every zone has.

``frag_show_print()`` in mm/vmstat.c (Linux 6.18) prints one line per *populated* zone::

    seq_printf(m, "Node %d, zone %8s ", pgdat->node_id, zone->name);
    for (order = 0; order < NR_PAGE_ORDERS; ++order)
        seq_printf(m, "%6lu ", zone->free_area[order].nr_free);
    seq_putc(m, '\\n');

so the zone name is right-aligned in 8 columns, every count is right-aligned in 6 and followed
by one space (the last one too), and a count wider than 6 digits simply pushes the line
wider. A count is ``nr_free``: free *blocks* of that order (each 2^order pages), over all
migrate types; pages on the per-cpu lists are not in it. There are NR_PAGE_ORDERS = 11
columns with 4 KiB pages on x86_64 (MAX_PAGE_ORDER 10), more on arm64 with 16K/64K pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kmmlib.errors import ParseError

_LINE = re.compile(r"^Node (\d+), zone\s+(\S+)((?:\s+\d+)+)\s*$")


@dataclass(frozen=True)
class BuddyInfo:
    """One line of /proc/buddyinfo: a zone and its ``free_area[order].nr_free`` per order."""

    node: int
    zone: str
    nr_free: tuple[int, ...]

    @property
    def free_pages(self) -> int:
        """Free pages in the buddy lists: the sum of nr_free << order."""
        return sum(n << order for order, n in enumerate(self.nr_free))

    def pages_by_order(self) -> list[int]:
        """Free pages held in blocks of each order (nr_free << order)."""
        return [n << order for order, n in enumerate(self.nr_free)]

    def line(self) -> str:
        """The line exactly as the kernel prints it (with the trailing newline)."""
        return format_line(self.node, self.zone, self.nr_free)


def format_line(node: int, zone: str, nr_free: Sequence[int]) -> str:
    """``frag_show_print()`` for one zone."""
    return f"Node {node}, zone {zone:>8} " + "".join(f"{n:6d} " for n in nr_free) + "\n"


def render_buddyinfo(lines: Iterable[BuddyInfo]) -> str:
    """The whole file from its lines."""
    return "".join(b.line() for b in lines)


def parse_buddyinfo(text: str) -> list[BuddyInfo]:
    """Read /proc/buddyinfo text; every line must have the same number of orders."""
    out: list[BuddyInfo] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        m = _LINE.match(raw)
        if not m:
            raise ParseError(f"buddyinfo line {n}: expected 'Node N, zone NAME  count count …', "
                             f"got {raw!r}")
        counts = tuple(int(x) for x in m.group(3).split())
        if out and len(counts) != len(out[0].nr_free):
            raise ParseError(f"buddyinfo line {n}: {len(counts)} orders, but line 1 has "
                             f"{len(out[0].nr_free)}")
        out.append(BuddyInfo(int(m.group(1)), m.group(2), counts))
    if not out:
        raise ParseError("buddyinfo is empty")
    return out


def read_buddyinfo(source) -> list[BuddyInfo]:
    """Parse ``buddyinfo`` from a :class:`~kmmlib.procfs.source.ProcSource` (live, a folder of
    copies, or the bundled snapshot when the live file is missing)."""
    return parse_buddyinfo(source.read("buddyinfo"))

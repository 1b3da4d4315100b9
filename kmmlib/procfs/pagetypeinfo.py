"""/proc/pagetypeinfo: free blocks by migrate type and order, and pageblocks by type.

``pagetypeinfo_show()`` in mm/vmstat.c (Linux 6.18) prints, for every node with memory::

    seq_printf(m, "Page block order: %d\\n", pageblock_order);
    seq_printf(m, "Pages per block:  %lu\\n", pageblock_nr_pages);
    seq_putc(m, '\\n');
    pagetypeinfo_showfree()       header "%-43s " + "%6d " per order, then for every populated
                                  zone and every type: "Node %4d, zone %8s, type %12s " and
                                  "%s%6lu " per order (the prefix is ">" when the count stopped
                                  at 100000: the kernel walks each list under the zone lock)
    pagetypeinfo_showblockcount() "\\n%-23s" "Number of blocks type " + "%12s " per type name,
                                  then "Node %d, zone %8s " + "%12lu " per type: pageblocks
                                  whose migratetype bits say that type (stepping from the
                                  zone's first pfn, online pages only)
    pagetypeinfo_showmixedcount() CONFIG_PAGE_OWNER only: "Number of mixed blocks " in the
                                  same layout, pageblocks holding a page of another type

The free counts are *blocks* (not pages) on ``free_area[order].free_list[type]``; their sum
over types is /proc/buddyinfo's figure. The file is mode 0400: a normal user cannot read it
(:class:`~kmmlib.procfs.source.ProcSource` falls back to the bundled snapshot). The type
names are read from the file, so kernels with CMA (a "CMA" column) parse too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kmmlib.errors import ParseError

FREE_HEADER = "Free pages count per migrate type at order"
BLOCKS_HEADER = "Number of blocks type "
MIXED_HEADER = "Number of mixed blocks "
OVERFLOW = 100000        # pagetypeinfo_showfree_print() stops counting a list here

_FREE_ROW = re.compile(r"^Node\s+(\d+), zone\s+(\S+), type\s+(\S+) (.*)$")
_COUNT_ROW = re.compile(r"^Node (\d+), zone\s+(\S+) (.*)$")


@dataclass
class PagetypeZone:
    """One zone's rows: ``free[type]`` = blocks per order (``overflow[type][order]`` when the
    kernel printed ``>``), ``blocks[type]`` = pageblocks of that type, ``mixed[type]`` (page
    owner kernels only)."""

    node: int
    zone: str
    free: dict[str, list[int]] = field(default_factory=dict)
    overflow: dict[str, list[bool]] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)
    mixed: dict[str, int] | None = None

    def free_pages(self, mt: str | None = None) -> int:
        """Free pages on the lists of one type (or all): sum of blocks << order."""
        types = [mt] if mt is not None else list(self.free)
        return sum(n << o for t in types for o, n in enumerate(self.free[t]))

    def nr_free(self) -> list[int]:
        """Blocks per order over all types: the zone's /proc/buddyinfo line."""
        rows = list(self.free.values())
        return [sum(r[o] for r in rows) for o in range(len(rows[0]))] if rows else []


@dataclass
class PagetypeSection:
    """One node's part of the file (multi-node machines repeat the whole layout)."""

    pageblock_order: int
    pages_per_block: int
    nr_orders: int
    types: tuple[str, ...]
    zones: list[PagetypeZone] = field(default_factory=list)
    has_mixed: bool = False


@dataclass
class PageTypeInfo:
    """A whole /proc/pagetypeinfo: one :class:`PagetypeSection` per node with memory."""

    sections: list[PagetypeSection]

    @property
    def pageblock_order(self) -> int:
        return self.sections[0].pageblock_order

    @property
    def pages_per_block(self) -> int:
        return self.sections[0].pages_per_block

    @property
    def types(self) -> tuple[str, ...]:
        return self.sections[0].types

    @property
    def zones(self) -> list[PagetypeZone]:
        return [z for s in self.sections for z in s.zones]

    def zone(self, name: str, node: int = 0) -> PagetypeZone:
        for z in self.zones:
            if z.zone == name and z.node == node:
                return z
        raise ParseError(f"pagetypeinfo has no zone {name!r} on node {node}")

    def render(self) -> str:
        return render_pagetypeinfo(self)


def _counts(text: str, n: int, what: str) -> tuple[list[int], list[bool]]:
    words = text.split()
    if len(words) != n:
        raise ParseError(f"pagetypeinfo: {what}: expected {n} numbers, got {len(words)}")
    counts, over = [], []
    for w in words:
        flag = w.startswith(">")
        w = w[1:] if flag else w
        if not w.isdigit():
            raise ParseError(f"pagetypeinfo: {what}: {w!r} is not a count")
        counts.append(int(w))
        over.append(flag)
    return counts, over


def parse_pagetypeinfo(text: str) -> PageTypeInfo:
    """Read /proc/pagetypeinfo text (any number of node sections). Malformed text raises
    :class:`~kmmlib.errors.ParseError` naming the line."""
    sections: list[PagetypeSection] = []
    sec: PagetypeSection | None = None
    table = None                         # "free", "blocks", "mixed"
    pending_order: int | None = None
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}"
        if not line.strip():
            continue
        if line.startswith("Page block order:"):
            try:
                pending_order = int(line.split(":", 1)[1])
            except ValueError:
                raise ParseError(f"pagetypeinfo {where}: bad pageblock order {line!r}") from None
            sec, table = None, None
            continue
        if line.startswith("Pages per block:"):
            if pending_order is None:
                raise ParseError(f"pagetypeinfo {where}: 'Pages per block' before "
                                 "'Page block order'")
            try:
                per = int(line.split(":", 1)[1])
            except ValueError:
                raise ParseError(f"pagetypeinfo {where}: bad pages per block {line!r}") from None
            sec = PagetypeSection(pending_order, per, 0, ())
            sections.append(sec)
            continue
        if sec is None:
            raise ParseError(f"pagetypeinfo {where}: expected 'Page block order: N' first, got "
                             f"{line!r}")
        if line.startswith(FREE_HEADER):
            orders = line[len(FREE_HEADER):].split()
            if not orders or orders != [str(i) for i in range(len(orders))]:
                raise ParseError(f"pagetypeinfo {where}: the order header should count 0, 1, …")
            sec.nr_orders = len(orders)
            table = "free"
            continue
        if line.startswith(BLOCKS_HEADER) or line.startswith(MIXED_HEADER):
            head = BLOCKS_HEADER if line.startswith(BLOCKS_HEADER) else MIXED_HEADER
            names = tuple(line[len(head):].split())
            if sec.types and names != sec.types:
                raise ParseError(f"pagetypeinfo {where}: type names {names} differ from "
                                 f"{sec.types}")
            sec.types = names
            table = "blocks" if head == BLOCKS_HEADER else "mixed"
            sec.has_mixed |= table == "mixed"
            continue
        if table == "free":
            m = _FREE_ROW.match(line)
            if not m:
                raise ParseError(f"pagetypeinfo {where}: expected 'Node N, zone NAME, type "
                                 f"TYPE counts…', got {line!r}")
            node, zname, mt = int(m.group(1)), m.group(2), m.group(3)
            counts, over = _counts(m.group(4), sec.nr_orders, where)
            if not sec.zones or (sec.zones[-1].node, sec.zones[-1].zone) != (node, zname):
                sec.zones.append(PagetypeZone(node, zname))
            z = sec.zones[-1]
            if mt in z.free:
                raise ParseError(f"pagetypeinfo {where}: type {mt} twice for zone {zname}")
            z.free[mt] = counts
            z.overflow[mt] = over
            continue
        if table in ("blocks", "mixed"):
            m = _COUNT_ROW.match(line)
            if not m:
                raise ParseError(f"pagetypeinfo {where}: expected 'Node N, zone NAME counts…', "
                                 f"got {line!r}")
            node, zname = int(m.group(1)), m.group(2)
            counts, over = _counts(m.group(3), len(sec.types), where)
            if any(over):
                raise ParseError(f"pagetypeinfo {where}: '>' in a pageblock count")
            z = next((z for z in sec.zones if (z.node, z.zone) == (node, zname)), None)
            if z is None:
                z = PagetypeZone(node, zname)
                sec.zones.append(z)
            row = dict(zip(sec.types, counts, strict=True))
            if table == "blocks":
                z.blocks = row
            else:
                z.mixed = row
            continue
        raise ParseError(f"pagetypeinfo {where}: unexpected line {line!r}")
    if not sections:
        raise ParseError("pagetypeinfo: no 'Page block order' line; is this /proc/pagetypeinfo?")
    for sec in sections:
        if not sec.nr_orders:
            raise ParseError("pagetypeinfo: no free-pages table")
        for z in sec.zones:
            if sec.types and z.free and tuple(z.free) != sec.types:
                raise ParseError(f"pagetypeinfo: zone {z.zone} lists types {tuple(z.free)}, "
                                 f"the block table {sec.types}")
    return PageTypeInfo(sections)


def _render_section(sec: PagetypeSection) -> str:
    out = [f"Page block order: {sec.pageblock_order}\n",
           f"Pages per block:  {sec.pages_per_block}\n", "\n",
           f"{FREE_HEADER:<43} " + "".join(f"{o:6d} " for o in range(sec.nr_orders)) + "\n"]
    for z in sec.zones:
        for mt, counts in z.free.items():
            over = z.overflow.get(mt) or [False] * len(counts)
            out.append(f"Node {z.node:4d}, zone {z.zone:>8}, type {mt:>12} "
                       + "".join(f"{'>' if o else ''}{n:6d} "
                                 for n, o in zip(counts, over, strict=True)) + "\n")
    tables = [(BLOCKS_HEADER, "blocks")] + ([(MIXED_HEADER, "mixed")] if sec.has_mixed else [])
    for head, attr in tables:
        out.append(f"\n{head:<23}" + "".join(f"{t:>12} " for t in sec.types) + "\n")
        for z in sec.zones:
            row = getattr(z, attr)
            if row is None:
                continue
            out.append(f"Node {z.node}, zone {z.zone:>8} "
                       + "".join(f"{row.get(t, 0):12d} " for t in sec.types) + "\n")
    return "".join(out)


def render_pagetypeinfo(info: PageTypeInfo) -> str:
    """The file's text, byte for byte as ``pagetypeinfo_show()`` prints it."""
    return "".join(_render_section(sec) for sec in info.sections)


def from_zones(zones: Sequence, *, page_owner: bool = False) -> PageTypeInfo:
    """A simulated node's /proc/pagetypeinfo from :class:`~kmmlib.mm.page_alloc.Zone` objects
    (one section per node, zones in the order given). ``page_owner=True`` adds the "Number of
    mixed blocks" table, as a CONFIG_PAGE_OWNER kernel booted with ``page_owner=on`` does."""
    from kmmlib.mm.fragmentation import mixed_pageblocks
    from kmmlib.mm.migratetype import migratetype_names

    if not zones:
        raise ParseError("pagetypeinfo: no zones")
    pb = {z.pageblock_order for z in zones}
    orders = {z.nr_orders for z in zones}
    if len(pb) != 1 or len(orders) != 1:
        raise ParseError("pagetypeinfo: the zones disagree on pageblock_order or MAX_PAGE_ORDER "
                         "(one kernel has one of each)")
    sections: dict[int, PagetypeSection] = {}
    for z in zones:
        sec = sections.setdefault(z.node, PagetypeSection(
            z.pageblock_order, z.pageblock_nr_pages, z.nr_orders, tuple(migratetype_names),
            has_mixed=page_owner))
        pz = PagetypeZone(z.node, z.name)
        for mt, counts in enumerate(z.nr_free_by_type()):
            name = migratetype_names[mt]
            pz.free[name] = [min(n, OVERFLOW) for n in counts]
            pz.overflow[name] = [n >= OVERFLOW for n in counts]
        blocks = [0] * len(migratetype_names)
        for pfn in range(z.zone_start_pfn, z.zone_end_pfn, z.pageblock_nr_pages):
            blocks[z.get_pageblock_migratetype(pfn)] += 1
        pz.blocks = dict(zip(migratetype_names, blocks, strict=True))
        if page_owner:
            pz.mixed = dict(zip(migratetype_names, mixed_pageblocks(z), strict=True))
        sec.zones.append(pz)
    return PageTypeInfo([sections[n] for n in sorted(sections)])


def read_pagetypeinfo(source) -> PageTypeInfo:
    """Parse ``pagetypeinfo`` from a :class:`~kmmlib.procfs.source.ProcSource` (the live file
    needs root; otherwise the bundled snapshot stands in, with a note)."""
    return parse_pagetypeinfo(source.read("pagetypeinfo"))


def explain(info: PageTypeInfo, zones: Iterable[str] | None = None) -> str:
    """What the file says, zone by zone, in words: free memory on each type's lists (and in
    which block sizes), and how the pageblocks are shared between the types."""
    lines = [f"pageblocks of {info.pages_per_block} pages (order {info.pageblock_order}, "
             f"{info.pages_per_block * 4 // 1024} MiB with 4 KiB pages)"]
    for z in info.zones:
        if zones is not None and z.zone not in zones:
            continue
        total_blocks = sum(z.blocks.values()) if z.blocks else 0
        lines.append(f"Node {z.node}, zone {z.zone}: {z.free_pages()} free pages "
                     f"({z.free_pages() * 4 // 1024} MiB), {total_blocks} pageblocks")
        for mt in z.free:
            pages = z.free_pages(mt)
            nb = z.blocks.get(mt, 0) if z.blocks else 0
            if not pages and not nb:
                continue
            big = max((o for o, n in enumerate(z.free[mt]) if n), default=-1)
            share = f"{100 * nb / total_blocks:5.1f} %" if total_blocks else "    -"
            lines.append(f"  {mt:<12} {nb:6} pageblocks ({share}); {pages:8} pages free on its "
                         f"lists" + (f", largest free block order {big}" if big >= 0 else ""))
        if z.mixed:
            lines.append("  mixed pageblocks: " + ", ".join(
                f"{t} {n}" for t, n in z.mixed.items() if n))
    return "\n".join(lines)


__all__ = ["PageTypeInfo", "PagetypeSection", "PagetypeZone", "explain", "from_zones",
           "parse_pagetypeinfo", "read_pagetypeinfo", "render_pagetypeinfo"]

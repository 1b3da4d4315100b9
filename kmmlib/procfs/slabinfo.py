"""/proc/slabinfo (version 2.1): one line per slab cache, and a ``slabtop``-like summary.

``slab_show()`` / ``cache_show()`` in mm/slab_common.c (Linux 6.18) print a two-line header and
then, for every cache on the ``slab_caches`` list (newest first: caches are added at its
head), ::

    seq_printf(m, "%-17s %6lu %6lu %6u %4u %4d", name, active_objs, num_objs, s->size,
               objects_per_slab, 1 << cache_order);
    seq_printf(m, " : tunables %4u %4u %4u", limit, batchcount, shared);
    seq_printf(m, " : slabdata %6lu %6lu %6lu", active_slabs, num_slabs, shared_avail);

A name longer than 17 characters, or a number wider than its field, pushes the rest of the line
to the right. Under SLUB (``get_slabinfo()`` in mm/slub.c) the three tunables and
``sharedavail`` are 0 — they were SLAB's per-cpu array sizes — and ``active_slabs`` equals
``num_slabs``. ``active_objs`` is ``num_objs`` minus the free objects SLUB counts on the
per-node partial lists only: free objects in the per-cpu slabs count as active.

The file is mode 0400 (root only) when CONFIG_SLUB_DEBUG is on, as it is in distribution
kernels; :class:`~kmmlib.procfs.source.ProcSource` falls back to the bundled snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kmmlib.errors import ParseError

HEADER = ("slabinfo - version: 2.1\n"
          "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
          " : tunables <limit> <batchcount> <sharedfactor>"
          " : slabdata <active_slabs> <num_slabs> <sharedavail>\n")
PAGE_SIZE = 4096


@dataclass(frozen=True)
class SlabinfoRow:
    """One cache's line of /proc/slabinfo, field by field (the kernel's names)."""

    name: str
    active_objs: int
    num_objs: int
    objsize: int
    objperslab: int
    pagesperslab: int
    limit: int = 0
    batchcount: int = 0
    sharedfactor: int = 0
    active_slabs: int = 0
    num_slabs: int = 0
    sharedavail: int = 0

    def line(self) -> str:
        """The line exactly as ``cache_show()`` prints it (with the newline)."""
        return (f"{self.name:<17} {self.active_objs:6d} {self.num_objs:6d} {self.objsize:6d} "
                f"{self.objperslab:4d} {self.pagesperslab:4d}"
                f" : tunables {self.limit:4d} {self.batchcount:4d} {self.sharedfactor:4d}"
                f" : slabdata {self.active_slabs:6d} {self.num_slabs:6d} "
                f"{self.sharedavail:6d}\n")

    @property
    def order(self) -> int:
        """The slab order (pagesperslab is 1 << order)."""
        return self.pagesperslab.bit_length() - 1

    @property
    def cache_bytes(self) -> int:
        """Memory the cache's slabs hold: num_slabs × pages per slab × PAGE_SIZE."""
        return self.num_slabs * self.pagesperslab * PAGE_SIZE


def format_slabinfo(rows: Iterable[SlabinfoRow]) -> str:
    """The whole file: the header, then one line per cache in the order given."""
    return HEADER + "".join(r.line() for r in rows)


def parse_slabinfo(text: str) -> list[SlabinfoRow]:
    """The rows of a slabinfo 2.1 file. The header must be there (another version, such as
    SLAB's 2.0 without the header, is refused with a clear message)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version:"):
        raise ParseError("slabinfo: the first line should be 'slabinfo - version: 2.1' "
                         f"(got {lines[0][:40] if lines else 'an empty file'!r})")
    version = lines[0].split(":", 1)[1].strip()
    if version != "2.1":
        raise ParseError(f"slabinfo: version {version} is not supported (2.1 is)")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        head = parts[0].split()
        try:
            if len(parts) != 3 or len(head) != 6:
                raise ValueError
            tun = parts[1].split()
            dat = parts[2].split()
            if tun[0] != "tunables" or dat[0] != "slabdata" or len(tun) != 4 or len(dat) != 4:
                raise ValueError
            nums = [int(x) for x in head[1:] + tun[1:] + dat[1:]]
        except (ValueError, IndexError):
            raise ParseError(f"slabinfo line {n}: expected 'name active num objsize objperslab "
                             f"pagesperslab : tunables l b s : slabdata a n s', got "
                             f"{line!r}") from None
        rows.append(SlabinfoRow(head[0], *nums))
    return rows


def _k(nbytes: float) -> str:
    return f"{nbytes / 1024:.2f}K"


def slabtop(rows: Iterable[SlabinfoRow], limit: int | None = 20, sort: str = "objs") -> str:
    """A summary in the style of procps-ng ``slabtop --once``: the totals, then the caches
    with the most objects (``sort``: ``objs``, as slabtop's default, ``cache`` for memory held,
    ``active`` or ``name``). The figures and column formats are slabtop's
    (``"%6u %6u %3u%% %7.2fK %6u %8u %9uK %-23s"``); trailing blanks are dropped."""
    rows = list(rows)
    if not rows:
        return "no slab caches"
    keys = {"cache": lambda r: (-r.cache_bytes, r.name), "objs": lambda r: (-r.num_objs, r.name),
            "active": lambda r: (-r.active_objs, r.name), "name": lambda r: r.name}
    if sort not in keys:
        raise ParseError(f"slabtop: sort by one of {', '.join(keys)}, not {sort!r}")
    objs = sum(r.num_objs for r in rows)
    active = sum(r.active_objs for r in rows)
    slabs = sum(r.num_slabs for r in rows)
    aslabs = sum(r.active_slabs for r in rows)
    used_caches = sum(1 for r in rows if r.active_objs)
    total_size = sum(r.num_objs * r.objsize for r in rows)
    active_size = sum(r.active_objs * r.objsize for r in rows)

    def pct(a: int, b: int) -> str:
        return f"{100 * a / b:.1f}%" if b else "0.0%"

    sizes = [r.objsize for r in rows]
    lines = [
        f" Active / Total Objects (% used)    : {active} / {objs} ({pct(active, objs)})",
        f" Active / Total Slabs (% used)      : {aslabs} / {slabs} ({pct(aslabs, slabs)})",
        f" Active / Total Caches (% used)     : {used_caches} / {len(rows)} "
        f"({pct(used_caches, len(rows))})",
        f" Active / Total Size (% used)       : {_k(active_size)} / {_k(total_size)} "
        f"({pct(active_size, total_size)})",
        f" Minimum / Average / Maximum Object : {_k(min(sizes))} / "
        f"{_k(total_size / objs if objs else 0)} / {_k(max(sizes))}",
        "",
        "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME",
    ]
    for r in sorted(rows, key=keys[sort])[:limit]:
        use = f"{100 * r.active_objs // r.num_objs}%" if r.num_objs else "0%"
        lines.append(f"{r.num_objs:6d} {r.active_objs:6d} {use:>4} {_k(r.objsize):>8} "
                     f"{r.num_slabs:6d} {r.objperslab:8d} {r.cache_bytes // 1024:9d}K "
                     f"{r.name}")
    return "\n".join(lines)


__all__ = ["HEADER", "SlabinfoRow", "format_slabinfo", "parse_slabinfo", "slabtop"]

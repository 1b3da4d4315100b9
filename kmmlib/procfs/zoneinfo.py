"""/proc/zoneinfo: one record per zone, as ``zoneinfo_show_print()`` in mm/vmstat.c prints it.

The kernel walks every zone of every online node (``walk_zones_in_node`` with
``assert_populated = false``), so empty zones such as Movable and Device appear too, but an
unpopulated zone stops after its ``protection: (…)`` line. For each zone it prints:

    Node 0, zone   Normal
      per-node stats                  <- only before the node's first populated zone
          nr_inactive_anon 432           (node_page_state(), one line per node_stat_item)
      pages free     41704            <- zone_page_state(NR_FREE_PAGES)
            boost    0
            min      2943             <- the zone's watermarks, _watermark[] + watermark_boost
            low      3678
            high     4413
            promo    5148             <- WMARK_PROMO, newer kernels only
            spanned  5505024
            present  5505024
            managed  163840
            cma      0
            protection: (0, 0, 0, 0, 0)   <- lowmem_reserve[], one entry per zone type
          nr_free_pages 41704             <- zone_stat_item counters, then the NUMA ones
      pagesets
        cpu: 0                        <- one struct per_cpu_pages per online CPU
                  count:    1484
                  high:     1839
                  batch:    31
      vm stats threshold: 16
      node_unreclaimable:  0
      start_pfn:           1048576

The parser reads lines by what they say, not by their indentation, so that older layouts parse
too (4.x printed the zone counters before ``protection`` and had ``scanned``,
``all_unreclaimable`` and ``inactive_ratio`` lines; ``promo`` came much later).
:func:`render_zoneinfo` prints parsed zones back in the 6.x layout, byte for byte for a 6.x
file (``kmm proc zoneinfo`` checks that on the bundled snapshot); an older file's records
come back in the new order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kmmlib.errors import ParseError

_ZONE_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)\s*$")
_PROTECTION = re.compile(r"^protection:\s*\(([-\d,\s]*)\)$")
_NAME_VALUE = re.compile(r"^([A-Za-z_][\w()]*):?\s+(-?\d+)$")
_CPU = re.compile(r"^cpu:\s*(\d+)$")

# Lines of the "pages free" block that have their own ZoneInfo field.
_FIELDS = {"min": "min", "low": "low", "high": "high", "promo": "promo",
           "spanned": "spanned", "present": "present", "managed": "managed",
           "start_pfn": "start_pfn"}
# Lines that belong to the per-CPU pageset being read (struct per_cpu_pages).
_PAGESET_KEYS = {"count", "high", "batch", "high_min", "high_max"}


@dataclass
class ZoneInfo:
    """One zone of /proc/zoneinfo (``struct zone`` as mm/vmstat.c shows it). Counts are pages."""

    node: int
    name: str
    pages_free: int = 0
    min: int = 0
    low: int = 0
    high: int = 0
    promo: int | None = None          # WMARK_PROMO; None on kernels that do not print it
    spanned: int = 0
    present: int = 0
    managed: int = 0
    protection: list[int] = field(default_factory=list)   # lowmem_reserve[]
    start_pfn: int | None = None      # not printed for unpopulated zones
    pagesets: list[dict] = field(default_factory=list)    # [{"cpu": 0, "count": …}, …]
    stats: dict[str, int] = field(default_factory=dict)   # nr_free_pages, boost, cma, numa_* …
    node_stats: dict[str, int] = field(default_factory=dict)  # "per-node stats", first zone

    @property
    def populated(self) -> bool:
        """The kernel's ``populated_zone()`` (include/linux/mmzone.h): ``present_pages != 0``.

        This is the test zoneinfo_show_print() uses to cut an empty zone short. A zone can be
        populated yet have few managed pages (memory the buddy allocator has not been given,
        as with deferred struct page init); see :attr:`managed_zone` for that test.
        """
        return self.present > 0

    @property
    def managed_zone(self) -> bool:
        """The kernel's ``managed_zone()``: the buddy allocator manages some of its pages."""
        return self.managed > 0

    def __str__(self) -> str:
        return f"Node {self.node}, zone {self.name:>8}"


def parse_zoneinfo(text: str) -> list[ZoneInfo]:
    """Every zone of a /proc/zoneinfo text, in file order, unpopulated ones too.

    Malformed text raises :class:`~kmmlib.errors.ParseError` naming the line.
    """
    zones: list[ZoneInfo] = []
    zone: ZoneInfo | None = None
    section = "zone"        # "node" inside "per-node stats", "pagesets" after "pagesets"
    saw_pages_free = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue

        def bad(why: str, n: int = n, raw: str = raw) -> ParseError:
            return ParseError(f"zoneinfo line {n}: {why}: {raw!r}")

        m = _ZONE_HEADER.match(line)
        if m:
            if zone is not None and not saw_pages_free:
                raise bad(f"zone {zone.name} ended before its 'pages free' line")
            zone = ZoneInfo(node=int(m.group(1)), name=m.group(2))
            zones.append(zone)
            section, saw_pages_free = "zone", False
            continue
        if zone is None:
            raise bad("expected 'Node N, zone NAME' first")

        if line == "per-node stats":
            if saw_pages_free:
                raise bad("'per-node stats' after the zone's 'pages free' line")
            section = "node"
            continue
        if line == "pagesets":
            section = "pagesets"
            continue
        if line.startswith("pages free"):
            value = line[len("pages free"):].strip()
            if not value.isdigit():
                raise bad("'pages free' needs a number")
            zone.pages_free, saw_pages_free, section = int(value), True, "zone"
            continue
        m = _PROTECTION.match(line)
        if m:
            try:
                zone.protection = [int(x) for x in m.group(1).split(",") if x.strip()]
            except ValueError:
                raise bad("protection: (…) holds a non-number") from None
            continue
        m = _CPU.match(line)
        if m:
            if section != "pagesets":
                raise bad("'cpu:' outside the 'pagesets' block")
            zone.pagesets.append({"cpu": int(m.group(1))})
            continue
        if line.startswith("vm stats threshold:"):
            value = line.split(":", 1)[1].strip()
            if not value.lstrip("-").isdigit() or not zone.pagesets:
                raise bad("'vm stats threshold' without a number or a cpu")
            zone.pagesets[-1]["vm_stats_threshold"] = int(value)
            continue

        m = _NAME_VALUE.match(line)
        if not m:
            raise bad("not a 'name value' line")
        name, value = m.group(1), int(m.group(2))
        if section == "node":
            zone.node_stats[name] = value
        elif section == "pagesets" and name in _PAGESET_KEYS:
            if not zone.pagesets or name in zone.pagesets[-1]:
                raise bad(f"'{name}:' outside a 'cpu:' pageset, or twice in one")
            zone.pagesets[-1][name] = value
        elif not saw_pages_free:
            raise bad("zone line before 'pages free'")
        elif name in _FIELDS:
            setattr(zone, _FIELDS[name], value)
        else:
            # Everything else: the zone_stat_item and NUMA counters, boost, cma, and the
            # trailer lines (node_unreclaimable, all_unreclaimable, inactive_ratio …).
            zone.stats[name] = value
    if zone is not None and not saw_pages_free:
        raise ParseError(f"zoneinfo: zone {zone.name} ended before its 'pages free' line")
    if not zones:
        raise ParseError("zoneinfo: no 'Node N, zone NAME' line")
    return zones


def zones_of_node(zones: list[ZoneInfo], node: int = 0) -> list[ZoneInfo]:
    """The zones of one node, in zone-type order (the order of ``node_zones[]``)."""
    return [z for z in zones if z.node == node]


# -- rendering: zoneinfo_show_print() ----------------------------------------------------------

# The lines of the "pages free" block after "pages free" itself, in the kernel's order, as
# (label, where the value lives): a ZoneInfo field, or a key of ZoneInfo.stats.
_WATERMARK_BLOCK = (("boost", "stats"), ("min", "field"), ("low", "field"), ("high", "field"),
                    ("promo", "field"), ("spanned", "field"), ("present", "field"),
                    ("managed", "field"), ("cma", "stats"))
# Lines printed after the pagesets, not zone counters.
_TRAILER = ("node_unreclaimable",)


def render_zone(z: ZoneInfo) -> str:
    """One zone's record exactly as ``zoneinfo_show_print()`` (mm/vmstat.c, 6.18) prints it:
    ``seq_printf(m, "\\n      %-12s %lu", name, value)`` for every counter, the watermark
    block with its labels padded to 8 columns, ``protection: (%ld, …)``, and for populated
    zones the counters, the per-cpu pagesets (``count:`` … padded to 10 columns) with each
    CPU's ``vm stats threshold``, and the ``node_unreclaimable`` / ``start_pfn`` trailer.
    Lines the parsed zone does not have (an older kernel's) are left out."""
    out = [f"Node {z.node}, zone {z.name:>8}"]
    if z.node_stats:
        out.append("  per-node stats")
        out += [f"      {k:<12} {v}" for k, v in z.node_stats.items()]
    out.append(f"  pages free     {z.pages_free}")
    for label, where in _WATERMARK_BLOCK:
        value = z.stats.get(label) if where == "stats" else getattr(z, label)
        if value is not None:
            out.append(f"        {label:<8} {value}")
    out.append("        protection: (" + ", ".join(str(v) for v in z.protection) + ")")
    if z.populated:
        skip = {label for label, where in _WATERMARK_BLOCK if where == "stats"}
        skip.update(_TRAILER)
        out += [f"      {k:<12} {v}" for k, v in z.stats.items() if k not in skip]
        out.append("  pagesets")
        for ps in z.pagesets:
            out.append(f"    cpu: {ps['cpu']}")
            out += [f"              {k + ':':<10}{v}" for k, v in ps.items()
                    if k not in ("cpu", "vm_stats_threshold")]
            if "vm_stats_threshold" in ps:
                out.append(f"  vm stats threshold: {ps['vm_stats_threshold']}")
        if "node_unreclaimable" in z.stats:
            out.append(f"  node_unreclaimable:  {z.stats['node_unreclaimable']}")
        if z.start_pfn is not None:
            out.append(f"  start_pfn:           {z.start_pfn}")
    return "\n".join(out) + "\n"


def render_zoneinfo(zones: list[ZoneInfo]) -> str:
    """The whole /proc/zoneinfo text for these zones (``kmm proc zoneinfo`` prints what it
    parsed this way, and it must come out byte for byte the same)."""
    return "".join(render_zone(z) for z in zones)

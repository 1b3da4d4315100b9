"""Zones: which ones a kernel has, where they lie, and the order an allocation tries them.

Physical memory is cut into zones because some hardware cannot reach all of it: ISA DMA sees
only the first 16 MiB (ZONE_DMA), 32-bit PCI devices the first 4 GiB (ZONE_DMA32), and a
32-bit kernel can map only ~896 MiB permanently (the rest is ZONE_HIGHMEM). ZONE_MOVABLE holds
only movable pages (so it can be hot-removed or compacted) and ZONE_DEVICE describes device
memory the page allocator never hands out.

This module is the static part, as the kernel sets it up at boot:

- :class:`ZoneConfig` — ``enum zone_type`` (include/linux/mmzone.h) for one kernel config:
  which zones exist and their indices. A zone that is not configured has no index at all
  (x86_64 has no ZONE_HIGHMEM), so indices differ between configs; always ask the config.
- :class:`ZoneDesc` — one zone's place and size: ``start_pfn``, ``spanned`` (the pfn range,
  holes included), ``present`` (RAM in it), ``managed`` (what memblock handed to the buddy
  allocator), as ``free_area_init()`` (mm/mm_init.c) computes them and /proc/zoneinfo prints.
- :func:`build_zonerefs_node` / :func:`for_each_zone_zonelist` — the zonelist fallback order.

The live zone with its free lists is :class:`kmmlib.mm.page_alloc.Zone`; the watermark
arithmetic that works on these sizes is :mod:`kmmlib.mm.watermark`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from kmmlib.errors import BadRequest, ParseError

# zone_names[] in mm/page_alloc.c, in enum zone_type order.
ZONE_NAMES = ("DMA", "DMA32", "Normal", "HighMem", "Movable", "Device")

# sysctl_lowmem_reserve_ratio[] defaults (mm/page_alloc.c); unlisted zones (Device) are 0.
DEFAULT_LOWMEM_RESERVE_RATIO = {"DMA": 256, "DMA32": 256, "Normal": 32, "HighMem": 0,
                                "Movable": 0, "Device": 0}


@dataclass(frozen=True)
class ZoneConfig:
    """``enum zone_type`` for one kernel configuration (include/linux/mmzone.h).

    ZONE_NORMAL and ZONE_MOVABLE always exist; the others depend on CONFIG_ZONE_DMA,
    CONFIG_ZONE_DMA32, CONFIG_HIGHMEM and CONFIG_ZONE_DEVICE. ``max_zone_pfn`` is the
    architecture's upper pfn limit of each zone below Normal (x86: ``MAX_DMA_PFN`` = 16 MiB,
    ``MAX_DMA32_PFN`` = 4 GiB, arch/x86/include/asm/dma.h), used by :func:`free_area_init`.
    """

    name: str
    zone_dma: bool = True
    zone_dma32: bool = True
    highmem: bool = False
    zone_device: bool = True
    max_zone_pfn: tuple[tuple[str, int], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The configured zones' names in enum order: index i is zone_type i."""
        present = {"DMA": self.zone_dma, "DMA32": self.zone_dma32, "Normal": True,
                   "HighMem": self.highmem, "Movable": True, "Device": self.zone_device}
        return tuple(n for n in ZONE_NAMES if present[n])

    @property
    def MAX_NR_ZONES(self) -> int:  # noqa: N802 - the kernel's name
        return len(self.names)

    def has(self, name: str) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        """``ZONE_<name>`` in this config; a zone the config lacks is an error, as it would
        not compile in the kernel."""
        try:
            return self.names.index(name)
        except ValueError:
            raise BadRequest(f"this kernel config ({self.name}) has no zone {name!r}; "
                             f"its zones are {', '.join(self.names)}") from None

    def is_highmem(self, idx: int) -> bool:
        """``is_highmem_idx()``: the zone is ZONE_HIGHMEM. (The kernel also counts ZONE_MOVABLE
        when its pages were taken from highmem; simplified: Movable is handled apart.)"""
        return self.names[idx] == "HighMem"

    def is_movable(self, idx: int) -> bool:
        return self.names[idx] == "Movable"

    def wmark_small_min(self) -> list[bool]:
        """Per zone: does ``__setup_per_zone_wmarks()`` give it the small fixed ``min`` and leave
        it out of lowmem? HighMem always; Movable since Linux 6.6 (the 2023 patch "fix
        min_free_kbytes calculation regarding ZONE_MOVABLE"; 6.1 still counted it as lowmem)."""
        return [n in ("HighMem", "Movable") for n in self.names]

    def default_lowmem_reserve_ratio(self) -> list[int]:
        """``sysctl_lowmem_reserve_ratio[]`` as the kernel initialises it for this config."""
        return [DEFAULT_LOWMEM_RESERVE_RATIO[n] for n in self.names]

    @classmethod
    def from_names(cls, names: Sequence[str], name: str = "from zoneinfo") -> ZoneConfig:
        """The config whose enum is exactly ``names`` (e.g. a node's zones in /proc/zoneinfo)."""
        names = tuple(names)
        cfg = cls(name, zone_dma="DMA" in names, zone_dma32="DMA32" in names,
                  highmem="HighMem" in names, zone_device="Device" in names)
        if cfg.names != names:
            raise ParseError(f"zones {', '.join(names)} are not a kernel's enum zone_type "
                             f"(expected them in the order {', '.join(ZONE_NAMES)}, "
                             "with Normal and Movable always present)")
        return cfg


_X86_DMA = ("DMA", 16 << 20 >> 12)          # MAX_DMA_PFN: ISA DMA, the first 16 MiB
_X86_DMA32 = ("DMA32", 1 << (32 - 12))      # MAX_DMA32_PFN: the first 4 GiB

CONFIGS: dict[str, ZoneConfig] = {c.name: c for c in (
    # A distro x86_64 kernel (the bundled snapshot's): DMA, DMA32, Normal, Movable, Device.
    ZoneConfig("x86_64", max_zone_pfn=(_X86_DMA, _X86_DMA32)),
    # 32-bit x86 with CONFIG_HIGHMEM: no DMA32; Normal ends at max_low_pfn (896 MiB by default,
    # the 3G/1G split's linear map), HighMem holds the rest.
    ZoneConfig("i386", zone_dma32=False, highmem=True, zone_device=False,
               max_zone_pfn=(_X86_DMA, ("Normal", 896 << 20 >> 12))),
    # arm64: ZONE_DMA below the firmware's DMA limit, ZONE_DMA32 below 4 GiB, no highmem.
    ZoneConfig("arm64", max_zone_pfn=(("DMA", 1 << (32 - 12)), _X86_DMA32)),
    # 32-bit ARM (multi_v7_defconfig-like, no CONFIG_ZONE_DMA): Normal is lowmem, HighMem the
    # rest (768 MiB of lowmem with the default vmalloc area; kmmlib.layout.arm32).
    ZoneConfig("arm", zone_dma=False, zone_dma32=False, highmem=True, zone_device=False),
)}


def zone_config(name: str | ZoneConfig) -> ZoneConfig:
    """A config by name (``x86_64``, ``i386``, ``arm64``), or the config itself."""
    if isinstance(name, ZoneConfig):
        return name
    if name not in CONFIGS:
        raise BadRequest(f"unknown zone config {name!r}; choose one of: {', '.join(CONFIGS)}")
    return CONFIGS[name]


@dataclass(frozen=True)
class ZoneDesc:
    """One zone's static description: the fields of ``struct zone`` that /proc/zoneinfo prints
    under ``spanned``/``present``/``managed`` and ``start_pfn``, plus its node and zone index.

    ``spanned`` = end_pfn - start_pfn (holes included); ``present`` = pages of RAM in that range;
    ``managed`` = present minus memblock reservations (kernel image, memmap, crash kernel …)
    and minus pages whose struct page is not initialised yet (deferred init). Watermarks are
    computed from ``managed``.
    """

    name: str
    idx: int
    start_pfn: int = 0
    spanned: int = 0
    present: int = 0
    managed: int = 0
    node: int = 0

    def __post_init__(self):
        for f in ("start_pfn", "spanned", "present", "managed"):
            if getattr(self, f) < 0:
                raise BadRequest(f"zone {self.name}: {f} must not be negative")
        if not self.managed <= self.present <= self.spanned:
            raise BadRequest(f"zone {self.name}: need managed ≤ present ≤ spanned, got "
                             f"{self.managed} ≤ {self.present} ≤ {self.spanned}")

    @property
    def end_pfn(self) -> int:
        """``zone_end_pfn()``: one past the last pfn."""
        return self.start_pfn + self.spanned

    @property
    def populated(self) -> bool:
        """``populated_zone()``: it has RAM (present pages)."""
        return self.present > 0

    @property
    def is_managed(self) -> bool:
        """``managed_zone()``: the buddy allocator has pages in it."""
        return self.managed > 0

    @classmethod
    def from_zoneinfo(cls, zi, idx: int) -> ZoneDesc:
        """From a parsed /proc/zoneinfo zone (:mod:`kmmlib.procfs.zoneinfo`)."""
        return cls(zi.name, idx, zi.start_pfn or 0, zi.spanned, zi.present, zi.managed, zi.node)


def node_zones(zones: Iterable, config: ZoneConfig | str) -> list[ZoneDesc]:
    """A full ``pgdat->node_zones[]`` for ``config``: the given zones (objects with ``name``
    and ``start_pfn``/``spanned``/``present``/``managed``, e.g. a machine preset's
    ZoneSpecs) in their enum slots, every other zone empty."""
    config = zone_config(config)
    out = [ZoneDesc(n, i) for i, n in enumerate(config.names)]
    for z in zones:
        i = config.index(z.name)
        present = getattr(z, "present_pages", None)
        present = z.present if present is None else present
        managed = getattr(z, "managed_pages", None)
        managed = z.managed if managed is None else managed
        out[i] = ZoneDesc(z.name, i, z.start_pfn, z.spanned, present, managed,
                          getattr(z, "node", 0))
    return out


def free_area_init(ranges: Sequence[tuple[int, int]], config: ZoneConfig | str = "x86_64",
                   *, node: int = 0, reserved: Sequence[int] | None = None) -> list[ZoneDesc]:
    """Zone extents from the RAM ranges ``[start_pfn, end_pfn)`` of one node, as
    ``free_area_init()`` → ``zone_spanned_pages_in_node()`` / ``zone_absent_pages_in_node()``
    (mm/mm_init.c) compute them: each zone runs from the previous zone's limit up to
    ``config.max_zone_pfn`` (Normal, or HighMem on 32-bit, takes the rest); ``spanned`` is the
    part of that range inside the node, ``present`` the RAM in it.

    ``reserved`` (pages per zone, in enum order) stands for memblock's reservations, which this
    function cannot know: managed = present - reserved. Simplified: no kernelcore=/movablecore=,
    so ZONE_MOVABLE (and Device) stay empty.
    """
    config = zone_config(config)
    ranges = sorted((int(s), int(e)) for s, e in ranges)
    if not ranges or any(s < 0 or e <= s for s, e in ranges):
        raise BadRequest("free_area_init needs RAM ranges [start_pfn, end_pfn) with start < end")
    for (_, e1), (s2, _) in zip(ranges, ranges[1:], strict=False):
        if s2 < e1:
            raise BadRequest("RAM ranges overlap")
    node_start, node_end = ranges[0][0], ranges[-1][1]
    limits = dict(config.max_zone_pfn)
    top = "HighMem" if config.highmem else "Normal"
    out: list[ZoneDesc] = []
    low = node_start          # arch_zone_lowest_possible_pfn[0]: the first pfn with RAM
    for i, name in enumerate(config.names):
        if name in ("Movable", "Device"):
            out.append(ZoneDesc(name, i, node=node))
            continue
        high = node_end if name == top else max(low, min(limits.get(name, node_end), node_end))
        start, end = min(max(node_start, low), high), max(min(node_end, high), low)
        present = sum(max(0, min(e, end) - max(s, start)) for s, e in ranges)
        spanned = end - start     # holes included: a zone may span pfns with no RAM
        res = reserved[i] if reserved is not None else 0
        if res > present:
            raise BadRequest(f"zone {name}: {res} reserved pages but only {present} present")
        out.append(ZoneDesc(name, i, start, spanned, present, present - res, node))
        low = high
    return out


def build_zonerefs_node(zones: Sequence[ZoneDesc]) -> list[ZoneDesc]:
    """One node's part of a zonelist (``build_zonerefs_node()``, mm/page_alloc.c): its
    populated zones from the highest zone index down to 0 — Movable, Normal, DMA32, DMA.
    An allocation tries them in this order, so the scarce low zones are used last."""
    return [z for z in sorted(zones, key=lambda z: z.idx, reverse=True) if z.populated]


def build_zonelists(nodes: Sequence[Sequence[ZoneDesc]], local: int = 0,
                    node_order: Sequence[int] | None = None) -> list[ZoneDesc]:
    """``build_zonelists()`` (mm/page_alloc.c), ZONELIST_FALLBACK for node ``local``: each node
    in ``node_order`` (default: ``local`` first, then the others by id), and within a node the
    :func:`build_zonerefs_node` order. Simplified: the kernel orders nodes by
    ``find_next_best_node()`` (distance, then load); give ``node_order`` to say it."""
    order = list(node_order) if node_order is not None else (
        [local] + [n for n in range(len(nodes)) if n != local])
    if sorted(order) != list(range(len(nodes))) or order[0] != local:
        raise BadRequest(f"node_order must list every node once, starting with {local}")
    return [z for n in order for z in build_zonerefs_node(nodes[n])]


def for_each_zone_zonelist(zonelist: Sequence[ZoneDesc], highest_zoneidx: int
                           ) -> Iterator[ZoneDesc]:
    """``for_each_zone_zonelist()``: the zones of ``zonelist`` an allocation whose
    ``gfp_zone()`` is ``highest_zoneidx`` may use (index ≤ highest_zoneidx), in order."""
    return (z for z in zonelist if z.idx <= highest_zoneidx)


def with_managed(zones: Sequence[ZoneDesc], managed: dict[str, int]) -> list[ZoneDesc]:
    """A copy of ``zones`` with some zones' managed pages changed (what-if experiments)."""
    return [replace(z, managed=managed[z.name]) if z.name in managed else z for z in zones]

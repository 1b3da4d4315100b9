"""A simulated machine: its RAM, its CPUs and its zones, from a preset.

A :class:`Machine` is the root of everything the simulator models (Machine → Node →
Zone[] → free_area, with mem_map beside). It is described by a :class:`Preset` — the
architecture, the RAM in bytes, the number of CPUs and the pfn ranges of the zones, as the
kernel's ``free_area_init()`` (mm/mm_init.c) would lay them out on that board — and it builds the
expensive parts (``mem_map``, the buddy allocator's zones) only when first asked, so describing a
24 GiB machine costs nothing.

Every state change on the machine reports to ``machine.events`` (:mod:`kmmlib.events`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kmmlib.errors import BadRequest
from kmmlib.events import EventLog
from kmmlib.units import GiB, MiB, format_size, parse_size


@dataclass(frozen=True)
class ZoneSpec:
    """One zone's extent, as /proc/zoneinfo prints it: ``start_pfn``, ``spanned`` pages
    (the pfn range, holes included), ``present`` (RAM in it) and ``managed`` (what the buddy
    allocator got after memblock's reservations). ``present``/``managed`` default to
    ``spanned``: a simulated zone has no holes or reservations unless the preset says so."""

    name: str
    start_pfn: int
    spanned: int
    present: int | None = None
    managed: int | None = None

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned

    @property
    def present_pages(self) -> int:
        return self.spanned if self.present is None else self.present

    @property
    def managed_pages(self) -> int:
        return self.present_pages if self.managed is None else self.managed


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    description: str
    ram_bytes: int
    nr_cpus: int
    zones: tuple[ZoneSpec, ...]
    page_size: int = 4096
    phys_offset: int = 0          # physical address of the first RAM byte (arm64: PHYS_OFFSET)
    pageblock_order: int = 9      # 2 MiB pageblocks with 4K pages (include/linux/pageblock-flags.h)
    pcp: bool = True              # per-cpu page lists: on in realistic presets, off for teaching
    zone_config: str = "x86_64"   # enum zone_type of the kernel config (kmmlib.mm.zone.CONFIGS)
    watermarks: bool = True       # computed as the kernel does; teaching zones have none
    min_free_kbytes: int | None = None  # None: calculate_min_free_kbytes() from lowmem

    @property
    def nr_pages(self) -> int:
        return self.ram_bytes // self.page_size


def _pfn(addr: int, page_size: int = 4096) -> int:
    return addr // page_size


# The x86_64 machine whose /proc is bundled (kmmlib/data/snapshot): 24 GiB, 2 CPUs, Linux 6.18.
# Zone extents are its /proc/zoneinfo's start_pfn/spanned/present/managed. ZONE_DMA is the
# first 16 MiB (the kernel's trim_bios_range() keeps pfn 0 for the BIOS, hence start_pfn 1),
# ZONE_DMA32 runs to 4 GiB, ZONE_NORMAL holds the rest; Normal's managed pages are few because
# this kernel (a Firecracker build booted with deferred_init=lazy, not a mainline option; see
# chapter 01) hands Normal's pages to the buddy allocator only as it needs them.
_SNAPSHOT = Preset(
    name="x86_64-snapshot",
    arch="x86_64",
    description="the bundled snapshot's machine: x86_64, 24 GiB, 2 CPUs, Linux 6.18",
    ram_bytes=(3998 + 782336 + 5505024) * 4096,
    nr_cpus=2,
    min_free_kbytes=67584,        # the snapshot's sysctl (raised by THP at boot)
    zones=(
        ZoneSpec("DMA", 1, 4095, present=3998, managed=3840),
        ZoneSpec("DMA32", 4096, 1044480, present=782336, managed=772915),
        ZoneSpec("Normal", 1048576, 5505024, present=5505024, managed=163840),
    ),
)

# The seed text's board: QEMU `virt` with 1 GiB of RAM at 0x4000_0000 (PHYS_OFFSET). On arm64
# ZONE_DMA covers RAM below the DMA limit the firmware describes (zone_dma_limit, 4 GiB on
# `virt`), so all of it is ZONE_DMA and DMA32/Normal are empty.
_ARM64_VIRT = Preset(
    name="arm64-virt-1g",
    arch="arm64",
    description="QEMU arm64 `virt` board, 1 GiB of RAM at 0x40000000, 4 CPUs",
    ram_bytes=1 * GiB,
    nr_cpus=4,
    phys_offset=0x4000_0000,
    zone_config="arm64",
    zones=(ZoneSpec("DMA", _pfn(0x4000_0000), _pfn(1 * GiB)),),
)

# A 32-bit ARM board with 1 GiB at 0x6000_0000 (Versatile Express): with the 3G/1G split and
# the default 240 MiB vmalloc area, the linear map ends at vmalloc_min = VMALLOC_END
# (0xff80_0000) - 240 MiB - VMALLOC_OFFSET (8 MiB) = 0xf000_0000 (arch/arm/mm/mmu.c), so lowmem
# is 768 MiB and the remaining 256 MiB are ZONE_HIGHMEM (kmmlib.layout.arm32 draws it).
_ARM32 = Preset(
    name="arm32-highmem-1g",
    arch="arm",
    description="32-bit ARM board (vexpress), 1 GiB at 0x60000000: 768 MiB lowmem + highmem",
    ram_bytes=1 * GiB,
    nr_cpus=2,
    phys_offset=0x6000_0000,
    zones=(
        ZoneSpec("Normal", _pfn(0x6000_0000), _pfn(768 * MiB)),
        ZoneSpec("HighMem", _pfn(0x6000_0000 + 768 * MiB), _pfn(256 * MiB)),
    ),
    zone_config="arm",
)

# Teaching scenarios: one small zone at pfn 0, every page free, no per-cpu lists, so each
# split and merge is visible. pageblock_order 3 keeps pageblocks small enough to see.
_TINY = Preset(
    name="tiny",
    arch="teaching",
    description="one 64-page zone at pfn 0, no per-cpu lists (for stepping by hand)",
    ram_bytes=64 * 4096,
    nr_cpus=1,
    zones=(ZoneSpec("Normal", 0, 64),),
    pageblock_order=3,
    pcp=False,
    watermarks=False,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (_SNAPSHOT, _ARM64_VIRT, _ARM32, _TINY)}


class Machine:
    """A simulated machine built from a preset. Parts are built when first used."""

    def __init__(self, preset: str | Preset = "tiny", **overrides):
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise BadRequest(
                    f"unknown machine preset {preset!r}; choose one of: {', '.join(PRESETS)}")
            preset = PRESETS[preset]
        if overrides:
            preset = replace(preset, **overrides)
        self.preset = preset
        self.events = EventLog()
        self._allocator = None

    @classmethod
    def one_zone(cls, pages: int | str, *, name: str = "Normal", start_pfn: int = 0,
                 pcp: bool = False, pageblock_order: int = 3) -> Machine:
        """A teaching machine with one zone of ``pages`` pages (an int, or a size like "16M")."""
        nr = parse_size(pages) // 4096 if isinstance(pages, str) else int(pages)
        if not 1 <= nr <= (1 << 26):
            raise BadRequest(f"a zone needs 1 to {1 << 26} pages (256 GiB), not {nr}")
        return cls(Preset(name=f"one-zone-{nr}", arch="teaching",
                          description=f"one {nr}-page zone at pfn {start_pfn}",
                          ram_bytes=nr * 4096, nr_cpus=1,
                          zones=(ZoneSpec(name, start_pfn, nr),), pcp=pcp,
                          pageblock_order=pageblock_order, watermarks=False))

    @staticmethod
    def presets() -> list[str]:
        return list(PRESETS)

    # -- the page allocator, built on first use -----------------------------------------
    @property
    def page_allocator(self):
        """The node's :class:`~kmmlib.mm.page_alloc.PageAllocator` over its zones, built as
        boot does (mm/mm_init.c, mm/memblock.c, mm/page_alloc.c):

        1. each zone's ``mem_map`` and pageblocks (all MOVABLE), with the pages a zone spans
           but does not manage (holes, memblock reservations) kept reserved — which pfns
           those are is not in /proc, so the simulator takes them from the zone's start;
        2. ``memblock_free_all()``: every managed page freed into the buddy lists;
        3. ``__setup_per_zone_wmarks()`` and ``setup_per_zone_lowmem_reserve()`` with the
           preset's ``min_free_kbytes`` (or ``calculate_min_free_kbytes()``), the default
           ``watermark_scale_factor`` and ``lowmem_reserve_ratio``;
        4. the per-cpu lists (``zone_pcp_init``) when the preset has them.
        """
        if self._allocator is None:
            self._allocator = self._build_allocator()
        return self._allocator

    @property
    def zones(self) -> list:
        """The populated zones (:class:`~kmmlib.mm.page_alloc.Zone`), lowest first."""
        return sorted(self.page_allocator.zonelist, key=lambda z: z.zone_idx)

    def zone(self, name: str):
        for z in self.zones:
            if z.name == name:
                return z
        raise BadRequest(f"{self.preset.name} has no populated zone {name!r}; it has "
                         f"{', '.join(z.name for z in self.zones)}")

    def alloc_pages(self, gfp: int | str, order: int = 0) -> int | None:
        """``alloc_pages(gfp, order)``: the first pfn of 2^order pages, or None (NULL)."""
        return self.page_allocator.alloc_pages(gfp, order)

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """``__free_pages(page, order)`` for the block that starts at ``pfn``."""
        self.page_allocator.free(pfn, order)

    def buddyinfo(self) -> str:
        """``/proc/buddyinfo`` of the simulated machine, in the kernel's format."""
        return "".join(z.buddyinfo_line() for z in self.zones)

    def _build_allocator(self):
        from kmmlib.mm import watermark as wm
        from kmmlib.mm.page_alloc import PageAllocator, Zone
        from kmmlib.mm.zone import node_zones, zone_config

        p = self.preset
        config = zone_config(p.zone_config)
        built = []
        for spec in p.zones:
            unmanaged = spec.spanned - spec.managed_pages
            reserved = [(spec.start_pfn, spec.start_pfn + unmanaged)] if unmanaged else []
            zone = Zone(spec.spanned, spec.start_pfn, name=spec.name,
                        zone_idx=config.index(spec.name), pageblock_order=p.pageblock_order,
                        reserved=reserved, events=self.events, boot=False)
            zone.memblock_free_all()
            built.append(zone)
        if p.watermarks:
            desc = node_zones(p.zones, config)
            managed = [d.managed for d in desc]
            small_min = config.wmark_small_min()
            lowmem_kb = sum(m for m, hi in zip(managed, small_min, strict=True) if not hi) \
                * (p.page_size // 1024)
            mfk = p.min_free_kbytes or wm.calculate_min_free_kbytes(lowmem_kb)
            marks = wm.setup_per_zone_wmarks(managed, small_min, mfk)
            reserve = wm.setup_per_zone_lowmem_reserve(managed,
                                                       config.default_lowmem_reserve_ratio())
            for zone in built:
                zone.set_watermarks(marks[zone.zone_idx])
                zone.lowmem_reserve = reserve[zone.zone_idx]
        if p.pcp:
            for zone in built:
                zone.setup_pcp(p.nr_cpus)
        return PageAllocator(built, zone_names=config.names)

    @property
    def nr_pages(self) -> int:
        return self.preset.nr_pages

    @property
    def zone_specs(self) -> tuple[ZoneSpec, ...]:
        return self.preset.zones

    def describe(self) -> str:
        """A few lines a learner can read: the preset, RAM, CPUs and each zone's pfn range."""
        p = self.preset
        lines = [f"{p.name}: {p.description}",
                 f"  arch {p.arch}, RAM {format_size(p.ram_bytes)} ({p.nr_pages} pages of "
                 f"{p.page_size} bytes), {p.nr_cpus} CPU{'s' if p.nr_cpus > 1 else ''}, "
                 f"per-cpu lists {'on' if p.pcp else 'off'}"]
        for z in p.zones:
            pfns = f"{z.start_pfn:#x}-{z.end_pfn - 1:#x}"
            lines.append(f"  zone {z.name:<7} pfn {pfns:<17} "
                         f"spanned {z.spanned:>8}  present {z.present_pages:>8}  "
                         f"managed {z.managed_pages:>8}")
        return "\n".join(lines)

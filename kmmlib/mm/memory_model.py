"""Memory models: where the struct pages live, and what ``pfn_to_page()`` computes.

``include/asm-generic/memory_model.h`` has three answers:

- **FLATMEM** — one array ``mem_map`` with a struct page for every pfn from ``ARCH_PFN_OFFSET``
  to ``max_mapnr``, holes included: ``pfn_to_page(pfn) = mem_map + (pfn - ARCH_PFN_OFFSET)``.
  Simple and fast, but every hole in the physical map costs struct pages too.
- **SPARSEMEM** (classic) — memory is cut into sections (128 MiB on x86_64,
  ``SECTION_SIZE_BITS`` 27); each present section has its own small ``mem_map``, found through
  ``mem_section[]``. ``section_mem_map`` is stored *pre-biased* by the section's first pfn, so
  ``pfn_to_page(pfn) = __section_mem_map_addr(__pfn_to_section(pfn)) + pfn``.
- **SPARSEMEM_VMEMMAP** (x86_64 and arm64 today) — one *virtual* array at ``vmemmap``, indexed
  by pfn with no offset: ``pfn_to_page(pfn) = vmemmap + pfn``. Only the parts that describe
  present sections are backed by memory (``vmemmap_populate()``, 2 MiB pages on x86_64), so
  holes cost nothing, and the arithmetic is as cheap as FLATMEM's.

Either way the kernel pays ``sizeof(struct page)`` = 64 bytes per 4 KiB page: 64/4096 =
1.5625% of RAM. On the bundled snapshot's machine (24 GiB, 192 present sections) that is
192 x 2 MiB = 384 MiB, which its ``/proc/vmstat`` reports as ``nr_memmap_boot_pages 98304``;
:func:`snapshot_vmemmap` recomputes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kmmlib.errors import BadRequest

STRUCT_PAGE_SIZE = 64


@dataclass(frozen=True)
class Arch:
    """The constants of one architecture's memory model (x86_64: ``asm/sparsemem.h``,
    ``asm/page_64_types.h``, ``asm/pgtable_64_types.h``; arm64: ``asm/sparsemem.h``)."""

    name: str
    page_shift: int = 12
    section_size_bits: int = 27
    max_physmem_bits: int = 46
    vmemmap_start: int = 0xFFFFEA0000000000      # x86_64 vmemmap_base without KASLR
    page_offset: int = 0xFFFF888000000000        # x86_64 direct map (page_offset_base)
    struct_page_size: int = STRUCT_PAGE_SIZE

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def pfn_section_shift(self) -> int:
        """``PFN_SECTION_SHIFT = SECTION_SIZE_BITS - PAGE_SHIFT``."""
        return self.section_size_bits - self.page_shift

    @property
    def pages_per_section(self) -> int:
        return 1 << self.pfn_section_shift

    @property
    def nr_mem_sections(self) -> int:
        """``NR_MEM_SECTIONS = 1 << (MAX_PHYSMEM_BITS - SECTION_SIZE_BITS)``."""
        return 1 << (self.max_physmem_bits - self.section_size_bits)


X86_64 = Arch("x86_64 (4-level paging)")
X86_64_LA57 = Arch("x86_64 (5-level paging)", max_physmem_bits=52,
                   vmemmap_start=0xFFD4000000000000, page_offset=0xFF11000000000000)
# arm64, VA_BITS=48, 6.12 layout (VMEMMAP_START = -1 GiB - VMEMMAP_SIZE). arm64's vmemmap is
# VMEMMAP_START - (memstart_addr >> PAGE_SHIFT) struct pages; here memstart_addr is taken as 0.
ARM64_4K = Arch("arm64 (4K pages, 48-bit VA)", max_physmem_bits=48,
                vmemmap_start=0xFFFFFDFFC0000000, page_offset=0xFFFF000000000000)
ARM64_64K = Arch("arm64 (64K pages, 48-bit VA)", page_shift=16, section_size_bits=29,
                 max_physmem_bits=48, vmemmap_start=0xFFFFFFDFC0000000,
                 page_offset=0xFFFF000000000000)
ARCHES = {"x86_64": X86_64, "x86_64-la57": X86_64_LA57, "arm64-4k": ARM64_4K,
          "arm64-64k": ARM64_64K}


def memmap_cost(ram_bytes: int, arch: Arch = X86_64) -> dict[str, float]:
    """What the struct pages of ``ram_bytes`` of RAM cost: bytes, pages, and percent of RAM
    (``nr_pages * sizeof(struct page)``; holes and section rounding ignored)."""
    if ram_bytes < 0:
        raise BadRequest("RAM size must be non-negative")
    pages = ram_bytes >> arch.page_shift
    cost = pages * arch.struct_page_size
    return {"ram_bytes": ram_bytes, "pages": pages, "memmap_bytes": cost,
            "memmap_pages": -(-cost // arch.page_size),
            "percent": 100.0 * cost / ram_bytes if ram_bytes else 0.0}


def _check_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out = sorted((int(s), int(e)) for s, e in ranges)
    if any(s < 0 or e <= s for s, e in out):
        raise BadRequest("memory ranges are [start_pfn, end_pfn) with 0 <= start < end")
    for (_, e1), (s2, _) in zip(out, out[1:], strict=False):
        if s2 < e1:
            raise BadRequest("memory ranges overlap")
    return out


class Flatmem:
    """FLATMEM: one ``mem_map`` array from ``ARCH_PFN_OFFSET`` to the highest pfn.

    ``mem_map_addr`` is where the array sits (the kernel allocates it from memblock at boot,
    ``alloc_node_mem_map()`` in ``mm/mm_init.c``)."""

    def __init__(self, ranges: Iterable[tuple[int, int]], arch: Arch = X86_64,
                 mem_map_addr: int | None = None):
        self.ranges = _check_ranges(ranges)
        if not self.ranges:
            raise BadRequest("FLATMEM needs at least one memory range")
        self.arch = arch
        self.arch_pfn_offset = self.ranges[0][0]                  # ARCH_PFN_OFFSET
        self.max_mapnr = self.ranges[-1][1] - self.arch_pfn_offset
        self.mem_map = arch.page_offset + 0x1000000 if mem_map_addr is None else mem_map_addr

    def pfn_valid(self, pfn: int) -> bool:
        """``pfn_valid()``: ``pfn - ARCH_PFN_OFFSET < max_mapnr`` (holes are "valid" too:
        they have struct pages, marked PG_reserved)."""
        return 0 <= pfn - self.arch_pfn_offset < self.max_mapnr

    def pfn_to_page(self, pfn: int) -> int:
        """``mem_map + (pfn - ARCH_PFN_OFFSET)``, as a byte address."""
        if not self.pfn_valid(pfn):
            end = self.arch_pfn_offset + self.max_mapnr
            raise BadRequest(f"pfn_to_page: pfn {pfn:#x} has no struct page (FLATMEM covers "
                             f"{self.arch_pfn_offset:#x}..{end:#x})")
        return self.mem_map + (pfn - self.arch_pfn_offset) * self.arch.struct_page_size

    def page_to_pfn(self, page: int) -> int:
        """``(page - mem_map) + ARCH_PFN_OFFSET``."""
        off, rem = divmod(page - self.mem_map, self.arch.struct_page_size)
        if rem or not 0 <= off < self.max_mapnr:
            raise BadRequest(f"page_to_pfn: {page:#x} is not a struct page in mem_map")
        return off + self.arch_pfn_offset

    @property
    def memmap_bytes(self) -> int:
        """Every pfn from the first to the last has a struct page, holes included."""
        return self.max_mapnr * self.arch.struct_page_size


class SparsememVmemmap:
    """SPARSEMEM_VMEMMAP: ``vmemmap + pfn``; memory backs only the present sections."""

    def __init__(self, ranges: Iterable[tuple[int, int]], arch: Arch = X86_64):
        self.ranges = _check_ranges(ranges)
        self.arch = arch
        self.vmemmap = arch.vmemmap_start
        shift = arch.pfn_section_shift
        sections: set[int] = set()
        for s, e in self.ranges:
            sections.update(range(s >> shift, ((e - 1) >> shift) + 1))
        if sections and max(sections) >= arch.nr_mem_sections:
            raise BadRequest(f"memory beyond MAX_PHYSMEM_BITS {arch.max_physmem_bits}")
        self.present_sections = sorted(sections)

    def pfn_to_section_nr(self, pfn: int) -> int:
        """``pfn_to_section_nr()``: ``pfn >> PFN_SECTION_SHIFT``."""
        return pfn >> self.arch.pfn_section_shift

    def pfn_valid(self, pfn: int) -> bool:
        """``pfn_valid()``: the pfn's section is present. (The kernel also checks a
        subsection bitmap at 2 MiB granularity; simplified to whole sections.)"""
        nr = self.pfn_to_section_nr(pfn)
        return pfn >= 0 and nr in set(self.present_sections)

    def pfn_to_page(self, pfn: int) -> int:
        """``vmemmap + pfn``, as a byte address: no lookup, no offset."""
        if pfn < 0 or pfn >> (self.arch.max_physmem_bits - self.arch.page_shift):
            raise BadRequest(f"pfn_to_page: pfn {pfn:#x} is beyond MAX_PHYSMEM_BITS")
        return self.vmemmap + pfn * self.arch.struct_page_size

    def page_to_pfn(self, page: int) -> int:
        """``page - vmemmap``."""
        off, rem = divmod(page - self.vmemmap, self.arch.struct_page_size)
        if rem or off < 0:
            raise BadRequest(f"page_to_pfn: {page:#x} is not a struct page in vmemmap")
        return off

    @property
    def memmap_bytes(self) -> int:
        """``sparse_init()`` backs each present section's part of vmemmap:
        PAGES_PER_SECTION x sizeof(struct page) per section (2 MiB on x86_64)."""
        return (len(self.present_sections) * self.arch.pages_per_section
                * self.arch.struct_page_size)

    @property
    def memmap_pages(self) -> int:
        """What ``/proc/vmstat`` calls ``nr_memmap_boot_pages`` (6.11+)."""
        return self.memmap_bytes // self.arch.page_size

    @property
    def vmemmap_size(self) -> int:
        """Virtual size reserved for the whole array: one struct page per possible pfn."""
        return (1 << (self.arch.max_physmem_bits - self.arch.page_shift)) \
            * self.arch.struct_page_size


class Sparsemem:
    """Classic SPARSEMEM: ``mem_section[nr].section_mem_map``, pre-biased by the section's
    start pfn so that ``pfn_to_page(pfn) = section_mem_map + pfn`` (``sparse_encode_mem_map``
    in ``mm/sparse.c``). Each present section's mem_map is placed one after the other."""

    def __init__(self, ranges: Iterable[tuple[int, int]], arch: Arch = X86_64,
                 first_map_addr: int | None = None):
        self.arch = arch
        vm = SparsememVmemmap(ranges, arch)
        self.present_sections = vm.present_sections
        addr = arch.page_offset + 0x1000000 if first_map_addr is None else first_map_addr
        per = arch.pages_per_section * arch.struct_page_size
        self.section_mem_map: dict[int, int] = {}
        for i, nr in enumerate(self.present_sections):
            real = addr + i * per
            start_pfn = nr << arch.pfn_section_shift
            self.section_mem_map[nr] = real - start_pfn * arch.struct_page_size   # biased

    def pfn_to_page(self, pfn: int) -> int:
        """``__section_mem_map_addr(__pfn_to_section(pfn)) + pfn``."""
        nr = pfn >> self.arch.pfn_section_shift
        if nr not in self.section_mem_map:
            raise BadRequest(f"pfn_to_page: section {nr} of pfn {pfn:#x} is not present")
        return self.section_mem_map[nr] + pfn * self.arch.struct_page_size

    @property
    def memmap_bytes(self) -> int:
        return len(self.present_sections) * self.arch.pages_per_section \
            * self.arch.struct_page_size


def compare_models(ranges: Iterable[tuple[int, int]], arch: Arch = X86_64) -> dict[str, int]:
    """struct page memory of the same RAM under FLATMEM and SPARSEMEM_VMEMMAP, in bytes."""
    ranges = _check_ranges(ranges)
    ram = sum(e - s for s, e in ranges) << arch.page_shift
    return {"ram_bytes": ram,
            "flatmem_bytes": Flatmem(ranges, arch).memmap_bytes,
            "vmemmap_bytes": SparsememVmemmap(ranges, arch).memmap_bytes}


GiB = 1 << 30


def pc_ranges(ram_bytes: int, hole_start: int = 3 * GiB, arch: Arch = X86_64
              ) -> list[tuple[int, int]]:
    """The pfn ranges of a PC-like physical map with ``ram_bytes`` of RAM: RAM up to the
    PCI hole below 4 GiB, the rest above 4 GiB (as firmware "remaps" it). A simplification
    of a real e820 map, which has more small holes (the snapshot's low 4 GiB has 3 GiB)."""
    if ram_bytes <= 0:
        raise BadRequest("RAM size must be positive")
    sh = arch.page_shift
    low = min(ram_bytes, hole_start)
    ranges = [(0, low >> sh)]
    if ram_bytes > hole_start:
        ranges.append(((4 * GiB) >> sh, (4 * GiB + ram_bytes - hole_start) >> sh))
    return ranges


def memmap_cost_table(sizes: Iterable[int], arch: Arch = X86_64) -> list[dict[str, float]]:
    """For each RAM size, struct page memory under FLATMEM and SPARSEMEM_VMEMMAP on a
    PC-like map (:func:`pc_ranges`), in bytes and percent of RAM."""
    rows = []
    for ram in sizes:
        c = compare_models(pc_ranges(ram, arch=arch), arch)
        rows.append({**c, "flatmem_percent": 100 * c["flatmem_bytes"] / ram,
                     "vmemmap_percent": 100 * c["vmemmap_bytes"] / ram})
    return rows


def zone_ranges_from_zoneinfo(text: str) -> list[tuple[int, int]]:
    """Rough memory ranges from /proc/zoneinfo: each populated zone's first ``present`` pages,
    rounded up to whole sections' worth. (zoneinfo gives no hole map; e820 or
    /sys/firmware/memmap would; so a hole is assumed at each zone's end.)"""
    from kmmlib.procfs.zoneinfo import parse_zoneinfo

    return ranges_from_zones(parse_zoneinfo(text))


def ranges_from_zones(zones) -> list[tuple[int, int]]:
    """[start_pfn, start_pfn + present) for each populated zone: a ZoneInfo from
    /proc/zoneinfo or a machine preset's ZoneSpec (``present`` or ``present_pages``)."""
    out = []
    for z in zones:
        present = getattr(z, "present_pages", None)
        if present is None:
            present = z.present
        if present and z.start_pfn is not None:
            out.append((z.start_pfn, z.start_pfn + present))
    return out


def snapshot_vmemmap(source=None, arch: Arch = X86_64) -> dict[str, int]:
    """Recompute the memmap's size for a machine from its zoneinfo, beside the kernel's own
    ``nr_memmap_boot_pages`` from /proc/vmstat (None when the kernel does not print it)."""
    from kmmlib.procfs.source import ProcSource

    src = source if source is not None else ProcSource()
    vm = SparsememVmemmap(zone_ranges_from_zoneinfo(src.read("zoneinfo")), arch)
    kernel = None
    for line in src.read("vmstat").splitlines():
        name, _, value = line.partition(" ")
        if name == "nr_memmap_boot_pages":
            kernel = int(value)
    return {"present_sections": len(vm.present_sections), "computed_pages": vm.memmap_pages,
            "kernel_pages": kernel}

"""What every architecture's layout is made of: regions of a virtual address space, and tables.

A :class:`Layout` is the list of :class:`Region` s that tile an address space ``[0, 2**bits)``
(the *main* regions, which never overlap), plus *overlays* that sit on top of them and are drawn
in brackets the way ``Documentation/arch/arm64/memory.rst`` draws the KASAN shadow: the shadow
only exists with ``CONFIG_KASAN``, the part of the linear map that RAM actually fills, the part of
vmemmap that is backed. ``symbols`` holds the kernel's own macros (``PAGE_OFFSET``,
``VMALLOC_START`` ...) as the arch module computed them, so a learner can check one against the
header it comes from.

Addresses are Python ints, ``end`` is exclusive everywhere (the kernel's tables print the last
byte, ``end - 1``); JSON output uses the same convention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kmmlib.errors import BadRequest

SZ_4K, SZ_64K = 1 << 12, 1 << 16
SZ_1M, SZ_2M, SZ_8M, SZ_16M, SZ_32M = 1 << 20, 2 << 20, 8 << 20, 16 << 20, 32 << 20
SZ_128M, SZ_256M, SZ_1G, SZ_2G = 128 << 20, 256 << 20, 1 << 30, 2 << 30
KiB, MiB, GiB, TiB, PiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50
U64 = 1 << 64


def neg(x: int, bits: int = 64) -> int:
    """``-(x)`` as the kernel's unsigned long computes it: ``-(UL(1) << 48)`` is
    0xffff000000000000."""
    return ((1 << bits) - x) % (1 << bits)


def parse_kernel(text: str | tuple[int, int] | None, default: tuple[int, int]) -> tuple[int, int]:
    """``"6.8"``, ``"6.8.12"``, ``"v5.4"`` or ``(6, 8)`` → ``(6, 8)``; None → ``default``."""
    if text is None:
        return default
    if isinstance(text, tuple):
        return (int(text[0]), int(text[1]))
    m = re.fullmatch(r"\s*v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+~].*)?\s*", str(text))
    if not m:
        raise BadRequest(f"cannot read kernel version {text!r} (examples: 6.8, 5.4, 4.14)")
    return (int(m.group(1)), int(m.group(2)))


def fmt_kernel(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def parse_page_size(text: str | int) -> int:
    """``"4K"``, ``"16k"``, ``"64K"`` or 4096/16384/65536 → bytes."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([kK](?:i?B)?)?\s*", str(text))
        if not m:
            raise BadRequest(f"cannot read page size {text!r} (4K, 16K or 64K)")
        value = int(m.group(1)) * (1024 if m.group(2) else 1)
    if value not in (4096, 16384, 65536):
        raise BadRequest(f"page size must be 4K, 16K or 64K, not {text!r}")
    return value


@dataclass(frozen=True)
class Region:
    """``[start, end)`` of a virtual address space, named as the kernel's documentation names it.

    ``kind`` groups regions for pictures and exercises: user, hole, guard, linear, kasan, bpf,
    modules, vmalloc, fixmap, pci_io, vmemmap, kernel, ldt, cpu_entry, espfix, efi, vsyscall,
    vector, pkmap, dtb, ram, vmemmap_used. ``overlay`` regions lie on top of main regions;
    ``doc`` is False for the pieces a documentation table leaves out (the non-canonical hole of
    arm64) though they are needed to tile the address space.
    """

    start: int
    end: int
    name: str
    kind: str
    overlay: bool = False
    doc: bool = True
    note: str = ""

    def __post_init__(self):
        if self.end <= self.start:
            raise BadRequest(f"region {self.name!r}: end {self.end:#x} <= start {self.start:#x}")

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def last(self) -> int:
        """The last byte, as the kernel's tables print the end."""
        return self.end - 1

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def as_dict(self) -> dict:
        d = {"start": self.start, "end": self.end, "name": self.name, "kind": self.kind}
        if self.overlay:
            d["overlay"] = True
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class Layout:
    """One kernel virtual address layout: arch, configuration, regions, and the macros behind it.

    ``doc_formatter`` renders the table the way the architecture's documentation prints it
    (set by the arch module); :meth:`table` is a plain table that works for all.
    """

    arch: str
    title: str
    regions: list[Region]
    symbols: dict[str, int]
    bits: int = 64
    kernel: str | None = None
    era: str | None = None
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    doc_formatter: Callable[[Layout], str] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.regions = sorted(self.regions, key=lambda r: (r.overlay, r.start, -r.end))
        main = self.main_regions
        pos = 0
        for r in main:
            if r.start != pos:
                kind = "overlaps" if r.start < pos else "leaves a gap before"
                raise BadRequest(f"layout {self.title}: {r.name!r} at {r.start:#x} {kind} "
                                 f"the previous region (which ends at {pos:#x})")
            pos = r.end
        if pos != 1 << self.bits:
            raise BadRequest(f"layout {self.title}: regions end at {pos:#x}, "
                             f"not at 2**{self.bits}")

    @property
    def main_regions(self) -> list[Region]:
        return [r for r in self.regions if not r.overlay]

    @property
    def overlays(self) -> list[Region]:
        return [r for r in self.regions if r.overlay]

    def region_at(self, addr: int) -> Region:
        """The main region holding ``addr`` (every address has exactly one)."""
        if not 0 <= addr < 1 << self.bits:
            raise BadRequest(f"{addr:#x} is not a {self.bits}-bit address")
        lo, hi = 0, len(self.main_regions)
        main = self.main_regions
        while lo < hi:                      # binary search: regions are sorted and contiguous
            mid = (lo + hi) // 2
            if addr < main[mid].start:
                hi = mid
            elif addr >= main[mid].end:
                lo = mid + 1
            else:
                return main[mid]
        raise AssertionError("regions tile the address space")  # pragma: no cover

    def overlays_at(self, addr: int) -> list[Region]:
        return [r for r in self.overlays if addr in r]

    def region(self, kind: str) -> Region:
        """The first region of ``kind`` (main regions first)."""
        for r in self.regions:
            if r.kind == kind:
                return r
        raise BadRequest(f"layout {self.title} has no {kind!r} region")

    # -- output ----------------------------------------------------------------------------
    def to_json(self) -> list[dict]:
        """The regions (main and overlays) as ``{"start", "end", "name", "kind"}``, ``end``
        exclusive, in address order."""
        return [r.as_dict() for r in sorted(self.regions, key=lambda r: (r.start, r.overlay))]

    def table(self, overlays: bool = True) -> str:
        """A plain table: start, end (last byte), size, name; overlays in brackets."""
        w = (self.bits + 3) // 4
        lines = [f"{'start':<{w + 2}}{'end':<{w + 2}}{'size':>9}  name"]
        rows = sorted(self.regions if overlays else self.main_regions,
                      key=lambda r: (r.start, r.overlay))
        for r in rows:
            s, e = f"{r.start:0{w}x}", f"{r.last:0{w}x}"
            if r.overlay:
                lines.append(f"[{s} {e}]{human_size(r.size, finer=True):>9}  [{r.name}]")
            else:
                lines.append(f" {s} {e} {human_size(r.size, finer=True):>9}  {r.name}")
        return "\n".join(lines)

    def doc_table(self) -> str:
        """The table in the style of the architecture's documentation."""
        return self.doc_formatter(self) if self.doc_formatter else self.table()


def human_size(n: int, finer: bool = False) -> str:
    """Bytes in the largest binary unit that is at least 1, rounded: 2GB, 124TB, ~4PB.
    A ``~`` marks sizes more than 1% away from the number printed (the convention of
    Documentation/arch/arm64/memory.rst since 5.11, whose tables print 3968TB as ~4PB).
    With ``finer`` (the plain tables), a size that whole units would round by more than that
    is given in the next unit down when it fits in four digits there, as x86_64's mm.rst
    writes 1520 MB rather than ~1GB."""
    units = (("EB", 1 << 60), ("PB", PiB), ("TB", TiB), ("GB", GiB), ("MB", MiB), ("KB", KiB))
    for i, (unit, size) in enumerate(units):
        if n >= size:
            value = n / size
            r = round(value)
            if abs(value - r) / value <= 0.01:
                return f"{r}{unit}"
            if finer and i + 1 < len(units):
                small, small_size = units[i + 1]
                finer = n / small_size
                if round(finer) < 10000:
                    approx = abs(finer - round(finer)) / finer > 0.01
                    return f"{'~' if approx else ''}{round(finer)}{small}"
            return f"~{r}{unit}"
    return f"{n}B"


def exact_or_floor_size(n: int) -> str:
    """The v5.4 memory.rst convention: exact in the largest unit that is at least 1 (2TB), or
    exact as at most four digits of the next unit down (4124KB, 3968GB, 1440TB); otherwise
    ``~`` and the whole units it fills, truncated (~93TB for 93.99 TB, ~3TB for 3.99 TB)."""
    units = (("PB", PiB), ("TB", TiB), ("GB", GiB), ("MB", MiB), ("KB", KiB), ("B", 1))
    for i, (unit, size) in enumerate(units):
        if n >= size:
            if n % size == 0:
                return f"{n // size}{unit}"
            if i + 1 < len(units):
                sub_unit, sub = units[i + 1]
                if n % sub == 0 and n // sub < 10000:
                    return f"{n // sub}{sub_unit}"
            return f"~{n // size}{unit}"
    return "0B"


def log_heights(layout: Layout, floor_bits: int = 20,
                hole_cap: float = 6.0) -> list[tuple[object, float, float]]:
    """(region, y, height) for the main regions, lowest address first, each region as tall as
    log2 of its size in units of 2**floor_bits (1 MiB): a 2 MB guard is 2 high, the 128 TB
    linear map 28 — "to scale" on a log axis of sizes. The non-canonical hole (16 EB) is cut
    to ``hole_cap`` and drawn hatched. :func:`kmmlib.viz.layout.plot_layout` and
    :func:`kmmlib.widgets.layout.layout_svg` draw it."""
    out = []
    y = 0.0
    for r in sorted(layout.main_regions, key=lambda r: r.start):
        h = max(math.log2(r.size) - floor_bits, 0) + 1
        if r.kind == "hole" and r.size >= 1 << 56:
            h = hole_cap
        out.append((r, y, h))
        y += h
    return out

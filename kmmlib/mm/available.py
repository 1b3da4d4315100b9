"""MemAvailable, recomputed term by term as the kernel's ``si_mem_available()`` does.

``si_mem_available()`` lives in mm/show_mem.c (mm/page_alloc.c before 6.5) and estimates how
much memory user space could get "without causing swapping or OOM". In pages:

    wmark_low   = sum of every zone's low watermark             (for_each_zone, empty ones too)
    available   = NR_FREE_PAGES - totalreserve_pages
    pagecache   = Active(file) + Inactive(file)
    available  += pagecache - min(pagecache / 2, wmark_low)
    reclaimable = SReclaimable + NR_KERNEL_MISC_RECLAIMABLE       (= KReclaimable)
    available  += reclaimable - min(reclaimable / 2, wmark_low)
    available   = max(available, 0)

``totalreserve_pages`` comes from ``calculate_totalreserve_pages()`` (mm/page_alloc.c): per
zone, the largest ``lowmem_reserve[]`` entry plus the high watermark, capped at the zone's
managed pages. Watermarks and ``protection: (…)`` (= lowmem_reserve) come from /proc/zoneinfo,
everything else from /proc/meminfo.

The free term is meminfo's MemFree, not the sum of zoneinfo's ``pages free``: on the
snapshot's machine (booted with ``deferred_init=lazy``) most of ZONE_NORMAL had not yet been
handed to the buddy allocator, so zoneinfo's free and managed pages leave out ~20 GiB that
this kernel already counts in MemTotal, MemFree and MemAvailable.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmmlib.errors import ParseError
from kmmlib.mm.watermark import calculate_totalreserve_pages
from kmmlib.procfs.zoneinfo import ZoneInfo


def si_mem_available(free: int, totalreserve: int, wmark_low: int, active_file: int,
                     inactive_file: int, slab_reclaimable: int,
                     kernel_misc_reclaimable: int = 0) -> int:
    """The kernel's arithmetic, in pages, with its integer divisions (mm/show_mem.c)."""
    available = free - totalreserve
    pagecache = active_file + inactive_file
    pagecache -= min(pagecache // 2, wmark_low)
    available += pagecache
    reclaimable = slab_reclaimable + kernel_misc_reclaimable
    reclaimable -= min(reclaimable // 2, wmark_low)
    available += reclaimable
    return max(available, 0)


@dataclass(frozen=True)
class MemAvailable:
    """Every term of ``si_mem_available()``, in pages, and the kernel's own figure beside it."""

    free: int                   # MemFree
    totalreserve: int           # totalreserve_pages
    wmark_low: int              # sum of low watermarks
    pagecache: int              # Active(file) + Inactive(file)
    pagecache_kept: int         # min(pagecache / 2, wmark_low): assumed to stay
    reclaimable: int            # KReclaimable = SReclaimable + misc
    reclaimable_kept: int       # min(reclaimable / 2, wmark_low)
    available: int              # the result
    kernel: int | None          # meminfo's MemAvailable, in pages (None if it has none)
    page_kb: int = 4

    @property
    def available_kb(self) -> int:
        return self.available * self.page_kb

    def terms(self) -> list[tuple[str, int, str]]:
        """``(name, pages, what it is)`` rows that add up to ``available`` (before the clamp)."""
        return [
            ("free", self.free, "MemFree: NR_FREE_PAGES"),
            ("- totalreserve", -self.totalreserve,
             "per zone max(protection) + high watermark, capped at managed"),
            ("+ pagecache", self.pagecache, "Active(file) + Inactive(file)"),
            ("- pagecache kept", -self.pagecache_kept,
             f"min(pagecache/2, wmark_low = {self.wmark_low})"),
            ("+ reclaimable", self.reclaimable, "KReclaimable: SReclaimable + misc"),
            ("- reclaimable kept", -self.reclaimable_kept,
             f"min(reclaimable/2, wmark_low = {self.wmark_low})"),
        ]

    def table(self) -> str:
        """The terms as a small table, in pages and kB, ending with the kernel's figure."""
        rows = [f"{'term':<20} {'pages':>10} {'kB':>12}  what"]
        for name, pages, what in self.terms():
            rows.append(f"{name:<20} {pages:>10} {pages * self.page_kb:>12}  {what}")
        rows.append(f"{'= MemAvailable':<20} {self.available:>10} {self.available_kb:>12}  "
                    "si_mem_available()")
        if self.kernel is not None:
            diff = self.available - self.kernel
            verdict = "equal" if diff == 0 else f"differs by {diff:+d} pages"
            rows.append(f"{'kernel says':<20} {self.kernel:>10} {self.kernel * self.page_kb:>12}"
                        f"  /proc/meminfo MemAvailable ({verdict})")
        return "\n".join(rows)

    def as_dict(self) -> dict:
        return {
            "available_kb": self.available_kb,
            "kernel_available_kb": None if self.kernel is None else self.kernel * self.page_kb,
            "page_kb": self.page_kb,
            "terms_pages": {"free": self.free, "totalreserve": self.totalreserve,
                            "wmark_low": self.wmark_low, "pagecache": self.pagecache,
                            "pagecache_kept": self.pagecache_kept,
                            "reclaimable": self.reclaimable,
                            "reclaimable_kept": self.reclaimable_kept},
            "available_pages": self.available,
        }


def mem_available(meminfo: dict[str, int], zones: list[ZoneInfo], page_kb: int = 4
                  ) -> MemAvailable:
    """Recompute MemAvailable from a parsed meminfo (kB) and zoneinfo.

    ``page_kb`` is the base page size in KiB (4 on x86_64; 16 or 64 on some arm64 kernels).
    """
    def pages(name: str) -> int:
        if name not in meminfo:
            raise ParseError(f"meminfo has no {name} line, which MemAvailable needs")
        return meminfo[name] // page_kb

    if not zones:
        raise ParseError("zoneinfo has no zones")
    wmark_low = sum(z.low for z in zones)
    totalreserve = calculate_totalreserve_pages(zones)
    pagecache = pages("Active(file)") + pages("Inactive(file)")
    slab = pages("SReclaimable")
    misc = max(0, meminfo.get("KReclaimable", meminfo["SReclaimable"]) // page_kb - slab)
    free = pages("MemFree")
    result = si_mem_available(free, totalreserve, wmark_low, pages("Active(file)"),
                              pages("Inactive(file)"), slab, misc)
    kernel = meminfo["MemAvailable"] // page_kb if "MemAvailable" in meminfo else None
    return MemAvailable(
        free=free, totalreserve=totalreserve, wmark_low=wmark_low, pagecache=pagecache,
        pagecache_kept=min(pagecache // 2, wmark_low), reclaimable=slab + misc,
        reclaimable_kept=min((slab + misc) // 2, wmark_low), available=result, kernel=kernel,
        page_kb=page_kb)

"""mem_map on a 16 GiB machine: how long it takes to build, and what it costs per page.

Targets (issue 4): build the struct pages of 16 GiB (4 Mi pages) in under 1 s, at no more
than the kernel's own 64 bytes per page (``sizeof(struct page)``), measured from the arrays'
real allocations plus every object header (``MemMap.nbytes``).
"""

from __future__ import annotations

from benchmarks.timing import best_of
from kmmlib.mm.mem_map import MemMap

RAM = 16 << 30
PAGES = RAM >> 12



def run() -> list[dict]:
    build = best_of(lambda: MemMap(PAGES))
    mm = MemMap(PAGES)
    per_page = mm.nbytes() / PAGES
    links = best_of(lambda: (mm.set_page_links(0, 4096, 0), mm.set_page_links(4096, PAGES, 2)))
    n = 200_000
    pfns = range(0, n)

    def get_put() -> None:
        for pfn in pfns:
            mm.get_page(pfn)
            mm.put_page(pfn)

    rate = 2 * n / best_of(get_put, runs=1)
    return [
        {"benchmark": "mem_map build, 16 GiB (4 Mi pages)", "value": round(build, 3),
         "unit": "s", "target": "< 1", "ok": build < 1},
        {"benchmark": "mem_map bytes per page, 16 GiB", "value": round(per_page, 3),
         "unit": "B/page", "target": "<= 64", "ok": per_page <= 64},
        {"benchmark": "set_page_links over 16 GiB", "value": round(links, 3), "unit": "s",
         "target": "< 1", "ok": links < 1},
        {"benchmark": "get_page/put_page", "value": round(rate), "unit": "ops/s",
         "target": ">= 300000", "ok": rate >= 300_000},
    ]

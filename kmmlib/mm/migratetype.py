"""Migrate types: which free list a block sits on, and what its pageblock holds.

Every pageblock (2^pageblock_order pages, 2 MiB on x86_64) carries a migrate type in the
zone's pageblock bitmap, and every free list is split by it: ``free_area[order].free_list[mt]``
(``enum migratetype``, include/linux/mmzone.h, Linux 6.18). Keeping movable and unmovable
pages in different pageblocks is what lets compaction build large blocks later (chapter 07).

============== ===== ===============================================================
name           value meaning
============== ===== ===============================================================
UNMOVABLE      0     kernel memory that can never move (slab, page tables …)
MOVABLE        1     user pages and page cache: can be migrated or reclaimed
RECLAIMABLE    2     kernel caches a shrinker can free (dentries, inodes)
HIGHATOMIC     3     a reserve for high-order GFP_ATOMIC allocations (= MIGRATE_PCPTYPES)
ISOLATE        4     being taken out of use (memory hot-remove, alloc_contig_range)
============== ===== ===============================================================

``MIGRATE_CMA`` sits between HIGHATOMIC and ISOLATE only with CONFIG_CMA; like the bundled
snapshot's kernel (its /proc/pagetypeinfo has no CMA column) this simulator is built without
it, so ISOLATE is 4 and ``MIGRATE_TYPES`` is 5. Names are those of ``migratetype_names[]``
(mm/page_alloc.c), which /proc/pagetypeinfo prints.
"""

from __future__ import annotations

from enum import IntEnum

from kmmlib.errors import BadRequest

MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3           # the number of types on the per-cpu lists
MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES
MIGRATE_ISOLATE = 4            # CONFIG_MEMORY_ISOLATION; 5 when CONFIG_CMA is set
MIGRATE_TYPES = 5

# migratetype_names[] (mm/page_alloc.c), as /proc/pagetypeinfo prints them.
migratetype_names = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
# The course's colour for each type (pictures and widgets share it; not the kernel's).
MIGRATETYPE_COLORS = ("#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#666666")

# fallbacks[] (mm/page_alloc.c, 6.18): the other types' lists an allocation may take from, in
# order, when its own are empty. Used by __rmqueue_claim()/__rmqueue_steal() (chapter 07);
# HIGHATOMIC, CMA and ISOLATE have no row: they never fall back.
fallbacks = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}


class MigrateType(IntEnum):
    """``enum migratetype`` with readable names; an int everywhere the kernel uses one."""

    UNMOVABLE = MIGRATE_UNMOVABLE
    MOVABLE = MIGRATE_MOVABLE
    RECLAIMABLE = MIGRATE_RECLAIMABLE
    HIGHATOMIC = MIGRATE_HIGHATOMIC
    ISOLATE = MIGRATE_ISOLATE

    @property
    def proc_name(self) -> str:
        """The name /proc/pagetypeinfo prints ("Movable")."""
        return migratetype_names[self]

    def __str__(self) -> str:
        return self.proc_name


def pageblock_order_for(page_shift: int = 12, max_order: int | None = None) -> int:
    """``pageblock_order`` (include/linux/pageblock-flags.h) of a kernel with transparent huge
    pages: ``min(HPAGE_PMD_ORDER, MAX_PAGE_ORDER)``, a PMD's worth of pages: 9 (2 MiB) with
    4 KiB pages, 11 (32 MiB) with 16 KiB, 13 (512 MiB) with 64 KiB, with arm64's default
    MAX_PAGE_ORDER for the page size (``ARCH_FORCE_MAX_ORDER``: 10, 11, 13) unless
    ``max_order`` is given. Simplified: 2025 kernels
    can cap it lower with CONFIG_PAGE_BLOCK_ORDER (not modelled; NOT VERIFIED for 6.18)."""
    pmd_order = page_shift - 3            # a page of 8-byte entries maps 2^(shift-3) pages
    if max_order is None:
        max_order = {12: 10, 14: 11, 16: 13}.get(page_shift, 10)
    return min(pmd_order, max_order)


def is_migrate_highatomic(mt: int) -> bool:
    """``is_migrate_highatomic()``."""
    return mt == MIGRATE_HIGHATOMIC


def migratetype_is_mergeable(mt: int) -> bool:
    """``migratetype_is_mergeable()`` (include/linux/mmzone.h): may a free block of this type
    merge with a buddy of another type across a pageblock boundary? Only the three ordinary
    types may; HIGHATOMIC, CMA and ISOLATE blocks keep to themselves."""
    return mt < MIGRATE_PCPTYPES


def is_migrate_movable(mt: int) -> bool:
    """``is_migrate_movable()``: MOVABLE (or CMA, which this build does not have)."""
    return mt == MIGRATE_MOVABLE


def parse_migratetype(text: str | int) -> int:
    """``"MOVABLE"``, ``"Movable"``, ``"MIGRATE_MOVABLE"``, ``"movable"`` or ``1`` → 1."""
    if isinstance(text, int) and not isinstance(text, bool):
        if 0 <= text < MIGRATE_TYPES:
            return int(text)
        raise BadRequest(f"migratetype {text} is outside 0..{MIGRATE_TYPES - 1}")
    word = str(text).strip()
    if word.isdigit():
        return parse_migratetype(int(word))
    key = word.upper().removeprefix("MIGRATE_")
    try:
        return int(MigrateType[key])
    except KeyError:
        names = ", ".join(m.name for m in MigrateType)
        raise BadRequest(f"unknown migratetype {text!r}; choose one of: {names}") from None

"""``mem_map``: one ``struct page`` for every page frame, kept as parallel arrays.

The kernel keeps a ``struct page`` (64 bytes on x86_64 and arm64) for every page frame of RAM
(``include/linux/mm_types.h``) in one big array: ``mem_map`` under FLATMEM, the virtual array at
``vmemmap`` under SPARSEMEM_VMEMMAP (:mod:`kmmlib.mm.memory_model`). ``pfn_to_page()`` is
pointer arithmetic on that array, and ``page_to_pfn()`` its inverse.

Here the same array is stored *struct-of-arrays*: one ``array.array`` per field, indexed by
``pfn - start_pfn``. A Python object per page would cost ~10x the kernel's 64 bytes and take
seconds to build for a 16 GiB machine; the arrays cost 56 bytes a page and build in
milliseconds. The buddy allocator reads and writes them directly (``mm.lru_next[i]``), which is
about 3x faster than indexing numpy arrays from Python; :meth:`MemMap.np` gives zero-copy numpy
views of the same memory for vectorised work and plots. :meth:`MemMap.page` returns a
:class:`Page`, a small read/write view with every field decoded, for learners.

Fields, as in ``struct page`` (6.x):

=============== ====== =============================================================
array           type   kernel field and meaning
=============== ====== =============================================================
flags           u64    ``page->flags``: PG_* bits at the bottom, zone/node at the top
refcount        i32    ``page->_refcount``: 0 on the free lists, 1 after allocation
mapcount        i32    ``page->_mapcount``: page-table mappings minus one (-1 = none)
page_type       u32    ``page->page_type``: PGTY_buddy etc. in the top byte, or UINT_MAX
private         u64    ``page->private``: the buddy order of a free block's head page
lru_next        i32    ``page->lru.next`` (``buddy_list``, ``pcp_list``) as a pfn, -1 = none
lru_prev        i32    ``page->lru.prev`` as a pfn, -1 = none
mapping         u64    ``page->mapping``: address_space, or anon_vma with bit 0 set
pgoff           u64    ``page->index``: offset in the file (or virtual page of anon memory)
compound_head   i32    ``page->compound_head`` of a tail page: the head pfn, -1 = not a tail
=============== ====== =============================================================

Simplifications, one line each:
- ``_mapcount`` and ``page_type`` share 4 bytes in the kernel; here they are two arrays, so a
  learner sees both (a buddy page's ``_mapcount`` would read 0xf0000000 in the kernel).
- ``compound_head`` overlays ``lru.next`` with bit 0 set in the kernel; here it has its own array
  (pfn links have no spare low bit).
- List links are pfns in 32-bit arrays, so pfns stop at 2**31 (8 TiB of 4 KiB pages).
- ``virtual`` is not stored: like x86_64 and arm64 (no ``WANT_PAGE_VIRTUAL``) it is computed,
  ``page_address() = PAGE_OFFSET + (pfn << PAGE_SHIFT)`` (``lowmem_page_address``).
- ``memcg_data`` and ``_last_cpupid`` are left out.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterator

from kmmlib.errors import BadPageState, BadRequest
from kmmlib.mm import page_flags as pf

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# x86_64's direct map with 4-level paging and no KASLR (arch/x86/include/asm/page_64_types.h).
PAGE_OFFSET_X86_64 = 0xFFFF888000000000
# x86_64's vmemmap_base without KASLR (arch/x86/include/asm/pgtable_64_types.h).
VMEMMAP_START_X86_64 = 0xFFFFEA0000000000
STRUCT_PAGE_SIZE = 64                      # sizeof(struct page) on x86_64 and arm64
LIST_POISON1 = 0xDEAD000000000100          # list_del() leaves these (include/linux/poison.h,
LIST_POISON2 = 0xDEAD000000000122          # POISON_POINTER_DELTA 0xdead000000000000 on x86_64)

UINT_MAX = 0xFFFFFFFF
NR_PAGE_ORDERS = 11                         # MAX_PAGE_ORDER 10 + 1 (include/linux/mmzone.h)
MAX_LINK_PFN = (1 << 31) - 1

# (attribute, typecode, value set by __init_single_page()) in struct page order.
FIELDS: tuple[tuple[str, str, int], ...] = (
    ("flags", "Q", 0),
    ("refcount", "i", 1),           # init_page_count()
    ("mapcount", "i", -1),          # atomic_set(&page->_mapcount, -1)
    ("page_type", "I", UINT_MAX),   # the same 4 bytes as _mapcount: "no type"
    ("private", "Q", 0),
    ("lru_next", "i", -1),          # INIT_LIST_HEAD(&page->lru): an empty list
    ("lru_prev", "i", -1),
    ("mapping", "Q", 0),
    ("pgoff", "Q", 0),             # page->index (a pgoff_t; "index" is MemMap.index())
    ("compound_head", "i", -1),
)


def _filled(typecode: str, value: int, n: int) -> array:
    """n copies of value. Repetition allocates exactly n items in C (frombytes/extend would
    over-allocate by 1/16, which would break the 64-bytes-a-page budget)."""
    return array(typecode, [value]) * n


class MemMap:
    """struct page for pfns [start_pfn, start_pfn + nr_pages) as parallel arrays.

    Models the kernel's ``mem_map``/``vmemmap`` array and ``memmap_init_range()`` /
    ``__init_single_page()`` (``mm/mm_init.c``): every page starts with ``_refcount`` 1,
    ``_mapcount`` -1, no flags, no type, empty list links, as it is at boot before
    ``memblock_free_all()`` hands the free ranges to the buddy allocator (whose
    ``__free_pages_core()`` sets the count to 0). ``set_page_links()`` writes the zone and node
    into the top bits of ``flags``, as ``__init_single_page()`` does.

    ``release(pfn, order)``, when set by the page allocator, is called by :meth:`put_page` when
    the last reference to a page (or compound page) is dropped, as ``__folio_put()`` frees it.
    """

    def __init__(self, nr_pages: int, start_pfn: int = 0, *,
                 layout: pf.FlagsLayout | None = None,
                 page_offset: int = PAGE_OFFSET_X86_64):
        if not isinstance(nr_pages, int) or nr_pages < 0:
            raise BadRequest(f"mem_map: nr_pages must be a non-negative integer, not {nr_pages!r}")
        if not isinstance(start_pfn, int) or start_pfn < 0:
            raise BadRequest(f"mem_map: start_pfn must be a non-negative integer, "
                             f"not {start_pfn!r}")
        if start_pfn + nr_pages - 1 > MAX_LINK_PFN:
            raise BadRequest(f"mem_map: pfns up to {start_pfn + nr_pages - 1:#x} do not fit the "
                             f"32-bit list links (max pfn {MAX_LINK_PFN:#x}, 8 TiB)")
        self.start_pfn = start_pfn
        self.nr_pages = nr_pages
        self.end_pfn = start_pfn + nr_pages
        self.layout = layout if layout is not None else pf.DEFAULT_LAYOUT
        self.page_offset = page_offset
        self.release: Callable[[int, int], None] | None = None
        for name, typecode, value in FIELDS:
            if name == "flags":
                # page_cpupid_reset_last(): LAST_CPUPID all ones when it lives in page->flags.
                value = self.layout.pack()
            setattr(self, name, _filled(typecode, value, nr_pages))

    # -- pfn <-> index -------------------------------------------------------------------------

    def index(self, pfn: int) -> int:
        """``pfn - start_pfn``: where pfn's struct page sits in the arrays (``pfn_to_page``)."""
        i = pfn - self.start_pfn
        if 0 <= i < self.nr_pages:
            return i
        raise BadPageState(f"BUG: Bad page state: pfn {pfn:#x} is outside this mem_map "
                           f"[{self.start_pfn:#x}, {self.end_pfn:#x})")

    def pfn_valid(self, pfn: int) -> bool:
        """``pfn_valid()`` (``include/linux/mmzone.h``): does pfn have a struct page here?"""
        return self.start_pfn <= pfn < self.end_pfn

    def page(self, pfn: int) -> Page:
        """``pfn_to_page(pfn)`` for learners: a read/write :class:`Page` view."""
        self.index(pfn)
        return Page(self, pfn)

    pfn_to_page = page

    @staticmethod
    def page_to_pfn(page: Page) -> int:
        """``page_to_pfn()``: the inverse of :meth:`pfn_to_page`."""
        return page.pfn

    def page_struct_address(self, pfn: int) -> int:
        """Where pfn's struct page would sit in x86_64's vmemmap: ``vmemmap + pfn`` in C,
        ``VMEMMAP_START + pfn * sizeof(struct page)`` in bytes (no KASLR)."""
        return VMEMMAP_START_X86_64 + pfn * STRUCT_PAGE_SIZE

    def page_address(self, pfn: int) -> int:
        """``page_address()`` -> ``lowmem_page_address()``: the page's address in the direct
        map, ``PAGE_OFFSET + (pfn << PAGE_SHIFT)``; this is what ``page->virtual`` would hold."""
        self.index(pfn)
        return self.page_offset + (pfn << PAGE_SHIFT)

    def virt_to_pfn(self, addr: int) -> int:
        """``virt_to_pfn()`` for a direct-map address (``__pa(addr) >> PAGE_SHIFT``)."""
        if addr < self.page_offset:
            raise BadRequest(f"virt_to_page: {addr:#x} is below PAGE_OFFSET "
                             f"{self.page_offset:#x}, not a direct-map address")
        pfn = (addr - self.page_offset) >> PAGE_SHIFT
        self.index(pfn)
        return pfn

    def __len__(self) -> int:
        return self.nr_pages

    def __iter__(self) -> Iterator[Page]:
        for pfn in range(self.start_pfn, self.end_pfn):
            yield Page(self, pfn)

    def __repr__(self) -> str:
        return (f"MemMap(pfns {self.start_pfn:#x}..{self.end_pfn - 1:#x}, "
                f"{self.nr_pages} pages, {self.bytes_per_page_stored()} bytes per page)")

    # -- memory cost ---------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes this mem_map really occupies: every array's buffer plus the objects' headers."""
        total = sys.getsizeof(self) + sys.getsizeof(self.__dict__)
        for name, _, _ in FIELDS:
            arr = getattr(self, name)
            total += sys.getsizeof(arr)  # header + allocated buffer (CPython counts both)
        return total

    @staticmethod
    def bytes_per_page_stored() -> int:
        """The per-page part of :meth:`nbytes`: the sum of the field sizes (56)."""
        return sum(array(t).itemsize for _, t, _ in FIELDS)

    # -- numpy views ---------------------------------------------------------------------------

    def np(self, field: str):
        """A zero-copy numpy view of one field's array (writes go through to the mem_map).

        Do not grow or shrink the arrays while a view is alive (they never are resized here).
        """
        import numpy as np

        if field not in {name for name, _, _ in FIELDS}:
            raise BadRequest(f"mem_map has no field {field!r}; fields: "
                             + ", ".join(name for name, _, _ in FIELDS))
        arr = getattr(self, field)
        dtype = {"Q": np.uint64, "q": np.int64, "i": np.int32, "I": np.uint32}[arr.typecode]
        return np.frombuffer(arr, dtype=dtype)

    # -- zone and node in page->flags ----------------------------------------------------------

    def set_page_links(self, start_pfn: int, end_pfn: int, zone: int, nid: int = 0) -> None:
        """``set_page_links()`` (``include/linux/mm.h``) for every pfn in [start_pfn, end_pfn):
        write the zone number and node id into the top bits of ``page->flags``."""
        lay = self.layout
        if not 0 <= zone <= lay.zones_mask:
            raise BadRequest(f"set_page_links: zone {zone} does not fit ZONES_WIDTH "
                             f"{lay.zones_width}")
        if not 0 <= nid <= lay.nodes_mask:
            raise BadRequest(f"set_page_links: node {nid} does not fit NODES_WIDTH "
                             f"{lay.nodes_width}")
        lo, hi = self.index(start_pfn), self.index(end_pfn - 1) + 1
        keep = ~((lay.zones_mask << lay.zones_pgshift) | (lay.nodes_mask << lay.nodes_pgshift))
        keep &= (1 << 64) - 1
        links = (zone << lay.zones_pgshift) | (nid << lay.nodes_pgshift)
        import numpy as np

        view = self.np("flags")[lo:hi]
        view &= np.uint64(keep)
        view |= np.uint64(links)

    def page_zonenum(self, pfn: int) -> int:
        """``page_zonenum()``: the zone number from the top bits of ``page->flags``."""
        lay = self.layout
        return (self.flags[self.index(pfn)] >> lay.zones_pgshift) & lay.zones_mask

    def page_to_nid(self, pfn: int) -> int:
        """``page_to_nid()``: the node id from ``page->flags`` (0 when NODES_WIDTH is 0)."""
        lay = self.layout
        return (self.flags[self.index(pfn)] >> lay.nodes_pgshift) & lay.nodes_mask

    # -- page flags ----------------------------------------------------------------------------

    def test_flag(self, pfn: int, bit: int) -> bool:
        """``test_bit(PG_x, &page->flags)``."""
        return bool(self.flags[self.index(pfn)] >> bit & 1)

    def set_flag(self, pfn: int, bit: int) -> None:
        """``__set_bit(PG_x, &page->flags)`` (``__SetPageX``)."""
        self.flags[self.index(pfn)] |= 1 << bit

    def clear_flag(self, pfn: int, bit: int) -> None:
        """``__clear_bit(PG_x, &page->flags)`` (``__ClearPageX``)."""
        i = self.index(pfn)
        self.flags[i] &= ~(1 << bit) & 0xFFFFFFFFFFFFFFFF

    # -- page_type: PageBuddy and friends ------------------------------------------------------

    def PageBuddy(self, pfn: int) -> bool:
        """``PageBuddy()``: is pfn the head of a free block on a buddy list? (page_type top
        byte is PGTY_buddy; ``include/linux/page-flags.h``, ``PAGE_TYPE_OPS(Buddy, buddy, …)``)."""
        return self.page_type[self.index(pfn)] >> 24 == pf.PGTY_buddy

    def SetPageBuddy(self, pfn: int) -> None:
        """``__SetPageBuddy()``: a page must have no type (page_type == UINT_MAX) to get one.
        (The kernel's name starts with ``__``; Python would mangle that inside a class.)"""
        i = self.index(pfn)
        if self.page_type[i] != UINT_MAX:
            raise BadPageState(f"BUG: Bad page state: pfn {pfn:#x} already has page_type "
                               f"{self.page_type[i]:#010x} "
                               f"({pf.page_type_name(self.page_type[i])})")
        self.page_type[i] = pf.PGTY_buddy << 24

    def ClearPageBuddy(self, pfn: int) -> None:
        """``__ClearPageBuddy()``: back to "no type" (UINT_MAX)."""
        i = self.index(pfn)
        if self.page_type[i] >> 24 != pf.PGTY_buddy:
            raise BadPageState(f"BUG: Bad page state: pfn {pfn:#x} is not PageBuddy "
                               f"(page_type {self.page_type[i]:#010x})")
        self.page_type[i] = UINT_MAX

    def set_buddy_order(self, pfn: int, order: int) -> None:
        """``set_buddy_order()`` (``mm/page_alloc.c``): ``set_page_private(page, order)`` then
        ``__SetPageBuddy(page)``."""
        self.private[self.index(pfn)] = order
        self.SetPageBuddy(pfn)

    def buddy_order(self, pfn: int) -> int:
        """``buddy_order()`` (``mm/internal.h``): ``page_private(page)`` of a PageBuddy page."""
        return self.private[self.index(pfn)]

    # -- _refcount and _mapcount ---------------------------------------------------------------

    def page_count(self, pfn: int) -> int:
        """``page_count()`` (``include/linux/mm.h``): the refcount of the page's folio (head)."""
        return self.refcount[self.index(self.compound_head_pfn(pfn))]

    def page_ref_count(self, pfn: int) -> int:
        """``page_ref_count()`` (``include/linux/page_ref.h``): this struct page's own count."""
        return self.refcount[self.index(pfn)]

    def set_page_count(self, pfn: int, v: int) -> None:
        """``set_page_count()``."""
        self.refcount[self.index(pfn)] = v

    def get_page(self, pfn: int) -> None:
        """``get_page()`` -> ``folio_get()``: one more reference, taken on the head page.

        Taking a reference on a free page is a bug the kernel catches with
        ``VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio))``."""
        head = self.index(self.compound_head_pfn(pfn))
        if self.refcount[head] <= 0:
            raise BadPageState(f"BUG: Bad page state: get_page() on pfn {pfn:#x} with "
                               f"refcount {self.refcount[head]} (a free page)")
        self.refcount[head] += 1

    def put_page(self, pfn: int) -> bool:
        """``put_page()`` -> ``folio_put()``: drop a reference; at zero the page is freed
        (``__folio_put()``), through :attr:`release` when the page allocator has set it.

        Returns True when this call dropped the last reference."""
        head_pfn = self.compound_head_pfn(pfn)
        head = self.index(head_pfn)
        if self.refcount[head] <= 0:
            raise BadPageState(f"BUG: Bad page state: put_page() on pfn {pfn:#x} with "
                               f"refcount {self.refcount[head]} (already free)")
        self.refcount[head] -= 1
        if self.refcount[head]:
            return False
        if self.release is not None:
            self.release(head_pfn, self.compound_order(head_pfn))
        return True

    def page_mapcount(self, pfn: int) -> int:
        """``page_mapcount()`` of a small page: ``_mapcount + 1`` (how many page tables map it).
        (6.x computes folio_mapcount() for large folios from other counters; simplified.)"""
        return self.mapcount[self.index(pfn)] + 1

    # -- compound pages ------------------------------------------------------------------------

    def prep_compound_page(self, pfn: int, order: int) -> None:
        """``prep_compound_page()`` (``mm/page_alloc.c``): make [pfn, pfn + 2**order) one
        compound page: PG_head on the head, ``compound_head`` on every tail, and the order in
        the low byte of the first tail's flags (``folio_set_order()``: ``folio->_flags_1``).
        Tails have ``_refcount`` 0 (the kernel's come so from the free lists); it is set here
        so that a mem_map that never went through the allocator agrees."""
        if order < 1:
            raise BadRequest(f"prep_compound_page: order must be >= 1, not {order}")
        i = self.index(pfn)
        self.index(pfn + (1 << order) - 1)
        if pfn & ((1 << order) - 1):
            raise BadRequest(f"prep_compound_page: pfn {pfn:#x} is not aligned to order {order}")
        self.flags[i] |= 1 << pf.PG_head
        ch, ref = self.compound_head, self.refcount
        for t in range(i + 1, i + (1 << order)):
            ch[t] = pfn
            ref[t] = 0          # the folio's count lives in the head; tails keep 0
        self.flags[i + 1] = (self.flags[i + 1] & ~0xFF) | order

    def destroy_compound_page(self, pfn: int) -> int:
        """Undo :meth:`prep_compound_page` as ``free_pages_prepare()`` /
        ``free_tail_page_prepare()`` do on free: clear every tail's ``compound_head``, the order
        byte, and PG_head. Returns the order it had."""
        order = self.compound_order(pfn)
        if order == 0:
            raise BadPageState(f"BUG: Bad page state: pfn {pfn:#x} is not a compound head")
        i = self.index(pfn)
        ch = self.compound_head
        for t in range(i + 1, i + (1 << order)):
            ch[t] = -1
        self.flags[i + 1] &= ~0xFF
        self.flags[i] &= ~(1 << pf.PG_head)
        return order

    def PageHead(self, pfn: int) -> bool:
        """``PageHead()``: PG_head is set."""
        return bool(self.flags[self.index(pfn)] >> pf.PG_head & 1)

    def PageTail(self, pfn: int) -> bool:
        """``PageTail()``: bit 0 of ``compound_head`` set (here: a head pfn is stored)."""
        return self.compound_head[self.index(pfn)] >= 0

    def PageCompound(self, pfn: int) -> bool:
        """``PageCompound()``: a head or a tail page."""
        return self.PageHead(pfn) or self.PageTail(pfn)

    def compound_head_pfn(self, pfn: int) -> int:
        """``compound_head()`` as a pfn: the head of a tail page, else pfn itself."""
        h = self.compound_head[self.index(pfn)]
        return pfn if h < 0 else h

    def compound_order(self, pfn: int) -> int:
        """``compound_order()``: 0 unless PG_head, else the first tail's ``_flags_1 & 0xff``."""
        i = self.index(pfn)
        if not self.flags[i] >> pf.PG_head & 1:
            return 0
        return self.flags[i + 1] & 0xFF


    def is_free_buddy_page(self, pfn: int) -> bool:
        """``is_free_buddy_page()`` (``mm/page_alloc.c``): is pfn inside a free block? Only
        a block's head is PageBuddy, so look for a head at each order below pfn."""
        i = self.index(pfn)
        for order in range(NR_PAGE_ORDERS):
            head = pfn & ~((1 << order) - 1)
            if head < self.start_pfn:
                break
            h = head - self.start_pfn
            if self.page_type[h] >> 24 == pf.PGTY_buddy and self.private[h] >= order:
                return True
        return bool(i < 0)

    def page_kind(self, pfn: int) -> str:
        """A one-word summary of what a page is used for, as /proc/kpageflags-based tools
        (``tools/mm/page-types``) classify pages: buddy, free, slab, table, reserved, head,
        tail, anon, file, or allocated."""
        i = self.index(pfn)
        pt = self.page_type[i] >> 24
        if pt == pf.PGTY_buddy:
            return "buddy"
        if pt in pf.PAGE_TYPES:
            return pf.PAGE_TYPES[pt]
        if self.refcount[i] == 0 and self.compound_head[i] < 0:
            return "free" if self.is_free_buddy_page(pfn) else "unused"
        if self.flags[i] >> pf.PG_reserved & 1:
            return "reserved"
        if self.compound_head[i] >= 0:
            return "tail"
        if self.mapping[i] & pf.FOLIO_MAPPING_ANON:
            return "anon"
        if self.mapping[i]:
            return "file"
        if self.flags[i] >> pf.PG_head & 1:
            return "head"
        return "allocated"

    def describe_text(self, pfn: int) -> str:
        """Every field of pfn's struct page, decoded, one per line: the text the page
        inspector widget shows (and a notebook can print and check)."""
        d = Page(self, pfn).describe()
        lay = self.layout
        dec = pf.decode_flags(d["flags"], lay)
        fields = ", ".join(f"{k}={dec[k]:#x}" if k in ("lastcpupid", "kasantag") else
                           f"{k}={dec[k]}" for k in lay.widths if lay.widths[k])
        lines = [
            f"pfn            {pfn:#x}   ({self.page_kind(pfn)})",
            f"struct page    {self.page_struct_address(pfn):#x}   (vmemmap + pfn)",
            f"virtual        {d['virtual']:#x}   (page_address: PAGE_OFFSET + pfn << 12)",
            f"flags          {pf.format_page_flags(d['flags'], lay)}",
            f"  PG_ bits     {', '.join(f'{lay.bits[n]}:{n}' for n in d['flag_names']) or '-'}",
            f"  fields       {fields}   zone {dec['zone_name']}",
            f"_refcount      {d['_refcount']}",
            f"_mapcount      {d['_mapcount']}   (page_mapcount = _mapcount + 1 = {d['mapcount']})",
            f"page_type      {d['page_type']:#010x}   ({d['page_type_name']})",
            (f"private        {d['private']}   (buddy order)" if self.PageBuddy(pfn) else
             f"private        {d['private']:#x}"),
            f"mapping        {d['mapping']:#x}" + (
                "   (anon_vma | FOLIO_MAPPING_ANON)" if d["mapping"] & pf.FOLIO_MAPPING_ANON
                else "   (address_space)" if d["mapping"] else "   (none)"),
            f"index          {d['index']:#x}",
            f"lru            next {d['lru_next']}, prev {d['lru_prev']}   (pfns, -1 = none)",
        ]
        if d["tail"]:
            lines.append(f"compound_head  {d['compound_head']:#x}   (a tail page)")
            if pfn == d["compound_head"] + 1:
                lines.append(f"  first tail: flags & 0xff = {d['flags'] & 0xFF} is the folio's "
                             "order (folio->_flags_1), not PG_ bits")
        elif d["compound_order"]:
            lines.append(f"compound_order {d['compound_order']}   (head of "
                         f"{1 << d['compound_order']} pages)")
        return "\n".join(lines)

    # -- dump_page() -----------------------------------------------------------------------------

    def raw_words(self, pfn: int) -> list[int]:
        """The eight 64-bit words of pfn's struct page as the kernel lays them out (x86_64):
        flags, lru.next (or compound_head | 1 on a tail), lru.prev, mapping, index, private,
        page_type/_mapcount in the low half with _refcount in the high half, memcg_data.

        Simplified: list links point at the linked page's ``lru`` field (struct page + 8);
        a page on no list shows the list_del() poison, as most real dumps do."""
        i = self.index(pfn)
        head = self.compound_head[i]
        if head >= 0:
            word1 = self.page_struct_address(head) | 1
            word2 = LIST_POISON2
        else:
            nxt, prv = self.lru_next[i], self.lru_prev[i]
            word1 = LIST_POISON1 if nxt < 0 else self.page_struct_address(nxt) + 8
            word2 = LIST_POISON2 if prv < 0 else self.page_struct_address(prv) + 8
        if self.page_type[i] != UINT_MAX:
            low = self.page_type[i]
        else:
            low = self.mapcount[i] & 0xFFFFFFFF
        word6 = (self.refcount[i] & 0xFFFFFFFF) << 32 | low
        return [self.flags[i], word1, word2, self.mapping[i], self.pgoff[i] & (2**64 - 1),
                self.private[i] & (2**64 - 1), word6, 0]

    def dump_page(self, pfn: int, reason: str | None = None) -> str:
        """``dump_page()`` → ``__dump_folio()`` (``mm/debug.c``, 6.12+ format): the lines the
        kernel prints for a "BUG: Bad page state" or a KASAN report. ``mapping:`` is
        ``folio_mapping()``, NULL for an anonymous page (its word holds an anon_vma), which the
        flags line marks "anon " (or "ksm "); ``index:`` is the folio's index plus the page's
        offset in it. Pointers are printed raw (the kernel hashes ``%p``); a compound page gets
        one ``head:`` line instead of the folio details."""
        head_pfn = self.compound_head_pfn(pfn)
        h = self.index(head_pfn)
        typed = self.page_type[h] != UINT_MAX
        mapcount = 0 if typed else self.mapcount[h] + 1
        word = self.mapping[h]
        kind = ("ksm " if word & pf.FOLIO_MAPPING_FLAGS == pf.FOLIO_MAPPING_KSM else
                "anon " if word & pf.FOLIO_MAPPING_ANON else "")
        mapping = 0 if kind else word
        index = (self.pgoff[h] + pfn - head_pfn) & (2**64 - 1)
        lines = [f"page: refcount:{self.refcount[h]} mapcount:{mapcount} "
                 f"mapping:{mapping:016x} index:{index:#x} pfn:{pfn:#x}"]
        if head_pfn != pfn or self.compound_order(pfn):
            lines.append(f"head: order:{self.compound_order(head_pfn)} pfn:{head_pfn:#x}")
        lines.append(f"{kind}flags: {pf.format_page_flags(self.flags[h], self.layout)}")
        if typed:
            pt = self.page_type[h]
            lines.append(f"page_type: {pt >> 24:x}({pf.page_type_name(pt)})")
        words = self.raw_words(pfn)
        lines.append("raw: " + " ".join(f"{w:016x}" for w in words[:4]))
        lines.append("raw: " + " ".join(f"{w:016x}" for w in words[4:]))
        if reason:
            lines.append(f"page dumped because: {reason}")
        return "\n".join(lines)


class Page:
    """A view of one ``struct page``: read and write its fields by their kernel names.

    Nothing is copied: reading ``page.refcount`` reads ``mem_map.refcount[pfn - start]``.
    """

    __slots__ = ("mem_map", "pfn", "_i")

    def __init__(self, mem_map: MemMap, pfn: int):
        self.mem_map = mem_map
        self.pfn = pfn
        self._i = mem_map.index(pfn)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Page) and other.mem_map is self.mem_map
                and other.pfn == self.pfn)

    def __hash__(self) -> int:
        return hash((id(self.mem_map), self.pfn))

    # Raw fields, read/write.
    def _get(name: str, doc: str):  # noqa: N805 - a descriptor factory used in the class body
        def fget(self: Page) -> int:
            return getattr(self.mem_map, name)[self._i]

        def fset(self: Page, value: int) -> None:
            getattr(self.mem_map, name)[self._i] = value

        return property(fget, fset, doc=doc)

    flags = _get("flags", "page->flags")
    _refcount = _get("refcount", "page->_refcount")
    _mapcount = _get("mapcount", "page->_mapcount (-1: not mapped)")
    page_type = _get("page_type", "page->page_type (UINT_MAX: no type)")
    private = _get("private", "page->private (the buddy order of a free block's head)")
    mapping = _get("mapping", "page->mapping (bit 0 set: anon_vma, FOLIO_MAPPING_ANON)")
    index = _get("pgoff", "page->index (a pgoff_t; MemMap.pgoff)")
    lru_next = _get("lru_next", "page->lru.next as a pfn (-1: none)")
    lru_prev = _get("lru_prev", "page->lru.prev as a pfn (-1: none)")
    del _get

    # Decoded.
    @property
    def virtual(self) -> int:
        """``page_address(page)``: where the kernel sees this page in its direct map."""
        return self.mem_map.page_address(self.pfn)

    @property
    def flag_names(self) -> list[str]:
        """The PG_* bits set in the low part of ``flags`` (``%pGp`` without the fields)."""
        return pf.flag_names(self.flags, self.mem_map.layout)

    @property
    def zone(self) -> int:
        return self.mem_map.page_zonenum(self.pfn)

    @property
    def node(self) -> int:
        return self.mem_map.page_to_nid(self.pfn)

    @property
    def count(self) -> int:
        return self.mem_map.page_count(self.pfn)

    @property
    def mapcount(self) -> int:
        return self.mem_map.page_mapcount(self.pfn)

    @property
    def buddy(self) -> bool:
        return self.mem_map.PageBuddy(self.pfn)

    @property
    def anon(self) -> bool:
        """``PageAnon()``: bit 0 of the head page's ``mapping``."""
        head = self.mem_map.compound_head_pfn(self.pfn)
        return bool(self.mem_map.mapping[self.mem_map.index(head)] & pf.FOLIO_MAPPING_ANON)

    @property
    def head(self) -> int:
        """``compound_head()`` as a pfn."""
        return self.mem_map.compound_head_pfn(self.pfn)

    @property
    def order(self) -> int:
        """``compound_order()`` (0 for a small page or a tail)."""
        return self.mem_map.compound_order(self.pfn)

    def describe(self) -> dict[str, object]:
        """Every field, raw and decoded, as dump_page() would print it (a dict for widgets)."""
        mm = self.mem_map
        return {
            "pfn": self.pfn,
            "virtual": self.virtual,
            "flags": self.flags,
            "flag_names": self.flag_names,
            "zone": self.zone,
            "node": self.node,
            "_refcount": self._refcount,
            "_mapcount": self._mapcount,
            "mapcount": self.mapcount,
            "page_type": self.page_type,
            "page_type_name": pf.page_type_name(self.page_type),
            "private": self.private,
            "mapping": self.mapping,
            "anon": self.anon,
            "index": self.index,
            "lru_next": self.lru_next,
            "lru_prev": self.lru_prev,
            "compound_head": mm.compound_head_pfn(self.pfn),
            "tail": mm.PageTail(self.pfn),
            "compound_order": self.order,
        }

    def __repr__(self) -> str:
        names = "|".join(self.flag_names) or "0"
        extra = ""
        if self.buddy:
            extra = f" buddy order={self.private}"
        elif self.mem_map.PageTail(self.pfn):
            extra = f" tail head={self.head:#x}"
        elif self.order:
            extra = f" head order={self.order}"
        return (f"<page pfn={self.pfn:#x} refcount={self._refcount} mapcount={self.mapcount} "
                f"flags={self.flags:#x}({names}){extra}>")


def example_mem_map() -> MemMap:
    """A 32-page mem_map (pfns 0x1000-0x101f, zone Normal) with one page of each kind the
    chapter talks about, set up as the kernel leaves them. The addresses of the anon_vma and
    address_space objects are made up (any kernel pointer would do).

    ====== ==================================================================
    0x1000 reserved (firmware/kernel image): PG_reserved, refcount 1
    0x1001 anonymous page mapped once: anon_vma | 1, uptodate, lru, swapbacked
    0x1002 page cache page of a file, mapped once: refcount 2 (cache + mapping)
    0x1003 slab page: page_type PGTY_slab
    0x1004 an order-2 anonymous large folio: head 0x1004, tails 0x1005-0x1007
    0x1008 free block of order 3 (0x1008-0x100f): PageBuddy head, private 3
    0x1010 free block of order 2 (0x1010-0x1013)
    0x1014 page table page: page_type PGTY_table
    0x1015 dirty page cache page with buffer heads (PG_private)
    0x1016 page cache page being written back: locked, writeback
    0x1017 free block of order 0
    0x1018 free block of order 3 (0x1018-0x101f)
    ====== ==================================================================
    """
    mm = MemMap(32, start_pfn=0x1000)
    mm.set_page_links(0x1000, 0x1020, zone=2, nid=0)
    bit = lambda *names: sum(1 << getattr(pf, f"PG_{n}") for n in names)  # noqa: E731
    anon_vma = 0xFFFF888104B2C0C0
    inode_mapping = 0xFFFF8881037A4A38

    def setf(pfn: int, flags: int = 0, **fields: int) -> None:
        i = mm.index(pfn)
        mm.flags[i] |= flags
        for name, value in fields.items():
            getattr(mm, name)[i] = value

    setf(0x1000, bit("reserved"))
    setf(0x1001, bit("uptodate", "lru", "active", "swapbacked"),
         mapping=anon_vma | pf.FOLIO_MAPPING_ANON, pgoff=0x7F3A2C1D5, mapcount=0)
    setf(0x1002, bit("referenced", "uptodate", "lru"), mapping=inode_mapping, pgoff=3,
         mapcount=0, refcount=2)
    setf(0x1003, page_type=pf.PGTY_slab << 24)
    mm.prep_compound_page(0x1004, 2)
    for p in range(0x1004, 0x1008):
        setf(p, mapcount=0)                       # each page mapped by one PTE
    setf(0x1004, bit("uptodate", "lru", "swapbacked"),
         mapping=anon_vma | pf.FOLIO_MAPPING_ANON, pgoff=0x7F3A2C200)
    setf(0x1014, page_type=pf.PGTY_table << 24)
    setf(0x1015, bit("uptodate", "dirty", "lru", "private"), mapping=inode_mapping, pgoff=7,
         private=0xFFFF888107D3E000, refcount=2)
    setf(0x1016, bit("locked", "uptodate", "lru", "writeback"), mapping=inode_mapping, pgoff=8)
    for head, order in ((0x1008, 3), (0x1010, 2), (0x1017, 0), (0x1018, 3)):
        for p in range(head, head + (1 << order)):
            mm.refcount[mm.index(p)] = 0
        mm.set_buddy_order(head, order)
    return mm

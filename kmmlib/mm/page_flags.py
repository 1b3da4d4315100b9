"""Page flags: ``enum pageflags``, the page_type byte, and the layout of ``page->flags``.

``page->flags`` is one 64-bit word with two parts (``include/linux/page-flags.h``)::

    | SECTION | NODE | ZONE | LAST_CPUPID | KASAN_TAG | LRU_GEN | LRU_REFS | ... | FLAGS |
    63                                                                  NR_PAGEFLAGS-1   0

The PG_* bits grow from bit 0 upward (``enum pageflags``); the fields are packed from bit 63
downward (``include/linux/page-flags-layout.h`` for the widths, ``include/linux/mm.h`` for the
``*_PGOFF``/``*_PGSHIFT`` offsets). Both depend on the kernel's configuration, so
:class:`PageFlagsConfig` names the options that matter and :class:`FlagsLayout` computes the
widths and shifts exactly as the headers' ``#if`` chains do.

Bit numbers are those of Linux 6.18 (``PG_dropbehind``, added in 6.14, sits after
``PG_unevictable``; ``PG_error`` and ``PG_slab`` left before 6.12; PG_buddy and PG_slab live in
``page->page_type``, not in ``flags``). A page is "on the buddy free lists" when the top byte of
``page_type`` is ``PGTY_buddy`` (0xf0); a page with no type has ``page_type == UINT_MAX``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kmmlib.errors import ParseError

# -- enum pageflags (include/linux/page-flags.h, 6.18) ---------------------------------------

PG_locked = 0           # Page is locked. Don't touch.
PG_writeback = 1        # Page is under writeback
PG_referenced = 2
PG_uptodate = 3
PG_dirty = 4
PG_lru = 5
PG_head = 6             # "Must be in bit 6": a compound page's head
PG_waiters = 7          # "Must be bit #7 and in the same byte as PG_locked"
PG_active = 8
PG_workingset = 9
PG_owner_priv_1 = 10    # Owner use. If pagecache, fs may use
PG_owner_2 = 11         # Owner use. If pagecache, fs may use
PG_arch_1 = 12
PG_reserved = 13
PG_private = 14         # If pagecache, has fs-private data
PG_private_2 = 15       # If pagecache, has fs aux data
PG_reclaim = 16         # To be reclaimed asap
PG_swapbacked = 17      # Page is backed by RAM/swap
PG_unevictable = 18     # Page is "unevictable"
PG_dropbehind = 19      # drop pages on IO completion (6.14+)
# The rest exist only when configured, so their numbers depend on the config:
# PG_mlocked (CONFIG_MMU), PG_hwpoison (CONFIG_MEMORY_FAILURE), PG_young and PG_idle
# (CONFIG_PAGE_IDLE_FLAG on 64-bit), PG_arch_2, PG_arch_3 (arm64 MTE). See pageflags().

# Aliases: one bit, several meanings, chosen by the kind of page.
PG_readahead = PG_reclaim
PG_swapcache = PG_owner_priv_1          # anon/shmem: swp_entry_t in private
PG_checked = PG_owner_priv_1            # some filesystems
PG_anon_exclusive = PG_owner_2          # anon pages
PG_mappedtodisk = PG_owner_2            # file pages
PG_fscache = PG_private_2
PG_pinned = PG_owner_priv_1             # Xen
PG_movable_ops_isolated = PG_reclaim    # 6.17+ (CONFIG_MIGRATION): a movable_ops page
PG_isolated = PG_movable_ops_isolated  # … isolated for migration; its name before 6.17
PG_movable_ops = PG_uptodate            # 6.17+: migrated by movable_ops (zsmalloc, balloon)
PG_reported = PG_uptodate               # buddy pages only: free page reporting
# Flags of the second page of a large folio ("_flags_1"):
PG_has_hwpoisoned = PG_active
PG_large_rmappable = PG_workingset
PG_partially_mapped = PG_reclaim

_ALWAYS = ("locked", "writeback", "referenced", "uptodate", "dirty", "lru", "head", "waiters",
           "active", "workingset", "owner_priv_1", "owner_2", "arch_1", "reserved", "private",
           "private_2", "reclaim", "swapbacked", "unevictable", "dropbehind")

# -- page_type (include/linux/page-flags.h, enum pagetype, 6.12+) ----------------------------

PGTY_buddy = 0xF0
PGTY_offline = 0xF1
PGTY_table = 0xF2
PGTY_guard = 0xF3
PGTY_hugetlb = 0xF4
PGTY_slab = 0xF5
PGTY_zsmalloc = 0xF6
PGTY_unaccepted = 0xF7
PGTY_large_kmalloc = 0xF8   # 6.17+
PGTY_mapcount_underflow = 0xFF
PAGE_TYPES = {PGTY_buddy: "buddy", PGTY_offline: "offline", PGTY_table: "table",
              PGTY_guard: "guard", PGTY_hugetlb: "hugetlb", PGTY_slab: "slab",
              PGTY_zsmalloc: "zsmalloc", PGTY_unaccepted: "unaccepted",
              PGTY_large_kmalloc: "large_kmalloc"}

# -- page->mapping low bits (include/linux/page-flags.h) -------------------------------------

# 6.17 renamed them FOLIO_MAPPING_* and gave bit 1 a new meaning: it marks KSM, and only
# together with ANON (before, PAGE_MAPPING_MOVABLE alone marked a non-LRU movable page).
FOLIO_MAPPING_ANON = 0x1
FOLIO_MAPPING_ANON_KSM = 0x2
FOLIO_MAPPING_KSM = FOLIO_MAPPING_ANON | FOLIO_MAPPING_ANON_KSM
FOLIO_MAPPING_FLAGS = FOLIO_MAPPING_ANON | FOLIO_MAPPING_ANON_KSM
PAGE_MAPPING_ANON = FOLIO_MAPPING_ANON                  # the names before 6.17
PAGE_MAPPING_KSM = FOLIO_MAPPING_KSM
PAGE_MAPPING_FLAGS = FOLIO_MAPPING_FLAGS


def page_type_name(page_type: int) -> str:
    """The name ``dump_page()`` prints for a page_type word (``mm/debug.c``): the type in the
    top byte, or the mapcount it holds, or "none" for UINT_MAX."""
    top = (page_type >> 24) & 0xFF
    if page_type == 0xFFFFFFFF:
        return "none"
    if top in PAGE_TYPES:
        return PAGE_TYPES[top]
    if top < 0x80:
        return f"mapcount {page_type}"
    return f"unknown {top:#x}"


# -- the configuration that decides numbers and widths ---------------------------------------

def order_base_2(n: int) -> int:
    """``order_base_2()`` (``include/linux/log2.h``): ceil(log2(n)), 0 for n <= 1."""
    return 0 if n <= 1 else (n - 1).bit_length()


@dataclass(frozen=True)
class PageFlagsConfig:
    """The Kconfig options that decide the PG_* numbers and the flags-word fields.

    Defaults describe an x86_64 defconfig-like kernel: SPARSEMEM_VMEMMAP, NUMA with
    NODES_SHIFT 6, MMU, no MEMORY_FAILURE, no idle-page flags, no NUMA balancing, no KASAN
    tags, no MGLRU; its zones are those of the bundled snapshot's kernel (DMA, DMA32, Normal,
    Movable, Device: 5 zones, so ZONES_SHIFT is 3).
    """

    name: str = "x86_64 defconfig-like"
    mmu: bool = True                     # CONFIG_MMU -> PG_mlocked
    memory_failure: bool = False         # CONFIG_MEMORY_FAILURE -> PG_hwpoison
    page_idle_flag: bool = False         # CONFIG_PAGE_IDLE_FLAG && 64BIT -> PG_young, PG_idle
    arch_2: bool = False                 # CONFIG_ARCH_USES_PG_ARCH_2 (arm64 MTE)
    arch_3: bool = False                 # CONFIG_ARCH_USES_PG_ARCH_3
    zones: tuple[str, ...] = ("DMA", "DMA32", "Normal", "Movable", "Device")
    nodes_shift: int = 6                 # CONFIG_NODES_SHIFT (10 with MAXSMP)
    sparsemem: bool = True
    sparsemem_vmemmap: bool = True
    max_physmem_bits: int = 46           # x86_64 4-level paging
    section_size_bits: int = 27          # 128 MiB sections
    numa_balancing: bool = False         # -> LAST_CPUPID in flags
    nr_cpus_bits: int = 6                # order_base_2(NR_CPUS); NR_CPUS=64
    kasan_tags: bool = False             # KASAN_SW_TAGS or KASAN_HW_TAGS
    lru_gen: bool = False                # CONFIG_LRU_GEN (MGLRU)
    bits_per_long: int = 64


X86_64 = PageFlagsConfig()
X86_64_DISTRO = PageFlagsConfig(
    name="x86_64 distribution kernel (Fedora-like, MAXSMP)",
    memory_failure=True, page_idle_flag=True, nodes_shift=10, numa_balancing=True,
    nr_cpus_bits=13, lru_gen=True)
ARM64_MTE = PageFlagsConfig(
    name="arm64 with MTE (4K pages, 48-bit PA)", memory_failure=True, arch_2=True, arch_3=True,
    zones=("DMA", "DMA32", "Normal", "Movable"), nodes_shift=2, max_physmem_bits=48,
    kasan_tags=False, nr_cpus_bits=8)
FLATMEM_32 = PageFlagsConfig(
    name="32-bit x86, FLATMEM, no NUMA", zones=("DMA", "Normal", "HighMem", "Movable"),
    nodes_shift=0, sparsemem=False, sparsemem_vmemmap=False, max_physmem_bits=32,
    bits_per_long=32)
CONFIGS = {"x86_64": X86_64, "x86_64-distro": X86_64_DISTRO, "arm64-mte": ARM64_MTE,
           "i386-flatmem": FLATMEM_32}


def pageflags(config: PageFlagsConfig = X86_64) -> dict[str, int]:
    """``enum pageflags`` for a config: name -> bit number, in bit order, without aliases.
    ``len(pageflags(c))`` is ``NR_PAGEFLAGS``."""
    names = list(_ALWAYS)
    if config.mmu:
        names.append("mlocked")
    if config.memory_failure:
        names.append("hwpoison")
    if config.page_idle_flag and config.bits_per_long == 64:
        names += ["young", "idle"]
    if config.arch_2:
        names.append("arch_2")
    if config.arch_3:
        names.append("arch_3")
    return {name: bit for bit, name in enumerate(names)}


# The order in which %pGp and the page tracepoints print the flags (__def_pageflag_names in
# include/trace/events/mmflags.h): not bit order.
PRINT_ORDER = ("locked", "waiters", "referenced", "uptodate", "dirty", "lru", "active",
               "workingset", "owner_priv_1", "owner_2", "arch_1", "reserved", "private",
               "private_2", "writeback", "head", "reclaim", "swapbacked", "unevictable",
               "dropbehind", "mlocked", "hwpoison", "idle", "young", "arch_2", "arch_3")


@dataclass(frozen=True)
class FlagsLayout:
    """The fields at the top of ``page->flags`` for one config.

    Widths follow ``include/linux/page-flags-layout.h``: NODES_WIDTH is NODES_SHIFT when it
    fits beside zones, sections and LRU_GEN, else 0 (NODE_NOT_IN_PAGE_FLAGS, an error with
    VMEMMAP); LAST_CPUPID likewise moves out to ``page->_last_cpupid`` when it does not fit;
    LRU_REFS takes what is left, at most 2. Offsets follow ``include/linux/mm.h``
    (``SECTIONS_PGOFF = BITS_PER_LONG - SECTIONS_WIDTH``, then NODES, ZONES, LAST_CPUPID,
    KASAN_TAG, LRU_GEN, LRU_REFS downward; a zero-width field has PGSHIFT 0).
    """

    config: PageFlagsConfig = field(default_factory=PageFlagsConfig)

    def __post_init__(self) -> None:
        c = self.config
        nr = len(pageflags(c))
        room = c.bits_per_long - nr
        zones_shift = order_base_2(len(c.zones))
        sections_shift = (c.max_physmem_bits - c.section_size_bits) if c.sparsemem else 0
        sections_width = sections_shift if c.sparsemem and not c.sparsemem_vmemmap else 0
        lru_gen_width = order_base_2(4 + 1) if c.lru_gen else 0      # MAX_NR_GENS = 4
        if zones_shift + lru_gen_width + sections_width + c.nodes_shift <= room:
            nodes_width = c.nodes_shift
        elif c.sparsemem_vmemmap:
            raise ParseError("Vmemmap: No space for nodes field in page flags")
        else:
            nodes_width = 0
        kasan = 8 if c.kasan_tags else 0
        cpupid_shift = (8 + c.nr_cpus_bits) if c.numa_balancing else 0
        used = zones_shift + lru_gen_width + sections_width + nodes_width + kasan
        cpupid_width = cpupid_shift if used + cpupid_shift <= room else 0
        if used + cpupid_width > room:
            raise ParseError("Not enough bits in page flags")
        lru_refs = min(2, room - used - cpupid_width) if c.lru_gen else 0
        widths = {"section": sections_width, "node": nodes_width, "zone": zones_shift,
                  "lastcpupid": cpupid_width, "kasantag": kasan, "lru_gen": lru_gen_width,
                  "lru_refs": lru_refs}
        pgoff, off = {}, c.bits_per_long
        for name, w in widths.items():
            off -= w
            pgoff[name] = off
        set_ = object.__setattr__
        set_(self, "nr_pageflags", nr)
        set_(self, "widths", widths)
        set_(self, "pgoff", pgoff)
        set_(self, "pgshift", {n: (pgoff[n] if widths[n] else 0) for n in widths})
        set_(self, "sections_shift", sections_shift)
        set_(self, "node_not_in_page_flags", c.nodes_shift != 0 and nodes_width == 0)
        set_(self, "last_cpupid_not_in_page_flags", cpupid_shift != 0 and cpupid_width == 0)
        set_(self, "bits", pageflags(c))

    # Names the kernel uses.
    @property
    def zones_width(self) -> int:
        return self.widths["zone"]

    @property
    def nodes_width(self) -> int:
        return self.widths["node"]

    @property
    def sections_width(self) -> int:
        return self.widths["section"]

    @property
    def zones_pgshift(self) -> int:
        return self.pgshift["zone"]

    @property
    def nodes_pgshift(self) -> int:
        return self.pgshift["node"]

    @property
    def zones_mask(self) -> int:
        return (1 << self.widths["zone"]) - 1

    @property
    def nodes_mask(self) -> int:
        return (1 << self.widths["node"]) - 1

    @property
    def pageflags_mask(self) -> int:
        """``PAGEFLAGS_MASK``: the bits of the PG_* area."""
        return (1 << self.nr_pageflags) - 1

    def field(self, flags: int, name: str) -> int:
        """Extract one field (``page_zonenum()``, ``page_to_nid()``, ``page_to_section()``…)."""
        w = self.widths[name]
        return (flags >> self.pgshift[name]) & ((1 << w) - 1) if w else 0

    def pack(self, *, zone: int = 0, node: int = 0, section: int = 0, flags: int = 0,
             lastcpupid: int | None = None, **more: int) -> int:
        """A flags word as ``set_page_links()`` builds it, plus low PG_* bits ``flags``.
        ``lastcpupid`` defaults to all ones, the "-1" that ``page_cpupid_reset_last()`` writes;
        ``more`` sets the other fields (kasantag, lru_gen, lru_refs). A field this config
        gives no bits is left out, as the kernel keeps it elsewhere or not at all."""
        word = flags & self.pageflags_mask
        unknown = set(more) - set(self.widths)
        if unknown:
            raise ParseError(f"unknown page flags field {sorted(unknown)[0]!r}")
        values = {"zone": zone, "node": node, "section": section, **more}
        if lastcpupid is None:
            lastcpupid = (1 << self.widths["lastcpupid"]) - 1
        values["lastcpupid"] = lastcpupid
        for name, v in values.items():
            w = self.widths[name]
            if w == 0:
                continue
            if not 0 <= v < (1 << w):
                raise ParseError(f"{name}={v} does not fit its {w}-bit field")
            word |= v << self.pgshift[name]
        return word

    def table(self) -> list[tuple[str, int, int]]:
        """(field, low bit, width) from the top down, including the PG_* area and the gap:
        what ``mminit_loglevel=4`` prints as "pageflags_layout_shifts"."""
        rows = [(n, self.pgoff[n], w) for n, w in self.widths.items() if w]
        low = min((r[1] for r in rows), default=self.config.bits_per_long)
        if low > self.nr_pageflags:
            rows.append(("unused", self.nr_pageflags, low - self.nr_pageflags))
        rows.append(("flags", 0, self.nr_pageflags))
        return rows


DEFAULT_LAYOUT = FlagsLayout(X86_64)


def flag_names(flags: int, layout: FlagsLayout = DEFAULT_LAYOUT) -> list[str]:
    """The PG_* names set in ``flags``, in the kernel's print order (``pageflag_names``)."""
    bits = layout.bits
    low = flags & layout.pageflags_mask
    return [n for n in PRINT_ORDER if n in bits and low >> bits[n] & 1]


def format_page_flags(flags: int, layout: FlagsLayout = DEFAULT_LAYOUT) -> str:
    """``%pGp`` (``lib/vsprintf.c: format_page_flags``), as ``dump_page()`` prints it:
    ``0x17ffffc0000020(lru|node=0|zone=2|lastcpupid=0x1fffff)`` (with the distribution
    layout, ``X86_64_DISTRO``). The PG_* names come first
    in print order, then every field of non-zero width (section, node, zone in decimal;
    lastcpupid and kasantag in hex)."""
    parts = flag_names(flags, layout)
    bits = layout.bits
    leftover = flags & layout.pageflags_mask
    for n in parts:
        leftover &= ~(1 << bits[n])
    if leftover:
        parts.append(f"{leftover:#x}")
    # %pGp's fields (pff[] in lib/vsprintf.c): not lru_gen or lru_refs
    for name in ("section", "node", "zone", "lastcpupid", "kasantag"):
        if layout.widths[name]:
            v = layout.field(flags, name)
            parts.append(f"{name}={v:#x}" if name in ("lastcpupid", "kasantag")
                         else f"{name}={v}")
    return f"{flags:#x}({'|'.join(parts)})"


def parse_page_flags(text: str, layout: FlagsLayout = DEFAULT_LAYOUT) -> int:
    """The flags word for ``"lru|active|zone=2|node=0"`` or a hex/decimal number."""
    text = text.strip()
    if not text:
        raise ParseError("empty page flags")
    try:
        return int(text, 0)
    except ValueError:
        pass
    word, fields = 0, {}
    for part in text.split("|"):
        part = part.strip().removeprefix("PG_")
        if "=" in part:
            k, _, v = part.partition("=")
            if k not in layout.widths:
                raise ParseError(f"unknown page flags field {k!r}; fields: "
                                 + ", ".join(layout.widths))
            if not layout.widths[k]:
                raise ParseError(f"this config has no {k} field in page->flags (its width is "
                                 "0); fields here: "
                                 + ", ".join(n for n, w in layout.widths.items() if w))
            if k in fields:
                raise ParseError(f"page flags field {k} given twice")
            try:
                fields[k] = int(v, 0)
            except ValueError:
                raise ParseError(f"page flags field {k}: {v!r} is not a number") from None
        elif part in layout.bits:
            word |= 1 << layout.bits[part]
        else:
            import difflib

            near = difflib.get_close_matches(part, list(layout.bits), n=3)
            raise ParseError(f"unknown page flag {part!r}"
                             + (f"; did you mean {', '.join(near)}?" if near else ""))
    lastcpupid = fields.pop("lastcpupid", 0)
    return layout.pack(flags=word, lastcpupid=lastcpupid, **fields)


def decode_flags(flags: int, layout: FlagsLayout = DEFAULT_LAYOUT) -> dict[str, object]:
    """Every part of a flags word: the PG_* names, each field's value, and the zone's name."""
    out: dict[str, object] = {"flags": flags, "names": flag_names(flags, layout)}
    for name, w in layout.widths.items():
        if w:
            out[name] = layout.field(flags, name)
    zones = layout.config.zones
    z = layout.field(flags, "zone")
    out["zone_name"] = zones[z] if z < len(zones) else f"zone {z}?"
    return out


def describe_flags(flags: int, layout: FlagsLayout = DEFAULT_LAYOUT) -> str:
    """A flags word decoded line by line: the %pGp form, each PG_* bit set, each field
    (where it sits and its value), for the page inspector and for printing in a notebook."""
    if not 0 <= flags < (1 << layout.config.bits_per_long):
        raise ParseError(f"{flags:#x} does not fit a {layout.config.bits_per_long}-bit word")
    dec = decode_flags(flags, layout)
    lines = [f"{format_page_flags(flags, layout)}   [{layout.config.name}]"]
    names = {bit: name for name, bit in layout.bits.items()}
    low = flags & layout.pageflags_mask
    set_bits = [b for b in range(layout.nr_pageflags) if low >> b & 1]
    lines.append("PG_ bits (0.." f"{layout.nr_pageflags - 1}): "
                 + (", ".join(f"{b} PG_{names[b]}" for b in set_bits) or "none"))
    for name, low_bit, width in layout.table():
        if name in ("flags", "unused"):
            continue
        value = dec[name]
        extra = f" ({dec['zone_name']})" if name == "zone" else ""
        lines.append(f"{name:<10} bits {low_bit + width - 1:>2}..{low_bit:<2} = {value:#x}"
                     f" = {value}{extra}")
    unused = [r for r in layout.table() if r[0] == "unused"]
    if unused:
        _, lo, w = unused[0]
        stray = (flags >> lo) & ((1 << w) - 1)
        if stray:
            lines.append(f"unused     bits {lo + w - 1}..{lo} = {stray:#x}  (should be 0)")
    return "\n".join(lines)

"""enum pageflags, page_type, and the page->flags layout.

The reference values are real kernels' own prints: ``dump_page()`` lines from real x86_64
distribution kernels (NODES_SHIFT 10, five zones, NR_CPUS 8192), as in countless "BUG: Bad page
state" and KASAN reports, e.g. ``flags: 0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)``.
"""

from __future__ import annotations

import pytest

from kmmlib.errors import ParseError
from kmmlib.mm import page_flags as pf
from kmmlib.mm.page_flags import FlagsLayout, PageFlagsConfig

DISTRO = FlagsLayout(pf.X86_64_DISTRO)
REAL_DUMP_FLAGS = 0x17FFFFC0000000
REAL_DUMP_TEXT = "0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)"


def test_constants_agree_with_the_enum():
    bits = pf.pageflags()
    for name, bit in bits.items():
        if hasattr(pf, f"PG_{name}"):
            assert getattr(pf, f"PG_{name}") == bit, name
    assert list(bits.values()) == list(range(len(bits)))        # contiguous, from 0


def test_bits_the_kernel_pins():
    # page-flags.h: "PG_head ... Must be in bit 6", "PG_waiters ... Must be bit #7 and in the
    # same byte as PG_locked" (folio_unlock uses one byte-wide atomic for both).
    assert pf.PG_head == 6 and pf.PG_waiters == 7 and pf.PG_locked == 0
    assert pf.PG_dropbehind == pf.PG_unevictable + 1               # 6.14 inserted it there


def test_conditional_flags_shift_with_the_config():
    base = pf.pageflags(PageFlagsConfig())
    full = pf.pageflags(pf.X86_64_DISTRO)
    assert base["mlocked"] == full["mlocked"] == pf.PG_dropbehind + 1
    assert "hwpoison" not in base and full["hwpoison"] == full["mlocked"] + 1
    no_mmu = pf.pageflags(PageFlagsConfig(mmu=False, memory_failure=True))
    assert no_mmu["hwpoison"] == full["hwpoison"] - 1            # moves down without mlocked
    assert len(full) == len(base) + 3                             # hwpoison, young, idle
    # PG_young/PG_idle exist only on 64-bit.
    assert "idle" not in pf.pageflags(PageFlagsConfig(page_idle_flag=True, bits_per_long=32))


def test_aliases_share_bits():
    assert pf.PG_swapcache == pf.PG_checked == pf.PG_owner_priv_1
    assert pf.PG_anon_exclusive == pf.PG_mappedtodisk == pf.PG_owner_2
    assert pf.PG_readahead == pf.PG_reclaim == pf.PG_isolated
    assert pf.PG_reported == pf.PG_uptodate


def test_real_dump_page_flags_word():
    assert pf.format_page_flags(REAL_DUMP_FLAGS, DISTRO) == REAL_DUMP_TEXT
    # set_page_links(zone 2, node 0) + page_cpupid_reset_last() build that very word.
    assert DISTRO.pack(zone=2, node=0) == REAL_DUMP_FLAGS
    assert pf.parse_page_flags("zone=2|node=0|lastcpupid=0x1fffff", DISTRO) == REAL_DUMP_FLAGS
    assert pf.decode_flags(REAL_DUMP_FLAGS, DISTRO)["zone_name"] == "Normal"


def test_layout_fields_from_the_top_down():
    for cfg in pf.CONFIGS.values():
        lay = FlagsLayout(cfg)
        top = cfg.bits_per_long
        for name, width in lay.widths.items():      # SECTION, NODE, ZONE, LAST_CPUPID, ...
            if width:
                assert lay.pgoff[name] + width == top, (cfg.name, name)
                top = lay.pgoff[name]
        assert top >= lay.nr_pageflags                # never into the PG_* bits
        rows = lay.table()
        assert sum(w for _, _, w in rows) == cfg.bits_per_long


def test_section_field_only_without_vmemmap():
    assert FlagsLayout(pf.X86_64).sections_width == 0
    classic = FlagsLayout(PageFlagsConfig(sparsemem_vmemmap=False))
    assert classic.sections_width == 46 - 27 and classic.pgshift["section"] == 64 - 19
    assert classic.pgoff["node"] == 64 - 19 - 6


def test_no_room_for_nodes():
    tight = dict(bits_per_long=32, nodes_shift=10, lru_gen=True, max_physmem_bits=36,
                 section_size_bits=29)
    with pytest.raises(ParseError, match="Vmemmap: No space for nodes"):
        FlagsLayout(PageFlagsConfig(**tight))
    lay = FlagsLayout(PageFlagsConfig(sparsemem=False, sparsemem_vmemmap=False, **tight))
    assert lay.nodes_width == 0 and lay.node_not_in_page_flags
    cpupid = FlagsLayout(PageFlagsConfig(numa_balancing=True, nr_cpus_bits=13, bits_per_long=32,
                                         sparsemem=False, sparsemem_vmemmap=False))
    assert cpupid.widths["lastcpupid"] == 0 and cpupid.last_cpupid_not_in_page_flags


def test_print_order_is_not_bit_order():
    word = 1 << pf.PG_locked | 1 << pf.PG_waiters | 1 << pf.PG_referenced | 1 << pf.PG_writeback
    assert pf.flag_names(word) == ["locked", "waiters", "referenced", "writeback"]
    assert pf.format_page_flags(word, pf.DEFAULT_LAYOUT) == \
        f"{word:#x}(locked|waiters|referenced|writeback|node=0|zone=0)"


def test_parse_page_flags_errors():
    with pytest.raises(ParseError, match="did you mean lru"):
        pf.parse_page_flags("lur")
    with pytest.raises(ParseError, match="does not fit"):
        pf.parse_page_flags("zone=9")
    assert pf.parse_page_flags("PG_lru|active") == 1 << pf.PG_lru | 1 << pf.PG_active


def test_page_type_names():
    assert pf.page_type_name(0xF0000000) == "buddy"
    assert pf.page_type_name(pf.PGTY_slab << 24) == "slab"
    assert pf.page_type_name(0xFFFFFFFF) == "none"


def test_describe_flags():
    text = pf.describe_flags(REAL_DUMP_FLAGS, DISTRO)
    assert text.splitlines()[0].startswith(REAL_DUMP_TEXT)
    assert "zone       bits 53..51 = 0x2 = 2 (Normal)" in text
    assert "lastcpupid bits 50..30 = 0x1fffff" in text
    assert "PG_ bits (0..23): none" in text
    word = pf.DEFAULT_LAYOUT.pack(zone=2, flags=1 << pf.PG_lru) | 1 << 30   # a stray bit
    assert "(should be 0)" in pf.describe_flags(word)
    with pytest.raises(ParseError):
        pf.describe_flags(1 << 64)


def test_the_format_page_flags_docstring_example_is_what_it_prints():
    import re

    example = re.search(r"``(0x[0-9a-f]+)\((.*?)\)``", pf.format_page_flags.__doc__)
    flags, shown = int(example.group(1), 16), example.group(2)
    assert pf.format_page_flags(flags, pf.FlagsLayout(pf.X86_64_DISTRO)) == \
        f"{flags:#x}({shown})"
    assert pf.PG_movable_ops_isolated == pf.PG_isolated == pf.PG_reclaim
    assert pf.FOLIO_MAPPING_KSM == pf.FOLIO_MAPPING_ANON | pf.FOLIO_MAPPING_ANON_KSM == 0x3


def test_typed_fields_go_into_the_word_or_are_refused():
    """Every field the layout gives bits to can be typed (lru_gen, lru_refs on an MGLRU
    kernel); a field this config has no bits for, or one given twice, is an error, not a
    value quietly dropped."""
    distro = pf.FlagsLayout(pf.CONFIGS["x86_64-distro"])
    word = pf.parse_page_flags("lru|lru_gen=2|lru_refs=1", distro)
    assert distro.field(word, "lru_gen") == 2 and distro.field(word, "lru_refs") == 1
    assert "lru_gen    bits 29..27 = 0x2 = 2" in pf.describe_flags(word, distro)
    plain = pf.FlagsLayout(pf.CONFIGS["x86_64"])
    with pytest.raises(ParseError, match="no lastcpupid field"):
        pf.parse_page_flags("lastcpupid=0x5", plain)
    with pytest.raises(ParseError, match="given twice"):
        pf.parse_page_flags("zone=1|zone=2", plain)

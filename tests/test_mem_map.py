"""mem_map: struct page as parallel arrays, its views, refcounts, PageBuddy, compound pages."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadPageState, BadRequest
from kmmlib.mm import page_flags as pf
from kmmlib.mm.mem_map import (
    FIELDS,
    PAGE_OFFSET_X86_64,
    UINT_MAX,
    MemMap,
)


@pytest.fixture
def mm() -> MemMap:
    return MemMap(64, start_pfn=0x1000)


def test_memory_cost_per_page_is_at_most_the_kernels_64_bytes():
    n = 1 << 20
    m = MemMap(n)
    per_page = MemMap.bytes_per_page_stored()
    assert per_page <= 64
    # The arrays are allocated exactly: all that is not per-page data is a few headers.
    assert 0 <= m.nbytes() - n * per_page < 4096
    assert m.nbytes() / n <= 64


def test_pages_start_as_init_single_page_leaves_them(mm):
    p = mm.page(0x1005)
    assert (p._refcount, p._mapcount, p.page_type) == (1, -1, UINT_MAX)
    assert (p.lru_next, p.lru_prev, p.flags, p.private) == (-1, -1, 0, 0)
    assert not mm.PageTail(0x1005) and mm.compound_head_pfn(0x1005) == 0x1005


def test_index_and_bad_pfns(mm):
    assert mm.index(0x1000) == 0 and mm.index(0x103F) == 63
    for bad in (0xFFF, 0x1040):
        with pytest.raises(BadPageState, match="outside this mem_map"):
            mm.index(bad)
    assert mm.pfn_valid(0x1000) and not mm.pfn_valid(0x1040)
    with pytest.raises(BadRequest):
        MemMap(-1)
    with pytest.raises(BadRequest, match="32-bit list links"):
        MemMap(10, start_pfn=(1 << 31) - 5)


def test_page_view_reads_and_writes_the_arrays(mm):
    p = mm.page(0x1010)
    p.private = 7
    p.index = 42
    assert mm.private[0x10] == 7 and mm.pgoff[0x10] == 42
    mm.refcount[0x10] = 3
    assert p._refcount == 3 == p.count
    assert mm.page(0x1010) == p and mm.page_to_pfn(p) == 0x1010
    assert p.describe()["private"] == 7


def test_numpy_views_share_memory(mm):
    view = mm.np("refcount")
    view[:] = 0
    assert mm.refcount[5] == 0
    mm.refcount[5] = 9
    assert view[5] == 9
    assert mm.np("flags").dtype.name == "uint64" and len(mm.np("lru_next")) == 64
    with pytest.raises(BadRequest, match="no field"):
        mm.np("virtual")


def test_page_address_is_the_direct_map(mm):
    assert mm.page_address(0x1000) == PAGE_OFFSET_X86_64 + 0x1000 * 4096
    assert mm.virt_to_pfn(mm.page_address(0x1023) + 123) == 0x1023
    assert mm.page(0x1001).virtual == 0xFFFF888001001000
    with pytest.raises(BadRequest):
        mm.virt_to_pfn(0x1000)


def test_set_page_links_builds_the_real_kernels_word():
    # A real x86_64 distribution kernel prints this for a Normal-zone page on node 0:
    # "flags: 0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)".
    m = MemMap(8, layout=pf.FlagsLayout(pf.X86_64_DISTRO))
    m.set_page_links(0, 4, zone=1)
    m.set_page_links(4, 8, zone=2)
    assert m.flags[5] == 0x17FFFFC0000000
    assert m.page_zonenum(5) == 2 and m.page_zonenum(2) == 1 and m.page_to_nid(5) == 0
    m.set_flag(5, pf.PG_lru)
    m.set_page_links(4, 8, zone=2, nid=3)           # rewriting links keeps the PG_* bits
    assert m.test_flag(5, pf.PG_lru) and m.page_to_nid(5) == 3
    with pytest.raises(BadRequest):
        m.set_page_links(0, 8, zone=8)


def test_dump_page_matches_a_real_kasan_report():
    # From a real 6.x KASAN report: a slab page with refcount 1.
    #   flags: 0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)
    #   page_type: f5(slab)
    #   raw: ... 00000001f5000000 ...   (page_type low, _refcount high)
    m = MemMap(4, start_pfn=0x106A80, layout=pf.FlagsLayout(pf.X86_64_DISTRO))
    m.set_page_links(m.start_pfn, m.end_pfn, zone=2)
    m.page_type[3] = pf.PGTY_slab << 24
    lines = m.dump_page(0x106A83).splitlines()
    assert lines[0].startswith("page: refcount:1 mapcount:0 ")
    assert lines[1] == "flags: 0x17ffffc0000000(node=0|zone=2|lastcpupid=0x1fffff)"
    assert lines[2] == "page_type: f5(slab)"
    assert lines[4].split()[3] == "00000001f5000000"      # "raw:" + words 4..7


def test_page_buddy_lives_in_page_type(mm):
    mm.refcount[0] = 0
    mm.set_buddy_order(0x1000, 3)
    assert mm.PageBuddy(0x1000) and mm.buddy_order(0x1000) == 3
    assert mm.page_type[0] == 0xF0000000 and mm.flags[0] == 0      # not a page flag in 6.x
    with pytest.raises(BadPageState, match="already has page_type"):
        mm.SetPageBuddy(0x1000)
    mm.ClearPageBuddy(0x1000)
    assert mm.page_type[0] == UINT_MAX and not mm.PageBuddy(0x1000)
    with pytest.raises(BadPageState, match="not PageBuddy"):
        mm.ClearPageBuddy(0x1000)


def test_get_put_page_and_release(mm):
    freed = []
    mm.release = lambda pfn, order: freed.append((pfn, order))
    mm.get_page(0x1001)
    assert mm.page_count(0x1001) == 2
    assert mm.put_page(0x1001) is False
    assert mm.put_page(0x1001) is True and freed == [(0x1001, 0)]
    with pytest.raises(BadPageState, match="already free"):
        mm.put_page(0x1001)
    with pytest.raises(BadPageState, match="a free page"):
        mm.get_page(0x1001)
    assert mm.page_count(0x1001) == 0


def test_mapcount_starts_at_minus_one(mm):
    assert mm.page_mapcount(0x1002) == 0
    mm.mapcount[2] += 1                                   # one page table maps it
    assert mm.page_mapcount(0x1002) == 1 and mm.page(0x1002).mapcount == 1


def test_anon_mapping_bit(mm):
    p = mm.page(0x1003)
    p.mapping = 0xFFFF888012345600 | pf.FOLIO_MAPPING_ANON
    assert p.anon
    p.mapping = 0xFFFF888012345600
    assert not p.anon


def test_compound_pages(mm):
    freed = []
    mm.release = lambda pfn, order: freed.append((pfn, order))
    mm.prep_compound_page(0x1008, 3)
    assert mm.PageHead(0x1008) and not mm.PageTail(0x1008)
    tails = range(0x1009, 0x1010)
    assert all(mm.PageTail(t) and mm.compound_head_pfn(t) == 0x1008 for t in tails)
    assert not mm.PageCompound(0x1010)
    assert mm.compound_order(0x1008) == 3 and mm.flags[9] & 0xFF == 3   # folio->_flags_1
    assert mm.compound_order(0x1009) == 0
    mm.get_page(0x100C)                                    # a tail's reference is the head's
    assert mm.page_count(0x100C) == mm.refcount[8] == 2 and mm.refcount[12] == 0
    assert mm.page(0x100D).head == 0x1008 and mm.page(0x1008).order == 3
    mm.put_page(0x100A)
    assert mm.put_page(0x1008) is True and freed == [(0x1008, 3)]
    assert mm.destroy_compound_page(0x1008) == 3
    assert not any(mm.PageCompound(p) for p in range(0x1008, 0x1010))
    with pytest.raises(BadRequest, match="aligned"):
        mm.prep_compound_page(0x1004, 3)
    with pytest.raises(BadRequest):
        mm.prep_compound_page(0x1000, 0)
    with pytest.raises(BadPageState):
        mm.destroy_compound_page(0x1000)


def test_repr_and_iteration(mm):
    assert "pfns 0x1000..0x103f" in repr(mm)
    assert [p.pfn for p in mm][:2] == [0x1000, 0x1001] and len(mm) == 64
    mm.prep_compound_page(0x1000, 1)
    assert "head order=1" in repr(mm.page(0x1000)) and "tail head=0x1000" in repr(mm.page(0x1001))


def test_fields_cover_struct_page():
    names = [n for n, _, _ in FIELDS]
    for kernel_field in ("flags", "refcount", "mapcount", "page_type", "private", "lru_next",
                         "lru_prev", "mapping", "pgoff", "compound_head"):
        assert kernel_field in names


# -- the chapter's example, page kinds, and the inspector ---------------------------------------

def test_example_mem_map_kinds():
    from kmmlib.mm.mem_map import example_mem_map

    mm = example_mem_map()
    kinds = [mm.page_kind(p) for p in range(0x1000, 0x1020)]
    assert kinds[:8] == ["reserved", "anon", "file", "slab", "anon", "tail", "tail", "tail"]
    assert kinds[8:16] == ["buddy"] + ["free"] * 7                 # order-3 block at 0x1008
    assert kinds[0x14] == "table" and kinds[0x17] == "buddy"
    # Every free block is a real buddy block: aligned, and its buddy is not free at its order.
    for head in (0x1008, 0x1010, 0x1017, 0x1018):
        order = mm.buddy_order(head)
        assert head % (1 << order) == 0
        buddy = head ^ (1 << order)
        assert not (mm.PageBuddy(buddy) and mm.buddy_order(buddy) == order)
        assert all(mm.refcount[mm.index(p)] == 0 for p in range(head, head + (1 << order)))


def test_is_free_buddy_page(mm):
    mm.set_buddy_order(0x1008, 3)
    assert all(mm.is_free_buddy_page(p) for p in range(0x1008, 0x1010))
    assert not mm.is_free_buddy_page(0x1010) and not mm.is_free_buddy_page(0x1007)


def test_describe_text_names_every_field():
    from kmmlib.mm.mem_map import example_mem_map

    mm = example_mem_map()
    text = mm.describe_text(0x1001)
    for field in ("flags", "_refcount", "_mapcount", "page_type", "private", "mapping",
                  "index", "lru", "virtual", "struct page"):
        assert field in text
    assert "uptodate|lru|active|swapbacked" in text and "anon_vma | FOLIO_MAPPING_ANON" in text
    assert "folio's order" in mm.describe_text(0x1005)
    assert "(buddy order)" in mm.describe_text(0x1008)


def test_page_inspector_widget_shows_the_core_text():
    pytest.importorskip("ipywidgets")
    from kmmlib.widgets.page_inspector import PageInspector

    w = PageInspector()
    w.buttons[0x15].click()                                   # a button selects its pfn
    assert w.pfn.value == 0x1015
    assert w.page_text() == w.mm.describe_text(0x1015)
    assert "dirty" in w.page_view.value
    w.show_dump.value = True
    assert w.page_text() == w.mm.dump_page(0x1015)
    w.config.value = "x86_64-distro"                 # the page's own word keeps its layout
    assert "node=0|zone=2" in w.flags_view.value and "zone=0" not in w.flags_view.value
    w.flags_text.value = "0x17ffffc0000000"
    assert "lastcpupid=0x1fffff" in w.flags_view.value
    w.flags_text.value = "lur"
    assert "did you mean lru" in w.flags_view.value


def test_viz_draws_the_core_state():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from kmmlib.mm.mem_map import example_mem_map
    from kmmlib.viz import mem_map as viz

    ax = viz.plot_mem_map(example_mem_map())
    frames = [p for p in ax.patches if not p.get_fill()]
    assert len(frames) == 4                                   # the four free buddy blocks
    ax = viz.plot_flags_layout(pf.FlagsLayout(pf.X86_64_DISTRO))
    assert sum(p.get_width() for p in ax.patches) == 64
    ax = viz.plot_memmap_cost([1 << 30, 4 << 30])
    assert len(ax.lines) == 4                                 # 3 series + the 1.5625% line
    plt.close("all")


def test_dump_page_of_anonymous_and_file_pages_as_dump_folio_prints_them(mm):
    """__dump_folio(): mapping is folio_mapping(), NULL for anon (the word holds an anon_vma),
    and the flags line says "anon " (or "ksm "); index is the folio's index plus the offset
    of the page in the folio."""
    anon_vma = 0xFFFF888012345600
    p = mm.page(0x1003)
    p.mapping, p.index = anon_vma | pf.FOLIO_MAPPING_ANON, 0x7F3A2C1D5
    lines = mm.dump_page(0x1003).splitlines()
    assert "mapping:0000000000000000 index:0x7f3a2c1d5 pfn:0x1003" in lines[0]
    assert lines[1].startswith("anon flags: ")
    p.mapping = anon_vma | pf.FOLIO_MAPPING_KSM
    assert mm.dump_page(0x1003).splitlines()[1].startswith("ksm flags: ")
    p.mapping = file_mapping = 0xFFFF888100200000                # an address_space: printed
    assert f"mapping:{file_mapping:016x} " in mm.dump_page(0x1003)
    assert mm.dump_page(0x1003).splitlines()[1].startswith("flags: ")
    # A tail page of a folio: the head's index plus its offset.
    mm.prep_compound_page(0x1004, 2)
    mm.page(0x1004).mapping, mm.page(0x1004).index = file_mapping, 0x40
    assert "index:0x42 pfn:0x1006" in mm.dump_page(0x1006).splitlines()[0]

"""Figures the chapters' prose states about what the code computes.

nbval checks every code cell's output, but nobody checks the markdown around it: a sentence can
go stale when the code changes. Each test here finds the sentence in its notebook and recomputes
its figure with kmmlib, so a change to either the text or the code shows up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def prose(name: str) -> str:
    """A notebook's markdown, with every run of whitespace made one space (sentences wrap)."""
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    text = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return " ".join(text.split())


def test_03_kasan_shadow_is_the_top_quarter_of_the_linear_map():
    from kmmlib.layout import layout

    assert "steals the top quarter of the linear map for its shadow bytes (32 TB: one shadow " \
           "byte for every 8 bytes of the kernel's 256 TB half)" in prose("03_virtual_layout.ipynb")
    regions = {r.name: r for r in layout("arm64", kernel="6.8", ram=1 << 30).regions}
    shadow = regions["kasan shadow region"]
    linear = regions["kernel logical memory map"]
    assert shadow.size == 32 << 40
    assert shadow.size * 4 == linear.size
    assert shadow.size * 8 == 256 << 40                     # the kernel's half of 48-bit VA
    assert shadow.start + shadow.size == linear.start + linear.size     # the top of it


def test_03_smallest_guard_of_the_log_scale_map_is_8_mb():
    from kmmlib.layout import layout

    assert "so that an 8 MB guard and a 128 TB region both show" in prose(
        "03_virtual_layout.ipynb")
    regions = layout("arm64", kernel="6.8", ram=1 << 30).regions
    guards = [r.size for r in regions if r.name == "[guard region]"]
    assert min(guards) == 8 << 20
    assert min(r.size for r in regions) == 8 << 20
    assert any(r.size == 128 << 40 for r in regions)


def test_03_vmemmap_is_64_bytes_per_page_of_the_linear_map():
    from kmmlib.layout import arm64, layout

    assert "vmemmap always 64 bytes per page of the linear map: 1/64 of it with 4 KiB pages, " \
           "1/256 with 16 KiB, 1/1024 with 64 KiB" in prose("03_virtual_layout.ipynb")
    seen = 0
    for psize in (4096, 16384, 65536):
        for va in arm64.va_bits_choices(psize, (6, 12)):
            lay = layout("arm64", kernel="6.12", va_bits=va, page_size=psize)
            linear = lay.region("linear").size
            assert lay.symbols["VMEMMAP_SIZE"] == linear // psize * 64, (psize, va)
            assert lay.symbols["VMEMMAP_SIZE"] * (psize // 64) == linear
            seen += 1
    assert seen == 9                                   # the table of section 4 has nine rows


@pytest.fixture(scope="module")
def bundled_replay():
    from kmmlib.trace.replay import Replay, default_trace

    return Replay().run(default_trace(), parallel=False)


def test_09_order_10_count_only_steps_down(bundled_replay):
    assert "the order-10 count steps down, from 157 to 152, as blocks are split; none is " \
           "merged back in this window" in prose("09_trace_replay.ipynb")
    counts = [row[10] for row in bundled_replay.timeline.nr_free["Normal"]]
    assert (counts[0], counts[-1]) == (157, 152)
    assert counts == sorted(counts, reverse=True)


def test_09_first_pfn_is_4_25_gib_into_memory():
    text = prose("09_trace_replay.ipynb")
    assert "`0x1103b0` is 4.25 GiB into physical memory, in ZONE_NORMAL" in text
    assert round(0x1103B0 * 4096 / (1 << 30), 2) == 4.25
    from kmmlib.trace.replay import machine_setup

    normal = next(z for z in machine_setup().zones if z.name == "Normal")
    assert normal.start_pfn <= 0x1103B0 < normal.start_pfn + normal.pages


def test_01_the_meminfo_values_that_are_not_whole_pages_are_named():
    from kmmlib.procfs.source import snapshot

    assert "The exceptions are counters kept in other units: `KernelStack`, which the kernel " \
           "counts in KiB, and `VmallocTotal`, a size in bytes shifted to KiB " \
           "(`VMALLOC_TOTAL >> 10`: 34359738367 kB here, 32 TiB less one byte)." in prose(
               "01_free_and_meminfo.ipynb")
    lines = snapshot().read("meminfo").splitlines()
    odd = {ln.split(":")[0]: int(ln.split()[1]) for ln in lines
           if ln.endswith(" kB") and int(ln.split()[1]) % 4}
    assert odd == {"VmallocTotal": ((32 << 40) - 1) >> 10}


def test_01_memavailable_reads_only_the_meminfo_lines_the_text_names():
    from kmmlib.mm.available import mem_available
    from kmmlib.procfs.meminfo import parse_meminfo
    from kmmlib.procfs.source import snapshot
    from kmmlib.procfs.zoneinfo import parse_zoneinfo

    assert "Everything but MemFree, the file LRU sizes and the reclaimable slab " \
           "(`SReclaimable`, `KReclaimable`) comes from `/proc/zoneinfo`:" in prose(
               "01_free_and_meminfo.ipynb")
    snap = snapshot()
    mi = parse_meminfo(snap.read("meminfo"))
    zones = parse_zoneinfo(snap.read("zoneinfo"))
    named = {k: mi[k] for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable",
                                "KReclaimable")}
    full = mem_available(mi, zones)
    assert mem_available(named, zones).available == full.available == full.kernel


def test_02_oom_score_adj_is_scaled_by_integer_division_first():
    from kmmlib.userspace.oom import OomTask, oom_badness

    assert "points += oom_score_adj × (totalpages / 1000) (totalpages = RAM + swap; integer " \
           "division first)" in prose("02_malloc_mmap_faults.ipynb")
    base = oom_badness(OomTask(1, "a", rss_anon=100), 8191)
    # 8191 pages: one unit of oom_score_adj is 8 pages, not 8.191.
    assert oom_badness(OomTask(1, "a", rss_anon=100, oom_score_adj=1), 8191) - base == 8
    assert oom_badness(OomTask(1, "a", rss_anon=100, oom_score_adj=1000), 8191) - base == 8000


def test_05_gfp_high_goes_below_min_but_not_gfp_nowait():
    from kmmlib.mm import gfp
    from kmmlib.mm.watermark import gfp_to_alloc_flags, zone_watermark_ok

    assert "Only `__GFP_HIGH` callers such as `GFP_ATOMIC` (interrupt handlers, network " \
           "receive) may go below min" in prose("05_zones_and_watermarks.ipynb")
    assert "`GFP_NOWAIT` stops at min" in prose("05_zones_and_watermarks.ipynb")

    def ok(flags: str, free: int) -> bool:
        return zone_watermark_ok(free, 0, 1000, [0], 0,
                                 gfp_to_alloc_flags(gfp.parse_gfp(flags)))

    assert not ok("GFP_NOWAIT", 1000) and not ok("GFP_NOWAIT", 800)
    assert ok("GFP_ATOMIC", 800) and ok("GFP_ATOMIC", 376) and not ok("GFP_ATOMIC", 375)
    assert ok("GFP_KERNEL|__GFP_HIGH", 501) and not ok("GFP_KERNEL|__GFP_HIGH", 500)


def test_07_compaction_refuses_a_costly_order_only_for_an_index_of_0_to_500():
    from kmmlib.mm.compaction import CompactResult, compaction_suitable_result
    from kmmlib.mm.fragmentation import fragmentation_index
    from kmmlib.mm.page_alloc import Zone

    text = prose("07_anti_fragmentation.ipynb")
    assert "refuses to compact a costly order when the index is between 0 and " \
           "`vm.extfrag_threshold` (500)" in text
    assert "a small reserve for high-order atomic allocations (section 4);" in text
    assert "## 4. The high-order atomic reserve" in text
    seen = {}
    for threshold in (-1, 0, 500, 1000):
        zone = Zone(1 << 12)
        # Every other page in use: plenty free, all of it in order-0 pieces.
        held = [zone.alloc(0) for _ in range(1 << 12)]
        for pfn in held[::2]:
            zone.free(pfn)
        index = fragmentation_index(zone.nr_free(), 4)
        seen[threshold] = compaction_suitable_result(zone, 4, extfrag_threshold=threshold)
    assert 500 < index <= 1000
    assert seen[-1] is seen[0] is seen[500] is CompactResult.COMPACT_CONTINUE
    assert seen[1000] is CompactResult.COMPACT_NOT_SUITABLE_ZONE
    whole = Zone(1 << 12)                                  # an order-4 block is free: -1000
    assert fragmentation_index(whole.nr_free(), 4) == -1000
    assert compaction_suitable_result(whole, 4, extfrag_threshold=1000) is \
        CompactResult.COMPACT_CONTINUE


def test_03_a_52_bit_linear_map_ends_at_the_page_end_of_va_bits_min():
    from kmmlib.layout import layout

    assert "With 52 bits the linear map runs from `-(1 << 52)` up to the `PAGE_END` of " \
           "`VA_BITS_MIN` (48 bits; 47 with 16 KiB pages)" in prose("03_virtual_layout.ipynb")
    for page_size, va_bits_min in ((4096, 48), (16384, 47), (65536, 48)):
        lay = layout("arm64", kernel="6.12", va_bits=52, page_size=page_size)
        linear = lay.region("linear")
        assert lay.symbols["VA_BITS_MIN"] == va_bits_min
        assert linear.start == (1 << 64) - (1 << 52)
        assert linear.start + linear.size == (1 << 64) - (1 << (va_bits_min - 1))   # PAGE_END


def test_08_section_references_point_at_slub_debugging():
    text = prose("08_slab.ipynb")
    assert "its debug options (section 8)" in text and "why section 8 exists" in text
    assert "## 8. SLUB debugging" in text


def test_09_pretrace_frees_are_counted_in_frees_and_pages(bundled_replay):
    assert "5018 frees in the window (15,209 pages) were of blocks allocated before it began" \
        in prose("09_trace_replay.ipynb")
    assert (bundled_replay.c["pretrace_frees"], bundled_replay.c["pretrace_free_pages"]) == \
        (5018, 15209)


def test_09_every_drain_is_kdamonds_batch_free_overflowing(bundled_replay):
    """The kernel's drains in the bundled window all sit inside kdamond's batch frees (a
    per-cpu list passing high), of pages allocated before the trace: the simulator, which never
    had them on its lists, drains none."""
    from kmmlib.trace.parse import read_trace
    from kmmlib.trace.replay import default_trace

    assert "every drain in this window comes from `kdamond` (the DAMON monitor) freeing pages " \
           "in a batch (`free_unref_folios()`)" in prose("09_trace_replay.ipynb")
    records, _ = read_trace(default_trace())
    drains = 0
    for i, rec in enumerate(records):
        if rec[0] != 4:                                     # mm_page_pcpu_drain
            continue
        drains += 1
        assert rec[3].strip().startswith("kdamond"), rec
        # Back over the burst: the event before it, on that CPU, is a batched free.
        j = i - 1
        while records[j][0] == 4 or records[j][2] != rec[2]:
            j -= 1
        assert records[j][0] == 2 and records[j][3] == rec[3], (rec, records[j])
    assert drains == 1316 and bundled_replay.traced_drained == 8517
    assert sum(z.drained_pages for z in bundled_replay.zones) == 0


def test_09_ftrace_event_field_objects_are_damons(bundled_replay):
    """SLUB merged DAMON's 56-byte damon_region cache into the older ftrace_event_field: every
    allocation the trace names ftrace_event_field comes from damon_* code, run by kdamond."""
    import lzma

    from kmmlib.trace.replay import default_trace

    assert "They are DAMON's 56-byte `damon_region`s, which SLUB merged into the older 56-byte " \
           "cache" in prose("09_trace_replay.ipynb")
    with lzma.open(default_trace(), "rt") as f:
        lines = [ln for ln in f if "kmem_cache_alloc:" in ln and "name=ftrace_event_field" in ln]
    assert len(lines) == bundled_replay.slab.allocs_by_cache["ftrace_event_field"] > 1000
    assert all(" call_site=damon_" in ln and ln.split()[0].startswith("kdamond") for ln in lines)
    assert all(" bytes_req=56 " in ln for ln in lines)


def test_09_holds_are_within_a_fifth_of_the_kernels(bundled_replay):
    takes = bundled_replay.report()["pages"]["buddy_takes"]
    assert "the simulator's counts of blocks and of holds are within a fifth of the kernel's" \
        in prose("09_trace_replay.ipynb")
    for what in ("", "_lock_trips"):
        sim, kernel = takes["simulator" + what], takes["kernel" + what]
        assert abs(sim - kernel) <= kernel / 5, what

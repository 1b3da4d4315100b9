"""Replaying kmem traces through the simulated page and slab allocators (kmmlib.trace.replay)
and the ``kmm replay`` command.

The machine checks compare with the real kernel's figures in the bundled /proc snapshot (the
traced machine); the replay checks use the bundled real trace, and small hand-made traces where
a test needs one situation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.mm.page_alloc import Zone
from kmmlib.procfs.slabinfo import parse_slabinfo
from kmmlib.procfs.source import snapshot
from kmmlib.procfs.zoneinfo import parse_zoneinfo
from kmmlib.slab import kmalloc as K
from kmmlib.trace.capture import bundled_trace
from kmmlib.trace.parse import TraceStats, iter_records, read_trace
from kmmlib.trace.replay import (
    Replay,
    machine_setup,
    parse_pagetypeinfo_blocks,
)


@pytest.fixture(scope="module")
def bundled() -> Replay:
    """The bundled real trace, replayed once for the module."""
    return Replay().run(bundled_trace())


def line(ts: float, event: str, fields: str, cpu: int = 0, task: str = "bash-1") -> str:
    return f"{task:>16} [{cpu:03d}] .....  {ts:.6f}: {event}: {fields}\n"


def alloc(ts, pfn, order=0, mt=1, gfp="GFP_HIGHUSER_MOVABLE|__GFP_COMP", cpu=0):
    return line(ts, "mm_page_alloc", f"page=00000000deadbeef pfn={pfn:#x} order={order} "
                f"migratetype={mt} gfp_flags={gfp}", cpu)


def free(ts, pfn, order=0, cpu=0):
    return line(ts, "mm_page_free", f"page=00000000deadbeef pfn={pfn:#x} order={order}", cpu)


def replay_lines(lines, **kw) -> Replay:
    rp = Replay(**kw)
    st = rp.stats
    rp.feed(iter_records(lines, st))
    rp.finish()
    return rp


# -- the machine: the kernel's own figures ---------------------------------------------------

def test_machine_has_the_snapshot_kernels_watermarks_protection_and_pcp_sizes():
    """Watermarks, lowmem_reserve and per-cpu batch/high computed for the simulated zones
    equal what the traced machine's /proc/zoneinfo printed."""
    rp = Replay(slab=False)
    real = {z.name: z for z in parse_zoneinfo(snapshot().read("zoneinfo"))}
    assert [z.name for z in rp.zones] == ["DMA", "DMA32", "Normal"]
    for zs, z in zip(rp.setup.zones, rp.zones, strict=True):
        k = real[z.name]
        assert (zs.start_pfn, zs.pages, z.managed_pages) == (k.start_pfn, k.managed, k.managed)
        assert (z.min_wmark_pages(), z.low_wmark_pages(), z.high_wmark_pages()) == (
            k.min, k.low, k.high)
        assert list(z.lowmem_reserve) == k.protection
        for pcp in z.pcp:
            assert (pcp.batch, pcp.high_min, pcp.high_max) == (
                k.pagesets[0]["batch"], k.pagesets[0]["high_min"], k.pagesets[0]["high_max"])
        assert len(z.pcp) == len(k.pagesets) == 2


def test_proc_machine_from_the_snapshot_folder_equals_the_preset(snapshot_dir):
    from kmmlib.procfs.source import ProcSource

    a = machine_setup("x86_64-snapshot")
    b = machine_setup("proc", ProcSource(snapshot_dir))
    assert [(z.name, z.start_pfn, z.pages, z.watermarks, z.lowmem_reserve) for z in a.zones] \
        == [(z.name, z.start_pfn, z.pages, z.watermarks, z.lowmem_reserve) for z in b.zones]
    assert a.nr_cpus == b.nr_cpus == 2


def test_pageblocks_are_typed_in_the_snapshots_proportions():
    real = parse_pagetypeinfo_blocks(snapshot().read("pagetypeinfo"))
    assert real["Normal"] == {"Unmovable": 62, "Movable": 245, "Reclaimable": 13,
                              "HighAtomic": 0, "Isolate": 0}
    rp = Replay(slab=False)
    normal = rp.zones[2]
    plan = rp.setup.zones[2].pageblocks
    assert sum(plan.values()) == 320 == normal.spanned_pages // 512
    for mt in ("Unmovable", "Reclaimable", "Movable"):
        assert plan[mt] % 2 == 0                         # whole MAX_PAGE_ORDER blocks
        assert abs(plan[mt] - real["Normal"][mt]) <= 1
        stamped = sum(1 for p in range(normal.zone_start_pfn, normal.zone_end_pfn, 512)
                      if normal.get_pageblock_migratetype(p) == ["Unmovable", "Movable",
                                                                  "Reclaimable"].index(mt))
        assert stamped == plan[mt]
    normal.check()                   # every free block sits on its pageblock's list


def test_unknown_machine_is_refused():
    with pytest.raises(BadRequest, match="unknown machine"):
        Replay("pdp-11")


# -- the bundled real trace ------------------------------------------------------------------

def test_bundled_replay_accounts_for_every_event(bundled):
    st = bundled.stats
    rep = bundled.report()
    pg, sl = rep["pages"], rep["slab"]
    assert st.nr_events == 60000 and st.malformed == 0
    assert pg["allocs"] == st.events["mm_page_alloc"] == sum(
        int(n) for n in pg["by_order"].values())
    assert pg["frees"] + pg["pretrace_frees"] + pg["frees_of_failed"] == st.events[
        "mm_page_free"]
    assert pg["batched_frees"] == st.events["mm_page_free_batched"]
    assert pg["buddy_takes"]["kernel"] == st.events["mm_page_alloc_zone_locked"]
    assert pg["fallbacks"]["kernel"] == st.events["mm_page_alloc_extfrag"] == 1
    assert (sl["frees"]["kmem_cache_free"] + sl["frees"]["kfree"] + sl["kfree_null"]
            + sl["pretrace_frees"]) == st.events["kmem_cache_free"] + st.events["kfree"]
    assert pg["sim_failed"] == 0 and sl["sim_failed"] == 0
    assert pg["migratetype_mismatch"] == 0          # gfp_migratetype() agrees with the kernel
    # What the replay did itself: every slab allocation went to a cache (allocs_by_cache is
    # counted as each is replayed), and each is now live, freed by a traced free, or freed
    # when its pointer came back (a free the trace did not show).
    slab = bundled.slab
    replayed = sum(slab.allocs_by_cache.values())
    assert replayed == st.events["kmem_cache_alloc"] + st.events["kmalloc"]
    assert (sl["live_objects_at_end"] + sl["frees"]["kmem_cache_free"] + sl["frees"]["kfree"]
            + sl["untraced_frees"]) == replayed
    # The frees of things allocated before the trace began, counted here from the records.
    records, _ = read_trace(bundled_trace())
    pfns, ptrs = set(), set()
    old_pages = old_objs = null = 0
    for rec in records:
        if rec[0] == 0 and rec[4] >= 0:                          # mm_page_alloc
            pfns.add(rec[4])
        elif rec[0] == 1:                                        # mm_page_free
            if rec[4] in pfns:
                pfns.discard(rec[4])
            else:
                old_pages += 1
        elif rec[0] in (6, 8):                                   # kmalloc, kmem_cache_alloc
            ptrs.add(rec[4])
        elif rec[0] in (7, 9):                                   # kfree, kmem_cache_free
            if rec[4] in ptrs:
                ptrs.discard(rec[4])
            elif int(rec[4], 16) == 0:
                null += 1
            else:
                old_objs += 1
    assert (pg["pretrace_frees"], sl["pretrace_frees"], sl["kfree_null"]) == \
        (old_pages, old_objs, null)
    assert old_pages > 1000 and old_objs > 1000 and null > 0


def test_bundled_replay_leaves_consistent_allocators(bundled):
    for z in bundled.zones:
        z.check()
    bundled.slab.slub.check()
    # What the trace left allocated is what the simulated zones hold for it.
    held = sum(1 << o for _, _, o in (v for v in bundled._live.values() if v))
    assert held == bundled.in_use == bundled.report()["pages"]["in_use_at_end"]
    zone_alloc = sum(sum(1 << o for o in z.allocated_blocks().values()) for z in bundled.zones)
    assert zone_alloc == held


def test_kmalloc_classes_and_slab_shapes_equal_the_kernels(bundled):
    """Every traced kmalloc got the size class whose size is the kernel's bytes_alloc, and
    every cache the trace used has the snapshot slabinfo's objects and pages per slab."""
    assert bundled.slab.size_mismatch == {}
    shapes = bundled.slab.shapes()
    real = {r.name for r in parse_slabinfo(snapshot().read("slabinfo"))}
    assert len(shapes) == len(set(bundled.slab.caches) & real) >= 15
    assert all(s["agree"] for s in shapes), [s for s in shapes if not s["agree"]]


def test_simulator_and_kernel_figures_are_side_by_side(bundled):
    pg = bundled.report()["pages"]
    sim_takes = pg["buddy_takes"]["simulator"]
    assert sim_takes == sum(z.buddy_takes for z in bundled.zones) > 0
    assert pg["buddy_takes"]["simulator_percpu_refill"] <= sim_takes
    assert pg["pcp_drained_pages"]["kernel"] == 8517     # kdamond's drains in the window
    texts = bundled.disagreements()
    assert any(t.startswith("buddy takes") for t in texts)
    assert any("before the trace began" in t for t in texts)


def test_timeline_adds_up(bundled):
    tl = bundled.timeline
    assert len(tl.t) == len(tl.allocs) == len(tl.in_use) == len(tl.nr_free["Normal"])
    assert sum(map(sum, tl.allocs)) == bundled.report()["pages"]["allocs"]
    assert len(tl.t) == int(bundled.stats.duration / tl.bin) + 1
    assert tl.t[0] == 0.0 and tl.t[1] == pytest.approx(tl.bin)
    by_order = tl.alloc_rate("order")
    assert sum(map(sum, by_order.values())) == bundled.report()["pages"]["allocs"]
    assert set(tl.alloc_rate("migratetype")) == {0, 1, 2}
    normal = tl.nr_free["Normal"][-1]
    assert normal == bundled.zones[2].nr_free()


def test_replay_is_deterministic():
    a = Replay().run(bundled_trace()).report()
    b = Replay().run(bundled_trace()).report()
    assert a == b


# -- small traces: one situation each ------------------------------------------------------

def test_alloc_then_free_gives_the_pages_back():
    rp = replay_lines([alloc(1.0, 0x110000, order=2), free(1.1, 0x110000, order=2)], slab=False)
    normal = rp.zones[2]
    assert rp.c["frees"] == 1 and rp.in_use == 0
    assert normal.allocated_blocks() == {}
    assert normal.nr_free_pages + normal.pcp_pages() == normal.managed_pages
    normal.check()


def test_frees_of_older_pages_reallocations_and_null_pages():
    lines = [
        free(1.0, 0x120000, order=3),                               # allocated before
        alloc(1.1, 0x110000),
        alloc(1.2, 0x110000),                                       # again, no free seen
        line(1.3, "mm_page_alloc", "page=0000000000000000 pfn=0x0 order=0 migratetype=1 "
             "gfp_flags=GFP_KERNEL"),                               # the kernel failed
        free(1.4, 0x110000),
    ]
    rp = replay_lines(lines, slab=False)
    assert (rp.c["pretrace_frees"], rp.c["pretrace_free_pages"]) == (1, 8)
    assert rp.c["missed_frees"] == 1 and rp.c["traced_failed"] == 1
    assert rp.c["frees"] == 1 and rp.in_use == 0
    rp.zones[2].check()


def test_frees_go_to_the_traced_cpus_per_cpu_list():
    rp = replay_lines([alloc(1.0, 0x110000, cpu=1), free(1.1, 0x110000, cpu=1)], slab=False)
    normal = rp.zones[2]
    spfn_lists = [sum(len(lst) for lst in p.lists) for p in normal.pcp]
    # CPU 1 refilled a batch, used one page and got it back; CPU 0 never ran.
    assert spfn_lists[0] == 0 and normal.pcp[1].count == normal.pcp[1].batch


def test_the_tiny_machine_runs_out_and_says_so():
    rp = replay_lines([alloc(1.0 + i / 1000, 0x110000 + 8 * i, order=3) for i in range(20)],
                      machine="tiny", slab=False)
    assert rp.c["sim_failed"] > 0
    assert any("failed in the simulator" in t for t in rp.disagreements())
    rp.zones[0].check()


def test_slab_events_make_caches_and_follow_pointers():
    cache = ("call_site=x+0x1/0x2 ptr={p} name=filp bytes_req=184 bytes_alloc=192 "
             "gfp_flags=GFP_KERNEL node=-1 accounted=true")
    lines = [
        line(1.0, "kmem_cache_alloc", cache.format(p="00000000000000aa")),
        line(1.1, "kmem_cache_alloc", cache.format(p="00000000000000bb")),
        line(1.2, "kmem_cache_free", "call_site=y+0x1/0x2 ptr=00000000000000aa name=filp"),
        line(1.3, "kmem_cache_alloc", cache.format(p="00000000000000bb")),   # reused, live
        line(1.4, "kmem_cache_free", "call_site=y+0x1/0x2 ptr=00000000000000cc name=filp"),
        line(1.5, "kmalloc", "call_site=z+0x1/0x2 ptr=00000000000000dd bytes_req=70 "
             "bytes_alloc=96 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_RECLAIMABLE node=-1 "
             "accounted=true"),
        line(1.6, "kmalloc", "call_site=z+0x1/0x2 ptr=00000000000000ee bytes_req=20000 "
             "bytes_alloc=20480 gfp_flags=GFP_KERNEL node=-1 accounted=false"),
        line(1.7, "kfree", "call_site=z+0x1/0x2 ptr=0000000000000000"),
        line(1.8, "kfree", "call_site=z+0x1/0x2 ptr=00000000000000ee"),
    ]
    rp = replay_lines(lines)
    sl = rp.slab
    filp = sl.slub.caches["filp"]
    assert (filp.object_size, filp.size) == (184, 192)
    assert sl.c["untraced_frees"] == 1 and sl.c["pretrace_frees"] == 1
    assert sl.c["kfree_null"] == 1 and sl.c["kfree"] == 1
    assert sl.allocs_by_cache["kmalloc-rcl-96"] == 1          # the kernel's bytes_alloc 96
    assert sl.allocs_by_cache["kmalloc_large"] == 1
    assert set(sl.objs) == {"00000000000000bb", "00000000000000dd"}
    assert sl.slub._large == {}                               # the large block went back
    sl.slub.check()


def test_kmalloc_size_classes_match_every_traced_bytes_alloc():
    """On the whole bundled trace, the kmalloc cache the simulator picks for each bytes_req
    and gfp has the kernel's bytes_alloc (a check of kmalloc_slab() against real data)."""
    recs, _ = read_trace(bundled_trace())
    rp = Replay(slab=True)
    slub = rp.slab.slub
    seen = 0
    for r in recs:
        if r[0] == 6 and 0 < r[5] <= K.KMALLOC_MAX_CACHE_SIZE:
            s = slub.kmalloc_slab(r[5], rp.slab.mask(r[7]))
            assert s.size == r[6], r
            seen += 1
    assert seen > 900


# -- kmm replay -------------------------------------------------------------------------------

def test_kmm_replay_json_counts_equal_the_parse(capsys):
    assert main(["replay", "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    _, st = read_trace(bundled_trace())
    assert out["events"] == dict(st.events)
    assert sum(out["events"].values()) == 60000
    assert out["report"]["pages"]["allocs"] == st.events["mm_page_alloc"]
    assert out["machine"] == "x86_64-snapshot"
    assert out["speed"]["events"] == 60000 and out["speed"]["realtime_factor"] > 0


def test_kmm_replay_text_and_progress_bar(capsys, monkeypatch):
    assert main(["replay", str(bundled_trace()), "--slabinfo", "3"]) == 0
    cap = capsys.readouterr()
    assert "events as parsed:" in cap.out and "mm_page_alloc_extfrag" in cap.out
    assert "Node 0, zone   Normal" in cap.out
    assert "where the simulator and the kernel disagree" in cap.out
    assert cap.out.count(" : tunables ") == 3
    assert "kmm replay" not in cap.err                 # stderr is no terminal here: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["replay", str(bundled_trace()), "--slabinfo", "0"]) == 0
    assert "kmm replay" in capsys.readouterr().err     # tqdm's bar, on a terminal's stderr


def test_kmm_replay_other_machines_and_bad_input(capsys, tmp_path, snapshot_dir):
    assert main(["replay", "--no-progress", "--no-slab", "--machine", "proc", "--from",
                 str(snapshot_dir)]) == 0
    assert "machine: proc" in capsys.readouterr().out
    assert main(["replay", str(tmp_path / "nope.txt"), "--no-progress"]) == 2
    assert "no such trace file" in capsys.readouterr().err
    assert main(["replay", "--machine", "vax", "--no-progress"]) == 2


def test_kmm_replay_subprocess(python, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("".join([alloc(1.0, 0x110000), free(1.5, 0x110000),
                              "garbage\n", line(2.0, "sched_switch", "prev_comm=a")]))
    r = subprocess.run([python, "-m", "kmmlib", "replay", str(small), "--json",
                        "--no-progress"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["events"] == {"mm_page_alloc": 1, "mm_page_free": 1, "sched_switch": 1}
    assert out["report"]["trace"]["malformed"] == 1
    assert out["report"]["trace"]["unknown"] == {"sched_switch": 1}
    assert out["speed"]["trace_seconds"] == 1.0


def test_empty_trace(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# tracer: nop\n")
    rp = Replay(slab=False).run(empty)
    assert rp.stats.nr_events == 0 and rp.timeline.t == []
    assert "0 events" in rp.summary()
    st = TraceStats()
    assert list(iter_records([], st)) == [] and st.first_ts is None


def test_replay_zone_counts_what_the_tracepoints_would():
    """buddy_takes (mm_page_alloc_zone_locked) and drained_pages (mm_page_pcpu_drain), held
    to what the per-cpu list's own count says happened: a refill put its blocks on the list
    and handed out one; a drain took pages off it that no allocation took."""
    from kmmlib.mm.migratetype import MIGRATE_MOVABLE
    from kmmlib.trace.replay import ReplayZone

    z = ReplayZone(1 << 14, pcp=True, nr_cpus=1)
    pcp = z.pcp[0]
    taken = []
    want_takes = 0
    for _ in range(3000):
        before = pcp.count
        taken.append(z.rmqueue(0, MIGRATE_MOVABLE, 0, 0))
        want_takes += pcp.count - before + 1       # 0 unless this allocation refilled
    assert z.buddy_takes == z.refill_takes == want_takes > 3000 // pcp.batch
    before = pcp.count
    for pfn in taken:
        z.free(pfn, 0)
    assert z.drained_pages == before + len(taken) - pcp.count > 0
    assert z.nr_free_pages + pcp.count == 1 << 14


def test_zone_subclass_keeps_zone_behaviour():
    """ReplayZone only counts and routes frees: the same requests give the same pfns as a
    plain Zone."""
    from kmmlib.trace.replay import ReplayZone

    a, b = Zone(4096, pcp=True, nr_cpus=2), ReplayZone(4096, pcp=True, nr_cpus=2)
    pa = [a.rmqueue(o % 3, 1, 0, o % 2) for o in range(200)]
    pb = [b.rmqueue(o % 3, 1, 0, o % 2) for o in range(200)]
    assert pa == pb and b.buddy_takes > 0
    for p, o in zip(pa[::2], range(0, 200, 2), strict=True):
        a.free(p, o % 3)
        b.free(p, o % 3)
    assert a.state_key() == b.state_key()


# -- stepping, the widget and the pictures ------------------------------------------------------

def test_trace_stepper_steps_back_to_the_same_state():
    from kmmlib.trace.step import page_records, stepper_for

    recs = page_records(bundled_trace(), 80)
    assert len(recs) == 80 and {r[0] for r in recs} <= {0, 1, 2, 3, 4}
    st = stepper_for(recs)
    for _ in range(50):
        st.step()
    after_50 = st.state_text()
    st.step()
    st.back()
    assert st.state_text() == after_50
    st.goto(80)
    rp = st.model.replay
    assert rp.c["frees"] + rp.c["pretrace_frees"] == sum(1 for r in recs if r[0] == 1)
    assert f"kernel {sum(1 for r in recs if r[0] == 3)}," in st.model.render()
    st.model.zone.check()


def test_trace_widget_buttons_move_the_stepper():
    from kmmlib.widgets.trace import trace_widget

    w = trace_widget(n=10)
    assert w.text.startswith("(start")
    w.step_button.click()
    assert w.text.startswith("step 1/10") and "<svg" in w.drawing.value
    w.back_button.click()
    assert w.text.startswith("(start")


def test_pictures_draw_the_report(bundled):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kmmlib.viz.trace import kernel_vs_simulator, plot_busiest_caches, plot_overview

    pg = bundled.report()["pages"]
    data = kernel_vs_simulator(bundled)
    assert list(data.values())[0] == (pg["buddy_takes"]["kernel"],
                                      pg["buddy_takes"]["simulator"])
    fig = plot_overview(bundled)
    assert len(fig.axes) == 4
    ax = plot_busiest_caches(bundled, n=5)
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "names_cache"
    plt.close("all")


def test_a_whole_block_claim_is_not_a_traced_buddy_take():
    """mm_page_alloc_zone_locked fires in __rmqueue_smallest() only: a claim of a whole
    pageblock or more (try_to_claim_block() splits it itself) is not traced, so the first
    block of a refill that had to claim is not counted; the rest of the refill is."""
    from kmmlib.mm.migratetype import MIGRATE_UNMOVABLE
    from kmmlib.trace.replay import ReplayZone

    z = ReplayZone(1 << 16, pcp=True, nr_cpus=1)        # every pageblock Movable at boot
    pcp = z.pcp[0]
    assert z.rmqueue(0, MIGRATE_UNMOVABLE, 0, 0) is not None
    assert z.fallbacks == 1 and pcp.count > 1
    assert z.buddy_takes == z.refill_takes == pcp.count + 1 - 1


def test_zone_lock_holds_are_counted_on_both_sides():
    """A run of mm_page_alloc_zone_locked on one CPU before its mm_page_alloc is one
    zone->lock hold (rmqueue_bulk() or rmqueue_buddy()); counted here straight from the
    records, it is the report's figure. Without per-cpu lists the simulator takes the lock for
    every allocation."""
    records, _ = read_trace(bundled_trace())
    holds, open_ = 0, set()
    for r in records:
        if r[0] == 3 and r[2] not in open_:
            holds += 1
            open_.add(r[2])
        elif r[0] == 0:
            open_.discard(r[2])
    rp = Replay().run(bundled_trace())
    takes = rp.report()["pages"]["buddy_takes"]
    assert takes["kernel_lock_trips"] == holds == 65
    assert takes["kernel_lock_trips"] < takes["kernel"] / 50          # batches, not blocks
    assert 0 < takes["simulator_lock_trips"] < takes["simulator"] / 50
    no_pcp = Replay(pcp=False, slab=False).run(bundled_trace()).report()["pages"]
    assert no_pcp["buddy_takes"]["simulator_lock_trips"] == no_pcp["allocs"]


def test_a_bins_samples_are_taken_at_its_end():
    """Timeline.t is where each bin starts; nr_free and in_use are the state after the bin's
    last event, so they belong at t + bin (Timeline.ends(), where the figures plot them)."""
    records, _ = read_trace(bundled_trace())
    rp = Replay(slab=False).run(bundled_trace())
    tl = rp.timeline
    first = records[0][1]
    part = Replay(slab=False)
    part.feed([r for r in records if r[1] < first + tl.bin])     # the first bin's events only
    assert tl.in_use[0] == part.in_use
    assert tl.nr_free["Normal"][0] == part.zones[2].nr_free()
    assert tl.ends()[0] == tl.t[0] + tl.bin == tl.bin

"""Fragmentation metrics (mm/vmstat.c), pageblock maps, and the mobility-grouping experiment.

Index values are worked out by hand from ``__fragmentation_index()``,
``unusable_free_index()`` and ``extfrag_for_order()`` in the comments; the snapshot ones are
computed from the real machine's own /proc/buddyinfo."""

from __future__ import annotations

import pytest

from kmmlib.errors import BadRequest
from kmmlib.mm.fragmentation import (
    PageblockModel,
    WorkloadSpec,
    extfrag_for_order,
    fill_contig_page_info,
    fragmentation_index,
    fragmentation_score_zone_weighted,
    free_pages_by_order,
    largest_free_order,
    mixed_pageblocks,
    mobility_workload,
    pageblock_map,
    render_extfrag_index,
    render_unusable_index,
    run_mobility_experiment,
    unusable_free_index,
)
from kmmlib.mm.migratetype import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from kmmlib.mm.page_alloc import Zone
from kmmlib.procfs.buddyinfo import parse_buddyinfo
from kmmlib.procfs.pagetypeinfo import from_zones
from kmmlib.procfs.source import snapshot
from kmmlib.procfs.zoneinfo import parse_zoneinfo


def snap_buddyinfo():
    return {b.zone: b for b in parse_buddyinfo(snapshot().read("buddyinfo"))}


def test_contig_page_info():
    info = fill_contig_page_info([3, 0, 2, 1], 2)
    # free pages 3 + 2*4 + 8 = 19; blocks 6; order-2 pieces: 2 + (1 << 1) = 4.
    assert (info.free_pages, info.free_blocks_total, info.free_blocks_suitable) == (19, 6, 4)


def test_fragmentation_index_by_hand():
    nr = [64, 0, 0, 0, 0, 0, 0, 0]             # 64 single free pages
    # order 4: 1000 - (1000 + 64*1000/16) / 64 = 1000 - 5000 // 64 = 1000 - 78 = 922.
    assert fragmentation_index(nr, 4) == 922
    assert fragmentation_index(nr, 0) == -1000      # an order-0 request would succeed
    assert fragmentation_index([0] * 8, 3) == 0     # nothing free at all
    # Few big blocks, none big enough: lack of memory, index near 0.
    # 6 order-8 blocks, order 9: 1000 - (1000 + 1536*1000/512) / 6 = 1000 - 666 = 334.
    assert fragmentation_index([0] * 8 + [6, 0, 0], 9) == 334
    with pytest.raises(BadRequest):
        fragmentation_index(nr, 8)                  # above MAX_PAGE_ORDER of this list


def test_unusable_free_index_and_extfrag_by_hand():
    nr = [64, 0, 0, 0, 0, 0, 0, 0]
    assert unusable_free_index(nr, 0) == 0
    assert unusable_free_index(nr, 4) == 1000
    assert unusable_free_index([0] * 8, 4) == 1000  # no free memory counts as all unusable
    # [3, 0, 2, 1] at order 2: (19 - 4 * 4) * 1000 / 19 = 157; in percent 15.
    assert unusable_free_index([3, 0, 2, 1], 2) == 157
    assert extfrag_for_order([3, 0, 2, 1], 2) == 15
    assert extfrag_for_order([0] * 4, 2) == 0


def test_indices_of_the_snapshot_normal_zone():
    # The real ZONE_NORMAL: 406 163 21 10 4 3 1 7 13 11 30 blocks; 41696 free pages.
    normal = snap_buddyinfo()["Normal"]
    assert normal.free_pages == 41696
    assert all(fragmentation_index(normal, o) == -1000 for o in range(11))
    # order 10: (41696 - 30 * 1024) * 1000 // 41696 = 10976000 // 41696 = 263.
    assert unusable_free_index(normal, 10) == 263
    # order 9: (41696 - (11 + 60) * 512) * 100 // 41696 = 534400 // 41696 = 12.
    assert extfrag_for_order(normal, 9) == 12
    assert largest_free_order(normal) == 10
    assert free_pages_by_order(normal)[7] == 7 * 128
    # Proactive compaction's weighted score: present 5505024 of the node's 6291358 pages.
    zi = {z.name: z for z in parse_zoneinfo(snapshot().read("zoneinfo"))}
    node_present = sum(z.present for z in zi.values())
    assert node_present == 6291358
    assert fragmentation_score_zone_weighted(normal, zi["Normal"].present, node_present) == \
        5505024 * 12 // 6291359


def test_debugfs_renderings():
    lines = render_extfrag_index(snap_buddyinfo().values()).splitlines()
    # "%2d.%03d " per order: -1000 prints as -1.000.
    assert lines[2] == "Node 0, zone   Normal " + "-1.000 " * 11
    z = Zone(128, pageblock_order=4, max_order=7)
    assert [z.alloc(0) for _ in range(128)] == list(range(128))
    for p in range(0, 128, 2):
        z.free(p, 0)
    # 64 single pages: order 1: 1000 - (1000 + 64000 / 2) / 64 = 1000 - 515 = 485 → " 0.485";
    # order 5: 1000 - (1000 + 64000 / 32) / 64 = 1000 - 46 = 954.
    assert render_extfrag_index([z]) == ("Node 0, zone   Normal -1.000  0.485  0.735  0.860  "
                                         "0.922  0.954  0.969  0.977 \n")
    assert render_unusable_index([z]) == ("Node 0, zone   Normal 0.000 1.000 1.000 1.000 1.000 "
                                          "1.000 1.000 1.000 \n")


def test_pageblock_map_and_mixed_blocks():
    # 1024 pages, 2 pageblocks, all allocated movable; page 100 freed and taken back by an
    # Unmovable request: its only fallback is that single page, in a pageblock with 1 free and
    # 511 movable pages (alike 0 < 256): no claim, a steal → pageblock 0 is Movable and mixed.
    z = Zone(1024)
    assert z.alloc(9) == 0 and z.alloc(9) == 512
    z.free(0, 9)
    assert [z.alloc(0) for _ in range(512)] == list(range(512))
    z.free(100, 0)
    assert z.alloc(0, MIGRATE_UNMOVABLE) == 100
    pbm = pageblock_map(z)
    assert pbm.nr_pageblocks == 2 and pbm.count_by_type() == [0, 2, 0, 0, 0]
    assert pbm.pages[0, MIGRATE_UNMOVABLE] == 1 and pbm.pages[0, MIGRATE_MOVABLE] == 511
    assert pbm.pages[1, MIGRATE_MOVABLE] == 512          # one order-9 allocation
    assert pbm.is_mixed(0) and pbm.is_pinned(0) and not pbm.is_mixed(1)
    assert pbm.nr_free_whole() == 0 and pbm.used(0) == 512
    assert mixed_pageblocks(z) == [0, 1, 0, 0, 0]
    # The same counts as /proc/pagetypeinfo's block table and mixed table.
    info = from_zones([z], page_owner=True)
    assert list(info.zones[0].blocks.values()) == pbm.count_by_type()
    assert list(info.zones[0].mixed.values()) == [0, 1, 0, 0, 0]
    assert pbm.text().splitlines()[1] == "   mixed !"
    z.free(100, 0)
    assert mixed_pageblocks(z) == [0] * 5


def test_workload_is_deterministic_and_consistent():
    spec = WorkloadSpec(nr_pages=2048, cycles=1, steps_per_cycle=4000, seed=5)
    ops = mobility_workload(spec)
    assert ops == mobility_workload(spec)
    assert ops != mobility_workload(WorkloadSpec(nr_pages=2048, cycles=1,
                                                 steps_per_cycle=4000, seed=6))
    allocated, freed = set(), set()
    for op in ops:
        if op[0] == "alloc":
            assert op[3] not in allocated
            allocated.add(op[3])
        elif op[0] == "free":
            assert op[1] in allocated and op[1] not in freed
            freed.add(op[1])
    assert sum(op[0] == "compact" for op in ops) == 1


def test_pageblock_model_steps_and_follows_compaction():
    from kmmlib.stepper import Stepper

    spec = WorkloadSpec(nr_pages=2048, cycles=1, steps_per_cycle=3000, seed=2)
    ops = mobility_workload(spec)
    st = Stepper(lambda: PageblockModel(2048), ops)
    st.run()
    model = st.model
    model.zone.check()
    # Every live handle points at an allocation of its order, after compaction moved pages.
    for pfn, order in model.handles.values():
        assert model.zone.allocation_order(pfn) == order
    assert model.compactions and model.compactions[0].moves
    st.back()
    assert st.pos == len(ops) - 1
    assert "pageblocks:" in st.state_text()


def test_grouping_by_mobility_makes_a_measurable_difference():
    # The chapter's experiment: the same requests with grouping on and off. With grouping on,
    # kernel pages stay in a few pageblocks, so compaction can empty the rest: whole free
    # pageblocks (THP-sized blocks) come back; with it off, kernel pages end up everywhere.
    spec = WorkloadSpec()
    ops = mobility_workload(spec)
    on = run_mobility_experiment(True, spec, ops=ops)
    off = run_mobility_experiment(False, spec, ops=ops)
    assert on.failed == off.failed == 0
    assert on.pinned[-1] * 4 <= on.model.pageblock_map().nr_pageblocks
    assert off.pinned[-1] >= 0.9 * off.model.pageblock_map().nr_pageblocks
    assert on.huge_blocks[-1] > 0 and off.huge_blocks[-1] == 0
    assert on.fragindex[-1] == -1000 and off.fragindex[-1] > 500
    assert on.largest_order[-1] > off.largest_order[-1]
    on.model.zone.check()
    off.model.zone.check()


def test_pageblock_order_for():
    from kmmlib.mm.migratetype import pageblock_order_for

    # min(HPAGE_PMD_ORDER, MAX_PAGE_ORDER): 2 MiB pageblocks with 4 KiB pages (the snapshot's
    # /proc/pagetypeinfo says "Page block order: 9").
    assert pageblock_order_for(12, 10) == 9
    assert pageblock_order_for(14, 11) == 11 and pageblock_order_for(16, 13) == 13
    assert pageblock_order_for(12, 8) == 8
    # arm64's default MAX_PAGE_ORDER for the page size (ARCH_FORCE_MAX_ORDER: 10, 11, 13).
    assert (pageblock_order_for(12), pageblock_order_for(14), pageblock_order_for(16)) == \
        (9, 11, 13)


def test_explorer_widget_shows_the_models_text():
    from kmmlib.widgets.fragmentation import PageblockExplorer, pageblock_svg

    w = PageblockExplorer(nr_pages=4096, steps_per_cycle=4000, cycles=1, columns=4)
    assert w.stepper.pos == 0
    n = w.next_fallback()
    step = w.stepper.history[-1]
    assert n == w.stepper.pos and any(e.kind in ("claim", "steal") for e in step.events)
    assert "extfrag:" in w.text and w.text == w.stepper.state_text()
    w.hundred_button.click()
    assert w.stepper.pos == n + 100
    w.steps_widget.back_button.click()
    assert w.stepper.pos == n + 99
    w.compact_button.click()
    assert w.stepper.history[-1].op == ("compact",)
    w.grouping.value = False                       # reloads the workload with grouping off
    assert w.stepper.pos == 0 and not w.stepper.model.grouping
    svg = pageblock_svg(w.stepper.model.pageblock_map(), 4)
    assert svg.startswith("<svg") and svg.count("<g>") == 8


def test_compacting_mid_workload_lets_the_workload_go_on():
    """Chapter 07 §8: compact, then +100 requests moves on. The compaction goes in where the
    learner is, before the requests not run yet; reset brings back the workload alone."""
    from kmmlib.widgets.fragmentation import PageblockExplorer

    w = PageblockExplorer(nr_pages=4096, steps_per_cycle=4000, cycles=1, columns=4)
    script = len(w.stepper.ops)
    for _ in range(10):
        w.steps_widget.step_button.click()
    w.compact_button.click()
    assert w.stepper.pos == 11 and w.stepper.history[-1].op == ("compact",)
    assert len(w.stepper.ops) == script + 1 and not w.hundred_button.disabled
    w.hundred_button.click()
    assert w.stepper.pos == 111
    assert [s.op[0] for s in w.stepper.history[11:]] == [op[0] for op in w.stepper.ops[11:111]]
    w.steps_widget.reset_button.click()
    assert w.stepper.pos == 0 and len(w.stepper.ops) == script

"""MemAvailable recomputed as si_mem_available() does, against the kernel's own figure."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import ParseError
from kmmlib.mm.available import mem_available, si_mem_available
from kmmlib.mm.watermark import calculate_totalreserve_pages
from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.procfs.source import SNAPSHOT_DIR, snapshot
from kmmlib.procfs.zoneinfo import parse_zoneinfo


@pytest.fixture(scope="module")
def snap():
    src = snapshot()
    return parse_meminfo(src.read("meminfo")), parse_zoneinfo(src.read("zoneinfo"))


def test_equals_the_kernels_figure_on_the_snapshot(snap):
    mi, zones = snap
    result = mem_available(mi, zones)
    assert result.available_kb == mi["MemAvailable"]
    assert result.kernel == result.available


def test_terms_add_up(snap):
    result = mem_available(*snap)
    assert sum(pages for _, pages, _ in result.terms()) == result.available
    assert result.wmark_low == sum(z.low for z in snap[1])           # empty zones count too
    assert result.free * 4 == snap[0]["MemFree"]


def test_zone_free_pages_would_be_wrong_here(snap):
    # Why MemFree: on this machine zoneinfo's free pages miss the memory deferred struct page
    # init had not handed to the zones yet, and the answer would be ~20 GiB short.
    mi, zones = snap
    zone_free_kb = sum(z.pages_free for z in zones) * 4
    wrong = mem_available(dict(mi, MemFree=zone_free_kb), zones)
    assert mi["MemAvailable"] - wrong.available_kb > 19 * 2**20
    assert sum(z.managed for z in zones) * 4 < mi["MemTotal"]       # the same cause


def test_totalreserve_follows_the_kernel_loop(snap):
    zones = snap[1]
    total = calculate_totalreserve_pages(zones)
    # each zone contributes at most its managed pages, and at least its high watermark or all
    # of a small zone; the empty Movable zone (high 32, managed 0) contributes nothing
    assert total <= sum(z.managed for z in zones)
    assert total >= sum(min(z.high, z.managed) for z in zones)
    assert calculate_totalreserve_pages([zones[3]]) == 0
    # lowmem_reserve entries below the zone's own index are not looked at (j starts at i)
    bumped = [dataclasses.replace(z) for z in zones]
    bumped[2] = dataclasses.replace(zones[2], protection=[10**6, 0, 0, 0, 0])
    assert calculate_totalreserve_pages(bumped) == total


def test_a_watermark_boost_moves_wmark_low_but_not_totalreserve(snap):
    """zoneinfo prints boosted watermarks; si_mem_available() sums the boosted low marks, but
    totalreserve_pages was summed when the watermarks were set up, with no boost."""
    mi, zones = snap
    before = mem_available(mi, zones)
    boosted = [dataclasses.replace(z, stats=dict(z.stats)) for z in zones]
    z = next(z for z in boosted if z.name == "Normal")
    z.stats["boost"] = 512                      # one pageblock: boost_watermark()'s step
    z.min, z.low, z.high, z.promo = (v + 512 for v in (z.min, z.low, z.high, z.promo))
    after = mem_available(mi, boosted)
    assert after.totalreserve == before.totalreserve == calculate_totalreserve_pages(zones)
    assert after.wmark_low == before.wmark_low + 512
    assert after.available == si_mem_available(
        after.free, before.totalreserve, before.wmark_low + 512, mi["Active(file)"] // 4,
        mi["Inactive(file)"] // 4, mi["SReclaimable"] // 4,
        max(0, mi.get("KReclaimable", mi["SReclaimable"]) // 4 - mi["SReclaimable"] // 4))


def test_the_two_caps_and_the_floor():
    # pagecache and reclaimable each keep min(half, wmark_low) back
    assert si_mem_available(1000, 0, 10, 50, 50, 0) == 1000 + 100 - 10
    assert si_mem_available(1000, 0, 10**6, 50, 50, 0) == 1000 + 100 - 50
    assert si_mem_available(1000, 0, 10**6, 0, 0, 7, 2) == 1000 + 9 - 4   # integer halving
    assert si_mem_available(10, 10**6, 5, 0, 0, 0) == 0                    # never below 0


def test_missing_field_is_a_clear_error(snap):
    mi, zones = snap
    broken = {k: v for k, v in mi.items() if k != "Active(file)"}
    with pytest.raises(ParseError, match="Active\\(file\\)"):
        mem_available(broken, zones)
    with pytest.raises(ParseError, match="no zones"):
        mem_available(mi, [])


def test_kmm_available_json(capsys, snap):
    assert main(["available", "--json", "--from", str(SNAPSHOT_DIR)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["available_kb"] == data["kernel_available_kb"] == snap[0]["MemAvailable"]
    assert set(data["terms_pages"]) == {"free", "totalreserve", "wmark_low", "pagecache",
                                        "pagecache_kept", "reclaimable", "reclaimable_kept"}


def test_kmm_available_table_subprocess(snap):
    run = subprocess.run([sys.executable, "-m", "kmmlib", "available", "--from",
                          str(SNAPSHOT_DIR)], capture_output=True, text=True, check=True)
    last = run.stdout.splitlines()[-1]
    assert "(equal)" in last and str(snap[0]["MemAvailable"]) in last
    assert run.stderr == ""


def test_fallback_note_when_files_are_missing(tmp_path, capsys):
    (tmp_path / "meminfo").write_text(snapshot().read("meminfo"))   # no zoneinfo here
    assert main(["available", "--from", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "zoneinfo: not found" in err and "bundled snapshot" in err


@pytest.mark.skipif(not Path("/proc/zoneinfo").exists(), reason="no /proc here")
def test_live_machine():
    # meminfo and zoneinfo are two reads; accept the comparison only when the zone figures
    # si_mem_available() uses (watermarks, protection, managed) did not move around it.
    def fixed(zones):
        return [(z.low, z.high, z.managed, z.protection) for z in zones]
    for _ in range(20):
        z1 = parse_zoneinfo(Path("/proc/zoneinfo").read_text())
        mi = parse_meminfo(Path("/proc/meminfo").read_text())
        z2 = parse_zoneinfo(Path("/proc/zoneinfo").read_text())
        if fixed(z1) == fixed(z2):
            assert mem_available(mi, z1).available_kb == mi["MemAvailable"]
            return
    pytest.skip("the zones kept changing under us")


def test_waterfall_picture(snap):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kmmlib.viz.meminfo import plot_available

    result = mem_available(*snap)
    fig = plot_available(result)
    bars = fig.axes[0].patches
    assert len(bars) == len(result.terms()) + 1
    # each term's bar starts where the previous one ended; the last bar is the result
    ends = [bars[0].get_height()]
    for bar in bars[1:-1]:
        start = ends[-1]
        assert min(bar.get_y(), bar.get_y() + bar.get_height()) == pytest.approx(
            min(start, start + bar.get_height()))
        ends.append(start + bar.get_height())
    assert ends[-1] == pytest.approx(result.available_kb / 1024)
    assert bars[-1].get_height() == pytest.approx(result.available_kb / 1024)
    plt.close(fig)

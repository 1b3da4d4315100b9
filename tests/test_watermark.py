"""Watermarks, lowmem_reserve, totalreserve against a real kernel's figures; `kmm watermarks`.

The bundled snapshot's /proc/zoneinfo holds a Linux 6.18 kernel's own min/low/high/promo and
protection arrays; every recomputation here must give exactly those numbers from the zones'
managed pages and the three sysctls beside them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.events import Collect
from kmmlib.mm import gfp
from kmmlib.mm.watermark import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    WMARK_LOW,
    WatermarkModel,
    Watermarks,
    burst_ops,
    calculate_min_free_kbytes,
    calculate_totalreserve_pages,
    gfp_to_alloc_flags,
    implied_lowmem_pages,
    nr_free_zone_pages,
    recompute_zoneinfo,
    run_burst,
    set_recommended_min_free_kbytes,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    watermark_reserve_min,
    zone_watermark_ok,
)
from kmmlib.mm.zone import ZoneConfig
from kmmlib.procfs.source import ProcSource
from kmmlib.procfs.zoneinfo import parse_zoneinfo
from kmmlib.stepper import Stepper

ROOT = Path(__file__).resolve().parent.parent
SNAP = ROOT / "kmmlib" / "data" / "snapshot"


def _sysctls(src: ProcSource) -> tuple[int, int, list[int]]:
    return (int(src.read("min_free_kbytes")), int(src.read("watermark_scale_factor")),
            [int(x) for x in src.read("lowmem_reserve_ratio").split()])


@pytest.fixture(scope="module")
def snap():
    src = ProcSource(SNAP, fallback=False)
    zones = parse_zoneinfo(src.read("zoneinfo"))
    mfk, wsf, ratio = _sysctls(src)
    cfg = ZoneConfig.from_names([z.name for z in zones])
    return SimpleNamespace(zones=zones, mfk=mfk, wsf=wsf, ratio=ratio, cfg=cfg,
                           meminfo=src.read("meminfo"))


# -- the formulas, on the real kernel's figures ------------------------------------------------

def test_setup_per_zone_wmarks_equals_the_kernels(snap):
    got = setup_per_zone_wmarks([z.managed for z in snap.zones], snap.cfg.wmark_small_min(),
                                snap.mfk, snap.wsf)
    want = [Watermarks(z.min, z.low, z.high, z.promo) for z in snap.zones]
    assert [z.stats["boost"] for z in snap.zones] == [0] * len(snap.zones)  # no boost to add
    assert got == want


def test_movable_counted_as_lowmem_as_in_61_would_not_match(snap):
    # Linux 6.1 counted ZONE_MOVABLE as lowmem; the 6.18 snapshot shows the fixed min of 32.
    old = setup_per_zone_wmarks([z.managed for z in snap.zones],
                                [n == "HighMem" for n in snap.cfg.names], snap.mfk, snap.wsf)
    movable = snap.cfg.index("Movable")
    assert old[movable].min == 0 != snap.zones[movable].min == 32


def test_lowmem_reserve_equals_the_protection_arrays(snap):
    got = setup_per_zone_lowmem_reserve([z.managed for z in snap.zones], snap.ratio)
    assert got == [z.protection for z in snap.zones]


def test_lowmem_reserve_zero_ratio_or_empty_zone_protects_nothing():
    r = setup_per_zone_lowmem_reserve([100, 0, 6400, 3200], [0, 256, 32, 0])
    assert r[0] == [0, 0, 0, 0]            # ratio 0
    assert r[1] == [0, 0, 0, 0]            # zone without managed pages
    assert r[2] == [0, 0, 0, 3200 // 32]   # only higher zones count
    assert r[3] == [0, 0, 0, 0]            # the top zone has nothing above it


def test_thp_recommendation_is_the_snapshots_min_free_kbytes(snap):
    # 3 populated zones up to Normal; nr_free_buffer_pages() is managed - high over them.
    normal = snap.cfg.index("Normal")
    user = [z for z in snap.zones if snap.cfg.index(z.name) <= normal]
    buffer_pages = nr_free_zone_pages([z.managed for z in snap.zones],
                                      [z.high for z in snap.zones], normal)
    assert buffer_pages == sum(z.managed - z.high for z in user)
    nr_zones = sum(1 for z in user if z.present)
    assert set_recommended_min_free_kbytes(nr_zones, buffer_pages, 0) == snap.mfk
    # The √ rule alone gives much less: THP is why x86_64 machines keep 66 MiB free.
    assert calculate_min_free_kbytes(buffer_pages * 4) < snap.mfk


def test_thp_recommendation_capped_at_5_percent_and_never_lowers():
    assert set_recommended_min_free_kbytes(3, 20 * 1000, 0) == 1000 * 4
    assert set_recommended_min_free_kbytes(3, 10**9, 10**6) == 10**6


@pytest.mark.parametrize("lowmem_mb, want_kb", [
    # The table in the comment above calculate_min_free_kbytes() (mm/page_alloc.c).
    (16, 512), (32, 724), (64, 1024), (128, 1448), (256, 2048), (512, 2896), (1024, 4096),
    (2048, 5792), (4096, 8192), (8192, 11584), (16384, 16384)])
def test_min_free_kbytes_follows_the_kernels_own_table(lowmem_mb, want_kb):
    got = calculate_min_free_kbytes(lowmem_mb * 1024)
    if lowmem_mb == 8192:
        # The comment rounds: int_sqrt(8388608 * 16) is 11585 (11585² ≤ 134217728 < 11586²).
        assert got == 11585 and 11585**2 <= lowmem_mb * 1024 * 16 < 11586**2
    else:
        assert got == want_kb


def test_min_free_kbytes_clamps_and_respects_the_user():
    assert calculate_min_free_kbytes(0) == 128
    assert calculate_min_free_kbytes(1 << 40) == 262144
    assert calculate_min_free_kbytes(1024 * 1024, user_min_free_kbytes=90000) == 90000
    assert calculate_min_free_kbytes(1024 * 1024, user_min_free_kbytes=100) == 4096


def test_totalreserve_gives_the_kernels_memavailable(snap):
    # si_mem_available() subtracts totalreserve_pages from free memory: with ours, the
    # snapshot's MemAvailable comes out to the kB.
    total = calculate_totalreserve_pages(snap.zones)
    mi = {line.split(":")[0]: int(line.split()[1]) // 4 for line in snap.meminfo.splitlines()}
    wmark_low = sum(z.low for z in snap.zones)
    pagecache = mi["Active(file)"] + mi["Inactive(file)"]
    reclaimable = mi["KReclaimable"]
    available = (mi["MemFree"] - total + pagecache - min(pagecache // 2, wmark_low)
                 + reclaimable - min(reclaimable // 2, wmark_low))
    assert available == mi["MemAvailable"]


def test_totalreserve_caps_each_zone_at_its_managed_pages():
    zones = [SimpleNamespace(managed=10, high=8, protection=[0, 5]),
             SimpleNamespace(managed=100, high=8, protection=[0, 0])]
    assert calculate_totalreserve_pages(zones) == 10 + 8


def test_recompute_zoneinfo_matches_every_zone(snap):
    checks = recompute_zoneinfo(snap.zones, snap.mfk, snap.wsf, snap.ratio)
    assert [c.name for c in checks] == [z.name for z in snap.zones]
    assert all(c.ok for c in checks), [c.mismatches for c in checks]


def test_changed_managed_pages_show_as_a_mismatch_and_the_old_total_is_recoverable(snap):
    # As if deferred struct page init had since given Normal all its present pages: the
    # kernel's printed watermarks stay those of the old managed figures.
    zones = [SimpleNamespace(**{**vars(z)}) for z in snap.zones]
    normal = next(z for z in zones if z.name == "Normal")
    normal.managed = normal.present
    checks = recompute_zoneinfo(zones, snap.mfk, snap.wsf, snap.ratio)
    bad = {c.name: c.mismatches for c in checks if not c.ok}
    assert set(bad) == {"DMA", "DMA32", "Normal"} and "min" in bad["DMA32"]
    old_lowmem = sum(z.managed for z in snap.zones if z.name in ("DMA", "DMA32", "Normal"))
    dma32 = next(z for z in snap.zones if z.name == "DMA32")
    lo, hi = implied_lowmem_pages(snap.mfk // 4, dma32.managed, dma32.min)
    assert lo <= old_lowmem <= hi
    new_lowmem = sum(z.managed for z in zones if z.name in ("DMA", "DMA32", "Normal"))
    assert new_lowmem > old_lowmem and not lo <= new_lowmem <= hi


def test_boost_is_added_as_zoneinfo_prints_it(snap):
    zones = [SimpleNamespace(**{**vars(z), "stats": dict(z.stats)}) for z in snap.zones]
    z = next(z for z in zones if z.name == "Normal")
    z.stats["boost"] = 512
    z.min, z.low, z.high, z.promo = (v + 512 for v in (z.min, z.low, z.high, z.promo))
    assert all(c.ok for c in recompute_zoneinfo(zones, snap.mfk, snap.wsf, snap.ratio))


def test_kmm_watermarks_totalreserve_leaves_the_boost_out(tmp_path):
    """The same snapshot with Normal boosted by a pageblock: its watermarks still match, and
    totalreserve_pages (summed at setup, unboosted) does not move."""
    from kmmlib.commands.watermarks import compare
    from kmmlib.procfs.source import SNAPSHOT_DIR, ProcSource

    shutil.copytree(SNAPSHOT_DIR, tmp_path / "snap")
    text = (tmp_path / "snap" / "zoneinfo").read_text()
    head, normal = text.split("zone   Normal\n", 1)
    block, rest = normal.split("        spanned", 1)
    block = re.sub(r"(boost|min|low|high|promo)( +)(\d+)",
                   lambda m: f"{m[1]}{m[2]}{int(m[3]) + 512}", block)
    (tmp_path / "snap" / "zoneinfo").write_text(head + "zone   Normal\n" + block + "        spanned"
                                                + rest)
    plain, boosted = compare(ProcSource(SNAPSHOT_DIR)), compare(ProcSource(tmp_path / "snap"))
    assert boosted["match"] and [z["boost"] for z in boosted["zones"]].count(512) == 1
    assert boosted["totalreserve_pages"] == plain["totalreserve_pages"]


def test_kmm_watermarks_table_fits_80_columns(tmp_path, capsys):
    """The protection arrays are wider than the numbers: they get lines of their own, and a
    difference shows both arrays, one under the other."""
    from kmmlib.cli import main
    from kmmlib.procfs.source import SNAPSHOT_DIR

    assert main(["watermarks", "--from", str(SNAPSHOT_DIR)]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 80
    assert "protection (0, 3019, 3659, 3659, 3659), the kernel's too  ✔" in out
    shutil.copytree(SNAPSHOT_DIR, tmp_path / "d")
    zi = tmp_path / "d" / "zoneinfo"
    zi.write_text(zi.read_text().replace("(0, 3019, 3659, 3659, 3659)",
                                         "(0, 3019, 3659, 3659, 3600)", 1))
    assert main(["watermarks", "--from", str(tmp_path / "d")]) == 1
    lines = capsys.readouterr().out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.endswith("computed  ✘"))
    assert lines[i].split("protection ")[1].startswith("(0, 3019, 3659, 3659, 3659)")
    assert lines[i + 1].strip() == "(0, 3019, 3659, 3659, 3600) kernel"


def test_min_free_kbytes_origin_names_the_rule_that_gave_it(tmp_path):
    """int_sqrt(lowmem_kbytes * 16), where lowmem is nr_free_buffer_pages(): every managed page
    of DMA..Normal at boot (the marks are 0), the pages above the high marks when the rule runs
    again later (THP turned off); THP's recommendation on the snapshot; anything else is
    neither."""
    from kmmlib.commands.watermarks import compare
    from kmmlib.procfs.source import SNAPSHOT_DIR, ProcSource

    assert compare(ProcSource(SNAPSHOT_DIR))["min_free_kbytes"]["origin"].startswith("THP")
    zones = [z for z in parse_zoneinfo((SNAPSHOT_DIR / "zoneinfo").read_text())
             if z.name in ("DMA", "DMA32", "Normal")]
    boot = math.isqrt(sum(z.managed for z in zones) * 4 * 16)
    later = math.isqrt(sum(max(0, z.managed - z.high) for z in zones) * 4 * 16)
    assert boot != later
    for value, origin in ((boot, "calculate_min_free_kbytes() at boot"),
                          (later, "calculate_min_free_kbytes() after boot"),
                          (later + 1, "neither rule")):
        shutil.copytree(SNAPSHOT_DIR, tmp_path / str(value))
        (tmp_path / str(value) / "min_free_kbytes").write_text(f"{value}\n")
        got = compare(ProcSource(tmp_path / str(value)))["min_free_kbytes"]["origin"]
        assert got.startswith(origin), (value, got)


@given(st.integers(1, 10**7), st.integers(1, 10**7), st.integers(1, 10**5))
def test_implied_lowmem_range_is_exact(pages_min, managed, lowmem):
    k = pages_min * managed // lowmem
    if k == 0:
        return
    lo, hi = implied_lowmem_pages(pages_min, managed, k)
    assert lo <= lowmem <= hi
    assert pages_min * managed // lo == k == pages_min * managed // hi
    assert pages_min * managed // (hi + 1) != k
    assert lo == 1 or pages_min * managed // (lo - 1) != k


# -- properties of the arithmetic ---------------------------------------------------------------

@given(st.lists(st.integers(0, 1 << 24), min_size=1, max_size=5).filter(lambda m: m[0] > 0),
       st.integers(128, 262144), st.integers(1, 3000))
def test_wmarks_split_min_free_kbytes_in_proportion(managed, mfk, wsf):
    small = [False] * len(managed)
    wm = setup_per_zone_wmarks(managed, small, mfk, wsf)
    pages_min = mfk // 4
    total = sum(managed)
    for m, w in zip(managed, wm, strict=True):
        assert w.min == pages_min * m // total
        delta = w.low - w.min
        assert w.high - w.low == w.promo - w.high == delta
        assert delta == max(w.min // 4, m * wsf // 10000)
    # Rounding down each share loses less than one page per zone.
    assert pages_min - len(managed) < sum(w.min for w in wm) <= pages_min


@given(st.integers(0, 1 << 30))
def test_highmem_min_is_managed_over_1024_within_32_and_128(managed):
    w = setup_per_zone_wmarks([1 << 20, managed], [False, True], 65536)[1]
    assert 32 <= w.min <= 128
    assert w.min == managed // 1024 or (managed // 1024 < 32 and w.min == 32) \
        or (managed // 1024 > 128 and w.min == 128)


def test_bad_requests():
    with pytest.raises(BadRequest, match="one entry per zone"):
        setup_per_zone_wmarks([1, 2], [False], 1024)
    with pytest.raises(BadRequest, match="no lowmem"):
        setup_per_zone_wmarks([0, 5], [False, True], 1024)
    with pytest.raises(BadRequest, match="negative"):
        setup_per_zone_wmarks([-1], [False], 1024)
    with pytest.raises(BadRequest, match="negative"):
        setup_per_zone_lowmem_reserve([1, 2], [-1, 0])
    with pytest.raises(BadRequest, match="invalid order"):
        zone_watermark_ok(100, -1, 10, [0], 0)
    with pytest.raises(BadRequest, match="highest_zoneidx"):
        zone_watermark_ok(100, 0, 10, [0, 0], 2)
    with pytest.raises(BadRequest, match="free_blocks"):
        zone_watermark_ok(100, 2, 10, [0], 0)
    with pytest.raises(BadRequest, match="lowmem_reserve_ratio has 3"):
        recompute_zoneinfo(parse_zoneinfo((SNAP / "zoneinfo").read_text()), 1024, 10, [1, 2, 3])


# -- the watermark check and the reserves ------------------------------------------------------

def _ok(free, mark=1000, flags=0, reserve=(0, 0, 0), highest=2, **kw):
    return zone_watermark_ok(free, 0, mark, list(reserve), highest, flags, **kw)


def test_watermark_ok_needs_more_than_mark_plus_lowmem_reserve():
    assert not _ok(1000) and _ok(1001)
    assert not _ok(1640, reserve=(0, 0, 640)) and _ok(1641, reserve=(0, 0, 640))
    assert _ok(1001, reserve=(0, 640, 0), highest=2)    # only the caller's entry counts


def test_gfp_atomic_keeps_three_eighths_of_min():
    # mm/internal.h: non-blocking __GFP_HIGH callers may use 62.5 % of the min watermark.
    atomic = gfp_to_alloc_flags(gfp.GFP_ATOMIC)
    assert atomic & ALLOC_MIN_RESERVE and atomic & ALLOC_NON_BLOCK and atomic & ALLOC_KSWAPD
    assert watermark_reserve_min(8000, atomic) == 8000 * 3 // 8
    assert not _ok(3000, 8000, atomic) and _ok(3001, 8000, atomic)
    # __GFP_HIGH in a caller that can block: half of min.
    high = gfp_to_alloc_flags(gfp.GFP_KERNEL | gfp.__GFP_HIGH)
    assert high & ALLOC_MIN_RESERVE and not high & ALLOC_NON_BLOCK
    assert watermark_reserve_min(8000, high) == 4000
    # GFP_NOWAIT cannot block either, but gets no extra reserve (Linux 6.3+).
    nowait = gfp_to_alloc_flags(gfp.GFP_NOWAIT)
    assert nowait & ALLOC_NON_BLOCK and watermark_reserve_min(8000, nowait) == 8000
    assert watermark_reserve_min(8000, ALLOC_OOM) == 4000


def test_gfp_to_alloc_flags_of_common_masks():
    assert gfp_to_alloc_flags(gfp.GFP_KERNEL) == ALLOC_KSWAPD
    assert gfp_to_alloc_flags(gfp.GFP_ATOMIC, order=2) & ALLOC_HIGHATOMIC
    assert not gfp_to_alloc_flags(gfp.GFP_NOWAIT, order=2) & ALLOC_HIGHATOMIC
    assert not gfp_to_alloc_flags(gfp.GFP_ATOMIC | gfp.__GFP_NOMEMALLOC) & ALLOC_NON_BLOCK
    assert not gfp_to_alloc_flags(gfp.GFP_KERNEL) & ALLOC_RESERVES


def test_unusable_pages_are_not_counted():
    # An order-3 request cannot use the 7 pages beyond its first; highatomic and CMA pages
    # are subtracted unless the caller may use them.
    assert not zone_watermark_ok(1007, 3, 1000, [0], 0, free_blocks=[0, 0, 0, 1])
    assert zone_watermark_ok(1008, 3, 1000, [0], 0, free_blocks=[0, 0, 0, 1])
    assert not zone_watermark_ok(1008, 3, 1000, [0], 0, free_blocks=[9, 9, 9, 0, 0])
    assert not _ok(1100, nr_free_highatomic=100, highest=0, reserve=(0,))
    assert _ok(1100, flags=ALLOC_OOM, nr_free_highatomic=100, highest=0, reserve=(0,))
    assert not _ok(1100, nr_free_cma=100, highest=0, reserve=(0,))
    assert _ok(1100, flags=ALLOC_CMA, nr_free_cma=100, highest=0, reserve=(0,))


def test_lowmem_reserve_keeps_normal_allocations_out_of_dma32(snap):
    # On the snapshot, DMA32 refuses a GFP_KERNEL page (highest zone Normal) unless it has
    # more than low + 640 free, but gives a GFP_DMA32 page down to low.
    dma32 = next(z for z in snap.zones if z.name == "DMA32")
    kernel_idx = gfp.gfp_zone(gfp.GFP_KERNEL, snap.cfg.names)
    dma32_idx = gfp.gfp_zone(gfp.GFP_DMA32, snap.cfg.names)
    edge = dma32.low + dma32.protection[kernel_idx]
    assert dma32.protection[kernel_idx] > 0
    for free, kernel_ok in ((edge, False), (edge + 1, True)):
        assert zone_watermark_ok(free, 0, dma32.low, dma32.protection, kernel_idx) is kernel_ok
    assert zone_watermark_ok(dma32.low + 1, 0, dma32.low, dma32.protection, dma32_idx)
    assert Watermarks(dma32.min, dma32.low, dma32.high, dma32.promo)[WMARK_LOW] == dma32.low


# -- kmm watermarks -------------------------------------------------------------------------

def _populated(zoneinfo_text: str) -> list[str]:
    return [z.name for z in parse_zoneinfo(zoneinfo_text) if z.present]


def test_cli_json_on_the_snapshot(capsys, snap):
    assert main(["watermarks", "--from", str(SNAP), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [z["name"] for z in out["zones"]] == _populated((SNAP / "zoneinfo").read_text())
    for z in out["zones"]:
        assert z["computed"] == z["kernel"], z["name"]
        assert set(z["computed"]) == {"min", "low", "high", "promo", "protection"}
    assert out["match"] is True and out["notes"] == []
    assert out["min_free_kbytes"]["sysctl"] == snap.mfk == out["min_free_kbytes"]["thp_recommended"]
    assert out["totalreserve_pages"] == calculate_totalreserve_pages(snap.zones)


def test_cli_all_shows_unpopulated_zones_too(capsys, snap):
    assert main(["watermarks", "--from", str(SNAP), "--json", "--all"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [z["name"] for z in out["zones"]] == list(snap.cfg.names)
    movable = next(z for z in out["zones"] if z["name"] == "Movable")
    assert movable["computed"]["min"] == movable["kernel"]["min"]


def test_cli_table(capsys, snap):
    assert main(["watermarks", "--from", str(SNAP)]) == 0
    out = capsys.readouterr().out
    n = len(_populated((SNAP / "zoneinfo").read_text()))
    assert f"{5 * n} of {5 * n} values equal the kernel's" in out
    assert "✘" not in out and out.count("✔") == 5 * n
    normal = next(z for z in snap.zones if z.name == "Normal")
    line = next(ln for ln in out.splitlines() if ln.startswith("Normal"))
    assert line.split()[:4] == ["Normal", str(normal.managed), "min", str(normal.min)]


def test_cli_reports_a_mismatch(tmp_path, capsys, snap):
    d = tmp_path / "proc"
    shutil.copytree(SNAP, d)
    (d / "min_free_kbytes").write_text("1024\n")
    assert main(["watermarks", "--from", str(d)]) == 1
    out = capsys.readouterr().out
    assert "✘" in out and "note: the kernel set its watermarks" in out
    assert main(["watermarks", "--from", str(d), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["match"] is False


def test_cli_bad_sysctl_is_one_clear_line(tmp_path, capsys):
    d = tmp_path / "proc"
    shutil.copytree(SNAP, d)
    (d / "watermark_scale_factor").write_text("ten\n")
    assert main(["watermarks", "--from", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmm watermarks: watermark_scale_factor: expected whole numbers")


def test_cli_subprocess(python):
    out = subprocess.run([python, "-m", "kmmlib", "watermarks", "--from", str(SNAP), "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert all(z["computed"] == z["kernel"] for z in json.loads(out)["zones"])


# -- the live machine ---------------------------------------------------------------------------

def test_live_machine_equals_the_kernel():
    if not Path("/proc/zoneinfo").exists():
        pytest.skip("no /proc/zoneinfo on this machine (not Linux)")
    src = ProcSource("/proc", fallback=False)
    try:
        zones = parse_zoneinfo(src.read("zoneinfo"))
        mfk, wsf, ratio = _sysctls(src)
    except OSError as err:
        pytest.skip(f"cannot read the live /proc: {err}")
    checks = recompute_zoneinfo(zones, mfk, wsf, ratio)
    bad = [c for c in checks if not c.ok]
    if bad:
        # Only acceptable if the kernel's own mins say it used other managed pages.
        big = max((c for c in checks if c.kernel["min"] > c.boost and c.name not in
                   ("HighMem", "Movable")), key=lambda c: c.managed)
        lo, hi = implied_lowmem_pages(mfk // 4, big.managed, big.kernel["min"] - big.boost)
        now = sum(c.managed for c in checks if c.name not in ("HighMem", "Movable"))
        assert not lo <= now <= hi, f"unexplained mismatch: {[c.as_dict() for c in bad]}"
        pytest.skip(f"managed pages changed since the kernel's last watermark setup "
                    f"(lowmem then {lo}..{hi}, now {now}); see kmm watermarks' note")
    assert checks and all(c.ok for c in checks)


# -- the pressure model behind the widget -------------------------------------------------------

def test_one_zone_model_uses_the_kernel_arithmetic():
    m = WatermarkModel.one_zone(1 << 18)
    z = m.zone("Normal")
    assert m.min_free_kbytes == calculate_min_free_kbytes((1 << 18) * 4)
    assert z.wmark == setup_per_zone_wmarks([1 << 18, 0], [False, True], m.min_free_kbytes)[0]
    assert z.free > z.wmark.high and not m.kswapd_awake


def test_snapshot_model_has_the_kernels_watermarks_and_free_pages(snap):
    m = WatermarkModel.from_snapshot()
    for zs, zi in zip(m.zones, snap.zones, strict=True):
        assert (zs.wmark.min, zs.wmark.low, zs.wmark.high, zs.free) == \
            (zi.min, zi.low, zi.high, zi.pages_free)
        assert zs.lowmem_reserve == zi.protection


def test_kswapd_wakes_at_low_and_sleeps_only_above_high():
    m = WatermarkModel.one_zone()
    w = m.zone("Normal").wmark
    for free, awake in ((w.low + 1, False), (w.low, True), (w.high, True), (w.low + 1, True),
                        (w.high + 1, False), (w.low + 1, False)):
        m.apply(("set_free", "Normal", free))
        assert m.kswapd_awake is awake, (free, awake)


def test_what_each_caller_does_below_the_watermarks():
    m = WatermarkModel.one_zone()
    w = m.zone("Normal").wmark
    m.apply(("set_free", "Normal", w.low + 1))
    assert m.decide("GFP_KERNEL").path == "fast"
    m.apply(("set_free", "Normal", w.low))
    assert m.decide("GFP_KERNEL").path == "slow"
    m.apply(("set_free", "Normal", w.min))
    assert m.decide("GFP_KERNEL").path == "direct reclaim"
    assert m.decide("GFP_NOWAIT").path == "failed"          # may not sleep, no reserves
    assert m.decide("GFP_ATOMIC").path == "slow"            # dips into the reserves
    m.apply(("set_free", "Normal", w.min * 3 // 8))
    assert m.decide("GFP_ATOMIC").path == "failed"


def test_lowmem_reserve_in_action_on_the_snapshot_machine():
    m = WatermarkModel.from_snapshot(free=None)
    dma32, dma = m.zone("DMA32"), m.zone("DMA")
    normal_idx = m.gfp_zone(m.parse_gfp("GFP_KERNEL"))
    m.apply(("set_free", "Normal", m.zone("Normal").wmark.low))    # Normal has run low
    m.apply(("set_free", "DMA32", dma32.wmark.low + dma32.lowmem_reserve[normal_idx]))
    d = m.decide("GFP_KERNEL")
    assert d.path == "fast" and d.zone == "DMA"                   # DMA32 is protected
    assert m.decide("GFP_DMA32").zone == "DMA32"                   # but not from DMA32 users
    m.apply(("set_free", "DMA", dma.wmark.low + dma.lowmem_reserve[normal_idx]))
    d = m.decide("GFP_KERNEL")
    assert d.path == "slow" and d.zone == "Normal" and d.wake_kswapd


def test_alloc_takes_pages_and_direct_reclaim_refills():
    m = WatermarkModel.one_zone()
    z = m.zone("Normal")
    before = z.free
    assert m.apply(("alloc", "GFP_KERNEL", 3)) == "fast from Normal"
    assert z.free == before - 8
    m.apply(("set_free", "Normal", z.wmark.min))
    cache = m.reclaimable
    with Collect(m.events) as seen:
        assert m.apply(("alloc", "GFP_KERNEL", 0)) == "direct reclaim from Normal"
    assert m.stalls == 1 and m.reclaimable == cache - 32
    assert z.free == z.wmark.min + 32 - 1
    assert any("reclaimed 32 pages itself" in e.text for e in seen)


def test_oom_when_nothing_is_left_to_reclaim():
    m = WatermarkModel.one_zone(reclaimable=0)
    m.apply(("set_free", "Normal", m.zone("Normal").wmark.min))
    with Collect(m.events) as seen:
        assert m.apply(("alloc", "GFP_KERNEL", 0)) == "failed: NULL"
    assert m.failures == 1
    assert [e.kind for e in seen][-1] == "alloc_fail"


def test_burst_is_seeded_and_kswapd_follows_the_watermarks():
    assert burst_ops(7) == burst_ops(7) != burst_ops(8)
    m = WatermarkModel.one_zone()
    z = m.zone("Normal")
    wakes, sleeps = [], []
    m.events.subscribe(lambda e: (wakes if e.kind == "kswapd_wake" else
                                  sleeps if e.kind == "kswapd_sleep" else []).append(z.free))
    hist = run_burst(m, burst_ops(3))
    assert wakes and sleeps
    assert all(f <= z.wmark.low for f in wakes)        # woken only when low was reached
    assert all(f > z.wmark.high for f in sleeps)       # sleeps only above high
    assert all(hist.kswapd_awake[t] for t, s in enumerate(hist.stalls) if s)
    assert min(hist.free) >= z.wmark.min               # GFP_KERNEL never goes below min
    again = run_burst(WatermarkModel.one_zone(), burst_ops(3))
    assert again.free == hist.free and again.stalls == hist.stalls


def test_stepper_back_restores_the_model():
    st = Stepper(WatermarkModel.one_zone, burst_ops(1, 50))
    st.goto(45)
    text = st.state_text()
    st.step()
    st.back()
    assert st.state_text() == text


def test_model_bad_requests():
    m = WatermarkModel.one_zone()
    with pytest.raises(BadRequest, match="free must be"):
        m.apply(("set_free", "Normal", -1))
    with pytest.raises(BadRequest, match="no zone 'DMA'"):
        m.apply(("set_free", "DMA", 1))
    with pytest.raises(BadRequest, match="unknown op"):
        m.apply(("explode",))
    with pytest.raises(BadRequest, match="invalid order"):
        m.decide("GFP_KERNEL", 11)
    with pytest.raises(BadRequest):
        burst_ops(1, ticks=-1)


# -- widget and picture ---------------------------------------------------------------------

def test_watermark_widget_shows_the_model():
    from kmmlib.widgets.watermarks import WatermarkWidget

    w = WatermarkWidget()
    wm = w.stepper.model.zone("Normal").wmark
    w.set_free("Normal", wm.low)
    assert "kswapd woken" in w.text and "kswapd awake" in w.text
    assert "slow path: wake kswapd" in w.text
    w.set_free("Normal", wm.high + 1)
    assert "kswapd sleeps" in w.text
    w.back_button.click()
    assert w.stepper.pos == 1 and w._sliders["Normal"].value == wm.low
    w.gfp.value = "GFP_ATOMIC"
    assert "GFP_ATOMIC order 0" in w.text
    w.alloc_button.click()
    assert w.stepper.model.zone("Normal").free == wm.low - 1
    w.machine.value = "the snapshot's machine (24 GiB)"
    assert list(w._sliders) == ["DMA", "DMA32", "Normal"]
    import xml.dom.minidom
    xml.dom.minidom.parseString(w.gauges.value)


def test_burst_widget_steps():
    from kmmlib.widgets.watermarks import BurstWidget

    b = BurstWidget(seed=1, ticks=60)
    for _ in range(45):
        b.step_button.click()
    assert b.text == b.stepper.state_text() and "direct reclaim stall" in b.text
    assert b.drawing.value.count("<circle") == sum(1 for *_, s in b.stepper.model.trace if s)


def test_plot_burst_draws_the_history():
    import matplotlib

    matplotlib.use("Agg")
    from kmmlib.viz.watermarks import plot_burst, plot_zone_levels

    hist = run_burst(WatermarkModel.one_zone(), burst_ops(2, 80))
    fig = plot_burst(hist)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {f"{n} ({getattr(hist.wmark, n)})" for n in ("min", "low", "high")} <= set(labels)
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "free pages")
    assert list(line.get_ydata()) == hist.free
    fig2 = plot_zone_levels(WatermarkModel.from_snapshot())
    assert [t.get_text() for t in fig2.axes[0].get_yticklabels()] == ["DMA", "DMA32", "Normal"]


def test_two_nodes_share_min_free_kbytes_but_not_protection(snap):
    # __setup_per_zone_wmarks sums lowmem over every node (for_each_zone); lowmem_reserve is
    # per node. Two copies of the snapshot's node: each zone's share halves, protections stay.
    text = (SNAP / "zoneinfo").read_text()
    zones = parse_zoneinfo(text + text.replace("Node 0,", "Node 1,"))
    checks = recompute_zoneinfo(zones, snap.mfk, snap.wsf, snap.ratio)
    assert [c.node for c in checks] == [0] * 5 + [1] * 5
    lowmem = 2 * sum(z.managed for z in snap.zones if z.name in ("DMA", "DMA32", "Normal"))
    for c, z in zip(checks, snap.zones * 2, strict=True):
        assert c.computed["protection"] == z.protection
        if z.name in ("DMA", "DMA32", "Normal"):
            assert c.computed["min"] == snap.mfk // 4 * z.managed // lowmem < z.min


def test_cli_falls_back_to_the_snapshot_and_says_so(tmp_path, capsys):
    assert main(["watermarks", "--from", str(tmp_path), "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["match"] and out["source"].startswith("bundled snapshot")
    assert "its sysctls do too" in out["notes"][0]
    assert "using the bundled snapshot" in cap.err

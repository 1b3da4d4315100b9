"""The live experiments on this machine's kernel: demand paging as /proc shows it, and the
bound they never pass (checked with the kernel's own peak-RSS counter, VmHWM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmmlib.errors import BadRequest
from kmmlib.userspace import live
from kmmlib.userspace.live import (
    MAX_MAP_BYTES,
    MAX_TOUCH_BYTES,
    demand_paging,
    parse_status,
    read_status,
    supported,
    touch_bound,
)
from kmmlib.userspace.process import System

LINUX = supported()[0]
needs_linux = pytest.mark.skipif(not LINUX, reason="needs Linux /proc")
MiB = 1 << 20
KB_PER_PAGE = 4


def test_the_bound_is_a_quarter_of_ram_and_at_most_64_mib():
    assert touch_bound(24 << 30) == MAX_TOUCH_BYTES == 64 * MiB
    assert touch_bound(128 * MiB) == 32 * MiB
    assert touch_bound(10 * MiB + 123) == 10 * MiB // 4 // 4096 * 4096
    assert MAX_MAP_BYTES == 1 << 30


@needs_linux
@pytest.mark.parametrize("kw", [dict(touch_bytes=MAX_TOUCH_BYTES + 4096),
                                dict(map_bytes=MAX_MAP_BYTES + 4096),
                                dict(map_bytes=8 * MiB, touch_bytes=6 * MiB),
                                dict(touch_bytes=0)])
def test_requests_over_the_bound_are_refused_before_anything_is_mapped(kw):
    before = read_status()["VmSize"]
    with pytest.raises(BadRequest):
        demand_paging(**kw)
    assert read_status()["VmSize"] == before


@needs_linux
def test_rss_grows_only_for_written_pages_and_dontneed_takes_it_back():
    exp = demand_paging(128 * MiB, 8 * MiB)
    pages = 8 * MiB // 4096
    obs = {o.stage.split()[0]: o for o in exp.observations}
    base = obs["before"].status
    anon = {k: o.status["RssAnon"] - base["RssAnon"] for k, o in obs.items()}
    slack = 256                                       # kB Python itself may allocate meanwhile
    assert 0 <= anon["mmap"] <= slack                 # the mapping alone: nothing resident
    assert obs["mmap"].status["VmSize"] - base["VmSize"] >= 128 * 1024
    assert pages * KB_PER_PAGE <= anon["write"] <= pages * KB_PER_PAGE + slack
    assert anon["read"] - anon["write"] <= slack      # reads map the zero page
    assert anon["madvise(MADV_DONTNEED)"] <= slack
    assert obs["munmap"].status["VmSize"] - base["VmSize"] <= slack
    # one minor fault per page touched, writes and reads alike
    assert obs["write"].minflt - obs["mmap"].minflt >= pages
    assert obs["read"].minflt - obs["write"].minflt >= pages
    assert exp.maps_line.startswith(f"{exp.address:x}-{exp.address + 128 * MiB:x} rw-p ")
    assert exp.pagemap["written"].startswith("present, mapped only here")
    assert "zero page" in exp.pagemap["read"] and exp.pagemap["untouched"] == "not present"


@needs_linux
def test_the_experiment_never_makes_more_resident_than_its_bound():
    """Reset the kernel's peak-RSS counter (clear_refs 5), run the largest experiment allowed,
    and read the peak back: it grew by no more than the bound (plus Python's own noise)."""
    clear = Path("/proc/self/clear_refs")
    try:
        clear.write_text("5")
    except OSError:
        pytest.skip("cannot reset VmHWM here")
    start = read_status()
    bound = touch_bound(live.mem_total_bytes())
    exp = demand_paging(2 * bound, bound)
    peak = read_status()["VmHWM"]
    assert exp.peak_touched == exp.touch_bytes == bound
    # The kernel's RSS counters are per-cpu and read approximately (up to 32 pages per CPU
    # off), and Python allocates a little meanwhile: hence 1 MiB of slack either way.
    assert peak - start["VmRSS"] <= bound // 1024 + 1024
    assert peak - start["VmRSS"] >= bound // 1024 - 1024     # and it did touch that much


def test_elsewhere_it_says_why_and_does_nothing(monkeypatch):
    monkeypatch.setattr(live.sys, "platform", "darwin")
    ok, why = supported()
    assert not ok and "darwin" in why
    exp = demand_paging()
    assert not exp.supported and exp.table().startswith("live experiment skipped: not Linux")
    assert not supported("/nonexistent")[0] or not LINUX


def test_parse_status_reads_the_simulators_and_the_kernels_text():
    mm = System(1024).spawn("x").mm
    a = mm.mmap(0, MiB)
    mm.touch_range(a, 40 * 4096)
    got = parse_status(mm.status())
    assert got["VmRSS"] == got["RssAnon"] == 160 and got["VmSize"] == 1024
    assert got["VmPTE"] == 12
    if LINUX:
        real = read_status()
        assert set(real) == set(got) and real["VmRSS"] > 0

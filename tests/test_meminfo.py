"""/proc/meminfo: parse, render back byte for byte, and the breakdown of where memory goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmmlib.errors import ParseError
from kmmlib.procfs.meminfo import (
    UNITLESS,
    format_meminfo_line,
    memory_breakdown,
    parse_meminfo,
    render_meminfo,
)
from kmmlib.procfs.source import snapshot

LIVE = Path("/proc/meminfo")


@pytest.fixture(scope="module")
def text() -> str:
    return snapshot().read("meminfo")


@pytest.fixture(scope="module")
def mi(text) -> dict[str, int]:
    return parse_meminfo(text)


def test_round_trip_is_byte_for_byte(text, mi):
    assert render_meminfo(mi) == text
    assert list(mi) == [line.split(":")[0] for line in text.splitlines()]   # file order


@pytest.mark.skipif(not LIVE.exists(), reason="no /proc/meminfo on this machine")
def test_live_round_trip():
    live = LIVE.read_text()
    assert render_meminfo(parse_meminfo(live)) == live


def test_the_kernels_own_sums_hold(mi):
    # fs/proc/meminfo.c prints these as sums of the same counters, so a misread field shows.
    assert mi["Active"] == mi["Active(anon)"] + mi["Active(file)"]
    assert mi["Inactive"] == mi["Inactive(anon)"] + mi["Inactive(file)"]
    assert mi["Slab"] == mi["SReclaimable"] + mi["SUnreclaim"]
    assert mi["KReclaimable"] >= mi["SReclaimable"]
    assert mi["Hugetlb"] == mi["HugePages_Total"] * mi["Hugepagesize"]
    # and procps read the same file: free's total column is MemTotal
    total = int(snapshot().read("free.txt").splitlines()[1].split()[1])
    assert total == mi["MemTotal"] == 24684084


def test_kernel_formats():
    # show_val_kb(): 16-column label, %8lu; hugetlb counts: 19-column label, %5lu, no unit;
    # HardwareCorrupted: "%5lu kB" after its 18-character label.
    assert format_meminfo_line("MemTotal", 1) == "MemTotal:" + " " * 7 + " " * 7 + "1 kB"
    assert format_meminfo_line("VmallocTotal", 34359738367) == "VmallocTotal:   34359738367 kB"
    assert format_meminfo_line("HugePages_Total", 123456) == "HugePages_Total:   123456"
    assert format_meminfo_line("HugePages_Surp", 0) == "HugePages_Surp:        0"
    assert format_meminfo_line("HardwareCorrupted", 0) == "HardwareCorrupted:     0 kB"
    assert format_meminfo_line("EarlyMemtestBad", 123456) == "EarlyMemtestBad:   123456 kB"
    assert set(UNITLESS) <= set(parse_meminfo(snapshot().read("meminfo")))


@pytest.mark.parametrize("bad, where", [
    ("MemTotal: 12 kB\nwhat\n", "line 2"),
    ("MemTotal: 12 kB\nMemFree: x kB\n", "line 2"),
    ("MemTotal: 12 kB\nMemTotal: 13 kB\n", "twice"),
    ("MemTotal: 12 kB\nHugePages_Total: 0 kB\n", "no unit"),
    ("MemTotal: 12 kB\nMemFree: 12\n", "' kB'"),
    ("MemFree: 12 kB\n", "no MemTotal"),
    ("MemTotal: -12 kB\n", "line 1"),
])
def test_malformed(bad, where):
    with pytest.raises(ParseError, match=where):
        parse_meminfo(bad)


def test_negative_values_are_refused():
    with pytest.raises(ParseError):
        render_meminfo({"MemTotal": -1})


def test_breakdown_adds_up(mi):
    parts = dict(memory_breakdown(mi))
    assert sum(parts.values()) == mi["MemTotal"]
    assert parts["free"] == mi["MemFree"]
    assert parts["page cache"] + parts["shmem / tmpfs"] == mi["Buffers"] + mi["Cached"]
    assert parts["vmalloc"] + parts["kernel stacks"] == mi["VmallocUsed"]
    assert parts["kernel, not itemised"] > 0
    assert all(kb >= 0 for kb in parts.values())


def test_breakdown_never_goes_negative(mi):
    # Overlapping fields that overshoot MemTotal leave the remainder at 0, not below.
    weird = dict(mi, AnonPages=mi["MemTotal"])
    parts = dict(memory_breakdown(weird))
    assert parts["kernel, not itemised"] == 0 and sum(parts.values()) > mi["MemTotal"]


@pytest.mark.skipif(not LIVE.exists(), reason="no /proc/meminfo on this machine")
def test_breakdown_live():
    live = parse_meminfo(LIVE.read_text())
    parts = dict(memory_breakdown(live))
    assert parts["free"] == live["MemFree"] and all(kb >= 0 for kb in parts.values())


def test_breakdown_picture(mi):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kmmlib.viz.meminfo import plot_memory_breakdown

    fig = plot_memory_breakdown(mi)
    ax = fig.axes[0]
    nonzero = [kb for _, kb in memory_breakdown(mi) if kb > 0]
    # one bar segment per non-empty part on the MemTotal row, all but "free" on the zoom row
    assert len(ax.patches) == 2 * len(nonzero) - 1
    full = [p for p in ax.patches if abs(p.get_y() + p.get_height() / 2) < 1e-9]
    assert sum(p.get_width() for p in full) == pytest.approx(100)
    assert full[-1].get_width() == pytest.approx(100 * mi["MemFree"] / mi["MemTotal"])
    plt.close(fig)

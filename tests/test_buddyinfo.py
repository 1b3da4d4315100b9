"""/proc/buddyinfo: parse and render byte for byte against the real kernel's file."""

from __future__ import annotations

import pytest

from kmmlib.errors import ParseError
from kmmlib.mm.page_alloc import Zone
from kmmlib.procfs.buddyinfo import (
    BuddyInfo,
    format_line,
    parse_buddyinfo,
    read_buddyinfo,
    render_buddyinfo,
)
from kmmlib.procfs.source import ProcSource, snapshot


def test_snapshot_round_trips_byte_for_byte(snapshot_dir):
    text = (snapshot_dir / "buddyinfo").read_text()
    lines = parse_buddyinfo(text)
    assert render_buddyinfo(lines) == text
    assert [b.zone for b in lines] == ["DMA", "DMA32", "Normal"]


def test_snapshot_values(snapshot_dir):
    normal = read_buddyinfo(snapshot())[2]
    # The real kernel's numbers for ZONE_NORMAL (kmmlib/data/snapshot/buddyinfo).
    assert normal.nr_free == (406, 163, 21, 10, 4, 3, 1, 7, 13, 11, 30)
    assert normal.free_pages == sum(n << o for o, n in enumerate(normal.nr_free))
    # The same machine's pagetypeinfo splits each count by migrate type; the sums agree.
    pti = (snapshot_dir / "pagetypeinfo").read_text().splitlines()
    rows = [line for line in pti if line.startswith("Node    0, zone   Normal, type")]
    per_type = [[int(x) for x in r.split()[6:]] for r in rows]
    assert tuple(map(sum, zip(*per_type, strict=True))) == normal.nr_free


def test_format_matches_frag_show_print():
    # "Node %d, zone %8s " then "%6lu " per order, then "\n".
    assert format_line(0, "DMA", [0, 1, 123456]) == \
        "Node 0, zone      DMA      0      1 123456 \n"
    # Wider than 6 digits just pushes the line, and still parses.
    wide = format_line(1, "Normal", [1234567, 0])
    assert wide == "Node 1, zone   Normal 1234567      0 \n"
    assert parse_buddyinfo(wide)[0] == BuddyInfo(1, "Normal", (1234567, 0))


def test_simulated_zone_prints_in_the_same_format(snapshot_dir):
    z = Zone(3 * 1024 + 1)
    # Boot: three order-10 blocks and one page.
    assert z.buddyinfo_line() == format_line(0, "Normal", [1] + [0] * 9 + [3])
    real = (snapshot_dir / "buddyinfo").read_text().splitlines()[2]
    sim = z.buddyinfo_line().rstrip("\n")
    assert len(sim) == len(real) and sim[:22] == real[:22]


@pytest.mark.parametrize("bad", ["", "Node 0 zone Normal 1 2\n", "Node 0, zone Normal\n",
                                 "Node 0, zone DMA 1 2\nNode 0, zone Normal 1 2 3\n"])
def test_bad_text_is_a_parse_error(bad):
    with pytest.raises(ParseError):
        parse_buddyinfo(bad)


def test_live_or_fallback(tmp_path):
    src = ProcSource(tmp_path)           # an empty folder: falls back to the snapshot
    lines = read_buddyinfo(src)
    assert lines[0].zone == "DMA" and src.fell_back("buddyinfo")
    (tmp_path / "buddyinfo").write_text(format_line(0, "Normal", [5] * 11))
    assert read_buddyinfo(ProcSource(tmp_path))[0].nr_free == (5,) * 11

"""``kmm proc FILE``: the five /proc files of the bundled snapshot (a real Linux 6.18 machine)
parsed and printed back byte for byte; ``--check``, ``--json``, a mismatch, and the zoneinfo
renderer on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.commands.proc import FILES, first_difference, round_trip
from kmmlib.procfs.zoneinfo import parse_zoneinfo, render_zone, render_zoneinfo

FIVE = ("buddyinfo", "pagetypeinfo", "zoneinfo", "slabinfo", "meminfo")


def test_the_five_files():
    assert sorted(FILES) == sorted(FIVE)


@pytest.mark.parametrize("name", FIVE)
def test_prints_the_file_back_byte_for_byte(name, snapshot_dir, capsys):
    assert main(["proc", name, "--from", str(snapshot_dir)]) == 0
    out, err = capsys.readouterr()
    assert out == (snapshot_dir / name).read_text()
    assert err == ""


@pytest.mark.parametrize("name", FIVE)
def test_check(name, snapshot_dir, capsys):
    assert main(["proc", name, "--check", "--from", str(snapshot_dir)]) == 0
    out = capsys.readouterr().out
    size = len((snapshot_dir / name).read_bytes())
    assert out.startswith(f"{name}: {size} bytes, ")
    assert out.rstrip().endswith("parsed and rendered back byte for byte")


def test_check_reports_the_first_difference(tmp_path, snapshot_dir, capsys):
    # Two spaces where the kernel prints one: parsing ignores it, rendering does not.
    text = (snapshot_dir / "buddyinfo").read_text().replace("zone   Normal", "zone    Normal")
    (tmp_path / "buddyinfo").write_text(text)
    assert main(["proc", "buddyinfo", "--check", "--from", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "line 3: the file has 'Node 0, zone    Normal" in out
    # With --json too, the exit status says the check failed.
    assert main(["proc", "buddyinfo", "--check", "--json", "--from", str(tmp_path)]) == 1
    assert json.loads(capsys.readouterr().out)["identical"] is False
    assert main(["proc", "buddyinfo", "--json", "--from", str(tmp_path)]) == 0
    capsys.readouterr()


def test_json(snapshot_dir, capsys):
    assert main(["proc", "pagetypeinfo", "--json", "--from", str(snapshot_dir)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["identical"] is True
    normal = got["parsed"]["sections"][0]["zones"][2]
    assert normal["zone"] == "Normal" and normal["blocks"]["Unmovable"] == 62
    assert main(["proc", "meminfo", "--json", "--from", str(snapshot_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["parsed"]["MemTotal"] > 0


def test_missing_file_falls_back_with_a_note(tmp_path, snapshot_dir, capsys):
    # An empty folder: the bundled snapshot stands in, and stderr says so.
    assert main(["proc", "pagetypeinfo", "--check", "--from", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "bundled snapshot" in out and "note:" in err


def test_bad_input(tmp_path, capsys):
    (tmp_path / "zoneinfo").write_text("this is not zoneinfo\n")
    assert main(["proc", "zoneinfo", "--from", str(tmp_path)]) == 2
    assert "zoneinfo line 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["proc", "vmallocinfo"])


def test_subprocess(snapshot_dir, root):
    res = subprocess.run([sys.executable, "-m", "kmmlib", "proc", "pagetypeinfo", "--from",
                          str(snapshot_dir)], capture_output=True, text=True, cwd=root,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (snapshot_dir / "pagetypeinfo").read_text()


@pytest.mark.parametrize("name", FIVE)
def test_live_files_round_trip_byte_for_byte(name):
    """This machine's own /proc files, read once each, parse and render back unchanged."""
    path = Path("/proc") / name
    try:
        text = path.read_text()
    except OSError:
        pytest.skip(f"/proc/{name} is missing or unreadable here")
    _, rendered = round_trip(name, text)
    assert rendered == text, first_difference(text, rendered)


def test_round_trip_and_first_difference():
    parsed, text = round_trip("buddyinfo", "Node 0, zone   Normal      1      2 \n")
    assert text == "Node 0, zone   Normal      1      2 \n"
    assert first_difference("a\nb\n", "a\nc\n") == \
        "line 2: the file has 'b\\n', the renderer wrote 'c\\n'"
    assert first_difference("a\n", "a\nb\n") == "the file has 1 lines, the renderer wrote 2"


def test_zoneinfo_renderer(snapshot_dir):
    text = (snapshot_dir / "zoneinfo").read_text()
    zones = parse_zoneinfo(text)
    assert render_zoneinfo(zones) == text
    # An unpopulated zone stops after its protection line (zoneinfo_show_print()).
    movable = next(z for z in zones if z.name == "Movable")
    assert render_zone(movable).splitlines()[-1] == "        protection: (0, 0, 0, 0, 0)"
    # The first populated zone carries the node's stats, the others do not.
    dma, dma32 = zones[0], zones[1]
    assert render_zone(dma).splitlines()[1] == "  per-node stats"
    assert "per-node stats" not in render_zone(dma32)
    assert "              high_min: 8676" in render_zone(dma32)
    # Changing a number changes exactly that line.
    dma32.min += 1
    lines = render_zoneinfo(zones).splitlines()
    assert sum(a != b for a, b in zip(lines, text.splitlines(), strict=True)) == 1

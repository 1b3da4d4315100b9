"""/proc/slabinfo: parse and render byte for byte (the snapshot's and the live machine's), the
``kmm slub`` contract (every row's objects and pages per slab predicted exactly), slabtop, and
the simulated machine's slabinfo beside the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import ParseError
from kmmlib.procfs.slabinfo import HEADER, SlabinfoRow, format_slabinfo, parse_slabinfo, slabtop
from kmmlib.slab.slub import Slub

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "kmmlib" / "data" / "snapshot"
SNAP_TEXT = (SNAPSHOT / "slabinfo").read_text()
LIVE = Path("/proc/slabinfo")


def live_text() -> str:
    if not LIVE.exists():
        pytest.skip("no /proc/slabinfo on this machine (not Linux)")
    if not os.access(LIVE, os.R_OK):
        pytest.skip("/proc/slabinfo is root-only (mode 0400) and we are not root")
    return LIVE.read_text()


def test_snapshot_round_trips_byte_for_byte():
    rows = parse_slabinfo(SNAP_TEXT)
    assert len(rows) == 235
    assert format_slabinfo(rows) == SNAP_TEXT


def test_live_round_trips_byte_for_byte():
    text = live_text()
    assert format_slabinfo(parse_slabinfo(text)) == text


def test_row_fields_follow_the_header():
    rows = {r.name: r for r in parse_slabinfo(SNAP_TEXT)}
    r = rows["extent_status"]
    assert (r.active_objs, r.num_objs, r.objsize, r.objperslab, r.pagesperslab) == \
        (10998, 11016, 40, 102, 1)
    assert (r.limit, r.batchcount, r.sharedfactor) == (0, 0, 0)     # SLUB: no tunables
    assert (r.active_slabs, r.num_slabs, r.sharedavail) == (108, 108, 0)
    assert r.order == 0 and r.cache_bytes == 108 * 4096
    # SLUB's slabinfo: every row has active_slabs == num_slabs and zero tunables.
    assert all(x.active_slabs == x.num_slabs and x.limit == x.sharedavail == 0
               for x in rows.values())


def test_a_long_name_pushes_the_line_right():
    row = SlabinfoRow("ext4_allocation_context", 2088, 2088, 168, 24, 1, 0, 0, 0, 87, 87, 0)
    assert row.line() == ("ext4_allocation_context   2088   2088    168   24    1 : tunables"
                          "    0    0    0 : slabdata     87     87      0\n")
    assert row.line() in SNAP_TEXT


@pytest.mark.parametrize("bad", [
    "", "slabinfo - version: 2.0\n", "nonsense\n",
    HEADER + "kmalloc-8 1 2 8 512\n",
    HEADER + "kmalloc-8 1 2 8 512 1 : tunables 0 0 0 : slabdata 1 1\n",
    HEADER + "kmalloc-8 1 x 8 512 1 : tunables 0 0 0 : slabdata 1 1 0\n",
])
def test_malformed_slabinfo_is_reported(bad):
    with pytest.raises(ParseError):
        parse_slabinfo(bad)


def test_slabtop_summary_matches_the_rows():
    rows = parse_slabinfo(SNAP_TEXT)
    out = slabtop(rows, limit=3)
    objs = sum(r.num_objs for r in rows)
    active = sum(r.active_objs for r in rows)
    assert f" Active / Total Objects (% used)    : {active} / {objs} " in out
    table = out.splitlines()[-3:]
    assert table[0].split()[-1] == max(rows, key=lambda r: r.num_objs).name
    by_cache = slabtop(rows, limit=1, sort="cache").splitlines()[-1]
    assert by_cache.endswith("ext4_inode_cache") and "8512K" in by_cache
    with pytest.raises(ParseError):
        slabtop(rows, sort="colour")


# -- kmm slub: the contract ---------------------------------------------------------------

def test_kmm_slub_json_every_snapshot_row_matches(capsys):
    assert main(["slub", "--from", str(SNAPSHOT), "--json"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    rows = parse_slabinfo(SNAP_TEXT)
    assert [c["name"] for c in result["caches"]] == [r.name for r in rows]
    assert result["nr_cpus"] == 2 and result["min_objects"] == 12
    for c, r in zip(result["caches"], rows, strict=True):
        assert c["kernel"] == {"objperslab": r.objperslab, "pagesperslab": r.pagesperslab}
        assert c["predicted"] == c["kernel"], c["name"]
    assert result["match"] and result["matched"] == 235
    assert out.err == ""


def test_kmm_slub_live_machine(capsys):
    live_text()
    status = main(["slub", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["source"] == "/proc/slabinfo"
    bad = [c for c in result["caches"] if not c["match"]]
    assert not bad, bad[:3]
    assert status == 0


def test_kmm_slub_detects_a_wrong_cpu_count(capsys):
    # With 64 CPUs min_objects is 32: kmalloc-512 would need order 2, the kernel used 1.
    assert main(["slub", "--from", str(SNAPSHOT), "--cpus", "64", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert "kmalloc-512" in result["mismatches"] and not result["match"]


def test_kmm_slub_text_and_explain(capsys):
    assert main(["slub", "--from", str(SNAPSHOT)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("2 CPUs")
    assert "235 of 235 caches" in out
    assert main(["slub", "--from", str(SNAPSHOT), "--explain", "task_struct"]) == 0
    out = capsys.readouterr().out
    assert "5 objects in 8 pages" in out and "task_struct: objsize 5888" in out
    assert main(["slub", "--from", str(SNAPSHOT), "--explain", "task_struct", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["cache"]["objsize"] == 5888 and got["cache"]["kernel"]["objperslab"] == 5
    assert got["explanation"][-1].endswith(
        f"5 objects in 8 pages, {8 * 4096 - 5 * 5888} bytes unused per slab")
    assert main(["slub", "--from", str(SNAPSHOT), "--explain", "no_such"]) == 2
    assert "no cache named" in capsys.readouterr().err


def test_kmm_slub_reads_cpu_present_over_nproc(tmp_path, capsys):
    (tmp_path / "slabinfo").write_text(SNAP_TEXT)
    (tmp_path / "nproc").write_text("64\n")            # what userspace sees …
    (tmp_path / "cpu_present").write_text("0-1\n")     # … but the kernel counts present CPUs
    assert main(["slub", "--from", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nr_cpus"] == 2 and result["nr_cpus_from"].endswith("cpu_present")
    (tmp_path / "cpu_present").unlink()
    assert main(["slub", "--from", str(tmp_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["nr_cpus"] == 64


def test_kmm_slub_top(capsys):
    assert main(["slub", "--top", "--from", str(SNAPSHOT)]) == 0
    assert "OBJS ACTIVE  USE OBJ SIZE" in capsys.readouterr().out


def test_python_dash_m_kmm_slub_json():
    run = subprocess.run([sys.executable, "-m", "kmmlib", "slub", "--from", str(SNAPSHOT),
                          "--json"], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout)["matched"] == 235


# -- the simulated machine's slabinfo ------------------------------------------------------

def test_simulated_kmalloc_rows_equal_the_snapshot():
    """A simulated 2-CPU machine boots the same kmalloc caches, in the same order (newest first),
    with the same object sizes and slab shapes as the real 6.18 kernel."""
    sim = Slub(nr_cpus=2)
    real = [(r.name, r.objsize, r.objperslab, r.pagesperslab)
            for r in parse_slabinfo(SNAP_TEXT) if "kmalloc-" in r.name]
    mine = [(r.name, r.objsize, r.objperslab, r.pagesperslab)
            for r in parse_slabinfo(sim.slabinfo()) if "kmalloc-" in r.name]
    assert mine == real and len(mine) == 52
    boot = {r.name: r for r in parse_slabinfo(sim.slabinfo())}
    snap = {r.name: r for r in parse_slabinfo(SNAP_TEXT)}
    for name in ("kmem_cache", "kmem_cache_node"):
        assert (boot[name].objsize, boot[name].objperslab) == \
            (snap[name].objsize, snap[name].objperslab)


def test_simulated_slabinfo_counts_cpu_slab_objects_as_active():
    sim = Slub(nr_cpus=1, kmalloc=False)
    s = sim.kmem_cache_create("demo", 256)
    objs = [sim.kmem_cache_alloc(s) for _ in range(20)]          # 16 per slab: 2 slabs
    row = {r.name: r for r in parse_slabinfo(sim.slabinfo())}["demo"]
    assert (row.num_objs, row.num_slabs, row.active_objs) == (32, 2, 32)
    sim.kmem_cache_shrink(s)     # the cpu slab goes to the partial list: its 12 free now count
    row = {r.name: r for r in parse_slabinfo(sim.slabinfo())}["demo"]
    assert (row.num_objs, row.active_objs) == (32, 20)
    for o in objs:
        sim.kmem_cache_free(s, o)
    sim.kmem_cache_shrink(s)
    row = {r.name: r for r in parse_slabinfo(sim.slabinfo())}["demo"]
    assert (row.num_objs, row.num_slabs, row.active_objs) == (0, 0, 0)

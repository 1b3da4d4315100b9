"""``kmm buddy``: the hand-written kernel scenarios in tests/data/buddy/*.ops.

Each scenario's header says, from a reading of mm/page_alloc.c and mm/memblock.c (6.18), what
every alloc must return and what the free lists must hold at the end (``# expect`` lines), or
which error it must raise. The expected values were written from the kernel source, not from
running this code: a change to split order, head/tail placement or merging breaks them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main

SCENARIOS = sorted((Path(__file__).parent / "data" / "buddy").glob("*.ops"))


def expectations(path: Path) -> dict:
    args: list[str] = []
    exp: dict = {"free_area": {}, "allocs": None, "error": None}
    for line in path.read_text().splitlines():
        if line.startswith("# args:"):
            args = shlex.split(line.split(":", 1)[1])
        elif line.startswith("# expect allocs:"):
            exp["allocs"] = [None if w == "null" else int(w)
                             for w in line.split(":", 1)[1].split()]
        elif line.startswith("# expect free_area"):
            head, pfns = line.split(":", 1)
            exp["free_area"][head.split()[-1]] = [int(w) for w in pfns.split()]
        elif line.startswith("# expect error:"):
            exp["error"] = line.split(":", 1)[1].strip()
    assert args, f"{path.name} has no '# args:' line"
    return {"args": args, **exp}


def test_there_are_at_least_a_dozen_scenarios():
    assert len(SCENARIOS) >= 12
    names = " ".join(p.name for p in SCENARIOS)
    assert "37" in names and "513" in names and "tail" in names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_matches_the_kernel_reading(path, capsys):
    exp = expectations(path)
    status = main(["buddy", *exp["args"], "--ops", str(path), "--json"])
    out, err = capsys.readouterr()
    if exp["error"]:
        assert status == 2
        assert exp["error"] in err, err
        assert f"{path.name}:" in err          # the report names the file and line
        assert out == ""
        return
    assert status == 0, err
    got = json.loads(out)
    assert got["allocs"] == exp["allocs"]
    # Every order not listed in the header must be empty.
    want = {str(o): exp["free_area"].get(str(o), []) for o in range(11)}
    assert got["free_area"] == want
    assert got["nr_free"] == [len(want[str(o)]) for o in range(11)] or "--pcp" in exp["args"]


def test_plain_output_narrates_and_ends_with_buddyinfo(capsys):
    path = next(p for p in SCENARIOS if p.name.startswith("02_"))
    assert main(["buddy", "--pages", "37", "--ops", str(path)]) == 0
    out = capsys.readouterr().out
    assert "boot frees: order-5 at 0, order-2 at 32, order-0 at 36" in out
    assert "split order-2 block at pfn 32: keep 32, free 34 to order 1" in out
    assert "merge pfn 32 with its free buddy 33 → order-1 block at pfn 32" in out
    assert "free_area[2]: 32 4" in out
    # The /proc/buddyinfo line, in frag_show_print()'s format: [0]=2, [1]=1, [2]=2, [3]=1, [4]=1
    assert out.endswith("Node 0, zone   Normal      2      1      2      1      1      0"
                        "      0      0      0      0      0 \n")


def test_plain_output_shows_the_trace_before_an_error(capsys):
    path = next(p for p in SCENARIOS if p.name.startswith("11_"))
    assert main(["buddy", "--pages", "8", "--ops", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "merge pfn 0 with its free buddy 4 → order-3 block at pfn 0" in out
    assert "11_double_free.ops:10: free 0 0: BUG: Bad page state" in err


def test_bad_ops_lines_are_parse_errors(tmp_path, capsys):
    for text, msg in (("alloc\n", "expected 'alloc ORDER"), ("free 0x1g 0\n", "not a number"),
                      ("alloc 1 Sticky\n", "unknown migratetype"), ("grow 3\n", "expected")):
        f = tmp_path / "x.ops"
        f.write_text("# a comment\n\n" + text)
        assert main(["buddy", "--pages", "8", "--ops", str(f)]) == 2
        err = capsys.readouterr().err
        assert "x.ops:3:" in err and msg in err, err


def test_hex_pfns_and_migratetype_names(tmp_path, capsys):
    f = tmp_path / "hex.ops"
    f.write_text("alloc 0 MIGRATE_MOVABLE\nalloc 0 movable\nfree 0x1 0\n")
    assert main(["buddy", "--pages", "4", "--ops", str(f), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # 4 pages: one order-2 block; 0 (split 2 -> [1], 1 -> [0]), then 1; free 1: buddy 0 busy,
    # parent 0's order-1 buddy 2 is free at order 1 -> tail (alone on the list anyway).
    assert got["allocs"] == [0, 1]
    assert got["free_area"]["0"] == [1] and got["free_area"]["1"] == [2]


def test_missing_file_and_bad_pages(capsys):
    assert main(["buddy", "--pages", "8", "--ops", "/nonexistent/x.ops"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["buddy", "--pages", "0", "--ops", "/dev/null"]) == 2
    assert "--pages" in capsys.readouterr().err


def test_runs_as_a_subprocess(root):
    path = next(p for p in SCENARIOS if p.name.startswith("06_"))
    res = subprocess.run([sys.executable, "-m", "kmmlib", "buddy", "--pages", "513",
                          "--ops", str(path), "--json"], capture_output=True, text=True,
                         cwd=root, check=True)
    got = json.loads(res.stdout)
    assert got["allocs"] == [0, 512, None, None]
    assert got["free_area"]["9"] == [0] and got["free_area"]["0"] == [512]

"""Bad input, everywhere: each case the README's table lists gets a clear one-line error from
the `kmm` command (exit status 2, no traceback), and the README shows exactly that message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.machine import Machine

ROOT = Path(__file__).resolve().parent.parent

# (what the learner tried, the files it needs, the command, what the error must say)
CASES = [
    ("an order above MAX_PAGE_ORDER", {"ops": "alloc 11\n"},
     "buddy --pages 16 --ops {ops}", "invalid order 11: above MAX_PAGE_ORDER (10)"),
    ("a double free", {"ops": "alloc 0\nfree 0 0\nfree 0 0\n"},
     "buddy --pages 16 --ops {ops}", "BUG: Bad page state"),
    ("a free with the wrong order", {"ops": "alloc 2\nfree 0 1\n"},
     "buddy --pages 16 --ops {ops}", "freed with order 1 but allocated with order 2"),
    ("a pfn outside the zone", {"ops": "free 100 0\n"},
     "buddy --pages 16 --ops {ops}", "outside node 0 zone Normal"),
    ("an ops line that is not an op", {"ops": "jump 3\n"},
     "buddy --pages 16 --ops {ops}", "expected 'alloc ORDER [MIGRATETYPE]' or 'free PFN ORDER'"),
    ("an absurd zone size", {"ops": "alloc 0\n"},
     "buddy --pages 99999999999 --ops {ops}", "--pages must be 1.."),
    ("a misspelt GFP flag", {}, "gfp GFP_KERNAL", "nearest known: GFP_KERNEL"),
    ("a mask that is not hex", {}, "gfp 0xzz", "is not a number"),
    ("a malformed /proc/meminfo", {"meminfo": "MemTotal: lots kB\n"},
     "free --from {dir}", "meminfo line 1: expected 'Name:  number kB'"),
    ("a malformed /proc/zoneinfo", {"zoneinfo": "garbage\n"},
     "watermarks --from {dir}", "zoneinfo line 1: expected 'Node N, zone NAME'"),
    ("an unknown architecture", {}, "layout sparc", "unknown architecture 'sparc'"),
    ("a VA size the kernel does not build", {}, "layout arm64 --va-bits 13",
     "builds VA_BITS 39, 48, 52, not 13"),
    ("a negative kmalloc size", {}, "kmalloc -5", "is not a size in bytes"),
    ("a missing ops file", {}, "buddy --pages 16 --ops /nonexistent/ops",
     "cannot read /nonexistent/ops"),
]


@pytest.mark.parametrize("label, files, command, message", CASES, ids=[c[0] for c in CASES])
def test_cli_bad_input_gets_one_clear_line(tmp_path, capsys, label, files, command, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = command.format(dir=tmp_path, ops=tmp_path / "ops").split()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kmm {argv[0]}: ") and message in err
    assert "Traceback" not in err


SLABINFO = (ROOT / "kmmlib" / "data" / "snapshot" / "slabinfo").read_text()
# More bad input, found by an audit of the command as a user meets it (not in the README).
MORE_CASES = [
    ("a meminfo that is not text", {"meminfo": b"\xff\xfe\x00garbage"},
     "free --from {dir}", "meminfo: not a text file (byte 0 is 0xff)"),
    ("an ops file that is not text", {"ops": b"\xff\xfe\x00alloc\n"},
     "buddy --pages 16 --ops {ops}", "not a text file (byte 0 is 0xff)"),
    ("a --from folder that does not exist", {}, "free --from {dir}/nope",
     "nope: no such directory"),
    ("a --from that is a file", {"meminfo": "MemTotal: 1 kB\n"},
     "watermarks --from {dir}/meminfo", "meminfo: not a directory"),
    ("a page size of 0 KiB", {}, "available --page-kb 0", ""),
    ("a cpu list past NR_CPUS", {"cpu_present": "0-99999999999999999999\n", "slabinfo": SLABINFO},
     "slub --from {dir}", "not a cpu list"),
    ("a cpu range backwards", {"cpu_present": "5-2\n", "slabinfo": SLABINFO},
     "slub --from {dir}", "not a cpu list"),
    ("a fraction of a byte", {}, "kmalloc 0.5", "'0.5' is not a size in bytes"),
    ("a fraction of a byte of RAM", {}, "layout arm --ram 1.5", "not a whole number of bytes"),
    ("a gfp mask wider than gfp_t", {}, "gfp 0x100000000", "does not fit in gfp_t"),
    ("a negative slabinfo count", {}, "replay --slabinfo -3 --no-progress",
     "--slabinfo N must be 0 or more"),
    ("a solution notebook that is not JSON", {"solutions/01_x.ipynb": "not json"},
     "exercises check --dir {dir}", "01_x.ipynb: not a notebook (JSON error at line 1"),
    ("a notebook with no cells", {"solutions/01_x.ipynb": '{"cells": 5}'},
     "exercises release --dir {dir}", "01_x.ipynb: not a notebook (no list of cells)"),
]


@pytest.mark.parametrize("label, files, command, message", MORE_CASES,
                         ids=[c[0] for c in MORE_CASES])
def test_more_bad_input_gets_one_clear_line(tmp_path, capsys, label, files, command, message):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            (tmp_path / name).write_bytes(data)
        else:
            (tmp_path / name).write_text(data)
    argv = command.format(dir=tmp_path, ops=tmp_path / "ops").split()
    try:
        status = main(argv)
    except SystemExit as end:             # argparse refuses a choice itself, with status 2
        status = end.code
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err
    assert err.startswith(f"kmm {argv[0]}: ") or err.startswith("usage: ")


def test_a_half_snapshot_source_says_the_figures_need_not_agree(tmp_path, capsys):
    """meminfo from one machine, zoneinfo from the bundled snapshot: MemAvailable cannot be
    compared, and kmm available says so (watermarks already did)."""
    from kmmlib.procfs.source import SNAPSHOT_DIR

    meminfo = re.sub(r"MemFree: +\d+", "MemFree:  1234", (SNAPSHOT_DIR / "meminfo").read_text())
    (tmp_path / "meminfo").write_text(meminfo)
    assert main(["available", "--from", str(tmp_path)]) == 0
    assert "describe different kernels" in capsys.readouterr().err
    assert main(["available", "--from", str(SNAPSHOT_DIR)]) == 0
    assert "different kernels" not in capsys.readouterr().err


def test_overcommit_without_a_commitlimit_line_says_so(tmp_path, capsys):
    from kmmlib.procfs.source import SNAPSHOT_DIR

    meminfo = "".join(line for line in (SNAPSHOT_DIR / "meminfo").read_text().splitlines(True)
                      if not line.startswith("CommitLimit"))
    (tmp_path / "meminfo").write_text(meminfo)
    assert main(["overcommit", "--from", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no CommitLimit line" in out and "None" not in out


def test_the_readme_table_lists_every_case():
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| `kmm .*?` \| (.+?) \|$",
                                                       readme, re.M)}
    for label, _files, _command, message in CASES:
        assert label in rows, f"README's bad-input table has no row for {label!r}"
        assert message.replace("|", "\\|") in rows[label], label


@pytest.mark.parametrize("size", [0, -1, "1P", "lots"])
def test_absurd_machine_sizes(size):
    with pytest.raises(BadRequest):
        Machine.one_zone(size)


# -- not errors: what the course tolerates and reports instead -------------------------------
def test_malformed_trace_lines_are_counted_never_fatal(tmp_path, capsys):
    import json

    trace = tmp_path / "trace.txt"
    trace.write_text(
        "hello world\n"
        "  bash-2355 [001] ..... 1042.955483: mm_page_alloc: page=00000000bbca4c06 "
        "pfn=0x11e558 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE\n"
        "  x-1 [000] ..... 1043.0: mm_page_alloc: pfn=zz order=q\n"
        "  y-2 [000] ..... 1043.5: sched_switch: prev_comm=y\n")
    assert main(["replay", str(trace), "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events"] == {"mm_page_alloc": 1, "sched_switch": 1}
    assert report["report"]["trace"]["malformed"] == 2
    assert report["report"]["trace"]["unknown"] == {"sched_switch": 1}


def test_widget_inputs_out_of_range_get_a_message_not_a_traceback():
    from kmmlib.widgets.layout import LayoutExplorer
    from kmmlib.widgets.page_inspector import PageInspector

    inspector = PageInspector()
    inspector.flags_text.value = "lru|bogus"
    assert "unknown page flag 'bogus'" in inspector.flags_text_view()
    explorer = LayoutExplorer()
    before = explorer.current()
    ram = explorer.ram.value
    explorer.ram.value = "-5G"
    assert "cannot read '-5G' as a size" in explorer.text
    explorer.ram.value = ram
    explorer.address.value = "not-an-address"
    assert "address 'not-an-address'" in explorer.text
    assert explorer.current() == before  # nothing changed for good


def test_stepper_cannot_be_sent_outside_its_script():
    from kmmlib.mm.freelist import FreeListAllocator
    from kmmlib.stepper import Stepper

    st = Stepper(lambda: FreeListAllocator(4), [("kalloc",), ("kfree", 9)])
    st.run()
    assert "not one of this machine's 0..3" in st.narration()  # refused, state intact
    assert st.model.render().startswith("frames  [...#]")
    with pytest.raises(BadRequest, match="outside 0..2"):
        st.goto(5)


def test_exit_statuses_are_as_the_readme_says(tmp_path, capsys):
    """0 done, 1 a value differs (watermarks, slub, proc --check), 0 for available and
    overcommit whatever they compare, 2 bad input — the README's exit-status paragraph."""
    import shutil

    from kmmlib.procfs.source import SNAPSHOT_DIR

    readme = (ROOT / "README.md").read_text()
    assert "Exit status: 0 when the command did what it was asked; 2 for bad input" in readme
    shutil.copytree(SNAPSHOT_DIR, tmp_path / "d")
    zoneinfo = (tmp_path / "d" / "zoneinfo").read_text()
    (tmp_path / "d" / "zoneinfo").write_text(re.sub(r"(\n +min +)(\d+)", r"\g<1>1\2", zoneinfo,
                                                    count=1))
    meminfo = (tmp_path / "d" / "meminfo").read_text()
    (tmp_path / "d" / "meminfo").write_text(re.sub(r"CommitLimit: +\d+", "CommitLimit: 1",
                                                   meminfo))
    d = str(tmp_path / "d")
    assert main(["watermarks", "--from", str(SNAPSHOT_DIR)]) == 0
    assert main(["watermarks", "--from", d]) == 1
    assert main(["proc", "buddyinfo", "--check", "--from", d]) == 0
    assert main(["available", "--from", d]) == 0 and main(["overcommit", "--from", d]) == 0
    assert "DIFFERENT" in capsys.readouterr().out
    assert main(["free", "--from", str(tmp_path / "nope")]) == 2


def test_a_trace_with_no_kmem_events_says_so(tmp_path, capsys):
    trace = tmp_path / "t.txt"
    trace.write_text("hello\n  bash-1 [000] ..... 1.0: sched_switch: prev_comm=bash\n")
    assert main(["replay", str(trace), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "holds no kmem events (2 lines read)" in err and "kmmlib.trace.capture" in err

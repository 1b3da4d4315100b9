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

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

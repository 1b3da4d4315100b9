"""``kmm layout``: the JSON contract, --translate, errors, and one run through a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from kmmlib.cli import main


def run_json(capsys, *argv):
    assert main(["layout", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_is_a_list_of_regions_with_exclusive_ends(capsys):
    regions = run_json(capsys, "arm64", "--kernel", "6.8")
    assert isinstance(regions, list)
    assert all(isinstance(r["start"], int) and isinstance(r["end"], int) and r["name"]
               for r in regions)
    modules = [r for r in regions if r["name"] == "modules"]
    # memory.rst: "ffff800000000000  ffff80007fffffff  2GB  modules" (the end printed inclusive)
    assert modules == [{"start": 0xFFFF800000000000, "end": 0xFFFF80007FFFFFFF + 1,
                        "name": "modules", "kind": "modules"}]
    main_regions = [r for r in regions if not r.get("overlay")]
    assert main_regions[0]["start"] == 0 and main_regions[-1]["end"] == 1 << 64
    assert all(a["end"] == b["start"] for a, b in zip(main_regions, main_regions[1:],
                                                                   strict=False))


def test_default_is_the_newest_modelled_kernel(capsys):
    assert main(["layout", "arm64"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("arm64, Linux 6.18 (6.9+ layout)")


def test_ram_option_and_arm32(capsys):
    regions = run_json(capsys, "arm", "--ram", "2G")
    lowmem = [r for r in regions if r["kind"] == "linear"][0]
    assert (lowmem["start"], lowmem["end"]) == (0xC0000000, 0xF0000000)


def test_translate(capsys):
    out = run_json(capsys, "x86_64", "--translate", "ffff888000001000", "--translate",
                   "ffffc90000000000")
    assert out[0]["phys"] == 0x1000 and out[0]["kind"] == "linear"
    assert out[1]["phys"] is None and out[1]["kind"] == "vmalloc"


def test_bad_requests_exit_2_with_one_line(capsys):
    for argv in (["layout", "sparc"], ["layout", "x86_64", "--kernel", "6.1"],
                 ["layout", "arm64", "--va-bits", "50"], ["layout", "arm64", "--ram", "lots"],
                 ["layout", "arm64", "--translate", "xyz"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("kmm layout: ") and err.count("\n") == 1


def test_as_a_subprocess(python):
    res = subprocess.run([python, "-m", "kmmlib", "layout", "x86_64", "--levels", "5"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "ff11000000000000 |  -59.75 PB | ff90ffffffffffff |   32 PB | direct mapping" \
        in res.stdout
    res = subprocess.run([sys.executable, "-m", "kmmlib", "layout", "arm64", "--kernel", "4.14",
                          "--plain"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "ffff800000000000 ffffffffffffffff" in res.stdout


def test_translate_reads_an_all_digit_address_as_hex(capsys):
    """A 32-bit oops prints 80000000 for 2 GiB: digits only and no 0x, it is still hex."""
    arm = run_json(capsys, "arm", "--translate", "80000000", "--translate", "0x80000000")
    assert arm[0]["va"] == arm[1]["va"] == 0x80000000
    x86 = run_json(capsys, "x86_32", "--translate", "c0001000")
    assert x86[0]["va"] == 0xC0001000 and x86[0]["phys"] == 0x1000

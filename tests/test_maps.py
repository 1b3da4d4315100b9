"""/proc/PID/maps and smaps: parsing, the kernel's exact line format, classification, fallback.

Reference data: the bundled sample (kmmlib/data/proc_self_{maps,smaps}_sample.txt), a real
``env -i cat /proc/self/smaps`` on Linux 6.18.44 x86_64, and this machine's live /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmmlib.errors import ParseError
from kmmlib.procfs.source import ProcSource
from kmmlib.userspace import maps as M


def real_lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x and not x.startswith("#")]


def test_sample_maps_lines_are_reprinted_byte_for_byte():
    """Mapping.line() follows show_vma_header_prefix()/seq_pad(): same text as the kernel."""
    lines = real_lines(M.SAMPLE_MAPS)
    parsed = M.parse_maps(M.SAMPLE_MAPS.read_text())
    assert [m.line() for m in parsed] == lines
    assert len(parsed) == 24


def test_smaps_headers_are_the_maps_lines_and_counters_add_up():
    smaps = M.parse_smaps(M.SAMPLE_SMAPS.read_text())
    assert [m.line() for m in smaps] == real_lines(M.SAMPLE_MAPS)
    for m in smaps:
        assert m.kb("Size") == m.size >> 10                     # Size is the VMA's length
        assert m.kb("Rss") == m.kb("Private_Clean") + m.kb("Private_Dirty") + \
            m.kb("Shared_Clean") + m.kb("Shared_Dirty")
        assert m.kb("Pss") <= m.kb("Rss")
        assert isinstance(m.fields["VmFlags"], str)
    heap = next(m for m in smaps if m.path == "[heap]")
    assert "ac" in heap.fields["VmFlags"].split()              # accountable: anon, writable


def test_classification_of_the_sample():
    pm = M.sample()
    kinds = {m.path or "(anon)": set() for m in pm.mappings}
    for m in pm.mappings:
        kinds[m.path or "(anon)"].add(m.kind)
    assert kinds["/usr/bin/cat"] == {"text", "rodata", "data"}
    assert kinds["[heap]"] == {"heap"} and kinds["[stack]"] == {"stack"}
    assert kinds["[vdso]"] == {"vdso"} and kinds["[vvar]"] == {"vvar"}
    assert kinds["[vsyscall]"] == {"vsyscall"}
    assert kinds["/usr/lib/x86_64-linux-gnu/libc.so.6"] == {"mmap"}
    text = pm.of_kind("text")
    assert len(text) == 1 and text[0].perms == "r-xp" and text[0].offset == 0x2000
    totals = pm.totals()
    assert set(totals) == {"text", "data", "heap", "mmap", "stack", "vdso"}
    assert sum(t["vmas"] for t in totals.values()) == 24
    assert "group" in pm.summary()


def test_bss_after_the_program_is_recognised():
    text = "\n".join([
        "00400000-00401000 r-xp 00000000 08:01 42                                 /bin/prog",
        "00600000-00601000 rw-p 00000000 08:01 42                                 /bin/prog",
        "00601000-00622000 rw-p 00000000 00:00 0 ",
        "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]",
        "7ffc00021000-7ffc00022000 ---p 00000000 00:00 0 "])
    maps = M.classify(M.parse_maps(text))
    assert [m.kind for m in maps] == ["text", "data", "bss", "stack", "guard"]


@pytest.mark.parametrize("bad", ["zzz", "00400000-00300000 r-xp 00000000 08:01 42 /x",
                                 "00400000-00500000 rwzp 00000000 08:01 42 /x"])
def test_bad_maps_lines(bad):
    with pytest.raises(ParseError):
        M.parse_maps(bad)


def test_overlapping_or_orphan_lines_are_refused():
    with pytest.raises(ParseError, match="overlaps"):
        M.parse_maps("00400000-00500000 r-xp 00000000 08:01 42 /x\n"
                     "00480000-00600000 r-xp 00000000 08:01 42 /x\n")
    with pytest.raises(ParseError):
        M.parse_smaps("Rss:  4 kB\n")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="no /proc here")
def test_live_self_is_this_python():
    pm = M.load_self()
    assert pm.origin == "/proc/self/smaps" and not pm.notes
    assert os.path.realpath(pm.exe) == os.path.realpath("/proc/self/exe")
    assert pm.of_kind("text") and pm.of_kind("stack") and pm.of_kind("heap")
    # a live address of this process lies in one of its mappings
    buf = bytearray(1 << 20)
    import ctypes

    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    assert any(m.start <= addr < m.end for m in M.load_self().mappings)


def test_falls_back_to_the_sample_with_a_note(tmp_path):
    pm = M.load_self(ProcSource(tmp_path))
    assert pm.notes == [M.SAMPLE_NOTE] and pm.exe == "/usr/bin/cat"
    assert pm.origin.startswith("bundled sample")

"""ELF program headers (struct and readelf), and segments placed on the process's mappings.

Reference data: ``readelf -lW`` (GNU binutils) run on this machine, the bundled readelf output
of /usr/bin/cat with the bundled /proc/self/maps of that same cat process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from kmmlib.errors import ParseError
from kmmlib.userspace import elf as E
from kmmlib.userspace import maps as M


@pytest.mark.skipif(shutil.which("readelf") is None, reason="no readelf")
@pytest.mark.parametrize("path", [sys.executable, "/bin/sh"])
def test_struct_parser_agrees_with_readelf(path):
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True,
                         check=True).stdout
    assert E.read_elf(path).segments == E.parse_readelf(out).segments
    assert E.read_elf(path).interp == E.parse_readelf(out).interp


def test_bundled_sample_of_cat():
    e = E.sample_elf()
    assert e.type == "DYN" and e.entry == 0x3130
    assert e.interp == "/lib64/ld-linux-x86-64.so.2"
    assert [s.flags for s in e.loads] == ["R  ", "R E", "R  ", "RW "]
    assert e.relro.vaddr == 0xAC30


def test_segments_land_on_the_mappings_of_the_same_process():
    """cat is PIE: load_bias = the mapping of file offset 0 (558f10bbf000). Its RW segment
    (vaddr 0xac30) starts inside page 0xa000: RELRO made that page r--p, the next one stays
    rw-p, and p_memsz > p_filesz leaves a bss tail in the rw page."""
    pm = M.sample()
    placed = E.relate(E.sample_elf(), pm.mappings)
    bias = 0x558F10BBF000
    assert E.load_bias(E.sample_elf(), pm.mappings) == bias
    text = placed[1]
    assert text.segment.flags == "R E"
    assert [(m.start, m.perms, m.offset) for m in text.mappings] == \
        [(bias + 0x2000, "r-xp", 0x2000)]
    data = placed[3]
    assert [(m.start - bias, m.perms) for m in data.mappings] == [(0xA000, "r--p"),
                                                                   (0xB000, "rw-p")]
    assert data.bss == (bias + 0xAC30 + 0x650, bias + 0xAC30 + 0x7E8)
    for p in placed:                               # permissions match the segment's flags
        assert all(m.perms[:3] == p.segment.perms or m.perms == "r--p" for m in p.mappings)
        assert "LOAD" in p.text()


def test_live_process_segments():
    import os

    if not os.path.exists("/proc/self/smaps"):
        pytest.skip("no /proc here")
    pm = M.load_self()
    e = E.read_elf(pm.exe)
    placed = E.relate(e, pm.mappings)
    assert all(p.mappings for p in placed)
    assert any(m.kind == "text" for p in placed for m in p.mappings)


def test_bad_input():
    with pytest.raises(ParseError, match="not an ELF"):
        E.read_elf(b"#!/bin/sh\n")
    with pytest.raises(ParseError):
        E.parse_readelf("hello")
    with pytest.raises(ParseError, match="no mapping"):
        E.load_bias(E.sample_elf(), [])
    # a 32-bit little-endian header with no program headers parses
    hdr = b"\x7fELF\x01\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + \
        (3).to_bytes(2, "little") + bytes(36)
    info = E.read_elf(hdr)
    assert (info.elf_class, info.type, info.machine, info.segments) == (32, "EXEC", "x86", [])

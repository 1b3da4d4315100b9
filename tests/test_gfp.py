"""GFP flags: bit numbers, composites, tracepoint formatting, gfp_zone, gfp_migratetype, kmm gfp.

The reference data is the real Linux 6.18 kernel's: the bit numbers of its tracepoint format
(KERNEL_FACTS.md) and every distinct ``gfp_flags=`` string of a real ``kmem:*`` trace
(tests/data/gfp_flags_seen.txt, extracted from ../shared/data/kmem-trace.txt.xz).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest, ParseError
from kmmlib.mm import gfp
from kmmlib.mm.gfp import Gfp, GfpConfig, format_gfp, gfp_migratetype, gfp_zone, parse_gfp

SEEN = Path(__file__).parent / "data" / "gfp_flags_seen.txt"
ROOT = Path(__file__).resolve().parent.parent


def seen_strings() -> list[str]:
    return [line.strip() for line in SEEN.read_text().splitlines() if line.strip()]


# The real 6.18 kernel's bit numbers (from its tracepoint format, KERNEL_FACTS.md).
KERNEL_BITS = {
    "__GFP_DMA": 0, "__GFP_HIGHMEM": 1, "__GFP_DMA32": 2, "__GFP_MOVABLE": 3,
    "__GFP_RECLAIMABLE": 4, "__GFP_HIGH": 5, "__GFP_IO": 6, "__GFP_FS": 7, "__GFP_ZERO": 8,
    "__GFP_DIRECT_RECLAIM": 10, "__GFP_KSWAPD_RECLAIM": 11, "__GFP_WRITE": 12,
    "__GFP_NOWARN": 13, "__GFP_RETRY_MAYFAIL": 14, "__GFP_NOFAIL": 15, "__GFP_NORETRY": 16,
    "__GFP_MEMALLOC": 17, "__GFP_COMP": 18, "__GFP_NOMEMALLOC": 19, "__GFP_HARDWALL": 20,
    "__GFP_THISNODE": 21, "__GFP_ACCOUNT": 22, "__GFP_ZEROTAGS": 23, "__GFP_NO_OBJ_EXT": 24,
}


def test_bit_numbers_are_the_real_kernels():
    assert gfp.DEFAULT.bits == KERNEL_BITS


def test_optional_bits_are_numbered_in_sequence_after_23():
    full = Gfp(GfpConfig(kasan_hw_tags=True, lockdep=True, slab_obj_ext=True))
    assert [full.bits[n] for n in ("__GFP_SKIP_ZERO", "__GFP_SKIP_KASAN", "__GFP_NOLOCKDEP",
                                   "__GFP_NO_OBJ_EXT")] == [24, 25, 26, 27]
    bare = Gfp(GfpConfig(slab_obj_ext=False))
    assert "__GFP_NO_OBJ_EXT" not in bare.bits and bare.bits_shift == 24


def test_composites_follow_their_definitions():
    g = gfp.DEFAULT
    b = {n: 1 << v for n, v in KERNEL_BITS.items()}
    reclaim = b["__GFP_DIRECT_RECLAIM"] | b["__GFP_KSWAPD_RECLAIM"]
    assert g.GFP_KERNEL == reclaim | b["__GFP_IO"] | b["__GFP_FS"] == 0xCC0
    assert g.GFP_ATOMIC == b["__GFP_HIGH"] | b["__GFP_KSWAPD_RECLAIM"]
    assert g.GFP_NOWAIT == b["__GFP_KSWAPD_RECLAIM"] | b["__GFP_NOWARN"]   # 6.8+
    assert g.GFP_HIGHUSER_MOVABLE == g.GFP_USER | b["__GFP_HIGHMEM"] | b["__GFP_MOVABLE"]
    assert g.GFP_TRANSHUGE_LIGHT & reclaim == 0
    assert g.GFP_TRANSHUGE == g.GFP_TRANSHUGE_LIGHT | b["__GFP_DIRECT_RECLAIM"]
    # SKIP_KASAN joins GFP_HIGHUSER_MOVABLE only when KASAN HW tags exist.
    kasan = Gfp(GfpConfig(kasan_hw_tags=True))
    assert kasan.GFP_HIGHUSER_MOVABLE == kasan.GFP_HIGHUSER | kasan.__GFP_MOVABLE \
        | kasan.__GFP_SKIP_KASAN


@pytest.mark.parametrize("text", seen_strings())
def test_every_string_of_the_real_trace_round_trips(text):
    mask = parse_gfp(text)
    assert format_gfp(mask) == text
    assert format_gfp(parse_gfp(hex(mask))) == text


def test_the_seen_file_is_the_real_trace_sample():
    strings = seen_strings()
    assert len(strings) == len(set(strings)) >= 40
    assert "GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP" in strings


def test_format_algorithm():
    # Composites first; the rest in bit order (ZERO bit 8 before NOWARN bit 13) in 6.18.
    assert format_gfp(0x2DC0) == "GFP_KERNEL|__GFP_ZERO|__GFP_NOWARN"
    assert format_gfp(0) == "none"
    assert format_gfp(0x100CC4) == "GFP_USER|GFP_DMA32"
    # Bits no table entry names are printed in hex, last (__print_flags).
    assert format_gfp(0xEC0) == "GFP_KERNEL|0x200"
    assert format_gfp(1 << 40 | 0xCC0) == "GFP_KERNEL|0x10000000000"
    assert parse_gfp("GFP_KERNEL|0x200") == 0xEC0
    # GFP_NOIO == __GFP_RECLAIM: the first matching entry wins.
    assert format_gfp(0xC00) == "GFP_NOIO"


def test_parse_forms():
    assert parse_gfp(" GFP_KERNEL | __GFP_ZERO ") == 0xDC0
    assert parse_gfp("gfp_kernel") == 0xCC0
    assert parse_gfp("3520") == 0xDC0
    assert parse_gfp("none") == 0
    assert parse_gfp("___GFP_ZERO") == 0x100


@pytest.mark.parametrize("bad, near", [("GFP_KERNAL", "GFP_KERNEL"),
                                       ("__GFP_NOWARNING", "__GFP_NOWARN"),
                                       ("zero", "__GFP_ZERO")])
def test_unknown_names_list_the_nearest(bad, near):
    with pytest.raises(ParseError, match=near):
        parse_gfp(f"GFP_ATOMIC|{bad}")


@pytest.mark.parametrize("bad", ["", "GFP_KERNEL||__GFP_ZERO", "0xzz", "-1"])
def test_malformed_strings_raise_parse_error(bad):
    with pytest.raises(ParseError):
        parse_gfp(bad)


def test_gfp_zone_table():
    g = gfp.DEFAULT
    zones = gfp.X86_64_ZONES
    name = lambda m: zones[gfp_zone(m)]  # noqa: E731
    assert name(g.GFP_KERNEL) == "Normal"
    assert name(g.GFP_KERNEL | g.__GFP_DMA) == "DMA"
    assert name(g.GFP_KERNEL | g.__GFP_DMA32) == "DMA32"
    assert name(g.GFP_HIGHUSER_MOVABLE) == "Movable"
    assert name(g.__GFP_MOVABLE) == "Normal"          # MOVABLE alone is not ZONE_MOVABLE
    assert name(g.GFP_HIGHUSER) == "Normal"           # no HighMem on 64-bit: OPT_ZONE_HIGHMEM
    i386 = ("DMA", "Normal", "HighMem", "Movable")
    assert i386[gfp_zone(g.GFP_HIGHUSER, i386)] == "HighMem"
    assert i386[gfp_zone(g.GFP_DMA32, i386)] == "Normal"     # no ZONE_DMA32 there
    for bad in (0x3, 0x5, 0x6, 0x7, 0xB, 0xD, 0xE, 0xF):
        with pytest.raises(BadRequest, match="GFP_ZONE_BAD"):
            gfp_zone(bad)


def test_gfp_migratetype():
    g = gfp.DEFAULT
    assert gfp_migratetype(g.GFP_KERNEL) == gfp.MIGRATE_UNMOVABLE
    assert gfp_migratetype(g.GFP_HIGHUSER_MOVABLE) == gfp.MIGRATE_MOVABLE
    assert gfp_migratetype(g.GFP_KERNEL | g.__GFP_RECLAIMABLE) == gfp.MIGRATE_RECLAIMABLE
    assert gfp_migratetype(g.GFP_HIGHUSER_MOVABLE, page_group_by_mobility_disabled=True) == 0
    with pytest.raises(BadRequest):
        gfp_migratetype(g.__GFP_MOVABLE | g.__GFP_RECLAIMABLE)


# The real trace's mm_page_alloc events: (migratetype the kernel printed, gfp_flags).
REAL_ALLOC_MIGRATETYPES = [
    (1, "GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP"),
    (2, "__GFP_RECLAIMABLE|__GFP_IO|__GFP_FS|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP"
        "|__GFP_NOMEMALLOC"),
    (0, "GFP_NOFS|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP"),
]


@pytest.mark.parametrize("migratetype, text", REAL_ALLOC_MIGRATETYPES)
def test_migratetype_matches_the_trace(migratetype, text):
    assert gfp_migratetype(parse_gfp(text)) == migratetype


# -- kmm gfp ---------------------------------------------------------------------------------

def test_cli_json(capsys):
    assert main(["gfp", "--json", "GFP_KERNEL|__GFP_ZERO", "0x100cca", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == [{"name": "GFP_KERNEL|__GFP_ZERO", "mask": 0xDC0},
                   {"name": "GFP_HIGHUSER_MOVABLE", "mask": 0x100CCA},
                   {"name": "none", "mask": 0}]


def test_cli_text(capsys):
    assert main(["gfp", "0x2dc0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "0x2dc0 = GFP_KERNEL|__GFP_ZERO|__GFP_NOWARN"
    assert "13 __GFP_NOWARN" in out and "gfp_zone:    Normal" in out


def test_cli_unknown_flag_is_one_line_and_status_2(capsys):
    assert main(["gfp", "GFP_KERNAL"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmm gfp: unknown gfp flag 'GFP_KERNAL'") and "GFP_KERNEL" in err


def test_cli_list(capsys):
    assert main(["gfp", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows[:3]] == ["GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT",
                                              "GFP_HIGHUSER_MOVABLE"]
    assert {r["name"]: r["mask"] for r in rows}["__GFP_NO_OBJ_EXT"] == 1 << 24


def test_cli_subprocess_every_seen_string():
    strings = seen_strings()
    proc = subprocess.run([sys.executable, "-m", "kmmlib", "gfp", "--json", *strings],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert [r["name"] for r in json.loads(proc.stdout)] == strings

"""The ftrace kmem parser, the bundled trace, trimming and capturing (kmmlib.trace).

Lines below are copied from the real trace of the snapshot's machine unless a test says it
builds a variant (another kernel's layout, a damaged line)."""

from __future__ import annotations

import lzma
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kmmlib.errors import ParseError
from kmmlib.trace import parse
from kmmlib.trace.capture import (
    CaptureRefused,
    bundled_trace,
    capture,
    check_can_capture,
    find_tracefs,
    trim_trace,
)
from kmmlib.trace.parse import (
    KMEM_EVENTS,
    RECORD_FIELDS,
    TraceLines,
    TraceStats,
    _careful_record,
    iter_records,
    parse_fields,
    parse_line,
    read_trace,
    record_batches,
)

FULL_TRACE = Path("/work/shared/data/kmem-trace.txt.xz")

REAL = {
    "kmem_cache_alloc": "         python3-2402    [001] .....  1045.201203: kmem_cache_alloc: "
    "call_site=getname_flags.part.0+0x24/0x1f0 ptr=0000000091bba0ad name=names_cache "
    "bytes_req=4096 bytes_alloc=4096 gfp_flags=GFP_KERNEL node=-1 accounted=false",
    "kmem_cache_free": "         python3-2402    [001] .....  1045.201209: kmem_cache_free: "
    "call_site=vfs_fstatat+0x71/0xb0 ptr=0000000091bba0ad name=names_cache",
    "kmalloc": "         python3-2402    [001] .....  1045.201309: kmalloc: "
    "call_site=__d_alloc+0x170/0x230 ptr=00000000f61bc2e1 bytes_req=70 bytes_alloc=96 "
    "gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_RECLAIMABLE node=-1 accounted=true",
    "kfree": "         python3-2402    [001] .....  1045.201313: kfree: "
    "call_site=ext4_fname_free_filename+0x12/0x40 ptr=0000000000000000",
    "mm_page_alloc": "         python3-2402    [001] .....  1045.201337: mm_page_alloc: "
    "page=00000000ec1095df pfn=0x1103b0 order=3 migratetype=1 "
    "gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_WRITE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
    "mm_page_alloc_zone_locked": "         python3-2402    [001] d..3.  1045.201922: "
    "mm_page_alloc_zone_locked: page=00000000a64ed91f pfn=0x123f5e order=1 migratetype=0 "
    "percpu_refill=1",
    "mm_page_alloc_extfrag": "         python3-2402    [001] d..3.  1045.216367: "
    "mm_page_alloc_extfrag: page=0000000063b2d72d pfn=0x110400 alloc_order=0 "
    "fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 "
    "fragmenting=0 change_ownership=1",
    "mm_page_free": "         python3-2402    [001] .....  1045.345926: mm_page_free: "
    "page=0000000052f32813 pfn=0x106c15 order=0",
    "mm_page_free_batched": "         python3-2402    [001] ...2.  1045.345928: "
    "mm_page_free_batched: page=0000000052f32813 pfn=0x106c15 order=0",
    "mm_page_pcpu_drain": "       kdamond.0-77      [000] d..3.  1045.877798: mm_page_pcpu_drain: "
    "page=00000000f1e9a894 pfn=0x123e0f order=0 migratetype=0",
}

# What each line's record must hold after (code, timestamp, cpu, task_pid).
EXPECTED = {
    "kmem_cache_alloc": ("0000000091bba0ad", 4096, 4096, "GFP_KERNEL", "names_cache",
                         "getname_flags.part.0+0x24/0x1f0"),
    "kmem_cache_free": ("0000000091bba0ad", "names_cache", "vfs_fstatat+0x71/0xb0"),
    "kmalloc": ("00000000f61bc2e1", 70, 96, "GFP_KERNEL_ACCOUNT|__GFP_RECLAIMABLE",
                "__d_alloc+0x170/0x230"),
    "kfree": ("0000000000000000", "ext4_fname_free_filename+0x12/0x40"),
    "mm_page_alloc": (0x1103B0, 3, 1,
                      "GFP_HIGHUSER_MOVABLE|__GFP_WRITE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP"),
    "mm_page_alloc_zone_locked": (0x123F5E, 1, 0, 1),
    "mm_page_alloc_extfrag": (0x110400, 0, 10, 0, 1, 1),
    "mm_page_free": (0x106C15, 0),
    "mm_page_free_batched": (0x106C15,),
    "mm_page_pcpu_drain": (0x123E0F, 0, 0),
}


@pytest.fixture(autouse=True, params=["C", "Python"])
def reader(request, monkeypatch) -> str:
    """Every test here runs twice: with the C module reading the hot path (kmmlib/trace/
    _ftrace.c, where it is built), and in pure Python."""
    if request.param == "C" and not parse.FAST_C:
        pytest.skip("the C module is not built here")
    if request.param == "Python":
        monkeypatch.setattr(parse, "_ftrace", None)
    return request.param


def records(lines) -> tuple[list[tuple], TraceStats]:
    st = TraceStats()
    return list(iter_records(lines, st)), st


# -- one line ---------------------------------------------------------------------------------

def test_parse_line_reads_every_part():
    ev = parse_line(REAL["mm_page_alloc"])
    assert (ev.task, ev.pid, ev.cpu, ev.flags, ev.timestamp, ev.event) == (
        "python3", 2402, 1, ".....", 1045.201337, "mm_page_alloc")
    assert ev.fields["pfn"] == "0x1103b0" and ev.fields["order"] == "3"
    drain = parse_line(REAL["mm_page_pcpu_drain"])
    assert (drain.task, drain.pid, drain.cpu, drain.flags) == ("kdamond.0", 77, 0, "d..3.")


@pytest.mark.parametrize("event", KMEM_EVENTS)
def test_fast_path_reads_each_real_event(event):
    (rec,), st = records([REAL[event] + "\n"])
    assert rec[1:4] == (parse_line(REAL[event]).timestamp, parse_line(REAL[event]).cpu,
                        REAL[event].split()[0])
    assert rec[4:] == EXPECTED[event]
    assert len(rec) == 4 + len(RECORD_FIELDS[rec[0]])
    assert st.events == Counter({event: 1}) and st.malformed == 0


def test_fast_path_equals_reading_by_name_on_the_whole_bundled_trace():
    """Every line the positional fast path reads gives the record that reading the same line
    field by field gives: the positions are right for every event of the real trace."""
    with TraceLines(bundled_trace()) as lines:
        text = [line for line in lines if line and not line.startswith("#")]
    fast, st = records(text)
    assert len(fast) == len(text) == 60000 and st.malformed == 0
    for line, rec in zip(text, fast, strict=True):
        ev, ts, careful = _careful_record(line)
        assert careful == rec, line


def test_task_names_with_dashes_spaces_and_other_layouts():
    """A comm with a dash or a space, no irq-info column, a TGID column: all read."""
    body = " pfn=0x1103b0 order=0 migratetype=1 gfp_flags=GFP_KERNEL"
    lines = [
        "   kworker/u8:0-12      [001] d..1.  5.000001: mm_page_alloc: page=00000000ec1095df"
        + body,
        "  Web Content-3141      [000] .....  5.000002: mm_page_alloc: page=00000000ec1095df"
        + body,
        "            bash-2355  [001]  5.000003: mm_page_alloc: page=00000000ec1095df" + body,
        "            bash-2355  (   2355) [001] .....  5.000004: mm_page_alloc: "
        "page=00000000ec1095df" + body,
    ]
    recs, st = records(lines)
    assert st.malformed == 0
    assert [r[3] for r in recs] == ["kworker/u8:0-12", "Web Content-3141", "bash-2355",
                                    "bash-2355"]
    assert [r[2] for r in recs] == [1, 0, 1, 1]
    assert [r[1] for r in recs] == [5.000001, 5.000002, 5.000003, 5.000004]
    assert parse_line(lines[1]).task == "Web Content"
    assert parse_line(lines[2]).flags == ""


def test_timestamps_of_a_burst_and_of_lines_read_by_name():
    """The fast path converts a timestamp once for a burst of events that share it; a line
    read the careful way in between (a task name with a space) does not leave its own."""
    body = ": mm_page_free: page=00000000deadbeef pfn=0x10 order=0"
    lines = ["          bash-1    [000] .....  1.000001" + body,
             "          bash-1    [000] .....  1.000001" + body,
             "       my task-5    [000] .....  2.000002" + body,
             "          bash-1    [000] .....  1.000001" + body,
             "          bash-1    [001] .....  3.000003" + body]
    recs, st = records(lines)
    assert [r[1] for r in recs] == [1.000001, 1.000001, 2.000002, 1.000001, 3.000003]
    assert [r[3] for r in recs] == ["bash-1", "bash-1", "my task-5", "bash-1", "bash-1"]
    assert [r[2] for r in recs] == [0, 0, 0, 0, 1]


def test_a_field_with_another_key_is_read_by_name():
    """The fast path's tables check each token's key: fields in another order (another
    kernel's layout) are read by name, not by place."""
    lines = ["            bash-1    [000] .....  1.000001: mm_page_alloc: page=00000000deadbeef "
             "pfn=0x10 migratetype=1 order=2 gfp_flags=GFP_KERNEL",
             "            bash-1    [000] .....  1.000002: kmem_cache_alloc: call_site=f+0x1/0x2 "
             "ptr=00000000cafe gfp_flags=GFP_KERNEL bytes_req=184 bytes_alloc=192 name=filp "
             "node=-1 accounted=true"]
    (page, obj), st = records(lines)
    assert page[4:] == (0x10, 2, 1, "GFP_KERNEL") and st.malformed == 0
    assert obj[4:] == ("00000000cafe", 184, 192, "GFP_KERNEL", "filp", "f+0x1/0x2")


def test_a_failed_allocation_is_pfn_minus_one_however_null_is_printed():
    """mm_page_alloc of a NULL page: %p prints 0000000000000000 now, (null) before 4.15; the
    fast path and reading by name both give pfn -1."""
    body = " pfn=0xffffffffffffffff order=0 migratetype=1 gfp_flags=GFP_KERNEL"
    lines = ["            bash-1    [000] .....  1.000001: mm_page_alloc: page=0000000000000000"
             + body,
             "            bash-1    [000] .....  1.000002: mm_page_alloc: page=(null)" + body]
    recs, st = records(lines)
    assert [r[4] for r in recs] == [-1, -1] and st.malformed == 0
    assert [_careful_record(line)[2] for line in lines] == recs


ODD = "          bash-1    [000] .....  1.5: mm_page_free: page=00000000deadbeef pfn=0x10 order=0"


MALFORMED = None


@pytest.mark.parametrize("line, want", [
    (ODD.replace("1.5:", "nan:"), MALFORMED), (ODD.replace("1.5:", "1e3:"), MALFORMED),
    (ODD.replace("1.5:", "1_0.5:"), MALFORMED), (ODD.replace("1.5:", ".5:"), MALFORMED),
    (ODD.replace("1.5:", "5.:"), MALFORMED), (ODD.replace("1.5:", "1..5:"), MALFORMED),
    (ODD.replace("1.5:", ":"), MALFORMED), (ODD.replace("1.5:", "1.5"), MALFORMED),
    (ODD.replace("[000]", "[+01]"), MALFORMED), (ODD.replace("[000]", "[-1]"), MALFORMED),
    (ODD.replace("bash-1", "bash-x"), MALFORMED), (ODD.replace("bash-1", "bash1"), MALFORMED),
    # A key given twice: reading by name keeps the last value.
    (ODD.replace("mm_page_free:", "mm_page_free_batched:") + " pfn=0x20",
     (2, 1.5, 0, "bash-1", 0x20)),
    (ODD.replace("mm_page_free: page=00000000deadbeef pfn=0x10 order=0",
                 "kfree: foo=f+0x1/0x2 ptr=00000000cafe"), MALFORMED),      # no call_site
    (ODD.replace("mm_page_free: page=00000000deadbeef pfn=0x10 order=0",
                 "kmem_cache_free: call_site=f ptr2=00000000cafe name=filp"), MALFORMED),
    # gfp_flags runs to the next key, spaces and all.
    (ODD.replace("mm_page_free: page=00000000deadbeef pfn=0x10 order=0",
                 "kmem_cache_alloc: call_site=f ptr=p name=filp bytes_req=1 bytes_alloc=2 "
                 "gfp_flags=G x y"), (8, 1.5, 0, "bash-1", "p", 1, 2, "G x y", "filp", "f")),
    (ODD.replace("mm_page_free: page=00000000deadbeef pfn=0x10 order=0",
                 "kmalloc: foo=x ptr=y bytes_req=1 bytes_alloc=8 gfp_flags=G node=-1 "
                 "accounted=false"), MALFORMED),                              # no call_site
])
def test_odd_lines_read_as_reading_by_name_reads_them(line, want):
    """The fast path checks what it reads by place (timestamp digits, [CPU], TASK-PID, the
    keys): an odd line gives the record, or the malformed count, that reading it by name
    gives — and that is the one written here."""
    recs, st = records([line])
    if want is MALFORMED:
        assert recs == [] and st.malformed == 1, recs
        with pytest.raises((IndexError, KeyError, ValueError, ParseError)):
            _careful_record(line)
    else:
        assert recs == [want] and st.malformed == 0
        assert _careful_record(line)[2] == want


def test_older_kernels_layouts():
    """Decimal pfns (before 5.x), kmalloc_node/kmem_cache_alloc_node (before 6.1), no cache
    name on kmem_cache_alloc/free, cold= on mm_page_free_batched, a module's call_site."""
    lines = [
        "  bash-1 [000] .... 1.0: mm_page_alloc: page=ffffea0004f3a200 pfn=1299080 order=0 "
        "migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE",
        "  bash-1 [000] .... 1.1: kmalloc_node: call_site=ffffffff8139b5c8 ptr=ffff88003a1f2000 "
        "bytes_req=640 bytes_alloc=1024 gfp_flags=GFP_KERNEL node=-1",
        "  bash-1 [000] .... 1.2: kmem_cache_alloc_node: call_site=ffffffff8139b5c8 "
        "ptr=ffff88003a1f3000 bytes_req=184 bytes_alloc=192 gfp_flags=GFP_KERNEL node=0",
        "  bash-1 [000] .... 1.3: kmem_cache_free: call_site=ffffffff8139b5c8 "
        "ptr=ffff88003a1f3000",
        "  bash-1 [000] .... 1.4: mm_page_free_batched: page=ffffea0004f3a200 pfn=1299080 "
        "order=0 cold=0",
        "  bash-1 [000] .... 1.5: kmalloc: call_site=nf_ct_ext_add+0x54/0x1c0 [nf_conntrack] "
        "ptr=00000000f61bc2e1 bytes_req=70 bytes_alloc=96 gfp_flags=GFP_ATOMIC node=-1 "
        "accounted=false",
    ]
    recs, st = records(lines)
    assert st.malformed == 0
    assert recs[0][4] == 1299080
    assert recs[1][:1] == (6,) and recs[1][5:7] == (640, 1024)
    assert recs[2][0] == 8 and recs[2][8] is None           # no name printed
    assert recs[3] == (9, 1.3, 0, "bash-1", "ffff88003a1f3000", None, "ffffffff8139b5c8")
    assert recs[4][4] == 1299080
    assert recs[5][8] == "nf_ct_ext_add+0x54/0x1c0 [nf_conntrack]"
    assert st.events["kmalloc_node"] == 1 and st.events["kmem_cache_alloc_node"] == 1
    assert parse_fields("call_site=f+0x1/0x2 [mod] ptr=00") == {"call_site": "f+0x1/0x2 [mod]",
                                                                 "ptr": "00"}


def test_unknown_events_and_malformed_lines_are_counted_never_fatal():
    lines = [
        "# tracer: nop\n",
        "# entries-in-buffer/entries-written: 9/12   #P:4\n",
        REAL["mm_page_free"] + "\n",
        "  bash-1 [000] .... 2.0: sched_switch: prev_comm=bash prev_pid=1 ==> next_comm=x\n",
        "CPU:1 [LOST 3 EVENTS]\n",
        "this is not a trace line\n",
        "\n",
        REAL["mm_page_free"][:-10] + "\n",                   # cut short: order= is missing
        "  bash-1 [000] .... 2.1: mm_page_free: page=00 pfn=0xzz order=0\n",   # bad number
        "  bash-1 [0x0] .... 2.2: mm_page_free: page=00 pfn=0x10 order=0\n",   # bad cpu
        REAL["kfree"] + "\n",
    ]
    recs, st = records(lines)
    assert [r[0] for r in recs] == [1, 7]
    assert st.events == Counter({"mm_page_free": 1, "sched_switch": 1, "kfree": 1})
    assert st.unknown == Counter({"sched_switch": 1})
    assert st.malformed == 4
    assert [no for no, _ in st.malformed_examples] == [6, 8, 9, 10]
    assert st.lost_events == 3
    assert st.header == {"entries_in_buffer": 9, "entries_written": 12, "nr_cpus": 4,
                         "tracer": "nop"}
    assert st.overwritten == 3
    assert st.first_ts == 1045.345926 and st.last_ts == 1045.201313
    with pytest.raises(ParseError):
        parse_line("this is not a trace line")
    assert parse_line("# tracer: nop") is None and parse_line("CPU:0 [LOST 1 EVENTS]") is None


def test_stopping_early_still_counts_what_was_read():
    lines = [REAL["mm_page_free"]] * 5
    st = TraceStats()
    it = iter_records(lines, st)
    next(it)
    next(it)
    it.close()
    assert st.events["mm_page_free"] == 2 and st.lines == 2


def test_record_batches_hold_iter_records_records_and_stats():
    """The list-at-a-time reader gives the same records, in order, and the same stats; odd
    lines in between (a comment, an unknown event, a malformed line, an extfrag) included."""
    lines = lzma.open(bundled_trace(), "rt").read().split("\n")[:9000]
    lines[7000:7000] = ["# tracer: nop", "  x-1 [000] ..... 1045.9: sched_switch: a=b",
                        "garbage", REAL["mm_page_alloc_extfrag"]]
    want, st_want = records(lines)
    st = TraceStats()
    batches = list(record_batches(lines, st))
    assert [rec for batch in batches for rec in batch] == want
    assert st.as_dict() == st_want.as_dict() and st.malformed == 1
    assert len(batches) > 1 and max(map(len, batches)) <= parse.SCAN_LINES


# -- whole files -----------------------------------------------------------------------------

def plain_count(text: str) -> Counter:
    """Count events the simple way: the word before ': ' that follows the timestamp."""
    return Counter(re.findall(r"^\s*\S.*\s\d+\.\d+: (\w+): ", text, re.M))


def test_bundled_trace_counts_equal_a_plain_count_of_the_file():
    text = lzma.open(bundled_trace(), "rt").read()
    _, st = read_trace(bundled_trace())
    plain = plain_count(text)
    assert st.events == plain
    assert sum(plain.values()) == 60000 == st.header["entries_in_buffer"]
    assert set(plain) == set(KMEM_EVENTS)           # the window holds all ten event types
    assert st.malformed == 0 and st.unknown == Counter()
    assert st.first_ts == 1045.201203 and st.last_ts == 1045.976367
    assert st.notes and "60000 events" in st.notes[0]
    assert bundled_trace().stat().st_size < 400_000


@pytest.mark.skipif(not FULL_TRACE.exists(), reason="the full trace is only in ../shared")
@pytest.mark.slow
def test_full_trace_counts_equal_a_plain_count():
    _, st = read_trace(FULL_TRACE)
    assert st.events == plain_count(lzma.open(FULL_TRACE, "rt").read())
    assert st.nr_events == 442442 and st.malformed == 0


def test_xz_is_recognised_by_content_and_plain_text_reads_the_same(tmp_path):
    text = lzma.open(bundled_trace(), "rt").read()
    head = "".join(text.splitlines(True)[:3000])
    plain = tmp_path / "trace.txt"
    plain.write_text(head)
    disguised = tmp_path / "trace.dat"                 # xz without the .xz name
    disguised.write_bytes(lzma.compress(head.encode()))
    a, sa = read_trace(plain)
    b, sb = read_trace(disguised)
    with TraceLines(disguised, threaded=False) as lines:
        c = list(iter_records(lines))
    assert a == b == c and len(a) > 2900 and sa.events == sb.events
    with pytest.raises(ParseError, match="no such trace"):
        read_trace(tmp_path / "missing.txt")
    with pytest.raises(ParseError, match="directory"):
        read_trace(tmp_path)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_the_threaded_reader_gives_the_lines_the_text_stream_gives(tmp_path, monkeypatch,
                                                                   chunk):
    """The reading thread gives the lines the text stream gives: UTF-8 with replacement
    characters for bad bytes, \\r\\n and a lone \\r as newlines, whatever the chunk
    boundaries (a character or a \\r\\n split between two chunks)."""
    data = (REAL["kfree"] + "\r\n" + "caf\u00e9 \u20ac").encode() + b" \xff\xfe bad\r" + \
        REAL["mm_page_free"].encode() + b"\r\n\r\n\xe2\x82 cut\nlast \xc3"
    path = tmp_path / "t.txt.xz"
    path.write_bytes(lzma.compress(data))
    monkeypatch.setattr(TraceLines, "CHUNK", chunk)
    with TraceLines(path) as lines:
        assert lines.threaded
        threaded = list(lines)
    with TraceLines(path, threaded=False) as lines:
        plain = [line.rstrip("\n") for line in lines]
    assert threaded == plain
    assert plain[1] == "caf\u00e9 \u20ac \ufffd\ufffd bad" and plain[-1] == "last \ufffd"
    assert len(plain) == 6 and plain[3] == "" and plain[4] == "\ufffd cut"


def test_threaded_reader_stops_cleanly_when_the_consumer_stops():
    import threading

    with TraceLines(bundled_trace()) as lines:
        it = iter(lines)
        first = [next(it) for _ in range(20)]
        reader = lines._thread
        assert reader is not None and reader.is_alive()      # it was reading ahead
    assert first[0].startswith("# tracer")
    # Leaving the block stopped and joined the reader, which had most of the file to go.
    assert not reader.is_alive()
    assert reader not in threading.enumerate()


# -- trimming and capturing -------------------------------------------------------------------

def test_trim_rewrites_the_header_and_keeps_lines_byte_for_byte(tmp_path):
    out = tmp_path / "small.txt"
    n = trim_trace(bundled_trace(), out, start=1045.5, events=1000)
    text = out.read_text()
    src = lzma.open(bundled_trace(), "rt").read()
    body = [ln for ln in text.splitlines(True) if not ln.startswith("#")]
    assert n == len(body) == 1000
    assert "".join(body) in src
    assert float(body[0].split(": ")[0].split()[-1]) >= 1045.5
    assert "# entries-in-buffer/entries-written: 1000/1000   #P:2\n" in text
    _, st = read_trace(out)
    assert st.nr_events == 1000 and "1000 events" in st.notes[0]


@pytest.mark.skipif(not FULL_TRACE.exists(), reason="the full trace is only in ../shared")
def test_bundled_trace_is_the_documented_trim_of_the_full_trace(tmp_path):
    out = tmp_path / "again.txt"
    trim_trace(FULL_TRACE, out, start=1045.2, events=60000)
    assert out.read_text() == lzma.open(bundled_trace(), "rt").read()


def test_capture_refuses_politely_without_root_or_tracefs(tmp_path):
    with pytest.raises(CaptureRefused, match="needs root"):
        check_can_capture(tmp_path, euid=1000)
    with pytest.raises(CaptureRefused, match="no tracefs"):
        check_can_capture(None, euid=0)
    assert find_tracefs([str(tmp_path)]) is None
    with pytest.raises(CaptureRefused, match="seconds"):
        capture(tmp_path / "x.txt", seconds=600, tracefs=tmp_path, euid=0)
    with pytest.raises(CaptureRefused, match="is not a tracefs with kmem events"):
        check_can_capture(tmp_path, euid=0)
    # The command line says the same in one line, exit status 2, whoever runs it.
    r = subprocess.run([sys.executable, "-m", "kmmlib.trace.capture", "--tracefs",
                        str(tmp_path), "-o", str(tmp_path / "t.txt"), "--seconds", "1"],
                       capture_output=True, text=True)
    want = "is not a tracefs with kmem events" if os.geteuid() == 0 else "needs root"
    assert r.returncode == 2 and r.stderr.startswith("capture: ") and want in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "t.txt").exists()


def test_capture_command_line_refuses_a_non_root_user(tmp_path, monkeypatch, capsys):
    from kmmlib.trace import capture as capture_mod

    monkeypatch.setattr(capture_mod.os, "geteuid", lambda: 1000)
    root = fake_tracefs(tmp_path / "tracefs")
    assert capture_mod.main(["--tracefs", str(root), "-o", str(tmp_path / "t.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("capture: capturing kernel events needs root") and err.count("\n") == 1
    assert list((root / "instances").iterdir()) == []          # nothing was made


def fake_tracefs(root: Path) -> Path:
    """A directory shaped like tracefs: events/kmem/<event>/enable and instances/."""
    for ev in KMEM_EVENTS:
        d = root / "events" / "kmem" / ev
        d.mkdir(parents=True)
        (d / "enable").write_text("0")
    (root / "instances").mkdir()
    return root


def test_capture_flow_on_a_fake_tracefs(tmp_path):
    """Instance made, events enabled while recording, trace copied (xz), everything undone.
    The 'kernel' here is a command that writes the trace file while capture waits for it."""
    root = fake_tracefs(tmp_path / "tracefs")
    assert find_tracefs([str(root)]) == root
    seen = tmp_path / "seen.txt"
    writer = (
        "import pathlib,sys\n"
        "inst = next(pathlib.Path(sys.argv[1]).iterdir())\n"
        "on = [e.parent.name for e in inst.glob('events/kmem/*/enable')"
        " if e.read_text() == '1']\n"
        "pathlib.Path(sys.argv[2]).write_text(' '.join(sorted(on)) + ' '"
        " + (inst / 'tracing_on').read_text())\n"
        "(inst / 'trace').write_text(sys.argv[3])\n")
    trace = "# tracer: nop\n" + "\n".join(REAL[e] for e in KMEM_EVENTS) + "\n"

    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):                      # tracefs populates a new instance
        real_mkdir(self, *a, **kw)
        if self.parent == root / "instances":
            for ev in KMEM_EVENTS:
                d = self / "events" / "kmem" / ev
                real_mkdir(d, parents=True)
                (d / "enable").write_text("0")

    out = tmp_path / "captured.txt.xz"
    mp = pytest.MonkeyPatch()
    mp.setattr(Path, "mkdir", mkdir)
    try:
        info = capture(out, seconds=20, buffer_kb=1024, tracefs=root, euid=0,
                       command=[sys.executable, "-c", writer, str(root / "instances"),
                                str(seen), trace], log=lambda *_: None)
    finally:
        mp.undo()
    assert seen.read_text() == " ".join(sorted(KMEM_EVENTS)) + " 1"
    assert list((root / "instances").iterdir()) == []          # instance removed
    assert info["events"] == 10 and info["overwritten"] == 0
    assert lzma.open(out, "rt").read() == trace


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for a parent that does not reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_capture_stops_what_the_command_started_at_seconds(tmp_path):
    """A command past --seconds is stopped with everything it started (a make's compilers):
    here a shell-like parent whose child would sleep a minute."""
    root = fake_tracefs(tmp_path / "tracefs")
    pids = tmp_path / "pids"
    spawner = ("import os, subprocess, sys, time\n"
               "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
               f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{c.pid}}')\n"
               "time.sleep(60)\n")
    said = []
    t = time.monotonic()
    capture(tmp_path / "t.txt", seconds=1.5, tracefs=root, euid=0,
            command=[sys.executable, "-c", spawner], log=said.append)
    assert time.monotonic() - t < 10
    parent, child = map(int, pids.read_text().split())
    assert not _alive(parent) and not _alive(child)
    assert any("ran past 1.5 s and was stopped" in s for s in said)
    # A command that ends by itself is not reported as stopped.
    said.clear()
    capture(tmp_path / "t.txt", seconds=5, tracefs=root, euid=0,
            command=[sys.executable, "-c", "pass"], log=said.append)
    assert not any("stopped" in s for s in said)

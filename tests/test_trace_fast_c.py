"""The C fast path of the trace parser (kmmlib/trace/_ftrace.c) against the pure Python one.

parse.py is the reference: for every line, reading with the C module must give the record
and the counts that reading in pure Python gives — on the real traces, and on lines damaged
at random (hypothesis), where the C module must either agree or hand the line back."""

from __future__ import annotations

import lzma
import shutil
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmmlib.trace import parse
from kmmlib.trace.capture import bundled_trace
from tests.test_trace_parse import FULL_TRACE, REAL

needs_c = pytest.mark.skipif(not parse.FAST_C, reason="the C module kmmlib.trace._ftrace "
                             "is not built here (no C compiler): the pure Python path is used")


class CountingScan:
    """The real C module, with a count of the calls to scan(): proof that it ran."""

    def __init__(self, module):
        self.module, self.calls = module, 0

    def scan(self, *args):
        self.calls += 1
        return self.module.scan(*args)


def read_both(lines: list[str], monkeypatch) -> tuple[tuple, tuple]:
    """(records, stats dict) read with the C module, then in pure Python."""
    spy = CountingScan(parse._ftrace)
    monkeypatch.setattr(parse, "_ftrace", spy)
    st_c = parse.TraceStats()
    c = list(parse.iter_records(lines, st_c))
    assert spy.calls > 0
    monkeypatch.setattr(parse, "_ftrace", None)
    st_py = parse.TraceStats()
    py = list(parse.iter_records(lines, st_py))
    monkeypatch.setattr(parse, "_ftrace", spy.module)
    return (c, st_c.as_dict()), (py, st_py.as_dict())


def test_the_c_module_is_built_where_there_is_a_compiler():
    """setup.py builds it as optional: a C error would only show as a slower replay. Where a
    compiler and Python's headers are, it must have been built."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers.exists():
        pytest.skip("no C compiler or no Python headers: the pure Python path is expected")
    assert parse.FAST_C, "kmmlib/trace/_ftrace.c did not build: run `pip install -e .` and " \
        "read the compiler's error"


def test_a_module_built_from_an_older_source_is_left_aside(tmp_path, monkeypatch):
    """After `git pull` without `make`, the .so may be older than _ftrace.c: parse.py then
    reads in pure Python and says how to rebuild, rather than call scan() wrongly."""
    (tmp_path / "old_ftrace.py").write_text("def scan(lines, start, strings, counts): ...\n")
    (tmp_path / "new_ftrace.py").write_text(f"ABI = {parse.FTRACE_ABI}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="older kmmlib/trace/_ftrace.c: run `make`"):
        assert parse._load_c("old_ftrace") is None
    assert parse._load_c("new_ftrace").ABI == parse.FTRACE_ABI
    assert parse._load_c("no_such_module_here") is None
    if parse.FAST_C:
        assert parse._ftrace.ABI == parse.FTRACE_ABI


@needs_c
def test_bundled_trace_reads_the_same_in_c_and_in_python(monkeypatch):
    lines = lzma.open(bundled_trace(), "rt").read().split("\n")
    c, py = read_both(lines, monkeypatch)
    assert c == py
    # One record per kmem event line, and the lines that are not were seen too.
    assert len(c[0]) == sum(c[1]["events"].values()) - sum(c[1]["unknown"].values()) > 0
    assert c[1]["lines"] > len(c[0]) and c[1]["header"]


@needs_c
@pytest.mark.slow
@pytest.mark.skipif(not FULL_TRACE.exists(), reason="the full trace is in ../shared only")
def test_full_trace_reads_the_same_in_c_and_in_python(monkeypatch):
    lines = lzma.open(FULL_TRACE, "rt").read().split("\n")
    c, py = read_both(lines, monkeypatch)
    assert c == py and len(c[0]) == 442442


@needs_c
def test_c_reads_every_hot_event_itself():
    """Each of the nine hot-path events of 6.18 is read in C (one record per line), and
    mm_page_alloc_extfrag, rare, is left to Python; so is a comment."""
    lines = [REAL[e] for e in parse.KMEM_EVENTS if e != "mm_page_alloc_extfrag"]
    counts = [0] * 10
    recs, stop = parse._ftrace.scan(lines, 0, counts)
    assert stop == len(lines) == len(recs) == 9 and sum(counts) == 9
    assert counts[parse.EXTFRAG] == 0 and counts[parse.PAGE_ALLOC] == 1
    more = [REAL["kfree"], "# tracer: nop", REAL["mm_page_alloc_extfrag"], REAL["kfree"]]
    recs, stop = parse._ftrace.scan(more, 0, counts)
    assert (len(recs), stop) == (1, 1)
    assert parse._ftrace.scan(more, 2, counts)[1] == 2
    assert parse._ftrace.scan(more, 3, counts) == ([recs[0]], 4)


@needs_c
def test_scan_refuses_bad_arguments():
    scan = parse._ftrace.scan
    with pytest.raises(IndexError):
        scan([REAL["kfree"]], 2, [0] * 10)
    with pytest.raises(IndexError):
        scan([REAL["kfree"]], -1, [0] * 10)
    with pytest.raises(ValueError):
        scan([REAL["kfree"]], 0, [0] * 9)
    with pytest.raises(TypeError):
        scan((REAL["kfree"],), 0, [0] * 10)
    counts = [0] * 10
    assert scan([b"not a str", REAL["kfree"]], 0, counts) == ([], 0)
    assert counts == [0] * 10


@needs_c
def test_scan_leaves_counts_alone_unless_they_are_ten_plain_ints():
    """counts must be ten exact ints (an int subclass could run code that changes the list
    while scan() adds to it); when they are not, nothing is changed."""
    scan = parse._ftrace.scan
    lines = [REAL["mm_page_alloc"], REAL["mm_page_free"]]

    class Sneaky(int):
        def __add__(self, other):
            counts.clear()
            return 0

    counts = [Sneaky(0)] + [0] * 9
    with pytest.raises(TypeError):
        scan(lines, 0, counts)
    assert len(counts) == 10
    counts = [0, None] + [0] * 8
    with pytest.raises(TypeError):
        scan(lines, 0, counts)
    assert counts == [0, None] + [0] * 8


@needs_c
def test_out_of_memory_in_scan_never_leaves_an_exception_set():
    """Every allocation scan() makes for a line, failed in turn (CPython's _testcapi hooks):
    scan() either reads the line, hands it back, or raises MemoryError — never returns with
    an exception pending (SystemError)."""
    _testcapi = pytest.importorskip("_testcapi")
    scan = parse._ftrace.scan
    fresh = 0
    for base in (REAL["kmalloc"].replace("[001]", "[999]"),
                 REAL["kmem_cache_alloc"].replace("python3-2402", "newtask-{}")):
        for k in range(12):
            fresh += 1
            line = base.format(fresh)                 # a task name the table has not seen
            counts = [0] * 10
            _testcapi.set_nomemory(k, k + 1)
            try:
                recs, stop = scan([line], 0, counts)
            except MemoryError:
                continue
            finally:
                _testcapi.remove_mem_hooks()
            assert (len(recs), stop) in ((1, 1), (0, 0)) and sum(counts) == len(recs)


def lines_then_error(lines: list[str], n: int):
    yield from lines[:n]
    raise OSError(f"the disk failed after {n} lines")


@needs_c
@pytest.mark.parametrize("reader", ["iter_records", "record_batches"])
def test_an_error_reading_lines_comes_after_the_records_read_before_it(monkeypatch, reader):
    """A damaged file (the iterator raises): every record of the lines read before the error
    is given first, with the C module as in pure Python, then the error."""
    lines = lzma.open(bundled_trace(), "rt").read().split("\n")
    got = {}
    for mode, module in (("C", parse._ftrace), ("Python", None)):
        monkeypatch.setattr(parse, "_ftrace", module)
        stats, out = parse.TraceStats(), []
        with pytest.raises(OSError, match="after 5000 lines"):
            for item in getattr(parse, reader)(lines_then_error(lines, 5000), stats):
                out.append(item)
        got[mode] = (out, stats.as_dict())
    assert got["C"] == got["Python"]
    assert got["C"][1]["lines"] == 5000
    records = got["C"][0] if reader == "iter_records" else [r for b in got["C"][0] for r in b]
    assert records == list(parse.iter_records(lines[:5000]))


@needs_c
def test_a_trace_c_cannot_read_costs_few_calls_and_gives_the_same_lists(monkeypatch):
    """Task names in UTF-8 on every line: the C module refuses them all. It is asked again
    after runs of lines twice as long each time, not once a line; and record_batches() gives
    the same lists, with the same stats, as pure Python."""
    lines = lzma.open(bundled_trace(), "rt").read().split("\n")[:20000]
    lines = [line.replace("-", "é-", 1) if not line.startswith("#") else line
             for line in lines]
    spy = CountingScan(parse._ftrace)
    monkeypatch.setattr(parse, "_ftrace", spy)
    st_c = parse.TraceStats()
    c = list(parse.record_batches(lines, st_c))
    assert spy.calls < 100                  # a dozen a batch of lines, not one a line
    monkeypatch.setattr(parse, "_ftrace", None)
    st_py = parse.TraceStats()
    py = list(parse.record_batches(lines, st_py))
    assert [len(b) for b in c] == [len(b) for b in py] and c == py
    assert st_c.as_dict() == st_py.as_dict() and "é-" in c[0][0][3]


@needs_c
@given(st.from_regex(r"\A[0-9]{1,17}(\.[0-9]{1,17})?\Z"))
def test_c_timestamps_are_what_float_gives(text):
    """The C module converts SECONDS.MICROS itself (Clinger's fast path up to 15 digits,
    Python's own conversion beyond): the very double float() gives."""
    line = f"           bash-1     [000] ..... {text}: kfree: call_site=f+0x1/0x2 ptr=00ab"
    (rec,), _ = parse._ftrace.scan([line], 0, [0] * 10)
    assert rec[1] == float(text) and rec[1].hex() == float(text).hex()


# Characters that matter to one reader or the other: ASCII whitespace that str.split() takes
# (and \x1c-\x1f), Unicode whitespace and digits, the separators and the digits of fields.
ALPHABET = [" ", "\t", "\r", "\x0b", "\x1c", "\x1f", "\xa0", "\u2003", "\x00", "-", ".",
            ":", "=", "[", "]", "x", "0", "7", "9", "a", "F", "+", "_", "é", "²", "٣", ","]


@st.composite
def damaged_lines(draw) -> list[str]:
    """A few real lines, each maybe damaged: a character replaced, inserted or deleted, a
    token doubled or dropped."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        line = draw(st.sampled_from(sorted(REAL.values())))
        for _ in range(draw(st.integers(0, 3))):
            how = draw(st.sampled_from(["replace", "insert", "delete", "double", "drop"]))
            i = draw(st.integers(0, len(line) - 1))
            ch = draw(st.sampled_from(ALPHABET))
            if how == "replace":
                line = line[:i] + ch + line[i + 1:]
            elif how == "insert":
                line = line[:i] + ch + line[i:]
            elif how == "delete":
                line = line[:i] + line[i + 1:]
            else:
                t = line.split(" ")
                j = draw(st.integers(0, len(t) - 1))
                t[j:j + 1] = [t[j], t[j]] if how == "double" else []
                line = " ".join(t)
        out.append(line)
    return out


@needs_c
@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damaged_lines())
def test_damaged_lines_read_the_same_in_c_and_in_python(monkeypatch, lines):
    c, py = read_both(lines, monkeypatch)
    assert c == py


@needs_c
def test_c_hands_back_what_it_does_not_read_as_python_would(monkeypatch):
    """Lines the C module refuses on purpose, though Python's fast path reads them: a number
    with a plus sign or an underscore, a pfn with 0x twice, a non-ASCII task name. The result
    is Python's. (A decimal pfn and a negative size it reads.)"""
    alloc = REAL["mm_page_alloc"]
    lines = [alloc.replace("order=3", "order=+3"), alloc.replace("order=3", "order=0_3"),
             alloc.replace("pfn=0x1103b0", "pfn=0x0x1103b0"), alloc.replace("python3", "pythön"),
             alloc.replace("pfn=0x1103b0", "pfn=1114032"),
             REAL["kmalloc"].replace("bytes_req=70", "bytes_req=-70")]
    (c_recs, c_st), (py_recs, py_st) = read_both(lines, monkeypatch)
    assert (c_recs, c_st) == (py_recs, py_st)
    assert [r[5] for r in c_recs[:2]] == [3, 3] and c_recs[2][4] == 0x1103B0
    assert c_recs[3][3] == "pythön-2402" and c_recs[4][4] == 1114032
    assert c_recs[5][5] == -70
    counts = [0] * 10
    for i in range(4):                                         # each refused by C
        assert parse._ftrace.scan(lines, i, counts) == ([], i)
    assert parse._ftrace.scan(lines, 4, counts)[1] == 6       # read by C

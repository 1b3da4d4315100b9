"""Reading a trace in a child process (kmmlib.trace.pipeline): the same records, stats and
replay as reading it in this one, errors raised here, no process left behind."""

from __future__ import annotations

import json
import lzma
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from kmmlib.errors import ParseError
from kmmlib.trace import pipeline
from kmmlib.trace.capture import bundled_trace
from kmmlib.trace.parse import TraceStats, read_trace
from kmmlib.trace.replay import Replay

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the child is forked: Linux only")


def line(ts: float, event: str, fields: str, cpu: int = 0, task: str = "bash-1") -> str:
    return f"{task:>16} [{cpu:03d}] .....  {ts:.6f}: {event}: {fields}\n"


def messy_trace() -> str:
    """Every kind of line iter_records() tells apart, spread over several batches."""
    out = ["# tracer: nop\n", "# entries-in-buffer/entries-written: 40/45   #P:2\n",
           "# kmm-course: made by a test\n"]
    for i in range(30):
        ts = 1.0 + i / 1000
        out.append(line(ts, "mm_page_alloc", f"page=00000000deadbeef pfn={0x110000 + i:#x} "
                        "order=0 migratetype=1 gfp_flags=GFP_KERNEL", cpu=i % 2))
        if i % 7 == 3:
            out.append(f"garbage line {i}\n")
        if i % 11 == 5:
            out.append(line(ts, "sched_switch", "prev_comm=a next_comm=b"))
        if i % 4 == 1:
            out.append(line(ts, "kmalloc", f"call_site=f+0x1/0x2 ptr=00000000000000{i:02x} "
                            "bytes_req=60 bytes_alloc=64 gfp_flags=GFP_KERNEL node=-1 "
                            "accounted=false"))
    out.append("CPU:1 [LOST 5 EVENTS]\n")
    out.append(line(2.0, "mm_page_free", "page=00000000deadbeef pfn=0x110003 order=0"))
    return "".join(out)


def children() -> list[int]:
    """This process's child processes, zombies (not reaped) included."""
    me, out = os.getpid(), []
    for d in Path("/proc").iterdir():
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if d.name.isdigit() and ppid == me:
                out.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def long_trace(tmp_path: Path, name: str) -> Path:
    """The bundled trace eight times over, as plain text: seconds of replay."""
    from kmmlib.trace.parse import TraceLines

    with TraceLines(bundled_trace()) as lines:
        text = "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_text(text * 8)
    return path


def processes_reading(path: Path) -> list[str]:
    """The processes whose command line names ``path`` (a replay and its reader)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and str(path).encode() in (d / "cmdline").read_bytes():
                out.append(d.name)
        except OSError:
            continue
    return out


def wait_for_readers(path: Path, n: int, timeout: float = 20.0) -> bool:
    """Whether ``n`` processes name ``path`` within ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(processes_reading(path)) == n:
            return True
        time.sleep(0.05)
    return False


def from_child(path) -> tuple[list, TraceStats]:
    st = TraceStats()
    with pipeline.ChildRecords(path, st) as records:
        return list(records), st


def test_the_child_reads_what_this_process_reads(tmp_path, monkeypatch):
    """Records, their order, and every stat (malformed lines with their line numbers,
    unknown events, lost events, the header and our notes), over many small batches."""
    monkeypatch.setattr(pipeline, "BATCH", 4)             # inherited by the forked child
    path = tmp_path / "messy.txt"
    path.write_text(messy_trace())
    records, stats = from_child(path)
    want_records, want_stats = read_trace(path)
    assert records == want_records and len(records) > 4 * 8
    assert stats == want_stats
    assert stats.malformed == 4 and stats.malformed_examples[0] == (9, "garbage line 3")
    assert stats.lost_events == 5 and stats.header["entries_written"] == 45
    assert stats.notes == ["made by a test"] and dict(stats.unknown) == {"sched_switch": 3}


def test_an_xz_trace_and_a_replay_give_the_same_report_either_way():
    """The bundled real trace replayed with the child reading it and without: the same
    report, timeline and stats, to the last field."""
    a = Replay().run(bundled_trace(), parallel=True)
    b = Replay().run(bundled_trace(), parallel=False)
    assert a.parallel and not b.parallel
    assert json.dumps(a.report(), sort_keys=True) == json.dumps(b.report(), sort_keys=True)
    assert a.timeline == b.timeline and a.stats == b.stats
    assert a.stats.nr_events == 60000
    assert a.speed()["read_in_child"] is True


def test_the_header_arrives_with_the_first_batch(tmp_path, monkeypatch):
    """A progress bar learns the trace's size before the end (kmm replay's total)."""
    monkeypatch.setattr(pipeline, "BATCH", 2)
    path = tmp_path / "t.txt"
    path.write_text(messy_trace())
    st = TraceStats()
    with pipeline.ChildRecords(path, st) as records:
        next(iter(records))
        assert st.header["entries_in_buffer"] == 40 and st.lines == 0  # the rest at the end


def test_the_child_runs_at_a_lower_priority_than_the_replay(tmp_path):
    """When the child's threads and the replay want the same CPU, the replay goes first: the
    child's nice value is the parent's plus CHILD_NICE (field 19 of /proc/PID/stat)."""
    def nice(pid: int | str) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

    st = TraceStats()
    with pipeline.ChildRecords(long_trace(tmp_path, "nice.txt"), st) as records:
        next(iter(records))
        (child,) = children()
        assert nice(child) == min(nice("self") + pipeline.CHILD_NICE, 19)


def test_a_missing_file_fails_before_any_process_starts(tmp_path):
    with pytest.raises(ParseError, match="no such trace file"):
        from_child(tmp_path / "nope.txt")
    assert children() == []


def read_until_error(records) -> tuple[list, Exception | None]:
    got = []
    try:
        for rec in records:
            got.append(rec)
    except Exception as err:                                  # noqa: BLE001 — compared below
        return got, err
    return got, None


def test_the_childs_error_is_raised_here_after_the_records_before_it(tmp_path, monkeypatch):
    """A corrupt xz file: every record read before the damage is replayed, then the same
    exception as when reading in this process, and the stats of what was read."""
    from kmmlib.trace.parse import TraceLines, iter_records

    monkeypatch.setattr(pipeline, "BATCH", 64)
    bad = tmp_path / "bad.txt.xz"
    good = lzma.compress(messy_trace().encode() * 4000, preset=0)     # ~10 MB of text
    cut = len(good) * 2 // 3
    bad.write_bytes(good[:cut] + b"\0" * 64 + good[cut + 64:])
    here_stats = TraceStats()
    with TraceLines(bad) as lines:                  # as Replay.run(parallel=False) reads
        here, here_err = read_until_error(iter_records(lines, here_stats))
    there_stats = TraceStats()
    with pipeline.ChildRecords(bad, there_stats) as records:
        there, there_err = read_until_error(records)
    assert isinstance(here_err, lzma.LZMAError) and type(there_err) is type(here_err)
    assert str(there_err) == str(here_err)
    assert there == here and len(here) > 64 * 4
    assert there_stats.nr_events == here_stats.nr_events > 0
    assert children() == []


def test_stopping_early_ends_the_child(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH", 2)
    path = tmp_path / "t.txt"
    path.write_text(messy_trace() * 20)
    records = pipeline.ChildRecords(path, TraceStats())
    assert next(iter(records))[0] == 0
    assert len(children()) == 1
    records.close()
    assert children() == []


def test_a_child_that_dies_is_an_error_that_says_so(tmp_path, monkeypatch):
    def die(*args):
        os._exit(3)

    monkeypatch.setattr(pipeline, "_child", die)
    path = tmp_path / "t.txt"
    path.write_text(messy_trace())
    with pytest.raises(ParseError, match="ended with exit code 3"):
        from_child(path)


def test_when_a_child_is_used(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text(messy_trace())
    assert not pipeline.can_fork(small)                        # not worth a process
    assert not pipeline.can_fork("-") and not pipeline.can_fork(tmp_path / "nope")
    assert not pipeline.can_fork(open(small))                  # noqa: SIM115 — a stream
    big = tmp_path / "big.txt"
    big.write_text(messy_trace() * 40)
    assert big.stat().st_size >= pipeline.MIN_BYTES
    assert pipeline.can_fork(big) == (len(os.sched_getaffinity(0)) >= 2)


def test_merging_stats_is_reading_on():
    """TraceStats.merge: what a second reader found adds to the first's."""
    lines = messy_trace().splitlines(keepends=True)
    from kmmlib.trace.parse import iter_records

    whole, first, second = TraceStats(), TraceStats(), TraceStats()
    list(iter_records(lines, whole))
    list(iter_records(lines[:40], first))
    list(iter_records(lines[40:], second))
    first.merge(second)
    assert first.events == whole.events and first.unknown == whole.unknown
    assert (first.malformed, first.lost_events, first.lines) == \
        (whole.malformed, whole.lost_events, whole.lines)
    assert (first.first_ts, first.last_ts, first.header, first.notes) == \
        (whole.first_ts, whole.last_ts, whole.header, whole.notes)
    # The other way round: a reader that saw nothing yet takes the header and the notes
    # (a child that found only the header sends them in its stats, with no batch).
    empty = TraceStats()
    empty.merge(whole)
    assert whole.header and empty.header == whole.header and empty.notes == whole.notes
    assert empty.events == whole.events and empty.first_ts == whole.first_ts


def test_a_trace_with_only_a_header_gets_its_header_from_the_child(tmp_path):
    path = tmp_path / "header-only.txt"
    head = "".join(ln for ln in messy_trace().splitlines(keepends=True) if ln.startswith("#"))
    path.write_text(head * (pipeline.MIN_BYTES // len(head) + 1))
    records, st = from_child(path)
    assert records == [] and st.nr_events == 0
    from kmmlib.trace.parse import iter_records

    here = TraceStats()
    assert list(iter_records(path.read_text().splitlines(keepends=True), here)) == []
    assert st.header == here.header != {} and st.lines == here.lines


def test_ctrl_c_during_kmm_replay_stops_both_processes_quietly(python, tmp_path):
    """SIGINT to the terminal's process group (Ctrl-C): one line, no traceback, death by
    SIGINT (so a shell loop running kmm stops too), and no reader process left behind."""
    import signal
    import subprocess
    import time

    big = long_trace(tmp_path, "long-trace.txt")               # ~480k events
    p = subprocess.Popen([python, "-m", "kmmlib", "replay", str(big), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    assert wait_for_readers(big, 2)                     # the replay and its child
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT, err
    assert err.strip() == "kmm replay: interrupted" and out == ""
    time.sleep(0.3)
    assert processes_reading(big) == []


def test_a_replay_that_fails_midway_ends_the_child():
    """An exception in the replay (here from the progress callback) ends the reader at once,
    even while the traceback — which Jupyter keeps — holds on to everything."""
    seen = []

    def progress(n):
        if n > 10000:
            seen.append(children())
            raise RuntimeError("stop here")

    # pytest keeps the traceback in ``info``, and with it every frame, as Jupyter would.
    with pytest.raises(RuntimeError, match="stop here") as info:
        Replay().run(bundled_trace(), progress, parallel=True)
    assert len(seen) == 1 and len(seen[0]) == 1, seen      # a child was reading then
    assert children() == [] and info.value.__traceback__ is not None


def test_stats_after_stopping_early_count_at_least_what_was_replayed():
    """Stopped early, the child's stats come back too: they count what it had read (at least
    what was replayed, a few batches more at most), as reading here counts what it read."""
    seen = []

    def progress(n):
        if n > 20000:
            seen.append(len(children()))
            raise RuntimeError("enough")

    for parallel in (False, True):
        rp = Replay()
        with pytest.raises(RuntimeError):
            rp.run(bundled_trace(), progress, parallel=parallel)
        assert rp.parallel is parallel
        st = rp.stats
        assert 20000 < st.nr_events <= 20000 + 8 * pipeline.BATCH, (parallel, st.nr_events)
        assert st.lines >= st.nr_events and st.first_ts is not None
    assert seen == [0, 1] and children() == []


def test_a_machine_that_cannot_fork_now_reads_in_one_process(monkeypatch):
    """fork() failing (EAGAIN, ENOMEM): by default the replay reads in this process, with the
    same result; asked for a child, it raises the OSError, with no pipe left open."""
    import errno

    want = Replay().run(bundled_trace(), parallel=False).report()

    def no_fork():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    rp = Replay().run(bundled_trace())
    assert rp.parallel is False and rp.report() == want
    fds = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="temporarily unavailable"):
        Replay().run(bundled_trace(), parallel=True)
    assert sorted(os.listdir("/proc/self/fd")) == fds


def _replay_in_a_pool_worker(parallel):
    rp = Replay().run(bundled_trace(), parallel=parallel)
    return rp.parallel, rp.stats.nr_events, multiprocessing.current_process().daemon


def test_a_pool_worker_can_read_in_a_child_too():
    """A multiprocessing pool's workers are daemonic (multiprocessing will not let them start
    processes of its own); the reader is a plain fork, so they can use it."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply(_replay_in_a_pool_worker, (None,)) == (True, 60000, True)


def test_a_child_whose_parent_is_killed_ends_too(python, tmp_path):
    """SIGKILL to a replaying process (the OOM killer, a crashed kernel): its reader does
    not wait forever on the pipe."""
    import signal
    import subprocess
    import time

    big = long_trace(tmp_path, "orphan-trace.txt")
    code = ("import sys; from kmmlib.trace.replay import Replay; "
            "Replay().run(sys.argv[1], parallel=True)")
    p = subprocess.Popen([python, "-c", code, str(big)])
    assert wait_for_readers(big, 2)                     # the replay and its child
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    for _ in range(50):
        if not processes_reading(big):
            break
        time.sleep(0.1)
    assert processes_reading(big) == []

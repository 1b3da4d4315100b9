"""The OOM killer: oom_badness(), /proc/PID/oom_score, the victim it picks, and its report in
the kernel's format — checked against this machine's kernel where /proc is there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest, KmmError
from kmmlib.userspace.live import read_oom_tasks
from kmmlib.userspace.oom import (
    LONG_MIN,
    OomTask,
    dump_tasks,
    kill_line,
    oom_badness,
    oom_score,
    out_of_memory,
    select_bad_process,
)
from kmmlib.userspace.process import PAGE_SIZE, ProcessKilled, System

TOTAL = 1_000_000          # pages: one oom_score_adj unit is 1000 pages


def task(pid, comm, rss=0, adj=0, **kw):
    return OomTask(pid=pid, comm=comm, rss_anon=rss, oom_score_adj=adj, **kw)


def test_badness_is_rss_plus_swap_plus_page_tables_plus_the_adjustment():
    t = task(10, "db", rss=5000, swapents=300, pgtables_bytes=40 * PAGE_SIZE, rss_file=700,
             rss_shmem=11)
    assert oom_badness(t, TOTAL) == 5000 + 700 + 11 + 300 + 40
    t.oom_score_adj = 250
    assert oom_badness(t, TOTAL) == 6051 + 250 * 1000
    t.oom_score_adj = -999
    assert oom_badness(t, TOTAL) == 6051 - 999_000          # negative is allowed (5.9+)


@pytest.mark.parametrize("t", [task(1, "init", 10**6, init=True),
                               task(2, "kthreadd", 10**6, kthread=True),
                               task(3, "sshd", 10**6, adj=-1000)])
def test_some_tasks_are_never_chosen(t):
    assert oom_badness(t, TOTAL) == LONG_MIN and oom_score(t, TOTAL) == 0


def test_oom_score_scales_badness_into_0_to_2000():
    assert oom_score(task(5, "a", 0), TOTAL) == 666                  # (1000 + 0) * 2 / 3
    assert oom_score(task(5, "a", TOTAL), TOTAL) == 1333             # all of memory
    assert oom_score(task(5, "a", 0, adj=1000), TOTAL) == 1333
    assert oom_score(task(5, "a", 0, adj=-999), TOTAL) == 0          # (1000 - 999) * 2 / 3
    assert oom_score(task(5, "a", 3000, adj=-1), TOTAL) == 668       # 2000 → 2 (1002·2/3)
    assert oom_score(task(5, "a", 500, adj=-2), TOTAL) == 666        # -1.5 → -1 (toward 0)


def test_the_biggest_is_chosen_and_a_tie_goes_to_the_later_task():
    tasks = [task(1, "init", 9999, init=True), task(20, "a", 500), task(30, "b", 700),
             task(40, "c", 700), task(50, "small", 10, adj=-500)]
    victim, points = select_bad_process(tasks, TOTAL)
    assert (victim.comm, points) == ("c", 700)
    tasks.append(task(60, "tiny", 1, adj=1))                        # +1000 pages
    assert select_bad_process(tasks, TOTAL)[0].comm == "tiny"
    assert select_bad_process([tasks[0]], TOTAL) == (None, LONG_MIN)


def test_the_report_uses_the_kernels_formats():
    t = OomTask(pid=1234, comm="stress", uid=1000, total_vm=262144, rss_anon=250000,
                rss_file=300, rss_shmem=2, pgtables_bytes=520192, swapents=5, oom_score_adj=0)
    # mm/oom_kill.c dump_task(): "[%7d] %5d %5d %8lu %8lu %8lu %8lu %9lu %8ld %8lu         %5hd %s"
    row = "[%7d] %5d %5d %8d %8d %8d %8d %9d %8d %8d         %5d %s" % (  # noqa: UP031
        1234, 1000, 1234, 262144, 250302, 250000, 300, 2, 520192, 5, 0, "stress")
    assert dump_tasks([t])[2] == row
    assert kill_line(t) == ("Out of memory: Killed process 1234 (stress) total-vm:1048576kB, "
                            "anon-rss:1000000kB, file-rss:1200kB, shmem-rss:8kB, UID:1000 "
                            "pgtables:508kB oom_score_adj:0")
    report = out_of_memory([t], TOTAL, current=t)
    assert report.lines[0] == ("stress invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE"
                               "|__GFP_ZERO|__GFP_COMP), order=0, oom_score_adj=0")
    assert report.lines[-1] == report.kill_line and report.victim is t


def test_panics():
    """out_of_memory(): no victim → dump_header() (with dump_tasks()), the "no killable
    processes" warning, then the panic; check_panic_on_oom() → dump_header(), then its panic."""
    r = out_of_memory([task(1, "init", 5, init=True)], TOTAL)
    assert r.victim is None and r.lines[-1].endswith("System is deadlocked on memory")
    assert r.lines[-2] == "Out of memory and no killable processes..."
    r = out_of_memory([task(2, "a", 5)], TOTAL, panic_on_oom=True)
    assert r.victim is None and "panic_on_oom" in r.lines[-1]
    assert r.lines[1] == "Tasks state (memory values in pages):"
    assert any(line.endswith(" a") for line in r.lines[2:-1])          # the task's row
    with pytest.raises(BadRequest):
        task(2, "a", adj=1001)


def test_oom_kill_allocating_task_kills_the_caller():
    big, me = task(2, "big", 9000), task(3, "me", 10)
    assert out_of_memory([big, me], TOTAL, current=me).victim is big
    r = out_of_memory([big, me], TOTAL, current=me, oom_kill_allocating_task=True)
    assert r.victim is me and "(oom_kill_allocating_task)" in r.kill_line


# -- in the simulator --------------------------------------------------------------------------
def run_until_oom(sysm, hog):
    with pytest.raises(ProcessKilled):
        while True:
            p = hog.mm.mmap(0, 1 << 20)
            hog.mm.touch_range(p, 1 << 20)


def test_oom_score_adj_can_make_a_small_process_the_victim():
    sysm = System(4096)
    web = sysm.spawn("web", oom_score_adj=1000)
    w = web.mm.mmap(0, 1 << 20)
    web.mm.touch_range(w, 1 << 20)
    ssh = sysm.spawn("sshd", oom_score_adj=-1000)
    s = ssh.mm.mmap(0, 1 << 20)
    ssh.mm.touch_range(s, 1 << 20)
    hog = sysm.spawn("hog")
    run_until_oom(sysm, hog)                  # dies in the end, but web goes first
    killed = [ln.split("(")[1].split(")")[0] for ln in sysm.dmesg if "Killed process" in ln]
    assert killed == ["web", "hog"] and ssh.alive
    sysm.check()


def test_no_killable_process_is_a_panic():
    sysm = System(2048)
    t = sysm.spawn("only", oom_score_adj=-1000)
    p = t.mm.mmap(0, 2000 << 12)              # 2000 pages < RAM: mode 0 promises them
    with pytest.raises(KmmError, match="deadlocked on memory"):
        t.mm.touch_range(p, 2000 << 12)


# -- against this machine's kernel -------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/oom_score").exists(), reason="needs Linux /proc")
def test_predicted_oom_score_equals_the_kernels_for_this_process():
    """oom_badness() recomputed from /proc/self/status must give /proc/self/oom_score. RSS can
    move between the reads, so a mismatch is retried a few times."""
    for _ in range(5):
        me = read_oom_tasks(pids=[int(Path("/proc/self").resolve().name)])
        if me and me[0].predicted == me[0].kernel_oom_score:
            break
    assert me and me[0].predicted == me[0].kernel_oom_score, me
    assert me[0].task.rss > 0 and sys.platform.startswith("linux")


@pytest.mark.skipif(not Path("/proc/self/oom_score").exists(), reason="needs Linux /proc")
def test_predicted_oom_scores_match_most_processes():
    tasks = read_oom_tasks()
    assert tasks
    same = sum(t.predicted == t.kernel_oom_score for t in tasks)
    assert same >= 0.9 * len(tasks), [t for t in tasks if t.predicted != t.kernel_oom_score]

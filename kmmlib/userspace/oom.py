"""The OOM killer: when no page can be had, choose a process to kill, and say so in dmesg.

``out_of_memory()`` (mm/oom_kill.c, Linux 6.18) walks every process (``select_bad_process()``
→ ``oom_evaluate_task()``) and scores it with ``oom_badness()``:

    points = rss + swap entries + page-table pages        (all in pages)
    points += oom_score_adj × (totalpages / 1000)

so the score is "how many pages would killing it free", shifted by ``oom_score_adj`` (−1000 …
+1000) in units of 0.1 % of RAM + swap (``totalpages``). ``oom_score_adj`` = −1000 and
unkillable tasks (init, kernel threads) get ``LONG_MIN``: never chosen. The highest score
wins; on a tie the task found *later* in the process list wins (``points < chosen_points``
skips only strictly smaller scores). Before Linux 5.9 the score was unsigned and clamped to
at least 1; before 2.6.36 it was a different heuristic altogether (CPU time, nice, forks).

``/proc/PID/oom_score`` shows the same badness scaled to 0 … 2000
(``proc_oom_score()``, fs/proc/base.c): ``(1000 + badness · 1000 / totalpages) · 2 / 3``.

The report is the kernel's, line by line (``dump_header()``, ``dump_tasks()``,
``dump_oom_victim()``, ``__oom_kill_process()``), except that the stack trace and
``show_mem()`` are left out, and the cpuset/memcg fields are those of a machine where
everything runs in the root cgroup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kmmlib.errors import BadRequest

PAGE_SHIFT = 12
LONG_MIN = -(1 << 63)
OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000
# The fault path's allocation: GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP (0x140dca on 6.18).
DEFAULT_GFP = 0x140DCA


@dataclass
class OomTask:
    """One process as ``dump_tasks()`` prints it. Memory in pages, ``pgtables_bytes`` in
    bytes, as the kernel keeps them. ``init`` is ``is_global_init()``; ``kthread`` a kernel
    thread (no mm of its own)."""

    pid: int
    comm: str
    uid: int = 0
    total_vm: int = 0
    rss_anon: int = 0
    rss_file: int = 0
    rss_shmem: int = 0
    swapents: int = 0
    pgtables_bytes: int = 0
    oom_score_adj: int = 0
    tgid: int | None = None
    init: bool = False
    kthread: bool = False

    def __post_init__(self):
        if self.tgid is None:
            self.tgid = self.pid
        if not OOM_SCORE_ADJ_MIN <= self.oom_score_adj <= OOM_SCORE_ADJ_MAX:
            raise BadRequest(f"oom_score_adj must be in -1000..1000, not {self.oom_score_adj}")
        for name in ("total_vm", "rss_anon", "rss_file", "rss_shmem", "swapents",
                     "pgtables_bytes"):
            if getattr(self, name) < 0:
                raise BadRequest(f"{name} must not be negative")

    @property
    def rss(self) -> int:
        """``get_mm_rss()``: anon + file + shmem pages."""
        return self.rss_anon + self.rss_file + self.rss_shmem


def oom_unkillable_task(task: OomTask) -> bool:
    """``oom_unkillable_task()``: the global init and kernel threads are never chosen."""
    return task.init or task.kthread


def oom_badness(task: OomTask, totalpages: int) -> int:
    """``oom_badness()`` (mm/oom_kill.c): the task's score in pages, or ``LONG_MIN`` for a
    task that must not be killed. ``totalpages`` is RAM + swap in pages."""
    if totalpages <= 0:
        raise BadRequest("totalpages must be positive")
    if oom_unkillable_task(task) or task.oom_score_adj == OOM_SCORE_ADJ_MIN:
        return LONG_MIN
    points = task.rss + task.swapents + task.pgtables_bytes // (1 << PAGE_SHIFT)
    adj = task.oom_score_adj * (totalpages // 1000)      # normalize to oom_score_adj units
    return points + adj


def oom_score(task: OomTask, totalpages: int) -> int:
    """``/proc/PID/oom_score`` (``proc_oom_score()``, fs/proc/base.c): badness scaled into
    0 … 2000; 0 for a task that is never killed. C division truncates toward zero."""
    badness = oom_badness(task, totalpages)
    if badness == LONG_MIN:
        return 0
    scaled = abs(badness) * 1000 // totalpages
    return (1000 + (scaled if badness >= 0 else -scaled)) * 2 // 3


def select_bad_process(tasks: Sequence[OomTask], totalpages: int
                       ) -> tuple[OomTask | None, int]:
    """``select_bad_process()``: the task with the highest badness, the later one on a tie
    (tasks in ``for_each_process()`` order: creation order). (None, LONG_MIN) if none."""
    chosen, chosen_points = None, LONG_MIN
    for task in tasks:
        if oom_unkillable_task(task):
            continue
        points = oom_badness(task, totalpages)
        if points == LONG_MIN or points < chosen_points:
            continue
        chosen, chosen_points = task, points
    return chosen, chosen_points


def dump_header(current: OomTask | None, gfp: int = DEFAULT_GFP, order: int = 0) -> str:
    """The first line of every OOM report (``dump_header()``)."""
    from kmmlib.mm.gfp import format_gfp

    comm = current.comm if current is not None else "kworker"
    adj = current.oom_score_adj if current is not None else 0
    return (f"{comm} invoked oom-killer: gfp_mask={gfp:#x}({format_gfp(gfp)}), order={order}, "
            f"oom_score_adj={adj}")


def dump_tasks(tasks: Sequence[OomTask]) -> list[str]:
    """``dump_tasks()`` → ``dump_task()``: the task table, memory in pages."""
    lines = ["Tasks state (memory values in pages):",
             "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem "
             "pgtables_bytes swapents oom_score_adj name"]
    for t in tasks:
        if oom_unkillable_task(t):
            continue
        lines.append(f"[{t.pid:7d}] {t.uid:5d} {t.tgid:5d} {t.total_vm:8d} {t.rss:8d} "
                     f"{t.rss_anon:8d} {t.rss_file:8d} {t.rss_shmem:9d} "
                     f"{t.pgtables_bytes:8d} {t.swapents:8d}         {t.oom_score_adj:5d} "
                     f"{t.comm}")
    return lines


def kill_line(victim: OomTask, message: str = "Out of memory") -> str:
    """``__oom_kill_process()``'s line: sizes in kB (``K()``), page tables in kB."""
    kb = PAGE_SHIFT - 10
    return (f"{message}: Killed process {victim.pid} ({victim.comm}) "
            f"total-vm:{victim.total_vm << kb}kB, anon-rss:{victim.rss_anon << kb}kB, "
            f"file-rss:{victim.rss_file << kb}kB, shmem-rss:{victim.rss_shmem << kb}kB, "
            f"UID:{victim.uid} pgtables:{victim.pgtables_bytes >> 10}kB "
            f"oom_score_adj:{victim.oom_score_adj}")


@dataclass
class OomReport:
    """What ``out_of_memory()`` decided and printed."""

    victim: OomTask | None
    points: int
    lines: list[str]
    kill_line: str = ""
    reaper_line: str = ""


def out_of_memory(tasks: Sequence[OomTask], totalpages: int, *, current: OomTask | None = None,
                  gfp: int = DEFAULT_GFP, order: int = 0,
                  oom_kill_allocating_task: bool = False, panic_on_oom: bool = False
                  ) -> OomReport:
    """``out_of_memory()`` for a global (not memcg) OOM: the report and the victim.
    ``vm.oom_kill_allocating_task`` kills the allocating task instead of searching, when it
    may be killed; ``vm.panic_on_oom`` panics. No victim at all is a panic too."""
    # dump_header(): the "invoked oom-killer" line, (the memory state,) then dump_tasks() —
    # vm.oom_dump_tasks is 1 by default.
    lines = [dump_header(current, gfp, order)] + dump_tasks(tasks)
    if panic_on_oom:                               # check_panic_on_oom(), before any choice
        lines.append("Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is "
                     "enabled")
        return OomReport(None, LONG_MIN, lines)
    if (oom_kill_allocating_task and current is not None and not oom_unkillable_task(current)
            and current.oom_score_adj != OOM_SCORE_ADJ_MIN):
        victim, points = current, oom_badness(current, totalpages)
        message = "Out of memory (oom_kill_allocating_task)"
    else:
        victim, points = select_bad_process(tasks, totalpages)
        message = "Out of memory"
    if victim is None:
        lines.append("Out of memory and no killable processes...")
        lines.append("Kernel panic - not syncing: System is deadlocked on memory")
        return OomReport(None, LONG_MIN, lines)
    lines.append(f"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,"
                 f"mems_allowed=0,global_oom,task_memcg=/,task={victim.comm},pid={victim.pid},"
                 f"uid={victim.uid}")
    kl = kill_line(victim, message)
    lines.append(kl)
    reaper = (f"oom_reaper: reaped process {victim.pid} ({victim.comm}), now anon-rss:0kB, "
              f"file-rss:0kB, shmem-rss:0kB")
    return OomReport(victim, points, lines, kl, reaper)


def badness_table(tasks: Sequence[OomTask], totalpages: int) -> str:
    """Each task's terms, badness and oom_score, the chosen one marked — the table the
    notebook prints to explain a choice."""
    victim, _ = select_bad_process(tasks, totalpages)
    unit = totalpages // 1000
    lines = [f"totalpages = {totalpages} (RAM + swap); one oom_score_adj unit = {unit} pages",
             "    pid name             rss   swap  pgtbl    adj      badness  oom_score"]
    for t in tasks:
        b = oom_badness(t, totalpages)
        shown = "never" if b == LONG_MIN else str(b)
        mark = "  ← killed" if t is victim else ""
        lines.append(f"{t.pid:7d} {t.comm:<15} {t.rss:6d} {t.swapents:6d} "
                     f"{t.pgtables_bytes >> PAGE_SHIFT:6d} {t.oom_score_adj:6d} {shown:>12} "
                     f"{oom_score(t, totalpages):10d}{mark}")
    return "\n".join(lines)

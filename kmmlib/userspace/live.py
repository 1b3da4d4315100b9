"""Safe experiments on the real kernel this runs on: demand paging you can watch.

Python's :mod:`mmap` gives the same anonymous private mapping that ``malloc()`` uses for a big
block. The experiment maps far more than it will touch, then watches ``/proc/self/status``:
VmSize jumps at ``mmap()``, VmRSS and RssAnon grow one page per page *written*, not at all for
pages only *read* (they map the shared zero page), and fall back at ``MADV_DONTNEED``; the
mapping shows in ``/proc/self/maps``; ``getrusage()`` counts one minor fault per page.

It is bounded, always: it maps at most :data:`MAX_MAP_BYTES` of address space and touches
at most :func:`touch_bound` — a quarter of RAM and never more than :data:`MAX_TOUCH_BYTES`
— and it unmaps everything before it returns, so it cannot push the machine into reclaim or
OOM. A request over a bound is refused before anything is mapped. Where there is no
``/proc/self/status`` (macOS, Windows) it says so and does nothing.

The mapping is marked ``MADV_NOHUGEPAGE`` so that, on a machine with transparent huge pages
set to ``always``, the kernel does not fill it 2 MiB at a time and the per-page counts hold.

Also here: the OOM killer's view of this machine's processes (:func:`read_oom_tasks`), to
compare ``oom_badness()`` recomputed from ``/proc/PID/status`` with ``/proc/PID/oom_score``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kmmlib.errors import BadRequest
from kmmlib.userspace.oom import OomTask, oom_score

PAGE_SIZE = 4096
MAX_TOUCH_BYTES = 64 << 20      # never make more than 64 MiB resident
MAX_MAP_BYTES = 1 << 30         # never reserve more than 1 GiB of address space
STATUS_FIELDS = ("VmPeak", "VmSize", "VmLck", "VmHWM", "VmRSS", "RssAnon", "RssFile",
                 "RssShmem", "VmData", "VmPTE", "VmSwap")


def supported(proc: str | os.PathLike = "/proc") -> tuple[bool, str]:
    """Can the live experiments run here? (Linux with a readable /proc/self/status.)"""
    if not sys.platform.startswith("linux"):
        return False, f"not Linux ({sys.platform}): there is no /proc to watch"
    status = Path(proc) / "self" / "status"
    if not status.is_file():
        return False, f"{status} is missing"
    try:
        import mmap

        mmap.MAP_PRIVATE, mmap.MAP_ANONYMOUS  # noqa: B018 - present only on Unix
    except (ImportError, AttributeError):
        return False, "this Python's mmap module has no MAP_PRIVATE/MAP_ANONYMOUS"
    return True, "Linux, /proc/self/status readable"


def parse_status(text: str) -> dict[str, int]:
    """The ``Vm*``/``Rss*`` lines of /proc/PID/status, in kB (``task_mem()``)."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in STATUS_FIELDS and rest.strip().endswith("kB"):
            out[name] = int(rest.split()[0])
    return out


def read_status(pid: int | str = "self", proc: str | os.PathLike = "/proc") -> dict[str, int]:
    return parse_status((Path(proc) / str(pid) / "status").read_text())


def mem_total_bytes(proc: str | os.PathLike = "/proc") -> int:
    """MemTotal of this machine, in bytes."""
    for line in (Path(proc) / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise BadRequest("/proc/meminfo has no MemTotal line")


def touch_bound(mem_total: int) -> int:
    """The most the experiment may make resident: a quarter of RAM, at most 64 MiB,
    in whole pages."""
    return min(MAX_TOUCH_BYTES, mem_total // 4) // PAGE_SIZE * PAGE_SIZE


def _minflt() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclass
class Observation:
    """/proc/self/status (kB) and the minor-fault count after one stage."""

    stage: str
    status: dict[str, int]
    minflt: int
    expect_rss_delta_kb: int

    def row(self, base: Observation) -> str:
        d = self.status["RssAnon"] - base.status["RssAnon"]
        return (f"{self.stage:<34} {self.status['VmSize']:>10} {self.status['VmRSS']:>9} "
                f"{d:>+10} {self.expect_rss_delta_kb:>+9} {self.minflt - base.minflt:>8}")


@dataclass
class Experiment:
    """What :func:`demand_paging` did and saw."""

    supported: bool
    reason: str
    map_bytes: int = 0
    touch_bytes: int = 0
    bound: int = 0
    peak_touched: int = 0           # the most the experiment itself had touched at once
    address: int = 0
    maps_line: str = ""
    observations: list[Observation] = field(default_factory=list)
    pagemap: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        if not self.supported:
            return f"live experiment skipped: {self.reason}"
        base = self.observations[0]
        head = (f"mapped {self.map_bytes >> 20} MiB at {self.address:#x}, touched at most "
                f"{self.touch_bytes >> 20} MiB (bound {self.bound >> 20} MiB)\n"
                f"{'stage':<34} {'VmSize kB':>10} {'VmRSS kB':>9} {'ΔRssAnon':>10} "
                f"{'expected':>9} {'minflt':>8}")
        return "\n".join([head] + [o.row(base) for o in self.observations]
                         + [f"/proc/self/maps: {self.maps_line}"]
                         + [f"/proc/self/pagemap of the {k} page: {v}"
                            for k, v in self.pagemap.items()])


def _maps_line(addr: int, proc: str | os.PathLike) -> str:
    for line in (Path(proc) / "self" / "maps").read_text().splitlines():
        if int(line.split("-", 1)[0], 16) == addr:
            return line
    return "(not found)"


def demand_paging(map_bytes: int = 256 << 20, touch_bytes: int = 16 << 20, *,
                  proc: str | os.PathLike = "/proc") -> Experiment:
    """Map ``map_bytes`` of anonymous private memory, then: write one byte in each page of
    the first ``touch_bytes``; read the next ``touch_bytes`` (zero page: RSS stays);
    ``MADV_DONTNEED`` the written part; unmap. /proc/self/status is read after each stage.

    Raises :class:`~kmmlib.errors.BadRequest` for a request over the bounds, before mapping
    anything. Returns an :class:`Experiment` (``supported=False`` where it cannot run)."""
    ok, reason = supported(proc)
    if not ok:
        return Experiment(False, reason)
    bound = touch_bound(mem_total_bytes(proc))
    if not 0 < map_bytes <= MAX_MAP_BYTES:
        raise BadRequest(f"map_bytes must be 1 .. {MAX_MAP_BYTES >> 20} MiB, not {map_bytes}")
    if not 0 < touch_bytes <= bound:
        raise BadRequest(f"touch_bytes {touch_bytes} is over the bound of {bound} bytes "
                         f"(a quarter of RAM, at most {MAX_TOUCH_BYTES >> 20} MiB)")
    map_bytes = (map_bytes + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
    touch_bytes = touch_bytes // PAGE_SIZE * PAGE_SIZE
    if 2 * touch_bytes > map_bytes:
        raise BadRequest("map_bytes must hold twice touch_bytes (a part to write, one to read)")
    import ctypes
    import mmap

    exp = Experiment(True, reason, map_bytes, touch_bytes, bound)
    kb = PAGE_SIZE // 1024
    pages = touch_bytes // PAGE_SIZE

    def observe(stage: str, expect_pages: int) -> None:
        exp.observations.append(Observation(stage, read_status("self", proc), _minflt(),
                                            expect_pages * kb))

    observe("before mmap", 0)
    m = mmap.mmap(-1, map_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        view = (ctypes.c_char * 1).from_buffer(m)
        exp.address = ctypes.addressof(view)
        del view                                   # an exported buffer would block close()
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            m.madvise(mmap.MADV_NOHUGEPAGE)
        exp.maps_line = _maps_line(exp.address, proc)
        observe(f"mmap {map_bytes >> 20} MiB", 0)
        for i in range(pages):
            m[i * PAGE_SIZE] = 1                   # a store: a write fault, a new page
        exp.peak_touched = touch_bytes
        observe(f"write 1 byte in {pages} pages", pages)
        total = 0
        for i in range(pages, 2 * pages):
            total += m[i * PAGE_SIZE]              # a load: the zero page, no RSS
        observe(f"read {pages} other pages", pages)
        for what, off in (("written", 0), ("read", touch_bytes), ("untouched", 2 * touch_bytes)):
            if off < map_bytes:
                exp.pagemap[what] = describe_pagemap(pagemap_entry(exp.address + off, proc))
        m.madvise(mmap.MADV_DONTNEED, 0, touch_bytes)
        observe("madvise(MADV_DONTNEED) the written", 0)
    finally:
        m.close()
    observe("munmap", 0)
    return exp


def simulate_demand_paging(map_bytes: int = 256 << 20, touch_bytes: int = 16 << 20, *,
                           ram: str = "1G") -> Experiment:
    """The same experiment on the simulator (a machine with ``ram`` of memory), read through
    the simulated /proc/PID/status — the twin of :func:`demand_paging` to compare with."""
    from kmmlib.userspace.process import MADV_DONTNEED, System

    if 2 * touch_bytes > map_bytes or touch_bytes <= 0:
        raise BadRequest("map_bytes must hold twice touch_bytes (a part to write, one to read)")
    sysm = System(ram)
    mm = sysm.spawn("python3").mm
    exp = Experiment(True, "the simulator", map_bytes, touch_bytes, touch_bytes)
    pages = touch_bytes // PAGE_SIZE
    kb = PAGE_SIZE // 1024

    def observe(stage: str, expect_pages: int) -> None:
        exp.observations.append(Observation(stage, parse_status(mm.status()),
                                            mm.task.min_flt, expect_pages * kb))

    observe("before mmap", 0)
    a = mm.mmap(0, map_bytes)
    if a is None:
        raise BadRequest(f"the simulated {ram} machine refused to map {map_bytes} bytes")
    exp.address = a
    exp.maps_line = mm.maps().splitlines()[0]
    observe(f"mmap {map_bytes >> 20} MiB", 0)
    mm.touch_range(a, touch_bytes, write=True)
    exp.peak_touched = touch_bytes
    observe(f"write 1 byte in {pages} pages", pages)
    mm.touch_range(a + touch_bytes, touch_bytes, write=False)
    observe(f"read {pages} other pages", pages)
    for what, off in (("written", 0), ("read", touch_bytes), ("untouched", 2 * touch_bytes)):
        pte = mm.follow_pte(a + off)
        pfn = (pte >> 12) & ((1 << 40) - 1)
        exp.pagemap[what] = ("not present" if not pte else
                             f"present, not exclusive: the shared zero page, pfn {pfn:#x}"
                             if pfn == sysm.zero_pfn else
                             f"present, mapped only here: a page of its own, pfn {pfn:#x}")
    mm.madvise(a, touch_bytes, MADV_DONTNEED)
    observe("madvise(MADV_DONTNEED) the written", 0)
    mm.munmap(a, map_bytes)
    observe("munmap", 0)
    return exp


# PM_* bits of a /proc/PID/pagemap entry (fs/proc/task_mmu.c, Documentation/admin-guide/mm/
# pagemap.rst): bits 0-54 the PFN (zero without CAP_SYS_ADMIN), 55 soft-dirty, 56 exclusively
# mapped, 61 file page or shared anon, 62 swapped, 63 present.
PM_PFN_MASK = (1 << 55) - 1
PM_SOFT_DIRTY, PM_MMAP_EXCLUSIVE, PM_FILE, PM_SWAP, PM_PRESENT = (1 << 55, 1 << 56, 1 << 61,
                                                                  1 << 62, 1 << 63)


def pagemap_entry(addr: int, proc: str | os.PathLike = "/proc") -> int:
    """The 64-bit /proc/self/pagemap entry of the page at addr."""
    with open(Path(proc) / "self" / "pagemap", "rb") as f:
        f.seek((addr // PAGE_SIZE) * 8)
        return int.from_bytes(f.read(8), "little")


def describe_pagemap(entry: int) -> str:
    """"present, exclusive (a page of its own)", "present, shared (the zero page)", …"""
    if not entry & PM_PRESENT:
        return "not present" + (" (swapped)" if entry & PM_SWAP else "")
    pfn = entry & PM_PFN_MASK
    own = entry & PM_MMAP_EXCLUSIVE
    text = "present, " + ("mapped only here: a page of its own" if own else
                          "not exclusive: the shared zero page")
    return text + (f", pfn {pfn:#x}" if pfn else "")


# -- the OOM killer's view of this machine ----------------------------------------------------

@dataclass
class LiveTask:
    """A process of this machine: the OOM killer's inputs and the kernel's oom_score."""

    task: OomTask
    kernel_oom_score: int
    predicted: int


def _task_from_status(pid: int, text: str, adj: int) -> OomTask | None:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields[name] = rest.strip()
    if "VmRSS" not in fields:                       # a kernel thread: no mm
        return None
    kb = lambda name: int(fields.get(name, "0 kB").split()[0])  # noqa: E731
    return OomTask(pid=pid, comm=fields.get("Name", "?"),
                   uid=int(fields.get("Uid", "0").split()[0]),
                   tgid=int(fields.get("Tgid", pid)), total_vm=kb("VmSize") // 4,
                   rss_anon=kb("RssAnon") // 4, rss_file=kb("RssFile") // 4,
                   rss_shmem=kb("RssShmem") // 4, swapents=kb("VmSwap") // 4,
                   pgtables_bytes=kb("VmPTE") * 1024, oom_score_adj=adj, init=pid == 1)


def totalpages(proc: str | os.PathLike = "/proc") -> int:
    """``totalram_pages() + total_swap_pages`` from /proc/meminfo (MemTotal is totalram)."""
    mi = {}
    for line in (Path(proc) / "meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        mi[name] = int(rest.split()[0]) if rest.split() else 0
    return mi["MemTotal"] // 4 + mi.get("SwapTotal", 0) // 4


def read_oom_tasks(proc: str | os.PathLike = "/proc", pids: list[int] | None = None
                   ) -> list[LiveTask]:
    """Every process with an mm, as ``oom_badness()`` sees it, beside its
    ``/proc/PID/oom_score``. Processes that exit while being read are skipped. (In a
    container, pid 1 is the container's init, which the host kernel would not spare.)"""
    root = Path(proc)
    total = totalpages(proc)
    if pids is None:
        pids = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())
    out = []
    for pid in pids:
        try:
            text = (root / str(pid) / "status").read_text()
            adj = int((root / str(pid) / "oom_score_adj").read_text())
            score = int((root / str(pid) / "oom_score").read_text())
        except (OSError, ValueError):
            continue
        task = _task_from_status(pid, text, adj)
        if task is not None:
            out.append(LiveTask(task, score, oom_score(task, total)))
    return out

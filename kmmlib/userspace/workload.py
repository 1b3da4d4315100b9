"""What a workload does to ``/proc/meminfo``, and so to ``free`` and MemAvailable.

Four kinds of memory use look alike to ``free``'s "free" column (it falls by the same amount)
and very different to "available". :class:`MeminfoWorkload` applies them to a real meminfo,
line by line as the kernel's counters move, and recomputes MemAvailable with
:func:`~kmmlib.mm.available.mem_available`:

- ``("read", MiB)`` — reading files fills the page cache: ``filemap_add_folio()``
  (mm/filemap.c) adds NR_FILE_PAGES (meminfo's ``Cached``) and ``folio_add_lru()`` puts the
  new folios on the **inactive file** LRU. ``si_mem_available()`` counts file LRU pages as
  available (clean page cache can be dropped), so "available" does not move;
- ``("malloc", MiB)`` — a program touches anonymous memory: ``do_anonymous_page()``
  (mm/memory.c) maps each page (``folio_add_new_anon_rmap()``: ``AnonPages``), puts it on the
  **inactive anon** LRU (``folio_add_lru_vma()``; since 5.9 new anonymous pages start
  inactive), and needs a page-table page per 2 MiB (``PageTables``); the mmap was charged to
  ``Committed_AS`` (``vm_acct_memory()``). Without swap none of it can be reclaimed:
  "available" falls by all of it;
- ``("tmpfs", MiB)`` — writing files in tmpfs (``/dev/shm``): ``shmem_add_to_page_cache()``
  (mm/shmem.c) adds NR_FILE_PAGES *and* NR_SHMEM — ``Cached`` and ``Shmem`` — but shmem
  folios are swap-backed, so they go on the **anon** LRU. A tmpfs file is ``VM_NORESERVE``:
  each page is charged to ``Committed_AS`` as it is allocated (``shmem_acct_blocks()`` →
  ``vm_acct_memory()``). ``free`` shows the pages in buff/cache and in "shared";
  MemAvailable, which counts only the file LRU, does not: they are cache that cannot be
  dropped;
- ``("dentries", MiB)`` — walking a big directory tree fills the dentry and inode caches,
  slab caches created with SLAB_RECLAIM_ACCOUNT: ``Slab``, ``SReclaimable`` and
  ``KReclaimable`` grow, and ``si_mem_available()`` counts reclaimable slab as available
  (beyond what it assumes must stay);
- ``("drop_caches",)`` — ``echo 3 > /proc/sys/vm/drop_caches`` (fs/drop_caches.c):
  ``drop_pagecache_sb()`` → ``invalidate_mapping_pages()`` frees clean, unmapped page cache
  (never tmpfs: it has no backing store) and ``drop_slab()`` shrinks the reclaimable caches.
  Here it frees what this workload's reads and directory walks added (the files are closed,
  the dentries unused); what the machine held before stays, as its use is not known;
- ``("exit",)`` — the program that malloc'd exits: ``exit_mmap()`` frees its anonymous pages
  and page tables and unaccounts the mapping; ``("rm_tmpfs",)`` deletes the tmpfs files —
  the one way to give their memory back (a tmpfs file outlives the program that wrote it).

A request that would take MemFree below the sum of the zones' low watermarks is refused, state
unchanged: there kswapd would wake and start reclaiming (chapter 05), which this model does not
do. The zones' watermarks and protection come from the same machine's /proc/zoneinfo.

The LRU lists are the classic active/inactive ones. With the multi-generational LRU
(``CONFIG_LRU_GEN``, on where ``/sys/kernel/mm/lru_gen/enabled`` exists and says so),
``lru_gen_add_folio()`` files new anonymous and shmem folios in a young generation that
meminfo counts as ``Active(anon)``; the other lines, ``free`` and MemAvailable are the same.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kmmlib.errors import BadRequest, KmmError
from kmmlib.events import EventLog
from kmmlib.mm.available import mem_available
from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.procfs.zoneinfo import ZoneInfo, parse_zoneinfo
from kmmlib.userspace.free import free_columns, free_output

MIB = 1024                      # kB
PMD_SPAN_KB = 2 * MIB           # one page-table page maps 2 MiB (512 PTEs × 4 KiB, x86_64)
PAGE_KB = 4

# Which meminfo lines each kind of use adds to (kB each), as the kernel's counters move.
ADDS = {
    "read": ("Cached", "Inactive(file)", "Inactive"),
    "malloc": ("AnonPages", "Inactive(anon)", "Inactive", "Committed_AS"),
    "tmpfs": ("Cached", "Shmem", "Inactive(anon)", "Inactive", "Committed_AS"),
    "dentries": ("Slab", "SReclaimable", "KReclaimable"),
}
WHAT = {
    "read": "read {mib} MiB of files: filemap_add_folio() puts {pages} pages in the page cache "
            "(Cached) on the inactive file LRU; MemAvailable counts clean page cache as "
            "available",
    "malloc": "malloc and touch {mib} MiB: do_anonymous_page() maps {pages} anonymous pages "
              "(AnonPages) on the inactive anon LRU, plus {pt} page-table pages; no swap, so "
              "none of it is available any more",
    "tmpfs": "write {mib} MiB to tmpfs: shmem_add_to_page_cache() counts {pages} pages in "
             "Cached and Shmem, on the anon LRU: free shows them as buff/cache, MemAvailable "
             "knows they cannot be dropped",
    "dentries": "walk a directory tree: the dentry and inode caches grow by {mib} MiB of "
                "reclaimable slab (SReclaimable), which MemAvailable counts as available",
}


class MeminfoWorkload:
    """A machine's meminfo (kB, as :func:`~kmmlib.procfs.meminfo.parse_meminfo` reads it)
    and zoneinfo, changed by a workload one operation at a time (a stepper model)."""

    def __init__(self, meminfo: dict[str, int], zones: list[ZoneInfo], *, record: int = 0):
        self.start = dict(meminfo)
        self.mi = dict(meminfo)
        self.zones = zones
        self.wmark_low_kb = sum(z.low for z in zones) * PAGE_KB
        self.added = {kind: 0 for kind in ADDS}          # kB this workload holds, by kind
        self.page_tables = 0                             # kB of page tables for the malloc
        self.events = EventLog(record)
        self.ops: list[str] = []
        # Recomputed, also at the start: a live meminfo and zoneinfo are two reads a moment
        # apart, and the changes shown must be the workload's alone.
        self.mi["MemAvailable"] = self.start["MemAvailable"] = self.available_kb()

    @classmethod
    def from_source(cls, source, **kw) -> MeminfoWorkload:
        """From a :class:`~kmmlib.procfs.source.ProcSource` (the snapshot, or your /proc)."""
        return cls(parse_meminfo(source.read("meminfo")), parse_zoneinfo(source.read("zoneinfo")),
                   **kw)

    # -- the operations --------------------------------------------------------------------
    def apply(self, op: tuple) -> str:
        """One operation (see the module's docstring); returns MemAvailable after it, and
        narrates what the kernel did to the event log."""
        kind, *args = op
        if kind in ADDS:
            if len(args) != 1 or type(args[0]) is not int or args[0] <= 0:
                raise BadRequest(f"{kind}: give a whole number of MiB above 0, not "
                                 f"{args[0] if args else 'nothing'!r}")
            return self._use(kind, args[0])
        if args:
            raise BadRequest(f"{kind} takes no amount")
        if kind == "drop_caches":
            freed = self._give_back("read") + self._give_back("dentries")
            text = (f"drop_caches: {freed // MIB} MiB of clean page cache and reclaimable slab "
                    "this workload added go back to the free lists (tmpfs stays: it has no "
                    "backing store)")
        elif kind == "exit":
            freed = self._give_back("malloc")
            text = (f"exit: exit_mmap() frees {freed // MIB} MiB of anonymous memory and its "
                    "page tables")
        elif kind == "rm_tmpfs":
            freed = self._give_back("tmpfs")
            text = f"rm the tmpfs files: {freed // MIB} MiB of Shmem freed"
        else:
            raise BadRequest(f"unknown operation {kind!r}: one of {', '.join(self.kinds())}")
        self.mi["MemAvailable"] = self.available_kb()
        return self._done(kind, text)

    @staticmethod
    def describe(op: tuple) -> str:
        """``("read", 512)`` → ``read 512 MiB`` (the stepper's step heading)."""
        return f"{op[0]} {op[1]} MiB" if len(op) == 2 else str(op[0])

    @staticmethod
    def kinds() -> list[str]:
        return [*ADDS, "drop_caches", "exit", "rm_tmpfs"]

    def _use(self, kind: str, mib: int) -> str:
        kb = mib * MIB
        pt = -(-kb // PMD_SPAN_KB) * PAGE_KB if kind == "malloc" else 0
        left = self.mi["MemFree"] - kb - pt
        if left < self.wmark_low_kb:
            raise BadRequest(
                f"{kind} {mib} MiB: MemFree would fall to {max(left, 0)} kB, below the zones' "
                f"low watermarks ({self.wmark_low_kb} kB): kswapd would wake and reclaim first "
                "(chapter 05), which this model does not do")
        self.mi["MemFree"] -= kb + pt
        for name in ADDS[kind]:
            if name in self.mi:
                self.mi[name] += kb
        if pt:
            self.mi["PageTables"] = self.mi.get("PageTables", 0) + pt
            self.page_tables += pt
        self.added[kind] += kb
        self.mi["MemAvailable"] = self.available_kb()
        return self._done(kind, WHAT[kind].format(mib=mib, pages=kb // PAGE_KB,
                                                  pt=pt // PAGE_KB))

    def _done(self, kind: str, text: str) -> str:
        self.ops.append(text)
        if self.events.active:
            self.events.emit(kind, text)
        return f"MemAvailable {self.mi['MemAvailable'] // MIB} MiB"

    def _give_back(self, kind: str) -> int:
        kb = self.added[kind]
        for name in ADDS[kind]:
            if name in self.mi:
                self.mi[name] -= kb
        freed = kb
        if kind == "malloc":
            self.mi["PageTables"] -= self.page_tables
            freed += self.page_tables
            self.page_tables = 0
        self.mi["MemFree"] += freed
        self.added[kind] = 0
        return kb

    # -- what it shows -----------------------------------------------------------------------
    def available_kb(self) -> int:
        """MemAvailable as ``si_mem_available()`` computes it from the current lines."""
        return mem_available(self.mi, self.zones, PAGE_KB).available * PAGE_KB

    def changes(self) -> dict[str, int]:
        """The meminfo lines that differ from the start, in kB (new minus old)."""
        return {k: v - self.start.get(k, 0) for k, v in self.mi.items()
                if v != self.start.get(k, 0)}

    def render(self) -> str:
        before, now = free_columns(self.start), free_columns(self.mi)
        cols = ("used", "free", "shared", "buff_cache", "available")
        delta = "  ".join(f"{c.replace('_', '/')} {(now[c] - before[c]) // MIB:+d}"
                          for c in cols)
        lines = [free_output(self.mi, human=True).rstrip("\n"),
                 f"since the start (MiB): {delta}"]
        ch = self.changes()
        if ch:
            lines.append("meminfo lines changed (kB): " + ", ".join(
                f"{k} {v:+d}" for k, v in ch.items()))
        return "\n".join(lines)


# -- the same on your machine -------------------------------------------------------------------

MAX_TMPFS_MIB = 64              # never write more than this to tmpfs
WATCHED = ("Shmem", "Cached", "Committed_AS", "MemAvailable", "MemFree")


@dataclass
class TmpfsExperiment:
    """The model's prediction for writing ``mib`` MiB to tmpfs beside what your meminfo
    did; ``ran`` is False (with ``why``) where it could not run."""

    mib: int
    ran: bool
    why: str
    predicted: dict[str, int] = field(default_factory=dict)
    measured: dict[str, int] = field(default_factory=dict)
    waited: float = 0.0

    def table(self) -> str:
        if not self.ran:
            return f"not run: {self.why}"
        rows = [f"wrote {self.mib} MiB to a file in {self.why}, waited {self.waited:.1f} s "
                "for vmstat to fold the per-CPU counters, read meminfo, deleted the file (kB):",
                f"{'line':<14}{'predicted':>12}{'measured':>12}"]
        rows += [f"{k:<14}{self.predicted[k]:>+12d}{self.measured[k]:>+12d}" for k in WATCHED]
        rows.append("(Committed_AS, MemFree and MemAvailable also move with whatever else the "
                    "machine did meanwhile)")
        return "\n".join(rows)


def tmpfs_experiment(mib: int = 32, directory: str | os.PathLike = "/dev/shm",
                     proc: str | os.PathLike | None = None) -> TmpfsExperiment:
    """Write ``mib`` MiB to a file in tmpfs, read /proc/meminfo before and after, delete the
    file, and set the changes beside :class:`MeminfoWorkload`'s ``("tmpfs", mib)``.

    meminfo's counters are per-CPU: each CPU batches its changes (up to the zone's
    ``stat_threshold``) and ``vmstat_update()`` folds them into the global counts every
    ``vm.stat_interval`` seconds (mm/vmstat.c), so the second read waits that long, and a bit.

    Bounded: at most :data:`MAX_TMPFS_MIB` MiB and at most an eighth of MemAvailable, and the
    file is deleted before this returns (also on error). Where there is no live /proc/meminfo
    or no writable tmpfs (macOS, a container without /dev/shm), it says so and writes
    nothing."""
    from kmmlib.procfs.source import ProcSource

    if type(mib) is not int or not 0 < mib <= MAX_TMPFS_MIB:
        raise BadRequest(f"tmpfs experiment: {mib!r} MiB; between 1 and {MAX_TMPFS_MIB}")
    src = ProcSource(proc, fallback=False)
    if not src.live:
        return TmpfsExperiment(mib, False, f"meminfo comes from {src.root}, not the live /proc")
    try:
        before = parse_meminfo(src.read("meminfo"))
        zones = parse_zoneinfo(src.read("zoneinfo"))
    except KmmError as err:
        return TmpfsExperiment(mib, False, str(err))
    d = Path(directory)
    if not sys.platform.startswith("linux") or not d.is_dir() or not os.access(d, os.W_OK):
        return TmpfsExperiment(mib, False, f"{d} is not a writable directory here")
    if mib * MIB > before.get("MemAvailable", 0) // 8:
        return TmpfsExperiment(mib, False, f"{mib} MiB is more than an eighth of MemAvailable")
    try:
        interval = float(src.read("stat_interval"))
    except (KmmError, ValueError):
        interval = 1.0
    wait = min(interval, 5.0) * 1.5 + 0.2
    fstype = _fs_type(d, src)
    if fstype != "tmpfs":
        return TmpfsExperiment(mib, False, f"{d} is on {fstype or 'an unknown filesystem'}, "
                                           "not tmpfs")
    model = MeminfoWorkload(before, zones)
    try:
        model.apply(("tmpfs", mib))
    except BadRequest as err:                 # too little free memory: do not add pressure
        return TmpfsExperiment(mib, False, str(err))
    predicted = {k: model.mi[k] - model.start[k] for k in WATCHED}
    chunk = b"\x5a" * (1 << 20)              # written, so every page is really allocated
    fd, name = tempfile.mkstemp(prefix="kmm-course-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            for _ in range(mib):
                f.write(chunk)
        time.sleep(wait)
        after = parse_meminfo(src.read("meminfo"))
    except OSError as err:
        return TmpfsExperiment(mib, False, f"writing {name}: {err.strerror or err}")
    finally:
        os.unlink(name)
    measured = {k: after[k] - before[k] for k in WATCHED}
    return TmpfsExperiment(mib, True, str(d), predicted, measured, wait)


def _fs_type(directory: Path, src) -> str | None:
    """The filesystem type of the mount that holds ``directory`` (/proc/self/mounts: the
    longest mount point that is a prefix of its real path)."""
    try:
        mounts = (Path(src.root) / "self" / "mounts").read_text()
    except OSError:
        return None
    real = os.path.realpath(directory)
    best, fstype = "", None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, parts[2]
    return fstype


__all__ = ["ADDS", "MAX_TMPFS_MIB", "MeminfoWorkload", "TmpfsExperiment", "tmpfs_experiment"]

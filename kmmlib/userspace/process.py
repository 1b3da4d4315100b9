"""A process's memory as the kernel keeps it: ``mm_struct``, VMAs, a page table, page faults.

``malloc()`` and ``mmap()`` do not hand out memory; they reserve *address space*. The kernel
records each reservation as a VMA (``struct vm_area_struct``: a start, an end, permissions) in
the process's ``mm_struct`` and promises the memory (overcommit, :mod:`.overcommit`). Nothing
is in RAM yet. The first touch of a page finds no page-table entry; the MMU raises a page
fault, and the kernel's handler finds the VMA, takes a page from the page allocator, fills in
the page-table entry and returns; the CPU retries the instruction, which now succeeds. That is
**demand paging**, and this module models it step by step:

1. **VA** — the CPU issues a load or store to a virtual address.
2. **access** — it looks for the translation in the TLB; a miss sends the MMU to the tables.
3. **MMU walk** — CR3 → PGD → PUD → PMD → PTE (x86_64, 4 levels, 9 bits each).
4. **PTE check** — the entry is empty (or read-only, for a write): no usable translation.
5. **fault** — exception 14 (#PF), CR2 = the address; ``exc_page_fault()`` →
   ``do_user_addr_fault()`` finds the VMA and checks the access (arch/x86/mm/fault.c).
6. **handler** — ``handle_mm_fault()`` (mm/memory.c) allocates any missing page-table pages,
   then ``do_anonymous_page()`` takes a zeroed page from the page allocator
   (``GFP_HIGHUSER_MOVABLE``) and sets the PTE; RSS grows by one page. A *read* of a
   never-written page maps the shared zero page instead, and RSS does not grow.
7. **return** — back to user mode, to the same instruction (a *minor* fault: no I/O).
8. **retry** — the instruction runs again; the walk now finds the PTE.

Each step is an event (kind ``fault``) on the :class:`System`'s event log, so a widget can
step through it (:class:`FaultPath`, :class:`FaultDemo`), and RSS, VSZ and Committed_AS
follow every call. The system calls are the kernel's: ``mmap``/``munmap`` (mm/mmap.c,
mm/vma.c), ``mprotect`` (mm/mprotect.c), ``mlock`` (mm/mlock.c), ``madvise(MADV_DONTNEED)``
(mm/madvise.c), ``mremap`` (mm/mremap.c) and ``brk`` (mm/mmap.c).

How errors come back: a call the kernel would refuse for a bad argument (``EINVAL``, an
unmapped range) raises :class:`~kmmlib.errors.BadRequest` naming the errno; a request the
kernel refuses for want of memory returns what the system call returns — ``None`` for
``mmap``/``mremap`` (MAP_FAILED), the old break for ``brk``, ``-ENOMEM`` for the others. A bad
access raises :class:`SegmentationFault` and kills the process, as SIGSEGV does; a process the
OOM killer chose raises :class:`ProcessKilled` on its next call.

Simplifications (one line each):
- Anonymous private memory only: no file mappings, no shared memory, no swap, no huge pages.
- x86_64 with 4-level page tables and 4 KiB pages; the PGD is one page (PTI uses two).
- The TLB is a dictionary with no size limit, flushed exactly where the kernel flushes.
- VMAs are a sorted list (the kernel uses a maple tree); no stack, no program text, no libraries:
  a new process is an empty address space whose break starts at ``START_BRK``.
- Page contents are not stored (the toy malloc in :mod:`.malloc` keeps its own bytes).
- The OOM victim's memory is freed at once (the kernel's oom_reaper and exit do it a bit later).
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kmmlib.errors import BadRequest, KmmError
from kmmlib.events import EventLog
from kmmlib.mm import page_flags as _pf
from kmmlib.mm import watermark as _wm
from kmmlib.mm.gfp import format_gfp, parse_gfp
from kmmlib.mm.page_alloc import Zone
from kmmlib.userspace import oom as _oom
from kmmlib.userspace.overcommit import OVERCOMMIT_NEVER, VmCommit

# -- x86_64 constants -------------------------------------------------------------------------
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
PTRS_PER_TABLE = 512                        # 9 bits of the address per level
PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT = 39, 30, 21
LEVELS = (("PGD", PGDIR_SHIFT), ("PUD", PUD_SHIFT), ("PMD", PMD_SHIFT), ("PTE", PAGE_SHIFT))
_NEXT_LEVEL = {"PGD": "PUD", "PUD": "PMD", "PMD": "PTE"}
TASK_SIZE = (1 << 47) - PAGE_SIZE           # 0x7ffffffff000: the top of user space
# arch/x86/mm/mmap.c mmap_base() with ASLR off and an 8 MiB stack limit: the gap below the
# stack is clamped up to 128 MiB, so mmap() starts under 0x7ffff7fff000 (the addresses gdb
# shows, where ASLR is off).
MMAP_BASE = TASK_SIZE - (128 << 20)
MMAP_MIN_ADDR = 65536                       # vm.mmap_min_addr
# A small PIE program loads at ELF_ET_DYN_BASE 0x555555554000 (ASLR off); its break starts
# after its last page. The value is illustrative: the model has no program image.
START_BRK = 0x555555559000

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0x0, 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_GROWSDOWN, MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE = 0x0100, 0x2000, 0x4000, 0x8000
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED, MADV_POPULATE_READ, MADV_POPULATE_WRITE = 4, 22, 23
ENOMEM = 12

# include/linux/mm.h vm_flags.
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_MAYSHARE = 0x10, 0x20, 0x40, 0x80
VM_GROWSDOWN, VM_LOCKED = 0x100, 0x2000
VM_ACCOUNT, VM_NORESERVE = 0x100000, 0x200000
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_MAY = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
# fs/proc/task_mmu.c show_smap_vma_flags(): the two-letter names of /proc/PID/smaps VmFlags.
_VMFLAG_NAMES = ((VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
                 (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"),
                 (VM_MAYSHARE, "ms"), (VM_GROWSDOWN, "gd"), (VM_LOCKED, "lo"),
                 (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"))

# enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES } (include/linux/mm_types.h).
MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES = 0, 1, 2, 3

# arch/x86/include/asm/pgtable_types.h: the bits of a page-table entry.
_PAGE_PRESENT, _PAGE_RW, _PAGE_USER = 1 << 0, 1 << 1, 1 << 2
_PAGE_ACCESSED, _PAGE_DIRTY = 1 << 5, 1 << 6
_PAGE_PROTNONE = 1 << 8                     # the global bit, reused: PROT_NONE, not present
_PAGE_SPECIAL = 1 << 9                      # no struct page to refcount (the zero page)
_PAGE_SOFT_DIRTY = 1 << 11
_PAGE_NX = 1 << 63
_PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY   # 0x067
_PTE_PFN_MASK = ((1 << 52) - 1) & PAGE_MASK
# x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h).
X86_PF_PROT, X86_PF_WRITE, X86_PF_USER = 1 << 0, 1 << 1, 1 << 2

# Page-table pages come from GFP_PGTABLE_USER (= GFP_KERNEL_ACCOUNT | __GFP_ZERO); anonymous
# pages from vma_alloc_zeroed_movable_folio() → GFP_HIGHUSER_MOVABLE | __GFP_ZERO, and every
# folio allocation adds __GFP_COMP: the 0x140dca of real OOM reports.
GFP_PGTABLE_USER = parse_gfp("GFP_KERNEL_ACCOUNT|__GFP_ZERO")
GFP_ANON_FOLIO = parse_gfp("GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO")

FAULT_STEPS = ("VA", "access", "MMU walk", "PTE check", "fault", "handler", "return", "retry")


class SegmentationFault(KmmError):
    """SIGSEGV: an access outside every VMA, or against its permissions. The process dies."""


class ProcessKilled(KmmError):
    """The process is gone (OOM-killed or killed by a signal); its calls can no longer run."""


def page_align(n: int) -> int:
    """``PAGE_ALIGN()``: round up to a multiple of the page size."""
    return (n + PAGE_SIZE - 1) & PAGE_MASK


def pt_index(addr: int) -> tuple[int, int, int, int, int]:
    """The PGD, PUD, PMD and PTE indices and the page offset of a virtual address
    (``pgd_index()`` … ``pte_index()``): 9 + 9 + 9 + 9 + 12 bits."""
    return ((addr >> PGDIR_SHIFT) & 511, (addr >> PUD_SHIFT) & 511, (addr >> PMD_SHIFT) & 511,
            (addr >> PAGE_SHIFT) & 511, addr & (PAGE_SIZE - 1))


def calc_vm_prot_bits(prot: int) -> int:
    """``calc_vm_prot_bits()`` (include/linux/mman.h): PROT_* → VM_READ/WRITE/EXEC."""
    return prot & (PROT_READ | PROT_WRITE | PROT_EXEC)     # the same bit values


def pte_flags_text(pte: int) -> str:
    """The set bits of a PTE, by name (present rw user accessed dirty soft-dirty special nx)."""
    names = [(_PAGE_PRESENT, "present"), (_PAGE_PROTNONE, "protnone"), (_PAGE_RW, "rw"),
             (_PAGE_USER, "user"), (_PAGE_ACCESSED, "accessed"), (_PAGE_DIRTY, "dirty"),
             (_PAGE_SOFT_DIRTY, "soft-dirty"), (_PAGE_SPECIAL, "special"), (_PAGE_NX, "nx")]
    return " ".join(n for bit, n in names if pte & bit) or "none"


def _kb(pages: int) -> int:
    return pages << (PAGE_SHIFT - 10)


# -- VMAs -------------------------------------------------------------------------------------

@dataclass
class VmAreaStruct:
    """``struct vm_area_struct`` (include/linux/mm_types.h): [vm_start, vm_end) with one set of
    permissions. ``anon_vma`` is None until the first page is written (``anon_vma_prepare()``);
    two neighbours merge only if their flags match and at most one has an anon_vma, or both
    the same one (``is_mergeable_anon_vma()``)."""

    vm_start: int
    vm_end: int
    vm_flags: int
    vm_pgoff: int
    anon_vma: int | None = None

    @property
    def pages(self) -> int:
        """``vma_pages()``."""
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def prot(self) -> str:
        """``rw-p``: the permissions column of /proc/PID/maps."""
        f = self.vm_flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + \
            ("x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")

    def vmflags(self) -> str:
        """The ``VmFlags:`` line of /proc/PID/smaps (``rd wr mr mw me ac``)."""
        return " ".join(n for bit, n in _VMFLAG_NAMES if self.vm_flags & bit)

    def __str__(self) -> str:
        return f"{self.vm_start:x}-{self.vm_end:x} {self.prot()}"


def _mergeable(a: VmAreaStruct, b: VmAreaStruct) -> bool:
    """Can ``a`` (below) and ``b`` (just above) become one VMA? ``is_mergeable_vma()`` and
    ``can_vma_merge_after()`` (mm/vma.c): adjacent, same flags, contiguous pgoff, compatible
    anon_vma."""
    return (a.vm_end == b.vm_start and a.vm_flags == b.vm_flags
            and a.vm_pgoff + a.pages == b.vm_pgoff
            and (a.anon_vma is None or b.anon_vma is None or a.anon_vma == b.anon_vma))


class PgTable:
    """One page-table page: 512 entries, of which only the used ones are stored. Upper levels
    hold the next table; the last level holds PTE values (x86 format: pfn << 12 | flags)."""

    __slots__ = ("pfn", "entries")

    def __init__(self, pfn: int):
        self.pfn = pfn
        self.entries: dict = {}


# -- the system: allocator, commit accounting, tasks ------------------------------------------

class System:
    """What the processes share: one zone of RAM with its page allocator, the commit
    accounting (:class:`~kmmlib.userspace.overcommit.VmCommit`), the task list, dmesg and the
    OOM killer. ``pages`` is the RAM size in pages (or a size like ``"64M"``).

    Page 0 of the zone is reserved at boot as the shared zero page (in the kernel,
    ``empty_zero_page`` lies in the kernel image, which memblock also reserves). ``watermarks``:
    True computes them as the kernel would for a zone of this size (``min_free_kbytes`` =
    4·√lowmem_kb), False leaves none (teaching zones), or a (min, low, high) tuple.
    ``init``: start with pid 1, which the OOM killer never chooses (``is_global_init()``).
    """

    def __init__(self, pages: int | str = 16384, *, overcommit_memory: int = 0,
                 overcommit_ratio: int = 50, overcommit_kbytes: int = 0,
                 total_swap_pages: int = 0, watermarks: bool | tuple = True,
                 pageblock_order: int = 3, init: bool = True, events: EventLog | None = None,
                 oom_kill_allocating_task: bool = False, panic_on_oom: bool = False):
        if isinstance(pages, str):
            from kmmlib.units import parse_size
            pages = parse_size(pages) >> PAGE_SHIFT
        if not isinstance(pages, int) or isinstance(pages, bool) or not 8 <= pages <= 1 << 24:
            raise BadRequest(f"a system needs 8 to {1 << 24} pages (64 GiB), not {pages!r}")
        self.events = events if events is not None else EventLog()
        wm = None
        if watermarks is True:
            managed = pages - 1
            kb = _wm.calculate_min_free_kbytes(_kb(managed))
            wm = _wm.setup_per_zone_wmarks([managed], [False], kb)[0]
        elif watermarks:
            wm = tuple(watermarks)
        self.zone = Zone(pages, name="Normal", pageblock_order=min(pageblock_order, 10),
                         reserved=[(0, 1)], watermarks=wm, events=self.events, comm="kmm",
                         boot=False)
        # The first pageblocks are Unmovable, as early boot allocations leave them in a real
        # kernel (through migratetype fallback, which this page allocator does not model yet):
        # page tables (GFP_KERNEL) come from there, user pages (movable) from the rest.
        self.unmovable_pages = max(self.zone.pageblock_nr_pages,
                                   1 << (min(256, pages // 4).bit_length() - 1))
        for pfn in range(0, self.unmovable_pages, self.zone.pageblock_nr_pages):
            self.zone.set_pageblock_migratetype(pfn, "Unmovable")
        self.zone.memblock_free_all()
        self.zero_pfn = 0                        # my_zero_pfn(): the shared zero page
        self.vm = VmCommit(self.zone.managed_pages, total_swap_pages,
                           overcommit_memory=overcommit_memory,
                           overcommit_ratio=overcommit_ratio,
                           overcommit_kbytes=overcommit_kbytes,
                           free_pages=self.zone.nr_free_pages, events=self.events)
        self.oom_kill_allocating_task = oom_kill_allocating_task
        self.panic_on_oom = panic_on_oom
        self.tasks: dict[int, TaskStruct] = {}   # for_each_process() order: creation order
        self.dead: list[TaskStruct] = []
        self.dmesg: list[str] = []
        self.oom_kills = 0
        self.last_oom: tuple[list[_oom.OomTask], _oom.OomReport] | None = None
        self._next_pid = 1
        self._next_anon_vma = 1
        if init:
            self.spawn("init", uid=0)

    # -- tasks ---------------------------------------------------------------------------
    def spawn(self, comm: str, *, uid: int = 1000, oom_score_adj: int = 0) -> TaskStruct:
        """A new process with an empty address space (``mm_alloc()`` allocates its PGD)."""
        if not -1000 <= oom_score_adj <= 1000:
            raise BadRequest(f"oom_score_adj must be in -1000..1000, not {oom_score_adj}")
        pid = self._next_pid
        self._next_pid += 1
        task = TaskStruct(self, pid, comm[:15], uid, oom_score_adj)
        self.tasks[pid] = task
        return task

    @property
    def totalram_pages(self) -> int:
        return self.zone.managed_pages

    @property
    def totalpages(self) -> int:
        """The OOM killer's ``oc->totalpages``: RAM plus swap (``constrained_alloc()``)."""
        return self.vm.totalram_pages + self.vm.total_swap_pages

    def log(self, line: str) -> None:
        self.dmesg.append(line)

    def _emit(self, kind: str, text: str, **data) -> None:
        if self.events.active:
            self.events.emit(kind, text, **data)

    # -- pages ---------------------------------------------------------------------------
    def alloc_page(self, gfp: int, current: TaskStruct) -> int | None:
        """``alloc_pages(gfp, 0)``, and when that fails for an allocation that may invoke the
        OOM killer, ``__alloc_pages_may_oom()`` → ``out_of_memory()`` and try again. Returns
        None if the allocating task itself was chosen (it is dying)."""
        while True:
            pfn = self.zone.alloc_pages(gfp, 0)
            if pfn is not None:
                return pfn
            victim = self.out_of_memory(gfp, 0, current)
            if victim is None or victim is current:
                return None

    def free_page(self, pfn: int) -> None:
        self.zone.free(pfn, 0)

    # -- the OOM killer -------------------------------------------------------------------
    def oom_tasks(self) -> list[_oom.OomTask]:
        """Every live process as the OOM killer sees it (``dump_tasks()`` columns)."""
        return [t.oom_view() for t in self.tasks.values()]

    def out_of_memory(self, gfp: int, order: int, current: TaskStruct) -> TaskStruct | None:
        """``out_of_memory()`` (mm/oom_kill.c): pick a victim with ``oom_badness()``, log the
        kernel's report to dmesg, kill it and free its memory. Returns the victim."""
        # A task still building its mm (its PGD) is not in the list and has no view yet.
        view = current.oom_view() if hasattr(current, "mm") else None
        tasks = self.oom_tasks()
        report = _oom.out_of_memory(tasks, self.totalpages, current=view,
                                    gfp=gfp, order=order,
                                    oom_kill_allocating_task=self.oom_kill_allocating_task,
                                    panic_on_oom=self.panic_on_oom)
        self.dmesg.extend(report.lines)
        self.last_oom = (tasks, report)          # what the killer saw, for explaining it
        if report.victim is None:
            self._emit("oom", report.lines[-1])
            raise KmmError(report.lines[-1])
        victim = self.tasks[report.victim.pid]
        self.oom_kills += 1
        self._emit("oom", report.kill_line, victim=victim.pid, points=report.points)
        victim.kill(f"killed by the OOM killer: {report.kill_line}")
        self.dmesg.append(report.reaper_line)
        return victim

    # -- /proc/meminfo -------------------------------------------------------------------
    def meminfo(self) -> dict[str, int]:
        """The /proc/meminfo lines this model keeps, in kB."""
        anon = sum(t.mm.rss[MM_ANONPAGES] for t in self.tasks.values())
        mlocked = sum(t.mm.mlocked_pages() for t in self.tasks.values())
        pgt = sum(t.mm.pgtables_bytes for t in self.tasks.values()) >> 10
        return {"MemTotal": _kb(self.zone.managed_pages), "MemFree": _kb(self.zone.nr_free_pages),
                "AnonPages": _kb(anon), "Mlocked": _kb(mlocked), "PageTables": pgt,
                "CommitLimit": _kb(self.vm.commit_limit),
                "Committed_AS": _kb(max(self.vm.committed_as, 0))}

    def render_meminfo(self) -> str:
        from kmmlib.procfs.meminfo import format_meminfo_line

        return "\n".join(format_meminfo_line(k, v) for k, v in self.meminfo().items())

    def ps(self) -> str:
        """A ``ps -o pid,comm,vsz,rss`` of the live processes (kB), plus the OOM score."""
        lines = ["    PID COMMAND            VSZ      RSS  OOM_SCORE"]
        for t in self.tasks.values():
            score = _oom.oom_score(t.oom_view(), self.totalpages)
            lines.append(f"{t.pid:7d} {t.comm:<15} {_kb(t.mm.total_vm):8d} "
                         f"{_kb(t.mm.get_mm_rss()):8d}  {score:9d}")
        return "\n".join(lines)

    def check(self) -> None:
        """Invariants, for tests: Committed_AS is the sum of every accounted VMA and break;
        each process's RSS counts exactly the pages its page table maps; nothing leaks."""
        committed = 0
        mapped = 0
        for t in self.tasks.values():
            t.mm.check()
            committed += sum(v.pages for v in t.mm.vmas if v.vm_flags & VM_ACCOUNT)
            mapped += t.mm.get_mm_rss() + (t.mm.pgtables_bytes >> PAGE_SHIFT) + 1
        if committed != self.vm.committed_as:
            raise AssertionError(f"Committed_AS {self.vm.committed_as} != accounted VMAs "
                                 f"{committed}")
        used = self.zone.managed_pages - self.zone.nr_free_pages
        if used != mapped:
            raise AssertionError(f"{used} pages allocated but {mapped} owned by processes")


@dataclass
class TaskStruct:
    """``struct task_struct``, the little the memory model needs: pid, comm, uid,
    ``oom_score_adj`` (in ``signal_struct``), the ``mm`` and the minor-fault count."""

    system: System
    pid: int
    comm: str
    uid: int = 1000
    oom_score_adj: int = 0
    mm: MmStruct = field(init=False)
    alive: bool = True
    exit_reason: str = ""
    min_flt: int = 0

    def __post_init__(self):
        self.mm = MmStruct(self)

    def oom_view(self) -> _oom.OomTask:
        mm = self.mm
        return _oom.OomTask(pid=self.pid, comm=self.comm, uid=self.uid, total_vm=mm.total_vm,
                            rss_anon=mm.rss[MM_ANONPAGES], rss_file=mm.rss[MM_FILEPAGES],
                            rss_shmem=mm.rss[MM_SHMEMPAGES], swapents=mm.rss[MM_SWAPENTS],
                            pgtables_bytes=mm.pgtables_bytes, oom_score_adj=self.oom_score_adj,
                            init=self.pid == 1)

    def kill(self, reason: str) -> None:
        """SIGKILL: the process exits and ``exit_mmap()`` gives back all its memory."""
        if not self.alive:
            return
        self.mm.exit_mmap()
        self.alive = False
        self.exit_reason = reason
        sysm = self.system
        sysm.tasks.pop(self.pid, None)
        sysm.dead.append(self)

    def __repr__(self) -> str:
        state = "" if self.alive else ", dead"
        return f"TaskStruct(pid={self.pid}, comm={self.comm!r}{state})"


# -- mm_struct --------------------------------------------------------------------------------

class MmStruct:
    """``struct mm_struct``: the VMAs, the page table (``pgd``), the break, the counters.

    Counters as /proc/PID/status prints them: ``total_vm`` (VmSize), ``locked_vm`` (VmLck),
    ``data_vm`` (VmData), ``rss[MM_ANONPAGES]`` (RssAnon), ``pgtables_bytes`` (VmPTE).
    """

    def __init__(self, task: TaskStruct):
        self.task = task
        self.system = task.system
        self.vmas: list[VmAreaStruct] = []
        self.rss = [0, 0, 0, 0]                 # mm->rss_stat
        self.total_vm = self.locked_vm = self.data_vm = self.exec_vm = self.stack_vm = 0
        self.hiwater_rss = self.hiwater_vm = 0
        self.nr_ptes = self.nr_pmds = self.nr_puds = 0
        self.start_brk = self.brk = START_BRK
        self.mmap_base = MMAP_BASE
        self.tlb: dict[int, bool] = {}          # virtual page → writable translation cached
        self.errno = ""                         # the last refusal (ENOMEM), for display
        self.pgd: PgTable | None = None
        pfn = self.system.alloc_page(GFP_PGTABLE_USER, task)   # pgd_alloc()
        if pfn is None:
            raise KmmError("fork: Cannot allocate memory (no page for the PGD)")
        self._table_page(pfn)
        self.pgd = PgTable(pfn)

    # -- small helpers ---------------------------------------------------------------------
    @property
    def events(self) -> EventLog:
        return self.system.events

    def _emit(self, kind: str, text: str, **data) -> None:
        log = self.system.events
        if log.active:
            log.emit(kind, text, pid=self.task.pid, **data)

    def _alive(self) -> None:
        if not self.task.alive:
            raise ProcessKilled(f"process {self.task.pid} ({self.task.comm}) is dead: "
                                f"{self.task.exit_reason}")

    @property
    def pgtables_bytes(self) -> int:
        """``mm_pgtables_bytes()``: the PUD, PMD and PTE table pages (not the PGD)."""
        return (self.nr_ptes + self.nr_pmds + self.nr_puds) * PAGE_SIZE

    def get_mm_rss(self) -> int:
        """``get_mm_rss()``: file + anon + shmem pages mapped (not swap)."""
        return self.rss[MM_FILEPAGES] + self.rss[MM_ANONPAGES] + self.rss[MM_SHMEMPAGES]

    def _add_rss(self, member: int, n: int) -> None:
        self.rss[member] += n
        rss = self.get_mm_rss()
        if rss > self.hiwater_rss:
            self.hiwater_rss = rss

    def find_vma(self, addr: int) -> VmAreaStruct | None:
        """``vma_lookup()``: the VMA that contains addr, or None."""
        i = bisect.bisect_right(self._starts(), addr) - 1
        if i >= 0 and self.vmas[i].vm_end > addr:
            return self.vmas[i]
        return None

    def _starts(self) -> list[int]:
        return [v.vm_start for v in self.vmas]

    def _overlapping(self, start: int, end: int) -> list[VmAreaStruct]:
        return [v for v in self.vmas if v.vm_start < end and v.vm_end > start]

    def _insert(self, vma: VmAreaStruct) -> None:
        self.vmas.insert(bisect.bisect_left(self._starts(), vma.vm_start), vma)

    def _vm_stat_account(self, flags: int, npages: int) -> None:
        """``vm_stat_account()`` (mm/mmap.c): total_vm and the exec/stack/data split."""
        self.total_vm += npages
        if (flags & (VM_EXEC | VM_WRITE | VM_GROWSDOWN)) == VM_EXEC:
            self.exec_vm += npages
        elif flags & VM_GROWSDOWN:
            self.stack_vm += npages
        elif (flags & (VM_WRITE | VM_SHARED | VM_GROWSDOWN)) == VM_WRITE:
            self.data_vm += npages
        if self.total_vm > self.hiwater_vm:
            self.hiwater_vm = self.total_vm

    def _check_range(self, call: str, addr: int, length: int) -> tuple[int, int]:
        if not isinstance(addr, int) or not isinstance(length, int):
            raise BadRequest(f"{call}: EINVAL: address and length are integers")
        if addr & (PAGE_SIZE - 1):
            raise BadRequest(f"{call}: EINVAL: address {addr:#x} is not page aligned")
        if length < 0 or addr < 0 or addr + page_align(length) > TASK_SIZE:
            raise BadRequest(f"{call}: EINVAL: [{addr:#x}, +{length:#x}) is not a user range")
        return addr, addr + page_align(length)

    def _require_mapped(self, call: str, start: int, end: int) -> None:
        covered = start
        for v in self._overlapping(start, end):
            if v.vm_start > covered:
                break
            covered = v.vm_end
        if covered < end:
            raise BadRequest(f"{call}: ENOMEM: {covered:#x} in [{start:#x}, {end:#x}) is not "
                             "mapped")

    # -- page-table pages -------------------------------------------------------------------
    def _table_page(self, pfn: int) -> None:
        mm = self.system.zone.mem_map
        mm.page_type[mm.index(pfn)] = _pf.PGTY_table << 24       # __SetPageTable()

    def _free_table(self, table: PgTable) -> None:
        mm = self.system.zone.mem_map
        mm.page_type[mm.index(table.pfn)] = 0xFFFFFFFF           # pagetable_dtor()
        self.system.free_page(table.pfn)

    def _alloc_table(self, level: str) -> PgTable | None:
        """``__pud_alloc()`` / ``__pmd_alloc()`` / ``__pte_alloc()``: a zeroed page from the
        page allocator; ``mm_inc_nr_puds/pmds/ptes()`` count it into VmPTE."""
        pfn = self.system.alloc_page(GFP_PGTABLE_USER, self.task)
        if pfn is None:
            return None
        self._table_page(pfn)
        if level == "PUD":
            self.nr_puds += 1
        elif level == "PMD":
            self.nr_pmds += 1
        else:
            self.nr_ptes += 1
        self._emit("pgtable", f"  {level} table allocated: pfn {pfn} (VmPTE "
                   f"{self.pgtables_bytes >> 10} kB)", level=level, pfn=pfn)
        return PgTable(pfn)

    def walk(self, addr: int) -> tuple[list[tuple[str, int, PgTable | None]], int]:
        """The MMU's walk: ``[(level, index, table)…]`` down to the last table that exists,
        and the PTE value (0 when the walk stopped early or the entry is empty)."""
        idx = pt_index(addr)
        path: list[tuple[str, int, PgTable | None]] = []
        table = self.pgd
        for (name, _), i in zip(LEVELS, idx[:4], strict=True):
            path.append((name, i, table))
            entry = table.entries.get(i) if table is not None else None
            if name == "PTE":
                return path, entry or 0
            if entry is None:
                return path, 0
            table = entry
        return path, 0  # pragma: no cover - the loop always returns at PTE

    def _pte_table(self, addr: int, alloc: bool) -> PgTable | None:
        """The PTE table covering addr, allocating the missing levels when ``alloc``
        (``__handle_mm_fault()``: pud_alloc, pmd_alloc; then ``do_anonymous_page()``:
        pte_alloc). None on OOM."""
        idx = pt_index(addr)
        table = self.pgd
        for (name, _), i in zip(LEVELS[1:], idx[:3], strict=True):
            nxt = table.entries.get(i)
            if nxt is None:
                if not alloc:
                    return None
                nxt = self._alloc_table(name)
                if nxt is None or not self.task.alive:
                    return None
                table.entries[i] = nxt
            table = nxt
        return table

    def follow_pte(self, addr: int) -> int:
        """The PTE value for addr (0 if none)."""
        table = self._pte_table(addr, alloc=False)
        return table.entries.get(pt_index(addr)[3], 0) if table is not None else 0

    def _iter_ptes(self, start: int, end: int) -> Iterator[tuple[int, PgTable, int]]:
        """(addr, pte table, index) of every non-empty PTE in [start, end), ascending."""
        for gi, pud in sorted(self.pgd.entries.items()):
            for ui, pmd in sorted(pud.entries.items()):
                for mi, pte in sorted(pmd.entries.items()):
                    base = (gi << PGDIR_SHIFT) | (ui << PUD_SHIFT) | (mi << PMD_SHIFT)
                    if base + (1 << PMD_SHIFT) <= start or base >= end:
                        continue
                    for ti in sorted(pte.entries):
                        a = base | (ti << PAGE_SHIFT)
                        if start <= a < end:
                            yield a, pte, ti

    # -- anonymous pages -------------------------------------------------------------------
    def _map_anon_page(self, vma: VmAreaStruct, addr: int, pfn: int) -> int:
        """``folio_add_new_anon_rmap()`` + ``mk_pte()``: the page is now anon, mapped once,
        at index ``linear_page_index()``; returns the PTE (writable and dirty for a write)."""
        m = self.system.zone.mem_map
        i = m.index(pfn)
        m.mapcount[i] = 0
        m.mapping[i] = (0xFFFF888000000000 + vma.anon_vma * 0x100) | _pf.FOLIO_MAPPING_ANON
        m.pgoff[i] = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
        m.flags[i] |= (1 << _pf.PG_uptodate) | (1 << _pf.PG_swapbacked)
        self._add_rss(MM_ANONPAGES, 1)
        return self._mk_pte(pfn, vma.vm_flags, dirty=True)

    def _mk_pte(self, pfn: int, vm_flags: int, *, dirty: bool, special: bool = False) -> int:
        """``mk_pte(page, vma->vm_page_prot)``, then ``pte_mkwrite(pte_mkdirty())`` for a
        written page of a writable VMA. Private mappings start read-only (PAGE_COPY)."""
        if not vm_flags & VM_ACCESS_FLAGS:
            pte = _PAGE_PROTNONE | _PAGE_ACCESSED                  # PAGE_NONE
        else:
            pte = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
        if not vm_flags & VM_EXEC:
            pte |= _PAGE_NX
        if special:
            pte |= _PAGE_SPECIAL
        elif dirty and vm_flags & VM_WRITE:
            pte |= _PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY
        return pte | (pfn << PAGE_SHIFT)

    def _zap_pte(self, table: PgTable, ti: int) -> None:
        """``zap_present_ptes()``: clear the entry; a real page loses its mapping and its
        reference and goes back to the allocator; the zero page is just forgotten."""
        pte = table.entries.pop(ti)
        pfn = (pte & _PTE_PFN_MASK) >> PAGE_SHIFT
        if pte & _PAGE_SPECIAL:
            return
        m = self.system.zone.mem_map
        i = m.index(pfn)
        m.mapcount[i] = -1
        m.mapping[i] = 0
        m.flags[i] &= ~((1 << _pf.PG_uptodate) | (1 << _pf.PG_swapbacked))
        self.rss[MM_ANONPAGES] -= 1
        self.system.free_page(pfn)

    def _zap_range(self, start: int, end: int) -> int:
        """``zap_page_range_single()``: unmap every page in [start, end). Page tables stay."""
        n = 0
        for a, table, ti in list(self._iter_ptes(start, end)):
            self._zap_pte(table, ti)
            self.tlb.pop(a >> PAGE_SHIFT, None)
            n += 1
        for vpn in [v for v in self.tlb if start >> PAGE_SHIFT <= v < end >> PAGE_SHIFT]:
            del self.tlb[vpn]                  # flush_tlb_range()
        return n

    def _free_pgtables(self) -> None:
        """``free_pgtables()``: free each table whose whole span no VMA touches any more."""
        def covered(lo: int, size: int) -> bool:
            return bool(self._overlapping(lo, lo + size))

        for gi in list(self.pgd.entries):
            pud = self.pgd.entries[gi]
            gbase = gi << PGDIR_SHIFT
            for ui in list(pud.entries):
                pmd = pud.entries[ui]
                ubase = gbase | (ui << PUD_SHIFT)
                for mi in list(pmd.entries):
                    mbase = ubase | (mi << PMD_SHIFT)
                    if not covered(mbase, 1 << PMD_SHIFT):
                        pte = pmd.entries.pop(mi)
                        assert not pte.entries, "free_pgtables on a table still in use"
                        self._free_table(pte)
                        self.nr_ptes -= 1
                if not pmd.entries and not covered(ubase, 1 << PUD_SHIFT):
                    self._free_table(pud.entries.pop(ui))
                    self.nr_pmds -= 1
            if not pud.entries and not covered(gbase, 1 << PGDIR_SHIFT):
                self._free_table(self.pgd.entries.pop(gi))
                self.nr_puds -= 1

    # -- the fault handler -------------------------------------------------------------------
    def handle_mm_fault(self, vma: VmAreaStruct, addr: int, write: bool) -> str:
        """``handle_mm_fault()`` for an anonymous private VMA (mm/memory.c): allocate missing
        tables, then ``do_anonymous_page()`` (empty PTE) or ``do_wp_page()`` (a write to the
        read-only zero page). Returns what it did; ``"oom"`` when no page could be had."""
        addr &= PAGE_MASK
        table = self._pte_table(addr, alloc=True)
        if table is None:
            return "oom"
        ti = pt_index(addr)[3]
        pte = table.entries.get(ti, 0)
        zero = self.system.zero_pfn
        if pte and not (pte & _PAGE_SPECIAL and write):
            return "present"                     # someone else (populate) was first
        if not write:
            # do_anonymous_page(): "Use the zero-page for reads" — no allocation, no RSS.
            table.entries[ti] = self._mk_pte(zero, vma.vm_flags, dirty=False, special=True)
            self._emit("fault", f"  do_anonymous_page: read of a never-written page → map the "
                       f"shared zero page (pfn {zero}) read-only; RSS unchanged",
                       step=6, what="zero page")
            return "zero page"
        if vma.anon_vma is None:                 # vmf_anon_prepare() → anon_vma_prepare()
            vma.anon_vma = self.system._next_anon_vma
            self.system._next_anon_vma += 1
        pfn = self.system.alloc_page(GFP_ANON_FOLIO, self.task)
        if pfn is None or not self.task.alive:
            return "oom"
        new = self._map_anon_page(vma, addr, pfn)
        what = "do_wp_page: copy-on-write of the zero page" if pte else "do_anonymous_page"
        table.entries[ti] = new
        self.tlb.pop(addr >> PAGE_SHIFT, None)
        self._emit("fault", f"  {what}: alloc_pages({format_gfp(GFP_ANON_FOLIO)}) → pfn {pfn}, "
                   f"zeroed; set_pte_at(PTE[{ti}] = {new:#018x}); RssAnon "
                   f"{_kb(self.rss[MM_ANONPAGES] - 1)} → {_kb(self.rss[MM_ANONPAGES])} kB",
                   step=6, what="new page", pfn=pfn, pte=new)
        return "new page"

    def _access_error(self, vma: VmAreaStruct | None, write: bool) -> str | None:
        """``access_error()`` (arch/x86/mm/fault.c): why this access may not be served."""
        if vma is None:
            return "no VMA covers the address"
        if write and not vma.vm_flags & VM_WRITE:
            return f"a write to a VMA without PROT_WRITE ({vma.prot()})"
        if not write and not vma.vm_flags & (VM_READ | VM_EXEC | VM_WRITE):
            return f"a read of a PROT_NONE VMA ({vma.prot()})"
        return None

    def segfault(self, addr: int, write: bool, present: bool, why: str) -> SegmentationFault:
        """``show_signal_msg()`` then SIGSEGV: the dmesg line, and the process dies."""
        code = X86_PF_USER | (X86_PF_WRITE if write else 0) | (X86_PF_PROT if present else 0)
        line = f"{self.task.comm}[{self.task.pid}]: segfault at {addr:x} error {code}"
        self.system.log(line)
        self._emit("segv", f"SIGSEGV: {why} — {line}", addr=addr)
        self.task.kill(f"Segmentation fault ({why})")
        return SegmentationFault(f"Segmentation fault: {why}\n  dmesg: {line}")

    def access(self, addr: int, write: bool = True) -> FaultPath:
        """Start a load (``write=False``) or store at addr: a :class:`FaultPath` to step."""
        self._alive()
        if not isinstance(addr, int) or not 0 <= addr < 1 << 64:
            raise BadRequest(f"access: {addr!r} is not an address")
        return FaultPath(self, addr, bool(write))

    def touch(self, addr: int, write: bool = True) -> str:
        """A load or store at addr, all eight steps at once. Returns how it ended:
        ``"tlb hit"``, ``"hit"`` (the walk found the PTE), ``"new page"``, ``"zero page"``
        or ``"cow"``. Raises :class:`SegmentationFault` or :class:`ProcessKilled`."""
        fp = self.access(addr, write)
        while not fp.done:
            fp.step()
        return fp.outcome

    def touch_range(self, addr: int, length: int, write: bool = True) -> int:
        """Touch one byte in every page of [addr, addr+length), as a loop writing one byte per
        page (``memset`` does it for every byte). Returns how many pages faulted."""
        if not isinstance(addr, int) or not isinstance(length, int) or length < 0:
            raise BadRequest(f"touch_range: need an address and a length, not {addr!r}, "
                             f"{length!r}")
        faults = self.task.min_flt
        for a in range(addr & PAGE_MASK, addr + length, PAGE_SIZE):
            self.touch(a, write)
        return self.task.min_flt - faults

    def populate(self, start: int, end: int, write: bool | None = None) -> int:
        """Fault in every page now. ``populate_vma_page_range()`` (mm/gup.c, for MAP_POPULATE
        and mlock) uses a write fault for private writable VMAs, to break COW now; madvise's
        MADV_POPULATE_READ / _WRITE (``faultin_page_range()``) pass ``write`` themselves, so a
        read populate of untouched anonymous memory maps the shared zero page. Returns the
        number of pages faulted in; stops at OOM."""
        n = 0
        for vma in self._overlapping(start, end):
            wr = (vma.vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE if write is None else write
            if not vma.vm_flags & VM_ACCESS_FLAGS:
                continue                           # PROT_NONE: nothing to populate
            for a in range(max(start, vma.vm_start), min(end, vma.vm_end), PAGE_SIZE):
                pte = self.follow_pte(a)
                if pte and not (wr and pte & _PAGE_SPECIAL):
                    continue
                got = self.handle_mm_fault(vma, a, wr)
                if got == "oom" or not self.task.alive:
                    return n
                n += 1
        if n:
            self._emit("populate", f"populate [{start:#x}, {end:#x}): {n} page(s) faulted in "
                       f"now; RssAnon {_kb(self.rss[MM_ANONPAGES])} kB", pages=n)
        return n

    # -- mmap ---------------------------------------------------------------------------------
    def get_unmapped_area(self, length: int, hint: int = 0) -> int | None:
        """``arch_get_unmapped_area_topdown()`` → ``vm_unmapped_area()``: the hint if that
        range is free, else the highest gap below ``mmap_base`` that fits."""
        if hint:
            hint = page_align(hint)
            if hint >= MMAP_MIN_ADDR and hint + length <= TASK_SIZE and \
                    not self._overlapping(hint, hint + length):
                return hint
        top = self.mmap_base
        for v in reversed(self.vmas):
            if v.vm_start >= top:
                continue
            if v.vm_end <= top - length:
                return top - length
            top = v.vm_start
        if top - length >= MMAP_MIN_ADDR:
            return top - length
        return None

    def mmap(self, addr: int = 0, length: int = PAGE_SIZE, prot: int = PROT_READ | PROT_WRITE,
             flags: int = MAP_PRIVATE | MAP_ANONYMOUS) -> int | None:
        """``mmap(addr, length, prot, flags, -1, 0)`` → ``do_mmap()`` → ``mmap_region()``
        (mm/mmap.c): find room, promise the memory (private writable mappings are charged
        to Committed_AS unless MAP_NORESERVE), make or extend a VMA. No page is allocated
        unless MAP_POPULATE or MAP_LOCKED. Returns the address, or None (ENOMEM)."""
        self._alive()
        if not isinstance(length, int) or length <= 0:
            raise BadRequest(f"mmap: EINVAL: length must be a positive integer, not {length!r}")
        if flags & MAP_SHARED or not flags & MAP_PRIVATE:
            raise BadRequest("mmap: only MAP_PRIVATE|MAP_ANONYMOUS is modelled (shared and "
                             "file mappings are not)")
        if not flags & MAP_ANONYMOUS:
            raise BadRequest("mmap: file mappings are not modelled: pass MAP_ANONYMOUS")
        if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
            raise BadRequest(f"mmap: EINVAL: unknown prot bits {prot:#x}")
        length = page_align(length)
        if length > TASK_SIZE:
            return self._enomem("mmap", f"length {length:#x} is more than the address space")
        pages = length >> PAGE_SHIFT
        vm_flags = calc_vm_prot_bits(prot) | VM_MAY
        if flags & MAP_NORESERVE and self.system.vm.overcommit_memory != OVERCOMMIT_NEVER:
            vm_flags |= VM_NORESERVE            # "We honor MAP_NORESERVE if allowed to overcommit"
        if flags & MAP_LOCKED:
            vm_flags |= VM_LOCKED
        if flags & MAP_GROWSDOWN:
            vm_flags |= VM_GROWSDOWN
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            start, end = self._check_range("mmap", addr, length)
            if start < MMAP_MIN_ADDR:
                raise BadRequest(f"mmap: EPERM: {start:#x} is below vm.mmap_min_addr "
                                 f"({MMAP_MIN_ADDR:#x})")
            if flags & MAP_FIXED_NOREPLACE and self._overlapping(start, end):
                raise BadRequest(f"mmap: EEXIST: MAP_FIXED_NOREPLACE and [{start:#x}, {end:#x}) "
                                 "is already mapped")
        else:
            found = self.get_unmapped_area(length, addr)
            if found is None:
                return self._enomem("mmap", "no gap in the address space is big enough")
            start, end = found, found + length
        # mmap_region(): the pages of a MAP_FIXED overlap that were already charged move over.
        old = self._overlapping(start, end)
        already = sum((min(v.vm_end, end) - max(v.vm_start, start)) >> PAGE_SHIFT
                      for v in old if v.vm_flags & VM_ACCOUNT)
        if (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE:   # accountable
            charge = pages - already
            if charge > 0 and not self._enough(charge):
                return self._enomem("mmap", "__vm_enough_memory() refused the promise")
            vm_flags |= VM_ACCOUNT
            already = 0                          # transferred to the new VMA
        if old:
            self._unmap(start, end, unaccount=already)
        vma = VmAreaStruct(start, end, vm_flags, start >> PAGE_SHIFT)
        self._insert(vma)
        vma = self._merge_around(vma)
        self._vm_stat_account(vm_flags, pages)
        self._emit("mmap", f"mmap({length:#x}) → {start:#x}: VMA {vma} ({vma.pages} pages); "
                   f"VSZ {_kb(self.total_vm)} kB, RSS {_kb(self.get_mm_rss())} kB, "
                   f"Committed_AS {_kb(self.system.vm.committed_as)} kB", addr=start,
                   length=length)
        if vm_flags & VM_LOCKED:
            self.locked_vm += pages
        if flags & MAP_POPULATE or vm_flags & VM_LOCKED:
            self.populate(start, end)
        return start

    def _enough(self, pages: int) -> bool:
        """``security_vm_enough_memory_mm()`` → ``__vm_enough_memory()``."""
        return bool(self.system.vm.vm_enough_memory(
            pages, total_vm=self.total_vm, cap_sys_admin=self.task.uid == 0,
            pid=self.task.pid, comm=self.task.comm))

    def _enomem(self, call: str, why: str) -> None:
        self._emit("enomem", f"{call}: ENOMEM — {why}", call=call)
        self.errno = "ENOMEM"
        return None

    def _merge_around(self, vma: VmAreaStruct) -> VmAreaStruct:
        """Merge ``vma`` with its neighbours where ``vma_merge`` would (mm/vma.c)."""
        i = self.vmas.index(vma)
        if i + 1 < len(self.vmas) and _mergeable(vma, self.vmas[i + 1]):
            nxt = self.vmas.pop(i + 1)
            vma.vm_end = nxt.vm_end
            vma.anon_vma = vma.anon_vma or nxt.anon_vma
        if i > 0 and _mergeable(self.vmas[i - 1], vma):
            prev = self.vmas[i - 1]
            prev.vm_end = vma.vm_end
            prev.anon_vma = prev.anon_vma or vma.anon_vma
            self.vmas.pop(i)
            vma = prev
        return vma

    def _split(self, addr: int) -> None:
        """``split_vma()``: cut the VMA that contains addr in two at addr (both halves keep the
        anon_vma, the upper half's pgoff moves on)."""
        vma = self.find_vma(addr)
        if vma is None or vma.vm_start == addr:
            return
        upper = VmAreaStruct(addr, vma.vm_end, vma.vm_flags,
                             vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT), vma.anon_vma)
        vma.vm_end = addr
        self._insert(upper)

    def _unmap(self, start: int, end: int, unaccount: int | None = None) -> int:
        """``do_vmi_align_munmap()``: split at the ends, zap the pages, drop the VMAs, give
        back their commit (``unaccount`` pages instead when given), free unused tables."""
        self._split(start)
        self._split(end)
        gone = [v for v in self.vmas if start <= v.vm_start and v.vm_end <= end]
        freed = self._zap_range(start, end)
        acct = 0
        for v in gone:
            self.vmas.remove(v)
            self._vm_stat_account(v.vm_flags, -v.pages)
            if v.vm_flags & VM_LOCKED:
                self.locked_vm -= v.pages
            if v.vm_flags & VM_ACCOUNT:
                acct += v.pages
        self.system.vm.vm_unacct_memory(acct if unaccount is None else unaccount)
        self._free_pgtables()
        return freed

    def munmap(self, addr: int, length: int) -> int:
        """``munmap()`` (mm/vma.c ``do_vmi_munmap()``): RSS drops by the pages that were
        present, VSZ and Committed_AS by the whole range. Unmapping nothing is not an error."""
        self._alive()
        if not isinstance(length, int) or length <= 0:
            raise BadRequest(f"munmap: EINVAL: length must be positive, not {length!r}")
        start, end = self._check_range("munmap", addr, length)
        freed = self._unmap(start, end)
        self._emit("munmap", f"munmap({start:#x}, {end - start:#x}): {freed} page(s) back to "
                   f"the allocator; VSZ {_kb(self.total_vm)} kB, RSS "
                   f"{_kb(self.get_mm_rss())} kB", addr=start, freed=freed)
        return 0

    def _each_piece(self, call: str, addr: int, length: int) -> list[VmAreaStruct]:
        """The VMAs of [addr, addr+length), split so that each lies inside the range."""
        start, end = self._check_range(call, addr, length)
        self._require_mapped(call, start, end)
        self._split(start)
        self._split(end)
        return [v for v in self.vmas if start <= v.vm_start and v.vm_end <= end]

    def _remerge(self, pieces: list[VmAreaStruct]) -> None:
        for v in pieces:
            if v in self.vmas:
                self._merge_around(v)

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        """``mprotect()`` → ``mprotect_fixup()`` (mm/mprotect.c). Making a private mapping
        writable charges it (once); making a never-written anonymous mapping read-only gives
        the charge back (6.x). Present PTEs change at once; RSS does not."""
        self._alive()
        if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
            raise BadRequest(f"mprotect: EINVAL: unknown prot bits {prot:#x}")
        if length == 0:
            return 0
        pieces = self._each_piece("mprotect", addr, length)
        newprot = calc_vm_prot_bits(prot)
        charge = sum(v.pages for v in pieces if newprot & VM_WRITE and not v.vm_flags &
                     (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE))
        if charge and not self._enough(charge):
            self._remerge(pieces)
            self._enomem("mprotect", "__vm_enough_memory() refused to make it writable")
            return -ENOMEM
        for v in pieces:
            old = v.vm_flags
            new = (old & ~VM_ACCESS_FLAGS) | newprot
            if new & VM_WRITE:
                if not old & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
                    new |= VM_ACCOUNT
            elif old & VM_ACCOUNT and v.anon_vma is None:
                new &= ~VM_ACCOUNT
                self.system.vm.vm_unacct_memory(v.pages)
            self._vm_stat_account(old, -v.pages)
            self._vm_stat_account(new, v.pages)
            v.vm_flags = new
            self._change_protection(v)
        self._remerge(pieces)
        self._emit("mprotect", f"mprotect({addr:#x}, {length:#x}) → "
                   f"{', '.join(str(v) for v in pieces)}", addr=addr)
        return 0

    def _change_protection(self, vma: VmAreaStruct) -> None:
        """``change_protection()``: rewrite the present PTEs of the VMA. An exclusive anon page
        may become writable at once (``can_change_pte_writable()``); the zero page never."""
        for a, table, ti in self._iter_ptes(vma.vm_start, vma.vm_end):
            pte = table.entries[ti]
            pfn = (pte & _PTE_PFN_MASK) >> PAGE_SHIFT
            special = bool(pte & _PAGE_SPECIAL)
            table.entries[ti] = self._mk_pte(pfn, vma.vm_flags, dirty=not special,
                                             special=special)
            self.tlb.pop(a >> PAGE_SHIFT, None)

    def mlock(self, addr: int, length: int) -> int:
        """``mlock()`` (mm/mlock.c): VM_LOCKED on the range, then fault every page in now
        (``__mm_populate()``); locked pages are never reclaimed and MADV_DONTNEED refuses them.
        (No RLIMIT_MEMLOCK.) Returns 0, or -ENOMEM when the range holds a PROT_NONE VMA:
        ``populate_vma_page_range()`` cannot fault it in, ``__mm_populate()`` stops there and
        ``do_mlock()`` reports ENOMEM (``__mlock_posix_error_return()``) — with VM_LOCKED
        already set on the whole range, and the VMAs after it not faulted in."""
        self._alive()
        pieces = self._each_piece("mlock", addr, length)
        for v in pieces:
            if not v.vm_flags & VM_LOCKED:
                v.vm_flags |= VM_LOCKED
                self.locked_vm += v.pages
        self._remerge(pieces)
        start = addr & PAGE_MASK
        end = start + page_align(length)
        for v in self._overlapping(start, end):
            if not v.vm_flags & VM_ACCESS_FLAGS:
                self._emit("mlock", f"mlock({addr:#x}, {length:#x}): ENOMEM: {v} is PROT_NONE "
                           f"and cannot be faulted in; VmLck {_kb(self.locked_vm)} kB all the "
                           "same", addr=addr)
                return -ENOMEM
            self.populate(max(start, v.vm_start), min(end, v.vm_end))
        self._emit("mlock", f"mlock({addr:#x}, {length:#x}): VmLck {_kb(self.locked_vm)} kB, "
                   f"RSS {_kb(self.get_mm_rss())} kB", addr=addr)
        return 0

    def munlock(self, addr: int, length: int) -> int:
        """``munlock()``: clear VM_LOCKED; the pages stay resident."""
        self._alive()
        pieces = self._each_piece("munlock", addr, length)
        for v in pieces:
            if v.vm_flags & VM_LOCKED:
                v.vm_flags &= ~VM_LOCKED
                self.locked_vm -= v.pages
        self._remerge(pieces)
        return 0

    def mlocked_pages(self) -> int:
        """Present pages in VM_LOCKED VMAs (what /proc/meminfo's Mlocked counts)."""
        n = 0
        for v in self.vmas:
            if v.vm_flags & VM_LOCKED:
                n += sum(1 for _a, t, i in self._iter_ptes(v.vm_start, v.vm_end)
                         if not t.entries[i] & _PAGE_SPECIAL)
        return n

    def madvise(self, addr: int, length: int, advice: int) -> int:
        """``madvise()`` (mm/madvise.c). MADV_DONTNEED: unmap the pages now (RSS drops; the
        VMA, its commit and the page tables stay; the next touch gets a fresh zero-filled
        page). Refused on mlocked memory (EINVAL). MADV_POPULATE_READ/WRITE fault pages in."""
        self._alive()
        if advice not in (MADV_DONTNEED, MADV_POPULATE_READ, MADV_POPULATE_WRITE):
            raise BadRequest(f"madvise: advice {advice} is not modelled (MADV_DONTNEED = 4, "
                             "MADV_POPULATE_READ = 22, MADV_POPULATE_WRITE = 23)")
        start, end = self._check_range("madvise", addr, length)
        self._require_mapped("madvise", start, end)
        if advice == MADV_DONTNEED:
            for v in self._overlapping(start, end):
                if v.vm_flags & VM_LOCKED:
                    raise BadRequest(f"madvise: EINVAL: MADV_DONTNEED on mlocked VMA {v}")
            freed = self._zap_range(start, end)
            self._emit("madvise", f"madvise({start:#x}, {end - start:#x}, MADV_DONTNEED): "
                       f"{freed} page(s) dropped; RSS {_kb(self.get_mm_rss())} kB, VSZ "
                       f"{_kb(self.total_vm)} kB (unchanged)", addr=start, freed=freed)
            return 0
        for v in self._overlapping(start, end):
            # faultin_page_range() → check_vma_flags() (mm/gup.c): without FOLL_FORCE a write
            # needs VM_WRITE and a read VM_READ; madvise reports either refusal as EINVAL.
            if advice == MADV_POPULATE_WRITE and not v.vm_flags & VM_WRITE:
                raise BadRequest(f"madvise: EINVAL: MADV_POPULATE_WRITE on read-only VMA {v}")
            if advice == MADV_POPULATE_READ and not v.vm_flags & VM_READ:
                raise BadRequest(f"madvise: EINVAL: MADV_POPULATE_READ on unreadable VMA {v}")
        self.populate(start, end, write=advice == MADV_POPULATE_WRITE)
        return 0

    def mremap(self, old_addr: int, old_len: int, new_len: int,
               flags: int = MREMAP_MAYMOVE) -> int | None:
        """``mremap()`` (mm/mremap.c): shrink in place; grow in place when the addresses
        after are free; else, with MREMAP_MAYMOVE, move the VMA — the *page-table entries*
        move, the pages do not (realloc of a big block copies no data). Growth of an accounted
        mapping is charged. Returns the (new) address, or None (ENOMEM)."""
        self._alive()
        if flags & ~MREMAP_MAYMOVE:
            raise BadRequest("mremap: only MREMAP_MAYMOVE is modelled")
        if old_addr & (PAGE_SIZE - 1):
            raise BadRequest(f"mremap: EINVAL: {old_addr:#x} is not page aligned")
        if not isinstance(new_len, int) or new_len <= 0:
            raise BadRequest("mremap: EINVAL: new_len must be positive")
        old_len, new_len = page_align(old_len), page_align(new_len)
        vma = self.find_vma(old_addr)
        if vma is None or old_addr + old_len > vma.vm_end:
            raise BadRequest(f"mremap: EFAULT: [{old_addr:#x}, +{old_len:#x}) is not inside "
                             "one VMA")
        if new_len <= old_len:
            if new_len < old_len:
                self._unmap(old_addr + new_len, old_addr + old_len)
            return old_addr
        delta = (new_len - old_len) >> PAGE_SHIFT
        if vma.vm_flags & VM_ACCOUNT and not self._enough(delta):
            return self._enomem("mremap", "__vm_enough_memory() refused the growth")
        end = old_addr + old_len
        if end == vma.vm_end and end + (new_len - old_len) <= TASK_SIZE and \
                not self._overlapping(end, old_addr + new_len):
            vma.vm_end = old_addr + new_len                  # vma_expand()
            self._vm_stat_account(vma.vm_flags, delta)
            if vma.vm_flags & VM_LOCKED:
                self.locked_vm += delta
                self.populate(end, vma.vm_end)
            self._merge_around(vma)
            self._emit("mremap", f"mremap: grown in place to {new_len:#x} bytes at "
                       f"{old_addr:#x}", addr=old_addr)
            return old_addr
        if not flags & MREMAP_MAYMOVE:
            if vma.vm_flags & VM_ACCOUNT:
                self.system.vm.vm_unacct_memory(delta)
            return self._enomem("mremap", "no room to grow in place and no MREMAP_MAYMOVE")
        new_addr = self.get_unmapped_area(new_len)
        if new_addr is None:
            if vma.vm_flags & VM_ACCOUNT:
                self.system.vm.vm_unacct_memory(delta)
            return self._enomem("mremap", "no gap for the moved mapping")
        return self._move_vma(vma, old_addr, old_len, new_addr, new_len)

    def _move_vma(self, vma: VmAreaStruct, old_addr: int, old_len: int, new_addr: int,
                  new_len: int) -> int | None:
        """``move_vma()`` → ``move_page_tables()``: a new VMA (same flags, pgoff, anon_vma),
        the PTEs carried over, the old range unmapped without giving back its commit."""
        self._split(old_addr)
        self._split(old_addr + old_len)
        old = self.find_vma(old_addr)
        new = VmAreaStruct(new_addr, new_addr + new_len, old.vm_flags,
                           old.vm_pgoff, old.anon_vma)
        moved = []
        for a, table, ti in list(self._iter_ptes(old_addr, old_addr + old_len)):
            moved.append((a - old_addr, table.entries.pop(ti)))
            self.tlb.pop(a >> PAGE_SHIFT, None)
        self._insert(new)
        for off, pte in moved:
            table = self._pte_table(new_addr + off, alloc=True)
            if table is None:                    # pragma: no cover - needs OOM mid-move
                return self._enomem("mremap", "no page for a page table")
            table.entries[pt_index(new_addr + off)[3]] = pte
        self._vm_stat_account(new.vm_flags, new.pages)
        if new.vm_flags & VM_LOCKED:
            self.locked_vm += new.pages
        # The old VMA's pages were moved, not freed; its commit stays with the new VMA.
        self._unmap(old_addr, old_addr + old_len, unaccount=0)
        self._merge_around(new)
        if new.vm_flags & VM_LOCKED:
            self.populate(new_addr, new_addr + new_len)
        self._emit("mremap", f"mremap: moved {old_addr:#x} → {new_addr:#x} ({len(moved)} "
                   f"PTE(s) carried over, no data copied), now {new_len:#x} bytes",
                   addr=new_addr)
        return new_addr

    def brk_syscall(self, brk: int) -> int:
        """``brk()`` (mm/mmap.c): move the end of the heap. Growing charges the new pages and
        extends the ``[heap]`` VMA; shrinking unmaps. Returns the new break, or the old one
        when refused (that is how the syscall reports failure)."""
        self._alive()
        if not isinstance(brk, int):
            raise BadRequest(f"brk: {brk!r} is not an address")
        origbrk = self.brk
        if brk < self.start_brk:
            return origbrk
        newbrk, oldbrk = page_align(brk), page_align(origbrk)
        if oldbrk == newbrk:
            self.brk = brk
            return brk
        if brk <= origbrk:
            self._unmap(newbrk, oldbrk)
            self.brk = brk
            self._emit("brk", f"brk({brk:#x}): heap shrunk, RSS {_kb(self.get_mm_rss())} kB",
                       brk=brk)
            return brk
        if self._overlapping(oldbrk, newbrk + PAGE_SIZE) or newbrk > TASK_SIZE:
            self._enomem("brk", "the heap would run into another mapping")
            return origbrk
        pages = (newbrk - oldbrk) >> PAGE_SHIFT
        if not self._enough(pages):                    # do_brk_flags()
            self._enomem("brk", "__vm_enough_memory() refused the heap growth")
            return origbrk
        flags = VM_READ | VM_WRITE | VM_MAY | VM_ACCOUNT   # VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT
        vma = VmAreaStruct(oldbrk, newbrk, flags, oldbrk >> PAGE_SHIFT)
        self._insert(vma)
        vma = self._merge_around(vma)
        self._vm_stat_account(flags, pages)
        self.brk = brk
        self._emit("brk", f"brk({brk:#x}): [heap] is now {vma}; VSZ {_kb(self.total_vm)} kB, "
                   f"RSS {_kb(self.get_mm_rss())} kB", brk=brk)
        return brk

    def sbrk(self, increment: int) -> int | None:
        """glibc's ``sbrk()``: move the break by ``increment``; the old break, or None."""
        old = self.brk
        if increment == 0:
            return old
        return old if self.brk_syscall(old + increment) == old + increment else None

    # -- exit ---------------------------------------------------------------------------------
    def exit_mmap(self) -> None:
        """``exit_mmap()`` (mm/mmap.c): unmap everything and free the page tables; the PGD
        itself goes when the last reference to the mm does (``__mmdrop()`` → ``mm_free_pgd()``,
        kernel/fork.c), at once here."""
        if self.pgd is None:
            return
        for v in list(self.vmas):
            self._unmap(v.vm_start, v.vm_end)
        self._free_pgtables()
        self._free_table(self.pgd)
        self.pgd = PgTable(-1)
        self.tlb.clear()

    # -- looking at it --------------------------------------------------------------------------
    def heap_vma(self, v: VmAreaStruct) -> bool:
        """``vma_is_initial_heap()`` (include/linux/mm.h): /proc/PID/maps calls this VMA
        ``[heap]`` when it overlaps [start_brk, brk). The comparisons are strict, as in 6.18: the
        helper's first version (6.6) used ``<=`` and ``>=``, and so also named a mapping that
        only touched the heap (ending at start_brk, or starting at brk)."""
        return v.vm_start < self.brk and v.vm_end > self.start_brk

    def maps(self) -> str:
        """/proc/PID/maps in the kernel's format (``show_map_vma()``: the name, if any, is
        padded to column 73)."""
        lines = []
        for v in self.vmas:
            head = f"{v.vm_start:08x}-{v.vm_end:08x} {v.prot()} {0:08x} 00:00 0 "
            if self.heap_vma(v):
                head = head.ljust(25 + 8 * 6 - 1) + " [heap]"
            lines.append(head)
        return "\n".join(lines)

    def status(self) -> str:
        """The memory lines of /proc/PID/status (``task_mem()``, fs/proc/task_mmu.c)."""
        def row(name: str, kb: int) -> str:
            return f"{name}:\t{kb:8d} kB"

        return "\n".join([
            row("VmPeak", _kb(self.hiwater_vm)), row("VmSize", _kb(self.total_vm)),
            row("VmLck", _kb(self.locked_vm)), row("VmPin", 0),
            row("VmHWM", _kb(max(self.hiwater_rss, self.get_mm_rss()))),
            row("VmRSS", _kb(self.get_mm_rss())), row("RssAnon", _kb(self.rss[MM_ANONPAGES])),
            row("RssFile", _kb(self.rss[MM_FILEPAGES])),
            row("RssShmem", _kb(self.rss[MM_SHMEMPAGES])), row("VmData", _kb(self.data_vm)),
            row("VmStk", _kb(self.stack_vm)), row("VmExe", _kb(self.exec_vm)), row("VmLib", 0),
            row("VmPTE", self.pgtables_bytes >> 10), row("VmSwap", _kb(self.rss[MM_SWAPENTS])),
        ])

    def counters(self) -> dict[str, int]:
        """VSZ, RSS, VmPTE, VmLck in kB and the process's share of Committed_AS."""
        return {"VSZ": _kb(self.total_vm), "RSS": _kb(self.get_mm_rss()),
                "VmPTE": self.pgtables_bytes >> 10, "VmLck": _kb(self.locked_vm),
                "committed": _kb(sum(v.pages for v in self.vmas if v.vm_flags & VM_ACCOUNT))}

    def page_table_text(self, addr: int | None = None) -> str:
        """The page-table path of addr (or of every mapped page), one level a line."""
        lines = [f"CR3 → PGD pfn {self.pgd.pfn}"]
        addrs = [addr] if addr is not None else [a for a, _t, _i in
                                                  self._iter_ptes(0, TASK_SIZE)]
        for a in addrs:
            path, pte = self.walk(a)
            parts = []
            for name, i, table in path:
                if table is None:
                    break
                entry = table.entries.get(i)
                if name == "PTE":
                    parts.append(f"PTE[{i}] = {entry or 0:#018x}" if entry else f"PTE[{i}] = 0")
                elif entry is None:
                    parts.append(f"{name}[{i}] = 0")
                    break
                else:
                    parts.append(f"{name}[{i}] → pfn {entry.pfn}")
            lines.append(f"  {a:#x}: " + ", ".join(parts))
        return "\n".join(lines)

    def check(self) -> None:
        """Invariants (tests): VMAs sorted and disjoint, RSS = mapped non-zero pages, the
        table counts match the tree, total_vm = the sum of the VMAs."""
        for a, b in zip(self.vmas, self.vmas[1:], strict=False):
            assert a.vm_end <= b.vm_start, f"VMAs overlap: {a} {b}"
        assert self.total_vm == sum(v.pages for v in self.vmas), "total_vm != sum of VMAs"
        if not self.task.alive:
            return
        anon = 0
        for a, t, i in self._iter_ptes(0, TASK_SIZE):
            assert self.find_vma(a) is not None, f"PTE at {a:#x} outside every VMA"
            if not t.entries[i] & _PAGE_SPECIAL:
                anon += 1
        assert anon == self.rss[MM_ANONPAGES], f"RssAnon {self.rss[MM_ANONPAGES]} != {anon}"
        puds = len(self.pgd.entries)
        pmds = sum(len(p.entries) for p in self.pgd.entries.values())
        ptes = sum(len(m.entries) for p in self.pgd.entries.values() for m in p.entries.values())
        assert (puds, pmds, ptes) == (self.nr_puds, self.nr_pmds, self.nr_ptes), \
            "page-table counts out of step"


# -- one access, step by step -----------------------------------------------------------------

class FaultPath:
    """One load or store, as the eight steps of the fault path. ``step()`` does the next one
    and reports it as a ``fault`` event; ``done`` is set when the access has completed (or
    the process died). Plain data, so a :class:`~kmmlib.stepper.Stepper` can copy it."""

    def __init__(self, mm: MmStruct, addr: int, write: bool):
        self.mm = mm
        self.addr = addr
        self.write = write
        self.n = 0                      # steps done
        self.done = False
        self.outcome = ""
        self.error_code = 0
        self.vma: VmAreaStruct | None = None

    @property
    def kind(self) -> str:
        return "write" if self.write else "read"

    @property
    def steps_left(self) -> int:
        """How many more steps this access will take (a TLB or table hit ends early)."""
        if self.done:
            return 0
        if self.n >= 3:
            return 8 - self.n
        mm, vpn = self.mm, self.addr >> PAGE_SHIFT
        if vpn in mm.tlb and (mm.tlb[vpn] or not self.write):
            return 2 - self.n
        pte = mm.follow_pte(self.addr)
        if self._pte_ok(pte):
            return 3 - self.n
        if mm._access_error(mm.find_vma(self.addr), self.write):
            return 5 - self.n                    # SIGSEGV at step 5
        return 8 - self.n

    def _pte_ok(self, pte: int) -> bool:
        return bool(pte & _PAGE_PRESENT) and (not self.write or bool(pte & _PAGE_RW))

    def _say(self, text: str, **data) -> None:
        log = self.mm.system.events
        if log.active:
            log.emit("fault", f"{self.n}. {FAULT_STEPS[self.n - 1]}: {text}", step=self.n,
                     addr=self.addr, **data)

    def _finish(self, outcome: str) -> None:
        self.done = True
        self.outcome = outcome

    def step(self) -> None:
        if self.done:
            return
        self.mm._alive()
        self.n += 1
        getattr(self, f"_step{self.n}")()

    def _phys(self, pte: int) -> int:
        return (pte & _PTE_PFN_MASK) | (self.addr & (PAGE_SIZE - 1))

    def _step1(self) -> None:
        if self.mm.system.events.active:
            g, u, m, t, off = pt_index(self.addr)
            self._say(f"the CPU issues a {self.kind} to virtual address {self.addr:#x} = PGD "
                      f"{g} | PUD {u} | PMD {m} | PTE {t} | offset {off:#05x}")

    def _step2(self) -> None:
        vpn = self.addr >> PAGE_SHIFT
        cached = self.mm.tlb.get(vpn)
        if cached is not None and (cached or not self.write):
            self._say(f"TLB hit for page {vpn << PAGE_SHIFT:#x}: the {self.kind} completes, "
                      "no walk, no fault")
            self._finish("tlb hit")
            return
        self._say(f"TLB miss: no cached translation for page {vpn << PAGE_SHIFT:#x}"
                  + (" that allows a write" if cached is not None else "")
                  + ", so the MMU walks the page table")

    def _step3(self) -> None:
        mm = self.mm
        path, pte = mm.walk(self.addr)
        ok = self._pte_ok(pte)
        if mm.system.events.active:
            hops = [f"CR3 → PGD (pfn {mm.pgd.pfn})"]
            for name, i, table in path:
                entry = table.entries.get(i) if table is not None else None
                if name == "PTE":
                    hops.append(f"PTE[{i}] = {entry:#018x}" if entry else f"PTE[{i}] = 0")
                elif entry is None:
                    hops.append(f"{name}[{i}] = 0, stop")
                    break
                else:
                    hops.append(f"{name}[{i}] → {_NEXT_LEVEL[name]} table (pfn {entry.pfn})")
            done = (f" — present{' and writable' if self.write else ''}: physical address "
                    f"{self._phys(pte):#x}; the TLB caches it; the {self.kind} completes"
                    if ok else "")
            self._say("the MMU walks " + "; ".join(hops) + done)
        if ok:
            mm.tlb[self.addr >> PAGE_SHIFT] = bool(pte & _PAGE_RW)
            self._finish("hit")

    def _step4(self) -> None:
        pte = self.mm.follow_pte(self.addr)
        if pte & _PAGE_PRESENT:
            self.error_code = X86_PF_USER | X86_PF_WRITE | X86_PF_PROT
            what = ("the shared zero page, read-only" if pte & _PAGE_SPECIAL
                    else "read-only")
            self._say(f"the PTE is present but {what}: a write is not allowed through it")
        else:
            # A PROT_NONE entry has _PAGE_PRESENT clear: the CPU reports a non-present page
            # (no X86_PF_PROT), and access_error() finds the VMA inaccessible.
            self.error_code = X86_PF_USER | (X86_PF_WRITE if self.write else 0)
            self._say("no valid PTE: " + ("the entry is PROT_NONE" if pte else
                                          "pte_none() — this page was never touched"))

    def _step5(self) -> None:
        mm = self.mm
        code = self.error_code
        bits = "|".join(n for b, n in ((X86_PF_USER, "user"), (X86_PF_WRITE, "write"),
                                        (X86_PF_PROT, "protection")) if code & b)
        if not code & X86_PF_PROT:
            bits += "|not-present"
        vma = mm.find_vma(self.addr)
        why = mm._access_error(vma, self.write)
        where = f"VMA {vma}" if vma else "no VMA"
        self._say(f"#PF (exception 14), CR2 = {self.addr:#x}, error code {code:#x} ({bits}) → "
                  f"exc_page_fault() → do_user_addr_fault(): lock_vma_under_rcu() finds "
                  f"{where}" + (f"; access_error(): {why}" if why else "; access allowed"))
        if why:
            self._finish("SIGSEGV")
            raise mm.segfault(self.addr, self.write, bool(code & X86_PF_PROT), why)
        self.vma = vma

    def _step6(self) -> None:
        mm = self.mm
        pte = mm.follow_pte(self.addr)
        self._say("handle_mm_fault() → __handle_mm_fault(): " +
                  ("do_wp_page()" if pte & _PAGE_SPECIAL else
                   "allocate any missing table, then do_anonymous_page()"))
        got = mm.handle_mm_fault(self.vma, self.addr, self.write)
        if got == "oom" or not mm.task.alive:
            self._finish("killed")
            raise ProcessKilled(f"Killed: process {mm.task.pid} ({mm.task.comm}) "
                                f"{mm.task.exit_reason or 'could not get a page'}")
        self.outcome = "cow" if pte & _PAGE_SPECIAL else got

    def _step7(self) -> None:
        self.mm.task.min_flt += 1
        self._say("return from the exception (iret) to the same instruction — a minor fault: "
                  "no disk I/O was needed")

    def _step8(self) -> None:
        mm = self.mm
        pte = mm.follow_pte(self.addr)
        mm.tlb[self.addr >> PAGE_SHIFT] = bool(pte & _PAGE_RW)
        self._say(f"the {self.kind} runs again: the walk finds PTE {pte:#018x} → physical "
                  f"address {self._phys(pte):#x}; the TLB caches it; the {self.kind} completes")
        self._finish(self.outcome)


# -- the stepper model for the fault widget ----------------------------------------------------

class FaultDemo:
    """A small machine (``pages`` pages, no watermarks) with one process that has mapped
    ``npages`` anonymous pages, for stepping through faults one step at a time.

    Operations (the :class:`~kmmlib.stepper.Stepper` protocol): ``("access", page, "write"|
    "read")`` starts an access to page ``page`` of the mapping (step 1); ``("step",)`` does
    the next step of the access in flight, or starts the next one of ``plan``.
    """

    def __init__(self, plan: list[tuple[int, str]] | None = None, *, pages: int = 64,
                 npages: int = 4, offset: int = 0x10):
        self.events = EventLog()
        self.system = System(pages, watermarks=False, init=False, events=self.events)
        self.task = self.system.spawn("demo")
        self.mm = self.task.mm
        self.npages = npages
        self.offset = offset
        self.base = self.mm.mmap(0, npages * PAGE_SIZE)
        self.plan = list(plan if plan is not None else [(0, "write"), (0, "write"), (1, "read"),
                                                        (1, "write")])
        self.next_plan = 0
        self.current: FaultPath | None = None

    def addr(self, page: int) -> int:
        if not 0 <= page < self.npages:
            raise BadRequest(f"page must be 0..{self.npages - 1}, not {page!r}")
        return self.base + page * PAGE_SIZE + self.offset

    def apply(self, op: tuple) -> str | None:
        if op[0] == "access" and len(op) == 3 and op[2] in ("read", "write"):
            self.current = self.mm.access(self.addr(int(op[1])), op[2] == "write")
            self.current.step()
            return self._result()
        if op == ("step",):
            if self.current is None or self.current.done:
                if self.next_plan >= len(self.plan):
                    raise BadRequest("nothing left to do: every planned access has completed")
                page, kind = self.plan[self.next_plan]
                self.next_plan += 1
                return self.apply(("access", page, kind))
            self.current.step()
            return self._result()
        raise BadRequest(f"unknown operation {op!r}: use ('access', page, 'read'|'write') or "
                         "('step',)")

    def _result(self) -> str | None:
        fp = self.current
        return fp.outcome if fp is not None and fp.done else None

    def steps_left(self) -> int:
        return self.current.steps_left if self.current is not None else 0

    def total_steps(self) -> int:
        """How many ``("step",)`` ops the whole plan takes (a dry run on a copy)."""
        twin = copy.deepcopy(self)
        n = 0
        while True:
            try:
                twin.apply(("step",))
            except BadRequest:
                return n
            except KmmError:
                return n + 1
            n += 1

    def render(self) -> str:
        mm = self.mm
        lines = []
        fp = self.current
        if fp is not None:
            state = "done: " + fp.outcome if fp.done else f"step {fp.n} of 8 done"
            lines.append(f"access: {fp.kind} {fp.addr:#x} ({state})")
        for v in mm.vmas:
            lines.append(f"VMA {v} ({v.pages} pages), anon_vma "
                         f"{'none yet' if v.anon_vma is None else v.anon_vma}")
        lines.append(mm.page_table_text(fp.addr if fp is not None else None)
                     if fp is not None else f"CR3 → PGD pfn {mm.pgd.pfn}")
        for p in range(self.npages):
            pte = mm.follow_pte(self.base + p * PAGE_SIZE)
            desc = (f"{pte:#018x} pfn {(pte & _PTE_PFN_MASK) >> PAGE_SHIFT} "
                    f"[{pte_flags_text(pte)}]" if pte else "0 (none)")
            lines.append(f"  page {p} ({self.base + p * PAGE_SIZE:#x}): PTE {desc}")
        c = mm.counters()
        lines.append(f"VSZ {c['VSZ']} kB, RSS {c['RSS']} kB, VmPTE {c['VmPTE']} kB, "
                     f"minor faults {self.task.min_flt}; free pages "
                     f"{self.system.zone.nr_free_pages} of {self.system.zone.managed_pages}")
        return "\n".join(lines)


def fault_stepper(plan: list[tuple[int, str]] | None = None, **kw):
    """A :class:`~kmmlib.stepper.Stepper` over :class:`FaultDemo` whose script is every step
    of ``plan`` (default: write page 0 twice, read page 1, write page 1)."""
    from kmmlib.stepper import Stepper

    make: Callable[[], FaultDemo] = lambda: FaultDemo(plan, **kw)  # noqa: E731
    return Stepper(make, [("step",)] * make().total_steps(), describe=_describe_op)


def _describe_op(op: tuple) -> str:
    if op == ("step",):
        return "next"
    return f"{op[2]} page {op[1]}" if op[0] == "access" and len(op) == 3 else str(op)


__all__ = [
    "FaultDemo", "FaultPath", "MmStruct", "ProcessKilled", "SegmentationFault", "System",
    "TaskStruct", "VmAreaStruct", "fault_stepper", "page_align", "pt_index",
    "PAGE_SIZE", "PROT_NONE", "PROT_READ", "PROT_WRITE", "PROT_EXEC", "MAP_PRIVATE",
    "MAP_ANONYMOUS", "MAP_FIXED", "MAP_FIXED_NOREPLACE", "MAP_NORESERVE", "MAP_POPULATE",
    "MAP_LOCKED", "MREMAP_MAYMOVE", "MADV_DONTNEED", "MADV_POPULATE_READ",
    "MADV_POPULATE_WRITE", "ENOMEM", "MMAP_BASE", "START_BRK", "TASK_SIZE",
]

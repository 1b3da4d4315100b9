"""Overcommit: how much memory the kernel *promises*, and when it says no.

``mmap()`` and ``brk()`` of private writable memory do not take pages; they take a promise
("commit") that the pages will be there when touched. The kernel counts the promises in
``vm_committed_as`` (``Committed_AS`` in /proc/meminfo) and decides in ``__vm_enough_memory()``
(mm/util.c) whether to make one more. Three policies, the sysctl ``vm.overcommit_memory``
(include/uapi/linux/mman.h):

- **0, OVERCOMMIT_GUESS** (the default): refuse only a *single* request larger than all of
  RAM plus swap. Everything else is promised, so Committed_AS may far exceed RAM; if the
  promises are called in, the OOM killer settles the bill.
- **1, OVERCOMMIT_ALWAYS**: never refuse.
- **2, OVERCOMMIT_NEVER**: refuse when Committed_AS would reach ``CommitLimit`` =
  (RAM − huge pages) × ``overcommit_ratio`` / 100 + swap (or ``overcommit_kbytes`` + swap),
  less a reserve for root (``admin_reserve_kbytes``) and a small per-process cushion
  (``min(total_vm/32, user_reserve_kbytes)``), so a user can still run a shell to recover.

CommitLimit is printed in every mode but enforced only in mode 2. The heuristic of mode 0 is the
one since Linux 5.2 (commit 8c7829b04c52, "mm: fix false-positive OVERCOMMIT_GUESS failures");
before, mode 0 added up free memory, page cache, swap and reclaimable slab instead.

Everything counts in pages, as the kernel does; /proc/meminfo prints kB.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmmlib.errors import BadRequest
from kmmlib.events import EventLog

PAGE_SHIFT = 12
OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS, OVERCOMMIT_NEVER = 0, 1, 2
MODE_NAMES = {OVERCOMMIT_GUESS: "OVERCOMMIT_GUESS", OVERCOMMIT_ALWAYS: "OVERCOMMIT_ALWAYS",
              OVERCOMMIT_NEVER: "OVERCOMMIT_NEVER"}
DEFAULT_OVERCOMMIT_RATIO = 50          # mm/util.c: sysctl_overcommit_ratio
USER_RESERVE_MAX_KB = 1 << 17          # init_user_reserve(): at most 128 MiB
ADMIN_RESERVE_MAX_KB = 1 << 13         # init_admin_reserve(): at most 8 MiB
OVERCOMMIT_SYSCTLS = ("overcommit_memory", "overcommit_ratio", "overcommit_kbytes")


def vm_commit_limit(totalram_pages: int, total_swap_pages: int = 0, *,
                    overcommit_ratio: int = DEFAULT_OVERCOMMIT_RATIO,
                    overcommit_kbytes: int = 0, hugetlb_total_pages: int = 0,
                    page_shift: int = PAGE_SHIFT) -> int:
    """``vm_commit_limit()`` (mm/util.c): CommitLimit in pages. ``overcommit_kbytes``, when
    set, replaces the ratio (writing one sysctl zeroes the other); swap is always added."""
    for what, v in (("totalram_pages", totalram_pages), ("total_swap_pages", total_swap_pages),
                    ("overcommit_ratio", overcommit_ratio),
                    ("overcommit_kbytes", overcommit_kbytes),
                    ("hugetlb_total_pages", hugetlb_total_pages)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BadRequest(f"vm_commit_limit: {what} must be a non-negative integer, not {v!r}")
    if overcommit_kbytes:
        allowed = overcommit_kbytes >> (page_shift - 10)
    else:
        allowed = (totalram_pages - hugetlb_total_pages) * overcommit_ratio // 100
    return allowed + total_swap_pages


def init_user_reserve(free_pages: int, page_shift: int = PAGE_SHIFT) -> int:
    """``init_user_reserve()`` (mm/mmap.c, a boot initcall; the sysctl lives in mm/util.c):
    user_reserve_kbytes = min(free memory / 32, 128 MiB), in kB."""
    return min((free_pages << (page_shift - 10)) // 32, USER_RESERVE_MAX_KB)


def init_admin_reserve(free_pages: int, page_shift: int = PAGE_SHIFT) -> int:
    """``init_admin_reserve()`` (mm/mmap.c): admin_reserve_kbytes = min(free / 32, 8 MiB)."""
    return min((free_pages << (page_shift - 10)) // 32, ADMIN_RESERVE_MAX_KB)


def commit_limit_from_meminfo(meminfo: dict[str, int], *,
                              overcommit_ratio: int = DEFAULT_OVERCOMMIT_RATIO,
                              overcommit_kbytes: int = 0) -> int:
    """CommitLimit in kB recomputed from a parsed /proc/meminfo: ``totalram_pages`` is MemTotal
    (which the kernel prints as totalram_pages in kB), swap is SwapTotal, huge pages are
    HugePages_Total × Hugepagesize (``hugetlb_total_pages()``, default size only)."""
    try:
        page_kb = 4
        totalram = meminfo["MemTotal"] // page_kb
        swap = meminfo.get("SwapTotal", 0) // page_kb
        huge = meminfo.get("HugePages_Total", 0) * meminfo.get("Hugepagesize", 2048) // page_kb
    except KeyError as err:
        raise BadRequest(f"meminfo has no {err.args[0]} line") from None
    return vm_commit_limit(totalram, swap, overcommit_ratio=overcommit_ratio,
                           overcommit_kbytes=overcommit_kbytes,
                           hugetlb_total_pages=huge) * page_kb


def read_overcommit_sysctls(source) -> tuple[dict[str, int], list[str]]:
    """``vm.overcommit_memory``, ``_ratio`` and ``_kbytes`` from a :class:`ProcSource`
    (``/proc/sys/vm/…`` live, beside the other files in a folder of copies). A file that is
    missing (the bundled snapshot has none) gives the kernel's default, with a note."""
    defaults = {"overcommit_memory": OVERCOMMIT_GUESS,
                "overcommit_ratio": DEFAULT_OVERCOMMIT_RATIO, "overcommit_kbytes": 0}
    values, notes = {}, []
    for name, default in defaults.items():
        path = source.path(name)
        try:
            values[name] = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError) as err:
            why = ("not found" if isinstance(err, FileNotFoundError) else
                   "permission denied" if isinstance(err, PermissionError) else
                   "unreadable" if isinstance(err, OSError) else "not a number")
            values[name] = default
            notes.append(f"{path}: {why}; using the kernel's default {name} = {default}")
    return values, notes


@dataclass
class Decision:
    """What ``__vm_enough_memory()`` decided for one request, and why (one line)."""

    ok: bool
    pages: int
    why: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self.why


class VmCommit:
    """The kernel's commit accounting: the three sysctls, the reserves and ``vm_committed_as``.

    ``totalram_pages`` and ``total_swap_pages`` are the machine's (``totalram_pages()``,
    ``total_swap_pages``). The reserves default to what the boot initcalls compute from
    ``free_pages`` (all of RAM when not given). Failures append the kernel's ratelimited
    warning to :attr:`dmesg` and report an ``overcommit`` event.

    Simplified: ``vm_committed_as`` is one exact counter (the kernel's is a per-cpu counter
    read approximately, ``percpu_counter_read_positive()``); no LSM hooks (SELinux may change
    ``cap_sys_admin``).
    """

    def __init__(self, totalram_pages: int, total_swap_pages: int = 0, *,
                 overcommit_memory: int = OVERCOMMIT_GUESS,
                 overcommit_ratio: int = DEFAULT_OVERCOMMIT_RATIO, overcommit_kbytes: int = 0,
                 hugetlb_total_pages: int = 0, free_pages: int | None = None,
                 admin_reserve_kbytes: int | None = None, user_reserve_kbytes: int | None = None,
                 events: EventLog | None = None):
        vm_commit_limit(totalram_pages, total_swap_pages, overcommit_ratio=overcommit_ratio,
                        overcommit_kbytes=overcommit_kbytes,
                        hugetlb_total_pages=hugetlb_total_pages)   # validates the numbers
        self.totalram_pages = totalram_pages
        self.total_swap_pages = total_swap_pages
        self.hugetlb_total_pages = hugetlb_total_pages
        self.overcommit_memory = overcommit_memory
        self.overcommit_ratio = overcommit_ratio
        self.overcommit_kbytes = overcommit_kbytes
        free = totalram_pages if free_pages is None else free_pages
        self.admin_reserve_kbytes = (init_admin_reserve(free) if admin_reserve_kbytes is None
                                     else admin_reserve_kbytes)
        self.user_reserve_kbytes = (init_user_reserve(free) if user_reserve_kbytes is None
                                    else user_reserve_kbytes)
        self.committed_as = 0                # vm_committed_as, in pages
        self.events = events if events is not None else EventLog()
        self.dmesg: list[str] = []

    @property
    def overcommit_memory(self) -> int:
        return self._mode

    @overcommit_memory.setter
    def overcommit_memory(self, mode: int) -> None:
        # overcommit_policy_handler() (mm/util.c) accepts 0, 1, 2 only.
        if mode not in MODE_NAMES:
            raise BadRequest(f"vm.overcommit_memory must be 0, 1 or 2, not {mode!r} "
                             "(echo: write error: Invalid argument)")
        self._mode = mode

    @property
    def commit_limit(self) -> int:
        """CommitLimit in pages (:func:`vm_commit_limit`)."""
        return vm_commit_limit(self.totalram_pages, self.total_swap_pages,
                               overcommit_ratio=self.overcommit_ratio,
                               overcommit_kbytes=self.overcommit_kbytes,
                               hugetlb_total_pages=self.hugetlb_total_pages)

    def vm_acct_memory(self, pages: int) -> None:
        """``vm_acct_memory()``: add to Committed_AS."""
        self.committed_as += pages

    def vm_unacct_memory(self, pages: int) -> None:
        """``vm_unacct_memory()``: give a promise back (munmap, exit, a failed request)."""
        self.committed_as -= pages

    def vm_enough_memory(self, pages: int, *, total_vm: int = 0, cap_sys_admin: bool = False,
                         pid: int = 0, comm: str = "") -> Decision:
        """``__vm_enough_memory(mm, pages, cap_sys_admin)``: may ``pages`` more be promised?
        On success they are charged to Committed_AS; on failure nothing is. ``total_vm`` is
        the asking process's ``mm->total_vm`` (before this request)."""
        if not isinstance(pages, int) or isinstance(pages, bool) or pages < 0:
            raise BadRequest(f"vm_enough_memory: pages must be a non-negative integer, "
                             f"not {pages!r}")
        self.vm_acct_memory(pages)           # charge first, as the kernel does
        mode = self.overcommit_memory
        if mode == OVERCOMMIT_ALWAYS:
            return self._decide(True, pages, "mode 1 (OVERCOMMIT_ALWAYS): always yes")
        ram_swap = self.totalram_pages + self.total_swap_pages
        if mode == OVERCOMMIT_GUESS:
            if pages > ram_swap:
                return self._fail(pages, pid, comm,
                                  f"mode 0 (heuristic): one request of {pages} pages is more "
                                  f"than RAM + swap ({ram_swap} pages)")
            return self._decide(True, pages, f"mode 0 (heuristic): {pages} pages ≤ RAM + "
                                f"swap ({ram_swap} pages), so yes — whatever is already "
                                "promised")
        allowed = self.commit_limit
        parts = [f"CommitLimit {allowed}"]
        if not cap_sys_admin:
            admin = self.admin_reserve_kbytes >> (PAGE_SHIFT - 10)
            allowed -= admin
            parts.append(f"- admin reserve {admin}")
        reserve = min(total_vm // 32, self.user_reserve_kbytes >> (PAGE_SHIFT - 10))
        allowed -= reserve
        parts.append(f"- user reserve {reserve}")
        committed = max(self.committed_as, 0)   # percpu_counter_read_positive()
        sums = " ".join(parts)
        if committed < allowed:
            return self._decide(True, pages, f"mode 2 (strict): Committed_AS {committed} < "
                                f"allowed {allowed} ({sums}) pages")
        return self._fail(pages, pid, comm, f"mode 2 (strict): Committed_AS {committed} would "
                          f"not stay below allowed {allowed} ({sums}) pages")

    def _decide(self, ok: bool, pages: int, why: str) -> Decision:
        if self.events.active:
            self.events.emit("overcommit", f"__vm_enough_memory({pages} pages): "
                             f"{'yes' if ok else 'no'} — {why}", pages=pages, ok=ok,
                             committed_as=self.committed_as)
        return Decision(ok, pages, why)

    def _fail(self, pages: int, pid: int, comm: str, why: str) -> Decision:
        self.dmesg.append(f"__vm_enough_memory: pid: {pid}, comm: {comm}, bytes: "
                          f"{pages << PAGE_SHIFT} not enough memory for the allocation")
        self.vm_unacct_memory(pages)
        return self._decide(False, pages, why)

    def meminfo_lines(self) -> str:
        """The two /proc/meminfo lines this state gives, in the kernel's format."""
        from kmmlib.procfs.meminfo import format_meminfo_line

        kb = PAGE_SHIFT - 10
        return "\n".join([format_meminfo_line("CommitLimit", self.commit_limit << kb),
                          format_meminfo_line("Committed_AS", max(self.committed_as, 0) << kb)])

    def describe(self) -> str:
        """The sysctls and the limit, one line each."""
        kb = PAGE_SHIFT - 10
        return "\n".join([
            f"vm.overcommit_memory = {self.overcommit_memory} "
            f"({MODE_NAMES[self.overcommit_memory]})",
            f"vm.overcommit_ratio = {self.overcommit_ratio}, vm.overcommit_kbytes = "
            f"{self.overcommit_kbytes}",
            f"RAM {self.totalram_pages << kb} kB, swap {self.total_swap_pages << kb} kB, "
            f"admin_reserve {self.admin_reserve_kbytes} kB, user_reserve "
            f"{self.user_reserve_kbytes} kB",
            self.meminfo_lines(),
        ])


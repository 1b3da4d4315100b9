"""A process's address space as the kernel shows it: ``/proc/PID/maps`` and ``/proc/PID/smaps``.

Each line of ``maps`` is one VMA (``struct vm_area_struct``), printed by
``show_vma_header_prefix()`` in fs/proc/task_mmu.c as ``"%08lx-%08lx %c%c%c%c %08llx %02x:%02x
%lu "``: start, end (exclusive), r/w/x and p(rivate)/s(hared), the file offset, the device
major:minor, the inode, and then — padded to column 73 on 64-bit — the file name or a special
name such as ``[heap]``, ``[stack]``, ``[vdso]``. ``smaps`` prints the same line followed by
one ``Name: value kB`` line per counter (``show_smap()``: Size, Rss, Pss, Anonymous, Swap ...)
and ``VmFlags``.

:func:`classify` sorts the VMAs into the kinds a course draws: the program's text, read-only
data, data and bss; the heap (``[heap]``, grown by brk()); mmap regions (shared libraries, file
and anonymous mappings); the stack; and the kernel-provided vdso/vvar pages.

:func:`load_self` reads the live ``/proc/self/smaps`` (the process running the code — in a
notebook, the Jupyter kernel) and falls back to a sample bundled in ``kmmlib/data`` where /proc
cannot be read (macOS, a container without /proc): ``env -i cat /proc/self/smaps`` on a Linux
6.18 x86_64 machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from kmmlib.errors import ParseError

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE_MAPS = DATA / "proc_self_maps_sample.txt"
SAMPLE_SMAPS = DATA / "proc_self_smaps_sample.txt"
SAMPLE_EXE = "/usr/bin/cat"
SAMPLE_NOTE = ("/proc/self/smaps cannot be read here; using the bundled sample "
               "(env -i cat /proc/self/smaps, Linux 6.18, x86_64)")

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) ([0-9a-f]+) "
                     r"([0-9a-f]+:[0-9a-f]+) (\d+) ?(.*)$")
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):\s+(.*?)\s*$")

KINDS = ("text", "rodata", "data", "bss", "heap", "mmap", "stack", "vdso", "vvar", "vsyscall",
         "guard")
#: The six groups chapter 03 draws.
GROUPS = {"text": "text", "rodata": "data", "data": "data", "bss": "data", "heap": "heap",
          "mmap": "mmap", "guard": "mmap", "stack": "stack", "vdso": "vdso", "vvar": "vdso",
          "vsyscall": "vdso"}


@dataclass
class Mapping:
    """One VMA: ``[start, end)``, permissions, file offset, device, inode, path."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str = ""
    fields: dict[str, int | str] = field(default_factory=dict)
    kind: str = ""

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[0] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2] == "x"

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"

    @property
    def anonymous(self) -> bool:
        return self.inode == 0 and not self.path.startswith("/")

    @property
    def group(self) -> str:
        return GROUPS.get(self.kind, "mmap")

    def kb(self, name: str) -> int:
        """An smaps counter in kB (0 when the file had no such line)."""
        v = self.fields.get(name, 0)
        return v if isinstance(v, int) else 0

    def line(self) -> str:
        """The maps line, byte for byte as fs/proc/task_mmu.c prints it on 64-bit."""
        head = (f"{self.start:08x}-{self.end:08x} {self.perms} {self.offset:08x} {self.dev} "
                f"{self.inode} ")
        if self.path:
            head = head.ljust(73) + self.path       # seq_setwidth(25 + 6 * 8 - 1); seq_pad
        return head


def _header(line: str, n: int) -> Mapping:
    m = _HEADER.match(line)
    if not m:
        raise ParseError(f"maps line {n}: cannot read {line!r}")
    start, end = int(m.group(1), 16), int(m.group(2), 16)
    if end <= start:
        raise ParseError(f"maps line {n}: end {end:#x} is not above start {start:#x}")
    return Mapping(start, end, m.group(3), int(m.group(4), 16), m.group(5), int(m.group(6)),
                   m.group(7).strip())


def _lines(text: str):
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.startswith("#"):   # '#': provenance in bundled samples
            yield n, line


def parse_maps(text: str) -> list[Mapping]:
    """The VMAs of a ``/proc/PID/maps`` text."""
    maps = [_header(line, n) for n, line in _lines(text)]
    _check_order(maps)
    return maps


def parse_smaps(text: str) -> list[Mapping]:
    """The VMAs of a ``/proc/PID/smaps`` text, each with its counters in ``fields``
    (sizes as ints in kB; ``VmFlags`` as a string)."""
    maps: list[Mapping] = []
    for n, line in _lines(text):
        if _HEADER.match(line):
            maps.append(_header(line, n))
            continue
        m = _FIELD.match(line)
        if not m or not maps:
            raise ParseError(f"smaps line {n}: cannot read {line!r}")
        name, value = m.group(1), m.group(2)
        if value.endswith(" kB"):
            maps[-1].fields[name] = int(value[:-3])
        elif re.fullmatch(r"\d+", value):
            maps[-1].fields[name] = int(value)
        else:
            maps[-1].fields[name] = value
    _check_order(maps)
    return maps


def _check_order(maps: list[Mapping]) -> None:
    for a, b in zip(maps, maps[1:], strict=False):
        if b.start < a.end:
            raise ParseError(f"maps: {b.start:#x} overlaps the mapping ending at {a.end:#x}")


def classify(maps: list[Mapping], exe: str | None = None) -> list[Mapping]:
    """Set each mapping's ``kind`` (one of :data:`KINDS`) and return the list.

    ``exe`` is the program's path (``/proc/PID/exe``); by default the file of the lowest
    file-backed mapping, which is where the kernel's ELF loader (fs/binfmt_elf.c) puts the
    program. Its executable mappings are text, writable ones data, read-only ones rodata
    (which includes RELRO, made read-only after relocation); the anonymous mapping right
    after its data, when there is one, is the rest of its bss.
    """
    if exe is None:
        files = [m for m in maps if m.path.startswith("/")]
        exe = files[0].path if files else ""
    special = {"[heap]": "heap", "[stack]": "stack", "[vdso]": "vdso", "[vvar]": "vvar",
               "[vvar_vclock]": "vvar", "[vsyscall]": "vsyscall"}
    prev: Mapping | None = None
    for m in maps:
        if m.path in special:
            m.kind = special[m.path]
        elif m.path.startswith("[stack"):
            m.kind = "stack"                       # [stack:TID] before 4.5
        elif exe and m.path == exe:
            m.kind = "text" if m.executable else "data" if m.writable else "rodata"
        elif (m.anonymous and not m.path and prev is not None and prev.kind == "data"
              and prev.end == m.start and m.writable):
            m.kind = "bss"
        elif m.perms.startswith("---"):
            m.kind = "guard"                       # PROT_NONE: guard pages, reservations
        else:
            m.kind = "mmap"
        prev = m
    return maps


@dataclass
class ProcessMap:
    """A process's VMAs, classified, and where they were read from."""

    mappings: list[Mapping]
    exe: str
    origin: str
    notes: list[str] = field(default_factory=list)

    def of_kind(self, *kinds: str) -> list[Mapping]:
        return [m for m in self.mappings if m.kind in kinds]

    def totals(self, by: str = "group") -> dict[str, dict[str, int]]:
        """Per group (or kind): number of VMAs, virtual size, and (from smaps) Rss and Pss,
        all in kB."""
        out: dict[str, dict[str, int]] = {}
        for m in self.mappings:
            key = m.group if by == "group" else m.kind
            t = out.setdefault(key, {"vmas": 0, "size_kb": 0, "rss_kb": 0, "pss_kb": 0})
            t["vmas"] += 1
            t["size_kb"] += m.size >> 10
            t["rss_kb"] += m.kb("Rss")
            t["pss_kb"] += m.kb("Pss")
        return out

    def summary(self) -> str:
        """One line per VMA (address range, perms, size, kind, name), then totals per group."""
        lines = [f"{'start':>12}-{'end':<12} perm {'size':>9}  {'kind':<8} name"]
        for m in self.mappings:
            name = m.path or "(anonymous)"
            if len(name) > 40:
                name = "…" + name[-39:]
            lines.append(f"{m.start:12x}-{m.end:<12x} {m.perms} {m.size >> 10:>7}kB  "
                         f"{m.kind:<8} {name}")
        lines.append("")
        lines.append(f"{'group':<6} {'VMAs':>5} {'virtual':>10} {'Rss':>9} {'Pss':>9}")
        for g, t in sorted(self.totals().items(), key=lambda kv: -kv[1]["size_kb"]):
            lines.append(f"{g:<6} {t['vmas']:>5} {t['size_kb']:>8}kB {t['rss_kb']:>7}kB "
                         f"{t['pss_kb']:>7}kB")
        return "\n".join(lines)


def sample() -> ProcessMap:
    """The bundled sample (``cat`` reading its own smaps on Linux 6.18 x86_64)."""
    maps = classify(parse_smaps(SAMPLE_SMAPS.read_text()), SAMPLE_EXE)
    return ProcessMap(maps, SAMPLE_EXE, f"bundled sample ({SAMPLE_SMAPS.name})")


def load_self(source=None) -> ProcessMap:
    """``/proc/self/smaps`` of the running process, classified; the bundled sample (with a
    note) when it cannot be read. ``source`` is a :class:`~kmmlib.procfs.source.ProcSource`
    (default: the live /proc, or ``$KMMLIB_PROC_ROOT``)."""
    from kmmlib.procfs.source import ProcFileMissing, ProcSource

    src = source if source is not None else ProcSource()
    try:
        text = src.read("self/smaps")
    except (ProcFileMissing, OSError):
        pm = sample()
        pm.notes.append(SAMPLE_NOTE)
        return pm
    exe = ""
    if src.live:
        try:
            exe = os.readlink("/proc/self/exe")
        except OSError:
            exe = ""
    maps = classify(parse_smaps(text), exe or None)
    return ProcessMap(maps, exe or (maps[0].path if maps else ""), src.origin("self/smaps"))

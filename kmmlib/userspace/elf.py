"""ELF program headers, and how the kernel's ELF loader turns them into a process's mappings.

``load_elf_binary()`` (fs/binfmt_elf.c) mmaps each ``PT_LOAD`` segment of the program: the file
bytes ``[p_offset, p_offset + p_filesz)`` at ``load_bias + p_vaddr``, with the segment's
R/W/X flags, page-aligned (``ELF_PAGESTART``/``ELF_PAGEOFFSET``); where ``p_memsz >
p_filesz`` the rest is the bss: zeroed, the part past the last file page an anonymous mapping.
A position-independent executable (``ET_DYN``) gets a random ``load_bias``; a fixed one
(``ET_EXEC``) loads at its ``p_vaddr``. Later the dynamic linker mprotect()s the ``PT_GNU_RELRO``
range read-only, which splits the data mapping in two.

:func:`read_elf` parses the ELF header and program headers of a file with :mod:`struct`
(ELF32/ELF64, either byte order; ``Elf64_Ehdr``/``Elf64_Phdr`` of include/uapi/linux/elf.h);
:func:`parse_readelf` reads the same table from ``readelf -lW`` output (the bundled sample uses
it, so the chapter runs where the sample's binary does not exist); :func:`relate` matches each
segment with the VMAs of ``/proc/PID/maps`` that hold it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from kmmlib.errors import ParseError

PT_NAMES = {0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB", 6: "PHDR",
            7: "TLS", 0x6474E550: "GNU_EH_FRAME", 0x6474E551: "GNU_STACK",
            0x6474E552: "GNU_RELRO", 0x6474E553: "GNU_PROPERTY", 0x6474E554: "GNU_SFRAME"}
ET_NAMES = {1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}
EM_NAMES = {3: "x86", 40: "ARM", 62: "x86_64", 183: "AArch64", 243: "RISC-V"}
PF_X, PF_W, PF_R = 1, 2, 4
README = Path(__file__).resolve().parent.parent / "data" / "proc_self_exe_readelf_sample.txt"


@dataclass(frozen=True)
class Segment:
    """One program header (``Elf64_Phdr``)."""

    type: str
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: str          # as readelf prints them: "R E", "RW ", "R  "
    align: int

    @property
    def perms(self) -> str:
        """The maps-style permissions the loader gives it: ``r-x``, ``rw-``."""
        return (("r" if "R" in self.flags else "-") + ("w" if "W" in self.flags else "-")
                + ("x" if "E" in self.flags else "-"))


@dataclass
class ElfInfo:
    path: str
    elf_class: int       # 32 or 64
    type: str            # EXEC, DYN ...
    machine: str
    entry: int
    segments: list[Segment] = field(default_factory=list)
    interp: str = ""

    @property
    def loads(self) -> list[Segment]:
        return [s for s in self.segments if s.type == "LOAD"]

    @property
    def relro(self) -> Segment | None:
        return next((s for s in self.segments if s.type == "GNU_RELRO"), None)


def _flags(p_flags: int) -> str:
    return ("R" if p_flags & PF_R else " ") + ("W" if p_flags & PF_W else " ") + \
           ("E" if p_flags & PF_X else " ")


def read_elf(source: str | Path | bytes) -> ElfInfo:
    """The ELF header and program headers of a file (a path, or its first bytes)."""
    if isinstance(source, (str, Path)):
        path = str(source)
        with open(source, "rb") as f:
            data = f.read(1 << 16)          # the headers are at the start of the file
    else:
        path, data = "<bytes>", bytes(source)
    if data[:4] != b"\x7fELF":
        raise ParseError(f"{path}: not an ELF file (no \\x7fELF magic)")
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise ParseError(f"{path}: bad ELF class {ei_class} or data encoding {ei_data}")
    end = "<" if ei_data == 1 else ">"
    if ei_class == 2:    # Elf64_Ehdr: e_type e_machine e_version e_entry e_phoff e_shoff ...
        e_type, e_machine, _v, e_entry, e_phoff, _sh, _fl, _eh, e_phentsize, e_phnum = \
            struct.unpack_from(end + "HHIQQQIHHH", data, 16)
        fmt = end + "IIQQQQQQ"       # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz
    else:                             # p_align
        e_type, e_machine, _v, e_entry, e_phoff, _sh, _fl, _eh, e_phentsize, e_phnum = \
            struct.unpack_from(end + "HHIIIIIHHH", data, 16)
        fmt = end + "IIIIIIII"       # p_type p_offset p_vaddr p_paddr p_filesz p_memsz
    if e_phoff + e_phnum * e_phentsize > len(data):  # p_flags p_align
        raise ParseError(f"{path}: program headers beyond the first 64 KiB")
    info = ElfInfo(path, 64 if ei_class == 2 else 32, ET_NAMES.get(e_type, str(e_type)),
                   EM_NAMES.get(e_machine, str(e_machine)), e_entry)
    for i in range(e_phnum):
        fields = struct.unpack_from(fmt, data, e_phoff + i * e_phentsize)
        if ei_class == 2:
            p_type, p_flags, off, vaddr, paddr, filesz, memsz, align = fields
        else:
            p_type, off, vaddr, paddr, filesz, memsz, p_flags, align = fields
        seg = Segment(PT_NAMES.get(p_type, hex(p_type)), off, vaddr, paddr, filesz, memsz,
                      _flags(p_flags), align)
        info.segments.append(seg)
        if seg.type == "INTERP":
            info.interp = data[off:off + filesz].rstrip(b"\0").decode(errors="replace")
    return info


_PH = re.compile(r"^\s+([A-Z_]+|0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+"
                 r"(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+([RWE ]{1,3}?)\s+(0x[0-9a-f]+)\s*$")


def parse_readelf(text: str, path: str = "") -> ElfInfo:
    """The program headers from ``readelf -lW`` output (GNU binutils)."""
    m = re.search(r"Elf file type is (\w+)", text)
    e = re.search(r"Entry point (0x[0-9a-f]+)", text)
    if not m or not e:
        raise ParseError("not readelf -l output: no 'Elf file type is' / 'Entry point' line")
    info = ElfInfo(path, 64, m.group(1), "", int(e.group(1), 16))
    for line in text.splitlines():
        ph = _PH.match(line)
        if ph:
            flags = ph.group(7).ljust(3)
            info.segments.append(Segment(ph.group(1), *(int(ph.group(i), 16) for i in
                                                        range(2, 7)), flags,
                                         int(ph.group(8), 16)))
        interp = re.search(r"\[Requesting program interpreter: (.*)\]", line)
        if interp:
            info.interp = interp.group(1)
    if not info.segments:
        raise ParseError("readelf output without program headers")
    return info


def sample_elf() -> ElfInfo:
    """The bundled ``readelf -lW /usr/bin/cat`` of the process in the bundled maps sample."""
    return parse_readelf(README.read_text(), "/usr/bin/cat")


@dataclass
class Placement:
    """Where one PT_LOAD segment ended up: its page-aligned range, the VMAs holding it, and
    the bss part (zero-filled, not from the file)."""

    segment: Segment
    start: int                  # load_bias + ELF_PAGESTART(p_vaddr)
    end: int                    # load_bias + page-aligned p_vaddr + p_memsz
    mappings: list              # the Mapping objects overlapping [start, end)
    bss: tuple[int, int] | None

    def text(self) -> str:
        vmas = ", ".join(f"{m.start:x}-{m.end:x} {m.perms} off {m.offset:#x}"
                         for m in self.mappings) or "(none)"
        s = (f"LOAD {self.segment.flags} off {self.segment.offset:#07x} vaddr "
             f"{self.segment.vaddr:#07x} filesz {self.segment.filesz:#x} memsz "
             f"{self.segment.memsz:#x} -> {self.start:x}-{self.end:x} in {vmas}")
        if self.bss:
            s += f"; bss {self.bss[0]:x}-{self.bss[1]:x}"
        return s


def load_bias(elf: ElfInfo, mappings, page_size: int = 4096) -> int:
    """``load_bias`` of the program: 0 for ET_EXEC; for ET_DYN, the address of the mapping of
    file offset 0 minus the first PT_LOAD's page-aligned vaddr."""
    if elf.type == "EXEC":
        return 0
    first = min(elf.loads, key=lambda s: s.vaddr)
    base = [m for m in mappings if m.path == elf.path and m.offset == first.offset
            - first.offset % page_size]
    if not base:
        raise ParseError(f"no mapping of {elf.path} at file offset {first.offset:#x}")
    return min(m.start for m in base) - (first.vaddr - first.vaddr % page_size)


def relate(elf: ElfInfo, mappings, page_size: int = 4096) -> list[Placement]:
    """For each PT_LOAD segment, the mappings of the process that hold it."""
    bias = load_bias(elf, mappings, page_size)
    out = []
    for seg in elf.loads:
        start = bias + seg.vaddr - seg.vaddr % page_size
        end = bias + -(-(seg.vaddr + seg.memsz) // page_size) * page_size
        holders = [m for m in mappings if m.start < end and m.end > start]
        bss = None
        if seg.memsz > seg.filesz:
            bss = (bias + seg.vaddr + seg.filesz, bias + seg.vaddr + seg.memsz)
        out.append(Placement(seg, start, end, holders, bss))
    return out

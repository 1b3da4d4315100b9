"""/proc/meminfo: parse it into numbers, print it back exactly as the kernel does, and say
where the memory goes.

The kernel writes the file in ``meminfo_proc_show()`` (fs/proc/meminfo.c). Almost every line
comes from ``show_val_kb()``: the label padded to 16 columns (``"MemTotal:       "``), the
value right-aligned in 8 (``seq_put_decimal_ull_width(…, 8)``; wider numbers simply push
out, as VmallocTotal's 34359738367 does), then `` kB``. The exceptions are
``HardwareCorrupted: %5lu kB`` and ``EarlyMemtestBad:   %5lu kB`` (mm/memtest.c), and the
hugetlb block of ``hugetlb_report_meminfo()`` (mm/hugetlb.c), whose ``HugePages_Total``,
``_Free``, ``_Rsvd`` and ``_Surp`` are *page counts* printed ``%5lu`` after a 19-column label
with no unit. Everything else, arch lines like ``DirectMap2M`` included, is 16 + ``%8lu kB``.

So :func:`parse_meminfo` returns a dict of kB, in file order, except those four HugePages
counts, which stay counts (:data:`UNITLESS`).
"""

from __future__ import annotations

import re

from kmmlib.errors import ParseError

# hugetlb_report_meminfo(): counts of huge pages, not kB.
UNITLESS = ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")
# seq_printf(m, "NAME: %5lu kB\n"): the label is followed by a 5-wide number.
_FIVE_WIDE_KB = {"HardwareCorrupted": "HardwareCorrupted: ",
                 "EarlyMemtestBad": "EarlyMemtestBad:   "}

_LINE = re.compile(r"^([^:\s]+):\s*(\d+)( kB)?$")


def parse_meminfo(text: str) -> dict[str, int]:
    """``{"MemTotal": 24684084, …}`` in kB (HugePages_* counts in pages), in file order.

    A line that is not ``Name: number [kB]``, a unit on a HugePages count or none on a kB
    field, or a name given twice raises :class:`~kmmlib.errors.ParseError` naming the line.
    """
    fields: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m:
            raise ParseError(f"meminfo line {n}: expected 'Name:  number kB', got {line!r}")
        name, value, unit = m.group(1), int(m.group(2)), m.group(3)
        if (name in UNITLESS) == bool(unit):
            want = "no unit" if name in UNITLESS else "' kB'"
            raise ParseError(f"meminfo line {n}: {name} should have {want}: {line!r}")
        if name in fields:
            raise ParseError(f"meminfo line {n}: {name} appears twice")
        fields[name] = value
    if "MemTotal" not in fields:
        raise ParseError("meminfo: no MemTotal line; is this /proc/meminfo?")
    return fields


def format_meminfo_line(name: str, value: int) -> str:
    """One line as the kernel prints it (without the newline)."""
    if value < 0:
        raise ParseError(f"meminfo: {name} cannot be negative ({value})")
    if name in UNITLESS:
        return f"{name + ':':<19}{value:5d}"
    if name in _FIVE_WIDE_KB:
        return f"{_FIVE_WIDE_KB[name]}{value:5d} kB"
    return f"{name + ':':<16}{value:8d} kB"


def render_meminfo(fields: dict[str, int]) -> str:
    """The text of /proc/meminfo for these fields, in their order, byte for byte."""
    return "".join(format_meminfo_line(name, value) + "\n" for name, value in fields.items())


# --- where the memory goes -------------------------------------------------------------------

def memory_breakdown(mi: dict[str, int]) -> list[tuple[str, int]]:
    """Split MemTotal into parts that do not overlap, in kB, for a stacked bar.

    ``[("apps (anonymous)", kB), …, ("free", kB)]``; the parts sum to MemTotal (unless the
    approximations below overshoot it, when "kernel, not itemised" is 0 and the sum is more).
    meminfo's own fields overlap (Cached includes Shmem; with CONFIG_VMAP_STACK, on by default
    on x86_64 and arm64, kernel stacks are vmalloc memory and VmallocUsed counts them too), so:

    - page cache = Buffers + Cached − Shmem (file pages; shmem/tmpfs is shown on its own);
    - vmalloc = VmallocUsed − KernelStack (simplified: assumes every stack is vmapped);
    - "kernel, not itemised" is the rest: memory drivers and the kernel take straight from
      the page allocator (``alloc_pages()``), which no meminfo line counts.
    """
    g = mi.get
    stacks = g("KernelStack", 0)
    parts = [
        ("apps (anonymous)", g("AnonPages", 0)),
        ("shmem / tmpfs", g("Shmem", 0)),
        ("page cache", max(0, g("Buffers", 0) + g("Cached", 0) - g("Shmem", 0))),
        ("slab, reclaimable", g("SReclaimable", 0)),
        ("slab, unreclaimable", g("SUnreclaim", 0)),
        ("kernel stacks", stacks),
        ("page tables", g("PageTables", 0) + g("SecPageTables", 0)),
        ("per-cpu", g("Percpu", 0)),
        ("vmalloc", max(0, g("VmallocUsed", 0) - stacks)),
        ("hugetlb pool", g("Hugetlb", 0)),
    ]
    itemised = sum(kb for _, kb in parts) + g("MemFree", 0)
    parts.append(("kernel, not itemised", max(0, mi["MemTotal"] - itemised)))
    parts.append(("free", g("MemFree", 0)))
    return parts

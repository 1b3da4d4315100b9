"""procps-ng 4 ``free``: the same columns, widths, units and rounding, from a meminfo dict.

Two pieces of procps-ng make up what ``free`` prints, and both are followed here line by line:

- ``library/meminfo.c`` (``meminfo_read_failed``) reads /proc/meminfo and derives the
  columns: cache = Cached + SReclaimable; used = MemTotal − MemAvailable (since procps-ng
  4.0.1; before, used was total − free − buffers − cache); an "available" of 0 or above
  MemTotal (seen inside lxc containers) is replaced by MemFree.
- ``src/free.c`` prints them: a 9-column row label, then ``%11s`` per column, each number
  made by ``scale_size()`` — plain KiB by default, or bytes divided by a power of 1024 (1000
  with ``--si``) and truncated, or with ``-h`` the first of ``"%.1f%ci"``, then ``"%ld%ci"``, that
  fits in 5 characters (4 with ``--si``), trying B, Ki, Mi, Gi, Ti, Pi in turn. The ``%.1f``
  is applied to a C ``float``, so the value is rounded to single precision first, as here.

C's integer types are kept where they show: the columns are ``unsigned long``, so
CommitLimit − Committed_AS wraps and prints as a negative number, as it does in procps.
"""

from __future__ import annotations

import struct

from kmmlib.errors import BadRequest

HEADER = "               total        used        free      shared  buff/cache   available"
HEADER_WIDE = ("               total        used        free      shared     buffers       cache"
               "   available")

# procps's args.exponent: which power of the base to print in (free.c's option switch).
EXPONENTS = {"bytes": 1, "kibi": 2, "mebi": 3, "gibi": 4, "tebi": 5, "pebi": 6}
_U64 = 1 << 64


def _s64(x: int) -> int:
    """An integer as C's 64-bit ``long`` holds it (wrapping like unsigned arithmetic does)."""
    x %= _U64
    return x - _U64 if x >= 1 << 63 else x


def _c_div(a: int, b: int) -> int:
    """C's integer division, which truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _c_float(x: float) -> float:
    """``(float)x``: round a double to single precision."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _power(base: int, expo: int) -> float:
    """free.c's ``power()``: base**expo computed in doubles."""
    p = 1.0
    for _ in range(expo):
        p = base * p
    return p


def scale_size(size_kb: int, exponent: int = 0, si: bool = False, human: bool = False) -> str:
    """procps-ng's ``scale_size()`` (src/free.c; lib/units.c since 4.0.3): one column's text.

    ``exponent`` is 0 (default: KiB, or kB with ``si``), 1 (bytes), 2 (KiB), 3 (MiB), 4 (GiB),
    5 (TiB), 6 (PiB); ``human`` is ``-h``.
    """
    base = 1000 if si else 1024
    nbytes = _s64(size_kb * 1024)
    if not human:
        if exponent == 0:
            return str(_c_div(nbytes, base))
        if exponent == 1:
            return str(nbytes)
        return str(int(nbytes / _power(base, exponent - 1)))

    text = f"{nbytes}B"
    if len(text) <= 4:
        return text
    width = 4 if si else 5
    for i, unit in enumerate("KMGTP", 1):
        unit = unit if si else unit + "i"
        q = nbytes / _power(base, i)
        text = f"{_c_float(q):.1f}{unit}"
        if len(text) <= width:
            return text
        text = f"{int(q)}{unit}"
        if len(text) <= width:
            return text
    return text   # more than a pebibyte: procps prints the last try, too wide for the column


def free_columns(mi: dict[str, int]) -> dict[str, int]:
    """The values ``free`` shows, in KiB, derived as procps-ng 4's library/meminfo.c does.

    Missing meminfo fields count as 0, as they do in procps.
    """
    g = lambda name: mi.get(name, 0)  # noqa: E731
    total, free = g("MemTotal"), g("MemFree")
    available = g("MemAvailable") or free
    if available > total:                    # "symptomatic of running within a lxc container"
        available = free
    used = total - available
    if used < 0:
        used = total - free
    low_total, low_free = g("LowTotal"), g("LowFree")
    if low_total == 0:                       # no CONFIG_HIGHMEM: all memory is low memory
        low_total, low_free = total, free
    swap_total, swap_free = g("SwapTotal"), g("SwapFree")
    return {
        "total": total, "used": used, "free": free, "shared": g("Shmem"),
        "buffers": g("Buffers"), "cache": g("Cached") + g("SReclaimable"),
        "buff_cache": g("Buffers") + g("Cached") + g("SReclaimable"),
        "available": available,
        "low_total": low_total, "low_used": max(0, low_total - low_free), "low_free": low_free,
        "high_total": g("HighTotal"), "high_used": max(0, g("HighTotal") - g("HighFree")),
        "high_free": g("HighFree"),
        "swap_total": swap_total, "swap_used": max(0, swap_total - swap_free),
        "swap_free": swap_free,
        "commit_limit": g("CommitLimit"), "committed_as": g("Committed_AS"),
    }


def _row(label: str, values: list[int], fmt) -> str:
    # print_head_col(): the label padded to 9 columns; then "%11s" and " %11s" for the rest.
    return f"{label:<9}" + " ".join(f"{fmt(v):>11}" for v in values)


def free_output(mi: dict[str, int], *, exponent: int = 0, si: bool = False, human: bool = False,
                wide: bool = False, lohi: bool = False, total: bool = False,
                committed: bool = False) -> str:
    """Exactly what ``free`` prints for this meminfo (one round, no ``-s``/``-c`` repeat).

    Options as in free(1): ``exponent`` (see :func:`scale_size`; ``-b`` 1, ``-k`` 2, ``-m`` 3,
    ``-g`` 4), ``si`` (``--si``, and ``--kilo``/``--mega``/… with an exponent), ``human``
    (``-h``), ``wide`` (``-w``), ``lohi`` (``-l``), ``total`` (``-t``), ``committed`` (``-v``).
    """
    if exponent not in range(7):
        raise BadRequest(f"free: exponent must be 0..6, not {exponent}")
    c = free_columns(mi)

    def fmt(v: int) -> str:
        return scale_size(v, exponent, si, human)

    lines = [HEADER_WIDE if wide else HEADER]
    mem = [c["total"], c["used"], c["free"], c["shared"]]
    mem += [c["buffers"], c["cache"]] if wide else [c["buff_cache"]]
    lines.append(_row("Mem:", mem + [c["available"]], fmt))
    if lohi:
        lines.append(_row("Low:", [c["low_total"], c["low_used"], c["low_free"]], fmt))
        lines.append(_row("High:", [c["high_total"], c["high_used"], c["high_free"]], fmt))
    lines.append(_row("Swap:", [c["swap_total"], c["swap_used"], c["swap_free"]], fmt))
    if total:
        lines.append(_row("Total:", [c["total"] + c["swap_total"], c["used"] + c["swap_used"],
                                     c["free"] + c["swap_free"]], fmt))
    if committed:
        lines.append(_row("Comm:", [c["commit_limit"], c["committed_as"],
                                    c["commit_limit"] - c["committed_as"]], fmt))
    return "\n".join(lines) + "\n"

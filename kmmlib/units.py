"""Sizes in bytes, pages and the kernel's units, parsed and printed one way everywhere."""

from __future__ import annotations

import re
from fractions import Fraction

from kmmlib.errors import BadRequest

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_SUFFIX = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB,
           "g": GiB, "gb": GiB, "gib": GiB, "t": TiB, "tb": TiB, "tib": TiB}


def parse_size(text: str | int) -> int:
    """``"1G"``, ``"512M"``, ``"4096"`` or an int → bytes (binary units, as the kernel's
    ``memparse()`` in lib/cmdline.c reads ``mem=1G``)."""
    if isinstance(text, int):
        if text < 0:
            raise BadRequest(f"size must not be negative: {text}")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SUFFIX:
        raise BadRequest(f"cannot read {text!r} as a size (examples: 4096, 64K, 512M, 1G)")
    # Exact arithmetic (a float would round 2**53 + 1); a fraction is fine with a unit
    # (1.5G), but the result must be whole bytes.
    value = Fraction(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if value.denominator != 1:
        raise BadRequest(f"{text!r} is not a whole number of bytes")
    return int(value)


def format_size(nbytes: int) -> str:
    """Bytes in the largest binary unit that keeps it readable: 4 KiB, 1.5 GiB, 24 GiB."""
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if nbytes >= size:
            value = nbytes / size
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{nbytes} B"

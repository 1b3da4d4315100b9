"""The kernel's virtual address layout, computed from the kernel's own definitions (chapter 03).

``layout("arm64", kernel="6.8", va_bits=48, page_size="4K")`` → a :class:`Layout`: regions
that tile the address space, the macros behind them, and ``doc_table()`` in the format of the
architecture's documentation. One module per architecture:

- :mod:`kmmlib.layout.arm64` — every era from 4.6 to 6.9+, every VA size and page size;
- :mod:`kmmlib.layout.x86_64` — 4- and 5-level paging;
- :mod:`kmmlib.layout.arm32` — 32-bit ARM, 3G/1G, lowmem/highmem/pkmap for a RAM size;
- :mod:`kmmlib.layout.x86_32` — classic i386 and its 896 MB of lowmem;
- :mod:`kmmlib.layout.translate` — ``__pa``, ``__va``, ``virt_to_page`` and friends.
"""

from __future__ import annotations

from kmmlib.errors import BadRequest
from kmmlib.layout.common import Layout, Region, human_size, parse_kernel, parse_page_size

ARCHES = ("arm64", "x86_64", "arm", "x86_32")
ALIASES = {"aarch64": "arm64", "x86-64": "x86_64", "amd64": "x86_64", "x86": "x86_64",
           "arm32": "arm", "armv7": "arm", "i386": "x86_32", "x86-32": "x86_32"}


def layout(arch: str, **options) -> Layout:
    """The layout of ``arch`` (arm64, x86_64, arm, x86_32, or an alias such as aarch64) with
    that architecture's options (see each module's ``*_layout`` function)."""
    name = ALIASES.get(arch.lower(), arch.lower())
    if name == "arm64":
        from kmmlib.layout.arm64 import arm64_layout as make
    elif name == "x86_64":
        from kmmlib.layout.x86_64 import x86_64_layout as make
    elif name == "arm":
        from kmmlib.layout.arm32 import arm_layout as make
    elif name == "x86_32":
        from kmmlib.layout.x86_32 import x86_32_layout as make
    else:
        raise BadRequest(f"unknown architecture {arch!r} (one of {', '.join(ARCHES)})")
    import inspect

    known = set(inspect.signature(make).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise BadRequest(f"{name} has no option {', '.join(unknown)} "
                         f"(its options: {', '.join(sorted(known))})")
    if options.get("ram") is not None:
        from kmmlib.units import parse_size

        options["ram"] = parse_size(options["ram"])  # "1G" or bytes; BadRequest otherwise
    return make(**options)


__all__ = ["ARCHES", "Layout", "Region", "human_size", "layout", "parse_kernel",
           "parse_page_size"]

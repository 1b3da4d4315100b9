"""``kmm layout ARCH``: the kernel's virtual address layout, as its documentation tabulates it.

``kmm layout arm64 --kernel 6.8`` prints Documentation/arch/arm64/memory.rst's table for the
configuration chosen with ``--va-bits`` and ``--page-size`` (for any modelled era from 4.6 to
6.9+; the newest modelled kernel when ``--kernel`` is not given); ``kmm layout x86_64
--levels 5`` prints Documentation/arch/x86/x86_64/mm.rst's; ``kmm layout arm --ram 1G`` a
32-bit ARM kernel's, lowmem and highmem worked out for that RAM. ``--translate ADDR`` says which
region holds an address and, in the linear map, the physical address and struct page behind it.
``--json`` prints a list of regions ``{"start", "end", "name", "kind"}`` with integer addresses
and ``end`` exclusive (with ``--translate``, a list of translations instead).
"""

from __future__ import annotations

import json

from kmmlib.errors import BadRequest
from kmmlib.layout import ALIASES, ARCHES, layout
from kmmlib.layout.translate import translate
from kmmlib.units import parse_size

NAME = "layout"
HELP = "the kernel virtual address layout (arm64 by kernel version, x86_64, arm, x86_32)"

_ARCH_ONLY = {"kernel": "arm64", "va_bits": "arm64", "page_size": "arm64", "kasan": "arm64",
              "levels": "x86_64"}


def add_arguments(parser) -> None:
    parser.add_argument("arch", metavar="ARCH", help=f"one of {', '.join(ARCHES)}")
    parser.add_argument("--kernel", metavar="X.Y",
                        help="arm64: the kernel release whose layout to show (default: newest "
                             "modelled, 6.18)")
    parser.add_argument("--va-bits", type=int, metavar="N",
                        help="arm64: CONFIG_ARM64_VA_BITS (39/48 with 4K, 47/48 with 16K, "
                             "42/48/52 with 64K; 52 with 4K/16K from 6.9)")
    parser.add_argument("--page-size", metavar="4K|16K|64K", help="arm64: the page size")
    parser.add_argument("--levels", type=int, choices=(4, 5),
                        help="x86_64: 4- or 5-level paging")
    parser.add_argument("--ram", metavar="SIZE",
                        help="RAM size (1G, 512M): with --plain, marks the part of the linear "
                             "map and vmemmap in use; on 32-bit arm and x86 it sets lowmem and "
                             "highmem")
    parser.add_argument("--kasan", action="store_true",
                        help="arm64: build with CONFIG_KASAN_GENERIC")
    parser.add_argument("--plain", action="store_true",
                        help="a plain table (with overlays) instead of the documentation's")
    parser.add_argument("--translate", action="append", metavar="ADDR", default=[],
                        help="which region holds ADDR (hex, 0x optional), and "
                             "__pa/virt_to_page for the linear map; may be repeated")


def options(args) -> dict:
    """The ``layout()`` options the command line asked for, refusing those of another arch."""
    arch = ALIASES.get(args.arch.lower(), args.arch.lower())
    given = {"kernel": args.kernel, "va_bits": args.va_bits, "page_size": args.page_size,
             "levels": args.levels, "kasan": args.kasan or None}
    opts = {}
    for key, value in given.items():
        if value is None:
            continue
        if _ARCH_ONLY[key] != arch:
            flag = "--" + key.replace("_", "-")
            raise BadRequest(f"{flag} is an option of {_ARCH_ONLY[key]}, not of {arch}")
        opts[key] = value
    if args.ram is not None:
        opts["ram"] = parse_size(args.ram)
    return opts


def _address(text: str) -> int:
    """An address as the kernel prints one: hex, with or without 0x (so 80000000 is 2 GiB,
    as in a 32-bit oops, not eighty million)."""
    try:
        return int(text.replace("_", ""), 16)
    except ValueError:
        raise BadRequest(f"cannot read {text!r} as an address (hex, e.g. ffff000012345000)")\
            from None


def run(args) -> int:
    lay = layout(args.arch, **options(args))
    if args.translate:
        results = [translate(lay, _address(t)) for t in args.translate]
        if args.json:
            print(json.dumps([{"va": t.va, "region": t.region, "kind": t.kind,
                               "phys": t.phys, "pfn": t.pfn, "page": t.page} for t in results],
                             indent=2))
        else:
            print(lay.title)
            for t in results:
                print(t.text())
        return 0
    if args.json:
        print(json.dumps(lay.to_json(), indent=2))
        return 0
    print(lay.title)
    print()
    print(lay.table() if args.plain else lay.doc_table())
    if lay.notes:
        print()
        for note in lay.notes:
            print(f"# {note}")
    return 0

"""``kmm available``: recompute MemAvailable term by term, beside the kernel's figure.

The arithmetic is the kernel's ``si_mem_available()`` (mm/show_mem.c), done by
:func:`kmmlib.mm.available.mem_available` on ``meminfo`` and ``zoneinfo`` (low and high
watermarks, ``protection`` = lowmem_reserve, managed pages) from the chosen source.
"""

from __future__ import annotations

import argparse
import json

from kmmlib.mm.available import mem_available
from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.procfs.zoneinfo import parse_zoneinfo

NAME = "available"
HELP = "recompute MemAvailable as si_mem_available() does, term by term"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-kb", type=int, default=4, metavar="KB",
                        help="base page size in KiB (default 4)")


def run(args: argparse.Namespace) -> int:
    mi = parse_meminfo(args.source.read("meminfo"))
    zones = parse_zoneinfo(args.source.read("zoneinfo"))
    result = mem_available(mi, zones, page_kb=args.page_kb)
    if args.json:
        print(json.dumps({**result.as_dict(),
                          "sources": {name: args.source.origin(name)
                                      for name in ("meminfo", "zoneinfo")}}, indent=2))
        return 0
    print(result.table())
    if args.source.live:
        # Two files are two reads: the kernel's figure can move between them.
        print("(live: meminfo and zoneinfo were read a moment apart)")
    return 0

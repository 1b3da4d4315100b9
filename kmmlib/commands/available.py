"""``kmm available``: recompute MemAvailable term by term, beside the kernel's figure.

The arithmetic is the kernel's ``si_mem_available()`` (mm/show_mem.c), done by
:func:`kmmlib.mm.available.mem_available` on ``meminfo`` and ``zoneinfo`` (low and high
watermarks, ``protection`` = lowmem_reserve, managed pages) from the chosen source.
"""

from __future__ import annotations

import argparse
import json
import sys

from kmmlib.mm.available import mem_available
from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.procfs.zoneinfo import parse_zoneinfo

PAGE_KB = (4, 8, 16, 64, 256)      # the base page sizes Linux architectures build with
NAME = "available"
HELP = "recompute MemAvailable as si_mem_available() does, term by term"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-kb", type=int, default=4, choices=PAGE_KB, metavar="KB",
                        help="base page size in KiB: 4 (the default; x86_64), 16 or 64 "
                             "(arm64 and others)")


def run(args: argparse.Namespace) -> int:
    mi = parse_meminfo(args.source.read("meminfo"))
    zones = parse_zoneinfo(args.source.read("zoneinfo"))
    fell = [n for n in ("meminfo", "zoneinfo") if args.source.fell_back(n)]
    if len(fell) == 1:                # on stderr, with the fallback notes: stdout may be JSON
        print(f"note: the {fell[0]} is the bundled snapshot's and the other file is not: the "
              "two describe different kernels, so the figures need not agree", file=sys.stderr)
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

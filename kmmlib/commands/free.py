"""``kmm free``: print exactly what procps-ng 4 ``free`` prints for a meminfo.

Reads ``meminfo`` from the live /proc, from ``--from DIR``, or from the bundled snapshot, and
formats it with :func:`kmmlib.userspace.free.free_output`, which follows procps-ng's
src/free.c and library/meminfo.c. ``--json`` gives the columns in KiB instead.
"""

from __future__ import annotations

import argparse
import json

from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.userspace.free import EXPONENTS, free_columns, free_output

NAME = "free"
HELP = "print what procps-ng 4 free prints, from /proc/meminfo (or --from DIR)"

# free(1)'s unit options: (flags, exponent, si)
_UNITS = [
    (("-b", "--bytes"), EXPONENTS["bytes"], False, "show output in bytes"),
    (("--kilo",), 2, True, "show output in kilobytes"),
    (("--mega",), 3, True, "show output in megabytes"),
    (("--giga",), 4, True, "show output in gigabytes"),
    (("--tera",), 5, True, "show output in terabytes"),
    (("--peta",), 6, True, "show output in petabytes"),
    (("-k", "--kibi"), EXPONENTS["kibi"], False, "show output in kibibytes"),
    (("-m", "--mebi"), EXPONENTS["mebi"], False, "show output in mebibytes"),
    (("-g", "--gibi"), EXPONENTS["gibi"], False, "show output in gibibytes"),
    (("--tebi",), EXPONENTS["tebi"], False, "show output in tebibytes"),
    (("--pebi",), EXPONENTS["pebi"], False, "show output in pebibytes"),
]


# free's -h is --human, so the command takes -h from argparse's help (--help still works).
HELP_SHORT_OPTION = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    units = parser.add_mutually_exclusive_group()
    for flags, exponent, si, text in _UNITS:
        units.add_argument(*flags, dest="unit", action="store_const",
                           const=(exponent, si), help=text)
    parser.add_argument("-h", "--human", action="store_true", help="show human-readable output")
    parser.add_argument("--si", action="store_true", help="use powers of 1000 not 1024")
    parser.add_argument("-l", "--lohi", action="store_true",
                        help="show detailed low and high memory statistics")
    parser.add_argument("-t", "--total", action="store_true", help="show total for RAM + swap")
    parser.add_argument("-v", "--committed", action="store_true",
                        help="show committed memory and commit limit")
    parser.add_argument("-w", "--wide", action="store_true", help="wide output")


def run(args: argparse.Namespace) -> int:
    mi = parse_meminfo(args.source.read("meminfo"))
    if args.json:
        print(json.dumps({"unit": "KiB", "source": args.source.origin("meminfo"),
                          **free_columns(mi)}, indent=2))
        return 0
    exponent, si = args.unit or (0, False)
    print(free_output(mi, exponent=exponent, si=si or args.si, human=args.human,
                      wide=args.wide, lohi=args.lohi, total=args.total,
                      committed=args.committed), end="")
    return 0

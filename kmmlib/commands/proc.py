"""``kmm proc FILE``: parse a /proc file and print it back exactly as the kernel would.

FILE is one of ``buddyinfo``, ``pagetypeinfo``, ``zoneinfo``, ``slabinfo``, ``meminfo``, read
from the live /proc or ``--from DIR`` (``pagetypeinfo`` and ``slabinfo`` are root-only: a normal
user gets the bundled snapshot, with a note on stderr). The text is parsed into numbers and
rendered again with the kernel's own formats (``frag_show_print()``, ``pagetypeinfo_show()``,
``zoneinfo_show_print()``, ``cache_show()``, ``meminfo_proc_show()``), so the output equals the
input byte for byte when the parser and the renderer are right — which is what ``--check``
verifies and reports. ``--json`` prints the parsed numbers instead.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from kmmlib.errors import ParseError

NAME = "proc"
HELP = "parse a /proc file (buddyinfo, pagetypeinfo, zoneinfo, slabinfo, meminfo) and print it back"


def _buddyinfo():
    from kmmlib.procfs.buddyinfo import parse_buddyinfo, render_buddyinfo
    return parse_buddyinfo, render_buddyinfo


def _pagetypeinfo():
    from kmmlib.procfs.pagetypeinfo import parse_pagetypeinfo, render_pagetypeinfo
    return parse_pagetypeinfo, render_pagetypeinfo


def _zoneinfo():
    from kmmlib.procfs.zoneinfo import parse_zoneinfo, render_zoneinfo
    return parse_zoneinfo, render_zoneinfo


def _slabinfo():
    from kmmlib.procfs.slabinfo import format_slabinfo, parse_slabinfo
    return parse_slabinfo, format_slabinfo


def _meminfo():
    from kmmlib.procfs.meminfo import parse_meminfo, render_meminfo
    return parse_meminfo, render_meminfo


FILES = {"buddyinfo": _buddyinfo, "pagetypeinfo": _pagetypeinfo, "zoneinfo": _zoneinfo,
         "slabinfo": _slabinfo, "meminfo": _meminfo}


def add_arguments(parser) -> None:
    parser.add_argument("file", choices=sorted(FILES), metavar="FILE",
                        help="which file: " + ", ".join(sorted(FILES)))
    parser.add_argument("--check", action="store_true",
                        help="do not print the file: say whether parsing and rendering it back "
                             "gives the same bytes (exit status 1 if not)")


def _plain(obj):
    """Parsed objects as JSON-able data (dataclasses become dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def first_difference(a: str, b: str) -> str:
    """Where two texts first differ, as 'line N: expected …, got …'."""
    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    for n, (x, y) in enumerate(zip(la, lb, strict=False), 1):
        if x != y:
            return f"line {n}: the file has {x!r}, the renderer wrote {y!r}"
    if len(la) != len(lb):
        return f"the file has {len(la)} lines, the renderer wrote {len(lb)}"
    return "the texts differ only in the final newline"


def round_trip(name: str, text: str) -> tuple[object, str]:
    """Parse ``text`` as /proc/``name`` and render it again: (parsed, rendered)."""
    if name not in FILES:
        raise ParseError(f"kmm proc knows {', '.join(sorted(FILES))}, not {name!r}")
    parse, render = FILES[name]()
    parsed = parse(text)
    return parsed, render(parsed)


def run(args) -> int:
    name = args.file
    text = args.source.read(name)
    parsed, rendered = round_trip(name, text)
    if args.json:
        print(json.dumps({"file": name, "origin": args.source.origin(name),
                          "identical": rendered == text, "parsed": _plain(parsed)}, indent=1))
        return 1 if args.check and rendered != text else 0
    if args.check:
        lines = text.count("\n")
        if rendered == text:
            print(f"{name}: {len(text.encode())} bytes, {lines} lines from "
                  f"{args.source.origin(name)}: parsed and rendered back byte for byte")
            return 0
        print(f"{name}: the rendered text differs from {args.source.origin(name)}: "
              f"{first_difference(text, rendered)}")
        return 1
    sys.stdout.write(rendered)
    return 0

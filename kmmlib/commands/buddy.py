"""``kmm buddy --pages N --ops FILE``: run a scripted alloc/free scenario on one zone.

The zone has N pages at pfns 0..N-1, all given to the buddy allocator the way boot does
(``__free_pages_memory()``); no watermarks, no reserved pages, every pageblock MOVABLE, per-cpu
lists off unless ``--pcp``. FILE holds one operation a line (``#`` starts a comment)::

    alloc ORDER [MIGRATETYPE]     # 2^ORDER pages; MIGRATETYPE defaults to Movable
    free PFN ORDER                # PFN in decimal or 0x hex

The output is the pfn each ``alloc`` returned (null when it failed) and the free lists, head
to tail. Plain output narrates every split and merge and ends with the zone's
``/proc/buddyinfo`` line; ``--json`` prints ``{"allocs": [...], "free_area": {"0": [...], ...}}``
with the lists of ``--migratetype`` (Movable by default).
"""

from __future__ import annotations

import json
from pathlib import Path

from kmmlib.errors import KmmError, ParseError
from kmmlib.events import Collect
from kmmlib.procfs.source import read_text

NAME = "buddy"
HELP = "run an alloc/free scenario on one buddy-allocator zone and show every split and merge"


def add_arguments(parser) -> None:
    parser.add_argument("--pages", type=int, required=True, metavar="N",
                        help="pages in the zone (pfns 0..N-1)")
    parser.add_argument("--ops", required=True, metavar="FILE",
                        help="the operations, one a line: 'alloc ORDER [MT]' or 'free PFN ORDER'"
                             " ('-' reads stdin)")
    parser.add_argument("--pcp", action="store_true",
                        help="use per-cpu page lists (one CPU), as a running kernel does")
    parser.add_argument("--migratetype", default="Movable", metavar="MT",
                        help="whose free lists to print (default: Movable)")
    parser.add_argument("--pageblock-order", type=int, default=9, metavar="K",
                        help="pageblock order (default 9, x86_64 with 4 KiB pages)")


def parse_ops(text: str, where: str = "ops") -> list[tuple]:
    """The operations of an ops file: ``("alloc", order, mt)`` / ``("free", pfn, order)``,
    each with its line number last."""
    from kmmlib.mm.migratetype import parse_migratetype

    ops: list[tuple] = []
    for n, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue

        def number(word: str, what: str, n: int = n) -> int:
            try:
                value = int(word, 0)
            except ValueError:
                raise ParseError(f"{where}:{n}: {what} {word!r} is not a number "
                                 "(decimal, or hex as 0x…)") from None
            if value < 0:
                raise ParseError(f"{where}:{n}: {what} must not be negative")
            return value

        verb = words[0].lower()
        try:
            if verb == "alloc" and len(words) in (2, 3):
                mt = parse_migratetype(words[2]) if len(words) == 3 else 1
                ops.append(("alloc", number(words[1], "order"), mt, n))
            elif verb == "free" and len(words) == 3:
                ops.append(("free", number(words[1], "pfn"), number(words[2], "order"), n))
            else:
                raise ParseError(f"{where}:{n}: expected 'alloc ORDER [MIGRATETYPE]' or "
                                 f"'free PFN ORDER', got {raw.strip()!r}")
        except ParseError:
            raise
        except KmmError as err:
            raise ParseError(f"{where}:{n}: {err}") from None
    return ops


def run_ops(zone, ops: list[tuple], where: str = "ops", trace: list[str] | None = None
            ) -> list[int | None]:
    """Apply ``ops`` to ``zone``; the pfn of each alloc. With ``trace``, narrate into it."""
    allocs: list[int | None] = []
    for op in ops:
        verb, a, b, n = op
        with Collect(zone.events) as seen:
            try:
                if verb == "alloc":
                    pfn = zone.alloc(a, b)
                    allocs.append(pfn)
                    head = f"alloc {a}{'' if b == 1 else ' ' + _mt(b)} → " \
                           f"{'NULL' if pfn is None else f'pfn {pfn}'}"
                else:
                    zone.free(a, b)
                    head = f"free {a} {b}"
            except KmmError as err:
                raise type(err)(f"{where}:{n}: {verb} {a} {_mt(b) if verb == 'alloc' else b}: "
                                f"{err}") from None
        if trace is not None:
            trace.append(head)
            trace.extend(f"  {ev.text}" for ev in seen)
    return allocs


def _mt(mt: int) -> str:
    from kmmlib.mm.migratetype import migratetype_names
    return migratetype_names[mt]


def run(args) -> int:
    import sys

    from kmmlib.errors import BadRequest
    from kmmlib.mm.migratetype import migratetype_names, parse_migratetype
    from kmmlib.mm.page_alloc import MAX_PAGE_ORDER, Zone

    if not 1 <= args.pages <= 1 << 24:
        raise BadRequest(f"--pages must be 1..{1 << 24} (64 GiB), not {args.pages}")
    if not 0 <= args.pageblock_order <= MAX_PAGE_ORDER:
        raise BadRequest(f"--pageblock-order must be 0..{MAX_PAGE_ORDER}")
    if args.ops == "-":
        text, where = sys.stdin.read(), "<stdin>"
    else:
        path = Path(args.ops)
        try:
            text = read_text(path)
        except OSError as err:
            raise ParseError(f"cannot read {args.ops}: {err.strerror}") from None
        where = path.name
    mt = parse_migratetype(args.migratetype)
    ops = parse_ops(text, where)
    zone = Zone(args.pages, 0, pageblock_order=args.pageblock_order, pcp=args.pcp, nr_cpus=1)
    trace: list[str] | None = None if args.json else []
    if trace is not None:
        head = (f"zone Normal: {args.pages} pages at pfns 0-{args.pages - 1}, "
                f"per-cpu lists {'on' if args.pcp else 'off'}; boot frees:")
        blocks = zone.free_blocks()
        trace.append(head + " " + ", ".join(f"order-{o} at {p}" for p, o, _ in blocks))
    try:
        allocs = run_ops(zone, ops, where, trace)
    except KmmError:
        for line in trace or ():      # what happened before the bad op, then the report
            print(line)
        raise
    lists = {str(o): zone.free_list(o, mt) for o in range(zone.nr_orders)}
    if args.json:
        print(json.dumps({"allocs": allocs, "free_area": lists, "nr_free": zone.nr_free(),
                          "migratetype": migratetype_names[mt]}))
        return 0
    for line in trace:
        print(line)
    print(f"free lists ({migratetype_names[mt]}), head to tail:")
    shown = [(o, pfns) for o, pfns in lists.items() if pfns]
    for o, pfns in shown:
        print(f"  free_area[{o}]: {' '.join(map(str, pfns))}")
    if not shown:
        print("  (all empty)")
    if zone.pcp_enabled and zone.pcp_pages():
        print(f"  (and {zone.pcp_pages()} page(s) on the per-cpu lists)")
    print("/proc/buddyinfo:")
    print(zone.buddyinfo_line(), end="")
    return 0

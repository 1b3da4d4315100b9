"""``kmm gfp FLAGS...``: decode GFP flags both ways, as the kmem tracepoints print them.

Each argument is a flag string (``GFP_KERNEL|__GFP_ZERO``, or any ``gfp_flags=`` string from a
trace) or a mask in hex (``0xdc0``) or decimal. For each one ``kmm gfp`` prints the mask, the
string the ``kmem:mm_page_alloc`` tracepoint would print for it (Linux 6.18,
:func:`kmmlib.mm.gfp.format_gfp`), its bits, and what the page allocator makes of it:
``gfp_zone()`` and ``gfp_migratetype()``. ``--json`` prints a list of ``{"name", "mask"}``.
``--list`` prints every flag with its bit or mask.
"""

from __future__ import annotations

import json

from kmmlib.errors import BadRequest, KmmError
from kmmlib.mm import gfp as g

NAME = "gfp"
HELP = "decode GFP flags (GFP_KERNEL|__GFP_ZERO or a hex mask), both ways"

MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable")


def add_arguments(parser) -> None:
    parser.add_argument("flags", nargs="*", metavar="FLAGS",
                        help="a flag string such as GFP_KERNEL|__GFP_ZERO, or a mask (0xdc0)")
    parser.add_argument("--list", action="store_true",
                        help="list every __GFP_ bit and GFP_ composite with its value")


def _describe(mask: int) -> list[str]:
    gfp = g.DEFAULT
    bits = ", ".join(f"{b} {n}" for b, n in gfp.flag_bits(mask)) if mask else "none"
    try:
        zone = g.gfp_zone_name(mask)
    except KmmError as err:
        zone = f"BAD ({err})"
    try:
        mt = MIGRATETYPE_NAMES[g.gfp_migratetype(mask)]
    except KmmError:
        mt = "BAD (__GFP_MOVABLE|__GFP_RECLAIMABLE)"
    return [f"  bits:        {bits}",
            f"  gfp_zone:    {zone}",
            f"  migratetype: {mt}",
            f"  may sleep:   {'yes' if g.gfpflags_allow_blocking(mask) else 'no'}"
            " (__GFP_DIRECT_RECLAIM)"]


def _list(as_json: bool) -> int:
    gfp = g.DEFAULT
    rows = [{"name": n, "mask": m} for n, m in gfp.table]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print("# the kmem tracepoint's table, in print order (Linux 6.18, x86_64)")
    for name, mask in gfp.table:
        where = f"bit {gfp.bits[name]:2d}" if name in gfp.bits else "      "
        print(f"{name:<{width}}  {where}  {mask:#10x}")
    return 0


def run(args) -> int:
    if args.list:
        return _list(args.json)
    if not args.flags:
        raise BadRequest("give at least one flag string (GFP_KERNEL|__GFP_ZERO) or mask "
                         "(0xdc0), or --list")
    results = []
    for text in args.flags:
        mask = g.parse_gfp(text)
        results.append({"name": g.format_gfp(mask), "mask": mask})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for n, (text, res) in enumerate(zip(args.flags, results, strict=True)):
        if n:
            print()
        print(f"{res['mask']:#x} = {res['name']}")
        if text.strip() not in (res["name"], hex(res["mask"])):
            print(f"  (from {text.strip()!r})")
        print("\n".join(_describe(res["mask"])))
    return 0

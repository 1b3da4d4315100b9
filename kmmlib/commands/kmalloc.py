"""``kmm kmalloc SIZE...``: which cache serves each ``kmalloc(SIZE, GFP)`` and what it costs.

For each size, the kmalloc cache ``kmalloc_slab()`` picks (mm/slab_common.c, as
:mod:`kmmlib.slab.kmalloc` models it) for the gfp flags (``--gfp``, default GFP_KERNEL: the
family comes from __GFP_DMA, __GFP_RECLAIMABLE and __GFP_ACCOUNT), the bytes it really reserves
(``bytes_alloc``, as the ``kmem:kmalloc`` tracepoint prints it) and the waste. Above 8 KiB the
answer is ``kmalloc_large``: whole pages, no cache. Sizes take suffixes: ``4k``, ``1M``.
"""

from __future__ import annotations

import json

from kmmlib.errors import BadRequest
from kmmlib.slab.kmalloc import kmalloc_class
from kmmlib.units import parse_size

NAME = "kmalloc"
HELP = "which kmalloc cache serves SIZE bytes, and how many bytes it really takes"


def add_arguments(parser) -> None:
    parser.add_argument("sizes", nargs="+", metavar="SIZE", help="request sizes in bytes "
                        "(suffixes k, M allowed)")
    parser.add_argument("--gfp", default="GFP_KERNEL",
                        help="gfp flags, e.g. GFP_KERNEL_ACCOUNT or 'GFP_KERNEL|__GFP_RECLAIMABLE'")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except Exception as err:   # parse_size raises kmmlib errors or ValueError
        raise BadRequest(f"{text!r} is not a size in bytes (e.g. 100, 4k, 1M)") from err


def results(sizes: list[str], gfp: str) -> list[dict]:
    """``kmalloc_class()`` for each size, as plain dicts (what ``--json`` prints)."""
    out = []
    for text in sizes:
        k = kmalloc_class(_size(text), gfp)
        d = {"bytes_req": k.bytes_req, "cache": k.cache, "bytes_alloc": k.bytes_alloc,
             "waste": k.waste, "gfp": k.gfp}
        if k.order is not None:
            d["order"] = k.order
        if k.note:
            d["note"] = k.note
        out.append(d)
    return out


def render(rows: list[dict]) -> str:
    w = max([5] + [len(r["cache"] or "-") for r in rows])
    lines = [f"{'bytes_req':>10}  {'cache':<{w}}  {'bytes_alloc':>11}  {'waste':>13}"]
    for r in rows:
        alloc = "NULL" if r["bytes_alloc"] is None else str(r["bytes_alloc"])
        if r["waste"] is None or not r["bytes_alloc"]:
            waste = "-"
        else:
            waste = f"{r['waste']} ({100 * r['waste'] / r['bytes_alloc']:.0f}%)"
        line = f"{r['bytes_req']:>10}  {r['cache'] or '-':<{w}}  {alloc:>11}  {waste:>13}"
        if r.get("note"):
            line += f"  {r['note']}"
        lines.append(line)
    lines.append(f"gfp: {rows[0]['gfp']}")
    return "\n".join(lines)


def run(args) -> int:
    rows = results(args.sizes, args.gfp)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(render(rows))
    return 0

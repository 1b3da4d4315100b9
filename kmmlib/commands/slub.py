"""``kmm slub``: predict every slab cache's objects per slab and pages per slab, beside the
kernel's.

For each row of /proc/slabinfo, SLUB's ``calculate_order()`` (mm/slub.c, as
:func:`kmmlib.slab.calculate.calculate_order` models it) is run on the row's ``objsize`` (which
is ``s->size``: alignment, free pointer and debug metadata included) and the number of present
CPUs, and the prediction is printed beside the kernel's ``<objperslab>`` and
``<pagesperslab>``. Exit status 1 when any row differs, as ``diff`` does.

The CPU count is ``num_present_cpus()``: from ``cpu_present`` in a ``--from`` folder (or
``/sys/devices/system/cpu/present`` on the live machine), else ``nproc``; ``--cpus`` overrides
it. Only the default tunables are modelled (no ``slab_min_order=``/``slab_max_order=``/
``slab_min_objects=`` on the kernel command line).
"""

from __future__ import annotations

import json
from pathlib import Path

from kmmlib.errors import BadRequest, ParseError
from kmmlib.procfs.slabinfo import parse_slabinfo, slabtop
from kmmlib.procfs.source import snapshot
from kmmlib.slab.calculate import calculate_order, explain_order, min_objects_for, order_objects

NAME = "slub"
HELP = "predict objects and pages per slab for every slabinfo row, beside the kernel's"

SYS_CPU = Path("/sys/devices/system/cpu")


def add_arguments(parser) -> None:
    parser.add_argument("--cpus", type=int, metavar="N",
                        help="predict for N present CPUs instead of the source's count")
    parser.add_argument("--mismatch", action="store_true",
                        help="list only the caches whose prediction differs")
    parser.add_argument("--explain", metavar="CACHE",
                        help="show calculate_order() step by step for one cache")
    parser.add_argument("--top", action="store_true",
                        help="print a slabtop-like summary of the slabinfo instead")


NR_CPUS_MAX = 8192                 # CONFIG_NR_CPUS's largest value on x86_64 (MAXSMP)


def parse_cpulist(text: str) -> list[int]:
    """A kernel cpu list such as ``0-3,8,10-11`` (``/sys/devices/system/cpu/present``)."""
    cpus: list[int] = []
    text = text.strip()
    if not text:
        return cpus
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if not 0 <= first <= last < NR_CPUS_MAX:
                raise ValueError
            cpus.extend(range(first, last + 1))
    except ValueError:
        raise ParseError(f"not a cpu list: {text!r} (expected e.g. 0-3,8: ranges low-high "
                         f"of CPUs 0..{NR_CPUS_MAX - 1})") from None
    return cpus


def cpu_counts(source) -> tuple[int, int | None, str]:
    """(num_present_cpus, nr_cpu_ids or None, where they came from) for a source."""
    if source.fell_back("slabinfo") or source.is_snapshot:
        source = snapshot()
    if source.live:
        where = {n: SYS_CPU / n for n in ("present", "possible")}
    else:
        where = {"present": source.path("cpu_present"), "possible": source.path("cpu_possible")}
    try:
        present = len(parse_cpulist(where["present"].read_text()))
        origin = str(where["present"])
    except OSError:
        present = 0
    if not present:
        try:
            present = int(source.read("nproc").split()[0])
        except (IndexError, ValueError):
            raise ParseError("nproc: expected the number of CPUs") from None
        origin = source.origin("nproc")
    try:
        possible = parse_cpulist(where["possible"].read_text())
        nr_cpu_ids = max(possible) + 1 if possible else None
    except OSError:
        nr_cpu_ids = None
    return present, nr_cpu_ids, origin


def compare(source, nr_cpus: int | None = None) -> dict:
    """The whole comparison as a plain dict (what ``--json`` prints)."""
    rows = parse_slabinfo(source.read("slabinfo"))
    notes: list[str] = []
    present, nr_cpu_ids, origin = cpu_counts(source)
    if source.fell_back("slabinfo"):
        notes.append("slabinfo came from the bundled snapshot, so the CPU count does too")
    if nr_cpus is None:
        nr_cpus = present
    else:
        if nr_cpus < 1:
            raise BadRequest(f"--cpus must be at least 1, not {nr_cpus}")
        origin = "--cpus"
    caches = []
    for r in rows:
        order = calculate_order(r.objsize, nr_cpus, nr_cpu_ids=nr_cpu_ids)
        pred = {"objperslab": order_objects(order, r.objsize), "pagesperslab": 1 << order}
        kern = {"objperslab": r.objperslab, "pagesperslab": r.pagesperslab}
        caches.append({"name": r.name, "objsize": r.objsize, "predicted": pred, "kernel": kern,
                       "match": pred == kern})
    bad = [c["name"] for c in caches if not c["match"]]
    if bad:
        notes.append("a differing row is a cache created with its own order (a boot option "
                     "slab_min_order=/slab_max_order=/slab_min_objects=) or on a kernel whose "
                     "CPU count differs from the one used here")
    return {
        "source": source.origin("slabinfo"),
        "nr_cpus": nr_cpus,
        "nr_cpus_from": origin,
        "nr_cpu_ids": nr_cpu_ids,
        "min_objects": min_objects_for(nr_cpus, nr_cpu_ids),
        "caches": caches,
        "matched": len(caches) - len(bad),
        "mismatches": bad,
        "match": not bad,
        "notes": notes,
    }


def render(result: dict, only_mismatch: bool = False) -> str:
    """The readable table: each cache's prediction beside the kernel's."""
    caches = result["caches"]
    shown = [c for c in caches if not (only_mismatch and c["match"])]
    w = max([5] + [len(c["name"]) for c in shown])
    lines = [f"{result['nr_cpus']} CPUs ({result['nr_cpus_from']}): min_objects = "
             f"4 * (fls({result['nr_cpus']}) + 1) = {result['min_objects']}",
             "",
             f"{'cache':<{w}} {'objsize':>7}   {'predicted':>13}   {'kernel':>13}",
             f"{'':<{w}} {'':>7}   {'obj/slab pages':>13}   {'obj/slab pages':>13}"]
    for c in shown:
        p, k = c["predicted"], c["kernel"]
        lines.append(f"{c['name']:<{w}} {c['objsize']:7d}   {p['objperslab']:8d} "
                     f"{p['pagesperslab']:4d}   {k['objperslab']:8d} {k['pagesperslab']:4d}  "
                     f"{'✔' if c['match'] else '✘'}")
    lines.append("")
    lines.append(f"{result['matched']} of {len(caches)} caches: objects and pages per slab "
                 "equal the kernel's" + ("" if result["match"] else " ✘"))
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def run(args) -> int:
    if args.top:
        rows = parse_slabinfo(args.source.read("slabinfo"))
        if args.json:
            print(json.dumps([r.__dict__ for r in rows], indent=2))
        else:
            print(slabtop(rows))
        return 0
    result = compare(args.source, args.cpus)
    if args.explain:
        found = [c for c in result["caches"] if c["name"] == args.explain]
        if not found:
            raise BadRequest(f"no cache named {args.explain!r} in {result['source']}")
        c = found[0]
        if args.json:
            print(json.dumps({"cache": c, "nr_cpus": result["nr_cpus"],
                              "explanation": explain_order(c["objsize"], result["nr_cpus"])
                              .splitlines()}, indent=2, ensure_ascii=False))
            return 0 if c["match"] else 1
        print(f"{c['name']}: objsize {c['objsize']}; the kernel has {c['kernel']['objperslab']}"
              f" objects in {c['kernel']['pagesperslab']} page(s) per slab")
        print(explain_order(c["objsize"], result["nr_cpus"]))
        return 0 if c["match"] else 1
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render(result, args.mismatch))
    return 0 if result["match"] else 1

"""``kmm watermarks``: recompute every zone's watermarks and protection, beside the kernel's.

Reads /proc/zoneinfo (each zone's managed pages, and the kernel's own min/low/high/promo and
``protection:``) and the sysctls ``vm.min_free_kbytes``, ``vm.watermark_scale_factor`` and
``vm.lowmem_reserve_ratio``, then runs ``__setup_per_zone_wmarks()`` and
``setup_per_zone_lowmem_reserve()`` (mm/page_alloc.c) as :mod:`kmmlib.mm.watermark` models them.
Exit status 1 when a value differs, as ``diff`` does.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from kmmlib.errors import ParseError
from kmmlib.mm.watermark import (
    PAGE_SHIFT,
    calculate_min_free_kbytes,
    calculate_totalreserve_pages,
    implied_lowmem_pages,
    recompute_zoneinfo,
    set_recommended_min_free_kbytes,
)
from kmmlib.mm.zone import ZoneConfig
from kmmlib.procfs.source import snapshot
from kmmlib.procfs.zoneinfo import parse_zoneinfo

NAME = "watermarks"
HELP = "recompute every zone's min/low/high/promo and protection, beside the kernel's"

_VALUES = ("min", "low", "high", "promo", "protection")


def add_arguments(parser) -> None:
    parser.add_argument("--all", action="store_true",
                        help="also show unpopulated zones (Movable, Device …)")


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(x) for x in text.split()]
    except ValueError:
        raise ParseError(f"{name}: expected whole numbers, got {text.strip()!r}") from None


def _one_int(text: str, name: str) -> int:
    values = _ints(text, name)
    if len(values) != 1:
        raise ParseError(f"{name}: expected one number, got {text.strip()!r}")
    return values[0]


def compare(source) -> dict:
    """The whole comparison as a plain dict (what ``--json`` prints, all zones)."""
    zones = parse_zoneinfo(source.read("zoneinfo"))
    notes: list[str] = []
    # The sysctls must describe the same kernel as the zoneinfo they are compared with.
    sysctl_src = snapshot() if source.fell_back("zoneinfo") else source
    if sysctl_src is not source:
        notes.append("zoneinfo came from the bundled snapshot, so its sysctls do too")
    mfk = _one_int(sysctl_src.read("min_free_kbytes"), "min_free_kbytes")
    wsf = _one_int(sysctl_src.read("watermark_scale_factor"), "watermark_scale_factor")
    ratio = _ints(sysctl_src.read("lowmem_reserve_ratio"), "lowmem_reserve_ratio")
    for name in ("min_free_kbytes", "watermark_scale_factor", "lowmem_reserve_ratio"):
        if sysctl_src is source and source.fell_back(name):
            notes.append(f"{name} came from the bundled snapshot but zoneinfo did not: "
                         "the two describe different kernels")

    checks = recompute_zoneinfo(zones, mfk, wsf, ratio)
    configs = {c.node: ZoneConfig.from_names([z.name for z in zones if z.node == c.node])
               for c in checks}

    def small_min(c) -> bool:        # HighMem/Movable: not lowmem, fixed small min
        return configs[c.node].wmark_small_min()[c.idx]

    # Where min_free_kbytes itself comes from: the √ rule at boot, raised by THP. Both look at
    # the zones up to gfp_zone(GFP_USER) = ZONE_NORMAL: nr_free_buffer_pages(), the managed
    # pages above each zone's high mark — all the managed pages at boot, when the marks are
    # still 0; those above today's marks when the rule runs again later (THP turned off, memory
    # hotplug: init_per_zone_wmark_min()).
    user_zones = [c for c in checks if c.idx <= configs[c.node].index("Normal")]
    above_high = sum(max(0, c.managed - c.kernel["high"]) for c in user_zones)
    sqrt_rule = calculate_min_free_kbytes(sum(c.managed for c in user_zones)
                                          << (PAGE_SHIFT - 10))
    sqrt_later = calculate_min_free_kbytes(above_high << (PAGE_SHIFT - 10))
    thp_rule = set_recommended_min_free_kbytes(
        sum(1 for c in user_zones if c.present), above_high, 0)
    origin = ("THP's set_recommended_min_free_kbytes()" if mfk == thp_rule else
              "calculate_min_free_kbytes() at boot" if mfk == sqrt_rule else
              "calculate_min_free_kbytes() after boot, on the pages above the high marks"
              if mfk == sqrt_later else
              "neither rule on today's zones: written by the user, or computed by the kernel "
              "when its managed pages or watermarks were others (deferred struct page init, "
              "memory hotplug, a rule run before the watermarks it set)")

    lowmem_pages = sum(c.managed for c in checks if not small_min(c))
    mismatched = [c for c in checks if not c.ok]
    if mismatched:
        notes.append("the kernel set its watermarks on the managed pages of its last setup "
                     "(boot, a sysctl write, memory hotplug); managed pages that changed "
                     "since (deferred struct page init, hotplug, ballooning) give other "
                     "values here, and the kernel does not recompute until the next setup")
        big = max((c for c in checks if not small_min(c) and c.kernel["min"] > c.boost),
                  key=lambda c: c.managed, default=None)
        if big is not None:
            lo, hi = implied_lowmem_pages(mfk >> (PAGE_SHIFT - 10), big.managed,
                                          big.kernel["min"] - big.boost)
            notes.append(f"{big.name}'s min in zoneinfo implies lowmem_pages in [{lo}, {hi}] "
                         f"at the kernel's last setup; today it is {lowmem_pages}")

    reserve_view = [SimpleNamespace(managed=c.managed, high=c.computed["high"], boost=c.boost,
                                    protection=c.computed["protection"]) for c in checks]
    return {
        "source": source.origin("zoneinfo"),
        "min_free_kbytes": {"sysctl": mfk, "calculate_min_free_kbytes": sqrt_rule,
                            "thp_recommended": thp_rule, "origin": origin},
        "watermark_scale_factor": wsf,
        "lowmem_reserve_ratio": ratio,
        "lowmem_pages": lowmem_pages,
        "totalreserve_pages": calculate_totalreserve_pages(reserve_view),
        "zones": [c.as_dict() for c in checks],
        "match": not mismatched,
        "notes": notes,
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "(" + ", ".join(map(str, v)) + ")"
    return str(v)


def render(result: dict) -> str:
    """The readable table: one line per zone and value, computed beside the kernel's."""
    mfk = result["min_free_kbytes"]
    zones = result["zones"]
    multi = len({z["node"] for z in zones}) > 1
    lines = [
        f"min_free_kbytes {mfk['sysctl']} kB, from {mfk['origin']}",
        f"  (√ rule on these managed pages: {mfk['calculate_min_free_kbytes']} kB; "
        f"THP recommendation: "
        f"{mfk['thp_recommended']} kB)",
        f"watermark_scale_factor {result['watermark_scale_factor']}   lowmem_reserve_ratio "
        f"{' '.join(map(str, result['lowmem_reserve_ratio']))}",
        f"lowmem pages {result['lowmem_pages']}   pages_min "
        f"{mfk['sysctl'] >> (PAGE_SHIFT - 10)}   totalreserve_pages "
        f"{result['totalreserve_pages']} (computed)",
        "",
    ]
    # The columns fit the numbers; the protection arrays, wider, get lines of their own.
    scalars = [v for v in _VALUES if v != "protection"]
    wc = max([8] + [len(_fmt(z["computed"][v])) for z in zones for v in scalars])
    wk = max([6] + [len(_fmt(z["kernel"][v])) for z in zones for v in scalars])
    lines.append(f"{'zone':<10}{'managed':>9}  {'':<11}{'computed':>{wc}}  {'kernel':>{wk}}")
    good = total = 0
    for z in zones:
        label = f"{z['node']}/{z['name']}" if multi else z["name"]
        for i, v in enumerate(_VALUES):
            c, k = z["computed"][v], z["kernel"][v]
            mark = "·" if k is None else ("✔" if c == k else "✘")
            if k is not None:
                total += 1
                good += c == k
            head = f"{label:<10}{z['managed']:>9}  " if i == 0 else " " * 21
            if v != "protection":
                lines.append(f"{head}{v:<11}{_fmt(c):>{wc}}  {_fmt(k):>{wk}}  {mark}")
            elif k is None or c == k:
                same = "" if k is None else ", the kernel's too"
                lines.append(f"{head}{v:<11}{_fmt(c)}{same}  {mark}")
            else:
                lines.append(f"{head}{v:<11}{_fmt(c)} computed  {mark}")
                lines.append(f"{' ' * 32}{_fmt(k)} kernel")
    lines.append("")
    lines.append(f"{good} of {total} values equal the kernel's, in {len(zones)} zone"
                 f"{'s' if len(zones) != 1 else ''}" + ("" if good == total else " ✘"))
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def run(args) -> int:
    result = compare(args.source)
    if not args.all:   # unpopulated zones (no RAM) have nothing to compare but the formula
        result["zones"] = [z for z in result["zones"] if z["present"]]
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render(result))
    return 0 if result["match"] else 1

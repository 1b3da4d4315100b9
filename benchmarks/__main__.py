"""``python -m benchmarks`` (``make bench``): run every benchmarks/bench_*.py and print a table.

Each module defines ``run() -> list[dict]``; a row has ``benchmark`` (what was measured),
``value`` (a number), ``unit``, ``target`` (the issue's target as text, e.g. ">= 300000") and
``ok`` (whether the value meets it). Exit status 1 if a target is missed, so CI can see it;
the numbers depend on the machine, which is why they are never asserted in unit tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    only = set(argv)
    rows = [_speed_row("before")]
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        if only and info.name.removeprefix("bench_") not in only:
            continue
        mod = importlib.import_module(f"benchmarks.{info.name}")
        print(f"running {info.name} …", file=sys.stderr, flush=True)
        rows.extend(mod.run())
    rows.append(_speed_row("after"))
    headers = ("benchmark", "value", "unit", "target", "ok")
    table = [headers] + [
        (r["benchmark"], _fmt(r["value"]), r["unit"], r["target"], "yes" if r["ok"] else "NO")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) if i in (0, 2, 3) else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0 if all(r["ok"] for r in rows) else 1


def _speed_row(when: str) -> dict:
    from benchmarks.timing import machine_speed

    return {"benchmark": f"this machine's Python speed now, {when} the benchmarks (a fixed "
                         "loop; every figure moves with it)", "value": round(machine_speed(), 2),
            "unit": "M steps/s", "target": "(report only)", "ok": True}


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

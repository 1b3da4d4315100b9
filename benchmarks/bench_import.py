"""How long ``import kmmlib`` takes in a fresh interpreter (target: under 0.3 s).

Measured as the best of several runs of ``python -X importtime``-free subprocesses, minus the
interpreter's own start-up, so the figure is what kmmlib adds.
"""

from __future__ import annotations

import subprocess
import sys
import time


def _best(code: str, runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def run() -> list[dict]:
    base = _best("pass")
    rows = []
    for label, code in (("import kmmlib", "import kmmlib"),
                        ("import kmmlib + Machine('tiny')",
                         "import kmmlib; kmmlib.Machine('tiny')"),
                        ("import kmmlib.cli (the kmm command)", "import kmmlib.cli")):
        seconds = max(0.0, _best(code) - base)
        rows.append({"benchmark": label, "value": round(seconds, 3), "unit": "s",
                     "target": "< 0.3", "ok": seconds < 0.3})
    return rows

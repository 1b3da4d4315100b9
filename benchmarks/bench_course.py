"""Wall time of the whole course under nbval (every chapter and exercise solution), as
`make test` runs it (target: under 90 s on 2 cores)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run() -> list[dict]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval", "notebooks/",
                        "exercises/solutions/"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    passed = r.returncode == 0
    return [{"benchmark": "whole-course nbval (notebooks/ + exercises/solutions/)"
             + ("" if passed else " — FAILED, see make test"),
             "value": round(seconds, 1), "unit": "s", "target": "< 90",
             "ok": passed and seconds < 90}]

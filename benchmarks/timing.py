"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], runs: int = 3) -> float:
    """The fastest of ``runs`` wall-clock timings of ``fn()``, each after a garbage collection:
    the least disturbed run is the best estimate of the code's own cost."""
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine_speed(steps: int = 1_000_000) -> float:
    """Millions of steps per second of a fixed pure-Python loop (a list, a dict and integer
    arithmetic, as the simulator's hot paths use them): how fast this machine runs Python at
    the moment. On a shared virtual machine it moves by up to 2x from one minute to the next,
    and every other figure of the table moves with it, so the table prints it first and last."""
    def loop() -> None:
        free = list(range(1024))
        live: dict[int, int] = {}
        for i in range(steps):
            pfn = free[i & 1023]
            if pfn in live:
                del live[pfn]
            else:
                live[pfn] = i >> 3
    return steps / best_of(loop, runs=3) / 1e6

"""Chapter 09: a real kernel's kmem trace, read and replayed through the simulator.

- :mod:`kmmlib.trace.parse` — the ftrace text of the ``kmem`` tracepoints
  (``include/trace/events/kmem.h``), plain or xz: :func:`parse_line` for one line,
  :func:`iter_records` for whole traces (fast), unknown events and bad lines counted;
- :mod:`kmmlib.trace.pipeline` — the same records, read and parsed by a child process while
  this one replays them (two CPUs);
- :mod:`kmmlib.trace.replay` — :class:`Replay`: every page and slab event made again on a
  simulated machine sized like the traced one, and a report of where simulator and kernel
  differ; ``kmm replay`` prints it;
- :mod:`kmmlib.trace.step` — one page event at a time, for the chapter's widget;
- :mod:`kmmlib.trace.capture` — ``python -m kmmlib.trace.capture`` records a trace on your
  machine (root, tracefs); :func:`bundled_trace` is the real one shipped with kmmlib.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "TraceEvent": "kmmlib.trace.parse",
    "TraceStats": "kmmlib.trace.parse",
    "TraceLines": "kmmlib.trace.parse",
    "parse_line": "kmmlib.trace.parse",
    "iter_records": "kmmlib.trace.parse",
    "read_trace": "kmmlib.trace.parse",
    "Replay": "kmmlib.trace.replay",
    "replay": "kmmlib.trace.replay",
    "machine_setup": "kmmlib.trace.replay",
    "bundled_trace": "kmmlib.trace.capture",
    "trim_trace": "kmmlib.trace.capture",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kmmlib.trace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""kmmlib: a simulator of Linux kernel memory management, faithful enough that its numbers
match a real kernel's, and the core of the kmm-course notebooks.

The core imports nothing from Jupyter: pictures live in :mod:`kmmlib.viz` (matplotlib) and
widgets in :mod:`kmmlib.widgets` (ipywidgets), both on top of the plain-Python models here.
Names below are loaded on first use, so ``import kmmlib`` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Machine": "kmmlib.machine",
    "PRESETS": "kmmlib.machine",
    "ProcSource": "kmmlib.procfs.source",
    "snapshot": "kmmlib.procfs.source",
    "EventLog": "kmmlib.events",
    "Collect": "kmmlib.events",
    "Stepper": "kmmlib.stepper",
    "KmmError": "kmmlib.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kmmlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

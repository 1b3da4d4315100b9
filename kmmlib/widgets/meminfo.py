"""The workload widget (chapter 01): read files, malloc, write tmpfs, walk directories, drop
caches — and watch ``free`` and MemAvailable follow.

Two bars, the machine at the start and now: MemTotal split into free (green), buff/cache (blue;
its tmpfs part hatched: cache that cannot be dropped) and the rest (grey), with a bracket
under each of the length of "available", from the right end — it covers free and the cache the
kernel could drop, not tmpfs, not anonymous memory. ◀ / ▶ step through a script; the chooser
and **do it** apply an operation of your own. Under the bars, ``free -h`` and the meminfo lines
that moved.

A :class:`~kmmlib.widgets.stepper.StepperWidget` over
:class:`kmmlib.userspace.workload.MeminfoWorkload`: ``widget.text`` is exactly what it shows.
"""

from __future__ import annotations

import ipywidgets as W

from kmmlib.stepper import Stepper
from kmmlib.userspace.free import free_columns
from kmmlib.userspace.workload import MIB, MeminfoWorkload
from kmmlib.widgets.stepper import StepperWidget

DEFAULT_SCRIPT = [("read", 4096), ("malloc", 2048), ("tmpfs", 1024), ("dentries", 512),
                  ("drop_caches",), ("exit",), ("rm_tmpfs",)]
CHOICES = {"read files": "read", "malloc": "malloc", "write tmpfs": "tmpfs",
           "walk directories": "dentries", "drop caches": "drop_caches",
           "exit the malloc'er": "exit", "rm the tmpfs files": "rm_tmpfs"}
_AMOUNTS = ("read", "malloc", "tmpfs", "dentries")
_COLORS = {"used": "#9e9e9e", "cache": "#6baed6", "free": "#a1d99b"}


def free_bars_svg(model: MeminfoWorkload, width: int = 620) -> str:
    """Start and now as two bars of MemTotal: the rest (MemTotal − free − buff/cache: what old
    ``free`` called used), tmpfs (Shmem, hatched), the other buff/cache, free; under each, a
    black bracket of length "available", measured from the right end."""
    left, bar, row = 50, width - 60, 36
    parts = [f"<svg width='{width}' height='{2 * row + 24}' xmlns='http://www.w3.org/2000/svg'"
             " style='font: 11px sans-serif'><defs><pattern id='shm' width='6' height='6' "
             "patternUnits='userSpaceOnUse' patternTransform='rotate(45)'><rect width='6' "
             "height='6' fill='#6baed6'/><line x1='0' y1='0' x2='0' y2='6' stroke='#08519c' "
             "stroke-width='2'/></pattern></defs>"]
    for k, (label, mi) in enumerate((("start", model.start), ("now", model.mi))):
        c = free_columns(mi)
        total = max(c["total"], 1)
        y = 4 + k * row

        def x(kb: float, total: int = total) -> float:
            return left + bar * min(max(kb, 0), total) / total

        shm = min(mi.get("Shmem", 0), c["buff_cache"])
        rest = total - c["free"] - c["buff_cache"]
        spans = (("used (total − free − buff/cache)", 0, rest, _COLORS["used"]),
                 ("tmpfs/shmem: cache that cannot be dropped", rest, rest + shm, "url(#shm)"),
                 ("buff/cache", rest + shm, rest + c["buff_cache"], _COLORS["cache"]),
                 ("free", rest + c["buff_cache"], total, _COLORS["free"]))
        parts.append(f"<text x='2' y='{y + 15}'>{label}</text>")
        for name, a, b, fill in spans:
            if x(b) > x(a):
                parts.append(f"<rect x='{x(a):.1f}' y='{y + 3}' width='{x(b) - x(a):.1f}' "
                             f"height='16' fill='{fill}'><title>{name}: {(b - a) // MIB} MiB"
                             "</title></rect>")
        ax, yb = x(total - c["available"]), y + 23
        parts.append(f"<path d='M{ax:.1f},{yb - 3} V{yb} H{x(total):.1f} V{yb - 3}' "
                     f"fill='none' stroke='black' stroke-width='1.5'><title>available: "
                     f"{c['available'] // MIB} MiB</title></path>")
    parts.append(f"<text x='{left}' y='{2 * row + 20}' fill='#444'>grey used · hatched "
                 "tmpfs · blue buff/cache · green free · bracket: available</text></svg>")
    return "".join(parts)


class WorkloadWidget(StepperWidget):
    """◀ / step ▶ through a workload on a machine's meminfo (the snapshot's by default); pick
    an operation and an amount and press **do it** for your own."""

    def __init__(self, source=None, script: list[tuple] | None = None):
        from kmmlib.procfs.source import snapshot

        src = source if source is not None else snapshot()
        stepper = Stepper(lambda: MeminfoWorkload.from_source(src),
                          DEFAULT_SCRIPT if script is None else script,
                          describe=MeminfoWorkload.describe)
        self.what = W.Dropdown(options=list(CHOICES), value="read files",
                               layout=W.Layout(width="170px"))
        self.mib = W.BoundedIntText(value=1024, min=1, max=1 << 22, step=256,
                                    description="MiB", layout=W.Layout(width="150px"),
                                    style={"description_width": "30px"})
        self.do_button = W.Button(description="do it", tooltip="apply this operation now")
        self.do_button.on_click(lambda _: self.apply(CHOICES[self.what.value],
                                                     self.mib.value))
        self.what.observe(lambda ch: setattr(self.mib, "disabled",
                                             CHOICES[ch["new"]] not in _AMOUNTS),
                          names="value")
        super().__init__(stepper, extra=[self.what, self.mib, self.do_button],
                         picture=lambda st: free_bars_svg(st.model))

    def apply(self, kind: str, mib: int | None = None) -> None:
        """What **do it** does: one operation now (refused ones show why, state intact)."""
        self.stepper.do((kind, mib) if kind in _AMOUNTS else (kind,))
        self.refresh()

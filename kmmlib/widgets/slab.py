"""The slab explorer (chapter 08): one cache's slabs as rows of object squares.

Each row is a slab — the CPU's slab first, then the node's partial list from its head, then full
slabs (on no list) — and each square an object: blue and numbered when allocated (``#n`` in
allocation order), green when free on the per-cpu lockless freelist, white when free on the
slab's own freelist. Buttons allocate an object, free the chosen one (on the chosen CPU: a free
from the other CPU into a cpu slab is a *remote* free) and shrink the cache; ◀ / ▶ step through
the script and undo. The narration says when a new slab is taken from the buddy allocator and
when an empty one goes back (or is kept: ``min_partial``).

The widget is a :class:`~kmmlib.widgets.stepper.StepperWidget` over a
:class:`kmmlib.slab.slub.SlabExplorer`: ``widget.text`` is exactly what it shows.
"""

from __future__ import annotations

import html

import ipywidgets as W

from kmmlib.slab.slub import SlabExplorer
from kmmlib.stepper import Stepper
from kmmlib.widgets.stepper import StepperWidget

COLORS = {"used": "#4c78a8", "cpu": "#9bd39b", "free": "#ffffff"}

DEFAULT_SCRIPT = ([("alloc",)] * 17 + [("free", 3), ("free", 5), ("alloc",), ("free", 16),
                                        ("free", 17), ("alloc",), ("alloc",)]
                  + [("free", n) for n in (1, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)]
                  + [("shrink",)])


def slabs_svg(model: SlabExplorer, width: int = 640, cell: int = 16) -> str:
    """The cache's slabs as SVG rows of squares (see the module docstring for the colours)."""
    slub, s = model.slub, model.cache
    state = slub.object_state(s)
    rows: list[tuple[str, object]] = []
    for cpu, c in enumerate(s.cpu_slab):
        if c.slab is not None:
            rows.append((f"cpu {cpu} slab", c.slab))
    rows += [(f"partial[{i}]", sl) for i, sl in enumerate(s.node.partial)]
    rows += [("full", sl) for sl in s.slabs.values() if sl.where in ("none", "full")]
    per_row = max(1, (width - 110) // (cell + 2))
    lines_per_slab = -(-s.objects_per_slab // per_row)
    height = 10 + max(1, len(rows)) * (lines_per_slab * (cell + 2) + 8) + 20
    parts = [f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
             "style='font: 10px sans-serif'>"]
    y = 6
    if not rows:
        parts.append(f"<text x='4' y='{y + 12}'>no slabs: the cache holds no pages</text>")
    for label, slab in rows:
        parts.append(f"<text x='2' y='{y + cell - 4}'>{html.escape(label)}</text>")
        parts.append(f"<text x='2' y='{y + cell + 7}' fill='#666'>pfn {slab.pfn:#x}</text>")
        for i in range(slab.objects):
            addr = slab.base + s.red_left_pad + i * s.size
            st = state[addr]
            x = 100 + (i % per_row) * (cell + 2)
            yy = y + (i // per_row) * (cell + 2)
            tip = f"slot {i} at {addr:#x}: " + {"used": f"object #{model.labels.get(addr)}",
                                                "cpu": "free (per-cpu freelist)",
                                                "free": "free (slab freelist)"}[st]
            parts.append(f"<rect x='{x}' y='{yy}' width='{cell}' height='{cell}' "
                         f"fill='{COLORS[st]}' stroke='#555' stroke-width='0.6'>"
                         f"<title>{tip}</title></rect>")
            if st == "used" and addr in model.labels:
                parts.append(f"<text x='{x + cell / 2}' y='{yy + cell - 4}' fill='white' "
                             f"text-anchor='middle' style='font-size:8px'>"
                             f"{model.labels[addr]}</text>")
        y += lines_per_slab * (cell + 2) + 8
    zone = model.zone
    parts.append(f"<text x='2' y='{y + 12}' fill='#333'>buddy allocator: {zone.nr_free_pages} "
                 f"of {zone.managed_pages} pages free</text>")
    parts.append("</svg>")
    return "".join(parts)


class SlabExplorerWidget(StepperWidget):
    """Buttons over a :class:`SlabExplorer`: alloc, free #n (on a CPU), shrink, and the
    stepper's ◀ back / step ▶ / play / reset over a script."""

    def __init__(self, object_size: int = 256, *, script=None, nr_cpus: int = 1,
                 nr_pages: int = 32, min_partial: int | None = None):
        make = lambda: SlabExplorer(object_size, nr_pages=nr_pages,  # noqa: E731
                                    nr_cpus=nr_cpus, min_partial=min_partial)
        stepper = Stepper(make, DEFAULT_SCRIPT if script is None else script)
        self.alloc_button = W.Button(description="alloc", tooltip="kmem_cache_alloc()",
                                     layout=W.Layout(width="70px"))
        self.free_choice = W.Dropdown(description="", options=[], layout=W.Layout(width="80px"))
        self.free_button = W.Button(description="free", tooltip="kmem_cache_free()",
                                    layout=W.Layout(width="60px"))
        self.cpu_choice = W.Dropdown(options=list(range(nr_cpus)), value=0, description="cpu",
                                     layout=W.Layout(width="110px"))
        self.shrink_button = W.Button(description="shrink", tooltip="kmem_cache_shrink()",
                                      layout=W.Layout(width="70px"))
        self.alloc_button.on_click(lambda _: self._act(("alloc", self.cpu_choice.value)))
        self.free_button.on_click(lambda _: self._free())
        self.shrink_button.on_click(lambda _: self._act(("shrink",)))
        extra = [self.alloc_button, self.free_choice, self.free_button, self.shrink_button]
        if nr_cpus > 1:
            extra.append(self.cpu_choice)
        super().__init__(stepper, extra=extra, picture=lambda st: slabs_svg(st.model))

    def _act(self, op) -> None:
        self.stepper.do(op)
        self.refresh()

    def _free(self) -> None:
        if self.free_choice.value is not None:
            self._act(("free", self.free_choice.value, self.cpu_choice.value))

    def refresh(self) -> None:
        super().refresh()
        live = sorted(self.stepper.model.objects)
        options = [(f"#{n}", n) for n in live]
        if [o[1] for o in self.free_choice.options] != live:
            self.free_choice.options = options
        if live and self.free_choice.value not in live:
            self.free_choice.value = live[-1]          # the newest object by default
        self.free_button.disabled = not live

"""The page-fault stepper: one load or store, eight steps, on a small simulated machine.

A thin layer over :func:`kmmlib.userspace.process.fault_stepper` (a
:class:`~kmmlib.stepper.Stepper` over :class:`~kmmlib.userspace.process.FaultDemo`): the generic
:class:`~kmmlib.widgets.stepper.StepperWidget` buttons, plus a page chooser and read/write
toggle that start a new access, and a picture of the page-table walk — which tables exist,
where the walk stops, the PTE, and the page taken from the page allocator.
"""

from __future__ import annotations

import html

import ipywidgets as W

from kmmlib.stepper import Stepper
from kmmlib.userspace.process import FAULT_STEPS, PAGE_SHIFT, fault_stepper, pt_index
from kmmlib.widgets.stepper import StepperWidget

_GREEN, _GREY, _BLUE, _RED = "#d8f0d8", "#eeeeee", "#cfe2ff", "#f8d7da"


def walk_svg(stepper: Stepper) -> str:
    """An SVG of the current access: CR3 → PGD → PUD → PMD → PTE → page, each box filled
    when the table exists, and the eight steps with the current one highlighted."""
    demo = stepper.model
    fp = demo.current
    mm = demo.mm
    addr = fp.addr if fp is not None else demo.addr(0)
    path, pte = mm.walk(addr)
    idx = pt_index(addr)
    boxes = [("CR3", f"pfn {mm.pgd.pfn}", _GREEN)]
    names = ["PGD", "PUD", "PMD", "PTE"]
    table = mm.pgd
    for level, i in zip(names, idx[:4], strict=True):
        fill = _GREEN if table is not None else _GREY
        label = f"pfn {table.pfn}" if table is not None else "none"
        boxes.append((f"{level}[{i}]", label, fill))
        table = table.entries.get(i) if table is not None and level != "PTE" else None
    if pte and not pte & 1:
        page = ("page", "PROT_NONE", _RED)
    elif pte:
        pfn = pte >> PAGE_SHIFT & ((1 << 40) - 1)
        zero = pfn == mm.system.zero_pfn
        page = ("page", f"pfn {pfn}" + (" (zero)" if zero else ""), _BLUE)
    else:
        page = ("page", "none yet", _GREY)
    boxes.append(page)
    w, h, gap = 96, 44, 14
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{len(boxes) * (w + gap) + 10}' "
             f"height='{h + 78}' font-family='monospace' font-size='11'>"]
    for k, (title, label, fill) in enumerate(boxes):
        x = 5 + k * (w + gap)
        dash = " stroke-dasharray='4 3'" if fill == _GREY else ""
        parts.append(f"<rect x='{x}' y='5' width='{w}' height='{h}' rx='5' fill='{fill}' "
                     f"stroke='#555'{dash}/>")
        parts.append(f"<text x='{x + w / 2}' y='22' text-anchor='middle'>"
                     f"{html.escape(title)}</text>")
        parts.append(f"<text x='{x + w / 2}' y='38' text-anchor='middle'>"
                     f"{html.escape(label)}</text>")
        if k:
            parts.append(f"<line x1='{x - gap}' y1='{5 + h / 2}' x2='{x - 2}' y2='{5 + h / 2}' "
                         "stroke='#555' marker-end='url(#a)'/>")
    parts.append("<defs><marker id='a' markerWidth='6' markerHeight='6' refX='5' refY='3' "
                 "orient='auto'><path d='M0,0 L6,3 L0,6 z' fill='#555'/></marker></defs>")
    current = fp.n if fp is not None else 0
    sw = (len(boxes) * (w + gap)) / len(FAULT_STEPS)
    for k, name in enumerate(FAULT_STEPS, 1):
        x = 5 + (k - 1) * sw
        fill = "#ffe08a" if k == current else ("#f4f4f4" if k > current else "#e6f2e6")
        parts.append(f"<rect x='{x:.0f}' y='{h + 20}' width='{sw - 4:.0f}' height='24' rx='4' "
                     f"fill='{fill}' stroke='#999'/>")
        parts.append(f"<text x='{x + (sw - 4) / 2:.0f}' y='{h + 36}' text-anchor='middle'>"
                     f"{k}. {html.escape(name)}</text>")
    what = (f"{fp.kind} {addr:#x}" + (f" — {fp.outcome}" if fp.done else "")
            if fp is not None else "no access yet")
    parts.append(f"<text x='5' y='{h + 66}'>{html.escape(what)}</text></svg>")
    return "".join(parts)


class FaultStepperWidget(StepperWidget):
    """Step through page faults. **step ▶** runs the next step of the planned accesses; pick a
    page and read/write and press **access** to start one of your own."""

    def __init__(self, plan: list[tuple[int, str]] | None = None, **kw):
        stepper = fault_stepper(plan, **kw)
        npages = stepper.model.npages
        self.page = W.Dropdown(options=list(range(npages)), value=0, description="page",
                               layout=W.Layout(width="110px"))
        self.kind = W.ToggleButtons(options=["write", "read"], value="write",
                                    layout=W.Layout(width="auto"))
        self.kind.style.button_width = "52px"
        self.access_button = W.Button(description="access", tooltip="start this access")
        self.access_button.on_click(lambda _: self.start(self.page.value, self.kind.value))
        super().__init__(stepper, extra=[self.page, self.kind, self.access_button],
                         picture=walk_svg)

    def start(self, page: int, kind: str) -> None:
        """Begin an access (its first step), and queue its remaining steps on the script."""
        st = self.stepper
        # The plan's remaining steps belong to the access in progress: a new access ends it.
        st.do(("access", page, kind), keep_rest=False)
        st.ops.extend([("step",)] * st.model.steps_left())
        self.refresh()

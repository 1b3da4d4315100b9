"""Chapter 09's widget: step through a real trace's page requests and see the simulator answer.

:func:`trace_widget` puts the stepping buttons (:class:`~kmmlib.widgets.stepper.StepperWidget`)
over :func:`kmmlib.trace.step.stepper_for`: each step is one page event of the kernel's trace
(who asked, on which CPU, what the kernel returned) and the simulator's narration of what it
did for the same request; above the text, a bar of free pages per order in the simulated zone.
``widget.text`` is what it shows, so the notebook prints it in checked cells.
"""

from __future__ import annotations

from kmmlib.stepper import Stepper
from kmmlib.trace.step import page_records, stepper_for
from kmmlib.widgets.stepper import StepperWidget

ORDER_COLORS = ("#fde0dd", "#fcc5c0", "#fa9fb5", "#f768a1", "#dd3497", "#ae017e", "#7a0177",
                "#49006a", "#3f007d", "#2c0058", "#1a0033")


def free_pages_svg(stepper: Stepper, width: int = 640) -> str:
    """One bar per order: the free pages the simulated zone holds in blocks of that order
    (log scale), and the pages on each CPU's per-cpu list."""
    import math

    z = stepper.model.zone
    nr = z.nr_free()
    bars = [(f"o{o}", n << o, ORDER_COLORS[min(o, 10)]) for o, n in enumerate(nr)]
    bars += [(f"cpu{i}", p.count, "#80cbc4") for i, p in enumerate(z.pcp)]
    top = math.log10(max(max(v for _, v, _ in bars), 10))
    bw = (width - 10) / len(bars)
    h = 90
    out = [f"<svg width='{width}' height='{h + 30}' xmlns='http://www.w3.org/2000/svg' "
           "style='font: 10px sans-serif'>"]
    for i, (label, v, color) in enumerate(bars):
        bh = 0 if v <= 0 else max(2, h * math.log10(v + 1) / top)
        x = 5 + i * bw
        out.append(f"<rect x='{x:.1f}' y='{h - bh:.1f}' width='{bw - 3:.1f}' height='{bh:.1f}' "
                   f"fill='{color}' stroke='#444' stroke-width='0.3'><title>{label}: {v} pages"
                   "</title></rect>")
        out.append(f"<text x='{x + 1:.1f}' y='{h + 12}'>{label}</text>")
        out.append(f"<text x='{x + 1:.1f}' y='{h + 24}' fill='#666'>{v}</text>")
    out.append("</svg>")
    return "".join(out)


def trace_widget(path=None, n: int = 300, *, skip: int = 0, stepper: Stepper | None = None
                 ) -> StepperWidget:
    """The stepping widget over the first ``n`` page events of a trace (the bundled one by
    default), replayed into the snapshot machine's Normal zone."""
    if stepper is None:
        if path is None:
            from kmmlib.trace.capture import bundled_trace
            path = bundled_trace()
        stepper = stepper_for(page_records(path, n, skip=skip))
    return StepperWidget(stepper, picture=free_pages_svg, play_interval_ms=300)

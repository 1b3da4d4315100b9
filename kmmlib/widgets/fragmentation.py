"""Chapter 07's widget: the pageblock explorer.

:class:`PageblockExplorer` steps the chapter's mixed workload
(:func:`kmmlib.mm.fragmentation.mobility_workload`) through a
:class:`~kmmlib.mm.fragmentation.PageblockModel`, with grouping by mobility on or off: a grid
of pageblocks (background = the pageblock's migrate type, bar = its pages by what they are,
red corner = mixed), the narration of the last request — every claim, steal and the
``mm_page_alloc_extfrag`` facts it reported — and the pageblock map in text. Buttons: the
stepper's ◀ back, step ▶, play, reset; "+100 requests"; "next fallback" (run to the next claim
or steal); "compact". ``widget.text`` is what it shows, so notebooks print it in checked cells.
"""

from __future__ import annotations

import html

import ipywidgets as W

from kmmlib.mm.fragmentation import (
    FREE,
    PCP,
    PageblockMap,
    PageblockModel,
    WorkloadSpec,
    describe_request,
    mobility_workload,
)
from kmmlib.mm.migratetype import MIGRATE_TYPES, migratetype_names
from kmmlib.mm.migratetype import MIGRATETYPE_COLORS as TYPE_COLORS
from kmmlib.stepper import Stepper
from kmmlib.widgets.stepper import StepperWidget

FREE_COLOR = "#f2f2f2"


def pageblock_svg(pbm: PageblockMap, columns: int = 8, cell: int = 56) -> str:
    """The pageblock grid as SVG (one ``<rect>`` group per pageblock, with a tooltip)."""
    n = pbm.nr_pageblocks
    rows = (n + columns - 1) // columns
    per = 1 << pbm.pageblock_order
    mixed = pbm.mixed_mask()
    out = [f"<svg width='{columns * cell + 60}' height='{rows * cell + 22}' "
           "xmlns='http://www.w3.org/2000/svg' style='font: 10px sans-serif'>"]
    for i in range(n):
        r, c = divmod(i, columns)
        x, y = 56 + c * cell, r * cell
        mt = pbm.migratetype[i]
        used = {migratetype_names[k]: int(pbm.pages[i, k]) for k in range(MIGRATE_TYPES)
                if pbm.pages[i, k]}
        tip = (f"pfn {pbm.start_pfn[i]}: {migratetype_names[mt]} pageblock, "
               f"{int(pbm.pages[i, FREE] + pbm.pages[i, PCP])} free, used: "
               + (", ".join(f"{k} {v}" for k, v in used.items()) or "none")
               + (" (mixed)" if mixed[i] else ""))
        out.append(f"<g><title>{html.escape(tip)}</title>"
                   f"<rect x='{x + 2}' y='{y + 2}' width='{cell - 4}' height='{cell - 4}' "
                   f"fill='{TYPE_COLORS[mt]}' fill-opacity='0.18' stroke='{TYPE_COLORS[mt]}' "
                   "stroke-width='2'/>")
        left = x + 6
        for k in (*range(MIGRATE_TYPES), FREE):
            pages = int(pbm.pages[i, k]) + (int(pbm.pages[i, PCP]) if k == FREE else 0)
            if pages:
                w = (cell - 12) * pages / per
                color = FREE_COLOR if k == FREE else TYPE_COLORS[k]
                out.append(f"<rect x='{left:.2f}' y='{y + cell * 0.35:.1f}' width='{w:.2f}' "
                           f"height='{cell * 0.3:.1f}' fill='{color}'/>")
                left += w
        if mixed[i]:
            out.append(f"<rect x='{x + cell - 14}' y='{y + 4}' width='9' height='9' "
                       "fill='red'/>")
        out.append("</g>")
        if c == 0:
            out.append(f"<text x='0' y='{y + cell / 2 + 3}'>{pbm.start_pfn[i]}</text>")
    legend = " ".join(
        f"<tspan fill='{TYPE_COLORS[k]}'>■ {migratetype_names[k]}</tspan>" for k in range(3))
    out.append(f"<text x='56' y='{rows * cell + 16}'>{legend} <tspan fill='#999'>■ free"
               "</tspan> <tspan fill='red'>■ mixed</tspan></text></svg>")
    return "".join(out)


class PageblockExplorer(W.VBox):
    """Step the mixed workload on a zone of ``nr_pages`` (16 pageblocks of 2 MiB by default)
    with grouping by mobility on or off; see the module docstring."""

    def __init__(self, *, grouping: bool = True, seed: int = 1, nr_pages: int = 8192,
                 steps_per_cycle: int = 20000, cycles: int = 2, columns: int = 8):
        self.nr_pages, self.columns = nr_pages, columns
        self.steps_per_cycle, self.cycles = steps_per_cycle, cycles
        self.grouping = W.ToggleButtons(options=[("grouping on", True), ("grouping off", False)],
                                        value=grouping, description="mobility")
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="140px"))
        self.stepper = Stepper(lambda: PageblockModel(nr_pages), [], describe=describe_request)
        self.hundred_button = W.Button(description="+100 requests",
                                       tooltip="do the next 100 requests")
        self.fallback_button = W.Button(description="next fallback",
                                        tooltip="run to the next claim or steal")
        self.compact_button = W.Button(description="compact",
                                       tooltip="compact_zone(): move movable pages up")
        self.hundred_button.on_click(lambda _: self._run(100))
        self.fallback_button.on_click(lambda _: self.next_fallback())
        self.compact_button.on_click(lambda _: self._do(("compact",)))
        self.grouping.observe(lambda _: self.load(), names="value")
        self.seed.observe(lambda _: self.load(), names="value")
        self.steps_widget = StepperWidget(self.stepper, picture=self._picture,
                                          play_interval_ms=300)
        controls = W.HBox([self.hundred_button, self.fallback_button, self.compact_button])
        super().__init__([W.HBox([self.grouping, self.seed]), controls, self.steps_widget])
        self.load()

    def load(self) -> None:
        """Start the workload for the chosen seed and grouping, from its first request."""
        spec = WorkloadSpec(nr_pages=self.nr_pages, cycles=self.cycles,
                            steps_per_cycle=self.steps_per_cycle, seed=self.seed.value)
        grouping = self.grouping.value
        st = self.stepper
        st.make_model = lambda: PageblockModel(self.nr_pages, grouping=grouping)
        st.ops = mobility_workload(spec)
        st.reset()
        self.refresh()

    def _do(self, op) -> None:
        self.stepper.do(op)
        self.refresh()

    def _run(self, n: int) -> None:
        st = self.stepper
        for _ in range(n):
            if st.step() is None:
                break
        self.refresh()

    def next_fallback(self, limit: int = 20000) -> int:
        """Run requests until one makes the allocator claim or steal; returns how many ran."""
        st = self.stepper
        n = 0
        while n < limit:
            step = st.step()
            if step is None:
                break
            n += 1
            if any(e.kind in ("claim", "steal") for e in step.events):
                break
        self.refresh()
        return n

    def refresh(self) -> None:
        self.steps_widget.refresh()
        self.hundred_button.disabled = self.fallback_button.disabled = self.stepper.at_end

    def _picture(self, stepper: Stepper) -> str:
        return pageblock_svg(stepper.model.pageblock_map(), self.columns)

    @property
    def text(self) -> str:
        """Exactly the text the widget shows under the picture."""
        return self.stepper.state_text()

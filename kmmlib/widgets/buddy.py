"""Chapter 06's widget: step the buddy allocator through splits and merges.

:class:`BuddyWidget` puts buttons over a :class:`kmmlib.stepper.Stepper` of a
:class:`kmmlib.mm.buddy_model.BuddyModel`: a memory bar (one rectangle per block, free blocks
coloured by order, allocated ones grey), the free lists and buddyinfo, one narration line per
event; ◀ back, step ▶, play, reset; "alloc order k" and "free" a chosen block; scripted
scenarios and a random one from a seed. ``widget.text`` is what it shows, so notebooks print
it in checked cells. It responds in a few milliseconds per step for zones of 4096 pages
(benchmarks/bench_buddy.py measures it).
"""

from __future__ import annotations

import html

import ipywidgets as W

from kmmlib.mm.buddy_model import SCENARIOS, BuddyModel, random_scenario, stepper_for
from kmmlib.stepper import Stepper
from kmmlib.widgets.stepper import StepperWidget

# Free blocks: one colour per order (light for small, dark for large), as in the viz module.
ORDER_COLORS = ("#fde0dd", "#fcc5c0", "#fa9fb5", "#f768a1", "#dd3497", "#ae017e", "#7a0177",
                "#49006a", "#3f007d", "#2c0058", "#1a0033", "#120024", "#0c0018", "#060010")
STATE_COLORS = {"allocated": "#9e9e9e", "pcp": "#80cbc4"}
RANDOM = "random (from the seed)"


def memory_bar_svg(model: BuddyModel, width: int = 640, row_pages: int | None = None) -> str:
    """The zone as rows of blocks: free blocks coloured by order (label = order when wide
    enough), allocated grey, per-cpu teal. One rectangle per block, so 4096 pages stay cheap."""
    z = model.zone
    n = z.spanned_pages
    row_pages = row_pages or min(n, 64 if n <= 256 else 512 if n <= 4096 else 4096)
    rows = (n + row_pages - 1) // row_pages
    left, rh = 48, 18
    scale = (width - left - 4) / row_pages
    out = [f"<svg width='{width}' height='{rows * (rh + 4) + 16}' "
           "xmlns='http://www.w3.org/2000/svg' style='font: 10px sans-serif'>"]
    for r in range(rows):
        out.append(f"<text x='0' y='{r * (rh + 4) + 13}'>{z.zone_start_pfn + r * row_pages}"
                   "</text>")
    for pfn, order, state in model.blocks():
        color = ORDER_COLORS[min(order, len(ORDER_COLORS) - 1)] if state == "free" \
            else STATE_COLORS[state]
        start = pfn - z.zone_start_pfn
        size = 1 << order
        while size > 0:                       # a block may wrap onto the next row
            r, c = divmod(start, row_pages)
            piece = min(size, row_pages - c)
            x, y, w = left + c * scale, r * (rh + 4), piece * scale
            title = f"pfn {pfn}, order {order}, {state}"
            out.append(f"<rect x='{x:.2f}' y='{y}' width='{max(w - 0.5, 0.5):.2f}' "
                       f"height='{rh}' fill='{color}' stroke='#444' stroke-width='0.3'>"
                       f"<title>{html.escape(title)}</title></rect>")
            if state == "free" and w >= 9:
                fg = "#fff" if order >= 4 else "#000"
                out.append(f"<text x='{x + 2:.2f}' y='{y + 13}' fill='{fg}'>{order}</text>")
            start += piece
            size -= piece
    y = rows * (rh + 4) + 12
    out.append(f"<text x='0' y='{y}'>free blocks by order: light (0) → dark (10); "
               "grey = allocated; teal = per-cpu lists</text></svg>")
    return "".join(out)


class BuddyWidget(W.VBox):
    """The buddy allocator, step by step. ``BuddyWidget()`` starts on the first scripted
    scenario; ``BuddyWidget(scenario="fragmentation")``, or ``BuddyWidget(pages=4096,
    scenario=RANDOM, seed=7, steps=300)`` for a random run."""

    def __init__(self, scenario: str | None = None, *, pages: int = 64, seed: int = 1,
                 steps: int = 40, max_order: int = 3):
        names = [*SCENARIOS, RANDOM]
        scenario = scenario or names[0]
        if scenario not in names:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {names}")
        self.pages, self.steps, self.max_order = pages, steps, max_order
        self.stepper: Stepper = stepper_for(pages)
        self.scenario = W.Dropdown(options=names, value=scenario, description="scenario",
                                   layout=W.Layout(width="300px"))
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="140px"))
        self.why = W.HTML()
        self.order = W.Dropdown(options=list(range(11)), value=0, description="order",
                                layout=W.Layout(width="130px"))
        self.alloc_button = W.Button(description="alloc", tooltip="alloc_pages(order)")
        self.block = W.Dropdown(options=[], description="block", layout=W.Layout(width="230px"))
        self.free_button = W.Button(description="free", tooltip="__free_pages(block)")
        self.alloc_button.on_click(lambda _: self._do(("alloc", self.order.value)))
        self.free_button.on_click(self._free_clicked)
        self.scenario.observe(lambda _: self.load(), names="value")
        self.seed.observe(lambda _: self.load() if self.scenario.value == RANDOM else None,
                          names="value")
        self.steps_widget = StepperWidget(self.stepper, picture=self._picture)
        self.steps_widget.back_button.on_click(lambda _: self._sync())
        self.steps_widget.step_button.on_click(lambda _: self._sync())
        self.steps_widget.reset_button.on_click(lambda _: self._sync())
        self.steps_widget.play.observe(lambda _: self._sync(), names="value")
        controls = W.HBox([self.order, self.alloc_button, self.block, self.free_button])
        super().__init__([W.HBox([self.scenario, self.seed]), self.why, self.steps_widget,
                          controls])
        self.load()

    # -- actions -------------------------------------------------------------------------------

    def load(self) -> None:
        """Start the chosen scenario from its first step."""
        name = self.scenario.value
        if name == RANDOM:
            pages, ops = self.pages, random_scenario(self.pages, self.steps, self.seed.value,
                                                     max_order=self.max_order)
            why = (f"{self.steps} random allocations (orders 0-{self.max_order}) and frees "
                   f"from seed {self.seed.value}")
        else:
            pages, ops, why = SCENARIOS[name]
        st = self.stepper
        st.make_model = lambda pages=pages: BuddyModel(pages)
        st.ops = list(ops)
        st.reset()
        self.why.value = f"<i>{html.escape(why)}</i>"
        self.refresh()

    def _do(self, op) -> None:
        self.stepper.do(op)
        self.refresh()

    def _free_clicked(self, _=None) -> None:
        if self.block.value is not None:
            pfn, order = self.block.value
            self._do(("free", pfn, order))

    def _sync(self) -> None:
        self._update_choices()

    def refresh(self) -> None:
        self.steps_widget.refresh()
        self._update_choices()

    def _update_choices(self) -> None:
        blocks = [(f"pfn {p} (order {o})", (p, o))
                  for p, o, s in self.stepper.model.blocks() if s == "allocated"]
        previous = self.block.value
        self.block.options = blocks
        # Keep the learner's choice when it is still allocated, else offer the first block,
        # so "free" always has something to free when it is enabled.
        choices = [v for _, v in blocks]
        if choices:
            self.block.value = previous if previous in choices else choices[0]
        self.free_button.disabled = not blocks

    def _picture(self, stepper: Stepper) -> str:
        return memory_bar_svg(stepper.model)

    # -- what it shows -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """Exactly the text the widget shows under the picture."""
        return self.stepper.state_text()

    def click_alloc(self, order: int) -> str:
        """As if the learner chose ``order`` and clicked alloc (for tests and demos)."""
        self.order.value = order
        self.alloc_button.click()
        return self.text

    def click_free(self, pfn: int, order: int) -> str:
        """As if the learner chose the block at ``pfn`` and clicked free."""
        self.block.value = (pfn, order)
        self.free_button.click()
        return self.text

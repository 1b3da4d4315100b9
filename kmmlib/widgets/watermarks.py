"""Widgets for chapter 05: drag a zone's free pages past its watermarks, and watch a burst.

- :class:`WatermarkWidget` — one slider per zone sets its free pages; the widget shows where
  they stand against min/low/high, whether kswapd is awake (it wakes when an allocation finds
  no zone above low and sleeps only once one is above high), what an allocation with the
  chosen GFP mask and order would do (fast path, slow path, direct reclaim, failure) and
  which zone would serve it — lowmem_reserve visibly turns GFP_KERNEL away from DMA32 where
  GFP_DMA32 still gets in.
- :class:`BurstWidget` — steps a seeded allocation burst tick by tick (◀ ▶ ▶▶) over a little
  chart of free pages against the three lines.

Both are thin layers over :class:`kmmlib.mm.watermark.WatermarkModel` and a
:class:`kmmlib.stepper.Stepper`: ``widget.text`` is exactly what they show, so a notebook can
print it in a checked cell.
"""

from __future__ import annotations

import ipywidgets as W

from kmmlib.mm.watermark import WatermarkModel, burst_ops
from kmmlib.stepper import Stepper
from kmmlib.widgets.stepper import StepperWidget, pre

GFP_CHOICES = ("GFP_KERNEL", "GFP_ATOMIC", "GFP_NOWAIT", "GFP_HIGHUSER_MOVABLE", "GFP_DMA32",
               "GFP_DMA", "GFP_NOIO")

MACHINES = {
    "one zone (1 GiB)": lambda **kw: WatermarkModel.one_zone(**kw),
    "the snapshot's machine (24 GiB)": lambda **kw: WatermarkModel.from_snapshot(free=None,
                                                                                   **kw),
}

_COLORS = {"min": "#d62728", "low": "#ff7f0e", "high": "#2ca02c"}


def zone_gauges_svg(model: WatermarkModel, width: int = 560) -> str:
    """One horizontal gauge per populated zone: red below min, orange to low, yellow to high,
    green above; a black tick at the free pages; the protection a GFP_KERNEL request must
    leave above low drawn as a thin purple strip."""
    zones = [z for z in model.zones if z.present]
    row, left, bar = 34, 70, width - 80
    parts = [f"<svg width='{width}' height='{row * len(zones) + 8}' "
             "xmlns='http://www.w3.org/2000/svg' style='font: 11px sans-serif'>"]
    kernel_idx = model.gfp_zone(model.parse_gfp("GFP_KERNEL"))
    for i, z in enumerate(zones):
        w, y = z.wmark, 4 + i * row
        prot = z.lowmem_reserve[kernel_idx]
        cap = max(slider_max(z), 1)

        def x(v: float, cap: float = cap) -> float:
            return left + bar * min(max(v, 0), cap) / cap

        bands = ((0, w.min, "#f4b6b6"), (w.min, w.low, "#fcd9a8"),
                 (w.low, w.high, "#fff3b0"), (w.high, cap, "#c8e6c9"))
        parts.append(f"<text x='2' y='{y + 15}'>{z.name}</text>")
        for a, b, color in bands:
            parts.append(f"<rect x='{x(a):.1f}' y='{y + 4}' width='{max(x(b) - x(a), 0):.1f}' "
                         f"height='14' fill='{color}'/>")
        if prot:
            parts.append(f"<rect x='{x(w.low):.1f}' y='{y + 4}' "
                         f"width='{max(x(w.low + prot) - x(w.low), 1):.1f}' height='5' "
                         "fill='#7b1fa2' opacity='0.6'><title>protection for GFP_KERNEL: "
                         f"{prot} pages</title></rect>")
        for name, color in _COLORS.items():
            v = getattr(w, name)
            parts.append(f"<line x1='{x(v):.1f}' x2='{x(v):.1f}' y1='{y + 2}' y2='{y + 20}' "
                         f"stroke='{color}' stroke-width='2'><title>{name} {v}</title></line>")
        fx = x(z.free)
        parts.append(f"<polygon points='{fx - 5:.1f},{y + 30} {fx + 5:.1f},{y + 30} {fx:.1f},"
                     f"{y + 20}' fill='black'><title>free {z.free}</title></polygon>")
        parts.append(f"<text x='{min(fx + 8, width - 60):.1f}' y='{y + 30}'>{z.free}</text>")
    parts.append("</svg>")
    return "".join(parts)


def slider_max(z) -> int:
    """The slider's range: up to twice promo plus protection, so all levels are visible."""
    return min(z.managed, 2 * (z.wmark.promo + max(z.lowmem_reserve)) + 64)


class WatermarkWidget(W.VBox):
    """Sliders for each zone's free pages, a GFP mask and order, and what the kernel does."""

    def __init__(self, machine: str = "one zone (1 GiB)", gfp: str = "GFP_KERNEL",
                 order: int = 0):
        self.machine = W.Dropdown(options=list(MACHINES), value=machine, description="machine")
        self.gfp = W.Dropdown(options=list(GFP_CHOICES), value=gfp, description="gfp mask")
        self.order = W.IntSlider(value=order, min=0, max=10, description="order")
        self.back_button = W.Button(description="◀ back", tooltip="undo the last change")
        self.reset_button = W.Button(description="⟲ reset", tooltip="back to the start")
        self.alloc_button = W.Button(description="allocate", tooltip="do the allocation now")
        self.sliders = W.VBox()
        self.gauges = W.HTML()
        self.view = W.HTML()
        self._syncing = False
        self.machine.observe(lambda _: self._new_machine(), names="value")
        self.gfp.observe(lambda _: self._probe_changed(), names="value")
        self.order.observe(lambda _: self.refresh(), names="value")
        self.back_button.on_click(lambda _: self._do(self.stepper.back))
        self.reset_button.on_click(lambda _: self._do(self.stepper.reset))
        self.alloc_button.on_click(lambda _: self._do(
            lambda: self.stepper.do(("alloc", self.gfp.value, self.order.value))))
        bar = W.HBox([self.back_button, self.reset_button, self.alloc_button])
        super().__init__([W.HBox([self.machine, self.gfp, self.order]), self.sliders,
                          bar, self.gauges, self.view])
        self._new_machine()

    # -- state --------------------------------------------------------------------------
    def _make_model(self) -> WatermarkModel:
        return MACHINES[self.machine.value](probe_gfp=self.gfp.value)

    def _new_machine(self) -> None:
        self.stepper = Stepper(self._make_model)
        self._sliders = {}
        for z in self.stepper.model.zones:
            if not z.present:
                continue
            s = W.IntSlider(value=min(z.free, slider_max(z)), min=0, max=slider_max(z),
                            description=f"{z.name} free", continuous_update=False,
                            style={"description_width": "initial"},
                            layout=W.Layout(width="560px"))
            s.observe(lambda ch, name=z.name: self._slid(name, ch["new"]), names="value")
            self._sliders[z.name] = s
        self.sliders.children = tuple(self._sliders.values())
        self.refresh()

    def _probe_changed(self) -> None:
        self.stepper.model.probe_gfp = self.stepper.model.parse_gfp(self.gfp.value)
        self.refresh()

    def set_free(self, zone: str, pages: int) -> None:
        """What dragging ``zone``'s slider to ``pages`` does (tests and notebooks call it)."""
        self._sliders[zone].value = pages

    def _slid(self, zone: str, pages: int) -> None:
        if self._syncing:
            return
        self.stepper.do(("set_free", zone, pages))
        self.refresh()

    def _do(self, action) -> None:
        action()
        self.stepper.model.probe_gfp = self.stepper.model.parse_gfp(self.gfp.value)
        self.refresh()

    # -- showing ---------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """Everything the widget shows, as text: the last step, the zones, the decision."""
        decision = self.stepper.model.decide(self.gfp.value, self.order.value)
        return f"{self.stepper.state_text()}\n\nif allocated now:\n{decision}"

    def refresh(self) -> None:
        self._syncing = True
        try:
            for z in self.stepper.model.zones:
                if z.name in self._sliders:
                    self._sliders[z.name].value = min(z.free, self._sliders[z.name].max)
        finally:
            self._syncing = False
        self.back_button.disabled = self.stepper.pos == 0
        self.gauges.value = zone_gauges_svg(self.stepper.model)
        self.view.value = pre(self.text)


def burst_chart_svg(model: WatermarkModel, ticks: int, width: int = 560,
                    height: int = 160) -> str:
    """Free pages so far (one point per tick) against min/low/high; kswapd's awake ticks
    shaded blue, direct reclaim ticks marked red."""
    z = model.zonelist()[0]
    w = z.wmark
    lo = w.min - (w.high - w.min)
    hi = w.high + (w.high - w.min)

    def x(t: float) -> float:
        return 4 + (width - 8) * (t - 0.5) / max(ticks, 1)

    def y(v: float) -> float:
        return height - 4 - (height - 8) * (min(max(v, lo), hi) - lo) / (hi - lo)

    parts = [f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
             "style='font: 10px sans-serif; background: #fafafa'>"]
    for tick, _free, awake, _stalls in model.trace:
        if awake:
            parts.append(f"<rect x='{x(tick - 0.5):.1f}' y='0' width='{x(1.5) - x(0.5):.1f}' "
                         f"height='{height}' fill='#1f77b4' opacity='0.12'/>")
    for name, color in _COLORS.items():
        v = getattr(w, name)
        parts.append(f"<line x1='0' x2='{width}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
                     f"stroke='{color}' stroke-dasharray='4 3'/>"
                     f"<text x='{width - 60}' y='{y(v) - 2:.1f}' fill='{color}'>{name} {v}</text>")
    if model.trace:
        pts = " ".join(f"{x(t):.1f},{y(f):.1f}" for t, f, _a, _s in model.trace)
        parts.append(f"<polyline points='{pts}' fill='none' stroke='black' stroke-width='1.5'/>")
        for t, f, _a, s in model.trace:
            if s:
                parts.append(f"<circle cx='{x(t):.1f}' cy='{y(f):.1f}' r='2' fill='#d62728'/>")
    parts.append("</svg>")
    return "".join(parts)


class BurstWidget(StepperWidget):
    """Step a seeded allocation burst on a one-zone machine, tick by tick."""

    def __init__(self, seed: int = 1, ticks: int = 120, **burst_kw):
        ops = burst_ops(seed, ticks, **burst_kw)
        stepper = Stepper(WatermarkModel.one_zone, ops)
        super().__init__(stepper, picture=lambda st: burst_chart_svg(st.model, len(st.ops)),
                         play_interval_ms=150)

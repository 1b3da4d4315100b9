"""The layout explorer for chapter 03: pick an architecture, kernel, VA size, page size and
RAM; see the address space drawn on a log axis and as the documentation's table; type an
address and see which region holds it and, in the linear map, the physical address and
struct page behind it.

The widget is a thin layer over :func:`kmmlib.layout.layout` and
:func:`kmmlib.layout.translate.translate`; ``widget.text`` is exactly what it shows, so a
notebook can print it in a checked cell. The drawing is SVG (no matplotlib round-trip): the
geometry of :func:`kmmlib.layout.common.log_heights`, each region as tall as log2 of its size.
"""

from __future__ import annotations

import html

import ipywidgets as W

from kmmlib.errors import BadRequest, KmmError
from kmmlib.layout import layout
from kmmlib.layout.arm64 import va_bits_choices
from kmmlib.layout.common import human_size, log_heights, parse_kernel
from kmmlib.layout.translate import translate
from kmmlib.units import parse_size
from kmmlib.widgets.stepper import pre

KERNELS = ("4.14", "5.4", "5.10", "5.15", "6.1", "6.8", "6.12", "6.18")
COLORS = {"user": "#9ecae1", "linear": "#74c476", "kasan": "#fdd0a2", "bpf": "#fdae6b",
          "modules": "#fd8d3c", "kernel": "#e6550d", "vmalloc": "#bcbddc", "fixmap": "#f768a1",
          "pci_io": "#c994c7", "vmemmap": "#fc9272", "guard": "#eeeeee", "hole": "#ffffff",
          "ldt": "#dadaeb", "cpu_entry": "#dadaeb", "espfix": "#dadaeb", "efi": "#d9d9d9",
          "vsyscall": "#969696", "vector": "#969696", "pkmap": "#6baed6", "dtb": "#d9d9d9",
          "ram": "#238b45", "vmemmap_used": "#cb181d"}


def layout_svg(lay, mark: int | None = None, width: int = 560, scale: float = 6.0) -> str:
    """The layout as a column (highest address on top), each region ``scale`` px per doubling
    of its size; ``mark`` draws an arrow at an address."""
    rows = log_heights(lay)
    total = rows[-1][1] + rows[-1][2]
    height = int(total * scale) + 20
    w = (lay.bits + 3) // 4
    left, bar = 150, 110

    def y_of(y: float) -> float:
        return height - 10 - y * scale

    parts = [f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
             "style='font: 10px sans-serif'>"]
    for r, y, h in rows:
        top, bottom = y_of(y + h), y_of(y)
        hatch = " stroke-dasharray='3 2'" if r.kind == "hole" and r.size >= 1 << 56 else ""
        parts.append(f"<rect x='{left}' y='{top:.1f}' width='{bar}' height='{bottom - top:.1f}'"
                     f" fill='{COLORS.get(r.kind, '#ccc')}' stroke='#555'{hatch}>"
                     f"<title>{html.escape(r.name)}: {r.start:#x}-{r.end:#x} "
                     f"({human_size(r.size)})</title></rect>")
        if h * scale >= 9 or r.kind not in ("guard", "hole"):
            parts.append(f"<text x='{left + bar + 6}' y='{(top + bottom) / 2 + 3:.1f}'>"
                         f"{html.escape(r.name)} ({human_size(r.size)})</text>")
            parts.append(f"<text x='{left - 4}' y='{bottom:.1f}' text-anchor='end' "
                         f"style='font-family: monospace; font-size: 9px'>{r.start:0{w}x}</text>")
        if mark is not None and r.start <= mark < r.end:
            parts.append(f"<polygon points='{left - 2},{(top + bottom) / 2:.1f} {left - 12},"
                         f"{(top + bottom) / 2 - 5:.1f} {left - 12},{(top + bottom) / 2 + 5:.1f}'"
                         f" fill='#d62728'><title>{mark:#x}</title></polygon>")
    parts.append("</svg>")
    return "".join(parts)


class LayoutExplorer(W.VBox):
    """Dropdowns for the configuration, a RAM box, an address box; the drawing, the table and
    the translation below."""

    def __init__(self, arch: str = "arm64", kernel: str = "6.12", va_bits: int = 48,
                 page_size: str = "4K", levels: int = 4, ram: str = "1G",
                 address: str = "ffff000000123456"):
        self.arch = W.Dropdown(options=["arm64", "x86_64", "arm"], value=arch,
                               description="arch")
        self.kernel = W.Dropdown(options=list(KERNELS), value=kernel, description="kernel")
        self.page_size = W.Dropdown(options=["4K", "16K", "64K"], value=page_size,
                                    description="page size")
        self.va_bits = W.Dropdown(options=[39, 48], value=48, description="VA bits")
        self.levels = W.Dropdown(options=[4, 5], value=levels, description="levels")
        self.ram = W.Text(value=ram, description="RAM", continuous_update=False)
        self.address = W.Text(value=address, description="address", continuous_update=False)
        self.drawing = W.HTML()
        self.view = W.HTML()
        self.error = ""
        self._set_va_choices(va_bits)
        for w in (self.arch, self.kernel, self.page_size, self.va_bits, self.levels, self.ram,
                  self.address):
            w.observe(self._changed, names="value")
        controls = W.VBox([W.HBox([self.arch, self.kernel, self.page_size]),
                           W.HBox([self.va_bits, self.levels, self.ram]), self.address])
        super().__init__([controls, W.HBox([self.drawing, self.view])])
        self.refresh()

    def _set_va_choices(self, want: int | None = None) -> None:
        choices = list(va_bits_choices(int(self.page_size.value[:-1]) << 10,
                                       parse_kernel(self.kernel.value, (6, 18))))
        keep = want if want in choices else self.va_bits.value
        self.va_bits.options = choices
        self.va_bits.value = keep if keep in choices else max(c for c in choices if c <= 48)

    def _changed(self, change) -> None:
        if change["owner"] in (self.page_size, self.kernel):
            self._set_va_choices()
        self.refresh()

    def current(self):
        """The :class:`~kmmlib.layout.Layout` for the controls' values."""
        ram = parse_size(self.ram.value) if self.ram.value.strip() else None
        page = int(self.page_size.value[:-1]) << 10 if self.arch.value == "arm64" else 4096
        if ram is not None and ram < page:
            raise BadRequest(f"RAM must be at least one page ({page // 1024} KiB), not "
                             f"{self.ram.value.strip()!r}")
        if self.arch.value == "arm64":
            return layout("arm64", kernel=self.kernel.value, va_bits=self.va_bits.value,
                          page_size=self.page_size.value, ram=ram)
        if self.arch.value == "x86_64":
            return layout("x86_64", levels=self.levels.value, ram=ram)
        return layout("arm", ram=1 << 30 if ram is None else ram)    # 32-bit ARM: 1 GB unless given

    @property
    def text(self) -> str:
        """Everything the widget shows, as text: the table, the notes, the translation."""
        try:
            lay = self.current()
        except KmmError as err:
            return f"error: {err}"
        lines = [lay.title, "", lay.doc_table()]
        lines += [f"# {n}" for n in lay.notes]
        addr = self.address.value.strip()
        if addr:
            lines.append("")
            try:
                va = int(addr.replace("_", ""), 16)
            except ValueError:
                example = lay.symbols.get("PAGE_OFFSET", lay.regions[-1].start)
                lines.append(f"address {addr!r}: not a hexadecimal address (e.g. "
                             f"{example:x}, PAGE_OFFSET)")
            else:
                try:
                    lines.append(translate(lay, va).text())
                except KmmError as err:
                    lines.append(f"address {addr!r}: {err}")
        return "\n".join(lines)

    def refresh(self) -> None:
        is_arm64 = self.arch.value == "arm64"
        for w in (self.kernel, self.page_size, self.va_bits):
            w.disabled = not is_arm64
        self.levels.disabled = self.arch.value != "x86_64"
        try:
            lay = self.current()
            try:
                mark = int(self.address.value.strip().replace("_", ""), 16)
                if not 0 <= mark < 1 << lay.bits:
                    mark = None
            except ValueError:
                mark = None
            self.drawing.value = layout_svg(lay, mark)
        except KmmError:
            self.drawing.value = ""
        self.view.value = pre(self.text)

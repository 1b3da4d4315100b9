"""The page inspector: pick a pfn, or type a flags value, and see every field decoded.

A row of small buttons shows the mem_map (one per struct page, coloured by what the page is
used for); clicking one, or typing its pfn, shows that struct page field by field
(:meth:`kmmlib.mm.mem_map.MemMap.describe_text`) and as ``dump_page()`` would print it. The
"flags" box decodes any ``page->flags`` value for the chosen kernel config
(:func:`kmmlib.mm.page_flags.describe_flags`). The widget holds no state: it prints what the
core computes, so a notebook cell can print the same text and nbval checks it.
"""

from __future__ import annotations

import ipywidgets as W

from kmmlib.errors import KmmError
from kmmlib.mm import page_flags as pf
from kmmlib.mm.mem_map import MemMap, example_mem_map
from kmmlib.viz.mem_map import KIND_COLORS
from kmmlib.widgets.stepper import pre


class PageInspector(W.VBox):
    """Inspect the struct pages of ``mem_map`` (the chapter's example by default)."""

    def __init__(self, mem_map: MemMap | None = None, *, max_buttons: int = 64,
                 config: str = "x86_64"):
        self.mm = mem_map if mem_map is not None else example_mem_map()
        mm = self.mm
        self.pfn = W.BoundedIntText(value=mm.start_pfn, min=mm.start_pfn, max=mm.end_pfn - 1,
                                    description="pfn", layout=W.Layout(width="180px"))
        self.show_dump = W.Checkbox(value=False, description="as dump_page() prints it",
                                    indent=False)
        self.flags_text = W.Text(placeholder="0x17ffffc0000000 or lru|active|zone=2",
                                 description="flags", layout=W.Layout(width="420px"))
        self.config = W.Dropdown(options=list(pf.CONFIGS), value=config, description="config",
                                 layout=W.Layout(width="240px"))
        self.page_view = W.HTML()
        self.flags_view = W.HTML()
        self.buttons = []
        for pfn in range(mm.start_pfn, min(mm.end_pfn, mm.start_pfn + max_buttons)):
            b = W.Button(description=f"{pfn & 0xff:02x}", tooltip=f"pfn {pfn:#x}",
                         layout=W.Layout(width="34px", height="26px", padding="0"))
            b.style.button_color = KIND_COLORS.get(mm.page_kind(pfn), "#c0c0c0")
            b.on_click(lambda _b, pfn=pfn: setattr(self.pfn, "value", pfn))
            self.buttons.append(b)
        self.pfn.observe(lambda _: self.refresh_page(), names="value")
        self.show_dump.observe(lambda _: self.refresh_page(), names="value")
        self.flags_text.observe(lambda _: self.refresh_flags(), names="value")
        self.config.observe(lambda _: self.refresh_flags(), names="value")
        strip = W.HBox(self.buttons, layout=W.Layout(flex_flow="row wrap"))
        super().__init__([
            W.HTML("<b>struct page</b> — click a page or type its pfn"),
            strip, W.HBox([self.pfn, self.show_dump]), self.page_view,
            W.HTML("<b>page-&gt;flags</b> — type a value or flag names"),
            W.HBox([self.flags_text, self.config]), self.flags_view,
        ])
        self.refresh_page()
        self.refresh_flags()

    def page_text(self) -> str:
        """What the page pane shows for the current pfn."""
        pfn = self.pfn.value
        if self.show_dump.value:
            return self.mm.dump_page(pfn)
        return self.mm.describe_text(pfn)

    def flags_text_view(self) -> str:
        """What the flags pane shows: a typed value, decoded with the chosen config's layout;
        with nothing typed, the current page's own flags word, decoded with the layout that
        mem_map packed it with (another config's layout would read other fields)."""
        text = self.flags_text.value.strip()
        try:
            if not text:
                value = self.mm.flags[self.mm.index(self.pfn.value)]
                return pf.describe_flags(value, self.mm.layout) + \
                    "\n(the page's own word, in mem_map's layout: type a value to decode it " \
                    "with the chosen config)"
            layout = pf.FlagsLayout(pf.CONFIGS[self.config.value])
            return pf.describe_flags(pf.parse_page_flags(text, layout), layout)
        except KmmError as err:
            return f"✘ {err}"

    def refresh_page(self) -> None:
        self.page_view.value = pre(self.page_text())
        if not self.flags_text.value.strip():
            self.refresh_flags()

    def refresh_flags(self) -> None:
        self.flags_view.value = pre(self.flags_text_view())


def page_inspector(mem_map: MemMap | None = None, **kwargs) -> PageInspector:
    """The widget, ready to display: ``page_inspector()`` in a notebook cell."""
    return PageInspector(mem_map, **kwargs)

"""Every chapter notebook in JupyterLab in headless Chromium: run all cells, click every stepping
widget's buttons, and check that what the page shows follows the simulator."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
pytestmark = pytest.mark.browser

# Run all without awaiting it: the wait below has a timeout, a hung cell cannot hang the test.
RUN_ALL = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:clear-all-cell-outputs');
  app.commands.execute('notebook:run-all-cells');
}"""
ERRORS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const errs = [];
  for (const cell of nb.widgets) {
    if (cell.model.type !== 'code') continue;
    for (const o of cell.model.outputs.toJSON())
      if (o.output_type === 'error') errs.push(o.ename + ': ' + o.evalue);
  }
  return errs;
}"""
BUSY = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.widgets.some(c => c.model.type === 'code' &&
                              c.node.querySelector('.jp-InputPrompt')?.textContent.includes('*'));
}"""


def open_and_run(browser, lab, notebook: Path):
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    # A workspace of its own, emptied (?reset): the default one would reopen every chapter
    # an earlier test opened, each starting a kernel, all at once (and jupyter_server can
    # answer a 500 to GET /api/kernels while a kernel is half started).
    page.goto(f"{base}/lab/workspaces/{notebook.stem}/tree/notebooks/{notebook.name}"
              f"?reset&token={token}")
    from playwright.sync_api import expect

    expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle", timeout=90_000)
    page.evaluate(RUN_ALL)
    page.wait_for_timeout(500)  # let the first cell start
    page.wait_for_function(f"() => !({BUSY})()", timeout=300_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle", timeout=120_000)
    return page, problems


def sessions(lab) -> list[dict]:
    """The server's notebook sessions (one per open notebook with a kernel)."""
    import urllib.request

    base, token = lab
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as r:
        return json.loads(r.read())


def shutdown_kernels(lab) -> None:
    """End every session the page started, so each test starts from fresh kernels and the
    server is not left running nine chapters' kernels at once."""
    import urllib.request

    base, token = lab
    for s in sessions(lab):
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={token}",
                                     method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()


def widget_text(button) -> str:
    box = button.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
    return box.locator("pre").last.inner_text()


# The buttons that make a widget do something (its step/alloc buttons), across the chapters.
ACTIONS = ("step ▶", "alloc", "allocate", "access", "+100 requests", "next fallback", "free")
OUTPUT = "xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][1]"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_runs_and_its_widgets_respond(browser, lab, artifacts, notebook):
    page, problems = open_and_run(browser, lab, notebook)
    try:
        # The chapter runs alone: its own kernel, no earlier chapter reopened beside it.
        assert [s["path"] for s in sessions(lab)] == [f"notebooks/{notebook.name}"]
        assert page.evaluate(ERRORS) == []
        page.wait_for_timeout(1000)  # let the last widget views render
        assert page.get_by_text("Error displaying widget").count() == 0
        widgets = page.locator(".jp-OutputArea-output .widget-vbox:visible")
        if widgets.count():
            first = widgets.first
            first.scroll_into_view_if_needed()
            first.locator(OUTPUT).screenshot(path=str(artifacts / f"{notebook.stem}.png"))
        clicked = []
        for name in ACTIONS:
            buttons = page.get_by_role("button", name=name, exact=True)
            for i in range(buttons.count()):
                button = buttons.nth(i)
                if not button.is_visible() or button.is_disabled():
                    continue
                button.scroll_into_view_if_needed()
                area = button.locator(OUTPUT)
                before = area.inner_text()
                button.click()
                # What the widget shows must change: its narration, its lists, its picture text.
                try:
                    page.wait_for_function("([a, t]) => a.innerText !== t",
                                           arg=[area.element_handle(), before], timeout=15_000)
                except Exception:
                    pytest.fail(f"{notebook.name}: clicking '{name}' (#{i}) changed nothing:\n"
                                f"{before[:800]}")
                clicked.append(name)
                break
        if widgets.count() and not clicked:
            # A widget driven by a number (the page inspector's pfn) or a choice (the layout
            # explorer's architecture): change it and require the view to follow.
            number = page.locator(".jp-OutputArea-output .widget-vbox input[type=number]")
            choice = page.locator(".jp-OutputArea-output .widget-vbox select")
            target = number.first if number.count() else choice.first
            target.scroll_into_view_if_needed()
            area = target.locator(OUTPUT)
            before = area.inner_text()
            if number.count():
                target.fill(str(int(target.input_value()) + 1))
                target.press("Enter")
            else:
                k = target.evaluate("e => e.selectedIndex")
                target.select_option(index=1 if k == 0 else 0)
            page.wait_for_function("([a, t]) => a.innerText !== t",
                                   arg=[area.element_handle(), before], timeout=15_000)
            clicked.append("input changed")
        if widgets.count():
            assert clicked, f"{notebook.name}: no widget input made a visible change"
        assert problems == [], f"browser console errors: {problems}"
    finally:
        page.close()
        shutdown_kernels(lab)


def test_welcome_widget_shows_what_the_simulator_says(browser, lab):
    """Chapter 00: after the notebook's own two clicks, one click in the browser shows step 3
    of the script, exactly as an independent replay of xv6's allocator prints it."""
    from kmmlib.mm.freelist import FreeListAllocator
    from kmmlib.stepper import Stepper

    nb = next(p for p in NOTEBOOKS if p.name.startswith("00_"))
    source = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
    script = ast.literal_eval(re.search(r"^script = (\[.*\])$", source, re.M).group(1))
    expected = Stepper(lambda: FreeListAllocator(8), script)
    for _ in range(3):
        expected.step()

    page, problems = open_and_run(browser, lab, nb)
    try:
        button = page.get_by_role("button", name="step ▶").first
        button.scroll_into_view_if_needed()
        button.click()
        page.wait_for_function("() => [...document.querySelectorAll('.widget-vbox pre')]"
                               ".some(p => p.innerText.startsWith('step 3/'))")
        assert widget_text(button) == expected.state_text()
        page.get_by_role("button", name="◀ back").first.click()
        page.wait_for_function("() => [...document.querySelectorAll('.widget-vbox pre')]"
                               ".some(p => p.innerText.startsWith('step 2/'))")
        expected.back()
        assert widget_text(button) == expected.state_text()
        assert problems == []
    finally:
        page.close()
        shutdown_kernels(lab)

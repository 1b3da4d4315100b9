"""`make html`'s static pages show the widgets in their last state, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def welcome_html(tmp_path_factory) -> Path:
    if not shutil.which("npm") or not shutil.which("make"):
        pytest.skip("make html needs npm (the widget renderer comes from the npm registry)")
    subprocess.run(["make", "--no-print-directory", "build/html/js/embed-amd.js"], cwd=ROOT,
                   check=True, capture_output=True)
    out = tmp_path_factory.mktemp("html")
    shutil.copytree(ROOT / "build" / "html" / "js", out / "js")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    # The same nbconvert call as `make html`, for chapter 00 only.
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--log-level=WARN",
                    "--to", "html", "--execute", "--output-dir", str(out),
                    "--HTMLExporter.require_js_url=js/require.js",
                    "--HTMLExporter.widget_renderer_url=js/embed-amd.js",
                    str(ROOT / "notebooks" / "00_welcome.ipynb")], check=True, env=env,
                   capture_output=True)
    return out / "00_welcome.html"


def test_static_page_renders_the_widget_offline(browser, welcome_html):
    assert CHROMIUM
    page = browser.new_page()
    # Offline for real: requests that leave the machine are refused and recorded.
    outside = []
    page.route("**/*", lambda route: (outside.append(route.request.url), route.abort())
               if not route.request.url.startswith("file://") else route.continue_())
    page.goto(welcome_html.as_uri())
    page.wait_for_function("() => [...document.querySelectorAll('.widget-html pre')]"
                           ".some(p => p.innerText.startsWith('step 2/6'))", timeout=30_000)
    assert page.get_by_role("button", name="step ▶").count() >= 1
    assert page.get_by_text("Error displaying widget").count() == 0
    # Only MathJax may be asked for (formulas then show as TeX): nothing the widgets need.
    assert [u for u in outside if "mathjax" not in u] == []
    page.close()

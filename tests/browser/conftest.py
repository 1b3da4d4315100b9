"""A real JupyterLab in a real (headless) Chromium, for the browser tests.

The server serves a *copy* of the course, so running the notebooks in the browser never
rewrites the committed ones; autosave and the news check are off through a user-settings folder.
Skipped with a reason where Playwright or Chromium is missing (`make test-browser` installs
Playwright; `.ci/run` installs Debian's chromium).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("KMM_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
ARTIFACTS = Path(os.environ.get("KMM_ARTIFACTS", ROOT / "tests" / "artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    pytest.importorskip("playwright", reason="Playwright is not installed (make test-browser)")
    if not CHROMIUM:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    work = tmp_path_factory.mktemp("course")
    for part in ("notebooks", "exercises"):
        shutil.copytree(ROOT / part, work / part)
    settings = work / "lab-settings"
    for plugin, values in (
        ("@jupyterlab/apputils-extension/notification",
         {"fetchNews": "false", "checkForUpdates": False}),
        ("@jupyterlab/docmanager-extension/plugin", {"autosave": False}),
        # Render every cell: with windowing, cells far below the viewport have no DOM, so
        # their widgets could not be found, clicked or checked.
        ("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"}),
    ):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), MPLBACKEND="module://matplotlib_inline.backend_inline")
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={work}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (work / "lab.log").read_text())
            time.sleep(0.3)
    yield base, token
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="session")
def browser(lab):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

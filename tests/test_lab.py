"""`make lab` starts JupyterLab whose kernel imports kmmlib: start it headless on a loopback
port, ask for /lab, run one cell through the server's own kernel, then stop it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
websocket = pytest.importorskip("websocket", reason="websocket-client comes with jupyter_server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


@pytest.fixture
def lab_server(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token}")
    in_project_venv = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    if in_project_venv:
        # Exactly the README's command, with options for a headless start.
        cmd = ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"]
    else:
        cmd = [sys.executable, "-m", "jupyter", "lab", *args.split(),
               *(["--allow-root"] if os.geteuid() == 0 else []),
               "--LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb"]
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text())
                time.sleep(0.3)
        yield base, token
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass  # it had already stopped (the failure above says why)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def execute(base: str, token: str, code: str) -> str:
    """Run ``code`` in a new kernel of the server, over its websocket; return the stdout."""
    req = urllib.request.Request(f"{base}/api/kernels?token={token}", method="POST",
                                 data=b'{"name": "python3"}',
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        kernel = json.loads(r.read())
    ws = websocket.create_connection(
        f"ws{base[4:]}/api/kernels/{kernel['id']}/channels?token={token}", timeout=60)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False},
    }))
    out = []
    while True:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            pytest.fail("the cell raised: " + "\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    ws.close()
    return "".join(out)


@pytest.mark.slow
def test_make_lab_serves_the_course_and_its_kernel_imports_kmmlib(lab_server):
    base, token = lab_server
    status, page = get(f"{base}/lab?token={token}")
    assert status == 200 and "JupyterLab" in page
    # The server's root is the course, so the learner sees the chapters and the exercises.
    assert "00_welcome.ipynb" in get(f"{base}/api/contents/notebooks?token={token}")[1]
    assert "00_welcome.ipynb" in get(f"{base}/api/contents/exercises?token={token}")[1]
    # And it opens on the welcome chapter.
    req = urllib.request.Request(f"{base}/?token={token}")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.url.split("?")[0].endswith("/lab/tree/notebooks/00_welcome.ipynb")
    out = execute(base, token, "import kmmlib, sys\nprint(kmmlib.__file__)\n"
                               "print(kmmlib.Machine('tiny').nr_pages)")
    path, pages = out.split()
    assert Path(path).resolve() == (ROOT / "kmmlib" / "__init__.py").resolve()
    assert pages == "64"

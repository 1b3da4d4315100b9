"""The course where learners run it: without /proc (macOS-like), as a non-root user who cannot
read /proc/pagetypeinfo or /proc/slabinfo, within a memory bound, and deterministically.

Each condition executes every chapter and exercise solution in fresh kernels
(tests/learners/run_course.py) and compares every checked cell's output with the one stored in
the notebook: the simulator's results must not depend on the machine or the user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_course.py")
COURSE = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "exercises" / "solutions").glob("*.ipynb"))
PEAK_RSS_LIMIT_KIB = 1 << 20  # 1 GiB
pytestmark = pytest.mark.slow


def sanitizers() -> list[tuple[str, str]]:
    text = (ROOT / "tests" / "nbval_sanitize.cfg").read_text()
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.M)


def clean(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for regex, replace in sanitizers():
            line = re.sub(regex, replace, line)
        out.append(line)
    return out


def run_course(env_extra: dict[str, str], user: int | None = None):
    env = dict(os.environ, **env_extra)
    cmd = [sys.executable, str(RUNNER), *map(str, COURSE)]
    if user is not None:
        # A fresh HOME and Jupyter state the unprivileged user may write.
        # pytest's tmp_path lies under a 0700 folder of root's: make one the user can reach.
        home = Path(tempfile.mkdtemp(prefix="kmm-learner-"))
        home.chmod(0o755)
        shutil.chown(home, user, user)
        env.update(HOME=str(home), JUPYTER_RUNTIME_DIR=str(home / "rt"),
                   JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_CONFIG_DIR=str(home / "cfg"),
                   IPYTHONDIR=str(home / "ipy"), MPLCONFIGDIR=str(home / "mpl"),
                   XDG_CACHE_HOME=str(home / "cache"))
        python, extra_path = interpreter_for(user)
        if extra_path:
            env["PYTHONPATH"] = os.pathsep.join(extra_path)
        cmd = [*as_user(user), python, *cmd[1:]]
    env.pop("MPLBACKEND", None)  # the notebooks' own inline backend, as in Jupyter
    try:
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=1800)
    finally:
        if user is not None:
            shutil.rmtree(home, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def as_user(user: int) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]


def interpreter_for(user: int) -> tuple[str, list[str]]:
    """A Python the user may run with this environment's packages. A virtual environment made
    from an interpreter under /root (pyenv) is not executable by others; then the system's
    interpreter of the same version runs with the environment's site-packages on its path."""
    def runs(python: str, path: list[str]) -> bool:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path)) if path else None
        # The kernels are children of the runner: check that a child can start too.
        code = ("import subprocess, sys; import kmmlib, nbclient, ipykernel; "
                "subprocess.run([sys.executable, '-c', 'import kmmlib'], check=True)")
        return subprocess.run([*as_user(user), python, "-c", code], env=env, cwd="/",
                              capture_output=True).returncode == 0

    if runs(sys.executable, []):
        return sys.executable, []
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    site = [p for p in sys.path if p.endswith("site-packages")]
    if system and runs(system, [str(ROOT), *site]):
        return system, [str(ROOT), *site]
    pytest.skip(f"no Python that user {user} may run with this environment's packages")


def check_report(report: dict, *, expect_fallback: bool) -> None:
    assert report["peak_rss_kib"] < PEAK_RSS_LIMIT_KIB, (
        f"a kernel reached {report['peak_rss_kib'] // 1024} MiB (limit 1 GiB)")
    for nb in report["notebooks"]:
        name = Path(nb["notebook"]).name
        assert nb["errors"] == [], f"{name}: {nb['errors']}"
        for cell in nb["cells"]:
            if not cell["ignored"]:
                assert clean(cell["fresh"]) == clean(cell["stored"]), (
                    f"{name}: a checked cell printed something else:\n{cell['source']}")
        if expect_fallback and any("ProcSource()" in c["source"] for c in nb["cells"]):
            said = " ".join(" ".join(c["fresh"]) for c in nb["cells"])
            assert "bundled snapshot" in said, f"{name} reads /proc but never says it fell back"


def test_course_runs_without_proc(tmp_path):
    """macOS-like: KMMLIB_PROC_ROOT points at an empty folder."""
    empty = tmp_path / "no-proc"
    empty.mkdir()
    check_report(run_course({"KMMLIB_PROC_ROOT": str(empty)}), expect_fallback=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the course as another user")
def test_course_runs_as_a_non_root_user():
    nobody = 65534
    # The non-root user really cannot read the root-only files (where this machine has them).
    probe = subprocess.run(["setpriv", f"--reuid={nobody}", f"--regid={nobody}",
                            "--clear-groups", "cat", "/proc/pagetypeinfo"], capture_output=True)
    if Path("/proc/pagetypeinfo").exists():
        assert probe.returncode != 0
    check_report(run_course({}, user=nobody), expect_fallback=False)

"""nbval means something here: with the project's pytest configuration, a notebook whose
stored outputs match passes (twice), and one whose stored number differs fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_notebook(path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from kmmlib.machine import Machine\n"
                                  "print(Machine('arm64-virt-1g').describe())"),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nimport time\nprint(time.time())"),
        nbformat.v4.new_code_cell("class X: pass\nX()"),  # an object repr: sanitized
    ]
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    nbformat.write(nb, path)


def nbval(path: Path) -> subprocess.CompletedProcess:
    # The notebook lies outside the repository, so name the configuration that a plain
    # `pytest --nbval notebooks/` picks up by itself from the repository root.
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", "pyproject.toml",
                           "--nbval", str(path)],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nbval") / "probe.ipynb"
    make_notebook(path)
    return path


def test_passes_twice_in_a_row(notebook):
    for _ in range(2):
        r = nbval(notebook)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "3 passed" in r.stdout


def test_fails_when_a_printed_number_changes(notebook, tmp_path):
    changed = tmp_path / "changed.ipynb"
    shutil.copy(notebook, changed)
    text = changed.read_text()
    assert "262144" in text  # the pages of the 1 GiB preset, printed by describe()
    changed.write_text(text.replace("262144", "262145", 1))
    r = nbval(changed)
    assert r.returncode != 0 and "1 failed" in r.stdout, r.stdout

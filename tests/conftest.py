"""Shared test setup: keep Jupyter and matplotlib state out of $HOME, and no GUI backends."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "kmmlib" / "data" / "snapshot"

# Set before any kernel starts (nbval, nbclient, jupyter lab): children inherit them.
_STATE = Path(tempfile.mkdtemp(prefix="kmm-test-state-"))
os.environ.setdefault("MPLBACKEND", "Agg")
for var, sub in (("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_DATA_DIR", "jupyter-data"),
                 ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"), ("IPYTHONDIR", "ipython"),
                 ("MPLCONFIGDIR", "matplotlib"), ("XDG_CACHE_HOME", "cache")):
    os.environ.setdefault(var, str(_STATE / sub))
# A kernelspec named python3 that runs *this* interpreter, for nbclient and jupyter lab.
os.environ.setdefault("JUPYTER_PATH", str(_STATE / "jupyter-data"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def snapshot_dir() -> Path:
    return SNAPSHOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable

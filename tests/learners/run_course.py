"""Execute every chapter notebook and exercise solution in fresh kernels, as a learner would,
and print one JSON report: per notebook, the errors, the outputs of each code cell, which cells
the tests ignore, and the kernels' peak resident memory.

Run by tests/learners/test_learners.py under different conditions (no /proc, a non-root user,
twice in a row). It is a script, not a test, so it can be run as another user with ``setpriv``.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

IGNORE = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")


def text_of(outputs) -> list[str]:
    """The comparable text of a cell's outputs (what nbval compares, without images)."""
    out = []
    for o in outputs:
        if o.output_type == "stream":
            # A stream may arrive in several chunks: join consecutive ones as nbval does.
            if out and out[-1].startswith(f"{o.name}: "):
                out[-1] += o.text
            else:
                out.append(f"{o.name}: {o.text}")
        elif o.output_type in ("execute_result", "display_data"):
            data = o.get("data", {})
            for key in ("text/plain", "text/html"):
                if key in data and "application/vnd.jupyter.widget-view+json" not in data:
                    out.append(f"{key}: {data[key]}")
        elif o.output_type == "error":
            out.append(f"error: {o.ename}: {o.evalue}")
    return out


def run(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    stored = [text_of(c.outputs) for c in nb.cells if c.cell_type == "code"]
    client = NotebookClient(nb, timeout=300, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    cells = []
    for cell, before in zip((c for c in nb.cells if c.cell_type == "code"), stored,
                            strict=True):
        first = cell.source.lstrip().split("\n", 1)[0].strip()
        cells.append({"ignored": first in IGNORE, "stored": before,
                      "fresh": text_of(cell.outputs), "source": cell.source[:200]})
    errors = [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    return {"notebook": str(path), "errors": errors, "cells": cells}


def main(paths: list[str]) -> None:
    reports = [run(Path(p)) for p in paths]
    # Kernels are child processes that have exited: the largest resident set any reached.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    json.dump({"notebooks": reports, "peak_rss_kib": peak_kib}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Generate the student notebooks in ``exercises/`` from ``exercises/solutions/``.

The solution notebook is the source (nbgrader's convention, without nbgrader). In a code cell,
the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become one
``raise NotImplementedError(...)`` line at the same indentation, so a learner sees the function
to write and a clear place to write it; in a markdown cell the block becomes "*Your answer
here.*". Outputs and execution counts are cleared, so the student starts from nothing. Check
cells (those whose first line is ``# CHECK``) are kept as they are: they must fail on the stub
and pass on the solution, which tests/test_exercises.py proves for every notebook.

Notebooks are JSON; this module reads and writes them with :mod:`json` (as nbformat does, with
one-space indentation) so the core needs no Jupyter package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kmmlib.errors import BadRequest, ParseError

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK = "# CHECK"
STUB = 'raise NotImplementedError("your code here: replace this line")'
MARKDOWN_STUB = "*Your answer here.*"
SOLUTION_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def stub_source(source: str, *, markdown: bool = False, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION block of ``source`` by the stub line."""
    out: list[str] = []
    inside = False
    for n, line in enumerate(source.split("\n"), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ParseError(f"{where}, line {n}: {BEGIN} inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + (MARKDOWN_STUB if markdown else STUB))
        elif stripped == END:
            if not inside:
                raise ParseError(f"{where}, line {n}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ParseError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def is_check_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and _source(cell).lstrip().startswith(CHECK)


def _load_notebook(path: Path) -> dict:
    """A notebook's JSON, or a ParseError that names the file (a merge conflict left in it,
    a truncated save) instead of a traceback."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ParseError(f"{path}: not a notebook (not UTF-8 text)") from None
    except json.JSONDecodeError as err:
        raise ParseError(f"{path}: not a notebook (JSON error at line {err.lineno}, column "
                         f"{err.colno}: {err.msg})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or not all(
            isinstance(c, dict) and "cell_type" in c for c in nb["cells"]):
        raise ParseError(f"{path}: not a notebook (no list of cells)")
    return nb


def student_notebook(solution: dict, name: str = "notebook") -> dict:
    """The student version of a solution notebook (a new dict; the input is not changed)."""
    nb = json.loads(json.dumps(solution))
    solutions = 0
    for i, cell in enumerate(nb.get("cells", [])):
        src = _source(cell)
        if BEGIN in src:
            solutions += 1
            cell["source"] = stub_source(src, markdown=cell["cell_type"] == "markdown",
                                         where=f"{name} cell {i}")
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        # Timings of the solution's last run are not the student's business (and would make
        # every re-execution rewrite every student notebook).
        cell.get("metadata", {}).pop("execution", None)
    if solutions == 0:
        raise ParseError(f"{name}: no '{BEGIN}' block, so there is nothing for a student to do")
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def release(solutions_dir: str | Path, out_dir: str | Path, *, write: bool = True) -> list[Path]:
    """Write (or, with ``write=False``, only compare) every student notebook.

    Returns the student notebooks that were out of date (so ``write=False`` returning an empty
    list means the committed student versions are in sync with the solutions).
    """
    solutions_dir, out_dir = Path(solutions_dir), Path(out_dir)
    if not solutions_dir.is_dir():
        raise BadRequest(f"{solutions_dir}: no such folder (run from the course's top folder, "
                         "or pass --dir EXERCISES)")
    stale: list[Path] = []
    sources = sorted(solutions_dir.glob("*.ipynb"))
    for src in sources:
        if not SOLUTION_NAME.match(src.name):
            raise ParseError(f"{src}: solution notebooks are named NN_topic.ipynb")
        text = dumps(student_notebook(_load_notebook(src), src.name))
        dst = out_dir / src.name
        if not dst.exists() or dst.read_text() != text:
            stale.append(dst)
            if write:
                dst.write_text(text)
    # A student notebook whose solution was removed is stale too.
    names = {s.name for s in sources}
    stale += [p for p in sorted(out_dir.glob("*.ipynb")) if p.name not in names]
    return stale

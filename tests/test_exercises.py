"""The exercise framework: student versions in sync, every check passes on the solution and
fails on the stub, and the checks speak to the learner rather than raise bare asserts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest, ParseError
from kmmlib.exercises import ExerciseFailed, answer, check_equal, check_function
from kmmlib.exercises.release import STUB, is_check_cell, release, stub_source, student_notebook

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
SOLUTIONS = sorted((EXERCISES / "solutions").glob("*.ipynb"))


def code_cell(src: str) -> dict:
    return {"cell_type": "code", "source": src, "outputs": [{"output_type": "stream"}],
            "execution_count": 3,
            "metadata": {"execution": {"iopub.execute_input": "2026-11-25T21:45:54Z"}}}


# -- the generator ------------------------------------------------------------------------
def test_stub_keeps_the_signature_and_indentation():
    src = "def used(m):\n    ### BEGIN SOLUTION\n    return m['a'] - m['b']\n    ### END SOLUTION\n"
    assert stub_source(src) == f"def used(m):\n    {STUB}\n"


def test_markdown_answers_are_stubbed_too():
    assert "Your answer" in stub_source("Q?\n### BEGIN SOLUTION\nA.\n### END SOLUTION",
                                        markdown=True)


@pytest.mark.parametrize("bad", [
    "### BEGIN SOLUTION\nx = 1\n",
    "x = 1\n### END SOLUTION\n",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
])
def test_malformed_blocks_are_reported(bad):
    with pytest.raises(ParseError):
        stub_source(bad)


def test_student_notebook_clears_outputs_and_leaves_the_solution_alone():
    sol = {"cells": [code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n"
                               "    ### END SOLUTION\n"),
                     code_cell("# CHECK\ncheck_function(f, [((), 1)], 'f')")],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    before = json.dumps(sol)
    stu = student_notebook(sol)
    assert json.dumps(sol) == before
    assert "return 1" not in stu["cells"][0]["source"]
    assert all(c["outputs"] == [] and c["execution_count"] is None and c["metadata"] == {}
               for c in stu["cells"])
    assert is_check_cell(stu["cells"][1]) and not is_check_cell(stu["cells"][0])
    with pytest.raises(ParseError, match="nothing for a student to do"):
        student_notebook({"cells": [code_cell("x = 1")]})


def test_release_writes_then_reports_in_sync(tmp_path):
    (tmp_path / "solutions").mkdir()
    sol = {"cells": [code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "solutions" / "01_x.ipynb").write_text(json.dumps(sol))
    (tmp_path / "02_orphan.ipynb").write_text("{}")
    stale = release(tmp_path / "solutions", tmp_path, write=False)
    assert [p.name for p in stale] == ["01_x.ipynb", "02_orphan.ipynb"]
    release(tmp_path / "solutions", tmp_path)
    (tmp_path / "02_orphan.ipynb").unlink()
    assert release(tmp_path / "solutions", tmp_path, write=False) == []
    with pytest.raises(BadRequest):
        release(tmp_path / "nope", tmp_path)


def test_committed_student_notebooks_are_in_sync_with_the_solutions():
    assert SOLUTIONS, "no exercise solutions yet"
    stale = release(EXERCISES / "solutions", EXERCISES, write=False)
    assert stale == [], f"run `make release`: {stale}"


# -- the check helpers --------------------------------------------------------------------
def test_check_messages_say_what_was_expected(capsys):
    check_equal(5, 5, "used")
    assert capsys.readouterr().out == "✔ used: 5\n"
    with pytest.raises(ExerciseFailed) as err:
        check_equal(4, 5, "used", hint="used = total - available")
    msg = str(err.value)
    assert "expected: 5" in msg and "you gave: 4" in msg and "hint: used = total" in msg


def test_a_prediction_is_not_given_away_by_a_wrong_guess():
    with pytest.raises(ExerciseFailed) as err:
        check_equal((240, "steal"), (240, "claim"), "N = 240", reveal=False, hint="272 free")
    msg = str(err.value)
    assert "expected" not in msg and "claim" not in msg
    assert "you gave: (240, 'steal')" in msg and "not right yet: item 2 of 2" in msg
    with pytest.raises(ExerciseFailed) as err:
        check_equal({"pfn": 0, "order": 3, "x": 1}, {"pfn": 0, "order": 10}, "fallback",
                    reveal=False)
    msg = str(err.value)
    assert "10" not in msg.replace("you gave", "")
    assert "not right yet: order" in msg and "not asked for: x" in msg


def test_check_messages_show_addresses_in_hex_and_name_the_keys_that_differ():
    def region_of(va):
        return "vmalloc"

    with pytest.raises(ExerciseFailed, match=r"region_of\(0xffff800000001000\)"):
        check_function(region_of, [((0xFFFF800000001000,), "modules")], "region")
    want = {f"k{i}": i for i in range(50)}
    with pytest.raises(ExerciseFailed) as err:
        check_equal(dict(want, k7=0, extra=1), want, "meminfo")
    assert str(err.value).splitlines()[1:] == ["  k7: expected 7, you gave 0",
                                               "  extra: not asked for"]
    check_equal(24195488, 24195488, "MemFree")             # a size stays decimal


def test_check_function_reports_the_first_wrong_case():
    def double(x):
        return x * 2 if x < 3 else 0

    with pytest.raises(ExerciseFailed, match=r"double\(3\)"):
        check_function(double, [((1,), 2), ((3,), 6)], "doubling")


def test_a_stub_is_not_answered_yet_rather_than_a_traceback():
    def stub():
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        answer(stub)
    with pytest.raises(ExerciseFailed, match="not answered yet"):
        check_function(stub, [((), 1)], "stub")


# -- every real exercise: passes on the solution, fails on the stub -------------------------
def run_notebook(path: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def check_cell_errors(nb) -> list[str | None]:
    """For each check cell, the name of the exception it raised (None when it passed)."""
    out = []
    for cell in nb.cells:
        if is_check_cell(cell):
            errs = [o for o in cell.outputs if o.output_type == "error"]
            out.append(errs[0].ename if errs else None)
    return out


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_checks_pass_on_the_solution_and_fail_on_the_stub(solution):
    got = check_cell_errors(run_notebook(solution))
    assert got, f"{solution.name} has no check cell (a cell starting with '# CHECK')"
    assert got == [None] * len(got), f"checks that fail on the solution: {got}"
    student = EXERCISES / solution.name
    got = check_cell_errors(run_notebook(student))
    # Every check must fail, and fail with the learner-facing message, not a NameError.
    assert got == ["ExerciseFailed"] * len(got), f"checks on the student stub raised {got}"


# -- checks reject plausible wrong answers -------------------------------------------------
def mini_buddy(head_boot: bool = False, tail_rule_at_order_9: bool = False):
    """Chapter 06's MiniBuddy, right, or with one of two mistakes a learner makes: boot blocks
    inserted at the head, or the tail rule (buddy_merge_likely) applied at order 9 too."""
    from kmmlib.mm.page_alloc import boot_free_blocks

    class MiniBuddy:
        def __init__(self, n):
            self.n, self.lists = n, [[] for _ in range(11)]
            for pfn, order in boot_free_blocks(0, n):
                if head_boot:
                    self.lists[order].insert(0, pfn)
                else:
                    self.lists[order].append(pfn)

        def alloc(self, order):
            for cur in range(order, 11):
                if self.lists[cur]:
                    pfn = self.lists[cur].pop(0)
                    for k in range(cur - 1, order - 1, -1):
                        self.lists[k].insert(0, pfn + (1 << k))
                    return pfn
            return None

        def free(self, pfn, order):
            def is_free(p, o):
                return p < self.n and p in self.lists[o]

            while order < 10 and is_free(pfn ^ (1 << order), order):
                self.lists[order].remove(pfn ^ (1 << order))
                pfn &= ~(1 << order)
                order += 1
            limit = 10 if tail_rule_at_order_9 else 9
            if order < limit and is_free((pfn & ~(1 << order)) ^ (1 << (order + 1)), order + 1):
                self.lists[order].append(pfn)
            else:
                self.lists[order].insert(0, pfn)

        def free_lists(self):
            return self.lists

    return MiniBuddy


def test_check_allocator_rejects_the_plausible_mistakes(capsys):
    from kmmlib.exercises.buddy_problems import check_allocator

    check_allocator(mini_buddy(), what="right")
    assert "1 scripted case" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="a 3072-page zone, workload 0, step 1"):
        check_allocator(mini_buddy(head_boot=True))
    with pytest.raises(ExerciseFailed, match="no tail rule at order 9, step 8: free.pfn 2048"):
        check_allocator(mini_buddy(tail_rule_at_order_9=True))

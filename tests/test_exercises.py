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


# -- the audit's findings: each test failed before its fix ----------------------------------
def test_a_list_is_as_right_as_a_tuple(capsys):
    # 05's ["DMA", "DMA32"], 07's [240, "claim"]: the values are right, the container is not
    # what the check built; a reveal=False prediction must not be rejected for that.
    check_equal(["DMA", "DMA32"], ("DMA", "DMA32"), "x", reveal=False)
    check_equal([240, "claim"], (240, "claim"), "N = 240", reveal=False)
    check_function(lambda n: tuple(range(n)), [((3,), [0, 1, 2])], "tuple for a list")
    check_equal({"a": [1, 2]}, {"a": (1, 2)}, "a dict of tuples")
    assert "✔ x: ['DMA', 'DMA32']" in capsys.readouterr().out
    # A real difference still fails, and names an item number.
    with pytest.raises(ExerciseFailed) as err:
        check_equal(["DMA", "Normal"], ("DMA", "DMA32"), "x", reveal=False)
    assert "item  of" not in str(err.value) and "item 2 of 2" in str(err.value)


def test_the_learners_own_exception_names_the_call():
    def boom(x):
        return {}[x]

    with pytest.raises(ExerciseFailed, match=r"boom\(5\) raised KeyError: 5") as err:
        check_function(boom, [((5,), 1)], "boom")
    assert isinstance(err.value.__cause__, KeyError)

    def my_pred():
        return 1 // 0

    def stub():
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match=r"my_pred\(\) raised ZeroDivisionError"):
        answer(my_pred)
    with pytest.raises(ExerciseFailed, match="not answered yet"):     # the stub stays as it was
        check_function(stub, [((), 1)], "stub")


def test_check_allocator_reports_the_learners_exception_with_the_step():
    from kmmlib.exercises.buddy_problems import check_allocator

    class Broken(mini_buddy()):
        def alloc(self, order):
            if order == 3:
                raise IndexError("pop from empty list")
            return super().alloc(order)

    with pytest.raises(ExerciseFailed) as err:
        check_allocator(Broken, what="MiniBuddy")
    msg = str(err.value)
    assert "alloc(3) raised IndexError: pop from empty list" in msg
    assert "-page zone, workload" in msg and "step" in msg
    assert isinstance(err.value.__cause__, IndexError)


def test_huge_inputs_are_abbreviated_in_the_message():
    from kmmlib.mm.available import mem_available
    from kmmlib.procfs.meminfo import parse_meminfo
    from kmmlib.procfs.source import snapshot
    from kmmlib.procfs.zoneinfo import parse_zoneinfo

    snap = snapshot()
    mi, zones = parse_meminfo(snap.read("meminfo")), parse_zoneinfo(snap.read("zoneinfo"))

    def totalreserve(zones):                        # forgets to cap at managed
        return sum(max(z.protection[i:], default=0) + z.high for i, z in enumerate(zones))

    with pytest.raises(ExerciseFailed) as err:
        check_function(totalreserve, [((zones,), mem_available(mi, zones).totalreserve)],
                       "totalreserve_pages", hint="per zone: min(…, managed)")
    msg = str(err.value)
    assert len(msg) < 800, msg
    assert "ZoneInfo(DMA)" in msg and "ZoneInfo(DMA32)" in msg
    with pytest.raises(ExerciseFailed) as err:
        check_function(lambda m: m["MemTotal"] - m["MemFree"], [((mi,), 1)], "used")
    assert len(str(err.value)) < 800 and f"<dict of {len(mi)} keys" in str(err.value)
    report = "BUG kmalloc-64 (Not tainted): Poison overwritten\n" + "x" * 2000
    with pytest.raises(ExerciseFailed) as err:
        check_function(lambda r: ("overflow", 0), [((report,), ("poison", 8))], "diagnose")
    assert len(str(err.value)) < 800 and "Poison overwritten" in str(err.value)
    # A long list of results points at the first item that differs.
    want = [(p, 0) for p in range(200)]
    with pytest.raises(ExerciseFailed) as err:
        check_function(lambda n: want[:7] + [(7, 1)] + want[8:], [((200,), want)], "blocks")
    assert len(str(err.value)) < 800 and "item 8 of 200" in str(err.value)


def test_addresses_can_be_shown_in_hex_below_2_to_the_40():
    def pa_of(va):
        return va - 0xffff000000000000

    with pytest.raises(ExerciseFailed) as err:
        check_function(pa_of, [((0xffff000000123456,), 0x40123456)], "__pa()", addresses=True)
    msg = str(err.value)
    assert "expected: 0x40123456" in msg and "you gave: 0x123456" in msg


# -- each check stands alone; wrong answers the checks used to accept ------------------------
def notebook_cells(path: Path) -> list[tuple[bool, str]]:
    """(is a check cell, source) for every code cell of a notebook."""
    nb = json.loads(path.read_text())
    return [(is_check_cell(c), "".join(c["source"]) if isinstance(c["source"], list)
             else c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def run_cells(path: Path, cells: list[tuple[bool, str]], monkeypatch, capsys) -> dict:
    """Run the given cells in one fresh namespace, in the notebook's folder, as a kernel
    would (without IPython: the exercise notebooks use no magics)."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(path.parent)
    ns: dict = {"__name__": "__main__"}
    for _, src in cells:
        exec(compile(src, str(path), "exec"), ns)
    capsys.readouterr()
    return ns


CHECKS = [(p, k) for p in SOLUTIONS
          for k in range(sum(c for c, _ in notebook_cells(p)))]


@pytest.mark.parametrize("solution,k", CHECKS, ids=[f"{p.stem}-check{k + 1}" for p, k in CHECKS])
def test_every_check_passes_alone(solution, k, monkeypatch, capsys):
    """A learner who skips an exercise, or restarts the kernel and runs only the setup and one
    check, must not get a NameError: a check uses only what the non-check cells define."""
    cells = notebook_cells(solution)
    checks = [i for i, (c, _) in enumerate(cells) if c]
    run_cells(solution, [cell for i, cell in enumerate(cells)
                         if not cell[0] or i == checks[k]], monkeypatch, capsys)


def run_with(name: str, defines: str, wrong: str, monkeypatch, capsys) -> None:
    """Run solution notebook ``name`` up to the first check cell after the cell defining
    ``defines``, with ``wrong`` run right after that cell (a learner's wrong answer)."""
    path = EXERCISES / "solutions" / name
    cells = notebook_cells(path)
    at = next(i for i, (c, s) in enumerate(cells) if not c and f"def {defines}(" in s)
    check = next(i for i in range(at + 1, len(cells)) if cells[i][0])
    run = [cell for i, cell in enumerate(cells[:check]) if not cell[0]]
    run.insert(run.index(cells[at]) + 1, (False, wrong))
    run.append(cells[check])
    run_cells(path, run, monkeypatch, capsys)


WRONG = {
    "07 claim_candidate ignoring pageblock_order": ("07_fragmentation.ipynb", "claim_candidate", """
def claim_candidate(free, order, mt, pageblock_order=9):
    for current in range(len(free[0]) - 1, order - 1, -1):
        if not (current >= 9 // 2 or mt in (U, R)):
            return None
        for t in fallbacks[mt]:
            if free[t][current]:
                return (t, current)
    return None
"""),
    "07 would_claim ignoring pageblock_order": ("07_fragmentation.ipynb", "would_claim", """
def would_claim(free, movable, start_mt, block_mt, pageblock_order=9):
    nr = 512
    alike = movable if start_mt == M else (nr - free - movable if block_mt == M else 0)
    return free + alike >= nr // 2
"""),
    "07 the order-10 indices hard-coded": ("07_fragmentation.ipynb", "order10_indices", """
def order10_indices(nr_free):
    return (-1000, 263)
"""),
    "02 vm_enough with a float limit": ("02_malloc_mmap.ipynb", "vm_enough", """
def vm_enough(mode, pages, committed, totalram, swap, ratio):
    if mode == 1:
        return True
    if mode == 0:
        return pages <= totalram + swap
    return committed + pages < totalram * ratio / 100 + swap
"""),
    "02 victim with a float totalpages / 1000": ("02_malloc_mmap.ipynb", "victim", """
def victim(tasks, totalpages):
    chosen, best = None, None
    for t in tasks:
        if t["init"] or t["adj"] == -1000:
            continue
        points = t["rss"] + t["swap"] + t["pgtables"] + t["adj"] * (totalpages / 1000)
        if best is None or points >= best:
            chosen, best = t["pid"], points
    return chosen
"""),
    "03 vmemmap_size ignoring struct_page": ("03_layout.ipynb", "vmemmap_size", """
def vmemmap_size(va_bits, page_size, struct_page=64):
    va_min = va_bits if va_bits <= 48 else (47 if page_size == 16384 else 48)
    return ((1 << va_bits) - (1 << (va_min - 1))) // page_size * 64
"""),
}


@pytest.mark.parametrize("case", WRONG)
def test_checks_reject_wrong_answers_they_used_to_accept(case, monkeypatch, capsys):
    name, defines, wrong = WRONG[case]
    with pytest.raises(ExerciseFailed):
        run_with(name, defines, wrong, monkeypatch, capsys)


def test_the_wrong_answers_differ_from_the_kernel_on_the_audits_inputs():
    """The inputs the audit found, with what the kernel's code computes for them."""
    from kmmlib.userspace.oom import OomTask, select_bad_process
    from kmmlib.userspace.overcommit import VmCommit

    vm = VmCommit(1001, 0, overcommit_memory=2, overcommit_ratio=50, admin_reserve_kbytes=0,
                  user_reserve_kbytes=0)
    vm.vm_acct_memory(499)
    assert not vm.vm_enough_memory(1, cap_sys_admin=True)   # 499 + 1 < 1001 * 50 // 100: no
    got, _ = select_bad_process([OomTask(pid=200, comm="a", rss_anon=50001),
                                 OomTask(pid=300, comm="b", rss_anon=0, oom_score_adj=500)],
                                100999)
    assert got.pid == 200                                   # 500 * (100999 // 1000) = 50000


def test_buddy_problems_say_what_is_wrong_with_the_answer_and_the_limits():
    from kmmlib.exercises.buddy_problems import check_allocs, check_buddyinfo, main, make_problem

    p = make_problem(3)
    for check in (check_allocs, check_buddyinfo):
        with pytest.raises(ExerciseFailed, match="returned None — did you forget `return`"):
            check(p, None)
    for kw, limit in (({"n": 10**9}, "n must be 1..1000, not 1000000000"),
                      ({"pages": 0}, "pages must be 1..4096, not 0"),
                      ({"max_order": 11}, "max_order must be 0..10, not 11")):
        with pytest.raises(BadRequest, match=limit):
            make_problem(1, **kw)
    assert main(["-n", "1000000000"]) == 2


def test_prediction_hints_point_at_the_rule_not_the_answer():
    """The hints the audit found giving a reveal=False answer away are gone."""
    text = "".join(p.read_text() for p in SOLUTIONS)
    for giveaway in ("expand() keeps the lowest page", "an order-10 request succeeds",
                     "which is 0 in DMA32", "272 free pages", "252 free pages is less"):
        assert giveaway not in text


def test_addresses_in_hex_also_when_the_learners_code_raises():
    def pa_of(va):
        return {}[va]

    with pytest.raises(ExerciseFailed, match=r"pa_of\(0x40001000\) raised KeyError"):
        check_function(pa_of, [((0x40001000,), 0x1000)], "pa_of", addresses=True)


@pytest.mark.parametrize("value", [list(range(10)) * 20, tuple(range(100)), [[1] * 100] * 3,
                                   "=" * 300, "x" * 1000])
def test_an_abbreviated_value_stays_within_the_limit(value):
    from kmmlib.exercises.check import SHOW_LIMIT, show

    text = show(value)
    assert len(text) <= SHOW_LIMIT and ("…" in text or "characters" in text)

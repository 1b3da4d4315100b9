"""Buddy allocator practice problems, OSTEP style (like ``malloc.py`` from OSTEP's chapter 17).

From a seed, :func:`make_problem` builds a small zone and a random sequence of allocations and
frees; the learner predicts the pfn each allocation returns and the final ``/proc/buddyinfo``
counts, and :func:`check_allocs` / :func:`check_buddyinfo` say what is right, or explain the
first wrong step with the allocator's own narration of what it did there. The same problems
run from a terminal::

    python -m kmmlib.exercises.buddy_problems -s 3          # the questions
    python -m kmmlib.exercises.buddy_problems -s 3 -c       # with the answers (OSTEP's -c)

Frees refer to allocations by number (``free(p2)`` frees what ``p2 = alloc(1)`` returned),
so a wrong earlier prediction does not change the question.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from kmmlib.errors import BadRequest
from kmmlib.events import Collect
from kmmlib.exercises.check import ExerciseFailed
from kmmlib.mm.page_alloc import Zone, boot_free_blocks


@dataclass
class Step:
    """One operation: ``("alloc", order)`` producing pointer ``ptr``, or ``("free", ptr)``."""

    op: tuple
    ptr: int | None = None            # p<ptr> for an alloc; the pointer freed for a free
    pfn: int | None = None            # what the alloc returned (None = NULL), or what was freed
    order: int = 0
    narration: list[str] = field(default_factory=list)
    state_before: str = ""            # free lists before the step (for explanations)


@dataclass
class Problem:
    seed: int
    pages: int
    steps: list[Step]
    nr_free: list[int]                # final buddyinfo counts, orders 0..10

    @property
    def allocs(self) -> list[int | None]:
        """The right answer: the pfn of each alloc, in order (None for NULL)."""
        return [s.pfn for s in self.steps if s.op[0] == "alloc"]

    def question(self, show_answers: bool = False) -> str:
        return problem_text(self, show_answers)


def _lists(zone: Zone) -> str:
    parts = [f"[{o}]: {' '.join(map(str, zone.free_list(o)))}" for o in range(zone.nr_orders)
             if zone.free_list(o)]
    return "free lists (head first) " + ("; ".join(parts) if parts else "all empty")


MAX_PAGES, MAX_OPS = 4096, 1000         # a problem is worked by hand


def make_problem(seed: int, *, pages: int = 32, n: int = 10, max_order: int = 2,
                 free_fraction: float = 0.4) -> Problem:
    """A random problem: ``n`` operations on a ``pages``-page zone (all free at boot, per-cpu
    lists off, one migrate type). Allocation orders 0..max_order, small ones likelier."""
    for name, value, low, high in (("pages", pages, 1, MAX_PAGES), ("n", n, 1, MAX_OPS),
                                   ("max_order", max_order, 0, 10)):
        if not low <= value <= high:
            raise BadRequest(f"{name} must be {low}..{high}, not {value}")
    rng = random.Random(seed)
    zone = Zone(pages)
    live: dict[int, tuple[int, int]] = {}           # ptr -> (pfn, order)
    steps: list[Step] = []
    nptr = 0
    weights = [2 ** (max_order - o) for o in range(max_order + 1)]
    for _ in range(n):
        before = _lists(zone)
        if live and rng.random() < free_fraction:
            ptr = rng.choice(sorted(live))
            pfn, order = live.pop(ptr)
            with Collect(zone.events) as seen:
                zone.free(pfn, order)
            steps.append(Step(("free", ptr), ptr, pfn, order, [e.text for e in seen], before))
        else:
            order = rng.choices(range(max_order + 1), weights)[0]
            with Collect(zone.events) as seen:
                pfn = zone.alloc(order)
            if pfn is not None:
                live[nptr] = (pfn, order)
            steps.append(Step(("alloc", order), nptr, pfn, order, [e.text for e in seen],
                              before))
            nptr += 1
    return Problem(seed, pages, steps, zone.nr_free())


def problem_text(p: Problem, show_answers: bool = False) -> str:
    """The problem as OSTEP prints it: each operation, with ``?`` or the answer."""
    boot = ", ".join(f"order-{o} at {pfn}" for pfn, o in boot_free_blocks(0, p.pages))
    lines = [f"seed {p.seed}: a zone of {p.pages} pages (pfns 0-{p.pages - 1}); boot frees "
             f"{boot}."]
    for s in p.steps:
        if s.op[0] == "alloc":
            ans = ("NULL" if s.pfn is None else str(s.pfn)) if show_answers else "?"
            lines.append(f"  p{s.ptr} = alloc(order {s.order})  returned {ans}")
        else:
            lines.append(f"  free(p{s.ptr})")
        if show_answers:
            lines += [f"      {t}" for t in s.narration]
    counts = " ".join(map(str, p.nr_free)) if show_answers else "?"
    lines.append(f"final /proc/buddyinfo counts (orders 0-10): {counts}")
    return "\n".join(lines)


def _answered(predicted, what: str) -> None:
    if predicted is NotImplemented or predicted is Ellipsis:
        raise ExerciseFailed(f"✘ {what}: not answered yet.")
    if predicted is None:
        raise ExerciseFailed(f"✘ {what}: your function returned None — did you forget "
                             "`return`?")
    try:
        iter(predicted)
    except TypeError:
        raise ExerciseFailed(f"✘ {what}: give a list, not {predicted!r}.") from None


def check_allocs(p: Problem, predicted: Sequence[int | None], what: str | None = None) -> None:
    """Compare predicted pfns with the allocator's; explain the first wrong one."""
    what = what or f"problem {p.seed}: the pfn each alloc returns"
    _answered(predicted, what)
    predicted = list(predicted)
    allocs = [s for s in p.steps if s.op[0] == "alloc"]
    if len(predicted) != len(allocs):
        raise ExerciseFailed(f"✘ {what}: give one pfn per alloc ({len(allocs)} of them; "
                             f"None for NULL), not {len(predicted)}.")
    for s, guess in zip(allocs, predicted, strict=True):
        if guess != s.pfn:
            got = "NULL" if s.pfn is None else s.pfn
            lines = [f"✘ {what}: p{s.ptr} = alloc(order {s.order}) returns {got}, "
                     f"you said {guess}.",
                     f"  before it: {s.state_before}",
                     "  what the allocator did:"]
            lines += [f"    {t}" for t in s.narration]
            lines.append("  hint: __rmqueue_smallest() takes the HEAD of the smallest order that "
                         "has a block; expand() keeps the lowest half.")
            raise ExerciseFailed("\n".join(lines))
    print(f"✔ {what}: all {len(allocs)} right")


def check_buddyinfo(p: Problem, predicted: Sequence[int], what: str | None = None) -> None:
    """Compare predicted final nr_free counts (orders 0..10; shorter lists are padded with 0)."""
    what = what or f"problem {p.seed}: the final buddyinfo counts"
    _answered(predicted, what)
    predicted = list(predicted)
    if len(predicted) > len(p.nr_free):
        raise ExerciseFailed(f"✘ {what}: give one count per order, 0 to {len(p.nr_free) - 1} "
                             f"({len(p.nr_free)} at most), not {len(predicted)}.")
    predicted += [0] * (len(p.nr_free) - len(predicted))
    if predicted != p.nr_free:
        first = next(o for o, (a, b) in enumerate(zip(predicted, p.nr_free, strict=True))
                     if a != b)
        frees = [s for s in p.steps if s.op[0] == "free"]
        raise ExerciseFailed(
            f"✘ {what}: order {first} has {p.nr_free[first]} free block(s), you said "
            f"{predicted[first]}.\n  expected: {p.nr_free}\n  you gave: {predicted}\n"
            f"  hint: replay the {len(frees)} free(s): each merges with its buddy "
            "(pfn ^ (1 << order)) while the buddy is free at the same order.")
    print(f"✔ {what}: {p.nr_free}")


# Sequences a random workload rarely meets, each with the rule it holds. Frees name the pfns the
# kernel's rules hand out, so a wrong allocator fails at the step where it first differs.
SCRIPTS: tuple[tuple[int, str, tuple[tuple, ...]], ...] = (
    # Two order-9 blocks freed while their buddies are in use, with a free order-10 block
    # nearby: at order >= MAX_PAGE_ORDER - 1 buddy_merge_likely() is not asked, so both go
    # to the head (the order-9 list is [2048, 0]), not the tail.
    (4096, "no tail rule at order 9",
     (("alloc", 9),) * 6 + (("free", 0, 9), ("free", 2048, 9))),
)


def check_allocator(make, *, sizes: Sequence[int] = (8, 37, 64, 513, 3072),
                    seeds: Sequence[int] = range(6), n: int = 200, max_order: int = 3,
                    scripts=SCRIPTS, what: str = "your buddy allocator") -> None:
    """Run the learner's allocator (``make(nr_pages)`` → an object with ``alloc(order)`` →
    pfn or None, and ``free(pfn, order)``) and the simulator side by side on random
    workloads, then on the :data:`SCRIPTS`; stop at the first step where they differ and show
    what the kernel did there. If the object has ``free_lists()`` (a list per order of pfns,
    head first) it is compared after every step too. (A 3072-page zone boots three order-10
    blocks: the order in which they join their list shows.)"""
    from kmmlib.exercises.check import answer

    def call(context: str, fn, *args):
        """The learner's method; an exception it raises also says at which step."""
        try:
            return answer(fn, *args, what=what)
        except ExerciseFailed as err:
            if err.__cause__ is None:                   # not answered yet
                raise
            raise ExerciseFailed(f"{err}\n  at {context}") from err.__cause__

    def run(size: int, label: str, ops) -> int:
        zone = Zone(size)
        mine = answer(make, size, what=what)
        for step, op in enumerate(ops):
            before = _lists(zone)
            where = f"a {size}-page zone, {label}, step {step + 1}"
            if op[0] == "free":
                _, pfn, order = op
                desc = f"free(pfn {pfn}, order {order})"
                with Collect(zone.events) as seen:
                    zone.free(pfn, order)
                context = f"{where}: {desc}\n  before it: {before}"
                call(context, mine.free, pfn, order)
                want = got = None
            else:
                order = op[1]
                desc = f"alloc(order {order})"
                with Collect(zone.events) as seen:
                    want = zone.alloc(order)
                context = f"{where}: {desc}\n  before it: {before}"
                got = call(context, mine.alloc, order)
            lists_ok = True
            if hasattr(mine, "free_lists"):
                lists = call(context, mine.free_lists)
                try:
                    theirs = [list(x) for x in lists]
                except TypeError:
                    raise ExerciseFailed(f"✘ {what}: free_lists() must return a list per order "
                                         f"(of pfns, head first), not {lists!r}") from None
                ours = [zone.free_list(o) for o in range(zone.nr_orders)]
                lists_ok = theirs[:len(ours)] + [[]] * (len(ours) - len(theirs)) == ours
            if got != want or not lists_ok:
                lines = [f"✘ {what}: {where}: {desc}"]
                if got != want:
                    lines.append(f"  the kernel returns {want}, yours returned {got}")
                if not lists_ok:
                    lines.append(f"  free lists afterwards: the kernel's "
                                 f"{[zone.free_list(o) for o in range(zone.nr_orders)]}")
                    lines.append(f"                         yours        {theirs}")
                lines.append(f"  before it: {before}")
                lines.append("  what the kernel did:")
                lines += [f"    {e.text}" for e in seen]
                raise ExerciseFailed("\n".join(lines))
        return len(ops)

    def workload(size: int, seed: int):
        """Random allocs (orders 0..max_order) and frees of what they returned, the kernel's
        answers deciding what is held: the same ops whatever the learner's allocator does."""
        rng = random.Random(seed * 1000 + size)
        zone = Zone(size)
        held: list[tuple[int, int]] = []
        ops = []
        for _ in range(n):
            if held and rng.random() < 0.45:
                pfn, order = held.pop(rng.randrange(len(held)))
                zone.free(pfn, order)
                ops.append(("free", pfn, order))
            else:
                order = rng.choice([o for o in (0, 0, 0, 1, 1, 2, 3) if o <= max_order])
                pfn = zone.alloc(order)
                if pfn is not None:
                    held.append((pfn, order))
                ops.append(("alloc", order))
        return ops

    steps = 0
    for size in sizes:
        for seed in seeds:
            steps += run(size, f"workload {seed}", workload(size, seed))
    for size, label, ops in scripts:
        steps += run(size, label, ops)
    print(f"✔ {what}: same results as the kernel's rules on {steps} steps "
          f"({len(sizes)} zone sizes x {len(seeds)} workloads, and {len(scripts)} scripted "
          f"case{'s' if len(scripts) != 1 else ''})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kmmlib.exercises.buddy_problems",
                                 description="Practice problems for the buddy allocator.")
    ap.add_argument("-s", "--seed", type=int, default=0, help="random seed")
    ap.add_argument("-p", "--pages", type=int, default=32, help="pages in the zone")
    ap.add_argument("-n", "--ops", type=int, default=10, help="number of operations")
    ap.add_argument("-o", "--max-order", type=int, default=2, help="largest order asked for")
    ap.add_argument("-c", "--compute", action="store_true", help="show the answers")
    args = ap.parse_args(argv)
    try:
        p = make_problem(args.seed, pages=args.pages, n=args.ops, max_order=args.max_order)
    except BadRequest as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(problem_text(p, args.compute))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record and replay: step a model forwards and backwards through a list of operations.

Every widget in the course is a thin layer over a :class:`Stepper`. The model underneath is
plain Python and deterministic; it has

- ``events``: the :class:`~kmmlib.events.EventLog` it reports state changes to,
- ``apply(op)``: perform one operation (e.g. ``("alloc", 2)``), returning its result,
- ``render()``: a text rendering of its state (free lists, buddyinfo …).

The stepper keeps the list of operations and a position in it. ``step()`` applies the next one
and records the events it caused; ``back()`` returns to the state before the last step by
rebuilding the model from a checkpoint and replaying (deterministic models make that exact);
``do(op)`` applies a new operation now, where the learner is: the script's steps not taken yet
stay after it (a compaction in the middle of a workload, then the workload goes on), the
learner's own steps that were undone are forgotten, and ``reset()`` goes back to the script
alone. Because a notebook can print :meth:`state_text` in an ordinary cell, nbval checks
exactly what the widget shows.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kmmlib.errors import BadRequest
from kmmlib.events import Collect, Event, EventLog


class Model(Protocol):
    events: EventLog

    def apply(self, op: Any) -> Any: ...

    def render(self) -> str: ...


@dataclass
class Step:
    """One applied operation: what was asked, what came back, and the events it caused."""

    op: Any
    result: Any
    events: list[Event] = field(default_factory=list)
    error: str | None = None


def describe_op(op: Any) -> str:
    """``("alloc", 2)`` → ``alloc 2``; other ops print as themselves."""
    if isinstance(op, tuple):
        return " ".join(str(x) for x in op)
    return str(op)


class Stepper:
    """Steps ``make_model()`` through ``ops``. Checkpoints (deep copies of the model) keep
    ``back()`` fast on long runs: one is taken once the steps since the last have cost as much
    time as a copy does, and at most every ``checkpoint_every`` steps. So a back costs about
    two copies whatever the model, and a long run spends about as long copying as stepping —
    a big model, copied in tens of milliseconds, is copied every few hundred cheap steps, not
    every 32.

    An op that raises a kmmlib error is recorded as a failed step with its message (the model
    leaves its state intact on bad requests), so a widget shows the kernel-like report instead
    of a traceback.
    """

    def __init__(self, make_model: Callable[[], Model], ops: Sequence[Any] = (),
                 *, checkpoint_every: int = 32, describe: Callable[[Any], str] = describe_op):
        self.make_model = make_model
        self.ops = ops
        self.checkpoint_every = checkpoint_every
        self.describe = describe
        self.reset()

    @property
    def ops(self) -> list[Any]:
        """The operations, in order: the script, with the learner's own ops where they were
        done. A widget may append to this list (what it appends counts as the learner's);
        to change the script, assign a new one."""
        return self._ops

    @ops.setter
    def ops(self, ops: Sequence[Any]) -> None:
        """A new script (the learner's ops are gone with the old one)."""
        self._script = list(ops)
        self._ops = list(ops)
        self._learners = [False] * len(self._ops)

    def _mine(self) -> list[bool]:
        """Which ops are the learner's: those ``do()`` put in, and anything appended since."""
        n = len(self._ops)
        if len(self._learners) < n:
            self._learners += [True] * (n - len(self._learners))
        del self._learners[n:]
        return self._learners

    # -- moving -------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the model's initial state, and to the script alone (the learner's own ops
        are dropped)."""
        self._ops[:] = self._script
        self._learners = [False] * len(self._ops)
        self.model = self.make_model()
        self.history: list[Step] = []
        self._checkpoints: dict[int, Model] = {}
        self._checkpoint()

    @property
    def pos(self) -> int:
        """How many ops have been applied."""
        return len(self.history)

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.ops)

    def step(self) -> Step | None:
        """Apply the next op of the script; None when there is none left."""
        if self.at_end:
            return None
        return self._apply(self.ops[self.pos])

    def do(self, op: Any, keep_rest: bool = True) -> Step:
        """Apply a new op now (a widget button), before the script's steps not taken yet. The
        learner's own steps that were undone are forgotten; so is the rest of the script with
        ``keep_rest=False``, for a script that cannot go on after the learner's op (the
        fault stepper's plan of steps)."""
        pos, mine = self.pos, self._mine()
        rest = [(o, m) for o, m in zip(self._ops[pos:], mine[pos:], strict=True)
                if not m and keep_rest]
        self._ops[pos:] = [op] + [o for o, _ in rest]
        self._learners[pos:] = [True] + [False] * len(rest)
        for k in [k for k in self._checkpoints if k > pos]:
            del self._checkpoints[k]          # states of a future that changed
        return self._apply(op)

    def back(self) -> Step | None:
        """Undo the last step; returns it, or None at the start."""
        if not self.history:
            return None
        self.goto(self.pos - 1)
        return self.history[-1] if self.history else None

    def goto(self, n: int) -> None:
        """Rebuild the state after the first ``n`` ops (0 ≤ n ≤ len(ops))."""
        if not 0 <= n <= len(self.ops):
            raise BadRequest(f"step {n} is outside 0..{len(self.ops)}")
        if n >= self.pos:
            while self.pos < n:
                self.step()
            return
        base = max(k for k in self._checkpoints if k <= n)
        # The state being left is garbage now, often in reference cycles that hold megabytes
        # in a few objects (which is what the collector counts): free it at once. It is young
        # (a recent copy, or stepped into), so the young generations hold it, and collecting
        # them costs about a millisecond where a full collection walks the whole kernel.
        self.model = None
        gc.collect(1)
        self.model = copy.deepcopy(self._checkpoints[base])
        kept = self.history[:n]
        self.history = self.history[:base]
        self._since = 0.0
        for k in range(base, n):
            self._apply(self.ops[k], checkpoint=False)
        # The replayed steps are the same as before (deterministic model); keep the originals.
        self.history = kept
        for k in [k for k in self._checkpoints if k > n]:
            del self._checkpoints[k]

    def run(self) -> None:
        """Apply every remaining op."""
        while self.step() is not None:
            pass

    def _apply(self, op: Any, checkpoint: bool = True) -> Step:
        from kmmlib.errors import KmmError

        t = time.perf_counter()
        with Collect(self.model.events) as seen:
            try:
                result, error = self.model.apply(op), None
            except KmmError as err:
                result, error = None, str(err)
        step = Step(op, result, list(seen), error)
        self.history.append(step)
        self._since += time.perf_counter() - t
        if checkpoint and self._since >= self._copy_cost and \
                self.pos - max(self._checkpoints) >= self.checkpoint_every:
            self._checkpoint()
        return step

    def _checkpoint(self) -> None:
        """Keep a copy of the model as it is now, and how long the copy took."""
        t = time.perf_counter()
        self._checkpoints[self.pos] = copy.deepcopy(self.model)
        self._copy_cost = time.perf_counter() - t
        self._since = 0.0

    # -- showing ------------------------------------------------------------------------
    def narration(self) -> str:
        """What the last step did, one event a line."""
        if not self.history:
            return "(start: nothing has happened yet)"
        last = self.history[-1]
        head = f"step {self.pos}/{len(self.ops)}: {self.describe(last.op)}"
        if last.error:
            return f"{head} → refused\n  {last.error}"
        lines = [head if last.result is None else f"{head} → {last.result}"]
        lines += [f"  {ev.text}" for ev in last.events]
        return "\n".join(lines)

    def state_text(self) -> str:
        """The narration of the last step, then the model's own rendering."""
        return f"{self.narration()}\n{self.model.render()}"

"""The record/replay stepper that every widget uses, on a small model defined here."""

from __future__ import annotations

import random

import pytest

from kmmlib.errors import BadRequest, KmmError
from kmmlib.events import Collect, EventLog
from kmmlib.stepper import Stepper


class Stack:
    """A toy deterministic model: push/pop on a stack, reporting events."""

    def __init__(self):
        self.events = EventLog()
        self.items: list[int] = []

    def apply(self, op):
        kind, *arg = op
        if kind == "push":
            self.items.append(arg[0])
            self.events.emit("push", f"push {arg[0]}", value=arg[0])
            return len(self.items)
        if kind == "pop":
            if not self.items:
                raise BadRequest("pop from an empty stack")
            value = self.items.pop()
            self.events.emit("pop", f"pop {value}", value=value)
            return value
        raise BadRequest(f"unknown op {kind}")

    def render(self):
        return f"stack: {self.items}"


def script(n, seed=1):
    rng = random.Random(seed)
    return [("push", rng.randrange(100)) if rng.random() < 0.6 else ("pop",) for _ in range(n)]


def replay(ops):
    s = Stack()
    for op in ops:
        try:
            s.apply(op)
        except KmmError:
            pass
    return s.items


def test_step_and_narration():
    st = Stepper(Stack, [("push", 7), ("push", 9), ("pop",)])
    assert st.state_text().startswith("(start")
    st.step()
    st.step()
    assert st.model.items == [7, 9]
    assert st.narration() == "step 2/3: push 9 → 2\n  push 9"
    st.step()
    assert st.step() is None and st.at_end
    assert st.state_text().endswith("stack: [7]")


def test_back_and_goto_match_a_fresh_replay_at_every_position():
    ops = script(200)
    st = Stepper(Stack, ops, checkpoint_every=16)
    st.run()
    for n in (199, 150, 64, 63, 17, 16, 1, 0, 120):
        st.goto(n)
        assert st.pos == n and st.model.items == replay(ops[:n]), n
    st.goto(200)
    assert st.model.items == replay(ops)


def test_back_undoes_one_step_and_history_is_kept():
    st = Stepper(Stack, [("push", 1), ("push", 2)])
    st.run()
    st.back()
    assert st.model.items == [1] and st.pos == 1
    assert [s.op for s in st.history] == [("push", 1)]
    st.back()
    assert st.back() is None and st.model.items == []


def test_do_goes_before_the_scripts_next_steps_and_reset_brings_the_script_back():
    st = Stepper(Stack, [("push", 1), ("push", 2), ("push", 3)])
    st.run()
    st.back()
    st.back()
    st.do(("push", 5))                     # the learner's op, where they are
    assert st.ops == [("push", 1), ("push", 5), ("push", 2), ("push", 3)]
    assert st.model.items == [1, 5] and not st.at_end
    st.run()                               # the script goes on after it
    assert st.model.items == [1, 5, 2, 3]
    st.reset()
    assert st.ops == [("push", 1), ("push", 2), ("push", 3)] and st.model.items == []


def test_do_forgets_the_learners_undone_steps():
    st = Stepper(Stack, [("push", 1)])
    st.step()
    st.do(("push", 7))
    st.do(("push", 8))
    st.back()
    st.back()                              # both of the learner's ops undone
    st.do(("push", 9))
    assert st.ops == [("push", 1), ("push", 9)] and st.model.items == [1, 9]
    st.ops.extend([("push", 4)])           # a widget queues more of the learner's steps
    st.run()
    st.reset()
    assert st.ops == [("push", 1)]


def test_refused_op_is_recorded_and_state_intact():
    st = Stepper(Stack, [("push", 1), ("pop",), ("pop",)])
    st.run()
    last = st.history[-1]
    assert last.error == "pop from an empty stack" and last.result is None
    assert "refused" in st.narration() and st.model.items == []


def test_goto_out_of_range():
    st = Stepper(Stack, [("push", 1)])
    with pytest.raises(BadRequest, match="outside 0..1"):
        st.goto(2)


def test_event_log_listeners_and_record():
    log = EventLog(record=2)
    assert log.active
    seen = []
    unsubscribe = log.subscribe(seen.append)
    for i in range(3):
        log.emit("x", f"event {i}", i=i)
    assert [e.data["i"] for e in log.events] == [1, 2]  # bounded record
    assert [str(e) for e in seen] == ["event 0", "event 1", "event 2"]
    unsubscribe()
    log.emit("x", "after")
    assert len(seen) == 3
    quiet = EventLog()
    assert not quiet.active
    with Collect(quiet) as got:
        assert quiet.active
        quiet.emit("y", "inside")
    assert [e.kind for e in got] == ["y"] and not quiet.active


class SlowToCopy(Stack):
    """A model whose copy costs far more than a step (as a whole zone's does)."""

    def __deepcopy__(self, memo):
        import time

        time.sleep(0.005)
        new = SlowToCopy()
        new.items = list(self.items)
        return new


def test_checkpoints_wait_until_the_steps_cost_as_much_as_a_copy():
    st = Stepper(SlowToCopy, [("push", i) for i in range(200)], checkpoint_every=8)
    st.run()
    assert list(st._checkpoints) == [0]           # 200 cheap steps cost less than one copy
    st.goto(150)
    assert st.model.items == list(range(150))
    fast = Stepper(Stack, [("push", i) for i in range(200)], checkpoint_every=8)
    fast.run()
    assert len(fast._checkpoints) > 1             # a cheap copy is taken every 8 steps or so


def test_going_back_does_not_pile_up_garbage():
    """Each back replaces the model; the old one's zones (megabytes each, in reference cycles
    with their allocator) are freed at once, not left for a full collection."""
    import gc

    from kmmlib.trace.replay import ReplayZone
    from kmmlib.widgets.trace import trace_widget

    def zones_alive() -> int:
        return sum(isinstance(o, ReplayZone) for o in gc.get_objects())

    gc.collect()                           # other tests' garbage is not this test's
    others = zones_alive()                 # (fixtures may keep replays of their own)
    w = trace_widget(n=300)
    for _ in range(64):
        w.stepper.step()
    for _ in range(40):
        w.stepper.back()
        w.stepper.step()
    zones = zones_alive() - others
    # the model's, its checkpoints', the last replaced model's, and as many again in
    # collections not yet due; 40 replaced models' zones were piling up (16 of them seen)
    assert zones <= 2 * (len(w.stepper._checkpoints) + 2), zones


def test_ops_edited_in_place_and_reset():
    st = Stepper(Stack, [("push", 1), ("push", 2)])
    st.step()
    del st.ops[st.pos:]                    # a widget may cut the script short …
    st.do(("push", 9))
    assert st.model.items == [1, 9]
    st.ops.insert(0, ("push", 0))          # … or edit it: reset goes back to the script
    st.reset()
    assert st.ops == [("push", 1), ("push", 2)]
    st.ops = [("push", 7), ("push", 8), ("push", 9)]
    st.reset()
    assert st.ops == [("push", 7), ("push", 8), ("push", 9)]

"""Checks for exercise notebooks: a clear message on failure, never a bare AssertionError.

A check cell calls one of these. On success it prints one line starting with ``✔``; on failure
it raises :class:`ExerciseFailed`, whose message says what was checked, what was expected,
what the learner gave, and a hint. An answer that is still the stub (``NotImplementedError``)
gets "not answered yet" instead of a traceback into kmmlib.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ExerciseFailed(Exception):
    """The learner's answer is not right yet. The message explains why."""


def _fail(what: str, expected: Any, got: Any, hint: str | None) -> None:
    lines = [f"✘ {what}: not right yet.", f"  expected: {expected!r}", f"  you gave: {got!r}"]
    if hint:
        lines.append(f"  hint: {hint}")
    raise ExerciseFailed("\n".join(lines))


def answer(fn: Callable[..., Any], *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Call the learner's function; a stub still raising NotImplementedError gets a clear note."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        name = what or getattr(fn, "__name__", "this exercise")
        raise ExerciseFailed(
            f"✘ {name}: not answered yet. Replace the `raise NotImplementedError` line "
            "in the cell above with your code, run it, then run this check again."
        ) from None


def check_equal(got: Any, expected: Any, what: str, hint: str | None = None) -> None:
    """Pass when ``got == expected``; print a ✔ line."""
    if got is NotImplemented or got is Ellipsis:
        raise ExerciseFailed(f"✘ {what}: not answered yet.")
    if got != expected:
        _fail(what, expected, got, hint)
    print(f"✔ {what}: {got!r}")


def check_function(fn: Callable[..., Any], cases: list[tuple[tuple, Any]], what: str,
                   hint: str | None = None) -> None:
    """Run ``fn(*args)`` for each ``(args, expected)`` and stop at the first wrong case."""
    for args, expected in cases:
        got = answer(fn, *args, what=what)
        if got != expected:
            call = f"{getattr(fn, '__name__', what)}({', '.join(map(repr, args))})"
            _fail(f"{what} — {call}", expected, got, hint)
    print(f"✔ {what}: {len(cases)} case{'s' if len(cases) != 1 else ''} right")

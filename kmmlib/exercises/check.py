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


def show(value: Any) -> str:
    """A value as the learner should read it: addresses and page-flag words (ints of 2^40
    and up: no size or count in the exercises is that big) in hex, as the kernel prints
    them; everything else as repr()."""
    if type(value) is int and abs(value) >= 1 << 40:
        return hex(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(map(show, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(show, value)) + "]"
    return repr(value)


def _which_parts(expected: Any, got: Any, reveal: bool) -> list[str]:
    """Where an answer differs: for a dict, each key that differs (with both values when
    ``reveal``; a whole meminfo dict would hide the one wrong line), for a tuple or list of
    the right length, which items."""
    if isinstance(expected, dict) and isinstance(got, dict):
        wrong = [k for k in expected if k not in got or got[k] != expected[k]]
        extra = [k for k in got if k not in expected]
        if reveal:
            out = [f"  {k}: expected {show(expected[k])}, you gave "
                   f"{show(got[k]) if k in got else '(missing)'}" for k in wrong]
            return out + [f"  {k}: not asked for" for k in extra]
        out = [f"  not right yet: {', '.join(map(str, wrong))}"] if wrong else []
        return out + ([f"  not asked for: {', '.join(map(str, extra))}"] if extra else [])
    if isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)) and \
            len(expected) == len(got) > 1:
        wrong = [str(i + 1) for i, (a, b) in enumerate(zip(expected, got, strict=True))
                 if a != b]
        return [f"  not right yet: item{'s' if len(wrong) > 1 else ''} {', '.join(wrong)} "
                f"of {len(expected)}"]
    return []


def _fail(what: str, expected: Any, got: Any, hint: str | None, reveal: bool = True) -> None:
    lines = [f"✘ {what}: not right yet."]
    if not (isinstance(expected, dict) and isinstance(got, dict)):
        if reveal:
            lines.append(f"  expected: {show(expected)}")
        lines.append(f"  you gave: {show(got)}")
    lines += _which_parts(expected, got, reveal)
    if not reveal:
        lines.append("  (a prediction: the answer is not shown; work it out again, then "
                     "re-run this cell)")
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


def check_equal(got: Any, expected: Any, what: str, hint: str | None = None, *,
                reveal: bool = True) -> None:
    """Pass when ``got == expected``; print a ✔ line. ``reveal=False`` for predictions: a
    wrong answer is told which parts are wrong, never the expected value (otherwise any guess
    would show the answer)."""
    if got is NotImplemented or got is Ellipsis:
        raise ExerciseFailed(f"✘ {what}: not answered yet.")
    if got != expected:
        _fail(what, expected, got, hint, reveal)
    print(f"✔ {what}: {show(got)}")


def check_function(fn: Callable[..., Any], cases: list[tuple[tuple, Any]], what: str,
                   hint: str | None = None) -> None:
    """Run ``fn(*args)`` for each ``(args, expected)`` and stop at the first wrong case."""
    for args, expected in cases:
        got = answer(fn, *args, what=what)
        if got != expected:
            call = f"{getattr(fn, '__name__', what)}({', '.join(map(show, args))})"
            _fail(f"{what} — {call}", expected, got, hint)
    print(f"✔ {what}: {len(cases)} case{'s' if len(cases) != 1 else ''} right")

"""Checks for exercise notebooks: a clear message on failure, never a bare AssertionError.

A check cell calls one of these. On success it prints one line starting with ``✔``; on failure
it raises :class:`ExerciseFailed`, whose message says what was checked, what was expected,
what the learner gave, and a hint. An answer that is still the stub (``NotImplementedError``)
gets "not answered yet" instead of a traceback into kmmlib; any other exception the learner's
code raises is reported with the call that raised it.

A list and a tuple with the same items are the same answer (``[240, "claim"]`` is as right as
``(240, "claim")``): the exercises ask for values, not for a container type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: Longer shown values are abbreviated (a whole meminfo dict or a SLUB report would bury the
#: line that matters).
SHOW_LIMIT = 200


class ExerciseFailed(Exception):
    """The learner's answer is not right yet. The message explains why."""


def same(got: Any, expected: Any) -> bool:
    """``got == expected``, except that a list and a tuple with the same items are equal (at
    any depth, and inside dict values)."""
    if isinstance(got, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(
            same(a, b) for a, b in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in got)
    try:
        return bool(got == expected)
    except Exception:                   # an answer whose == raises is not the answer
        return False


def _show(value: Any, addresses: bool) -> str:
    if type(value) is int and (addresses or abs(value) >= 1 << 40):
        return hex(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v, addresses) for v in value) + \
            ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, addresses) for v in value) + "]"
    return repr(value)


def _brief(value: Any, addresses: bool, limit: int) -> str:
    """One item of an abbreviated sequence: ``ZoneInfo(DMA)`` for an object with a name."""
    try:
        name = getattr(value, "name", None)
    except Exception:                   # a property that raises: show the value as it is
        name = None
    if isinstance(name, str) and not isinstance(value, (str, int, tuple, list, dict)):
        return f"{type(value).__name__}({name})"
    return show(value, addresses=addresses, limit=limit)


def _abbreviate(value: Any, text: str, addresses: bool, limit: int) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:3])
        return f"<dict of {len(value)} keys: {keys}{', …' if len(value) > 3 else ''}>"
    if isinstance(value, (list, tuple)) and value:
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        items: list[str] = []
        room = limit - len(f", … {len(value)} items") - 2
        used = 0
        for v in value:                 # as many items as fit with their ", ", at least one
            item = _brief(v, addresses, max(8, room // 4))
            if items and used + len(item) + 2 > room:
                break
            items.append(item)
            used += len(item) + 2
        more = f", … {len(value)} items" if len(items) < len(value) else ""
        return f"{open_}{', '.join(items)}{more}{close}"
    if isinstance(value, str):
        short = re.sub(r"(.)\1{5,}", r"\1\1\1…", value)     # a ===== rule says little
        if len(short) <= limit:
            return f"{short!r} ({len(value)} characters)"
        return f"{short[:limit // 2]!r} … {short[-limit // 4:]!r} ({len(value)} characters)"
    return f"{text[:limit * 2 // 3]} … {text[-limit // 4:]}"


def show(value: Any, *, addresses: bool = False, limit: int | None = SHOW_LIMIT) -> str:
    """A value as the learner should read it: addresses and page-flag words (ints of 2^40
    and up: no size or count in the exercises is that big; every int with ``addresses``) in
    hex, as the kernel prints them; everything else as repr(). Longer than ``limit``
    characters, it is abbreviated: ``<dict of 54 keys: …>``, ``[ZoneInfo(DMA), … 5 items]``,
    or the start and end of a long string."""
    text = _show(value, addresses)
    if limit is not None and len(text) > limit:
        return _abbreviate(value, text, addresses, limit)
    return text


def _which_parts(expected: Any, got: Any, reveal: bool, addresses: bool = False) -> list[str]:
    """Where an answer differs: for a dict, each key that differs (with both values when
    ``reveal``; a whole meminfo dict would hide the one wrong line), for a tuple or list,
    which items (with the first differing pair when ``reveal``)."""
    def sh(v: Any) -> str:
        return show(v, addresses=addresses)

    if isinstance(expected, dict) and isinstance(got, dict):
        wrong = [k for k in expected if k not in got or not same(got[k], expected[k])]
        extra = [k for k in got if k not in expected]
        if reveal:
            out = [f"  {k}: expected {sh(expected[k])}, you gave "
                   f"{sh(got[k]) if k in got else '(missing)'}" for k in wrong]
            return out + [f"  {k}: not asked for" for k in extra]
        out = [f"  not right yet: {', '.join(map(str, wrong))}"] if wrong else []
        return out + ([f"  not asked for: {', '.join(map(str, extra))}"] if extra else [])
    if isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)):
        if reveal and max(len(_show(expected, addresses)), len(_show(got, addresses))) \
                <= SHOW_LIMIT:
            return []                   # both are shown whole: the learner can compare them
        if len(expected) != len(got):
            return [f"  you gave {len(got)} items, expected {len(expected)}"] if reveal else []
        wrong = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if not same(b, a)]
        if not wrong:
            return []
        if reveal:
            i = wrong[0]
            first = "" if len(wrong) == 1 else " (the first of them)"
            return [f"  item {i + 1} of {len(expected)}{first}: expected {sh(expected[i])}, "
                    f"you gave {sh(got[i])}"] + \
                ([f"  items not right yet: {len(wrong)} of {len(expected)}"] if len(wrong) > 1
                 else [])
        if len(expected) > 1:
            nums = ", ".join(str(i + 1) for i in wrong[:10]) + (", …" if len(wrong) > 10 else "")
            return [f"  not right yet: item{'s' if len(wrong) > 1 else ''} {nums} "
                    f"of {len(expected)}"]
    return []


def _fail(what: str, expected: Any, got: Any, hint: str | None, reveal: bool = True,
          addresses: bool = False) -> None:
    lines = [f"✘ {what}: not right yet."]
    if not (isinstance(expected, dict) and isinstance(got, dict)):
        if reveal:
            lines.append(f"  expected: {show(expected, addresses=addresses)}")
        lines.append(f"  you gave: {show(got, addresses=addresses)}")
    lines += _which_parts(expected, got, reveal, addresses)
    if not reveal:
        lines.append("  (a prediction: the answer is not shown; work it out again, then "
                     "re-run this cell)")
    if hint:
        lines.append(f"  hint: {hint}")
    raise ExerciseFailed("\n".join(lines))


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict | None = None,
          addresses: bool = False) -> str:
    shown = [show(a, addresses=addresses) for a in args]
    shown += [f"{k}={show(v, addresses=addresses)}" for k, v in (kwargs or {}).items()]
    return f"{getattr(fn, '__name__', 'your function')}({', '.join(shown)})"


def answer(fn: Callable[..., Any], *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Call the learner's function; a stub still raising NotImplementedError gets a clear note,
    any other exception a message naming the call and the exception."""
    return _answer(fn, args, kwargs, what, addresses=False)


def _answer(fn: Callable[..., Any], args: tuple, kwargs: dict, what: str | None,
            addresses: bool) -> Any:
    name = what or getattr(fn, "__name__", "this exercise")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseFailed(
            f"✘ {name}: not answered yet. Replace the `raise NotImplementedError` line "
            "in the cell above with your code, run it, then run this check again."
        ) from None
    except ExerciseFailed:
        raise
    except Exception as err:
        raise ExerciseFailed(
            f"✘ {name}: {_call(fn, args, kwargs, addresses)} raised {type(err).__name__}: "
            f"{err}\n"
            "  (the traceback above ends at the line of your code that raised it)") from err


def check_equal(got: Any, expected: Any, what: str, hint: str | None = None, *,
                reveal: bool = True, addresses: bool = False) -> None:
    """Pass when ``got`` equals ``expected`` (a list and a tuple of the same items are equal);
    print a ✔ line. ``reveal=False`` for predictions: a wrong answer is told which parts are
    wrong, never the expected value (otherwise any guess would show the answer).
    ``addresses`` shows every int in hex."""
    if got is NotImplemented or got is Ellipsis:
        raise ExerciseFailed(f"✘ {what}: not answered yet.")
    if not same(got, expected):
        _fail(what, expected, got, hint, reveal, addresses)
    print(f"✔ {what}: {show(got, addresses=addresses)}")


def check_function(fn: Callable[..., Any], cases: list[tuple[tuple, Any]], what: str,
                   hint: str | None = None, *, addresses: bool = False) -> None:
    """Run ``fn(*args)`` for each ``(args, expected)`` and stop at the first wrong case.
    ``addresses`` shows every int (arguments and results) in hex."""
    for args, expected in cases:
        got = _answer(fn, args, {}, what, addresses)
        if not same(got, expected):
            _fail(f"{what} — {_call(fn, args, addresses=addresses)}", expected, got, hint,
                  addresses=addresses)
    print(f"✔ {what}: {len(cases)} case{'s' if len(cases) != 1 else ''} right")

"""The event stream: every state change in the simulator reports here.

The allocators call :meth:`EventLog.emit` for each thing a learner may want to see — an
allocation, a split in ``expand()``, a merge in ``__free_one_page()``, a fallback, a new slab,
a page fault step — the way the kernel fires tracepoints. Pictures, widgets and the stepper
(:mod:`kmmlib.stepper`) listen; the core never knows who does.

Emitting costs nothing when nobody listens: hot paths test ``log.active`` before building an
event, as the kernel's ``trace_*()`` calls are static branches when tracing is off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One state change. ``kind`` is a short kernel-ish name (``alloc``, ``split``, ``merge``,
    ``free``, ``fallback``, ``slab_new``, ``fault`` …); ``text`` is the one-line narration a
    widget shows; ``data`` holds the facts (pfn, order, migratetype …) for code to use."""

    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


Listener = Callable[[Event], None]


class EventLog:
    """Fan-out of events to listeners, with an optional bounded record of the last ones."""

    def __init__(self, record: int = 0):
        self._listeners: list[Listener] = []
        self._record = record
        self.events: list[Event] = []
        # A plain attribute, not a property: the allocators test it on every operation.
        self.active = record > 0
        """True when an event would be seen by anyone: callers skip building it otherwise."""

    @property
    def record(self) -> int:
        """Keep the last ``record`` events in ``.events`` (0 = keep none)."""
        return self._record

    @record.setter
    def record(self, n: int) -> None:
        self._record = n
        self._update()

    def _update(self) -> None:
        self.active = bool(self._listeners) or self._record > 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        self._update()

        def unsubscribe() -> None:
            self._listeners.remove(listener)
            self._update()

        return unsubscribe

    def emit(self, kind: str, text: str, **data: Any) -> Event:
        ev = Event(kind, text, data)
        if self._record:
            self.events.append(ev)
            if len(self.events) > self._record:
                del self.events[: len(self.events) - self._record]
        for listener in list(self._listeners):
            listener(ev)
        return ev

    def clear(self) -> None:
        self.events.clear()


class Collect:
    """Context manager that gathers the events emitted inside its block::

        with Collect(zone.events) as seen:
            zone.alloc_pages(GFP_KERNEL, 2)
        print(*seen, sep="\\n")
    """

    def __init__(self, log: EventLog):
        self.log = log
        self.events: list[Event] = []
        self._unsubscribe: Callable[[], None] | None = None

    def __enter__(self) -> list[Event]:
        self._unsubscribe = self.log.subscribe(self.events.append)
        return self.events

    def __exit__(self, *exc: object) -> None:
        assert self._unsubscribe is not None
        self._unsubscribe()

"""The stepping widget every chapter uses: buttons over a :class:`kmmlib.stepper.Stepper`.

The widget holds no state of its own: each button calls the stepper and then redraws the
narration and the model's text rendering (and, when given, a picture). So what a notebook
prints with ``stepper.state_text()`` is exactly what the widget shows, and nbval checks it.
The text goes in an ``HTML`` ``<pre>`` (not an ``Output``), which renders without a frontend
round-trip and stays correct in a static HTML export.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as W

from kmmlib.stepper import Stepper


def pre(text: str) -> str:
    return ("<pre style='font-family: var(--jp-code-font-family, monospace); "
            f"font-size: 12px; line-height: 1.3; margin: 0'>{html.escape(text)}</pre>")


class StepperWidget(W.VBox):
    """◀ back, step ▶, ▶▶ play, ⟲ reset over a stepper; ``extra`` widgets go in the bar.

    ``picture(stepper)`` may return an HTML/SVG string drawn above the text (e.g. a memory bar).
    """

    def __init__(self, stepper: Stepper, *, extra: list[W.Widget] | None = None,
                 picture: Callable[[Stepper], str] | None = None, play_interval_ms: int = 600):
        self.stepper = stepper
        self.picture = picture
        self.back_button = W.Button(description="◀ back", tooltip="undo the last step")
        self.step_button = W.Button(description="step ▶", tooltip="do the next step")
        self.reset_button = W.Button(description="⟲ reset", tooltip="back to the start")
        self.play = W.Play(interval=play_interval_ms, min=0, max=max(len(stepper.ops), 1),
                           description="play", show_repeat=False)
        self.position = W.HTML()
        self.view = W.HTML()
        self.drawing = W.HTML()
        self.back_button.on_click(lambda _: self._do(stepper.back))
        self.step_button.on_click(lambda _: self._do(stepper.step))
        self.reset_button.on_click(lambda _: self._do(stepper.reset))
        self.play.observe(self._on_play, names="value")
        bar = W.HBox([self.back_button, self.step_button, self.play, self.reset_button,
                      *(extra or []), self.position])
        super().__init__([bar, self.drawing, self.view])
        self.refresh()

    def _do(self, action: Callable[[], object]) -> None:
        action()
        self.refresh()

    def _on_play(self, change) -> None:
        target = min(change["new"], len(self.stepper.ops))
        self.stepper.goto(target)
        self.refresh()

    def refresh(self) -> None:
        st = self.stepper
        self.back_button.disabled = st.pos == 0
        self.step_button.disabled = st.at_end
        self.play.max = max(len(st.ops), 1)
        if self.play.value != st.pos:
            self.play.value = st.pos  # re-enters _on_play with goto(pos): a no-op
        self.position.value = f"&nbsp;step {st.pos} of {len(st.ops)}"
        self.view.value = pre(st.state_text())
        if self.picture is not None:
            self.drawing.value = self.picture(st)

    @property
    def text(self) -> str:
        """What the widget shows, as plain text (tests and notebooks print it)."""
        return self.stepper.state_text()

"""A redraw coalescer: at most one redraw per frame, and no added latency for an isolated change.

A plain single-shot timer of 15 ms puts a 15 ms floor under every step change. This one fires on the
next event-loop turn when the last redraw was at least ``min_gap_ms`` ago (so bursts queued in one
turn still collapse into one redraw), and otherwise waits only for the rest of the gap, which caps
redraws at one per frame while tokens stream. While ``busy()`` says a run is streaming, the gap also
grows to ``cost_factor`` times the last redraw's own cost, so a slow redraw (a big model on a loaded
machine) leaves the event loop most of its time instead of redrawing back to back; a user scrubbing a
finished run gets every frame as soon as possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6 import QtCore


class FrameCoalescer(QtCore.QObject):
    """Call ``fn`` once for any number of :meth:`request` calls, at most once per ``min_gap_ms``."""

    def __init__(
        self,
        fn: Callable[[], None],
        min_gap_ms: int = 15,
        parent: QtCore.QObject | None = None,
        cost_factor: float = 3.0,
        busy: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        super().__init__(parent)
        self._busy = busy
        self._clock = clock  # seconds; a test passes a fake one to check the spacing exactly
        self._fn = fn
        self._gap = min_gap_ms / 1000.0
        self._cost_factor = cost_factor
        self._cost = 0.0  # seconds the last redraw took
        self._last = -1e9
        self._timer = QtCore.QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._fire)

    def request(self, *_: object) -> None:
        """Ask for a redraw; repeated requests before it happens collapse into one."""
        if self._timer.isActive():
            return
        self._timer.start(self.delay_ms())

    def delay_ms(self) -> int:
        """How long a redraw asked for now waits: the rest of the gap since the last redraw."""
        gap = self._gap
        if self._busy is not None and self._busy():
            gap = max(gap, self._cost_factor * self._cost)
        wait = gap - (self._clock() - self._last)
        return max(0, round(wait * 1000))

    def isActive(self) -> bool:  # mirrors QTimer, which the views used before
        return self._timer.isActive()

    def stop(self) -> None:
        """Drop a pending redraw."""
        self._timer.stop()

    def _fire(self) -> None:
        start = self._clock()
        try:
            self._fn()
        finally:
            self._last = self._clock()
            self._cost = self._last - start


def streaming(state) -> bool:
    """True while the shown run (or the one compared with it) is still being generated."""
    session = state.session
    return any(r is not None and r.status == "running" for r in (session.shown_run, session.compare_run))

"""A redraw coalescer: at most one redraw per frame, and no added latency for an isolated change.

A plain single-shot timer of 15 ms puts a 15 ms floor under every step change. This one fires on the
next event-loop turn when the last redraw was at least ``min_gap_ms`` ago (so bursts queued in one
turn still collapse into one redraw), and otherwise waits only for the rest of the gap, which caps
redraws at one per frame while tokens stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6 import QtCore


class FrameCoalescer(QtCore.QObject):
    """Call ``fn`` once for any number of :meth:`request` calls, at most once per ``min_gap_ms``."""

    def __init__(self, fn: Callable[[], None], min_gap_ms: int = 15, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._fn = fn
        self._gap = min_gap_ms / 1000.0
        self._last = -1e9
        self._timer = QtCore.QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._fire)

    def request(self, *_: object) -> None:
        """Ask for a redraw; repeated requests before it happens collapse into one."""
        if self._timer.isActive():
            return
        wait = self._gap - (time.perf_counter() - self._last)
        self._timer.start(max(0, int(wait * 1000)))

    def isActive(self) -> bool:  # mirrors QTimer, which the views used before
        return self._timer.isActive()

    def stop(self) -> None:
        """Drop a pending redraw."""
        self._timer.stop()

    def _fire(self) -> None:
        self._last = time.perf_counter()
        self._fn()

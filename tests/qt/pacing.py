"""Pacing a streaming run to the window, for the tests that press a live-switch key or Stop mid-run.

On a busy machine the window's event loop falls behind the worker thread: a demo run of a few
dozen tokens can end before the key press is handled (the test then waits in vain for a switch),
and a tiny model's run of 2000 tokens leaves a backlog of token notices that the window needs
longer than the test's wait to work through after Stop.
``pace(worker, run)`` makes the worker wait (on its own thread, 10 s at most a token) until the
window shows all but ``max_ahead`` of the steps before the one it just produced. The app's
behaviour is unchanged; only its timing on a slow machine is made that of a fast one."""

from __future__ import annotations

import time

from PySide6 import QtCore


def pace(worker, run, max_ahead: int = 2) -> None:
    """Connect a direct (worker-thread) slot to ``worker.token`` that holds the worker back."""

    def wait(event) -> None:
        for _ in range(1000):
            if run.n_steps >= event.step - max_ahead:
                return
            time.sleep(0.01)

    worker.token.connect(wait, QtCore.Qt.ConnectionType.DirectConnection)

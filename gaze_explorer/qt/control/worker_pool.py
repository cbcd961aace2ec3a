"""The app's running workers: every long task (model load, generation, discovery) is started here,
forgotten when its ``done`` fires, cancelled by Stop or at shutdown, and joined before the window
closes. The status bar's busy flag follows the runs (generation and discovery) the pool holds, and
``activity()`` says what they are doing (the status bar's text while anything runs).
"""

from __future__ import annotations

from collections.abc import Callable

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.state import StatusModel
from gaze_explorer.qt.workers import Worker

# the workers Stop cancels and the busy flag follows (a model load is neither stopped nor "busy")
RUN_NAMES = ("generate", "discover")


class WorkerPool:
    """Starts workers and keeps them until they are done; a worker's error goes to the status bar."""

    def __init__(self, status: StatusModel) -> None:
        self.status = status
        self.workers: list[Worker] = []
        # what each held worker is doing, asked afresh each time (a run's label follows its switches);
        # None once the worker's own end handler has run (its ``done`` comes later)
        self._activities: dict[int, Callable[[], str | None]] = {}

    def start(self, worker: Worker, activity: Callable[[], str | None] | None = None) -> Worker:
        """Start ``worker``; its ``done`` is connected here first, so a caller's later ``done``
        handler runs once the pool has forgotten it. ``activity`` says what it is doing (e.g.
        "generating 'baseline'"), or None once it has ended."""
        self.workers.append(worker)
        if activity is not None:
            self._activities[id(worker)] = activity
        worker.done.connect(lambda: self._forget(worker))
        worker.errored.connect(lambda msg, _user: self.status.post(msg, error=True))
        worker.start()
        return worker

    def _forget(self, worker: Worker) -> None:
        worker.wait(5)
        if worker in self.workers:
            self.workers.remove(worker)
        self._activities.pop(id(worker), None)
        if not any(w.name in RUN_NAMES for w in self.workers):
            self.status.set_busy(False)

    def activity(self) -> str:
        """What the held workers are doing, in the order they started ("" when nothing runs)."""
        texts = (self._activities[id(w)]() for w in self.workers if id(w) in self._activities)
        return " · ".join(t for t in texts if t)

    @property
    def busy(self) -> bool:
        return any(w.is_running() for w in self.workers)

    def require_idle(self) -> None:
        """Raise (with the message the user sees) while any worker runs: one run at a time."""
        if self.busy:
            raise GazeExplorerError("a run is already in progress; press Stop first")

    def cancel_runs(self) -> None:
        """Stop: cancel the generation and discovery workers (they end at their next check)."""
        for w in self.workers:
            if w.name in RUN_NAMES:
                w.cancel()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel every worker, then join each (up to ``timeout`` seconds)."""
        for w in list(self.workers):
            w.cancel()
        for w in list(self.workers):
            w.wait(timeout)

"""Workers: run a long generator (generation, discovery, model loading) on a named Python thread
and hand what it yields to the GUI thread through Qt signals.

The worker object lives on the GUI thread; its signals are emitted from the worker thread and so
arrive queued, on the GUI thread. Workers never touch widgets. Cancelling sets a
``threading.Event`` that the generator checks; ``wait`` joins the thread (tests must not leave one
running).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator

from PySide6 import QtCore

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.events import FinishedEvent, TokenEvent

# classify(item) -> "progress" | "token" | "finished" (what signal an item goes out on)
Classifier = Callable[[object], str]


def classify_generation(item: object) -> str:
    """Route generation events: a TokenEvent goes out on ``token``, a FinishedEvent on ``finished``,
    anything else (the PrefillEvent) on ``progress``."""
    if isinstance(item, TokenEvent):
        return "token"
    if isinstance(item, FinishedEvent):
        return "finished"
    return "progress"


class Worker(QtCore.QObject):
    """Runs ``make_stream(cancel)`` on thread ``gaze-explorer-<name>`` and re-emits its items.

    ``finished`` is emitted once, with the generator's finishing item (or None if it ended
    without one); ``errored`` instead carries a readable message and whether it was a user error.
    ``done`` fires last in every case.
    """

    progress = QtCore.Signal(object)
    token = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    errored = QtCore.Signal(str, bool)  # message, is_user_error
    done = QtCore.Signal()

    def __init__(
        self,
        name: str,
        make_stream: Callable[[threading.Event], Iterator[object]],
        classify: Classifier = classify_generation,
        on_item: Callable[[object], None] | None = None,
        parent: QtCore.QObject | None = None,
        cancel_event: threading.Event | None = None,
    ) -> None:
        super().__init__(parent)
        self.name = name
        self.cancel_event = cancel_event or threading.Event()
        self._make_stream = make_stream
        self._classify = classify
        self._on_item = on_item  # called on the worker thread first (e.g. to write the session)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a worker runs once")
        self._thread = threading.Thread(target=self._run, name=f"gaze-explorer-{self.name}", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the thread; True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        final: object = None
        try:
            for item in self._make_stream(self.cancel_event):
                if self._on_item is not None:
                    self._on_item(item)
                kind = self._classify(item)
                if kind == "finished":
                    final = item
                elif kind == "token":
                    self.token.emit(item)
                else:
                    self.progress.emit(item)
        except GazeExplorerError as err:
            self.errored.emit(str(err), True)
        except Exception as err:  # a bug: keep the GUI alive, say what happened
            detail = traceback.format_exception_only(type(err), err)[-1].strip()
            self.errored.emit(f"{self.name} failed unexpectedly: {detail}", False)
        else:
            self.finished.emit(final)
        finally:
            self.done.emit()

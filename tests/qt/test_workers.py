"""Workers: items arrive on the GUI thread through signals, cancel stops them, errors are readable."""

from __future__ import annotations

import threading
import time

from PySide6 import QtCore

from gaze_explorer.core.errors import PromptError
from gaze_explorer.core.events import FinishedEvent, TokenEvent
from gaze_explorer.qt.workers import Worker


def _token(step: int) -> TokenEvent:
    return TokenEvent(step, 1000 + step, f" t{step}", None, None)


def _counting(n, delay=0.0):
    def make(cancel: threading.Event):
        for i in range(n):
            if cancel.is_set():
                yield FinishedEvent("cancelled", [])
                return
            time.sleep(delay)
            yield _token(i)
        yield FinishedEvent("finished", [])

    return make


def test_tokens_arrive_on_the_gui_thread_in_order(qtbot):
    worker = Worker("test", _counting(5))
    got, threads = [], []
    worker.token.connect(lambda ev: (got.append(ev.step), threads.append(threading.current_thread())))
    with qtbot.waitSignal(worker.done, timeout=5000), qtbot.waitSignal(worker.finished) as fin:
        worker.start()
    assert worker.wait(2)
    assert got == [0, 1, 2, 3, 4]
    assert all(t is threading.main_thread() for t in threads)
    assert fin.args[0].status == "finished"


def test_cancel_stops_the_stream(qtbot):
    worker = Worker("test", _counting(1000, delay=0.01))
    got = []
    worker.token.connect(lambda ev: got.append(ev.step))
    worker.start()
    assert any(t.name == "gaze-explorer-test" for t in threading.enumerate())
    qtbot.waitUntil(lambda: len(got) >= 3)
    with qtbot.waitSignal(worker.finished, timeout=5000) as fin:
        worker.cancel()
    assert worker.wait(2)
    assert fin.args[0].status == "cancelled" and len(got) < 1000


def test_errors_become_readable_messages(qtbot):
    def user_error(cancel):
        yield _token(0)
        raise PromptError("the prompt is empty")

    def bug(cancel):
        yield _token(0)
        raise ZeroDivisionError("division by zero")

    for make, expected, is_user in (
        (user_error, "the prompt is empty", True),
        (bug, "ZeroDivisionError", False),
    ):
        worker = Worker("err", make)
        finished = []
        worker.finished.connect(finished.append)
        with qtbot.waitSignal(worker.errored, timeout=5000) as err:
            worker.start()
        worker.wait(2)
        QtCore.QCoreApplication.processEvents()
        assert expected in err.args[0] and err.args[1] is is_user
        assert finished == []

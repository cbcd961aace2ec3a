"""Shared test set-up: offscreen Qt, one torch thread, no network, and no leaked threads."""

from __future__ import annotations

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# one torch thread in the test process and the processes it starts: the models are tiny, and on a
# shared 2-core machine a second thread mostly waits for the other job
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest


@pytest.fixture(autouse=True)
def _qtbot_keeps_its_widgets(request):
    """Keep every widget given to ``qtbot.addWidget`` alive until the test's teardown, then close and
    delete it through Qt (close, deleteLater, the deferred deletes sent).

    pytest-qt holds those widgets by weak reference only, so a widget kept in a test's local
    variable was destroyed by Python's garbage collection when the test function returned, inside
    pytest-qt's event processing: Qt then still sent events to the view while Python had already
    cleared its attributes, and a pyqtgraph item change during that teardown crashed a loaded
    full run (segfault after "'TokenTimelineView' object has no attribute 'state'")."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    qtbot = request.getfixturevalue("qtbot")
    kept: list = []
    add = qtbot.addWidget

    def add_and_keep(widget, *args, **kwargs):
        kept.append(widget)
        return add(widget, *args, **kwargs)

    qtbot.addWidget = add_and_keep
    yield
    from window_leaks import dispose

    dispose([w for w in kept if _alive(w)])
    kept.clear()


def _alive(widget) -> bool:
    import shiboken6

    return shiboken6.isValid(widget)


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail any test that leaves a worker thread of ours running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name.startswith("gaze-explorer")
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
def _no_leaked_windows():
    """Fail any test that leaves a window shown, and close and delete every top-level widget it left.

    pytest-qt processes events around every later test, even one without Qt: a window left shown
    would be painted there, after the data or session file it shows is gone (a segfault in
    pyqtgraph's ImageItem.paint was seen once), and a closed one still runs its redraw timers until
    it is deleted. Windows a test gave to qtbot are closed by pytest-qt before this runs."""
    from window_leaks import describe, dispose, new_top_level_widgets, snapshot, visible_top_level_widgets

    before = snapshot()
    yield
    shown = visible_top_level_widgets()
    left = [describe(w) for w in shown]
    shown_ids = {id(w) for w in shown}
    dispose(shown + [w for w in new_top_level_widgets(before) if id(w) not in shown_ids])
    assert not left, f"test left windows shown (now closed and deleted): {left}"

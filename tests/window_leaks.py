"""Finding and disposing of the top-level Qt widgets a test left behind (tests/conftest.py runs this
after every test).

pytest-qt processes events around every test once a QApplication exists, also in tests that never
touch Qt: a window an earlier test left shown is painted then, possibly after the data or the session
file it shows was released (a segfault in pyqtgraph's ImageItem.paint was seen once in a full run).
Closed windows are a hazard too until they are deleted: qtbot's deleteLater() waits for an event loop
that a test without Qt never runs, and their redraw timers still fire. Nothing here creates a
QApplication or imports Qt into a process that has not already done so."""

from __future__ import annotations

import sys


def _app():
    """The running QApplication, or None (never one created here, nor Qt imported)."""
    widgets = sys.modules.get("PySide6.QtWidgets")
    if widgets is None:
        return None
    app = widgets.QApplication.instance()
    return app if isinstance(app, widgets.QApplication) else None


def _address(widget) -> int:
    import shiboken6

    return shiboken6.getCppPointer(widget)[0]


def top_level_widgets() -> list:
    """All top-level widgets alive now (shown or not); empty without a QApplication."""
    app = _app()
    return list(app.topLevelWidgets()) if app is not None else []


def snapshot() -> set[int]:
    """The addresses of the top-level widgets alive now, to tell later which ones are new."""
    return {_address(w) for w in top_level_widgets()}


def new_top_level_widgets(before: set[int]) -> list:
    """The top-level widgets alive now that were not in the :func:`snapshot` ``before``."""
    return [w for w in top_level_widgets() if _address(w) not in before]


def visible_top_level_widgets() -> list:
    """The top-level widgets alive and shown now: what the next processEvents() may paint."""
    return [w for w in top_level_widgets() if w.isVisible()]


def describe(widget) -> str:
    """The widget's class, with its title where it has one (and its parent's class for a dialog)."""
    text = type(widget).__name__
    if widget.windowTitle():
        text += f" {widget.windowTitle()!r}"
    parent = widget.parentWidget()
    return f"{text} (child of {type(parent).__name__})" if parent is not None else text


def dispose(widgets) -> None:
    """Close ``widgets`` and delete them now, together with every deletion already pending (the
    windows qtbot closed), so that no later event processing paints them or runs their timers."""
    app = _app()
    if app is None:
        return
    from gaze_explorer.qt.app import dispose_windows

    dispose_windows(widgets)

"""The suite's guard against windows left behind (tests/conftest.py, tests/window_leaks.py) finds a
window a test leaves shown and deletes it; and a closed main window leaves nothing shown or ticking.

A window left shown is painted by pytest-qt's event processing in every later test, even one without
Qt, after what it shows may be gone (a segfault in pyqtgraph's ImageItem.paint was seen once)."""

from __future__ import annotations

import shiboken6
from PySide6 import QtWidgets
from window_leaks import (
    describe,
    dispose,
    new_top_level_widgets,
    snapshot,
    visible_top_level_widgets,
)


def _has(widgets, widget) -> bool:
    return any(w is widget for w in widgets)


def test_a_window_left_shown_is_found_and_deleted(qapp):
    before = snapshot()
    window = QtWidgets.QWidget()
    window.setWindowTitle("left shown on purpose")
    dialog = QtWidgets.QDialog(window)  # a child that is a window of its own
    never_shown = QtWidgets.QWidget()
    window.show()
    dialog.show()
    shown = visible_top_level_widgets()
    assert _has(shown, window) and _has(shown, dialog) and not _has(shown, never_shown)
    assert describe(window) == "QWidget 'left shown on purpose'"
    assert describe(dialog) == "QDialog (child of QWidget)"
    new = new_top_level_widgets(before)
    assert all(_has(new, w) for w in (window, dialog, never_shown))
    dispose([window, dialog, never_shown])
    # deleted now, not at some later event loop: nothing of them is left to paint or to tick
    assert not any(shiboken6.isValid(w) for w in (window, dialog, never_shown))
    assert new_top_level_widgets(before) == [] and visible_top_level_widgets() == []


def test_closing_the_main_window_closes_its_message_box_and_stops_its_redraws(qtbot):
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.show_message("something went wrong", error=True)  # the window's non-blocking message box
    (box,) = [w for w in visible_top_level_widgets() if isinstance(w, QtWidgets.QMessageBox)]
    coalescer = win.overlay_view._redraw_timer
    coalescer.request()  # a redraw pending: no event loop runs before the close
    assert coalescer.isActive()
    win.close()
    assert not box.isVisible() and visible_top_level_widgets() == []
    assert not coalescer.isActive()  # it would redraw a hidden window from a closed session


def test_a_widget_given_to_qtbot_outlives_its_local_variable(qtbot):
    """pytest-qt keeps only a weak reference: without tests/conftest.py's _qtbot_keeps_its_widgets,
    dropping the test's own reference destroyed the widget there and then, in the middle of the
    test (or of pytest-qt's event processing when the test returned); it is kept until teardown."""
    import weakref

    from PySide6 import QtWidgets

    widget = QtWidgets.QLabel("kept")
    qtbot.addWidget(widget)
    ref = weakref.ref(widget)
    del widget
    import gc

    gc.collect()
    assert ref() is not None and ref().text() == "kept"

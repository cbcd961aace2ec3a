"""The step keys (qt/widgets/step_keys.py) drive the shown step the same way from the main window's
shortcuts and from the token timeline when it has the focus on its own."""

from __future__ import annotations

import pytest
from PySide6 import QtCore, QtWidgets

from gaze_explorer.core.state import AppState
from gaze_explorer.qt.main_window import MainWindow
from gaze_explorer.qt.views.token_timeline import TokenTimelineView

Key, Mod = QtCore.Qt.Key, QtCore.Qt.KeyboardModifier
NONE, SHIFT = Mod.NoModifier, Mod.ShiftModifier

# (key, modifier, step after it) from step 15 of 30; the steps say what each key does
PRESSES = [
    (Key.Key_Right, NONE, 16),
    (Key.Key_Right, SHIFT, 26),
    (Key.Key_Left, NONE, 25),
    (Key.Key_Left, SHIFT, 15),
    (Key.Key_End, NONE, 29),
    (Key.Key_Home, NONE, 0),
    (Key.Key_Left, NONE, 0),  # clamped at the first step
]


def _window(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()  # window shortcuts fire only in the active window
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is win)
    return win, win, win.state


def _timeline(qtbot):
    state = AppState()
    view = TokenTimelineView(state)
    qtbot.addWidget(view)
    view.show()
    return view, view, state


@pytest.mark.parametrize("build", [_window, _timeline], ids=["window shortcuts", "timeline with focus"])
def test_step_keys_move_the_step(qtbot, build):
    widget, target, state = build(qtbot)
    state.step.set_n_steps(30)
    state.step.set_step(15)
    for key, modifier, expected in PRESSES:
        qtbot.keyClick(target, key, modifier)
        assert state.step.step == expected, (key, modifier)
    qtbot.keyClick(target, Key.Key_Space)
    assert state.step.playing is True
    qtbot.keyClick(target, Key.Key_Space)
    assert state.step.playing is False
    widget.close()

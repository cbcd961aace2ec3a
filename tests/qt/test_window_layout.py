"""The main window at laptop and desktop sizes: the run buttons and the target row stay visible,
docks come back to their sizes after a resize round trip, View -> Reset layout restores the docks,
and the menus carry the keys."""

from __future__ import annotations

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.qt.main_window import MainWindow

SIZES = [(1280, 760), (1440, 900), (1920, 1080)]


def _window(qtbot, state, size):
    win = MainWindow(state)
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    QtWidgets.QApplication.processEvents()
    return win


def _fully_visible(win: QtWidgets.QMainWindow, widget: QtWidgets.QWidget) -> bool:
    """Shown, and its whole rectangle inside the window and inside every ancestor's rectangle (a
    scroll area's viewport included), so nothing clips it."""
    if not widget.isVisible() or widget.visibleRegion().isEmpty():
        return False
    rect = QtCore.QRect(widget.mapTo(win, QtCore.QPoint(0, 0)), widget.size())
    parent = widget.parentWidget()
    while parent is not None and parent is not win:
        if not QtCore.QRect(parent.mapTo(win, QtCore.QPoint(0, 0)), parent.size()).contains(rect):
            return False
        parent = parent.parentWidget()
    return win.rect().contains(rect)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_run_buttons_and_target_row_are_visible(qtbot, state, size):
    win = _window(qtbot, state, size)
    assert (win.width(), win.height()) == size  # no dock's minimum makes the window outgrow the screen
    panel = win.steering_panel
    for w in (
        panel.baseline_button,
        panel.steer_button,
        panel.stop_button,
        panel.target_kind,
        panel.panel_spin,
    ):
        assert _fully_visible(win, w), (w, size)
    # the labels of the toolbar buttons are not cut
    for button in (
        panel.baseline_button,
        panel.steer_button,
        win.overlay_view.box_button,
        win.overlay_view.open_button,
    ):
        assert button.width() >= button.fontMetrics().horizontalAdvance(button.text()) + 8, button.text()
    # the staircase rows are at least 16 px each
    track = win.timeline_view.tracks[0]
    vb = track.plot.getViewBox()
    (_, _), (y0, y1) = vb.viewRange()
    assert vb.height() / (y1 - y0) >= 16


def test_docks_come_back_after_a_resize_round_trip_and_reset_layout(qtbot, state):
    win = _window(qtbot, state, (1280, 760))
    before = {name: dock.geometry() for name, dock in win.docks.items() if dock.isVisible()}
    win.resize(1920, 1080)
    QtWidgets.QApplication.processEvents()
    win.resize(1280, 760)
    QtWidgets.QApplication.processEvents()
    for name, rect in before.items():
        after = win.docks[name].geometry()
        assert abs(after.width() - rect.width()) <= 4 and abs(after.height() - rect.height()) <= 4, name
    # runs added do not grow the timeline dock
    height = win.docks["Token timeline"].height()
    state.session.show_runs(1, 0)
    QtWidgets.QApplication.processEvents()
    assert win.docks["Token timeline"].height() == height
    # a hidden and a floated dock come back with Reset layout
    win.docks["Steering"].hide()
    win.docks["Layer × head grid"].setFloating(True)
    win.reset_layout()
    QtWidgets.QApplication.processEvents()
    assert win.docks["Steering"].isVisible() and not win.docks["Layer × head grid"].isFloating()
    assert win.dockWidgetArea(win.docks["Layer × head grid"]) == QtCore.Qt.DockWidgetArea.RightDockWidgetArea
    assert _fully_visible(win, win.steering_panel.steer_button)
    reset = next(a for a in win.menuBar().actions() if a.text() == "&View").menu().actions()[-1]
    assert reset.text() == "Reset layout"


def test_menus_show_the_keys_and_clicking_a_cell_raises_the_inspector(qtbot, state):
    win = _window(qtbot, state, (1280, 760))
    Key, Mod = QtCore.Qt.Key, QtCore.Qt.KeyboardModifier
    assert win.actions["Steer"].shortcut() == QtGui.QKeySequence(
        QtCore.QKeyCombination(Mod.ControlModifier, Key.Key_Return)
    )
    assert win.actions["Stop"].shortcut() == QtGui.QKeySequence(Key.Key_Escape)
    assert win.actions["Figure…"].shortcut() == QtGui.QKeySequence("Ctrl+E")
    assert win.actions["Head list…"].shortcut() == QtGui.QKeySequence("Ctrl+Shift+E")
    help_menu = next(a for a in win.menuBar().actions() if a.text() == "&Help").menu()
    assert [a.text() for a in help_menu.actions()] == ["Keys and mouse…", "Documentation (README)"]
    stops = []
    win.controller.stop = lambda: stops.append(1)  # what Esc reaches, through the menu action
    win.actions["Stop"].triggered.disconnect()
    win.actions["Stop"].triggered.connect(win.controller.stop)
    win.activateWindow()
    qtbot.keyClick(win, Key.Key_Escape)
    assert stops == [1]
    # Qt moves the docks of hidden tabs off screen rather than hiding them
    assert win.docks["Inspector"].visibleRegion().isEmpty()  # behind the Discovery tab
    state.inspector.set_head((1, 1))
    QtWidgets.QApplication.processEvents()
    assert not win.docks["Inspector"].visibleRegion().isEmpty()
    assert win.docks["Discovery"].visibleRegion().isEmpty()


def test_load_model_dialog_offers_a_folder_device_and_dtype(qtbot):
    from gaze_explorer.qt.widgets.load_model_dialog import LoadModelDialog

    dialog = LoadModelDialog()
    qtbot.addWidget(dialog)
    assert dialog.choice() == ("demo", "auto", "auto")
    dialog.spec_edit.setText(" /models/qwen ")
    dialog.device_combo.setCurrentText("cuda")
    dialog.dtype_combo.setCurrentText("bfloat16")
    assert dialog.choice() == ("/models/qwen", "cuda", "bfloat16")
    # every choice the dialog offers is one the command line accepts, and none is missing from it
    from gaze_explorer.cli.app_args import build_app_parser

    dtypes = [dialog.dtype_combo.itemText(i) for i in range(dialog.dtype_combo.count())]
    devices = [dialog.device_combo.itemText(i) for i in range(dialog.device_combo.count())]
    assert {"auto", "float32", "bfloat16", "float16"} <= set(dtypes) and {"cpu", "cuda"} <= set(devices)
    for dtype, device in zip(dtypes, devices * len(dtypes), strict=False):
        args = build_app_parser().parse_args(["--dtype", dtype, "--device", device])
        assert (args.dtype, args.device) == (dtype, device)


def test_steer_before_discovery_on_the_demo_asks_then_discovers_and_steers(qtbot, demo_window, monkeypatch):
    win = demo_window
    assert win.state.heads.gaze_scores is None and win.state.heads.kind == "top"
    asked = []

    def answer(*args, **kwargs):
        asked.append(args[2])
        return (
            QtWidgets.QMessageBox.StandardButton.No
            if len(asked) == 1
            else QtWidgets.QMessageBox.StandardButton.Yes
        )

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answer)
    win.steering_panel.max_tokens.setValue(3)
    win.steer()  # No: nothing runs
    assert len(asked) == 1 and "discovery" in asked[0] and not win.controller.workers
    assert win.state.session.runs == []
    win.steer()  # Yes: discovery, then the steered run
    qtbot.waitUntil(
        lambda: bool(win.state.session.runs) and win.state.session.runs[-1].status != "running",
        timeout=120000,
    )
    qtbot.waitUntil(lambda: not win.controller.workers, timeout=60000)
    assert win.state.heads.gaze_scores is not None
    run = win.state.session.runs[-1]
    assert run.params["plan"] is not None and len(run.params["plan"]["heads"]) == win.state.heads.k

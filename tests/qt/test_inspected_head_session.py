"""The head open in the head inspector is kept with the session (``ui_json``'s ``inspected``): inspect
a head on a real session file, close the window, reopen the file, and the inspector shows that head.
Files without the entry (older ones) open with no head; a damaged entry or a head the model does not
have is said in the status bar and opens none."""

from __future__ import annotations

import json

import h5py
import pytest
from PySide6 import QtCore

from gaze_explorer.bench.scrub import write_session
from gaze_explorer.qt.main_window import MainWindow
from gaze_explorer.storage import SessionReader

LAYERS, HEADS = 4, 3


@pytest.fixture
def session_file(tmp_path):
    """A real session file (SessionWriter): one 5-step run of a 4 x 3 model, no saved selection."""
    # 400 keys: the 384 image tokens of write_session's strip start at position 4
    return write_session(tmp_path / "inspect.gaze.h5", layers=LAYERS, heads=HEADS, keys=400, steps=5)


def _window(qtbot, path=None) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1280, 760)
    win.show()
    qtbot.waitExposed(win)
    if path is not None:
        assert win.open_session(str(path)), win.messages
    return win


def _click_cell(qtbot, win: MainWindow, layer: int, head: int) -> None:
    """A plain left click on the grid cell (layer, head), as a user makes it."""
    grid = win.grid_view
    # the grid has drawn the session's 4 x 3 heads (its view range spans them)
    qtbot.waitUntil(lambda: not grid._redraw_timer.isActive() and grid.viewbox.viewRange()[1][1] > LAYERS - 1)
    scene = grid.viewbox.mapViewToScene(QtCore.QPointF(head, layer))
    pos = grid.graphics.mapFromScene(scene)
    qtbot.mouseClick(grid.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)


def test_the_inspected_head_is_saved_and_restored_with_the_session(qtbot, session_file):
    win = _window(qtbot, session_file)
    assert win.state.inspector.head is None  # the file holds no inspected head yet
    _click_cell(qtbot, win, 2, 1)
    qtbot.waitUntil(lambda: win.state.inspector.head == (2, 1))
    win.close()  # saves the selection in the session file
    with SessionReader(session_file) as reader:
        assert reader.inspected_head() == (2, 1)
        assert reader.ui_state()["inspected"] == [2, 1]

    other = _window(qtbot, session_file)
    assert other.state.inspector.head == (2, 1)
    view = other.inspector_view
    assert (view.layer_spin.value(), view.head_spin.value()) == (2, 1)
    qtbot.waitUntil(lambda: "L2 H1" in view.title.text())
    # it shows that head's data: its mass over the reopened run's steps
    qtbot.waitUntil(lambda: view.masses is not None)
    assert view.masses.shape[0] == other.state.session.shown_run.n_steps == 5
    assert other.docks["Inspector"].isVisible()
    # another head, closed again: the file follows
    other.inspector_view.head_spin.setValue(0)
    assert other.state.inspector.head == (2, 0)
    other.close()
    with SessionReader(session_file) as reader:
        assert reader.inspected_head() == (2, 0)


def test_a_file_without_an_inspected_head_opens_none(qtbot, session_file):
    win = _window(qtbot)
    win.state.heads.set_shape(LAYERS, HEADS)
    win.state.inspector.set_head((1, 1))  # what was inspected before the file was opened
    with SessionReader(session_file) as reader:
        assert "inspected" not in reader.ui_state() and reader.inspected_head() is None
    assert win.open_session(str(session_file))
    assert win.state.inspector.head is None
    qtbot.waitUntil(lambda: "Click a cell" in win.inspector_view.title.text())


@pytest.mark.parametrize(
    ("saved", "said"),
    [
        ("L2H1", "should be [layer, head]"),
        ([7, 1], "is not in its 4 x 3 model"),
        ([1, True], "[layer, head]"),
    ],
)
def test_a_damaged_or_foreign_inspected_head_is_said_and_opens_none(qtbot, session_file, saved, said):
    with h5py.File(session_file, "r+") as f:
        f.attrs["ui_json"] = json.dumps({"shown": "run_000", "compare": None, "step": 2, "inspected": saved})
    win = _window(qtbot, session_file)
    assert win.state.inspector.head is None
    assert win.state.step.step == 2  # the rest of the saved selection still applies
    assert any(said in text and not error for text, error in win.messages), win.messages

"""Spans in the app, on a real demo-model run written to a real session file: a drag across the
token timeline shows the mean of those steps' stored rows (``core.scoring.span_heat``) with a
banner, a click goes back to one step, Esc clears; value-weighted uses the run's stored ``||v||``
(a hand computation from the file's datasets); a named span survives closing and reopening the
session; a session written before value norms existed has the switch disabled."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.core.scoring import overlay_heat, span_heat
from gaze_explorer.core.spans import NORMS_MISSING, Span
from gaze_explorer.demo.prompts import AMBIGUOUS_PROMPT
from gaze_explorer.qt.main_window import MainWindow
from gaze_explorer.storage import SessionReader

OLD_SESSION = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"
N_TOKENS = 10


def _mouse(view, kind, pos, buttons):
    button = QtCore.Qt.MouseButton.LeftButton
    event = QtGui.QMouseEvent(
        kind,
        QtCore.QPointF(pos),
        QtCore.QPointF(view.mapToGlobal(pos)),
        button,
        buttons,
        QtCore.Qt.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(view.viewport(), event)


def _pos(timeline, step: float):
    """Widget position of ``step`` on the shown run's staircase (the middle of its rows)."""
    vb = timeline.tracks[0].plot.vb
    y = float(np.mean(vb.viewRange()[1]))
    scene = vb.mapViewToScene(QtCore.QPointF(step, y))
    return timeline.graphics.mapFromScene(scene)


def drag_steps(qtbot, timeline, first: int, last: int) -> None:
    """A real left-button drag across the staircase from step ``first`` to step ``last``."""
    Left, No = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    T = QtCore.QEvent.Type
    _mouse(timeline.graphics, T.MouseButtonPress, _pos(timeline, first), Left)
    for x in np.linspace(first, last, 6)[1:]:
        _mouse(timeline.graphics, T.MouseMove, _pos(timeline, float(x)), Left)
    _mouse(timeline.graphics, T.MouseButtonRelease, _pos(timeline, last), No)
    qtbot.wait(40)  # the overlay's coalesced redraw


def shown_heat(win) -> np.ndarray:
    """The heat the overlay's pyqtgraph item was given, ``[rows, cols]``."""
    return np.asarray(win.overlay_view.heat_item.z, dtype=np.float64)


def stored_rows(path, run_id):
    """``rows_at`` reading the run's rows straight from the session file."""
    reader = SessionReader(path)
    return lambda s: reader.step_rows(run_id, s)


@pytest.fixture
def demo_run(qtbot, demo_window):
    """The demo window after one finished run of N_TOKENS tokens, every head selected."""
    win = demo_window
    win.state.heads.set_kind("all")
    win.controller.generate(AMBIGUOUS_PROMPT, GenerationOptions(max_new_tokens=N_TOKENS, ignore_eos=True))
    qtbot.waitUntil(
        lambda: win.state.session.runs and win.state.session.runs[-1].status != "running", timeout=60000
    )
    win.controller.recorder.writer.wait()
    win.docks["Token timeline"].raise_()
    qtbot.waitUntil(lambda: win.timeline_view.tracks[0].data is not None, timeout=5000)
    return win


def test_dragging_steps_shows_their_mean_and_a_click_or_esc_returns_to_one_step(qtbot, demo_run):
    win = demo_run
    run = win.state.session.shown_run
    path, grid, heads = win.state.session.path, win.state.session.grid, win.state.heads.active
    drag_steps(qtbot, win.timeline_view, 2, 6)
    assert win.state.spans.selection == Span("", 2, 6)
    expect = span_heat(stored_rows(path, run.run_id), range(2, 7), grid, heads)
    np.testing.assert_allclose(shown_heat(win), expect, rtol=1e-6)
    banner = win.overlay_view.span_banner
    assert banner.isVisible() and "steps 2-6, mean of 5 steps · raw attention" in banner.text()
    assert win.timeline_view.tracks[0].span_item.getRegion() == (1.5, 6.5)
    # the mean differs from any one of its steps (it is not just the current step redrawn)
    assert not np.allclose(shown_heat(win), overlay_heat(run.rows_at(4), grid, heads))

    qtbot.mouseClick(
        win.timeline_view.graphics.viewport(),
        QtCore.Qt.MouseButton.LeftButton,
        pos=_pos(win.timeline_view, 8),
    )
    qtbot.wait(40)
    assert win.state.spans.selection is None and win.state.step.step == 8
    assert not banner.isVisible() and not win.timeline_view.tracks[0].span_item.isVisible()
    np.testing.assert_allclose(
        shown_heat(win), overlay_heat(stored_rows(path, run.run_id)(8), grid, heads), rtol=1e-6
    )

    drag_steps(qtbot, win.timeline_view, 7, 3)  # either direction
    assert win.state.spans.selection == Span("", 3, 7)
    win.timeline_view.setFocus()
    qtbot.keyClick(win.timeline_view, QtCore.Qt.Key.Key_Escape)
    qtbot.wait(40)
    assert win.state.spans.selection is None and not banner.isVisible()


def test_value_weighted_uses_the_stored_value_norms(qtbot, demo_run):
    win = demo_run
    run = win.state.session.shown_run
    path, grid = win.state.session.path, win.state.session.grid
    check = win.spans_view.weighted_check
    assert check.isEnabled()
    drag_steps(qtbot, win.timeline_view, 1, 8)
    raw = shown_heat(win)
    check.click()
    qtbot.wait(40)
    weighted = shown_heat(win)
    assert "value-weighted" in win.overlay_view.span_banner.text()
    # by hand from the file: attention x ||v|| of each image key (the KV head's norm for each of its
    # query heads), mean over all heads, renormalised over the image at each step, mean over steps
    # the app's writer still has the file open (SWMR, no locking: storage/handles.py)
    with h5py.File(path, "r", swmr=True, libver="latest", locking=False) as f:
        att = f["runs"][run.run_id]["attention"]
        rows = att["decode"][1:9].astype(np.float64)  # [step, layer, head, key]
        norms = att["value_norms"][()].astype(np.float64)  # [layer, kv_head, key]
        per_kv = int(att["value_norms"].attrs["heads_per_kv"])
    kv_of_head = np.arange(rows.shape[2]) // per_kv
    img = grid.positions
    per_step = (rows[..., img] * norms[:, kv_of_head][..., img][None]).mean(
        axis=(1, 2)
    )  # [step, image token]
    per_step /= per_step.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weighted, per_step.mean(axis=0).reshape(grid.rows, grid.cols), rtol=1e-5)
    assert weighted.sum() == pytest.approx(1.0)
    assert not np.allclose(weighted, raw / raw.sum(), atol=1e-3)  # ||v|| changes the picture
    check.click()
    qtbot.wait(40)
    np.testing.assert_allclose(shown_heat(win), raw)


def test_a_named_span_survives_closing_and_reopening_the_session(qtbot, demo_run):
    win = demo_run
    run_id, path = win.state.session.shown_run.run_id, win.state.session.path
    heads = win.state.heads.active
    drag_steps(qtbot, win.timeline_view, 3, 5)
    view = win.spans_view
    view.name_edit.setText("the robot")
    qtbot.mouseClick(view.keep_button, QtCore.Qt.MouseButton.LeftButton)
    assert [view.list.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(view.list.count())] == [
        Span("the robot", 3, 5)
    ]
    qtbot.mouseClick(view.propose_button, QtCore.Qt.MouseButton.LeftButton)
    kept = win.state.spans.spans(win.state.session.shown_run)
    assert kept[0] == Span("the robot", 3, 5) and all(s.end - s.start >= 1 for s in kept[1:])
    win.controller.shutdown()  # closes the session file

    with SessionReader(path) as r:
        assert r.spans(run_id) == kept
    other = MainWindow()
    qtbot.addWidget(other)
    assert other.open_session(path)
    other.state.heads.set_kind("all")
    view = other.spans_view
    assert [view.list.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(view.list.count())] == kept
    view.list.item(0).setSelected(True)
    qtbot.wait(40)
    assert other.state.spans.selection == Span("the robot", 3, 5)
    assert "span 'the robot': steps 3-5" in other.overlay_view.span_banner.text()
    expect = span_heat(stored_rows(path, run_id), range(3, 6), other.state.session.grid, heads)
    np.testing.assert_allclose(shown_heat(other), expect, rtol=1e-6)
    assert view.weighted_check.isEnabled()  # the reopened run has its norms
    view.list.item(0).setSelected(True)
    qtbot.mouseClick(view.delete_button, QtCore.Qt.MouseButton.LeftButton)
    assert other.state.spans.selection is None and view.list.count() == len(kept) - 1
    with SessionReader(path) as r:
        assert r.spans(run_id) == kept[1:]


def test_an_older_session_without_norms_is_raw_only(qtbot, tmp_path):
    path = tmp_path / "old.h5"
    shutil.copy(OLD_SESSION, path)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    assert win.open_session(str(path))
    win.state.heads.set_kind("all")
    check = win.spans_view.weighted_check
    assert not check.isEnabled() and check.toolTip() == NORMS_MISSING
    win.state.spans.set_value_weighted(True)  # even if asked: there is nothing to weight by
    run = win.state.session.shown_run
    win.state.spans.select(1, 4)
    qtbot.wait(40)
    assert "raw attention" in win.overlay_view.span_banner.text()
    expect = span_heat(
        stored_rows(path, run.run_id), range(1, 5), win.state.session.grid, win.state.heads.active
    )
    np.testing.assert_allclose(shown_heat(win), expect, rtol=1e-6)
    win.controller.shutdown()

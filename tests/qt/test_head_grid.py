"""The layer x head grid: it shows the model's scores and writes picks back to the model."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.scoring import head_region_mass
from gaze_explorer.qt.views.head_grid import HeadGridView


def drag(widget, points, modifiers=QtCore.Qt.KeyboardModifier.NoModifier):
    """A real press-move-release drag (QTest's mouseMove does not carry the held button)."""
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    types = [QtCore.QEvent.Type.MouseButtonPress] + [QtCore.QEvent.Type.MouseMove] * (len(points) - 2)
    types.append(QtCore.QEvent.Type.MouseButtonRelease)
    for kind, p in zip(types, points, strict=True):
        local = QtCore.QPointF(p)
        glob = QtCore.QPointF(widget.mapToGlobal(p))
        buttons = none if kind == QtCore.QEvent.Type.MouseButtonRelease else left
        event = QtGui.QMouseEvent(kind, local, glob, left if kind != QtCore.QEvent.Type.MouseMove else none,
                                  buttons, modifiers)
        QtWidgets.QApplication.sendEvent(widget, event)
        QtWidgets.QApplication.processEvents()


def _widget_pos(view, head, layer):
    return view.graphics.mapFromScene(view.viewbox.mapViewToScene(QtCore.QPointF(head, layer)))


def _shown(qtbot, state):
    view = HeadGridView(state)
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_grid_shows_gaze_scores_then_step_mass(qtbot, state):
    view = _shown(qtbot, state)
    assert np.array_equal(view.image_item.image, state.heads.gaze_scores)
    # the active set (top-2) is outlined
    xs, ys = view.active_item.getData()
    assert sorted(zip(ys.astype(int), xs.astype(int), strict=True)) == [(2, 2), (2, 3)]
    new = np.random.default_rng(3).random((3, 4))
    state.heads.set_gaze_scores(new)
    qtbot.waitUntil(lambda: np.array_equal(view.image_item.image, new))
    state.step.set_step(2)
    view.mode_combo.setCurrentIndex(2)  # step -> panel
    view.panel_spin.setValue(5)
    run = state.session.shown_run
    expected = head_region_mass(run.rows_at(2), state.session.grid, state.session.regions[4])
    qtbot.waitUntil(lambda: view.image_item.image is not None and np.allclose(view.image_item.image, expected))
    assert state.grid_score_mode.mode == "panel" and state.grid_score_mode.panel == 4
    view.mode_combo.setCurrentIndex(1)  # step -> the run's target at that step (panel 4)
    expected = head_region_mass(run.rows_at(2), state.session.grid, state.session.regions[3])
    qtbot.waitUntil(lambda: np.allclose(view.image_item.image, expected))


def test_click_toggles_and_shift_drag_selects(qtbot, state):
    view = _shown(qtbot, state)
    qtbot.mouseClick(view.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=_widget_pos(view, 1, 0))
    qtbot.waitUntil(lambda: state.heads.custom == {(0, 1)})
    assert state.heads.kind == "custom" and state.heads.active.heads == ((0, 1),)
    qtbot.mouseClick(view.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=_widget_pos(view, 1, 0))
    qtbot.waitUntil(lambda: state.heads.custom == set())
    # shift-drag from (head 0, layer 1) to (head 2, layer 2)
    vp = view.graphics.viewport()
    a, b = _widget_pos(view, 0, 1), _widget_pos(view, 2, 2)
    shift = QtCore.Qt.KeyboardModifier.ShiftModifier
    points = [a + (b - a) * t for t in np.linspace(0.0, 1.0, 8)]
    drag(vp, points, shift)
    qtbot.waitUntil(lambda: len(state.heads.custom) == 6)
    assert state.heads.custom == {(l, h) for l in (1, 2) for h in (0, 1, 2)}  # noqa: E741
    xs, _ = view.active_item.getData()
    assert len(xs) == 6
    # hover reports layer, head and value
    view._on_hover((view.viewbox.mapViewToScene(QtCore.QPointF(3, 2)),))
    assert view.hover_label.text() == f"L2 H3 = {state.heads.gaze_scores[2, 3]:.4g}"

"""The layer x head grid: it shows the model's scores and writes picks back to the model."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.scoring import head_region_mass
from gaze_explorer.qt.views.head_grid import HeadGridView


def drag(widget, points, modifiers=QtCore.Qt.KeyboardModifier.NoModifier, pause_ms: int = 0):
    """A real press-move-release drag (QTest's mouseMove does not carry the held button).

    ``pause_ms`` spaces the events: pyqtgraph drops mouse moves that come faster than its move rate
    limit, which a second drag right after a first one would hit."""
    import time

    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    types = [QtCore.QEvent.Type.MouseButtonPress] + [QtCore.QEvent.Type.MouseMove] * (len(points) - 2)
    types.append(QtCore.QEvent.Type.MouseButtonRelease)
    for kind, p in zip(types, points, strict=True):
        local = QtCore.QPointF(p)
        glob = QtCore.QPointF(widget.mapToGlobal(p))
        buttons = none if kind == QtCore.QEvent.Type.MouseButtonRelease else left
        event = QtGui.QMouseEvent(
            kind, local, glob, left if kind != QtCore.QEvent.Type.MouseMove else none, buttons, modifiers
        )
        QtWidgets.QApplication.sendEvent(widget, event)
        QtWidgets.QApplication.processEvents()
        time.sleep(pause_ms / 1000)


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
    qtbot.waitUntil(
        lambda: view.image_item.image is not None and np.allclose(view.image_item.image, expected)
    )
    assert state.grid_score_mode.mode == "panel" and state.grid_score_mode.panel == 4
    view.mode_combo.setCurrentIndex(1)  # step -> the run's target at that step (panel 4)
    expected = head_region_mass(run.rows_at(2), state.session.grid, state.session.regions[3])
    qtbot.waitUntil(lambda: np.allclose(view.image_item.image, expected))


def test_click_inspects_ctrl_click_toggles_and_shift_drag_selects(qtbot, state):
    view = _shown(qtbot, state)
    left, ctrl = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.ControlModifier
    # a plain click opens the head in the inspector and leaves the head set alone
    qtbot.mouseClick(view.graphics.viewport(), left, pos=_widget_pos(view, 2, 1))
    qtbot.waitUntil(lambda: state.inspector.head == (1, 2))
    assert state.heads.custom == set() and state.heads.kind == "top"
    xs, ys = view.inspected_item.getData()
    assert (list(ys), list(xs)) == ([1], [2])
    qtbot.mouseClick(view.graphics.viewport(), left, ctrl, pos=_widget_pos(view, 1, 0))
    qtbot.waitUntil(lambda: state.heads.custom == {(0, 1)})
    assert state.heads.kind == "custom" and state.heads.active.heads == ((0, 1),)
    qtbot.mouseClick(view.graphics.viewport(), left, ctrl, pos=_widget_pos(view, 1, 0))
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


def test_grid_labels_every_layer_up_to_40_and_strides_64(qtbot, state):
    """Every layer gets a tick label at a normal dock size up to 40 layers; 64 x 64 (32B) gets a
    stride, and zooming in labels every row again."""
    view = _shown(qtbot, state)
    view.resize(480, 720)
    state.heads.set_shape(40, 32)
    state.heads.set_gaze_scores(np.random.default_rng(0).random((40, 32)))
    qtbot.waitUntil(lambda: view.image_item.image is not None and view.image_item.image.shape == (40, 32))
    QtWidgets.QApplication.processEvents()
    assert [v for v, _ in view.y_ticks.update()] == list(range(40))
    state.heads.set_shape(64, 64)
    state.heads.set_gaze_scores(np.random.default_rng(1).random((64, 64)))
    qtbot.waitUntil(lambda: view.image_item.image.shape == (64, 64))
    QtWidgets.QApplication.processEvents()
    values = [v for v, _ in view.y_ticks.update()]
    stride = values[1] - values[0]
    assert stride > 1 and values[0] == 0 and values[-1] >= 64 - stride
    view.plot.setYRange(10, 25, padding=0)  # zoomed in: every row again
    assert [v for v, _ in view.y_ticks.update()] == list(range(10, 26))

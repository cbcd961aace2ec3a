"""The image + overlay view: it draws the model's data and writes clicks and drags back to it."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from gaze_explorer.core.scoring import overlay_heat
from gaze_explorer.qt.views.image_overlay import ImageOverlayView


def _scene_to_widget(view, x, y):
    scene_pt = view.plot.vb.mapViewToScene(QtCore.QPointF(x, y))
    return view.graphics.mapFromScene(scene_pt)


def test_overlay_shows_the_selected_heads_at_the_current_step(qtbot, state):
    view = ImageOverlayView(state)
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    state.step.set_step(4)
    run = state.session.shown_run
    expected = overlay_heat(run.rows_at(4), state.session.grid, state.heads.active)
    qtbot.waitUntil(lambda: view.heat_item.z is not None and np.allclose(view.heat_item.z, expected))
    assert view.heat_item.isVisible()
    assert view.heat_item.getLevels() == (0.0, float(expected.max()))
    # the mesh corners are the token boxes: panel 1 spans x 0..32 over the 2x6 grid
    assert view.heat_item.x[0, 1] == 32 and view.heat_item.y[2, 0] == 64
    # another head set changes the drawn data
    state.heads.set_kind("all")
    expected_all = overlay_heat(run.rows_at(4), state.session.grid, state.heads.active)
    qtbot.waitUntil(lambda: np.allclose(view.heat_item.z, expected_all))
    # global normalisation uses the maximum over all steps
    state.overlay.update(normalisation="global", opacity=0.3)
    top = max(overlay_heat(run.rows_at(s), state.session.grid, state.heads.active).max() for s in range(6))
    assert np.isclose(view.heat_item.getLevels()[1], top)
    assert np.isclose(view.heat_item.opacity(), 0.3)
    assert len([i for i in view.panel_items if hasattr(i, "textItem")]) == 6


def test_click_panel_and_drag_roi_set_the_target(qtbot, state):
    view = ImageOverlayView(state)
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    pos = _scene_to_widget(view, 5 * 32 + 10, 30)  # inside panel 6
    qtbot.mouseClick(view.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: state.target.panel == 5)
    assert state.target.kind == "panel"
    assert view.target_item.isVisible() and view.target_item.rect().x() == 160
    # the box ROI: move it as a drag would, and the target becomes that box
    view.box_button.setChecked(True)
    assert state.target.kind == "box"
    view.roi.setPos((10, 5), finish=False)
    view.roi.setSize((50, 40), finish=True)
    assert state.target.box == (10.0, 5.0, 60.0, 45.0)
    # the opacity slider writes to the overlay settings
    view.opacity_slider.setValue(25)
    assert state.overlay.opacity == 0.25

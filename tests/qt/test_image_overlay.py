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


def test_click_panel_sets_the_target_and_box_mode_drag_draws_the_box(qtbot, state):
    from tests.qt.test_head_grid import drag

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
    # without box mode a drag pans the view and sets no box
    before = view.plot.vb.viewRange()
    a, b = _scene_to_widget(view, 20, 10), _scene_to_widget(view, 90, 50)
    drag(view.graphics.viewport(), [a + (b - a) * t for t in np.linspace(0.0, 1.0, 8)], pause_ms=30)
    assert state.target.kind == "panel" and view.plot.vb.viewRange() != before
    view.fit_image()
    # box mode: the drag draws the box, from press to release, in image pixels
    view.box_button.setChecked(True)
    a, b = _scene_to_widget(view, 10, 5), _scene_to_widget(view, 70, 40)
    drag(view.graphics.viewport(), [a + (b - a) * t for t in np.linspace(0.0, 1.0, 8)], pause_ms=30)
    qtbot.waitUntil(lambda: state.target.kind == "box")
    x0, y0, x1, y1 = state.target.box
    assert abs(x0 - 10) < 2 and abs(y0 - 5) < 2 and abs(x1 - 70) < 2 and abs(y1 - 40) < 2
    # it selects the tokens whose cell centres (x 16, 48, ...; y 16, 48) fall inside: columns 0-1, row 0
    assert list(view.box_tokens) == [0, 1]
    xs, ys = view.box_tokens_item.getData()
    assert list(zip(xs, ys, strict=True)) == [(16.0, 16.0), (48.0, 16.0)]
    assert view.target_item.isVisible() and abs(view.target_item.rect().width() - 60) < 3
    # leaving box mode goes back to the panel target
    view.box_button.setChecked(False)
    assert state.target.kind == "panel"
    # the opacity slider writes to the overlay settings
    view.opacity_slider.setValue(25)
    assert state.overlay.opacity == 0.25


def test_overlay_styles_grey_image_and_contours(qtbot, state):
    view = ImageOverlayView(state)
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    assert view.image_item.image.ndim == 3
    view.style_combo.setCurrentIndex(1)  # grey image
    assert state.overlay.style == "greyscale"
    grey = view.image_item.image
    assert grey.ndim == 2 and grey[0, 100] == round(0.299 * 100)  # the red ramp's luminance
    assert view.heat_item.isVisible()
    view.style_combo.setCurrentIndex(2)  # contours
    assert view.image_item.image.ndim == 3 and not view.heat_item.isVisible()
    xs, ys = view.contour_items[1].getData()  # the half-maximum line
    assert xs is not None and np.isfinite(xs).sum() > 3
    # it lies on the image, around the hottest token's cell
    heat = view.current_heat()
    r, c = np.unravel_index(np.argmax(heat), heat.shape)
    fx, fy = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    assert fx.min() <= 32 * c + 16 <= fx.max() and fy.min() <= 32 * r + 16 <= fy.max()
    state.overlay.update(style="colour")
    assert view.heat_item.isVisible() and view.image_item.image.ndim == 3
    assert view.contour_items[1].getData()[0] is None or len(view.contour_items[1].getData()[0]) == 0


def test_image_fills_the_view_and_panels_show_their_token_snap(qtbot, state):
    view = ImageOverlayView(state)
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    view.fit_image()
    (x0, x1), (y0, y1) = view.plot.vb.viewRange()
    # a 192x64 strip in a wide view: the width fills it, the height is what the aspect needs
    assert -5 <= x0 <= 0 and 192 <= x1 <= 197 and y0 <= 0 and y1 >= 64
    assert not view.plot.getAxis("left").isVisible()
    # panels snap to whole token columns: 6 panels over 6 columns, each one column of 32 px
    assert view.snap_boxes == [(32.0 * i, 0.0, 32.0 * (i + 1), 64.0) for i in range(6)]


def test_panels_on_a_custom_image_show_where_they_snap_to_the_token_grid(qtbot, state):
    """4 panels of 48 px over 6 token columns of 32 px: each panel's tokens cover whole columns, and
    the dotted outline shows those columns, not the 48 px panel box."""
    from gaze_explorer.core.regions import panel_regions

    view = ImageOverlayView(state)
    qtbot.addWidget(view)
    session = state.session
    regions = panel_regions(session.grid, 4)
    session.set_image(session.image, session.grid, regions, 4, name="custom")
    assert [r.box[2] for r in regions] == [48.0, 96.0, 144.0, 192.0]
    for region, snap in zip(regions, view.snap_boxes, strict=True):
        cols = sorted({int(i) % 6 for i in region.token_indices})
        assert snap == (32.0 * cols[0], 0.0, 32.0 * (cols[-1] + 1), 64.0)
    assert any(snap[2] != region.box[2] for region, snap in zip(regions, view.snap_boxes, strict=True))

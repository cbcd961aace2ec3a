"""TokenHeatItem draws a regular token grid as one image: the same pixels as pyqtgraph's mesh, and the
mesh itself for grids it cannot draw that way."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.regions import ImageTokenGrid
from gaze_explorer.core.state_data import grid_corners
from gaze_explorer.qt.widgets.token_heat import TokenHeatItem, regular_extent

W, H = 192, 96


def _render(item: pg.PColorMeshItem) -> np.ndarray:
    """The item alone in a scene, rendered 1:1 onto a white W x H image: ``[H, W, 4]`` uint8."""
    scene = QtWidgets.QGraphicsScene(0, 0, W, H)
    scene.addItem(item)
    image = QtGui.QImage(W, H, QtGui.QImage.Format.Format_ARGB32)
    image.fill(QtCore.Qt.GlobalColor.white)
    painter = QtGui.QPainter(image)
    scene.render(painter, QtCore.QRectF(0, 0, W, H), QtCore.QRectF(0, 0, W, H))
    painter.end()
    scene.removeItem(item)
    ptr = image.constBits()
    return np.frombuffer(ptr, dtype=np.uint8).reshape(H, W, 4).copy()


def _pair(x, y, z, levels):
    items = []
    for cls in (pg.PColorMeshItem, TokenHeatItem):
        item = cls(colorMap=pg.colormap.get("inferno"), enableAutoLevels=False)
        item.setData(x, y, z, autoLevels=False)
        item.setLevels(levels)
        items.append(item)
    return items


def test_a_regular_grid_is_drawn_with_the_meshs_colours(qapp):
    grid = ImageTokenGrid.uniform(W, H, 4, 8, first_position=0)  # 24 x 24 px cells
    x, y = grid_corners(grid)
    assert regular_extent(x, y) == (0.0, 0.0, float(W), float(H))
    z = np.random.default_rng(3).random((4, 8))
    z[1, 2] = np.nan  # a cell with no value stays empty in both
    mesh, heat = _pair(x, y, z, (0.1, 0.8))  # values outside the levels clip the same way
    want, got = _render(mesh), _render(heat)
    # cell centres: exactly the mesh's colour (edges may differ by antialiasing of the polygons)
    centres = [(12 + 24 * r, 12 + 24 * c) for r in range(4) for c in range(8)]
    for py, px in centres:
        assert tuple(got[py, px]) == tuple(want[py, px]), (py, px)
    assert tuple(got[12 + 24, 12 + 48]) == (255, 255, 255, 255)  # the NaN cell shows the background
    colours = {tuple(got[py, px]) for py, px in centres}
    assert len(colours) > 10  # the values really drew different colours


def test_an_uneven_grid_falls_back_to_the_mesh(qapp):
    x_edges = np.array([0.0, 30.0, 50.0, 120.0, 192.0])  # uneven columns (a tiled image)
    y_edges = np.array([0.0, 40.0, 96.0])
    x, y = np.meshgrid(x_edges, y_edges)
    assert regular_extent(x, y) is None
    z = np.arange(8, dtype=float).reshape(2, 4)
    mesh, heat = _pair(x, y, z, (0.0, 7.0))
    assert np.array_equal(_render(heat), _render(mesh))
    # the colour of a cell is where its uneven box is: column 3 spans x 120..192
    assert not np.array_equal(_render(heat)[20, 100], _render(heat)[20, 150])

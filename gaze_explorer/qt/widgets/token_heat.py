"""The attention heat over an image's token cells, drawn as one image when the cells are a regular grid.

pyqtgraph's ``PColorMeshItem`` records one polygon per cell into a ``QPicture`` (a Python call per
cell): for the 384 cells of an 8B-sized strip that is ~2.5 ms per step on the 2-core machine, paid by
the overlay and by the head inspector on every scrub frame. Token grids are usually regular (every
cell the same size), and then the same picture is one colour-mapped image stretched over the grid's
extent without smoothing: ~0.3 ms. :class:`TokenHeatItem` is a ``PColorMeshItem`` (same data,
``x``/``y``/``z``, levels, colour map, colour bar and opacity) that draws that way when it can and as
a mesh otherwise (tiled grids with uneven cells, edge lines).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui


def regular_extent(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(x0, y0, x1, y1)`` when the mesh corners ``x``, ``y`` ``[rows + 1, cols + 1]`` form a regular
    grid (x varies along columns only, y along rows only, equal positive steps); otherwise None."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape or min(x.shape) < 2:
        return None
    tol = 1e-6 * max(float(np.abs(x).max()), float(np.abs(y).max()), 1.0)
    dx, dy = np.diff(x, axis=1), np.diff(y, axis=0)  # column and row steps, everywhere
    regular = (
        dx.min() > 0
        and dy.min() > 0
        and dx.max() - dx.min() <= tol
        and dy.max() - dy.min() <= tol
        and float(np.ptp(x, axis=0).max()) <= tol  # x the same down every column
        and float(np.ptp(y, axis=1).max()) <= tol  # y the same along every row
    )
    return (float(x[0, 0]), float(y[0, 0]), float(x[0, -1]), float(y[-1, 0])) if regular else None


class TokenHeatItem(pg.PColorMeshItem):
    """A ``PColorMeshItem`` that draws a regular mesh as one image (same colours, no smoothing)."""

    def _drawPicture(self) -> QtGui.QPicture:
        extent = None if self.edgecolors is not None else regular_extent(self.x, self.y)
        if extent is None:
            return super()._drawPicture()
        picture = QtGui.QPicture()
        painter = QtGui.QPainter(picture)
        try:
            image = self._colour_image()
            x0, y0, x1, y1 = extent
            painter.drawImage(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0), image)
        finally:
            painter.end()
        return picture

    def _colour_image(self) -> QtGui.QImage:
        """``z`` mapped through the lookup table the way the mesh maps it; NaN cells transparent."""
        z = np.asarray(self.z, dtype=np.float64)
        lut = self.lut_qcolor
        argb = np.array([c.rgba() for c in lut], dtype=np.uint32)
        lo, hi = self.levels[0], self.levels[1]
        span = (hi - lo) or 1
        invalid = np.isnan(z)
        index = pg.functions.rescaleData(
            np.where(invalid, lo, z), (len(lut) - 1) / span, lo, dtype=int, clip=(0, len(lut) - 1)
        )
        pixels = np.ascontiguousarray(np.where(invalid, np.uint32(0), argb[index]), dtype=np.uint32)
        rows, cols = pixels.shape
        # copy(): the QImage must own its pixels once the numpy buffer goes
        return QtGui.QImage(pixels.data, cols, rows, 4 * cols, QtGui.QImage.Format.Format_ARGB32).copy()

"""Geometry the app's views draw with: where each image token's box lies, for a pcolormesh.

The attention math the views draw (overlay heat, per-head region mass, trajectories) is in
:mod:`gaze_explorer.core.scoring`.
"""

from __future__ import annotations

import numpy as np

from gaze_explorer.core.regions import ImageTokenGrid


def grid_corners(grid: ImageTokenGrid) -> tuple[np.ndarray, np.ndarray]:
    """Corner coordinates ``x, y`` (``[rows+1, cols+1]``) of the token boxes, for a pcolormesh.

    Taken from the adapter's real token boxes (row-major), so the overlay lies exactly on the
    pixels each token covers, not on a resampled guess.
    """
    boxes = grid.token_boxes.reshape(grid.rows, grid.cols, 4)
    x_edges = np.concatenate([boxes[0, :, 0], boxes[0, -1:, 2]])  # [cols+1]
    y_edges = np.concatenate([boxes[:, 0, 1], boxes[-1:, 0, 3]])  # [rows+1]
    x, y = np.meshgrid(x_edges, y_edges)
    return x, y

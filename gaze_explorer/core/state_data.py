"""Numpy reductions the app's views draw: overlay heat, per-head region mass, trajectories.

Inputs are captured attention rows ``[layer, head, key]`` of one decode step; image tokens are
picked through the grid's absolute sequence positions. Heads are averaged (not summed), so an
overlay or trajectory reads as "the attention of a typical selected head".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, Region


def head_index(heads: HeadSet) -> tuple[np.ndarray, np.ndarray]:
    """Layer and head index arrays of a head set (for fancy indexing ``rows[layers, heads]``)."""
    if not heads.heads:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    arr = np.asarray(heads.heads, dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def overlay_heat(rows: np.ndarray, grid: ImageTokenGrid, heads: HeadSet) -> np.ndarray:
    """Mean attention of ``heads`` on each image token: ``[rows, cols]`` over the merged grid."""
    layers, hs = head_index(heads)
    if layers.size == 0:
        return np.zeros((grid.rows, grid.cols), dtype=np.float64)
    picked = rows[layers, hs][:, grid.positions]  # [n_heads_selected, n_image_tokens]
    return picked.astype(np.float64).mean(axis=0).reshape(grid.rows, grid.cols)


def head_region_mass(rows: np.ndarray, grid: ImageTokenGrid, region: Region) -> np.ndarray:
    """Attention mass of every head on ``region``'s image tokens: ``[layer, head]``."""
    positions = region.positions(grid)
    return rows[:, :, positions].astype(np.float64).sum(axis=-1)


def region_masses(heat: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
    """Mass of a flattened per-token heat on each region: ``[region]``."""
    flat = np.asarray(heat, dtype=np.float64).reshape(-1)
    return np.array([flat[r.token_indices].sum() for r in regions], dtype=np.float64)


def trajectory(
    rows_at: Callable[[int], np.ndarray | None],
    n_steps: int,
    grid: ImageTokenGrid,
    regions: Sequence[Region],
    heads: HeadSet,
) -> np.ndarray:
    """Step x region attention mass of the mean selected head (the paper's staircase): ``[step, region]``.

    Steps with no captured rows are NaN.
    """
    out = np.full((n_steps, len(regions)), np.nan, dtype=np.float64)
    for step in range(n_steps):
        rows = rows_at(step)
        if rows is None:
            continue
        out[step] = region_masses(overlay_heat(rows, grid, heads), regions)
    return out


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

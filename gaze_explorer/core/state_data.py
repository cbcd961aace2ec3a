"""Data the app's views draw with: where each image token's box lies (for a pcolormesh), and the
per-run staircase cache that the token timeline and the comparison view share.

The attention math the views draw (overlay heat, per-head region mass, trajectories) is in
:mod:`gaze_explorer.core.scoring`.
"""

from __future__ import annotations

import numpy as np

from gaze_explorer.core.regions import ImageTokenGrid
from gaze_explorer.core.scoring import step_trajectory
from gaze_explorer.core.state import AppState


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


class TrajectoryCache:
    """Per-run, per-head-set ``[step, region]`` trajectory, grown step by step while a run streams."""

    def __init__(self) -> None:
        self._rows: dict[tuple, list[np.ndarray]] = {}

    def get(self, state: AppState, run_index: int) -> np.ndarray | None:
        session = state.session
        run = session.runs[run_index]
        # the run's own image (its grid and regions), not the one on screen: runs of a session may
        # be on different images
        grid = run.grid if run.grid is not None else session.grid
        regions = run.regions or session.regions
        if grid is None or run.rows_at is None or not regions or not state.heads.active.heads:
            return None
        key = (run_index, id(run), state.heads.active.heads, len(regions), id(grid))
        done = self._rows.setdefault(key, [])
        done.extend(step_trajectory(run.rows_at, run.n_steps, grid, regions, state.heads.active, len(done)))
        if not done:
            return None
        return np.stack(done[: run.n_steps])  # [step, region]

    def clear(self) -> None:
        self._rows.clear()

"""core/scoring: region sums (raw), panel matrices, gaze scores and trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import HeadSpecError, RegionError
from gaze_explorer.core.scoring import gaze_scores, panel_matrix, region_attention, trajectory


def test_region_attention_is_raw_sum():
    rows = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 1.0]])
    out = region_attention(rows, [np.array([0, 1]), np.array([2])])
    np.testing.assert_allclose(out, [[0.3, 0.3], [0.0, 0.0]])  # not renormalised
    with pytest.raises(RegionError):
        region_attention(rows, [np.array([], dtype=int)])
    with pytest.raises(RegionError):
        region_attention(rows, [np.array([9])])


def test_panel_matrix_and_gaze_score():
    # 1 layer x 2 heads, 2 panels; head 0 looks at the queried panel, head 1 always at panel 0
    keys = 6
    positions = [[np.array([1, 2]), np.array([3, 4])], [np.array([2, 3]), np.array([4, 5])]]  # shifted row 1
    rows = np.zeros((2, 1, 2, keys))
    rows[0, 0, 0, [1, 2]] = 0.4
    rows[1, 0, 0, [4, 5]] = 0.4
    rows[0, 0, 1, 1] = 0.9
    rows[1, 0, 1, 2] = 0.9
    m = panel_matrix(rows, positions)
    assert m.shape == (1, 2, 2, 2)
    np.testing.assert_allclose(m[0, 0], [[0.8, 0.0], [0.0, 0.8]])
    np.testing.assert_allclose(m[0, 1], [[0.9, 0.0], [0.9, 0.0]])
    np.testing.assert_allclose(gaze_scores(np.stack([m, m])), [[0.8, 0.45]])


def test_trajectory_raw_normalised_weighted():
    rows = np.zeros((2, 1, 2, 5))  # [step, layer, head, key]
    rows[0, 0, 0, [0, 1]] = [0.2, 0.2]
    rows[1, 0, 0, [0, 2]] = [0.1, 0.3]
    norms = np.ones((1, 2, 5))
    norms[0, 0, 2] = 3.0
    regions = [np.array([0, 1]), np.array([2])]
    t = trajectory(rows, [(0, 0)], regions, norms)
    np.testing.assert_allclose(t["raw"], [[0.4, 0.0], [0.1, 0.3]])
    np.testing.assert_allclose(t["normalised"], [[1.0, 0.0], [0.25, 0.75]])
    np.testing.assert_allclose(t["weighted"], [[0.4, 0.0], [0.1, 0.9]])
    with pytest.raises(HeadSpecError):
        trajectory(rows, [(3, 0)], regions)

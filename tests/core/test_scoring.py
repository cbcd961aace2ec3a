"""core/scoring: region sums (raw), panel matrices, gaze scores and trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import HeadSpecError, RegionError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.scoring import (
    gaze_scores,
    head_index,
    head_region_mass,
    image_attention,
    overlay_heat,
    panel_matrix,
    region_attention,
    region_masses,
    stack_step_rows,
    step_trajectory,
    trajectory,
)


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


def test_head_index_is_the_one_check_of_a_head_set():
    layers, hs = head_index([(1, 2), (0, 1)], 2, 3)
    assert layers.tolist() == [0, 1] and hs.tolist() == [1, 2]  # HeadSet order: sorted
    every_layer, every_head = head_index(None, 2, 3)
    assert list(zip(every_layer.tolist(), every_head.tolist(), strict=True)) == [
        (layer, h) for layer in (0, 1) for h in (0, 1, 2)
    ]
    with pytest.raises(HeadSpecError, match="empty"):
        head_index([], 2, 3)
    with pytest.raises(HeadSpecError, match="out of range"):
        head_index([(2, 0)], 2, 3)


def _grid_and_rows():
    # 2 x 2 image tokens at key positions 1..4 of 6 keys; 2 layers x 2 heads
    grid = ImageTokenGrid.uniform(4, 4, rows=2, cols=2, first_position=1)
    rows = np.zeros((2, 2, 6))  # [layer, head, key]
    rows[0, 0, 1:5] = [0.1, 0.2, 0.3, 0.4]
    rows[1, 1, 1:5] = [0.3, 0.0, 0.1, 0.0]
    return grid, rows


def test_overlay_image_attention_and_region_masses_known_answers():
    grid, rows = _grid_and_rows()
    heads = HeadSet("two", ((0, 0), (1, 1)))
    per_token = image_attention(rows, grid.positions, heads)  # the mean of the two heads
    np.testing.assert_allclose(per_token, [0.2, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(overlay_heat(rows, grid, heads), [[0.2, 0.1], [0.2, 0.2]])
    np.testing.assert_allclose(image_attention(rows, grid.positions), per_token / 2)  # None: all 4 heads
    assert not overlay_heat(rows, grid, HeadSet("none", ())).any()
    left, right = panel_regions(grid, 2)
    np.testing.assert_allclose(region_masses(overlay_heat(rows, grid, heads), [left, right]), [0.4, 0.3])
    np.testing.assert_allclose(head_region_mass(rows, grid, left), [[0.4, 0.0], [0.0, 0.4]])


def test_the_two_staircases_agree_and_missing_steps_are_nan():
    grid, rows = _grid_and_rows()
    heads = HeadSet("two", ((0, 0), (1, 1)))
    regions = panel_regions(grid, 2)
    steps = [rows[..., :5], rows]  # step s has one more key than step s-1
    stacked = stack_step_rows(steps)
    assert stacked.shape == (2, 2, 2, 6) and not stacked[0, ..., 5].any()
    raw = trajectory(stacked, heads, [r.positions(grid) for r in regions])["raw"]
    by_step = step_trajectory(lambda s: steps[s], 2, grid, regions, heads)
    np.testing.assert_allclose(by_step, raw)
    np.testing.assert_allclose(raw[1], [0.4, 0.3])
    gap = step_trajectory(lambda s: steps[s] if s == 0 else None, 3, grid, regions, heads)
    assert np.isnan(gap[1:]).all() and np.allclose(gap[0], raw[0])
    with pytest.raises(ValueError, match="no captured decode rows"):
        stack_step_rows([])

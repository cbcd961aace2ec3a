"""core/regions: panels partition the grid, boxes by token centre, explicit token sets, errors."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import RegionError
from gaze_explorer.core.regions import (
    ImageTokenGrid,
    Region,
    box_region,
    coverage_warning,
    covered_fraction,
    panel_edges,
    panel_regions,
    panel_shares,
    token_region,
    widths_from_boundaries,
)


def _grid():
    return ImageTokenGrid.uniform(384, 64, rows=2, cols=12, first_position=10)


def test_panels_partition_and_follow_widths():
    grid = _grid()
    regions = panel_regions(grid, 6)
    idx = np.concatenate([r.token_indices for r in regions])
    assert np.array_equal(np.sort(idx), np.arange(24)) and all(r.token_indices.size == 4 for r in regions)
    wide = panel_regions(grid, 2, widths=[3, 1])
    assert [r.token_indices.size for r in wide] == [18, 6]
    assert np.array_equal(regions[0].positions(grid), [10, 11, 22, 23])
    assert np.array_equal(grid.shifted(5).positions[:2], [15, 16])
    with pytest.raises(RegionError):
        panel_regions(grid, 13)


def test_box_and_token_regions():
    grid = _grid()
    box = box_region(grid, (0, 0, 64, 32))
    assert box.token_indices.tolist() == [0, 1]
    with pytest.raises(RegionError, match="no image-token centre"):
        box_region(grid, (0, 0, 10, 10))
    with pytest.raises(RegionError, match="outside"):
        box_region(grid, (500, 0, 600, 10))
    with pytest.raises(RegionError, match="zero or negative"):
        box_region(grid, (10, 10, 5, 20))
    tok = token_region(grid, [3, 1, 3])
    assert tok.token_indices.tolist() == [1, 3]
    assert Region.from_dict(tok.to_dict()).token_indices.tolist() == [1, 3]
    with pytest.raises(RegionError):
        token_region(grid, [24])
    with pytest.raises(RegionError):
        token_region(grid, [])


def _padded_portrait_grid() -> ImageTokenGrid:
    """LLaVA-1.5's grid of a 360 x 1000 image padded to 1000 x 1000 and cut into 24 x 24 cells of
    41.67 px: the 10 columns that hold pixels, the first and last clipped to 13.33 px."""
    edges = np.clip(np.linspace(0, 1000, 25) - 320, 0, 360)
    xs = edges[np.flatnonzero(np.diff(edges) > 0)[0] :][:11]
    ys = np.linspace(0, 1000, 25)
    boxes = [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(24) for c in range(10)]
    return ImageTokenGrid(360, 1000, 24, 10, np.array(boxes), np.arange(240))


def test_padded_columns_go_to_the_panel_holding_most_of_their_pixels():
    grid = _padded_portrait_grid()
    widths = np.diff([*grid.token_boxes[:10, 0].tolist(), 360.0])
    assert np.allclose(widths, [40 / 3] + [125 / 3] * 8 + [40 / 3])
    columns = [np.unique(r.token_indices % 10).tolist() for r in panel_regions(grid, 3)]
    # column 3 (96.7..138.3 px) is 56% in panel 1, column 6 (221.7..263.3) 56% in panel 3: equal
    # column counts (3, 4, 3) would have given both to panel 2
    assert columns == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9]]
    shares = panel_shares(grid, panel_edges(360, 3))
    assert np.isclose(shares[3, 0], 0.56) and np.isclose(shares[6, 2], 0.56)
    # widths 1:2:1 (90, 180, 90 px): column 2 (55..96.7) is 84% in panel 1, column 7 84% in panel 3
    columns = [np.unique(r.token_indices % 10).tolist() for r in panel_regions(grid, 3, [1, 2, 1])]
    assert columns == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert np.isclose(panel_shares(grid, panel_edges(360, 3, [1, 2, 1]))[2, 0], 0.84)
    assert [r.box for r in panel_regions(grid, 3, [1, 2, 1])][1] == (90.0, 0.0, 270.0, 1000.0)


def test_a_panel_thinner_than_a_token_still_gets_a_column():
    grid = _grid()  # 12 columns of 32 px
    regions = panel_regions(grid, 3, [10, 1, 10])  # the middle panel is 18 px wide
    sizes = [r.token_indices.size for r in regions]
    assert sizes[1] == 2 and sum(sizes) == 24 and min(sizes) > 0


def test_panel_widths_and_boundaries():
    assert panel_edges(400, 4, [1, 2, 1, 4]) == [0.0, 50.0, 150.0, 200.0, 400.0]
    assert widths_from_boundaries([50, 150, 200], 400) == [50.0, 100.0, 50.0, 200.0]
    assert widths_from_boundaries([0, 100, 400], 400) == [100.0, 300.0]
    with pytest.raises(RegionError, match="increase strictly"):
        widths_from_boundaries([150, 50], 400)
    with pytest.raises(RegionError, match="increase strictly"):
        widths_from_boundaries([500], 400)
    with pytest.raises(RegionError, match="positive"):
        panel_edges(400, 2, [1, 0])
    with pytest.raises(RegionError, match="positive"):
        panel_edges(400, 3, [1, 2])


def test_covered_fraction_and_the_coverage_warning():
    # a 1536 x 256 strip of which a 256 px centre crop reaches the model (CLIP's native crop)
    crop = np.array([[640.0, 0.0, 896.0, 256.0]])
    assert np.isclose(covered_fraction(1536, 256, crop), 1 / 6, atol=1e-3)
    halves = np.array([[0, 0, 800, 256], [700, 0, 1536, 256]], dtype=float)  # overlapping boxes
    assert covered_fraction(1536, 256, halves) == 1.0
    message = coverage_warning(1 / 6, "native", "llava")
    assert message is not None and "17%" in message and "--input-policy squash" in message
    assert coverage_warning(1.0, "squash") is None

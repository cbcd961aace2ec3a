"""core/regions: panels partition the grid, boxes by token centre, explicit token sets, errors."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import RegionError
from gaze_explorer.core.regions import ImageTokenGrid, Region, box_region, panel_regions, token_region


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

"""core/criteria: Image Heads (MaskCD), Localization Heads (Kang et al.) and their agreement, on
hand-made attention tensors whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaze_explorer.core.criteria import (
    MapAverage,
    agreement,
    bottom_row_focused,
    connected_components,
    criteria_report,
    criterion_scores,
    elbow_threshold,
    image_head_scores,
    localization_heads,
    rank_scores,
    resample_map,
    spatial_entropy,
    zscore_within_layer,
)
from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import top_k_heads


def test_zscore_is_within_each_layer():
    mass = np.array([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0], [0.0, 0.0, 6.0]])
    z = zscore_within_layer(mass)
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    np.testing.assert_allclose(z[0], [-1 / s, 0.0, 1 / s])
    np.testing.assert_allclose(z[1], 0.0)  # equal heads: z = 0, not NaN
    np.testing.assert_allclose(z[2], [-1 / math.sqrt(2), -1 / math.sqrt(2), math.sqrt(2)])
    # a layer with a small but distinctive head outranks a layer of uniformly large heads
    assert image_head_scores(mass)[2, 2] > image_head_scores(mass)[1, 0]


def test_elbow_is_the_point_farthest_from_the_chord():
    # ascending: 0, 0.1, 0.2, 0.3, 5, 10 ; chord from (0, 0) to (5, 10): y = 2x
    # vertical gaps 2x - y: 0, 1.9, 3.8, 5.7, 3, 0 -> the elbow is the 4th point, value 0.3
    assert elbow_threshold([10.0, 0.2, 0.0, 5.0, 0.3, 0.1]) == pytest.approx(0.3)
    # the units of the axes do not move it
    assert elbow_threshold(np.array([10.0, 0.2, 0.0, 5.0, 0.3, 0.1]) * 1000) == pytest.approx(300.0)
    assert elbow_threshold([3.0, 1.0]) == 1.0
    assert elbow_threshold([2.0, 2.0, 2.0]) == 2.0


def test_connected_components_8_and_4():
    mask = np.array(
        [
            [1, 0, 0, 1],
            [0, 1, 0, 1],
            [0, 0, 0, 0],
            [1, 1, 0, 1],
        ],
        dtype=bool,
    )
    labels, n = connected_components(mask)  # 8-connected: the diagonal pair joins
    assert n == 4
    np.testing.assert_array_equal(labels, [[1, 0, 0, 2], [0, 1, 0, 2], [0, 0, 0, 0], [3, 3, 0, 4]])
    _, n4 = connected_components(mask, connectivity=4)
    assert n4 == 5


def test_spatial_entropy_paper_uses_component_sizes():
    # one 2x2 blob above the mean -> one component -> entropy 0
    a = np.zeros((4, 4))
    a[1:3, 1:3] = 0.25
    assert spatial_entropy(a) == 0.0
    # two blobs of sizes 3 and 1 (corners) -> H = -(3/4 ln 3/4 + 1/4 ln 1/4), whatever their mass
    b = np.zeros((4, 4))
    b[0, 0], b[0, 1], b[1, 0] = 0.1, 0.1, 0.1
    b[3, 3] = 0.7
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert spatial_entropy(b) == pytest.approx(expected)
    # a flat map has nothing above its mean: undefined, reported as inf (never selected)
    assert spatial_entropy(np.full((3, 3), 1 / 9)) == math.inf


def test_spatial_entropy_code_weights_by_mass_above_twice_the_mean():
    b = np.zeros((4, 4))
    b[0, 0], b[0, 1], b[1, 0] = 0.2, 0.2, 0.2
    b[3, 3] = 0.4
    mean = 1.0 / 16
    high = [0.2 - 2 * mean] * 3 + [0.4 - 2 * mean]
    total = sum(high)
    p = np.array([sum(high[:3]), high[3]]) / total
    assert spatial_entropy(b, "code") == pytest.approx(float(-(p * np.log(p)).sum()))
    assert spatial_entropy(b, "code") != pytest.approx(spatial_entropy(b, "paper"))
    with pytest.raises(ValueError, match="variant"):
        spatial_entropy(b, "other")


def test_bottom_row_rules():
    a = np.zeros((3, 3))
    a[0, 0] = 0.5
    a[2, 1] = 0.06
    assert bottom_row_focused(a, "code")  # 0.06 > 0.05 on the bottom row
    assert not bottom_row_focused(a, "peak")  # the peak is on the top row
    assert not bottom_row_focused(a, "off")
    a[2, 1] = 0.9
    assert bottom_row_focused(a, "peak")
    a[2, 1] = 0.04
    assert not bottom_row_focused(a, "code")


def _maps_4x4(n_layers: int, n_heads: int) -> np.ndarray:
    """[layer, head, 4, 4] maps, by default flat (no component: never selected)."""
    return np.full((n_layers, n_heads, 4, 4), 1.0 / 16)


def _blobs(mass: float, sizes: list[int]) -> np.ndarray:
    """A 4x4 map with ``mass`` spread over separate blobs of the given sizes on rows 0-2 (the
    bottom row stays 0): a blob of size s fills s cells of its own column block."""
    m = np.zeros((4, 4))
    cells = [[(0, 0), (1, 0), (2, 0), (0, 1)], [(0, 3), (1, 3), (2, 3)], [(2, 1)]]
    used = [cells[i][:s] for i, s in enumerate(sizes)]
    n = sum(len(u) for u in used)
    for u in used:
        for r, c in u:
            m[r, c] = mass / n
    return m


def test_localization_heads_criteria_filters_and_ranking():
    n_layers, n_heads = 4, 2
    mass = np.full((n_layers, n_heads), 0.05)
    maps = _maps_4x4(n_layers, n_heads) * 0.05
    # layer 3 head 0: one blob (entropy 0); layer 2 head 1: two blobs sizes 2 and 2 (ln 2);
    # layer 2 head 0: blobs 3 and 1; layer 1 head 0: one blob but layer <= 1 is dropped;
    # layer 3 head 1: strong, one blob, but a bottom-row cell above 0.05
    for (layer, h), sizes in {(3, 0): [4], (2, 1): [2, 2], (2, 0): [3, 1], (1, 0): [4]}.items():
        mass[layer, h] = 0.9
        maps[layer, h] = _blobs(0.9, sizes)
    mass[3, 1] = 0.9
    maps[3, 1] = _blobs(0.8, [4])
    mass[0, 1] = 0.9  # much image attention, spread flat: no component
    maps[0, 1] = 0.9 / 16
    maps[3, 1, 3, 2] = 0.1
    loc = localization_heads(mass, maps)
    # sorted: 2 x 0.05 then 6 x 0.9; the chord from (0, 0.05) to (7, 0.9) is farthest from the first
    # 0.9 (x = 2: 0.9 - 0.293) -> the low heads fail criterion 1
    assert loc.threshold == pytest.approx(0.9)
    np.testing.assert_array_equal(loc.passes_mass, mass == 0.9)
    assert loc.bottom_row[3, 1] and not loc.bottom_row[3, 0] and not loc.bottom_row[2].any()
    assert not loc.selected[1, 0]  # layer 1
    assert not loc.selected[3, 1]  # bottom row
    assert loc.order[:3] == ((3, 0), (2, 0), (2, 1))  # entropies 0, H(3/4, 1/4), ln 2
    assert loc.n_selected == 3
    assert loc.entropy[2, 1] == pytest.approx(math.log(2))
    # the score grid gives the same top-K as the order
    assert set(top_k_heads(loc.scores(), 3).heads) == {(3, 0), (2, 0), (2, 1)}
    # min_layer and the bottom-row rule are switchable
    relaxed = localization_heads(mass, maps, min_layer=0, bottom_row="off")
    assert relaxed.selected[1, 0] and relaxed.selected[3, 1]
    assert not relaxed.selected[0, 1] and relaxed.entropy[0, 1] == math.inf
    assert relaxed.params == {
        "min_layer": 0,
        "entropy_variant": "paper",
        "bottom_row": "off",
        "bottom_row_threshold": 0.05,
    }


def test_localization_criterion_one_uses_the_elbow():
    # sorted masses 0.1, 0.12, 0.14, 0.16, 0.6, 0.9: chord gaps peak at 0.16 -> heads >= 0.16 pass
    mass = np.array([[0.1, 0.9], [0.12, 0.6], [0.14, 0.16]])
    maps = np.zeros((3, 2, 4, 4))
    for layer in range(3):
        for h in range(2):
            maps[layer, h] = _blobs(mass[layer, h], [4])
    loc = localization_heads(mass, maps, min_layer=0)
    assert loc.threshold == pytest.approx(0.16)
    np.testing.assert_array_equal(loc.selected, mass >= 0.16)
    # all four selected have entropy 0: ties go to the larger mass first
    assert loc.order[:3] == ((0, 1), (1, 1), (2, 1))
    assert loc.order[3:] == ((2, 0), (1, 0), (0, 0))  # failing criterion 1: after, still by entropy


def test_rank_scores_rejects_partial_orders():
    with pytest.raises(HeadSpecError):
        rank_scores([(0, 0)], 1, 2)
    np.testing.assert_array_equal(rank_scores([(0, 1), (0, 0)], 1, 2), [[1.0, 2.0]])


def test_resample_and_mean_maps():
    flat = np.full((2, 4), 0.125)
    np.testing.assert_allclose(resample_map(flat, 4, 8), 0.125)
    ramp = np.array([[0.0, 1.0]])
    np.testing.assert_allclose(resample_map(ramp, 1, 4), [[0.0, 0.25, 0.75, 1.0]])
    average = MapAverage()
    for m in (np.ones((2, 2)), np.zeros((2, 2)), np.full((1, 1), 3.0)):
        average.add(m)
    # the most common shape (2x2) wins; the 1x1 map is spread over it
    np.testing.assert_allclose(average.mean(), np.full((2, 2), 4.0 / 3))
    assert average.count == 3


def test_agreement_overlap_jaccard_core_and_clipping():
    orders = {
        "gaze": [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)],
        "image": [(0, 0), (1, 2), (0, 1), (1, 0), (1, 1), (0, 2)],
        "localization": [(1, 1), (0, 0), (1, 2), (0, 1), (0, 2), (1, 0)],
    }
    rows = agreement(orders, n_total=6, ks=(2, 3, 10))
    k2 = rows[0]
    pair = {(p["a"], p["b"]): p for p in k2["pairs"]}
    assert pair[("gaze", "image")]["overlap"] == 1  # {00,01} vs {00,12}
    assert pair[("gaze", "image")]["jaccard"] == pytest.approx(1 / 3)
    assert pair[("gaze", "localization")]["overlap"] == 1
    assert pair[("image", "localization")]["overlap"] == 1
    assert k2["common"] == 1 and k2["common_heads"] == [[0, 0]]
    assert pair[("gaze", "image")]["chance_overlap"] == pytest.approx(4 / 6)
    assert k2["chance_common"] == pytest.approx(8 / 36)
    k3 = rows[1]
    assert {(p["a"], p["b"]): p["overlap"] for p in k3["pairs"]} == {
        ("gaze", "image"): 2,
        ("gaze", "localization"): 1,  # {00}
        ("image", "localization"): 2,
    }
    assert k3["common"] == 1
    k10 = rows[2]
    assert k10["clipped"] and k10["k_used"] == 6 and not rows[0]["clipped"]
    assert all(p["jaccard"] == 1.0 for p in k10["pairs"])
    # the paper's chance figures for 1152 heads: about 0.1 at K = 10 and 8.7 at K = 100
    paper = agreement({"a": [], "b": []}, n_total=1152, ks=(10, 100))
    assert [round(r["pairs"][0]["chance_overlap"], 1) for r in paper] == [0.1, 8.7]


def test_criteria_report_is_json_ready_and_consistent():
    import json

    rng = np.random.default_rng(0)
    maps = rng.random((3, 4, 2, 3)) * 0.1
    mass = maps.sum(axis=(2, 3))
    gaze = rng.random((3, 4))
    report = criteria_report(gaze, mass, maps, ks=(2, 100))
    json.dumps(report, allow_nan=False)
    z = zscore_within_layer(mass)
    best = np.unravel_index(int(np.argmax(z)), z.shape)
    assert (report["image"]["ranking"][0]["layer"], report["image"]["ranking"][0]["head"]) == best
    assert report["agreement"][1]["clipped"] and report["agreement"][1]["k_used"] == 12
    assert len(report["localization"]["ranking"]) == 12


def test_criterion_scores_top_k_equals_each_ranking():
    rng = np.random.default_rng(1)
    maps = rng.random((4, 3, 3, 3)) * 0.05
    mass = maps.sum(axis=(2, 3))
    gaze = rng.random((4, 3))
    scores = criterion_scores(gaze, mass, maps)
    report = criteria_report(gaze, mass, maps)
    for name in ("image", "localization"):
        top = [(r["layer"], r["head"]) for r in report[name]["ranking"][:5]]
        assert set(top_k_heads(scores[name], 5).heads) == set(top)
    assert set(criterion_scores(gaze)) == {"gaze"} and set(criterion_scores(gaze, mass)) == {"gaze", "image"}


def test_criteria_report_with_not_applicable_heads_is_valid_json():
    import json

    rng = np.random.default_rng(2)
    maps = rng.random((3, 4, 2, 2)) * 0.1
    mass = maps.sum(axis=(2, 3))
    mass[1] = np.nan  # a linear-attention layer (Qwen3.5): no softmax attention to measure
    maps[1] = np.nan
    report = criteria_report(rng.random((3, 4)), mass, maps, ks=(2,))
    json.dumps(report, allow_nan=False)
    assert all(r["layer"] != 1 for r in report["localization"]["ranking"][:8])

"""Discovery returns what the Image Heads and Localization Heads criteria need, from its own passes.

On the bundled demo model: the image mass and the image maps that ``discover`` accumulates equal
those recomputed from the captured last row of each question run ALONE (one plain forward each),
and each criterion's top-K equals the top-K computed from those recomputed quantities.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaze_explorer.core.criteria import criteria_report, image_head_scores, localization_heads
from gaze_explorer.core.heads import ranking
from gaze_explorer.demo.comics import load_heldout_strips
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.discovery import PAPER_PROMPT, DiscoveryResult, discover, panel_prompt
from gaze_explorer.inference.loading import load_model

K = 10


@pytest.fixture(scope="module")
def loaded():
    return load_model("demo", device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def strips():
    return load_heldout_strips(n=2)


@pytest.fixture(scope="module")
def result(loaded, strips):
    res = [e for e in discover(loaded, strips) if isinstance(e, DiscoveryResult)]
    assert len(res) == 1
    return res[0]


def _alone(loaded, strip) -> tuple[np.ndarray, np.ndarray]:
    """Image mass [layer, head] and map [layer, head, rows, cols] of a strip, mean over its
    questions, each question run alone through one plain forward."""
    n = len(strip.panel_widths)
    masses, maps = [], []
    for k in range(1, n + 1):
        prepared = loaded.prepare(strip.image, panel_prompt(PAPER_PROMPT, k, n))
        with torch.inference_mode(), attention_control(loaded) as ctl:
            ctl.set_request(ForwardRequest(capture_rows="last"))
            loaded.model(**loaded.adapter.prefill_kwargs(loaded.model, prepared))
            row = ctl.take_rows()[:, 0, :, 0].float().numpy()  # [layer, head, key]
        grid = prepared.grid
        on_image = row[..., grid.positions]  # [layer, head, image token], row-major
        masses.append(on_image.sum(axis=-1))
        maps.append(on_image.reshape(*on_image.shape[:2], grid.rows, grid.cols))
    return np.mean(masses, axis=0), np.mean(maps, axis=0)


def test_image_mass_and_maps_equal_single_question_rows(loaded, strips, result):
    pairs = [_alone(loaded, s) for s in strips]
    mass = np.mean([m for m, _ in pairs], axis=0)
    maps = np.mean([m for _, m in pairs], axis=0)
    assert result.image_mass.shape == (loaded.n_layers, loaded.n_heads)
    assert result.image_maps.shape == maps.shape
    np.testing.assert_allclose(result.image_mass, mass, atol=2e-5)
    np.testing.assert_allclose(result.image_maps, maps, atol=2e-5)
    # the map holds the mass, cell by cell
    np.testing.assert_allclose(result.image_maps.sum(axis=(-2, -1)), result.image_mass, atol=2e-5)
    # heads differ in how much they read the image (otherwise the criteria would be vacuous)
    assert result.image_mass.max() - result.image_mass.min() > 0.1

    # Image Heads: the ranking of per-layer z-scored image mass
    report = criteria_report(result.scores, result.image_mass, result.image_maps, ks=(K,))
    top_image = [(r["layer"], r["head"]) for r in report["image"]["ranking"][:K]]
    expected = [(r["layer"], r["head"]) for r in ranking(image_head_scores(mass))[:K]]
    assert top_image == expected
    # Localization Heads: the same criteria on the recomputed quantities
    top_loc = [(r["layer"], r["head"]) for r in report["localization"]["ranking"][:K]]
    assert top_loc == list(localization_heads(mass, maps).order[:K])
    # gaze: the gaze scores' own ranking; the agreement row compares exactly these three top-K sets
    top_gaze = [(r["layer"], r["head"]) for r in ranking(result.scores)[:K]]
    row = report["agreement"][0]
    pair = {(p["a"], p["b"]): p["overlap"] for p in row["pairs"]}
    assert pair[("gaze", "image")] == len(set(top_gaze) & set(top_image))
    assert pair[("gaze", "localization")] == len(set(top_gaze) & set(top_loc))
    assert row["common"] == len(set(top_gaze) & set(top_image) & set(top_loc))

"""What the app now shows of what the CLI already had: the top-K criterion (issue 17), the random
control's pool (issue 16), the input-coverage warning (issue 19) and a run's capture scope (issue 20),
on the demo model."""

from __future__ import annotations

import argparse

import numpy as np
from PySide6 import QtCore

from gaze_explorer.core.criteria import criterion_scores
from gaze_explorer.core.regions import coverage_warning


def _discover(qtbot, win):
    c = win.controller
    with qtbot.waitSignal(c.discovery_finished, timeout=120000):
        c.discover("current")
    qtbot.waitUntil(lambda: not c.busy, timeout=60000)
    return win.state.discovery


def _top(grid: np.ndarray, k: int) -> set[tuple[int, int]]:
    """The k highest finite scores' heads, computed here apart from core.heads."""
    flat = np.where(np.isfinite(grid), grid, -np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    return {(int(i // grid.shape[1]), int(i % grid.shape[1])) for i in order}


def test_criterion_combo_and_random_pool_label_after_discovery(qtbot, demo_window):
    win = demo_window
    s, panel = win.state, win.steering_panel
    discovery = _discover(qtbot, win)
    assert discovery.image_mass is not None and discovery.image_maps is not None
    expected = criterion_scores(discovery.scores, discovery.image_mass, discovery.image_maps)

    qtbot.mouseClick(panel.head_buttons["top"], QtCore.Qt.MouseButton.LeftButton)
    panel.k_spin.setValue(5)
    panel.criterion_combo.setCurrentText("image")
    assert s.heads.criterion == "image" and s.heads.choice.criterion == "image"
    assert set(s.heads.active.heads) == _top(expected["image"], 5)
    assert set(s.heads.active.heads) != _top(expected["gaze"], 5)  # the choice changed something
    panel.criterion_combo.setCurrentText("localization")
    assert set(s.heads.active.heads) == _top(expected["localization"], 5)
    panel.criterion_combo.setCurrentText("gaze")
    assert set(s.heads.active.heads) == _top(expected["gaze"], 5)
    assert panel.pool_label.text() == ""  # only the random control has a pool

    # the random control: its pool and the pool's size, from the HeadChoice
    s.heads.set_kind("random", k=5, pool="all-non-gaze")
    choice = s.heads.choice
    assert choice.pool == "all-non-gaze" and choice.pool_size > 5
    n_scored = int(np.isfinite(discovery.scores).sum())
    assert choice.pool_size == n_scored - 5  # every scored head but the top 5 gaze heads
    assert panel.pool_label.text() == f"from all-non-gaze: {choice.pool_size} heads"
    first = set(s.heads.active.heads)
    panel.seed_spin.setValue(panel.seed_spin.value() + 1)
    assert len(s.heads.active) == 5 and set(s.heads.active.heads) != first
    assert not set(s.heads.active.heads) & _top(expected["gaze"], 5)

    # a pool smaller than K: the label says why there is no set
    s.heads.set_kind("random", k=choice.pool_size + 1)
    assert len(s.heads.active) == 0 and s.heads.problem
    assert (
        panel.pool_label.text() == s.heads.problem
        and f"fewer than K={choice.pool_size + 1}" in s.heads.problem
    )


def test_the_demo_images_inputs_cover_the_whole_image_so_no_warning(qtbot, demo_window):
    """The demo model (Qwen3-VL layout, native policy) sees the whole strip: no coverage warning is
    posted when an image opens. A cropping policy needs a LLaVA-style model, which the app tests do
    not bundle; the warning's text is the pure function's, checked here for what the app posts."""
    win = demo_window
    c = win.controller
    posted: list[str] = []
    win.state.status.message_posted.connect(lambda text, _err: posted.append(text))
    prepared = c.loaded.adapter.build_inputs(c.pil_image, ["image"])
    assert prepared.info["vision"]["coverage"] >= 0.999
    c.set_image(c.pil_image, 6, "again")
    assert not [t for t in posted if "reach the model" in t]
    warning = coverage_warning(1 / 6, "native", "llava")
    assert warning is not None and "17%" in warning and "squash" in warning


def test_session_browser_shows_each_runs_capture_scope(qtbot, demo_window, tmp_path):
    from gaze_explorer.cli import main
    from gaze_explorer.cli.helpers import load_strips

    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    image = tmp_path / "strip.png"
    load_strips(ns, 1)[0].image.save(image)
    path = tmp_path / "scoped.h5"
    base = ["generate", "--model", "demo", "--device", "cpu", "--image", str(image), "--panels", "6"]
    base += ["--prompt", "What is in panel 2?", "--max-new-tokens", "3", "--session", str(path)]
    assert main([*base, "--capture", "image-keys"]) == 0
    assert main(base) == 0  # the default scope: full
    win = demo_window
    win.controller.open_session(str(path))
    items = win.session_view.list
    assert items.count() == 2
    assert [items.item(i).toolTip() for i in range(2)] == [
        "capture scope: image-keys",
        "capture scope: full",
    ]

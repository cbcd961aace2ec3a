"""What the app now shows of what the CLI already had: the top-K criterion (issue 17), the random
control's pool (issue 16), the input-coverage warning (issue 19, on a tiny real LLaVA: the demo
model sees the whole image) and a run's capture scope (issue 20), on the demo model."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    # beyond the heads the criterion itself selects, the panel says the rest are fill-ins
    n_sel = s.heads.choice.n_selected
    assert n_sel is not None and s.heads.selection["localization"]["n_selected"] == n_sel
    assert (f"only {n_sel} pass the localization criterion" in panel.heads_label.text()) == (n_sel < 5)
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

    s.heads.set_kind("random", k=5, pool="band")  # the band names its layers
    lo, hi = s.heads.choice.pool_layers
    assert panel.pool_label.text() == f"from band (layers {lo}–{hi}): {s.heads.choice.pool_size} heads"

    # a pool smaller than K: the label says why there is no set
    s.heads.set_kind("random", k=choice.pool_size + 1, pool="all-non-gaze")
    assert len(s.heads.active) == 0 and s.heads.problem
    assert (
        panel.pool_label.text() == s.heads.problem
        and f"fewer than K={choice.pool_size + 1}" in s.heads.problem
    )


def test_coverage_warning_in_the_status_bar_for_a_cropping_policy(qtbot, tmp_path, monkeypatch):
    """A tiny real LLaVA (CLIP's centre crop under the native policy) sees only the middle 1/6 of a
    336 x 56 strip: opening the strip in the app puts the CLI's warning in the status bar; with
    squash (the whole strip reaches the model) no warning is posted."""
    import torch
    from PIL import Image

    from gaze_explorer.inference.loading import LoadedModel
    from gaze_explorer.qt.main_window import MainWindow

    # the inference tests' tiny LLaVA builder (and its helpers module, imported by bare name)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "inference"))
    from test_family_llava import tiny_llava

    model, adapter = tiny_llava()
    strip = Image.fromarray(np.random.default_rng(0).integers(0, 255, (56, 336, 3), dtype=np.uint8))
    win = MainWindow()
    qtbot.addWidget(win)
    win.controller.recorder.directory = tmp_path / "sessions"
    try:
        for policy in ("native", "squash"):
            adapter.set_input_policy(policy)
            loaded = LoadedModel(
                model, adapter, "llava", "tiny-llava", None, torch.device("cpu"), torch.float32
            )
            win.controller._on_model_loaded(loaded)
            win.messages.clear()
            win.controller.set_image(strip, 1, f"strip-{policy}")  # 6 panels: 5 lie outside the crop
            warnings = [text for text, _err in win.messages if "reach the model" in text]
            expected = coverage_warning(1 / 6, "native", "llava")
            if policy == "native":
                assert warnings == [f"warning: {expected}"]  # the CLI's words, as a status line
                assert win.statusBar().currentMessage() == warnings[0]
            else:
                assert warnings == []
    finally:
        win.controller.shutdown()


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

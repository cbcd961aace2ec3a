"""The session round trip on the demo model (issue 15): discovery, a baseline, a top-10 run switched
live twice, a scheduled run and a box-target run; close; reopen in a fresh window with no model;
the screen shows the same data (grid, outlined heads, staircases, overlay at the chosen step, run
labels, prompt tokens, the selected comparison; a run on the second image shows that image). Then every figure and the head list are exported
from the reopened session, in the app and with the CLI, and read back."""

from __future__ import annotations

import json

import numpy as np
from pacing import pace
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.cli import main
from gaze_explorer.demo.prompts import NARRATION_PROMPT
from gaze_explorer.qt.main_window import MainWindow


def _steer(qtbot, win, max_tokens: int, live_keys=()):
    panel, s = win.steering_panel, win.state
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(max_tokens)
    panel.ignore_eos.setChecked(True)
    qtbot.mouseClick(panel.steer_button, QtCore.Qt.MouseButton.LeftButton)
    run = s.session.runs[-1]
    if live_keys:
        pace(win.controller.workers[-1], run)
    for key in live_keys:
        n = len(run.switches)
        qtbot.waitUntil(
            lambda: run.n_steps >= (run.switches[-1].step if run.switches else 0) + 4, timeout=60000
        )
        qtbot.keyClick(win, key)
        qtbot.waitUntil(lambda n=n: len(run.switches) > n, timeout=60000)
    qtbot.waitUntil(lambda: run.status != "running", timeout=120000)
    assert run.status == "finished", win.messages
    return run


def _screen(win) -> dict:
    """What the views show, as data."""
    s = win.state
    win.grid_view.refresh()
    win.timeline_view.refresh()
    scores, _ = win.grid_view.compute_scores()
    x, y = win.grid_view.active_item.getData()
    return {
        "grid": None if scores is None else np.asarray(scores, dtype=np.float32),
        "outlined": sorted(
            zip(np.asarray(y).astype(int).tolist(), np.asarray(x).astype(int).tolist(), strict=True)
        ),
        "staircases": [
            None if t.data is None else np.asarray(t.data, dtype=np.float32) for t in win.timeline_view.tracks
        ],
        "overlay": np.asarray(win.overlay_view.current_heat(), dtype=np.float32),
        "labels": [r.name for r in s.session.runs],
        "list": [win.session_view.list.item(i).text() for i in range(win.session_view.list.count())],
        "prompt": list(win.prompt_view.tokens),
        "selection": (s.session.shown, s.session.compare, s.step.step),
        "image": np.asarray(s.session.image),
    }


def test_session_round_trip_restores_the_screen_and_exports(qtbot, demo_window, tmp_path):
    win, c, s = demo_window, demo_window.controller, demo_window.state
    c.discover("current")
    qtbot.waitUntil(lambda: s.discovery.has_result and not c.busy, timeout=120000)
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(10)
    qtbot.mouseClick(panel.baseline_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: s.session.runs[-1].status != "running", timeout=60000)
    s.heads.set_kind("top", k=10)
    top10 = sorted(s.heads.active.heads)
    s.target.set_panel(3)
    live = _steer(qtbot, win, 40, (QtCore.Qt.Key.Key_2, QtCore.Qt.Key.Key_6))
    s.target.set_schedule("4,2,6", 5)
    _steer(qtbot, win, 16)
    strip = s.session.image.copy()
    second = Image.fromarray(np.ascontiguousarray(strip[:, ::-1]))  # a second image, in the same session
    c.set_image(second, 3, "second.png")
    height, width = s.session.image.shape[:2]
    s.target.set_box((0.0, 0.0, width / 3, float(height)))
    n_runs = len(s.session.runs)
    _steer(qtbot, win, 8)
    assert len(s.session.runs) == n_runs + 1, win.messages
    a, b = (sw.step for sw in live.switches)
    assert live.name == f"top-10 gaze → 4 → 2 (live @{a}) → 6 (live @{b})"
    choice = live.params["plan"]["choice"]  # how the heads were chosen is recorded with the run
    assert (choice["spec"], choice["criterion"], choice["k"]) == ("gaze:10", "gaze", 10)
    assert [r.name for r in s.session.runs][2:] == [
        "top-10 gaze → schedule 4,2,6 every 5",
        "top-10 gaze → box",
    ]

    assert np.array_equal(s.session.image, np.asarray(second))
    win.session_view.select_run(0)  # a run on the strip: the strip comes back on screen
    assert np.array_equal(s.session.image, strip)
    win.session_view.select_run(1, add=True)  # the live-switched run shown, the baseline compared
    s.step.set_step(7)
    before = _screen(win)
    assert before["selection"] == (1, 0, 7) and before["outlined"] == top10 and before["grid"] is not None
    path = s.session.path
    win.controller.shutdown()  # what closing the window does: saves the selection, closes the file

    other = MainWindow()
    qtbot.addWidget(other)
    other.state.heads.set_kind("top", k=3)  # a K left from before: reopening must not keep it
    assert other.controller.loaded is None and other.open_session(path)
    after = _screen(other)
    # the head-set boxes say how the shown run's set was chosen (top-10 by the gaze score)
    panel = other.steering_panel
    assert (panel.k_spin.value(), panel.criterion_combo.currentText()) == (10, "gaze")
    other.session_view.select_run(0)  # a baseline steers nothing: K is the model's default, 10 %
    assert other.state.heads.k == 10
    other.session_view.select_run(1)
    for key in ("labels", "list", "prompt", "selection", "outlined"):
        assert after[key] == before[key], key
    np.testing.assert_array_equal(after["grid"], before["grid"])
    np.testing.assert_array_equal(after["image"], before["image"])
    other.session_view.select_run(3)  # the box run, made on the second image, shows that image
    assert np.array_equal(other.state.session.image, np.asarray(second))
    assert other.state.session.runs[3].regions[-1].name == "box"
    other.session_view.select_run(1)
    np.testing.assert_allclose(after["overlay"], before["overlay"], rtol=1e-3, atol=1e-6)
    for got, want in zip(after["staircases"], before["staircases"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)

    # every figure and the head list, from the reopened session: in the app, then with the CLI
    from gaze_explorer.qt import export as ex

    reader, heads = other.reader, other.state.heads.active
    # the app's discovery records how the strip reached the model, as `discover` does
    params = reader.discoveries()[-1].params
    assert (params["input_policy"], params["image_coverage"]) == ("native", 1.0)
    out = tmp_path / "app"
    out.mkdir()
    written = [
        ex.export_grid(reader, out / "grid.png", heads=heads),
        ex.export_overlay(reader, out / "overlay.png", run=live.run_id, step=7, heads=heads),
        ex.export_timeline(reader, out / "timeline.png", run=live.run_id, heads=heads),
        ex.write_head_list(out / "heads.json", heads, np.asarray(reader.gaze_scores())),
    ]
    assert main(["export", "--session", path, "--out", str(tmp_path / "cli")]) == 0
    cli = sorted((tmp_path / "cli").iterdir())
    assert [p.name for p in cli] == ["grid.png", "heads.json", "matrix.png", "overlay.png", "timeline.png"]
    for p in [*written, *cli]:
        if p.suffix == ".json":
            listed = json.loads(p.read_text())
            rows = listed if isinstance(listed, list) else listed["heads"]
            assert sorted((h["layer"], h["head"]) for h in rows) == top10, p
        else:
            with Image.open(p) as im:
                assert min(im.size) > 100, p

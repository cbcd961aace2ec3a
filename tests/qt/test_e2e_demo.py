"""End to end on the bundled demo model: discovery, baseline, steer to panel 4, scrub, live
switch, export a figure and a head list and read both back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pacing import pace
from PySide6 import QtCore, QtGui

from gaze_explorer.qt.app import demo_strip
from gaze_explorer.qt.controller import RESOURCES

pytestmark = pytest.mark.skipif(
    not (RESOURCES / "demo_model" / "config.json").exists(), reason="no demo model"
)


def _wait(qtbot, win, timeout=60000):
    qtbot.waitUntil(lambda: not win.controller.workers, timeout=timeout)


def test_demo_discover_steer_scrub_switch_export(qtbot, tmp_path, demo_window):
    from gaze_explorer.core.heads import load_head_list
    from gaze_explorer.qt.export_dialogs import export_current_figure, export_current_heads

    win = demo_window  # the demo model and the first demo strip (tests/qt/conftest.py)
    s = win.state
    win.controller.discover("demo")
    _wait(qtbot, win)
    assert s.heads.gaze_scores is not None
    qtbot.waitUntil(lambda: win.grid_view.image_item.image is not None)  # redraws are coalesced
    assert np.array_equal(win.grid_view.image_item.image, s.heads.gaze_scores)
    win.steering_panel.max_tokens.setValue(12)
    win.steering_panel.no_repeat.setValue(3)
    win.generate_baseline()
    _wait(qtbot, win)
    # K defaults to 10 % of the demo's 96 heads, in the model and in its box
    assert s.heads.k == 10 and win.steering_panel.k_spin.value() == 10
    s.heads.set_kind("top")
    s.target.set_panel(3)
    win.steer()
    _wait(qtbot, win)
    run = s.session.runs[-1]
    assert run.status == "finished" and run.targets[1:] == [3] * (run.n_steps - 1)
    # the steered heads really look at panel 4 at every decode step after the first (unsteered) one;
    # whether the demo model then NAMES panel 4 is test_demo_steered_answer_names_panel_4 below
    from gaze_explorer.storage import SessionReader as _Reader

    with _Reader(s.session.path) as r0:
        for step in range(1, run.n_steps):
            _, per_region = r0.image_attention(run.run_id, step, s.heads.active)
            assert per_region[3] >= 0.99 * per_region.sum()
    # scrub: the overlay equals the reader's attention for that step and heads
    from gaze_explorer.storage import SessionReader

    s.step.set_step(3)
    reader = SessionReader(s.session.path)
    expected, _ = reader.image_attention(run.run_id, 3, s.heads.active)
    qtbot.waitUntil(  # redraws are coalesced: the heat may not exist yet
        lambda: (
            win.overlay_view.heat_item.z is not None
            and np.allclose(win.overlay_view.heat_item.z.reshape(-1), expected)
        )
    )
    # live switch mid-generation (past EOS, so the demo's short answer cannot end the run first)
    win.steering_panel.max_tokens.setValue(60)
    win.steering_panel.ignore_eos.setChecked(True)
    win.steer()
    pace(win.controller.workers[-1], s.session.runs[-1])
    qtbot.waitUntil(lambda: s.session.runs[-1].n_steps >= 3, timeout=30000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_2)
    _wait(qtbot, win)
    live = s.session.runs[-1]
    assert [sw.source for sw in live.switches] == ["live"]
    qtbot.waitUntil(
        lambda: list(win.timeline_view.tracks[0].live_item.getData()[0]) == [live.switches[0].step]
    )
    # exports, read back
    fig = export_current_figure(win, "grid", tmp_path / "grid.png")
    assert not QtGui.QImage(str(fig)).isNull()
    heads = export_current_heads(win, "active", tmp_path / "heads.json")
    assert load_head_list(heads).heads == s.heads.active.heads
    assert len(json.loads(heads.read_text())) == 10
    win.controller.shutdown()


def test_demo_steered_answer_names_panel_4(qtbot, demo_window):
    win, strip = demo_window, demo_strip()
    win.controller.discover("demo")
    _wait(qtbot, win)
    s = win.state
    s.heads.set_kind("top")  # the default K: 10 of 96
    s.target.set_panel(3)
    win.steering_panel.max_tokens.setValue(12)
    win.steering_panel.no_repeat.setValue(3)
    win.steer()
    _wait(qtbot, win)
    text = s.session.runs[-1].text.lower()
    assert strip.attributes[3]["background"] in text and strip.attributes[3]["object"] in text, text

"""The steering panel: its widgets write head set and target to the models, and read them back."""

from __future__ import annotations

import json

from PySide6 import QtCore

from gaze_explorer.core.steering import SteeringMode
from gaze_explorer.qt.views.steering_panel import SteeringPanel


def _panel(qtbot, state):
    panel = SteeringPanel(state)
    qtbot.addWidget(panel)
    panel.resize(480, 720)  # as the dock sizes it: every option in view, none scrolled away
    panel.show()
    return panel


def test_head_set_controls_drive_the_model(qtbot, state):
    panel = _panel(qtbot, state)
    panel.k_spin.setValue(3)
    assert state.heads.active.heads == ((2, 1), (2, 2), (2, 3))
    qtbot.mouseClick(panel.head_buttons["all"], QtCore.Qt.MouseButton.LeftButton)
    assert state.heads.kind == "all" and len(state.heads.active) == 12
    qtbot.mouseClick(panel.head_buttons["random"], QtCore.Qt.MouseButton.LeftButton)
    # 12 heads: the default pool (band: layer 2, the top 3's layer) holds one other head, fewer than K = 3
    assert state.heads.kind == "random" and len(state.heads.active) == 0
    assert "fewer than K=3" in state.heads.problem and "cannot be chosen" in panel.heads_label.text()
    state.heads.set_kind("random", pool="all-non-gaze")
    assert len(state.heads.active) == 3 and not set(state.heads.active.heads) & {(2, 1), (2, 2), (2, 3)}
    # the model changing (a grid click) shows in the panel
    state.heads.toggle((0, 0))
    state.heads.set_kind("custom")
    assert panel.head_buttons["custom"].isChecked()
    assert "custom: 1 head(s) L0H0" in panel.heads_label.text()
    panel.mode_combo.setCurrentIndex(2)
    panel.strength_spin.setValue(50.0)
    plan = panel.plan()
    assert plan.mode is SteeringMode.SUPPRESS_ALL and plan.strength == 50.0 and plan.heads.heads == ((0, 0),)
    # K and seed set on the model (as loading a model does) show in their boxes
    state.heads.set_kind("top", k=4, seed=7)
    assert panel.k_spin.value() == 4 and panel.seed_spin.value() == 7 and len(state.heads.active) == 4


def test_head_file_good_and_malformed(qtbot, state, tmp_path):
    panel = _panel(qtbot, state)
    good = tmp_path / "ranking.json"
    good.write_text(
        json.dumps([{"layer": 1, "head": 2, "score": 0.3}, {"layer": 0, "head": 1, "score": 0.2}])
    )
    assert panel.load_head_file(str(good))
    assert state.heads.kind == "file" and state.heads.active.heads == ((0, 1), (1, 2))
    messages = []
    state.status.message_posted.connect(lambda text, err: messages.append((text, err)))
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,head\n1,x\n")
    assert not panel.load_head_file(str(bad))
    assert messages and messages[0][1] and "whole numbers" in messages[0][0]
    out_of_range = tmp_path / "big.json"
    out_of_range.write_text(json.dumps([{"layer": 40, "head": 0}]))
    assert not panel.load_head_file(str(out_of_range))
    assert "out of range" in messages[-1][0]
    assert state.heads.active.heads == ((0, 1), (1, 2))  # nothing lost


def test_target_controls_and_buttons(qtbot, state):
    panel = _panel(qtbot, state)
    panel.panel_spin.setValue(4)
    assert state.target.kind == "panel" and state.target.panel == 3
    panel.target_kind.setCurrentText("schedule")
    panel.schedule_edit.setText("4,2,1")
    panel.every_spin.setValue(5)
    assert state.target.kind == "schedule" and state.target.schedule_text == "4,2,1"
    assert state.target.switch_every == 5
    state.target.set_panel(5)  # e.g. a click on the image
    assert panel.target_kind.currentText() == "panel" and panel.panel_spin.value() == 6
    with qtbot.waitSignal(panel.steer_requested, timeout=1000):
        qtbot.mouseClick(panel.steer_button, QtCore.Qt.MouseButton.LeftButton)
    state.status.set_busy(True)
    assert panel.stop_button.isEnabled() and not panel.steer_button.isEnabled()
    with qtbot.waitSignal(panel.stop_requested, timeout=1000):
        qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    panel.max_tokens.setValue(7)
    panel.rep_penalty.setValue(1.3)
    opts = panel.generation_options()
    assert opts.max_new_tokens == 7 and abs(opts.repetition_penalty - 1.3) < 1e-9


def test_the_control_pool_is_chosen_in_the_panel(qtbot, state):
    """The random control's pool is picked (or typed, percentile:P) in the panel; a bad one is said
    and changes nothing; a pool set on the model shows in the box."""
    panel = _panel(qtbot, state)
    panel.k_spin.setValue(3)
    qtbot.mouseClick(panel.head_buttons["random"], QtCore.Qt.MouseButton.LeftButton)
    assert state.heads.pool == "band" and len(state.heads.active) == 0  # the band holds 1 head
    panel.pool_combo.setCurrentText("all-non-gaze")
    panel.pool_combo.activated.emit(panel.pool_combo.currentIndex())
    assert state.heads.pool == "all-non-gaze" and len(state.heads.active) == 3
    assert "all-non-gaze" in panel.pool_label.text()
    edit = panel.pool_combo.lineEdit()
    edit.setText("percentile:250")
    edit.editingFinished.emit()
    assert state.heads.pool == "all-non-gaze" and "from 0 to 100" in panel.pool_label.text()
    assert panel.pool_combo.currentText() == "all-non-gaze"
    edit.setText("percentile:50")
    edit.editingFinished.emit()
    assert state.heads.pool == "percentile:50" and len(state.heads.active) == 3
    state.heads.set_kind("random", pool="band")
    assert panel.pool_combo.currentText() == "band"

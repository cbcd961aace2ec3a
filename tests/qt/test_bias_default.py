"""The steering panel's "decode only" checkbox follows the protocol its target implies (issue 17):
a panel or a box is static steering (bias on prefill and decode, unticked), a schedule is dynamic
narration (decode only, ticked), from ``core.protocol_choices.DEFAULT_BIAS_ON``. A tick by hand is kept
for every target until 'Follow the target'. A run records what the checkbox said, and the bias really
applied where it says (the steered heads' step-0 row comes from the prefill)."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from gaze_explorer.qt.views.steering_panel import SteeringPanel

LEFT = QtCore.Qt.MouseButton.LeftButton


def _panel(qtbot, state) -> SteeringPanel:
    panel = SteeringPanel(state)
    qtbot.addWidget(panel)
    panel.resize(480, 720)
    panel.show()
    return panel


def test_panel_and_box_targets_default_to_prefill_and_decode(qtbot, state):
    panel = _panel(qtbot, state)
    assert state.target.kind == "panel"
    assert not panel.decode_only.isChecked() and not panel.plan().decode_only
    state.target.set_box((0.0, 0.0, 40.0, 30.0))  # a drawn box: region steering, static too
    assert not panel.decode_only.isChecked()
    assert "prefill+decode" in panel.decode_only.toolTip()


def test_schedule_target_defaults_to_decode_only_and_back(qtbot, state):
    panel = _panel(qtbot, state)
    panel.target_kind.setCurrentText("schedule")
    panel.schedule_edit.setText("4,2,1")
    assert state.target.kind == "schedule"
    assert panel.decode_only.isChecked() and panel.plan().decode_only
    panel.target_kind.setCurrentText("panel")  # back to one panel: static again
    assert not panel.decode_only.isChecked()
    state.target.set_schedule("3,1", 4)  # the model changing (a reopened setting) counts the same
    assert panel.decode_only.isChecked()


def test_a_tick_by_hand_is_kept_until_follow_the_target(qtbot, state):
    panel = _panel(qtbot, state)
    qtbot.mouseClick(panel.decode_only, LEFT)  # panel target: the user wants decode only anyway
    assert panel.decode_only.isChecked() and panel.decode_only_chosen
    state.target.set_schedule("4,2,1", 5)
    state.target.set_panel(2)
    state.target.set_box((0.0, 0.0, 40.0, 30.0))
    assert panel.decode_only.isChecked() and panel.plan().decode_only  # kept through every target
    qtbot.mouseClick(panel.decode_only, LEFT)
    state.target.set_schedule("4,2,1", 5)
    assert not panel.decode_only.isChecked()  # unticked by hand on a schedule: kept too
    (follow,) = panel.decode_only.actions()
    follow.trigger()  # the reset: the schedule's default again, and it follows from now on
    assert panel.decode_only.isChecked() and not panel.decode_only_chosen
    state.target.set_panel(0)
    assert not panel.decode_only.isChecked()


def test_a_live_switch_during_a_run_leaves_the_checkbox(qtbot, state):
    panel = _panel(qtbot, state)
    state.target.set_schedule("4,2,1", 5)
    state.status.set_busy(True)  # a scheduled run is going
    state.target.set_panel(5)  # the user presses 6 while it streams
    assert panel.decode_only.isChecked()  # what the run started with
    state.status.set_busy(False)  # the run ended: the panel's default now shows
    assert not panel.decode_only.isChecked()


def _steer(qtbot, win):
    with qtbot.waitSignal(win.controller.run_finished, timeout=60000):
        qtbot.mouseClick(win.steering_panel.steer_button, LEFT)
    qtbot.waitUntil(lambda: not win.controller.busy, timeout=60000)
    return win.state.session.runs[-1]


def _target_share_at_step0(reader, run_id, heads, target) -> float:
    """The steered heads' image attention on the target at step 0 (the prefill's last row)."""
    _, per_region = reader.image_attention(run_id, 0, heads)
    return float(per_region[target] / per_region.sum())


def test_the_run_records_the_checkbox_and_the_bias_follows_it(qtbot, demo_window):
    from gaze_explorer.storage import SessionReader

    win = demo_window
    s, panel = win.state, win.steering_panel
    s.heads.set_custom([(0, 0), (1, 1), (2, 3)])
    s.heads.set_kind("custom")
    panel.max_tokens.setValue(3)
    s.target.set_panel(3)
    shown = [panel.decode_only.isChecked()]
    default_run = _steer(qtbot, win)  # the panel's default: prefill+decode
    qtbot.mouseClick(panel.decode_only, LEFT)  # decode only, by hand
    shown.append(panel.decode_only.isChecked())
    by_hand_run = _steer(qtbot, win)
    s.target.set_schedule("4,2", 2)
    shown.append(panel.decode_only.isChecked())  # the user's tick, kept for the schedule
    schedule_run = _steer(qtbot, win)
    assert shown == [False, True, True]
    win.controller.recorder.close()
    with SessionReader(s.session.path) as reader:
        stored = [
            reader.run_info(run.run_id).plan["decode_only"]
            for run in (default_run, by_hand_run, schedule_run)
        ]
        assert stored == shown
        # what was stored is what ran: with the bias on the prefill, the steered heads' step-0 row
        # is on panel 4; decode only leaves that row unsteered
        heads = s.heads.active
        assert _target_share_at_step0(reader, default_run.run_id, heads, 3) > 0.99
        unbiased = _target_share_at_step0(reader, by_hand_run.run_id, heads, 3)
        assert unbiased < 0.9 and not np.isclose(unbiased, 1.0)

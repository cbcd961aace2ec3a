"""A live switch during a scheduled run on the demo model: pressing a panel key while tokens stream
takes effect at the next token, holds until the schedule's next switch point, is recorded with
source "live" (in the run and the session file) and is marked ◆ on the timeline."""

from __future__ import annotations

import numpy as np
from pacing import pace
from PySide6 import QtCore

from gaze_explorer.core.steering import LiveSchedule, Schedule
from gaze_explorer.demo.prompts import NARRATION_PROMPT

EVERY = 30
SCHEDULE = (3, 1, 0)  # panels 4, 2, 1


def schedule_target(step: int) -> int:
    return Schedule(SCHEDULE, EVERY).target_at(step)


def test_live_switch_in_a_schedule_holds_until_the_next_switch_point(qtbot, demo_window):
    from gaze_explorer.storage import SessionReader

    win = demo_window
    s = win.state
    s.heads.set_kind("all")
    s.target.set_schedule(",".join(str(t + 1) for t in SCHEDULE), EVERY)
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(3 * EVERY + 10)
    panel.ignore_eos.setChecked(True)  # the demo narration would end before the schedule does
    qtbot.mouseClick(panel.steer_button, QtCore.Qt.MouseButton.LeftButton)
    assert panel.generation_options().ignore_eos
    run = s.session.runs[-1]
    pace(win.controller.workers[-1], run)
    qtbot.waitUntil(lambda: run.n_steps >= 4, timeout=60000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_6)  # panel 6, live, while the schedule is on panel 4
    assert any("until the schedule's next switch" in m for m, _ in win.messages)
    qtbot.waitUntil(lambda: run.status != "running", timeout=120000)
    assert run.status == "finished"

    live = [sw for sw in run.switches if sw.source == "live"]
    assert len(live) == 1 and live[0].to == 5
    start = live[0].step
    assert start >= 4 and live[0].previous == schedule_target(start)
    # the schedule's next switch point (normally 30: the key is pressed a few tokens in)
    stop = LiveSchedule(Schedule(SCHEDULE, EVERY)).next_switch_point(start) or run.n_steps
    expected = [5 if start <= k < stop else schedule_target(k) for k in range(run.n_steps)]
    assert run.targets == expected
    if stop < run.n_steps:  # the schedule takes over again there, recorded as a scheduled switch
        assert (stop, 5, schedule_target(stop), "schedule") in [
            (w.step, w.previous, w.to, w.source) for w in run.switches
        ]
    # the steered heads really look at the live panel while it holds, then back at the schedule's
    reader = SessionReader(s.session.path)
    for k in sorted({start, stop - 1, min(stop, run.n_steps - 1)}):
        _, per_region = reader.image_attention(run.run_id, k, s.heads.active)
        assert int(np.argmax(per_region)) == expected[k]
    # the session file keeps the same switches, and the timeline marks the live one with ◆
    info = reader.run_info(run.run_id)
    assert [(sw.step, sw.source) for sw in info.switches] == [(sw.step, sw.source) for sw in run.switches]
    track = win.timeline_view.tracks[0]
    qtbot.waitUntil(lambda: list(track.live_item.getData()[0]) == [start], timeout=5000)
    assert {EVERY, 2 * EVERY} <= set(track.scheduled_item.getData()[0])
    reader.close()

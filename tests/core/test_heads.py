"""core/heads and core/steering: top-K, random controls, files, schedules, live target."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import HeadSpecError, ScheduleError
from gaze_explorer.core.heads import (
    HeadSet,
    load_head_list,
    random_control_heads,
    save_head_list,
    top_k_heads,
)
from gaze_explorer.core.steering import LiveTarget, SwitchRecorder, parse_schedule


def test_top_k_random_controls_and_files(tmp_path):
    scores = np.arange(40, dtype=float).reshape(4, 10)
    top = top_k_heads(scores, 3)
    assert top.heads == ((3, 7), (3, 8), (3, 9))
    ctrl = random_control_heads(scores, 2, seed=1, percentile=10, exclude=top.heads)
    assert all(scores[h] <= np.percentile(scores, 10) for h in ctrl.heads)
    assert ctrl == random_control_heads(scores, 2, seed=1, percentile=10, exclude=top.heads)
    for name in ("r.json", "r.csv"):
        save_head_list(tmp_path / name, top, scores)
        assert load_head_list(tmp_path / name) == HeadSet(name.split(".")[0], top.heads)
    assert load_head_list(tmp_path / "r.json", limit=1).heads == ((3, 9),)
    with pytest.raises(HeadSpecError, match="out of range"):
        HeadSet("x", ((5, 0),)).validate(4, 10)


def test_schedule_and_live_target():
    sched = parse_schedule("4,2,1", 6, 2)
    assert [sched.target_at(s) for s in range(7)] == [3, 3, 1, 1, 0, 0, 0]
    with pytest.raises(ScheduleError):
        parse_schedule("7", 6, 2)
    live = LiveTarget(0)
    rec = SwitchRecorder(live, "live")
    rec.target_for_step(0)
    live.set(2)
    assert rec.target_for_step(1) == 2 and rec.switches[0].step == 1

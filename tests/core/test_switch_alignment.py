"""Schedule timing: the project's alignment (delay 0) and the authors' (each switch one step later)."""

from __future__ import annotations

import pytest

from gaze_explorer.core.errors import ScheduleError
from gaze_explorer.core.steering import SWITCH_ALIGNMENTS, Schedule, SwitchRecorder


def _switch_steps(schedule: Schedule, n_steps: int) -> list[int]:
    recorder = SwitchRecorder(schedule, "schedule")
    for step in range(n_steps):
        recorder.target_for_step(step)
    return [s.step for s in recorder.switches]


def test_project_alignment_switches_at_multiples_of_every_authors_one_step_later():
    assert SWITCH_ALIGNMENTS == {"project": 0, "authors": 1}
    project = Schedule((3, 0, 2), 4, SWITCH_ALIGNMENTS["project"])
    authors = Schedule((3, 0, 2), 4, SWITCH_ALIGNMENTS["authors"])
    assert _switch_steps(project, 14) == [4, 8]
    assert _switch_steps(authors, 14) == [5, 9]
    assert [authors.target_at(s) for s in range(6)] == [3, 3, 3, 3, 3, 0]
    assert authors.target_at(100) == 2  # the last target stays


def test_delay_is_recorded_only_when_set_and_must_not_be_negative():
    assert "delay" not in Schedule((0, 1), 2).to_dict()
    assert Schedule((0, 1), 2, 1).to_dict()["delay"] == 1
    with pytest.raises(ScheduleError):
        Schedule((0, 1), 2, -1)

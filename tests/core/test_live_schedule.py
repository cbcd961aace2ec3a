"""LiveSchedule: a live switch overrides a schedule from the next step to its next switch point,
and the switch recorder tells live switches from scheduled ones."""

from __future__ import annotations

import threading
import time

from gaze_explorer.core.steering import LiveSchedule, Schedule, SwitchRecorder


def _drive(source: LiveSchedule, n: int, live_at: dict[int, int]) -> tuple[list, SwitchRecorder]:
    """Step the recorder like the generation loop; ``live_at[s] = t`` sets t live after step s."""
    rec = SwitchRecorder(source, "schedule")
    targets = []
    for step in range(n):
        targets.append(rec.target_for_step(step))
        if step in live_at:
            source.set(live_at[step])
    return targets, rec


def test_live_switch_holds_until_the_next_switch_point():
    sched = LiveSchedule(Schedule((3, 1, 0), switch_every=4))
    targets, rec = _drive(sched, 14, {5: 5})
    #                 segment 0    | segment 1, live 5 from step 6 | segment 2 (last target stays)
    assert targets == [3, 3, 3, 3, 1, 1, 5, 5, 0, 0, 0, 0, 0, 0]
    assert [(s.step, s.previous, s.to, s.source) for s in rec.switches] == [
        (4, 3, 1, "schedule"),
        (6, 1, 5, "live"),
        (8, 5, 0, "schedule"),
    ]
    assert sched.next_switch_point(6) == 8 and sched.next_switch_point(9) is None


def test_live_switch_after_the_last_switch_point_holds_to_the_end():
    sched = LiveSchedule(Schedule((2, 4), switch_every=3))
    targets, rec = _drive(sched, 10, {4: 0, 7: 1})
    assert targets == [2, 2, 2, 4, 4, 0, 0, 0, 1, 1]
    assert [(s.step, s.source) for s in rec.switches] == [(3, "schedule"), (5, "live"), (8, "live")]
    assert sched.get() == 1 and sched.to_dict() == {"targets": [3, 5], "switch_every": 3}


def test_set_is_thread_safe_and_the_last_set_before_a_step_wins():
    """A GUI thread sets 1..N while this thread steps the schedule, both at once: each live step
    takes the newest value set so far, the override holds in between, and the last set wins."""
    n_sets = 2000
    sched = LiveSchedule(Schedule((0,), switch_every=2))  # one target: a live switch holds to the end
    started, gui_done = threading.Barrier(2), threading.Event()

    def gui() -> None:
        started.wait()
        for k in range(1, n_sets + 1):
            sched.set(k)
            time.sleep(0)  # let the stepping thread run between sets (the GIL would batch them)
        gui_done.set()

    thread = threading.Thread(target=gui)
    thread.start()
    started.wait()
    targets: list[int | None] = []
    while not gui_done.is_set():  # the generation loop, stepping while the GUI sets
        targets.append(sched.target_at(len(targets)))
        time.sleep(0)
    for _ in range(3):  # and a few steps after the last set
        targets.append(sched.target_at(len(targets)))
    thread.join()

    live = [i for i in range(len(targets)) if sched.switch_source(i) == "live"]
    assert live, "no live switch landed while the GUI thread was setting"
    assert set(targets) <= {0, *range(1, n_sets + 1)}
    live_values = [targets[i] for i in live]
    assert live_values == sorted(set(live_values))  # each live step saw a newer set than the last
    live_steps = set(live)
    for i in range(live[0] + 1, len(targets)):
        if i not in live_steps:
            assert targets[i] == targets[i - 1]  # between live steps the override holds
    assert targets[-1] == n_sets  # the last set before a step wins
    sched.set(n_sets + 1)
    assert sched.get() == n_sets + 1 and sched.target_at(len(targets)) == n_sets + 1
    assert sched.switch_source(len(targets)) == "live" and sched.switch_source(0) is None

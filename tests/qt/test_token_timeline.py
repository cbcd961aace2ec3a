"""The token timeline: chips, slider, keys, trajectory image and switch markers."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from gaze_explorer.core.scoring import step_trajectory
from gaze_explorer.core.steering import Switch
from gaze_explorer.qt.views.token_timeline import TokenTimelineView


def _shown(qtbot, state):
    view = TokenTimelineView(state)
    qtbot.addWidget(view)
    view.resize(800, 400)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_timeline_draws_tokens_trajectory_and_markers(qtbot, state):
    view = _shown(qtbot, state)
    run = state.session.shown_run
    assert [c.text() for c in view.chips] == [t.strip() for t in run.tokens]  # as plot_style.token_label
    expected = step_trajectory(
        run.rows_at, run.n_steps, state.session.grid, state.session.regions, state.heads.active
    )
    assert np.allclose(view.tracks[0].data, expected.T)
    xs, _ = view.tracks[0].live_item.getData()
    assert list(xs) == [3]  # the live switch recorded at step 3
    # the comparison run goes under it
    state.session.show_runs(1, 0)
    qtbot.waitUntil(lambda: view.tracks[1].data is not None)
    assert view.tracks[1].plot.isVisible()
    base = state.session.runs[0]
    exp0 = step_trajectory(base.rows_at, 6, state.session.grid, state.session.regions, state.heads.active)
    assert np.allclose(view.tracks[1].data, exp0.T)
    # a streamed token and a scheduled switch appear after run_updated
    run = state.session.runs[1]
    rows5 = run.rows_at(5)
    run.tokens.append("new ")
    run.switches.append(Switch(6, 1, 2, "schedule"))
    run.rows_at = lambda s, old=run.rows_at: rows5 if s == 6 else old(s)
    state.session.notify_run(1)
    qtbot.waitUntil(lambda: len(view.chips) == 7)
    assert view.tracks[0].data.shape[1] == 7
    xs, _ = view.tracks[0].scheduled_item.getData()
    assert list(xs) == [6]
    # the step line follows the shared step
    state.step.set_n_steps(7)
    state.step.set_step(5)
    assert view.tracks[0].step_line.value() == 5 and view.slider.value() == 5


def test_slider_and_keys_move_the_step(qtbot, state):
    view = _shown(qtbot, state)
    view.slider.setValue(3)
    assert state.step.step == 3
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Right)
    assert state.step.step == 4
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Home)
    assert state.step.step == 0
    qtbot.keyClick(view, QtCore.Qt.Key.Key_End)
    assert state.step.step == 5
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Left, QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert state.step.step == 0
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Space)
    assert state.step.playing
    qtbot.waitUntil(lambda: not state.step.playing, timeout=3000)
    assert state.step.step == 5

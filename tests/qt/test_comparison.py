"""The comparison view: runs side by side on one step axis (label, answer, staircase, tokens under
their columns), a scheduled run split into judged segments at its switch steps, and "Compare
conditions" running baseline / top-K gaze / random control / all heads on the demo model."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtGui, QtWidgets

from gaze_explorer.core.comparison import comparison_rows, segment_record, split_segments
from gaze_explorer.core.judges import AttributeJudge, PanelTruth
from gaze_explorer.core.scoring import step_trajectory
from gaze_explorer.core.state import RunData
from gaze_explorer.qt.views.comparison import PLOT_EXTRA_PX, ROW_PX, ComparisonView
from gaze_explorer.qt.widgets.plot_style import token_label


def _wide(qtbot, view) -> None:
    qtbot.addWidget(view)
    view.resize(2400, 900)  # wide enough for every token of the short runs under its column
    view.show()
    qtbot.waitExposed(view)


def test_runs_side_by_side_on_one_step_axis(qtbot, state):
    session = state.session
    first = session.runs[0]  # a shorter run (its first 4 steps): the step axis is the longest run's
    short = RunData(
        "short",
        tokens=first.tokens[:4],
        targets=first.targets[:4],
        status="finished",
        rows_at=first.rows_at,
        regions=first.regions,
        prompt_len=first.prompt_len,
    )
    session.add_run(short)
    view = ComparisonView(state)
    _wide(qtbot, view)
    view.set_runs([2, 0, 1])

    assert [r.index for r in view.rows] == [2, 0, 1]
    assert view.n_steps == 6 == max(session.runs[i].n_steps for i in (0, 1, 2))
    ranges = {tuple(np.round(p.plot.viewRange()[0], 6)) for p in view.panels[:3]}
    assert len(ranges) == 1  # x-linked: one step axis
    lo, hi = ranges.pop()
    assert lo <= -0.5 and 5.5 <= hi < 6.0
    for panel, i in zip(view.panels, (2, 0, 1), strict=False):
        run = session.runs[i]
        assert run.name in panel.title.text() and panel.answer.text() == run.text
        expected = step_trajectory(run.rows_at, run.n_steps, session.grid, run.regions, state.heads.active)
        np.testing.assert_allclose(panel.data, expected.T)  # drawn as [region, step]
        np.testing.assert_allclose(panel.image_item.image, expected.T)
        uncached = comparison_rows(session.runs, [i], session.grid, session.regions, state.heads.active)
        np.testing.assert_allclose(uncached[0].staircase, expected)  # the view's cache gives the same
        panel.token_axis.update()
        assert panel.token_axis.ticks == [(k, token_label(t)) for k, t in enumerate(run.tokens)]
    # a run with a switch lists its segments; the run without one does not
    assert view.rows[1].switch_steps == [3] and not view.panels[0].segments.isVisible()
    assert view.panels[1].segments.isVisible() and "3–5" in view.panels[1].segments.text()
    # a different head set redraws the staircases
    state.heads.set_kind("all")
    qtbot.waitUntil(
        lambda: (
            view.rows
            and view.rows[0].staircase is not None
            and np.allclose(
                view.panels[1].data,
                step_trajectory(
                    session.runs[0].rows_at, 6, session.grid, session.regions, state.heads.active
                ).T,
            )
        )
    )


def test_plots_share_a_tall_dock_and_show_whole_token_labels(qtbot, state):
    session = state.session
    base = session.runs[0]
    live = RunData(
        "live",
        tokens=[],
        targets=[],
        status="running",
        rows_at=base.rows_at,
        regions=base.regions,
        prompt_len=base.prompt_len,
    )
    session.add_run(live)
    view = ComparisonView(state)
    qtbot.addWidget(view)
    view.resize(1200, 300)  # short: each plot at its least height, the dock scrolls
    view.show()
    qtbot.waitExposed(view)
    view.set_runs([2])  # the first plot exists before its run has a token (Compare conditions)
    for token in base.tokens:
        live.tokens.append(token)
        live.targets.append(3)
        session.run_updated.emit(2)
        qtbot.wait(120)  # past the view's redraw gap: each token is drawn
    live.status = "finished"
    view.set_runs([2, 1])
    least = len(session.regions) * ROW_PX + PLOT_EXTRA_PX
    qtbot.waitUntil(lambda: all(p.plot_widget.height() == least for p in view.panels[:2]))
    for panel in view.panels[:2]:
        # every run's token row, the first one's too, is as tall as a label with descenders
        axis = panel.plot.getAxis("bottom")
        font = axis.style.get("tickFont") or QtGui.QFont()
        assert axis.geometry().height() >= QtGui.QFontMetrics(font).height() + axis.style["tickTextOffset"][1]
    view.resize(1200, 1000)  # tall (a 1080p screen): the plots share the free height
    qtbot.waitUntil(lambda: all(p.plot_widget.height() > 1.5 * least for p in view.panels[:2]))
    for panel in view.panels[:2]:  # the text keeps its own height; the growth went to the plot
        assert panel.answer.height() <= panel.answer.heightForWidth(panel.answer.width()) + 2


def test_split_segments_at_switches_judged():
    truth = PanelTruth(attributes=[{"object": "circle"}, {"object": "star"}, {"object": "square"}])
    tokens = ["a ", "circle ", "here ", "a ", "star ", "there ", "and ", "square"]
    targets = [0, 0, 0, 1, 1, 1, 2, 2]
    segments = split_segments(tokens, targets, [3, 6], truth)
    assert [(s.start, s.stop, s.target) for s in segments] == [(0, 3, 0), (3, 6, 1), (6, 8, 2)]
    assert [s.judged for s in segments] == [0, 1, 2] and [s.credit for s in segments] == [1.0, 1.0, 1.0]
    assert "".join(s.text for s in segments) == "".join(tokens)
    wrong = split_segments(tokens, [2] * 8, [4], truth)  # star lands in the first segment now
    assert [(s.target, s.judged, s.credit) for s in wrong] == [(2, 0, 0.0), (2, 1, 0.0)]
    assert segments[1].to_dict() == {
        "start": 3,
        "stop": 6,
        **segment_record("a star there ", 1, AttributeJudge().judge("a star there ", truth)),
    }


@pytest.fixture
def strip_truth():
    from gaze_explorer.qt.app import demo_strip

    strip = demo_strip()
    return strip, PanelTruth(strip.attributes, strip.captions)


def test_scheduled_demo_run_split_into_judged_segments(qtbot, demo_window, strip_truth):
    from gaze_explorer.demo.prompts import NARRATION_PROMPT

    win, (strip, truth) = demo_window, strip_truth
    win.controller.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths, truth)
    s = win.state
    s.heads.set_kind("all")
    s.target.set_schedule("4,2,1", 8)
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(24)
    panel.ignore_eos.setChecked(True)
    with qtbot.waitSignal(win.controller.run_finished, timeout=120000):
        win.steer()
    qtbot.waitUntil(lambda: not win.controller.busy, timeout=60000)
    run = s.session.runs[-1]
    assert run.status == "finished" and run.n_steps == 24
    win.comparison_view.set_runs([len(s.session.runs) - 1])
    row = win.comparison_view.rows[0]
    assert row.switch_steps == [sw.step for sw in run.switches] == [8, 16]
    assert [(g.start, g.stop, g.target) for g in row.segments] == [(0, 8, 3), (8, 16, 1), (16, 24, 0)]
    table = win.comparison_view.panels[0].segments.text()
    for g in row.segments:
        assert g.text == "".join(run.tokens[g.start : g.stop])
        verdict = AttributeJudge().judge(g.text, truth)  # the offline judge of `evaluate dynamic`
        assert g.judgement == verdict
        judged = "no panel" if verdict.choice is None else f"P{verdict.choice + 1}"
        assert f"{g.start}–{g.stop - 1}</td><td>P{g.target + 1}</td>" in table
        if verdict.choice is not None and not verdict.degenerate:
            assert f"<td>{judged} {'✓' if g.credit else '✗'}</td>" in table


def test_compare_conditions_runs_the_four_conditions(qtbot, demo_window):
    from gaze_explorer.inference.evaluation import HeadConditions

    win = demo_window
    c, s = win.controller, win.state
    with qtbot.waitSignal(c.discovery_finished, timeout=120000):
        c.discover("current")
    qtbot.waitUntil(lambda: not c.busy, timeout=60000)
    s.target.set_panel(1)
    win.steering_panel.prompt_edit.setPlainText("What is in panel 2?")
    win.steering_panel.max_tokens.setValue(6)
    before = len(s.session.runs)
    run_menu = next(m for m in win.menuBar().findChildren(QtWidgets.QMenu) if m.title() == "&Run")
    action = next(a for a in run_menu.actions() if a.text() == "Compare conditions")
    started: list = []
    c.condition_started.connect(started.append)
    with qtbot.waitSignal(c.conditions_compared, timeout=240000) as done:
        action.trigger()
    qtbot.waitUntil(lambda: not c.busy, timeout=60000)
    indices = done.args[0]
    assert indices == list(range(before, before + 4))
    assert started == [indices[:n] for n in range(1, 5)]  # the comparison grew as each run started
    runs = [s.session.runs[i] for i in indices]
    assert all(r.status == "finished" for r in runs)
    expected = HeadConditions.from_scores(
        s.heads.gaze_scores, s.heads.k, seed=s.heads.seed, pool=s.heads.pool
    )
    assert runs[0].params["plan"] is None
    for run, cond in zip(runs[1:], ("gaze", "random", "all"), strict=True):
        plan = run.params["plan"]
        assert [tuple(h) for h in plan["heads"]] == list(expected.choices[cond].heads.heads)
        assert plan["choice"]["spec"] == expected.choices[cond].spec
        assert run.params["target"] == 1
    k = s.heads.k
    assert [r.name for r in runs] == ["baseline", f"top-{k} gaze → 2", f"random-{k} → 2", "all → 2"]
    view = win.comparison_view
    assert view.indices == indices and [r.label for r in view.rows] == [r.name for r in runs]
    assert view.n_steps == max(r.n_steps for r in runs)
    # selecting runs in the session browser (Ctrl+click) compares them too
    win.session_view.select_run(indices[0])
    win.session_view.select_run(indices[2], add=True)
    win.session_view.select_run(indices[1], add=True)
    assert view.indices == [indices[0], indices[2], indices[1]]


def test_compare_conditions_needs_discovery_and_stops_with_stop(qtbot, demo_window):
    win = demo_window
    c, s = win.controller, win.state
    win.steering_panel.prompt_edit.setPlainText("What is in panel 2?")
    win.steering_panel.max_tokens.setValue(300)
    win.steering_panel.ignore_eos.setChecked(True)  # long enough to be stopped
    win.compare_conditions()  # no gaze scores yet: a clear message, nothing runs
    assert not s.session.runs and any("run discovery first" in m for m, err in win.messages if err)
    with qtbot.waitSignal(c.discovery_finished, timeout=120000):
        c.discover("current")
    qtbot.waitUntil(lambda: not c.busy, timeout=60000)
    with qtbot.waitSignal(c.conditions_compared, timeout=120000) as done:
        win.compare_conditions()
        qtbot.waitUntil(lambda: s.session.runs and s.session.runs[-1].n_steps >= 2, timeout=60000)
        c.stop()  # the baseline is cut short and no further condition starts
    qtbot.waitUntil(lambda: not c.busy, timeout=60000)
    assert done.args[0] == [0] and len(s.session.runs) == 1 and s.session.runs[0].status == "cancelled"

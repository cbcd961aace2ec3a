"""Figure, head-list and run exports: written, readable, and carrying titles and labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtGui

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.heads import HeadSet, load_head_list
from gaze_explorer.core.scoring import overlay_heat, step_trajectory
from gaze_explorer.qt import export


def test_figures_in_three_formats(qtbot, state, tmp_path):
    scores = state.heads.gaze_scores
    fig = export.grid_figure(scores, "Gaze scores · test", state.heads.active)
    png = export.save_figure(fig, tmp_path / "grid.png")
    img = QtGui.QImage(str(png))
    assert not img.isNull() and img.width() >= 800
    svg = export.save_figure(fig, tmp_path / "grid.svg").read_text()
    assert "Gaze scores · test" in svg and "layer" in svg and "head" in svg
    pdf = export.save_figure(fig, tmp_path / "grid.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert not fig.isVisible()  # not left shown for a later event loop to paint
    run = state.session.shown_run
    grid, regions = state.session.grid, state.session.regions
    traj = step_trajectory(run.rows_at, run.n_steps, grid, regions, state.heads.active)
    tfig = export.trajectory_figure(
        traj, "Trajectory · steered", [f"P{i + 1}" for i in range(6)], run.tokens, [(3, "live")]
    )
    svg = export.save_figure(tfig, tmp_path / "traj.svg").read_text()
    assert "Trajectory · steered" in svg and "decode step" in svg and "P6" in svg
    heat = overlay_heat(run.rows_at(2), grid, state.heads.active)
    ofig = export.overlay_figure(state.session.image, grid, heat, regions, "Overlay · step 2")
    assert QtGui.QImage(str(export.save_figure(ofig, tmp_path / "ov.png"))).width() > 300
    mfig = export.matrix_figure(np.eye(6) * 0.5, "Panel matrix · L1H0")
    assert "queried panel" in export.save_figure(mfig, tmp_path / "m.svg").read_text()
    with pytest.raises(GazeExplorerError, match=r"use \.png"):
        export.save_figure(fig, tmp_path / "grid.gif")
    with pytest.raises(GazeExplorerError, match="does not exist"):
        export.save_figure(fig, tmp_path / "nope" / "grid.png")


def test_head_lists_and_run_json_read_back(state, tmp_path):
    heads = HeadSet("top-2", ((2, 2), (2, 3)))
    p = export.write_head_list(tmp_path / "heads.json", heads, state.heads.gaze_scores)
    data = json.loads(p.read_text())
    assert data == [{"layer": 2, "head": 3, "score": 11.0}, {"layer": 2, "head": 2, "score": 10.0}]
    assert load_head_list(p).heads == heads.heads
    c = export.write_head_list(tmp_path / "heads.csv", heads)
    assert load_head_list(c).heads == heads.heads
    with pytest.raises(GazeExplorerError, match="empty"):
        export.write_head_list(tmp_path / "e.json", HeadSet("x", ()))
    run = state.session.shown_run
    traj = step_trajectory(run.rows_at, run.n_steps, state.session.grid, state.session.regions, heads)
    out = export.write_json(tmp_path / "run.json", export.run_record(run, traj, ["a"] * 6, heads))
    back = json.loads(out.read_text())
    assert back["tokens"] == run.tokens and back["switches"][0]["step"] == 3
    assert np.allclose(np.array(back["trajectory"]["values"]), traj)


def test_exported_timeline_labels_tokens_without_overlap_and_shows_eos_as_the_app(qtbot, state, tmp_path):
    from PySide6 import QtGui

    from gaze_explorer.qt.widgets.plot_style import thinned_token_ticks, token_label

    assert [token_label(t) for t in ("", "\n", " ", " gray")] == ["∅", "⏎", "␣", "gray"]
    # 10 px per step, labels 3 px per character: the greedy pass keeps a label only past the last one
    ticks = thinned_token_ticks(["aaaaaaaaaa"] * 12 + [""], 10.0, lambda s: 3.0 * len(s))
    lefts = [i * 10 - 1.5 * len(t) for i, t in ticks]
    rights = [i * 10 + 1.5 * len(t) for i, t in ticks]
    assert all(lefts[k + 1] >= rights[k] + 6 for k in range(len(ticks) - 1))
    assert [i for i, _ in ticks] == [0, 4, 8, 12] and ticks[-1][1] == "∅"
    # the figure: many long tokens, none overlapping at the figure's font
    tokens = [f" token{i:03d}" for i in range(80)] + [""]
    traj = np.random.default_rng(0).random((len(tokens), 6))
    fig = export.trajectory_figure(traj, "t", [f"P{i + 1}" for i in range(6)], tokens)
    qtbot.addWidget(fig)
    export.save_figure(fig, tmp_path / "timeline.png")  # as the app does: built, then rendered
    axis = fig.getItem(1, 0).getAxis("bottom")
    shown = axis._tickLevels[0]
    assert 5 < len(shown) < len(tokens)
    metrics = QtGui.QFontMetrics(QtGui.QFont())
    px = (fig.width() - 200) / len(tokens)
    spans = [
        (i * px - metrics.horizontalAdvance(t) / 2, i * px + metrics.horizontalAdvance(t) / 2)
        for i, t in shown
    ]
    assert all(spans[k + 1][0] > spans[k][1] for k in range(len(spans) - 1))
    few = export.trajectory_figure(traj[:4], "t", [f"P{i + 1}" for i in range(6)], [" a", " b", ".", ""])
    qtbot.addWidget(few)
    export.save_figure(few, tmp_path / "few.png")
    assert few.getItem(1, 0).getAxis("bottom")._tickLevels[0] == [(0, "a"), (1, "b"), (2, "."), (3, "∅")]

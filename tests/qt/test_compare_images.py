"""Comparing runs made on different images of one session (issue 15): each run's staircase is read
on its own image's token grid and panels (here 3 panels on a 2 x 6 grid, and 4 panels on a 2 x 4 grid
at other sequence positions), whichever run is shown, and each names its image. Hand-written v2
session (the real SessionWriter); the expected staircases are the reader's own
(``SessionReader.trajectory``: the run's image grid and regions)."""

from __future__ import annotations

import json

import numpy as np
from handmade_sessions import IMAGE_A, IMAGE_B, discovery, write_session

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.qt.main_window import MainWindow
from gaze_explorer.storage import SessionReader

HEADS = HeadSet("test heads", ((0, 1), (2, 3), (3, 5)))


def _staircases(win) -> list[np.ndarray]:
    view = win.comparison_view
    view.refresh()
    return [np.asarray(p.data) for p in view.panels[: len(view.rows)]]


def test_each_compared_run_is_drawn_on_its_own_image(qtbot, tmp_path):
    path = write_session(tmp_path / "s.h5", (discovery(0, 5),))
    with SessionReader(path) as r:
        expected = {run: r.trajectory(run, HEADS).T for run in ("run_000", "run_001")}  # [region, step]
    assert [e.shape[0] for e in expected.values()] == [3, 4]
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path)), win.messages
    s = win.state
    s.heads.set_custom(HEADS.heads)
    s.heads.set_kind("custom")
    assert sorted(s.heads.active.heads) == sorted(HEADS.heads)
    ids = ("run_000", "run_001")
    for first, second in ((0, 1), (1, 0)):  # either run on screen: the other keeps its own image
        win.session_view.select_run(first)
        win.session_view.select_run(second, add=True)
        shown, compared = s.session.shown, s.session.compare
        assert sorted((shown, compared)) == [0, 1]
        assert np.array_equal(s.session.image, (IMAGE_A, IMAGE_B)[shown])
        view = win.comparison_view
        assert sorted(view.indices) == [0, 1]
        drawn = dict(zip(view.indices, _staircases(win), strict=True))
        for index, run_id in enumerate(ids):
            np.testing.assert_allclose(drawn[index], expected[run_id], rtol=1e-5, atol=1e-7)
        titles = {i: p.title.text() for i, p in zip(view.indices, view.panels, strict=False)}
        assert "image img_000 (3 panels)" in titles[0]
        assert "image b.png (4 panels)" in titles[1]
        assert "2 images" in view.hint.text()
        # the token timeline's tracks (shown, then compared) read the same staircases
        win.timeline_view.refresh()
        tracks = win.timeline_view.tracks
        np.testing.assert_allclose(tracks[0].data, expected[ids[shown]], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(tracks[1].data, expected[ids[compared]], rtol=1e-5, atol=1e-7)
    win.controller.shutdown()


def test_export_draws_a_run_on_its_own_image(tmp_path, monkeypatch):
    """``export --figure timeline/overlay`` of the run on the second image: its image, grid and panels
    (the figure builders' inputs are recorded on their way)."""
    from gaze_explorer.cli import main
    from gaze_explorer.qt import export as ex

    path = write_session(tmp_path / "s.h5", (discovery(0, 5),))
    drawn = {}

    def recording(name):
        real = getattr(ex, name)

        def build(*args, **kwargs):
            drawn[name] = args
            return real(*args, **kwargs)

        return build

    for name in ("trajectory_figure", "overlay_figure"):
        monkeypatch.setattr(ex, name, recording(name))
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps([{"layer": ly, "head": h} for ly, h in HEADS.heads]))
    base = ["export", "--session", str(path), "--run", "run_001", "--heads", str(heads)]
    assert main([*base, "--figure", "timeline", "--out", str(tmp_path / "t.png")]) == 0
    assert main([*base, "--figure", "overlay", "--step", "2", "--out", str(tmp_path / "o.png")]) == 0
    with SessionReader(path) as r:
        traj, _title, names = drawn["trajectory_figure"][:3]
        np.testing.assert_allclose(traj, r.trajectory("run_001", HEADS), rtol=1e-5, atol=1e-7)
        assert list(names) == ["P1", "P2", "P3", "P4"]
        image, grid, _heat, regions = drawn["overlay_figure"][:4]
        assert np.array_equal(image, IMAGE_B) and len(regions) == 4
        assert np.array_equal(grid.positions, r.grid_of("run_001").positions)

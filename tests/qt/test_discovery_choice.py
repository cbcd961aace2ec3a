"""Choosing one of a session's discoveries in the app (issue 15: "several discoveries may live in one
session; the newest is the default"): the Discovery dock's box lists them, the newest is shown on
reopening, choosing another redraws the grid, the summary and the top-K heads from its arrays
(runs untouched), the choice is saved with the selection and restored, a saved key the file no
longer holds falls back to the newest with a status message. Hand-written v2 sessions (the real
SessionWriter); a discovery made in the app (demo model) is added to the box and chosen."""

from __future__ import annotations

import json

import h5py
import numpy as np
from handmade_sessions import discovery, write_session
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.core.heads import choose_heads
from gaze_explorer.qt.main_window import MainWindow
from gaze_explorer.storage import SessionReader

OLD, NEW = discovery(0, 5), discovery(1, 24, reverse=True)


def _open(qtbot, path) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path)), win.messages
    win.state.grid_score_mode.set_mode("gaze")
    return win


def _grid_shows(qtbot, win, scores) -> None:
    """Wait until the head grid (its own coalesced redraw) draws ``scores``."""
    item = win.grid_view.image_item
    qtbot.waitUntil(lambda: item.image is not None and np.array_equal(item.image, scores), timeout=10000)


def _top10(scores) -> list:
    s = np.asarray(scores, dtype=np.float64)
    return sorted(choose_heads("gaze:10", *s.shape, scores=s).heads.heads)


def _choices(win) -> list[str]:
    combo = win.discovery_view.choice_combo
    return [combo.itemData(i) for i in range(combo.count())]


def test_the_newest_is_shown_an_older_one_can_be_chosen_and_the_choice_is_kept(qtbot, tmp_path):
    path = write_session(tmp_path / "s.h5", (OLD, NEW))
    with SessionReader(path) as r:
        labels = [d.label for d in r.discoveries()]
        old_scores = r.discovery_array("gaze_scores", "disc_000")
        new_scores = r.discovery_array("gaze_scores", "disc_001")
    assert not np.array_equal(old_scores, new_scores)
    win = _open(qtbot, path)
    s, combo = win.state, win.discovery_view.choice_combo
    assert _choices(win) == ["disc_000", "disc_001"]
    assert [combo.itemText(i) for i in range(combo.count())] == labels
    assert labels[1].startswith("disc_001 · demo · 24 strips · ")
    assert combo.currentData() == "disc_001" and combo.isEnabled()
    _grid_shows(qtbot, win, new_scores)
    s.heads.set_kind("top", k=10)
    assert sorted(s.heads.active.heads) == _top10(new_scores)
    runs_before = [(r.run_id, r.name, r.n_steps) for r in s.session.runs]
    shown_before = s.session.shown

    combo.setFocus()
    qtbot.keyClick(combo, QtCore.Qt.Key.Key_Up)  # the user picks the older discovery
    assert combo.currentData() == "disc_000" and s.discovery.key == "disc_000"
    _grid_shows(qtbot, win, old_scores)
    assert sorted(s.heads.active.heads) == _top10(old_scores)  # top-K of the chosen discovery
    assert "disc_000" in win.discovery_view.summary_label.text()
    assert "5 strip(s)" in win.discovery_view.summary_label.text()
    np.testing.assert_array_equal(s.discovery.matrices, OLD.matrices)
    assert [(r.run_id, r.name, r.n_steps) for r in s.session.runs] == runs_before
    assert s.session.shown == shown_before
    win.controller.shutdown()  # closing the window saves the selection
    with SessionReader(path) as r:
        assert r.ui_state()["discovery"] == "disc_000"

    again = _open(qtbot, path)
    assert again.discovery_view.choice_combo.currentData() == "disc_000"
    assert again.state.discovery.key == "disc_000"
    _grid_shows(qtbot, again, old_scores)
    again.controller.shutdown()


def test_a_saved_discovery_the_file_no_longer_holds_falls_back_to_the_newest(qtbot, tmp_path):
    path = write_session(tmp_path / "s.h5", (OLD, NEW), ui={"shown": "run_000", "discovery": "disc_007"})
    win = _open(qtbot, path)
    assert win.state.discovery.key == "disc_001"
    assert win.discovery_view.choice_combo.currentData() == "disc_001"
    _grid_shows(qtbot, win, NEW.scores)
    said = [text for text, _error in win.messages if "disc_007" in text]
    assert said and "newest" in said[0] and "disc_001" in said[0], win.messages
    win.controller.shutdown()


def test_a_version_1_session_lists_its_one_discovery(qtbot, tmp_path):
    import shutil
    from pathlib import Path

    v1 = Path(__file__).parents[1] / "data" / "session_v1.h5"
    path = tmp_path / "v1.h5"
    shutil.copy(v1, path)
    with SessionReader(path) as r:
        scores = r.gaze_scores()
        assert r.schema_version == 1 and scores is not None
    win = _open(qtbot, path)
    assert _choices(win) == ["derived"]
    assert win.discovery_view.choice_combo.currentData() == "derived"
    _grid_shows(qtbot, win, scores)
    win.controller.shutdown()


def test_a_discovery_made_in_the_app_is_added_and_chosen(qtbot, demo_window):
    win, c, s = demo_window, demo_window.controller, demo_window.state
    c.discover("current")
    qtbot.waitUntil(lambda: s.discovery.has_result and not c.busy, timeout=120000)
    assert _choices(win) == ["disc_000"] and s.discovery.key == "disc_000"
    first = np.array(s.heads.gaze_scores)
    strip = s.session.image.copy()
    c.set_image(Image.fromarray(np.ascontiguousarray(strip[:, ::-1])), 3, "second.png")
    c.discover("current")  # a second discovery, on another strip of the same session
    qtbot.waitUntil(lambda: s.discovery.key == "disc_001" and not c.busy, timeout=120000)
    combo = win.discovery_view.choice_combo
    assert _choices(win) == ["disc_000", "disc_001"] and combo.currentData() == "disc_001"
    second = np.array(s.heads.gaze_scores)
    assert not np.allclose(first, second)
    combo.setFocus()
    qtbot.keyClick(combo, QtCore.Qt.Key.Key_Up)
    with SessionReader(s.session.path) as r:
        stored = r.discovery_array("gaze_scores", "disc_000")
    _grid_shows(qtbot, win, stored)  # as stored (float32)
    np.testing.assert_allclose(stored, first, rtol=1e-6)
    path = s.session.path
    c.shutdown()
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["ui_json"])["discovery"] == "disc_000"

"""One truth on screen (issue 15), on the demo model: the image on screen is the one the next run
uses and is saved with; the status bar and the session path name what is loaded; a run switched
live gets a label that lists its switches; while a run streams the step label and the current chip
agree; a discovery made in the app is saved before any run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from pacing import pace
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.demo.prompts import NARRATION_PROMPT

V1_FILE = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"


def test_the_image_on_screen_is_the_one_the_next_run_uses(qtbot, demo_window, tmp_path):
    from gaze_explorer.storage import SessionReader

    win, c = demo_window, demo_window.controller
    other = Image.fromarray(np.full((120, 480, 3), 200, np.uint8))
    other.save(tmp_path / "my4panel.png")
    assert c.open_image(str(tmp_path / "my4panel.png"), 4)
    session = tmp_path / "strip.h5"
    shutil.copy(V1_FILE, session)  # a session made on a demo strip (version 1)
    assert win.open_session(str(session))
    with SessionReader(session) as r:
        strip = np.asarray(r.image)
    assert np.array_equal(np.asarray(c.pil_image), strip)
    c.generate("what happens", GenerationOptions(max_new_tokens=4))
    run = win.state.session.runs[-1]
    qtbot.waitUntil(lambda: run.status != "running", timeout=60000)
    assert run.status == "finished"
    assert not [m for m, err in win.messages if err], win.messages
    c.recorder.close()
    with SessionReader(session) as r:  # the new run went into the session on screen, upgraded
        assert np.array_equal(r.image, strip) and len(r.runs()) == 3 and r.schema_version == 2


def test_status_bar_and_session_path_name_what_is_loaded(qtbot, demo_window, tmp_path):
    win, c, s = demo_window, demo_window.controller, demo_window.state
    assert win.session_view.path_label.text() == "no session file"
    c.generate("what happens", GenerationOptions(max_new_tokens=30, ignore_eos=True))
    run = s.session.runs[-1]
    # the first run's session file is named as soon as the run is listed
    assert s.session.path and win.session_view.path_label.text() == s.session.path
    assert "ready" not in s.status.summary()  # not "ready" while the run streams
    qtbot.waitUntil(lambda: run.status != "running", timeout=60000)
    assert "ready" in s.status.summary()
    c.recorder.close()
    path = s.session.path
    assert win.open_session(path)  # a session opened while the model is loaded
    summary = win.status_label.text()
    assert "no model loaded" not in summary and "demo" in summary and Path(path).name in summary


def test_a_run_switched_live_is_labelled_with_its_switches(qtbot, demo_window):
    win, s = demo_window, demo_window.state
    s.heads.set_kind("top", k=10)
    assert s.heads.gaze_scores is None
    s.heads.set_kind("all")
    s.target.set_panel(3)
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(60)
    panel.ignore_eos.setChecked(True)
    qtbot.mouseClick(panel.steer_button, QtCore.Qt.MouseButton.LeftButton)
    run = s.session.runs[-1]
    pace(win.controller.workers[-1], run)
    qtbot.waitUntil(lambda: run.n_steps >= 4, timeout=60000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_2)
    qtbot.waitUntil(lambda: len(run.switches) >= 1, timeout=60000)
    qtbot.waitUntil(lambda: run.n_steps >= run.switches[0].step + 3, timeout=60000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_6)
    qtbot.waitUntil(lambda: run.status != "running", timeout=120000)
    a, b = (sw.step for sw in run.switches)
    assert [sw.to for sw in run.switches] == [1, 5]
    assert run.name == f"all → 4 → 2 (live @{a}) → 6 (live @{b})"
    assert win.session_view.list.item(len(s.session.runs) - 1).text().split(" · ")[0] == run.name


def test_streaming_step_label_matches_the_current_chip(qtbot, demo_window):
    win, s = demo_window, demo_window.state
    timeline = win.timeline_view
    seen: list[tuple[int, int, str]] = []

    def check(step: int) -> None:
        run = s.session.shown_run
        if run is not None and run.status == "running" and step > 0:
            chip = timeline.chips[step].text() if step < len(timeline.chips) else "<no chip>"
            seen.append((step, len(timeline.chips), chip))

    s.step.step_changed.connect(check)
    win.controller.generate("what happens", GenerationOptions(max_new_tokens=25, ignore_eos=True))
    run = s.session.runs[-1]
    qtbot.waitUntil(lambda: run.status != "running", timeout=60000)
    assert seen, "the step never moved while the run streamed"
    assert all(step < n_chips for step, n_chips, _ in seen), seen  # the labelled step has its chip


def test_discovery_in_the_app_is_saved_before_any_run(qtbot, demo_window):
    from gaze_explorer.storage import SessionReader

    c, s = demo_window.controller, demo_window.state
    c.discover("current")
    qtbot.waitUntil(lambda: s.discovery.has_result and not c.busy, timeout=120000)
    path = c.recorder.current_path
    assert path is not None and s.session.path == path
    c.recorder.close()
    with SessionReader(path) as r:
        (disc,) = r.discoveries()
        np.testing.assert_array_equal(r.gaze_scores(), np.asarray(s.heads.gaze_scores, dtype=np.float32))
    assert disc.source == "current" and disc.params["n_panels"] == s.session.n_panels and disc.created


def test_prompt_dock_follows_the_selected_run(qtbot, demo_window):
    """Two baselines (the same name) on different prompts: selecting each run in the list shows
    its own prompt tokens in the dock, in the list the dock keeps and in the chips it draws."""
    from gaze_explorer.qt.views.prompt_tokens import fold_repeats

    win, c, s = demo_window, demo_window.controller, demo_window.state
    for prompt in ("what happens", NARRATION_PROMPT):
        c.generate(prompt, GenerationOptions(max_new_tokens=3))
        qtbot.waitUntil(lambda: s.session.runs[-1].status != "running" and not c.busy, timeout=60000)
    runs = s.session.runs
    assert runs[0].name == runs[1].name  # the header cannot tell them apart: the tokens must
    assert "describe" in runs[1].prompt_tokens and "describe" not in runs[0].prompt_tokens
    for index in (0, 1, 0):
        win.session_view.select_run(index)
        tokens = runs[index].prompt_tokens
        assert s.session.shown == index and win.prompt_view.tokens == tokens
        # the chips drawn: one per token (the image placeholders folded into one), '\n' is blank
        chips = [t.replace(" ", "·") for t in fold_repeats(tokens) if t.strip()]
        assert win.prompt_view.text.toPlainText().split() == chips


def test_a_version1_session_opens_with_a_note_of_what_it_lacks(qtbot, tmp_path):
    """The committed version-1 file (c0769b4's own code) opens without a model: its strip, its
    discovery on the grid, its runs with labels, the last run shown; a note says what it lacks."""
    from gaze_explorer.qt.main_window import MainWindow
    from gaze_explorer.storage import SessionReader

    path = tmp_path / "v1.h5"
    shutil.copy(V1_FILE, path)
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path))
    s = win.state
    with SessionReader(path) as r:
        np.testing.assert_array_equal(s.heads.gaze_scores, r.gaze_scores())
        np.testing.assert_array_equal(s.session.image, r.image)
    assert [run.name for run in s.session.runs] == ["baseline", "top-10 gaze → schedule 4,2,6 every 3"]
    assert s.session.shown == 1 and s.step.step == s.session.runs[1].n_steps - 1
    assert len(s.heads.active.heads) == 10  # the scheduled run's own heads, outlined
    notes = [m for m, err in win.messages if "older gaze-explorer" in m]
    assert notes and "discovery parameters" in notes[0] and "run names" in notes[0]
    assert "(session schema 1)" in notes[0]
    win.controller.shutdown()
    with SessionReader(path) as r:  # only looking at it does not write to it
        assert r.schema_version == 1


def test_renaming_a_run_is_saved(qtbot, tmp_path, monkeypatch):
    from gaze_explorer.qt.main_window import MainWindow
    from gaze_explorer.storage import SessionReader

    path = tmp_path / "v1.h5"
    shutil.copy(V1_FILE, path)
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path))
    derived = "top-10 gaze → schedule 4,2,6 every 3"
    assert "renamed" not in win.session_view.list.item(1).toolTip()  # its name is its label
    monkeypatch.setattr("PySide6.QtWidgets.QInputDialog.getText", lambda *a, **k: ("four, two, six", True))
    win.session_view.rename_dialog(1)
    assert win.session_view.list.item(1).text().startswith("four, two, six ·")
    assert win.session_view.list.item(1).toolTip().startswith(f"{derived} (renamed")  # still to be seen
    win.controller.shutdown()
    with SessionReader(path) as r:
        assert [i.display_name for i in r.runs()] == ["baseline", "four, two, six"]
        assert r.runs()[1].label == "top-10 gaze → schedule 4,2,6 every 3"


def test_opening_an_image_asks_its_panels_with_a_preview_and_resets_the_box(qtbot, demo_window, tmp_path):
    """Four panels between white gutters of unequal widths: the dialog proposes them and previews
    the cuts; accepted, the image has those panels, and the box drawn on the old image is gone."""
    from gaze_explorer.qt.widgets.panel_count_dialog import PanelCountDialog

    win, c, s = demo_window, demo_window.controller, demo_window.state
    widths = [100, 60, 140, 80]
    strip = np.full((64, sum(widths) + 3 * 8, 3), 255, np.uint8)
    x = 0
    for i, w in enumerate(widths):
        strip[:, x : x + w] = (40 * i, 120, 200 - 40 * i)
        strip[10 + i * 5, x : x + w] = 0  # texture: a panel column is not a gutter
        x += w + 8
    Image.fromarray(strip).save(tmp_path / "four.png")
    s.target.set_box((0.0, 0.0, 200.0, 64.0))
    seen = {}

    def answer(image, current):
        dialog = PanelCountDialog(image, current)
        qtbot.addWidget(dialog)
        seen["n"], seen["cuts"] = dialog.spin.value(), dialog.cuts()
        seen["preview"] = dialog.preview.pixmap().width()
        dialog.spin.setValue(4)
        return dialog.choice()

    c.ask_panels = answer
    win.overlay_view.image_open_requested.emit(str(tmp_path / "four.png"))
    assert seen["n"] == 4 and seen["preview"] > 0
    assert [round(v) for v in seen["cuts"]] == [104, 172, 320]  # the gutters' centres
    assert s.session.n_panels == 4 and s.session.image_name == "four.png"
    assert s.target.kind == "panel" and s.target.box is None
    panel_widths = [r.box[2] - r.box[0] for r in s.session.regions]
    assert panel_widths[2] > panel_widths[1]  # unequal widths, from the gutters
    c.ask_panels = lambda image, current: None  # cancelled: nothing changes
    assert not c.open_image(str(tmp_path / "four.png")) and s.session.n_panels == 4

"""One truth on screen (issue 15), on the demo model: the status bar says a run is generating, under
its current label, for as long as it streams (a failed model load meanwhile does not make it
"ready", a live switch relabels it); the session path label names the file a discovery made; a run
whose process was killed is marked unfinished in the Session runs list."""

from __future__ import annotations

import threading

import h5py
from pacing import pace
from PySide6 import QtCore

from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.demo.prompts import NARRATION_PROMPT


def hold_at(worker, step: int) -> threading.Event:
    """Hold the worker (on its own thread) once it has produced ``step``, until the returned event
    is set: the run is then certainly still streaming while the test looks."""
    release = threading.Event()

    def wait(event) -> None:
        if event.step >= step:
            release.wait(60)

    worker.token.connect(wait, QtCore.Qt.ConnectionType.DirectConnection)
    return release


def _held_run(qtbot, win, step: int = 3):
    """A 300-token baseline held on its worker thread once it has produced ``step``: ``(run,
    release)``; the run certainly still streams until ``release`` is set."""
    worker = win.controller.generate("what happens", GenerationOptions(max_new_tokens=300, ignore_eos=True))
    run = win.state.session.runs[-1]
    release = hold_at(worker, step)
    try:
        qtbot.waitUntil(lambda: run.n_steps >= step, timeout=60000)
    except BaseException:
        release.set()
        raise
    return run, release


def test_a_failed_model_load_mid_run_leaves_the_status_generating(qtbot, demo_window):
    win, c, s = demo_window, demo_window.controller, demo_window.state
    run, release = _held_run(qtbot, demo_window)
    try:
        c.load_model("/nonexistent/model")
        assert "loading /nonexistent/model" in s.status.activity and "generating" in s.status.activity
        qtbot.waitUntil(lambda: not any(w.name == "load-model" for w in c.workers), timeout=60000)
        assert run.status == "running"  # held: the run still streams
        summary = win.status_label.text()
        assert "could not load /nonexistent/model" in summary
        assert f"generating '{run.name}'" in summary and "ready" not in summary, summary
        assert "loading" not in summary, summary  # the load has ended
        assert any("/nonexistent/model" in m and err for m, err in win.messages), win.messages
        assert s.status.model == "demo"  # the loaded model stays
    finally:
        release.set()
    c.stop()
    qtbot.waitUntil(lambda: run.status != "running" and not c.busy, timeout=60000)
    assert "ready" in win.status_label.text() and "generating" not in win.status_label.text()


def test_a_model_loaded_mid_run_takes_over_when_the_run_ends(qtbot, demo_window):
    """The run keeps the model it started with and the screen keeps its grid while it streams; the
    new model is used once the run has ended."""
    win, c = demo_window, demo_window.controller
    before = c.loaded
    run, release = _held_run(qtbot, demo_window)
    try:
        c.load_model("demo")
        qtbot.waitUntil(lambda: not any(w.name == "load-model" for w in c.workers), timeout=60000)
        assert c.loaded is before and run.status == "running"  # not swapped under the run
        assert any("takes over when the current run ends" in m for m, _err in win.messages), win.messages
    finally:
        release.set()
    c.stop()
    qtbot.waitUntil(lambda: run.status != "running" and not c.busy, timeout=60000)
    qtbot.waitUntil(lambda: c.loaded is not before, timeout=10000)
    assert "ready" in win.status_label.text()


def test_the_status_bar_names_the_run_by_its_label_after_a_live_switch(qtbot, demo_window):
    win, s = demo_window, demo_window.state
    s.heads.set_kind("all")
    s.target.set_panel(3)
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(300)
    panel.ignore_eos.setChecked(True)
    qtbot.mouseClick(panel.steer_button, QtCore.Qt.MouseButton.LeftButton)
    run = s.session.runs[-1]
    worker = win.controller.workers[-1]
    pace(worker, run)
    assert f"generating '{run.name}'" in win.status_label.text()
    qtbot.waitUntil(lambda: run.n_steps >= 4, timeout=60000)
    release = hold_at(worker, 30)  # the run goes on past the switch, then waits for the test
    try:
        qtbot.keyClick(win, QtCore.Qt.Key.Key_2)
        qtbot.waitUntil(lambda: len(run.switches) >= 1, timeout=60000)
        assert run.status == "running"
        label = f"all → 4 → 2 (live @{run.switches[0].step})"
        assert run.name == label
        item = win.session_view.list.item(len(s.session.runs) - 1)
        qtbot.waitUntil(lambda: item.text().split(" · ")[0] == "● " + label, timeout=10000)  # the list
        assert f"generating '{label}'" in win.status_label.text(), win.status_label.text()
        win.controller.rename_run(len(s.session.runs) - 1, "my run")  # a rename while it streams too
        assert "generating 'my run'" in win.status_label.text(), win.status_label.text()
    finally:
        release.set()
    win.controller.stop()
    qtbot.waitUntil(lambda: run.status != "running" and not win.controller.busy, timeout=60000)


def test_the_session_path_names_the_file_a_discovery_made(qtbot, demo_window):
    win, c, s = demo_window, demo_window.controller, demo_window.state
    assert win.session_view.path_label.text() == "no session file"
    c.discover("current")
    assert "discovering" in win.status_label.text() and "ready" not in win.status_label.text()
    qtbot.waitUntil(lambda: s.discovery.has_result and not c.busy, timeout=120000)
    path = c.recorder.current_path
    assert path is not None and s.session.runs == []  # the discovery made the file, no run did
    assert win.session_view.path_label.text() == path
    summary = win.status_label.text()
    assert "ready · session " + path.rsplit("/", 1)[-1] in summary, summary


def test_a_killed_run_is_marked_unfinished_in_the_session_list(qtbot, demo_window, tmp_path):
    """A run whose writer process died mid-run (its stored status still 'running'): the reader
    reports it unfinished, and the list and its tooltip say so; a finished run has no mark."""
    from gaze_explorer.qt.main_window import MainWindow
    from gaze_explorer.storage import SessionReader

    c, s = demo_window.controller, demo_window.state
    for _ in range(2):
        c.generate("what happens", GenerationOptions(max_new_tokens=3))
        qtbot.waitUntil(lambda: s.session.runs[-1].status != "running" and not c.busy, timeout=60000)
    path = s.session.path
    c.recorder.close()
    killed = s.session.runs[1].run_id
    with h5py.File(path, "r+") as f:  # what a killed writer leaves: the status it began with
        f[f"runs/{killed}/status"][0] = 0  # schema STATUS_CODES: 0 = running
    with SessionReader(path) as r:
        assert [r.run_info(i).status for i in range(2)] == ["finished", "unfinished"]

    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(path)
    items = [win.session_view.list.item(i) for i in range(2)]
    assert items[1].text().startswith("⚠ unfinished · ")
    assert "killed" in items[1].toolTip()
    assert items[0].text().startswith(win.state.session.runs[0].name + " · ")  # finished: no mark
    assert "killed" not in items[0].toolTip()
    win.controller.shutdown()

"""The runs the Comparison dock shows are saved with the session and shown again on reopening, also
when they are not the selected runs (the four runs of "Compare conditions" are shown there without
being selected). Hand-written v2 session through the real SessionWriter; real windows."""

from __future__ import annotations

from handmade_sessions import discovery, write_session

from gaze_explorer.qt.main_window import MainWindow
from gaze_explorer.storage import SessionReader


def _opened(qtbot, path) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path)), win.messages
    return win


def test_the_comparison_comes_back_even_when_its_runs_are_not_selected(qtbot, tmp_path):
    path = write_session(tmp_path / "s.h5", (discovery(0, 5),))
    win = _opened(qtbot, path)
    win.session_view.select_run(1)  # one run selected: the timeline shows it
    win.comparison_view.set_runs([0, 1])  # as Compare conditions does: shown, not selected
    assert win.state.session.selected == [1] and win.state.session.compared == [0, 1]
    win.controller.shutdown()  # closing saves the selection and the comparison
    with SessionReader(path) as r:
        assert r.ui_state()["comparison"] == ["run_000", "run_001"]

    again = _opened(qtbot, path)
    assert again.comparison_view.indices == [0, 1] and again.state.session.selected == [1]
    assert [row.index for row in again.comparison_view.rows] == [0, 1]  # drawn, not only listed
    again.controller.shutdown()


def test_a_file_without_a_saved_comparison_shows_the_selection(qtbot, tmp_path):
    path = write_session(tmp_path / "s.h5", (discovery(0, 5),), ui={"selected": ["run_000", "run_001"]})
    win = _opened(qtbot, path)
    assert win.comparison_view.indices == [0, 1] and win.state.session.selected == [0, 1]
    win.controller.shutdown()

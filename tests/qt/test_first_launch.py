"""First launch: the xcb library check before Qt starts, and the empty states that say what to do."""

from __future__ import annotations

import numpy as np

from gaze_explorer.cli import run_app
from gaze_explorer.core.state import AppState
from gaze_explorer.qt import app
from gaze_explorer.qt.views.token_timeline import TokenTimelineView

FAKE = {"libc.so.6": "libc6", "libgaze-explorer-not-installed.so.7": "libgaze-not-here7"}


def test_missing_xcb_libraries_print_the_apt_command(monkeypatch, capsys):
    assert app.missing_xcb_packages(FAKE) == ["libgaze-not-here7"]
    monkeypatch.setattr(app, "XCB_LIBRARIES", FAKE)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.check_xcb_libraries() is None  # not xcb: nothing to check
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert app.qt_platform() == "xcb"
    message = app.check_xcb_libraries()
    assert "sudo apt-get install -y libgaze-not-here7" in message
    # the app stops with that message before Qt starts (exit 1, not Qt's abort 134)
    assert run_app(["--screenshot", "unused.png"]) == 1
    assert "sudo apt-get install -y libgaze-not-here7" in capsys.readouterr().err
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    assert app.qt_platform() == "wayland" and app.check_xcb_libraries() is None


def test_the_real_xcb_list_names_debian_packages():
    # the libraries Qt's error message did not name on a fresh Debian are in the list
    assert {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0"} <= set(
        app.XCB_LIBRARIES.values()
    )


def test_empty_timeline_says_what_to_do_first(qtbot, state):
    bare = AppState()
    first = TokenTimelineView(bare)
    qtbot.addWidget(first)
    first.refresh()
    assert "Generate baseline" in first.empty_label.text()
    # a baseline before discovery: the staircase is empty because no heads are selected yet
    view = TokenTimelineView(state)
    qtbot.addWidget(view)
    state.heads.set_gaze_scores(None)
    view.refresh()
    assert "run discovery" in view.empty_label.text() and view.tracks[0].data is None
    state.heads.set_gaze_scores(np.arange(12, dtype=float).reshape(3, 4))
    state.heads.set_kind("top", k=2)
    view.refresh()
    assert view.empty_label.text() == "" and view.tracks[0].data is not None

"""The session browser (pick / compare runs) and the discovery view (request, progress)."""

from __future__ import annotations

from PySide6 import QtCore

from gaze_explorer.core.state import RunData
from gaze_explorer.qt.views.discovery import DiscoveryView
from gaze_explorer.qt.views.session_browser import SessionBrowserView


def test_browser_lists_runs_and_picks_shown_and_compared(qtbot, state):
    view = SessionBrowserView(state)
    qtbot.addWidget(view)
    view.show()
    assert view.list.count() == 2 and "steered" in view.list.item(1).text()
    assert view.list.item(1).isSelected()  # the model shows the last run
    rect = view.list.visualItemRect(view.list.item(0))
    qtbot.mouseClick(view.list.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert state.session.shown == 0 and state.session.compare is None
    rect = view.list.visualItemRect(view.list.item(1))
    qtbot.mouseClick(
        view.list.viewport(),
        QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.ControlModifier,
        rect.center(),
    )
    assert state.session.shown == 1 and state.session.compare == 0
    state.session.add_run(RunData("cancelled one", tokens=["a"], status="cancelled"))
    assert view.list.count() == 3 and "cancelled" in view.list.item(2).text()
    assert view.list.item(2).isSelected()


def test_discovery_view_requests_and_shows_progress(qtbot, state):
    view = DiscoveryView(state)
    qtbot.addWidget(view)
    view.show()
    view.source_combo.setCurrentIndex(1)
    view.folder_edit.setText("/tmp/strips")
    with qtbot.waitSignal(view.discovery_requested) as blocker:
        qtbot.mouseClick(view.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert blocker.args == ["folder", "/tmp/strips"]
    state.status.set_progress("discovery", 3, 10)
    assert view.progress.value() == 3 and view.progress.maximum() == 10
    assert view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    with qtbot.waitSignal(view.cancel_requested):
        qtbot.mouseClick(view.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    state.status.set_progress("discovery", 10, 10)
    assert view.run_button.isEnabled()

"""Esc while a span is shown: back to per-step mode (the timeline and the span list use it).

Esc is also the window's Stop key (a window shortcut). A view that has the focus while a span is
shown claims Esc first (``ShortcutOverride``), so the key clears the span instead of stopping a run.
"""

from __future__ import annotations

from PySide6 import QtCore

from gaze_explorer.core.state import AppState


def is_span_escape(event: QtCore.QEvent, state: AppState) -> bool:
    """Whether ``event`` (a ShortcutOverride or KeyPress) is Esc while a span is shown."""
    return (
        event.type() in (QtCore.QEvent.Type.ShortcutOverride, QtCore.QEvent.Type.KeyPress)
        and event.key() == QtCore.Qt.Key.Key_Escape
        and state.spans.selection is not None
    )


def claim_span_escape(event: QtCore.QEvent, state: AppState | None) -> bool:
    """For a view's ``event()``: accept the ShortcutOverride of a span Esc (True: handled). ``state``
    None: a view being torn down (its Python attributes already gone) claims nothing."""
    if state is None:
        return False
    if event.type() == QtCore.QEvent.Type.ShortcutOverride and is_span_escape(event, state):
        event.accept()
        return True
    return False

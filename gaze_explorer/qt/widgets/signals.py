"""Block widgets' signals while the view writes the model's values into them.

A view that shows the model must not hear its own writes as user edits (they would be written back
into the model). ``QSignalBlocker`` unblocks even when the body raises and restores a widget that
was already blocked; this gives several widgets one ``with``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6 import QtCore


@contextmanager
def signals_blocked(*objects: QtCore.QObject) -> Iterator[None]:
    """Block the signals of ``objects`` for the body; each gets its previous state back after."""
    blockers = [QtCore.QSignalBlocker(obj) for obj in objects]
    try:
        yield
    finally:
        for blocker in reversed(blockers):
            blocker.unblock()

"""Session browser: the runs of the open session; pick one to show, or two to compare; double-click
a run to rename it (the name is saved in the session file; an empty name brings its label back).
Every selected run (two or more: Ctrl/Shift+click) is listed in ``runs_selected`` for the comparison."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

from gaze_explorer.core.state import AppState
from gaze_explorer.qt.widgets.signals import signals_blocked

STATUS_MARK = {"running": "● ", "finished": "", "cancelled": "✕ cancelled · ", "failed": "⚠ failed · "}


class SessionBrowserView(QtWidgets.QWidget):
    """A list of runs. Selecting one shows it; a second selected run is drawn under it to compare."""

    runs_selected = QtCore.Signal(list)  # every selected run's index, in the order they were picked

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.path_label = QtWidgets.QLabel("no session file")
        self.path_label.setWordWrap(True)
        self.list = QtWidgets.QListWidget()
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setToolTip(
            "Select a run to show it; Ctrl+click a second run to compare; double-click to rename it"
        )
        self.list.itemSelectionChanged.connect(self._selection_from_ui)
        self.list.itemDoubleClicked.connect(lambda item: self.rename_dialog(self.list.row(item)))
        # called with (run index, new name); the controller saves it (set by the main window)
        self.on_rename: Callable[[int, str], None] | None = None
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.path_label)
        layout.addWidget(self.list, 1)
        self._order: list[int] = []  # run indices in the order the user selected them
        self._picked: list[int] = []  # the same, not cut to the two the timeline draws
        state.session.runs_changed.connect(self.refresh)
        state.session.run_updated.connect(self._update_item)
        state.session.shown_runs_changed.connect(self._select_from_model)
        state.session.image_changed.connect(self._show_path)
        self.refresh()

    def _label(self, index: int) -> str:
        run = self.state.session.runs[index]
        return f"{STATUS_MARK.get(run.status, '')}{run.name} · {run.n_steps} tok · {run.text[:40]!r}"

    def _tooltip(self, index: int) -> str:
        """The run's capture scope: which attention rows its file holds (issue 20)."""
        scope = self.state.session.runs[index].params.get("capture_scope") or "full"
        return f"capture scope: {scope}"

    def _show_path(self) -> None:
        self.path_label.setText(self.state.session.path or "no session file")

    def refresh(self) -> None:
        with signals_blocked(self.list):
            self.list.clear()
            for i in range(len(self.state.session.runs)):
                self.list.addItem(self._label(i))
                self.list.item(i).setToolTip(self._tooltip(i))
        self._show_path()
        self._select_from_model()

    def _update_item(self, index: int) -> None:
        item = self.list.item(index)
        if item is not None:
            item.setText(self._label(index))

    def _select_from_model(self) -> None:
        session = self.state.session
        model = [i for i in (session.compare, session.shown) if i is not None]
        if not model or not set(model) <= set(self._picked):  # the model changed it: forget the picks
            self._picked = model
        with signals_blocked(self.list):
            self.list.clearSelection()
            self._order = [i for i in (session.shown, session.compare) if i is not None]
            for i in self._picked:  # every run picked stays selected (the comparison shows them)
                if self.list.item(i) is not None:
                    self.list.item(i).setSelected(True)

    def _selection_from_ui(self) -> None:
        selected = {self.list.row(item) for item in self.list.selectedItems()}
        self._picked = [i for i in self._picked if i in selected] + sorted(selected - set(self._picked))
        self.runs_selected.emit(list(self._picked))
        # keep the user's order: the newest pick is shown, the previous one compared
        self._order = [i for i in self._order if i in selected] + sorted(selected - set(self._order))
        self._order = self._order[-2:]
        if not self._order:
            return
        shown = self._order[-1]
        compare = self._order[-2] if len(self._order) == 2 else None
        self.state.session.show_runs(shown, compare)

    def rename_dialog(self, index: int) -> None:
        """Ask for a run's new name (empty: its derived label) and hand it to ``on_rename``."""
        if self.on_rename is None or not 0 <= index < len(self.state.session.runs):
            return
        run = self.state.session.runs[index]
        name, ok = QtWidgets.QInputDialog.getText(
            self, "Rename run", "Name (empty: the run's label):", text=str(run.params.get("user_name", ""))
        )
        if ok:
            self.on_rename(index, name)

    def select_run(self, index: int, add: bool = False) -> None:
        """Select a run as a click would (``add`` as a Ctrl+click)."""
        flags = QtCore.QItemSelectionModel.SelectionFlag
        mode = flags.Select if add else flags.ClearAndSelect
        self.list.setCurrentRow(index, mode)

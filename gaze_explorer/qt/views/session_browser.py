"""Session browser: the runs of the open session; pick one to show, or two to compare; double-click
a run to rename it (the name is saved in the session file; an empty name brings its label back).
Every selected run (two or more: Ctrl/Shift+click) is listed in ``runs_selected`` for the comparison.
A run that did not finish says so in front of its label, and its tooltip says why; the path label
names the session file as soon as it exists (a run started, or a discovery saved)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

from gaze_explorer.core.state import AppState
from gaze_explorer.qt.widgets.signals import signals_blocked

STATUS_MARK = {
    "running": "● ",
    "finished": "",
    "cancelled": "✕ cancelled · ",
    "failed": "⚠ failed · ",
    "unfinished": "⚠ unfinished · ",  # the reader's word for a run whose process was killed mid-run
}
STATUS_TIP = {
    "running": "generating",
    "cancelled": "stopped before its end (Stop); the tokens made until then are kept",
    "failed": "the run failed; the tokens made until then are kept",
    "unfinished": "unfinished: the process writing it was killed before the run ended; "
    "the tokens stored until then are kept",
}


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
        state.session.runs_changed.connect(self.refresh)
        state.session.run_updated.connect(self._update_item)
        state.session.shown_runs_changed.connect(self._select_from_model)
        # every selection (a click here, or a reopened session's saved one) is announced by the model
        state.session.runs_selected.connect(self._announce_selection)
        state.session.image_changed.connect(self._show_path)
        # a discovery saved before any run creates the session file: its stored list changes then
        state.discovery.stored_changed.connect(self._show_path)
        self.refresh()

    def _label(self, index: int) -> str:
        run = self.state.session.runs[index]
        return f"{STATUS_MARK.get(run.status, '')}{run.name} · {run.n_steps} tok · {run.text[:40]!r}"

    def _tooltip(self, index: int) -> str:
        """The run's derived label when the user renamed it, its status when it did not finish, and
        its capture scope: which attention rows its file holds (issue 20)."""
        run = self.state.session.runs[index]
        scope = run.params.get("capture_scope") or "full"
        status = STATUS_TIP.get(run.status)
        derived = run.derived_label
        renamed = f"{derived} (renamed; export --run takes either name)\n" if run.name != derived else ""
        return renamed + (f"{status}\n" if status else "") + f"capture scope: {scope}"

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
            item.setToolTip(self._tooltip(index))

    def _select_from_model(self, *_: object) -> None:
        with signals_blocked(self.list):
            self.list.clearSelection()
            for i in self.state.session.selected:  # every run picked stays selected (the comparison)
                if self.list.item(i) is not None:
                    self.list.item(i).setSelected(True)

    def _announce_selection(self, indices: list) -> None:
        self._select_from_model()
        self.runs_selected.emit(list(indices))

    def _selection_from_ui(self) -> None:
        selected = {self.list.row(item) for item in self.list.selectedItems()}
        # keep the user's order: the newest pick is shown, the previous one compared
        picked = [i for i in self.state.session.selected if i in selected]
        self.state.session.select_runs(picked + sorted(selected - set(picked)))

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

"""Discovery: run gaze-head discovery on the demo comics, a folder, or the current strip, with a
progress bar and Cancel. The main window runs the worker; this view asks for it and shows progress."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from gaze_explorer.core.state import AppState

SOURCES = (("demo", "demo comics"), ("folder", "a folder (comicN/p1..pN)"), ("current", "the current strip"))


class DiscoveryView(QtWidgets.QWidget):
    """Source picker, Run / Cancel buttons and a progress bar."""

    discovery_requested = QtCore.Signal(str, str)  # source, folder path ("" unless source == folder)
    cancel_requested = QtCore.Signal()

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.source_combo = QtWidgets.QComboBox()
        for key, label in SOURCES:
            self.source_combo.addItem(label, key)
        self.folder_edit = QtWidgets.QLineEdit()
        self.folder_edit.setPlaceholderText("folder in the authors' layout")
        self.browse_button = QtWidgets.QPushButton("…")
        self.browse_button.clicked.connect(self._browse)
        self.run_button = QtWidgets.QPushButton("Run discovery")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.run_button.clicked.connect(self._request)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.source_combo.currentIndexChanged.connect(self._source_changed)
        layout = QtWidgets.QGridLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(QtWidgets.QLabel("strips"), 0, 0)
        layout.addWidget(self.source_combo, 0, 1, 1, 2)
        layout.addWidget(self.folder_edit, 1, 1)
        layout.addWidget(self.browse_button, 1, 2)
        layout.addWidget(self.run_button, 2, 1)
        layout.addWidget(self.cancel_button, 2, 2)
        layout.addWidget(self.progress, 3, 0, 1, 3)
        layout.setRowStretch(4, 1)
        self._source_changed()
        self._task_running = False
        state.status.progress_changed.connect(self._on_progress)

    def _source_changed(self, *_: object) -> None:
        folder = self.source_combo.currentData() == "folder"
        self.folder_edit.setEnabled(folder)
        self.browse_button.setEnabled(folder)

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder of strips")
        if path:
            self.folder_edit.setText(path)

    def _request(self) -> None:
        source = self.source_combo.currentData()
        self.discovery_requested.emit(source, self.folder_edit.text().strip() if source == "folder" else "")

    def _on_progress(self, task: str, done: int, total: int) -> None:
        if task != "discovery":
            return
        running = total > 0 and done < total
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done if total else 0)
        self.progress.setFormat(f"{done}/{total} strips" if total else "idle")

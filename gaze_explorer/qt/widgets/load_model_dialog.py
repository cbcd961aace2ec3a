"""Model -> Load model: a model spec (demo, a local folder picked with a browser, or a cached Hugging
Face id) with the device and dtype, the same choices as the app's ``--device`` / ``--dtype`` flags."""

from __future__ import annotations

from PySide6 import QtWidgets

from gaze_explorer.core.model_choices import DEVICES, DTYPES  # the command line's choices too


class LoadModelDialog(QtWidgets.QDialog):
    """Ask for a model, a device and a dtype."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, spec: str = "demo") -> None:
        super().__init__(parent)
        self.setWindowTitle("Load model")
        self.spec_edit = QtWidgets.QLineEdit(spec)
        self.spec_edit.setPlaceholderText("demo, a local folder, or a cached Hugging Face id")
        self.spec_edit.setMinimumWidth(360)
        self.browse_button = QtWidgets.QPushButton("Folder…")
        self.browse_button.clicked.connect(self._browse)
        self.device_combo = QtWidgets.QComboBox()
        self.device_combo.setEditable(True)  # cuda:1 ... typed in
        self.device_combo.addItems(DEVICES)
        self.dtype_combo = QtWidgets.QComboBox()
        self.dtype_combo.addItems(DTYPES)
        spec_row = QtWidgets.QHBoxLayout()
        spec_row.addWidget(self.spec_edit, 1)
        spec_row.addWidget(self.browse_button)
        form = QtWidgets.QFormLayout(self)
        form.addRow("model", spec_row)
        form.addRow("device", self.device_combo)
        form.addRow("dtype", self.dtype_combo)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Model folder (config.json and safetensors)")
        if path:
            self.spec_edit.setText(path)

    def choice(self) -> tuple[str, str, str]:
        """(model spec, device, dtype) as typed and chosen."""
        return (
            self.spec_edit.text().strip(),
            self.device_combo.currentText().strip() or "auto",
            self.dtype_combo.currentText(),
        )

"""Opening an image asks how many side-by-side panels it has, with a preview the user confirms.

The proposal comes from ``core.strips.detect_panel_gutters`` (white, black or flat separators
between panels, or the colour change between two flat panel backgrounds; unequal widths allowed);
without any the panels are equal-width. The preview draws the image with the cuts the chosen
answer makes, so a wrong guess is seen before any run.
"""

from __future__ import annotations

from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.errors import RegionError
from gaze_explorer.core.strips import detect_panel_gutters

PREVIEW_WIDTH = 720


class PanelCountDialog(QtWidgets.QDialog):
    """Panel count (and widths, from the gutters) of a newly opened image."""

    def __init__(self, image: Image.Image, current: int, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Panels in this image")
        self.image = image.convert("RGB")
        try:
            self.detected = detect_panel_gutters(self.image)
        except RegionError:
            self.detected = None
        found = self.detected.n_panels if self.detected is not None and self.detected.n_panels > 1 else 0
        self.spin = QtWidgets.QSpinBox()
        self.spin.setRange(0, 12)
        self.spin.setSpecialValueText("none (box targets only)")
        self.spin.setValue(found or current)
        self.use_gutters = QtWidgets.QCheckBox("cut at the detected gutters (unequal widths)")
        self.use_gutters.setEnabled(bool(found))
        self.use_gutters.setChecked(bool(found))
        self.note = QtWidgets.QLabel(
            f"{found} panels found between gutters; check the cuts below"
            if found
            else "no gutters found: the panels are cut at equal widths"
        )
        self.preview = QtWidgets.QLabel()
        self.preview.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QtWidgets.QFormLayout()
        form.addRow("panels", self.spin)
        form.addRow("", self.use_gutters)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addLayout(form)
        layout.addWidget(self.preview, 1)
        layout.addWidget(buttons)
        self.spin.valueChanged.connect(self._redraw)
        self.use_gutters.toggled.connect(self._redraw)
        self._redraw()

    def choice(self) -> tuple[int, list[float] | None]:
        """``(n_panels, widths)``: widths in pixels from the gutters, or None for equal widths."""
        n = int(self.spin.value())
        if n > 1 and self.use_gutters.isChecked() and self.detected is not None:
            try:
                return n, list(detect_panel_gutters(self.image, n).widths)
            except RegionError:  # fewer gutters than panels asked: equal widths
                return n, None
        return n, None

    def cuts(self) -> list[float]:
        """The x-positions (image pixels) between panels, as the preview draws them."""
        n, widths = self.choice()
        if n < 2:
            return []
        width = self.image.width
        widths = widths or [width / n] * n
        out, x = [], 0.0
        for w in widths[:-1]:
            x += w
            out.append(x)
        return out

    def _redraw(self) -> None:
        rgb = self.image.tobytes("raw", "RGB")
        qimage = QtGui.QImage(
            rgb, self.image.width, self.image.height, 3 * self.image.width, QtGui.QImage.Format.Format_RGB888
        ).copy()
        scale = min(1.0, PREVIEW_WIDTH / max(1, self.image.width))
        pixmap = QtGui.QPixmap.fromImage(qimage).scaled(
            max(1, int(self.image.width * scale)),
            max(1, int(self.image.height * scale)),
            QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
            QtCore.Qt.TransformationMode.SmoothTransformation,
        )
        painter = QtGui.QPainter(pixmap)
        painter.setPen(QtGui.QPen(QtGui.QColor("#D55E00"), 2, QtCore.Qt.PenStyle.DashLine))
        for x in self.cuts():
            painter.drawLine(QtCore.QPointF(x * scale, 0), QtCore.QPointF(x * scale, pixmap.height()))
        painter.end()
        self.preview.setPixmap(pixmap)


def ask_panel_count(parent: QtWidgets.QWidget | None, image: Image.Image, current: int):
    """Show the dialog; ``(n_panels, widths)`` or None if the user cancelled."""
    dialog = PanelCountDialog(image, current, parent)
    if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
        return None
    return dialog.choice()

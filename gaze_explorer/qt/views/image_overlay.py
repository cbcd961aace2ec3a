"""Image + attention overlay: the image, its panels, and the selected heads' attention at the
current step drawn on each image token's real pixel box.

Click a panel to make it the steering target; drag the rectangle ROI to set a box target. Open,
drop or paste an image to load it (the main window does the loading: this view only asks): a file
URL, Qt image data, or raw encoded bytes (``image/png`` ...) all work; anything else is refused
with a clear message (``image_rejected``), never a traceback.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.scoring import overlay_heat
from gaze_explorer.core.state import COLORMAPS, AppState, RunData
from gaze_explorer.core.state_data import grid_corners
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer, streaming
from gaze_explorer.qt.widgets.plot_style import plain_axis
from gaze_explorer.qt.widgets.signals import signals_blocked

# Okabe-Ito: colour-blind-safe panel colours
PANEL_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
TARGET_COLOUR = "#56B4E9"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageOverlayView(QtWidgets.QWidget):
    """The image with panel boundaries, the attention heatmap, and target picking."""

    image_open_requested = QtCore.Signal(str)  # a path to load
    image_pasted = QtCore.Signal(QtGui.QImage)
    image_rejected = QtCore.Signal(str)  # why a drop or paste was not an image
    panel_count_changed = QtCore.Signal(int)

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setAcceptDrops(True)
        # global normalisation: (run, heads, steps scanned, their max heat); a streaming run only
        # scans its new steps (its rows are read back from the session file, so a rescan costs I/O)
        self._global_max: tuple | None = None
        self._build_controls()
        self._build_plot()
        # coalesce bursts of step/selection changes into one redraw per event-loop turn
        self._redraw_timer = FrameCoalescer(
            self.refresh_heat, min_gap_ms=15, parent=self, busy=lambda: streaming(self.state)
        )
        s = state
        s.session.image_changed.connect(self._on_image_changed)
        s.session.shown_runs_changed.connect(self._schedule_redraw)
        s.session.run_updated.connect(self._on_run_updated)
        s.step.step_changed.connect(self._schedule_redraw)
        s.heads.selection_changed.connect(self._schedule_redraw)
        s.overlay.settings_changed.connect(self._on_settings_changed)
        s.target.target_changed.connect(self._draw_target)
        self._on_image_changed()

    # ---- construction -------------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(self.state.overlay.opacity * 100))
        self.opacity_slider.setToolTip("Overlay opacity")
        self.opacity_slider.valueChanged.connect(lambda v: self.state.overlay.update(opacity=v / 100))
        self.cmap_combo = QtWidgets.QComboBox()
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.setCurrentText(self.state.overlay.colormap)
        self.cmap_combo.currentTextChanged.connect(lambda t: self.state.overlay.update(colormap=t))
        self.norm_combo = QtWidgets.QComboBox()
        self.norm_combo.addItem("per step", "per_step")
        self.norm_combo.addItem("global", "global")
        self.norm_combo.currentIndexChanged.connect(
            lambda i: self.state.overlay.update(normalisation=self.norm_combo.itemData(i))
        )
        self.panels_spin = QtWidgets.QSpinBox()
        self.panels_spin.setRange(0, 32)
        self.panels_spin.setSpecialValueText("none")
        self.panels_spin.setToolTip("How many side-by-side panels the image has (none = a plain image)")
        self.panels_spin.editingFinished.connect(lambda: self.panel_count_changed.emit(self.panels_spin.value()))
        self.box_button = QtWidgets.QPushButton("Box target")
        self.box_button.setCheckable(True)
        self.box_button.setToolTip("Show a rectangle; drag or resize it to steer to that box")
        self.box_button.toggled.connect(self._toggle_roi)
        self.open_button = QtWidgets.QPushButton("Open image…")
        self.open_button.clicked.connect(self.open_dialog)
        row = QtWidgets.QHBoxLayout()
        for label, w in (
            ("opacity", self.opacity_slider),
            ("colormap", self.cmap_combo),
            ("scale", self.norm_combo),
            ("panels", self.panels_spin),
        ):
            row.addWidget(QtWidgets.QLabel(label))
            row.addWidget(w)
        row.addWidget(self.box_button)
        row.addWidget(self.open_button)
        row.addStretch(1)
        self.caption = QtWidgets.QLabel("")
        self.caption.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row)
        self._controls_row = row
        self._layout = layout

    def _build_plot(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        # drops over the plot go up to this view (Qt hands drag events to the nearest accepting parent)
        self.graphics.setAcceptDrops(False)
        self.graphics.viewport().setAcceptDrops(False)
        self.plot = self.graphics.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "x (image pixels)")
        self.plot.setLabel("left", "y (image pixels)")
        self.plot.setMenuEnabled(False)
        for axis in ("bottom", "left"):
            plain_axis(self.plot.getAxis(axis))
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image_item)
        self.heat_item = pg.PColorMeshItem(colorMap=pg.colormap.get(self.state.overlay.colormap), enableAutoLevels=False)
        self.heat_item.setZValue(5)
        self.heat_item.setOpacity(self.state.overlay.opacity)
        self.plot.addItem(self.heat_item)
        self.colour_bar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=pg.colormap.get(self.state.overlay.colormap), interactive=False, width=14
        )
        self.colour_bar.setImageItem(self.heat_item, insert_in=self.plot)
        plain_axis(self.colour_bar.axis)
        self.colour_bar.axis.setLabel("attention")
        self.panel_items: list[pg.GraphicsObject] = []
        self.target_item = QtWidgets.QGraphicsRectItem()
        self.target_item.setPen(pg.mkPen(TARGET_COLOUR, width=4, style=QtCore.Qt.PenStyle.DashLine))
        self.target_item.setZValue(20)
        self.target_item.setVisible(False)
        self.plot.addItem(self.target_item)
        self.roi: pg.RectROI | None = None
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self._layout.addWidget(self.graphics, 1)
        self._layout.addWidget(self.caption)

    # ---- model -> view -----------------------------------------------------------------------
    def _schedule_redraw(self, *_: object) -> None:
        self._redraw_timer.request()

    def _on_run_updated(self, index: int) -> None:
        if index in (self.state.session.shown, self.state.session.compare):
            self._schedule_redraw()

    def _on_settings_changed(self) -> None:
        ov = self.state.overlay
        cmap = pg.colormap.get(ov.colormap)
        self.heat_item.setColorMap(cmap)
        self.colour_bar.setColorMap(cmap)
        self.heat_item.setOpacity(ov.opacity)
        self.refresh_heat()

    def _on_image_changed(self) -> None:
        session = self.state.session
        for item in self.panel_items:
            self.plot.removeItem(item)
        self.panel_items = []
        self._global_max = None
        if session.image is None:
            self.image_item.clear()
            self.heat_item.setVisible(False)
            return
        self.image_item.setImage(session.image, autoLevels=False, levels=(0, 255))
        h, w = session.image.shape[:2]
        self.image_item.setRect(QtCore.QRectF(0, 0, w, h))
        with signals_blocked(self.panels_spin):
            self.panels_spin.setValue(session.n_panels)
        for i, region in enumerate(r for r in session.regions if r.kind == "panel"):
            x0, y0, x1, y1 = region.box
            colour = PANEL_COLOURS[i % len(PANEL_COLOURS)]
            frame = QtWidgets.QGraphicsRectItem(x0, y0, x1 - x0, y1 - y0)
            frame.setPen(pg.mkPen(colour, width=2))
            frame.setZValue(10)
            label = pg.TextItem(f"P{i + 1}", color="w", fill=pg.mkBrush(colour), anchor=(0, 0))
            label.setPos(x0 + 2, y0 + 2)
            label.setZValue(11)
            for item in (frame, label):
                self.plot.addItem(item)
                self.panel_items.append(item)
        self.caption.setText(f"{session.image_name}  ·  {w}×{h} px  ·  {session.n_panels or 'no'} panel(s)")
        self.plot.autoRange(padding=0.02)
        self._draw_target()
        self.refresh_heat()

    def _draw_target(self) -> None:
        session, target = self.state.session, self.state.target
        rect = None
        if target.kind == "panel" and 0 <= target.panel < len(session.regions):
            rect = session.regions[target.panel].box
        elif target.kind == "box" and target.box is not None:
            rect = target.box
        self.target_item.setVisible(rect is not None)
        if rect is not None:
            x0, y0, x1, y1 = rect
            self.target_item.setRect(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))

    def current_heat(self, run: RunData | None = None) -> np.ndarray | None:
        """The ``[rows, cols]`` heat drawn at the current step, or None when there is nothing to draw."""
        session = self.state.session
        run = run or session.shown_run
        if run is None or session.grid is None or run.rows_at is None or run.n_steps == 0:
            return None
        step = min(self.state.step.step, run.n_steps - 1)
        rows = run.rows_at(step)
        if rows is None:
            return None
        return overlay_heat(rows, session.grid, self.state.heads.active)

    def refresh_heat(self) -> None:
        heat = self.current_heat()
        grid = self.state.session.grid
        if heat is None or grid is None or not self.state.heads.active.heads:
            self.heat_item.setVisible(False)
            return
        top = self._global_level(heat) if self.state.overlay.normalisation == "global" else float(heat.max())
        levels = (0.0, top if top > 0 else 1.0)
        x, y = grid_corners(grid)
        self.heat_item.setData(x, y, heat, autoLevels=False)
        self.heat_item.setLevels(levels)
        self.colour_bar.setLevels(levels)
        self.heat_item.setVisible(True)

    def _global_level(self, heat: np.ndarray) -> float:
        """The maximum over every step of the shown run (kept per run and head set, extended as the
        run streams)."""
        session = self.state.session
        run, heads = session.shown_run, self.state.heads.active
        cached = self._global_max
        fresh = cached is not None and cached[0] is run and cached[1] == heads.heads and cached[2] <= run.n_steps
        scanned, best = (cached[2], cached[3]) if fresh else (0, 0.0)
        for step in range(scanned, run.n_steps):
            rows = run.rows_at(step)
            if rows is not None:
                best = max(best, float(overlay_heat(rows, session.grid, heads).max()))
        self._global_max = (run, heads.heads, run.n_steps, best)
        return max(best, float(heat.max()))

    # ---- view -> model -----------------------------------------------------------------------
    def _on_click(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton or event.double():
            return
        point = self.plot.vb.mapSceneToView(event.scenePos())
        index = self.state.session.region_at(point.x(), point.y())
        if index is not None and self.state.session.regions[index].kind == "panel":
            self.state.target.set_panel(index)

    def _toggle_roi(self, on: bool) -> None:
        if on and self.roi is None and self.state.session.image is not None:
            h, w = self.state.session.image.shape[:2]
            self.roi = pg.RectROI([w * 0.35, h * 0.25], [w * 0.3, h * 0.5], pen=pg.mkPen(TARGET_COLOUR, width=2))
            self.roi.setZValue(30)
            self.roi.sigRegionChangeFinished.connect(self._roi_changed)
            self.plot.addItem(self.roi)
            self._roi_changed()
        elif not on and self.roi is not None:
            self.plot.removeItem(self.roi)
            self.roi = None
            self.state.target.set_panel(self.state.target.panel)

    def _roi_changed(self, *_: object) -> None:
        if self.roi is None:
            return
        pos, size = self.roi.pos(), self.roi.size()
        self.state.target.set_box((pos.x(), pos.y(), pos.x() + size.x(), pos.y() + size.y()))

    def open_dialog(self) -> None:
        """Ask for an image file; emits ``image_open_requested`` with the chosen path."""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open image", "", "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"
        )
        if path:
            self.image_open_requested.emit(path)

    def paste_image(self) -> bool:
        """Load the clipboard's image (or image file); True if it held one, else a clear message."""
        return self.load_mime(QtWidgets.QApplication.clipboard().mimeData(), "clipboard")

    def load_mime(self, mime: QtCore.QMimeData | None, source: str) -> bool:
        """Ask to load the image in pasted or dropped data: a local file, Qt image data, or the
        encoded bytes of an ``image/*`` format. Emits ``image_rejected`` and returns False if none."""
        if mime is None:
            self.image_rejected.emit(f"the {source} is empty")
            return False
        if mime.hasUrls():
            local = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if local:
                self.image_open_requested.emit(local[0])
                return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QtGui.QImage) and not image.isNull():
                self.image_pasted.emit(QtGui.QImage(image))
                return True
        for fmt in mime.formats():
            if fmt.startswith("image/"):
                data = bytes(mime.data(fmt).data())
                image = QtGui.QImage.fromData(data)
                if image.isNull():
                    self.image_rejected.emit(f"the {source} holds {fmt} data ({len(data)} bytes) that is not a readable image")
                    return False
                self.image_pasted.emit(image)
                return True
        if mime.hasUrls():
            self.image_rejected.emit(
                f"the {source} names {mime.urls()[0].toString()}, which is not a local file; save the image and open it"
            )
        else:
            kinds = ", ".join(mime.formats()) or "nothing"
            self.image_rejected.emit(f"the {source} holds no image (it holds {kinds})")
        return False

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage() or any(f.startswith("image/") for f in mime.formats()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        event.acceptProposedAction()
        self.load_mime(event.mimeData(), "dropped item")

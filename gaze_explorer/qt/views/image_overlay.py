"""Image + attention overlay: the image, its panels, and the selected heads' attention at the
current step drawn on each image token's real pixel box.

Click a panel to make it the steering target; press "Box target" and drag on the image to draw a
box target (the token cells it selects, those whose centres fall inside, are dotted). Each panel's
dotted outline shows where it snaps to the token grid. The image is drawn as is, in grey under the
heat, or in colour under heat contours (``OverlaySettings.style``), and fills the view. Open, drop
or paste an image to load it (the main window does the loading: this view only asks): a file
URL, Qt image data, or raw encoded bytes (``image/png`` ...) all work; anything else is refused
with a clear message (``image_rejected``), never a traceback.

Span mode: while ``state.spans`` has a selection (a drag across the token timeline, or a named span)
the heat is the selected heads' attention averaged over its steps (``core.scoring.span_heat``, raw or
value-weighted by the run's stored ``||v||``), coloured on its own maximum, and a banner over the
image says so (``steps 3-11, mean of 9 · raw``).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.errors import GazeExplorerError, RegionError
from gaze_explorer.core.regions import box_region
from gaze_explorer.core.scoring import overlay_heat, span_heat
from gaze_explorer.core.spans import span_caption
from gaze_explorer.core.state import COLORMAPS, OVERLAY_STYLES, AppState, RunData
from gaze_explorer.core.state_data import grid_corners
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer, streaming
from gaze_explorer.qt.widgets.plot_style import PANEL_COLOURS, greyscale, plain_axis
from gaze_explorer.qt.widgets.signals import signals_blocked
from gaze_explorer.qt.widgets.token_heat import TokenHeatItem

CONTOUR_LEVELS = (0.25, 0.5, 0.75, 0.9)  # fractions of the step's (or run's) maximum heat
STYLE_LABELS = {"colour": "colour image", "greyscale": "grey image", "contour": "contours"}
TARGET_COLOUR = "#56B4E9"
SPAN_BANNER_STYLE = "QLabel { background: #E69F00; color: black; font-weight: bold; padding: 2px 6px; }"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class _BoxViewBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a box (image pixel coordinates) while ``drawing`` is on."""

    box_drawn = QtCore.Signal(float, float, float, float)  # x0, y0, x1, y1

    def __init__(self) -> None:
        super().__init__()
        self.drawing = False
        self.band = QtWidgets.QGraphicsRectItem()
        self.band.setPen(pg.mkPen(TARGET_COLOUR, width=2, style=QtCore.Qt.PenStyle.DashLine))
        self.band.setZValue(40)
        self.band.setVisible(False)
        self.addItem(self.band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if not self.drawing or ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        rect = QtCore.QRectF(self.mapSceneToView(ev.buttonDownScenePos()), self.mapSceneToView(ev.scenePos()))
        rect = rect.normalized()
        self.band.setRect(rect)
        self.band.setVisible(not ev.isFinish())
        if ev.isFinish():
            self.box_drawn.emit(rect.left(), rect.top(), rect.right(), rect.bottom())


def contour_lines(heat: np.ndarray, x_centres: np.ndarray, y_centres: np.ndarray, level: float) -> tuple:
    """The iso-line of ``heat`` ``[rows, cols]`` at ``level`` in image pixels: ``(x, y)`` arrays with
    NaN between separate lines. Cell centres may be unevenly spaced (tiled grids); the border is
    padded with zeros so every line closes."""
    padded = np.pad(np.asarray(heat, dtype=np.float64), 1)
    rows, cols = heat.shape
    # centre positions of the padded grid: one extra half-cell beyond each edge
    ys = np.concatenate(
        [
            [y_centres[0] - (y_centres[1] - y_centres[0] if rows > 1 else 1)],
            y_centres,
            [y_centres[-1] + (y_centres[-1] - y_centres[-2] if rows > 1 else 1)],
        ]
    )
    xs = np.concatenate(
        [
            [x_centres[0] - (x_centres[1] - x_centres[0] if cols > 1 else 1)],
            x_centres,
            [x_centres[-1] + (x_centres[-1] - x_centres[-2] if cols > 1 else 1)],
        ]
    )
    out_x, out_y = [], []
    for line in pg.functions.isocurve(padded, level, connected=True):
        pts = np.asarray(line, dtype=np.float64)  # (row index, col index)
        out_y += [*np.interp(pts[:, 0], np.arange(rows + 2), ys), np.nan]
        out_x += [*np.interp(pts[:, 1], np.arange(cols + 2), xs), np.nan]
    return np.asarray(out_x), np.asarray(out_y)


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
        self._image_style: tuple | None = None
        self.box_tokens = np.zeros(0, dtype=np.int64)
        self.snap_boxes: list[tuple[float, float, float, float]] = []
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
        s.spans.selection_changed.connect(self._schedule_redraw)
        s.spans.weighting_changed.connect(self._schedule_redraw)
        self._span_cache: tuple | None = None  # (key, heat): a span's mean reads every one of its steps
        self._on_image_changed()
        self._draw_target()

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
        self.style_combo = QtWidgets.QComboBox()
        for style in OVERLAY_STYLES:
            self.style_combo.addItem(STYLE_LABELS[style], style)
        self.style_combo.setToolTip(
            "colour: the image as is under the heat · grey image: the image in greyscale, so the heat "
            "stands out on colourful images · contours: the image in colour under heat contour lines"
        )
        self.style_combo.currentIndexChanged.connect(
            lambda i: self.state.overlay.update(style=self.style_combo.itemData(i))
        )
        self.panels_spin = QtWidgets.QSpinBox()
        self.panels_spin.setRange(0, 32)
        self.panels_spin.setSpecialValueText("none")
        self.panels_spin.setToolTip("How many side-by-side panels the image has (none = a plain image)")
        self.panels_spin.editingFinished.connect(
            lambda: self.panel_count_changed.emit(self.panels_spin.value())
        )
        self.box_button = QtWidgets.QPushButton("Box target")
        self.box_button.setCheckable(True)
        self.box_button.setToolTip(
            "Then drag on the image to draw the box to steer to (drag again to redraw)"
        )
        self.box_button.toggled.connect(self._toggle_box_mode)
        self.open_button = QtWidgets.QPushButton("Open image…")
        self.open_button.clicked.connect(self.open_dialog)
        # two short rows rather than one long one: the centre fits beside the docks at 1280 px
        self.opacity_slider.setMaximumWidth(90)
        self.norm_combo.setToolTip("Colour scale: each step's own maximum, or the run's")
        row = QtWidgets.QHBoxLayout()
        for label, w in (
            ("opacity", self.opacity_slider),
            ("", self.style_combo),
            ("", self.cmap_combo),
            ("scale", self.norm_combo),
        ):
            if label:
                row.addWidget(QtWidgets.QLabel(label))
            row.addWidget(w)
        row.addStretch(1)
        self.caption = QtWidgets.QLabel("")
        # the caption never widens the view: it is clipped instead
        self.caption.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        row2 = QtWidgets.QHBoxLayout()
        row2.addWidget(QtWidgets.QLabel("panels"))
        row2.addWidget(self.panels_spin)
        row2.addWidget(self.box_button)
        row2.addWidget(self.open_button)
        row2.addWidget(self.caption, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addLayout(row2)
        self.span_banner = QtWidgets.QLabel("")
        self.span_banner.setStyleSheet(SPAN_BANNER_STYLE)
        self.span_banner.setToolTip(
            "The overlay shows a span's mean; click a step in the timeline or press Esc"
        )
        self.span_banner.setVisible(False)
        layout.addWidget(self.span_banner)
        self._controls_row = row
        self._layout = layout

    def _build_plot(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        # drops over the plot go up to this view (Qt hands drag events to the nearest accepting parent)
        self.graphics.setAcceptDrops(False)
        self.graphics.viewport().setAcceptDrops(False)
        self.box_viewbox = _BoxViewBox()
        self.plot = self.graphics.addPlot(viewBox=self.box_viewbox)
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        # no pixel axes: the image fills the view (the caption gives its size, hover the pixel)
        self.plot.hideAxis("bottom")
        self.plot.hideAxis("left")
        self.plot.setMenuEnabled(False)
        self.box_viewbox.box_drawn.connect(self._box_drawn)
        self.box_viewbox.sigResized.connect(self.fit_image)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image_item)
        self.heat_item = TokenHeatItem(
            colorMap=pg.colormap.get(self.state.overlay.colormap), enableAutoLevels=False
        )
        self.heat_item.setZValue(5)
        self.heat_item.setOpacity(self.state.overlay.opacity)
        self.plot.addItem(self.heat_item)
        self.colour_bar = pg.ColorBarItem(
            values=(0.0, 1.0),
            colorMap=pg.colormap.get(self.state.overlay.colormap),
            interactive=False,
            width=14,
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
        # the target box's selected tokens (cell centres inside it)
        self.box_tokens_item = pg.ScatterPlotItem(
            symbol="o", size=7, pen=pg.mkPen("k"), brush=pg.mkBrush(TARGET_COLOUR)
        )
        self.box_tokens_item.setZValue(21)
        self.plot.addItem(self.box_tokens_item)
        self.contour_items: list[pg.PlotCurveItem] = []
        for _ in CONTOUR_LEVELS:
            curve = pg.PlotCurveItem(connect="finite")
            curve.setZValue(6)
            self.plot.addItem(curve)
            self.contour_items.append(curve)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self._layout.addWidget(self.graphics, 1)

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
        with signals_blocked(self.style_combo):
            self.style_combo.setCurrentIndex(OVERLAY_STYLES.index(ov.style))
        self._show_image()
        self.refresh_heat()

    def _show_image(self) -> None:
        image = self.state.session.image
        if image is None:
            self.image_item.clear()
            return
        shown = greyscale(image) if self.state.overlay.style == "greyscale" else image
        if (
            self.image_item.image is None
            or self.image_item.image.shape != shown.shape
            or self._image_style != (id(image), self.state.overlay.style)
        ):
            self._image_style = (id(image), self.state.overlay.style)
            self.image_item.setImage(shown, autoLevels=False, levels=(0, 255))

    def fit_image(self, *_: object) -> None:
        """Show the whole image as large as the view allows."""
        image = self.state.session.image
        if image is not None:
            h, w = image.shape[:2]
            self.plot.vb.setRange(QtCore.QRectF(0, 0, w, h), padding=0.01)

    def _on_image_changed(self) -> None:
        session = self.state.session
        for item in self.panel_items:
            self.plot.removeItem(item)
        self.panel_items = []
        self.snap_boxes: list[tuple[float, float, float, float]] = []  # per panel, token-grid extent
        self._global_max = None
        if session.image is None:
            self.image_item.clear()
            self.heat_item.setVisible(False)
            return
        self._show_image()
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
            items = [frame, label]
            if session.grid is not None and len(region.token_indices):
                # where the panel snaps to the token grid: the box around its tokens' cells
                b = session.grid.token_boxes[region.token_indices]
                sx0, sy0, sx1, sy1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
                snap = QtWidgets.QGraphicsRectItem(sx0 + 3, sy0 + 3, sx1 - sx0 - 6, sy1 - sy0 - 6)
                snap.setPen(pg.mkPen(colour, width=1.5, style=QtCore.Qt.PenStyle.DotLine))
                snap.setZValue(10)
                snap.setToolTip(
                    f"P{i + 1} covers image tokens over x {sx0:.0f}–{sx1:.0f}, y {sy0:.0f}–{sy1:.0f}"
                )
                items.append(snap)
                self.snap_boxes.append((sx0, sy0, sx1, sy1))
            for item in items:
                self.plot.addItem(item)
                self.panel_items.append(item)
        self.caption.setText(f"{session.image_name}  ·  {w}×{h} px  ·  {session.n_panels or 'no'} panel(s)")
        self.fit_image()
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
        self.box_tokens = self.selected_tokens()
        centres = np.zeros((0, 2)) if session.grid is None else session.grid.centres[self.box_tokens]
        self.box_tokens_item.setData(x=centres[:, 0], y=centres[:, 1])

    def selected_tokens(self) -> np.ndarray:
        """Indices of the image tokens a box target selects (cell centres inside it; core's rule)."""
        session, target = self.state.session, self.state.target
        if target.kind != "box" or target.box is None or session.grid is None:
            return np.zeros(0, dtype=np.int64)
        try:
            return box_region(session.grid, target.box).token_indices
        except RegionError:
            return np.zeros(0, dtype=np.int64)

    def current_heat(self, run: RunData | None = None) -> np.ndarray | None:
        """The ``[rows, cols]`` heat drawn at the current step, or None when there is nothing to draw."""
        session = self.state.session
        run = run or session.shown_run
        if run is None or session.grid is None or run.rows_at is None or run.n_steps == 0:
            return None
        span = self.state.spans.selection
        if span is not None:
            return self._span_heat(run, span)
        step = min(self.state.step.step, run.n_steps - 1)
        rows = run.rows_at(step)
        if rows is None:
            return None
        return overlay_heat(rows, session.grid, self.state.heads.active)

    def _span_heat(self, run: RunData, span) -> np.ndarray | None:
        """The span's mean heat (its steps within the run), cached per run, heads, span and weighting."""
        heads, norms = self.state.heads.active, self._weights(run)
        last = min(span.end, run.n_steps - 1)
        key = (id(run), heads.heads, span.start, last, norms is not None, run.n_steps)
        if self._span_cache is not None and self._span_cache[0] == key:
            return self._span_cache[1]
        heat = span_heat(run.rows_at, range(span.start, last + 1), self.state.session.grid, heads, norms)
        heat = None if np.isnan(heat).all() else heat
        self._span_cache = (key, heat)
        return heat

    def span_text(self) -> str:
        """The banner's text: what the span overlay shows ("" in per-step mode)."""
        span, run = self.state.spans.selection, self.state.session.shown_run
        if span is None or run is None:
            return ""
        return span_caption(span, run.n_steps, self._weights(run) is not None)

    def _weights(self, run: RunData):
        """The value norms the span is weighted by (None: raw; an unreadable file, which the Spans
        dock reports, also draws raw)."""
        try:
            return self.state.spans.weights_for(run)
        except GazeExplorerError:
            return None

    def refresh_heat(self) -> None:
        banner = self.span_text()
        self.span_banner.setText(banner)
        self.span_banner.setVisible(bool(banner))
        heat = self.current_heat()
        grid = self.state.session.grid
        contour = self.state.overlay.style == "contour"
        if heat is None or grid is None or not self.state.heads.active.heads:
            self.heat_item.setVisible(False)
            for curve in self.contour_items:
                curve.setData([], [])
            return
        # a span's mean is coloured on its own maximum (the run's per-step maximum would wash it out)
        per_step = self.state.overlay.normalisation != "global" or self.state.spans.selection is not None
        top = float(np.nanmax(heat)) if per_step else self._global_level(heat)
        levels = (0.0, top if top > 0 else 1.0)
        x, y = grid_corners(grid)
        self.heat_item.setData(x, y, heat, autoLevels=False)
        self.heat_item.setLevels(levels)
        self.colour_bar.setLevels(levels)
        self.heat_item.setVisible(not contour)
        self._draw_contours(heat if contour else None, levels[1], x, y)

    def _draw_contours(self, heat: np.ndarray | None, top: float, x: np.ndarray, y: np.ndarray) -> None:
        if heat is None:
            for curve in self.contour_items:
                curve.setData([], [])
            return
        cmap = pg.colormap.get(self.state.overlay.colormap)
        xc, yc = (x[0, :-1] + x[0, 1:]) / 2, (y[:-1, 0] + y[1:, 0]) / 2
        for fraction, curve in zip(CONTOUR_LEVELS, self.contour_items, strict=True):
            cx, cy = contour_lines(heat, xc, yc, fraction * top)
            colour = cmap.map(0.35 + 0.65 * fraction, mode="qcolor")
            curve.setPen(pg.mkPen(colour, width=1.5 + 2.5 * fraction))
            curve.setData(cx, cy)

    def _global_level(self, heat: np.ndarray) -> float:
        """The maximum over every step of the shown run (kept per run and head set, extended as the
        run streams)."""
        session = self.state.session
        run, heads = session.shown_run, self.state.heads.active
        cached = self._global_max
        fresh = (
            cached is not None and cached[0] is run and cached[1] == heads.heads and cached[2] <= run.n_steps
        )
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

    def _toggle_box_mode(self, on: bool) -> None:
        """Box mode: a left-drag on the image draws the box target (and does not pan)."""
        self.box_viewbox.drawing = on
        self.graphics.setCursor(
            QtCore.Qt.CursorShape.CrossCursor if on else QtCore.Qt.CursorShape.ArrowCursor
        )
        if on:
            self.state.status.post("drag on the image to draw the box target")
        elif self.state.target.kind == "box":
            self.state.target.set_panel(self.state.target.panel)

    def _box_drawn(self, x0: float, y0: float, x1: float, y1: float) -> None:
        image = self.state.session.image
        if image is None:
            return
        h, w = image.shape[:2]
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h)))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            return  # a click, or a drag outside the image
        self.state.target.set_box(box)
        if self.state.session.grid is not None and self.selected_tokens().size == 0:
            self.state.status.post("the box holds no image-token centre; draw it larger", error=True)

    def open_dialog(self) -> None:
        """Ask for an image file; emits ``image_open_requested`` with the chosen path."""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Open image",
            "",
            "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff);;All files (*)",
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
                    self.image_rejected.emit(
                        f"the {source} holds {fmt} data ({len(data)} bytes) that is not a readable image"
                    )
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

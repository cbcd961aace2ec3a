"""Head inspector: one head of the layer x head grid up close.

Shows the head chosen in :class:`~gaze_explorer.core.state.InspectorModel` (a click on a grid cell,
the layer/head boxes, or "best"): its N x N panel matrix from discovery (queried panel x attended
panel, the paper's Fig. 2a), its attention over the image at the current step (the image in grey
under it), and its attention mass on each region over the steps of the shown run, with the current
step marked. The plots sit side by side in a wide dock and one above the other in a tall one.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.scoring import overlay_heat
from gaze_explorer.core.state import AppState, head_panel_masses
from gaze_explorer.core.state_data import grid_corners
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer, streaming
from gaze_explorer.qt.widgets.plot_style import PANEL_COLOURS, IntegerAxis, greyscale, plain_axis
from gaze_explorer.qt.widgets.signals import signals_blocked
from gaze_explorer.qt.widgets.token_heat import TokenHeatItem


class HeadInspectorView(QtWidgets.QWidget):
    """Panel matrix, attention at the current step and per-region mass over the run, for one head."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.matrix: np.ndarray | None = None  # [N, N] shown
        self.heat: np.ndarray | None = None  # [rows, cols] shown
        self.masses: np.ndarray | None = None  # [step, region] shown
        self._static_key: tuple | None = None
        self._image_id: int | None = None
        self._horizontal: bool | None = None

        self.layer_spin = QtWidgets.QSpinBox()
        self.layer_spin.setPrefix("L ")
        self.head_spin = QtWidgets.QSpinBox()
        self.head_spin.setPrefix("H ")
        self.best_button = QtWidgets.QPushButton("Best")
        self.best_button.setToolTip("Open the head with the highest gaze score")
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.layer_spin)
        row.addWidget(self.head_spin)
        row.addWidget(self.best_button)
        row.addStretch(1)
        self.layer_spin.valueChanged.connect(self._head_from_ui)
        self.head_spin.valueChanged.connect(self._head_from_ui)
        self.best_button.clicked.connect(self.open_best)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.matrix_plot = pg.PlotItem()
        self.matrix_plot.invertY(True)  # not aspect-locked: in a narrow dock the cells use its width
        self.matrix_plot.setMouseEnabled(x=False, y=False)
        self.matrix_plot.setLabel("bottom", "attended panel")
        self.matrix_plot.setLabel("left", "queried panel")
        self.matrix_item = pg.ImageItem(axisOrder="row-major")
        self.matrix_item.setColorMap(pg.colormap.get("viridis"))
        self.matrix_plot.addItem(self.matrix_item)
        self.matrix_labels: list[pg.TextItem] = []
        self._value_font = QtGui.QFont()
        self._value_font.setPointSize(7)

        self.image_plot = pg.PlotItem()
        self.image_plot.setAspectLocked(True)
        self.image_plot.invertY(True)
        self.image_plot.hideAxis("bottom")
        self.image_plot.hideAxis("left")
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = TokenHeatItem(colorMap=pg.colormap.get("inferno"), enableAutoLevels=False)
        self.heat_item.setOpacity(0.65)
        self.heat_item.setZValue(5)
        self.image_plot.addItem(self.image_item)
        self.image_plot.addItem(self.heat_item)
        self.image_plot.setTitle("attention at the current step", size="9pt")
        # the step, token and maximum change on every step: a text item pinned to the view box's
        # corner, not the plot title (a new title re-lays out the whole graphics layout each step)
        self.step_caption = pg.TextItem("", color="k", fill=pg.mkBrush(255, 255, 255, 200), anchor=(0, 0))
        self.step_caption.setParentItem(self.image_plot.getViewBox())
        self.step_caption.setPos(2, 2)
        self.step_caption.setZValue(20)
        self.image_plot.getViewBox().sigResized.connect(self._fit_image)
        self.matrix_plot.getViewBox().sigResized.connect(self._label_matrix)

        self.mass_plot = pg.PlotItem()
        self.mass_plot.setLabel("bottom", "decode step")
        self.mass_plot.setLabel("left", "attention mass")
        self.mass_plot.setMouseEnabled(x=True, y=False)
        self.mass_ticks = IntegerAxis(self.mass_plot, "bottom", min_px=30)
        self.mass_legend = self.mass_plot.addLegend(offset=(-4, 4), labelTextSize="8pt", colCount=2)
        self.mass_curves: list[pg.PlotDataItem] = []
        self.step_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#00BFFF", width=2))
        self.mass_plot.addItem(self.step_line, ignoreBounds=True)  # moving it re-ranges nothing
        for plot in (self.matrix_plot, self.image_plot, self.mass_plot):
            plot.setMenuEnabled(False)
            for axis in ("bottom", "left"):
                plain_axis(plot.getAxis(axis))

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        self._arrange()

        self._redraw_timer = FrameCoalescer(
            self.refresh, min_gap_ms=15, parent=self, busy=lambda: streaming(self.state)
        )
        s = state
        s.inspector.head_changed.connect(self._on_head)
        s.discovery.result_changed.connect(self._redraw_timer.request)
        s.heads.scores_changed.connect(self._on_shape)
        s.step.step_changed.connect(self._on_step)
        s.session.shown_runs_changed.connect(self._redraw_timer.request)
        s.session.run_updated.connect(self._on_run_updated)
        s.session.image_changed.connect(self._redraw_timer.request)
        self._on_shape()
        self.refresh()

    # ---- model -> view -----------------------------------------------------------------------
    def _on_shape(self) -> None:
        heads = self.state.heads
        with signals_blocked(self.layer_spin, self.head_spin):
            self.layer_spin.setRange(0, max(heads.n_layers - 1, 0))
            self.head_spin.setRange(0, max(heads.n_heads - 1, 0))
        self._redraw_timer.request()

    def _on_head(self) -> None:
        head = self.state.inspector.head
        if head is not None:
            with signals_blocked(self.layer_spin, self.head_spin):
                self.layer_spin.setValue(head[0])
                self.head_spin.setValue(head[1])
        self._redraw_timer.request()

    def _on_step(self, step: int) -> None:
        if self.isVisible():  # the redraw moves the step line with the heat: one paint, not two
            self._redraw_timer.request()
        else:  # a hidden inspector costs nothing to scrub
            self.step_line.setValue(step)

    def _on_run_updated(self, index: int) -> None:
        if index == self.state.session.shown and self.isVisible():
            self._redraw_timer.request()

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self._redraw_timer.request()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange()

    def _arrange(self) -> None:
        """Three plots in a row when the dock is wide, in a column when it is tall."""
        horizontal = self.width() > 1.4 * max(self.height(), 1)
        if horizontal == self._horizontal:
            return
        self._horizontal = horizontal
        layout = self.graphics.ci
        for plot in (self.matrix_plot, self.image_plot, self.mass_plot):
            if plot in layout.items:
                layout.removeItem(plot)
        for i, plot in enumerate((self.matrix_plot, self.image_plot, self.mass_plot)):
            layout.addItem(plot, row=0 if horizontal else i, col=i if horizontal else 0)

    def _fit_image(self, *_: object) -> None:
        image = self.state.session.image
        if image is not None:
            h, w = image.shape[:2]
            self.image_plot.getViewBox().setRange(QtCore.QRectF(0, 0, w, h), padding=0.0)

    # ---- data ----------------------------------------------------------------------------------
    def head_score(self) -> tuple[float, int, int] | None:
        """(gaze score, rank from 1, number of scored heads) of the inspected head."""
        head = self.state.inspector.head
        ranked = self.state.discovery.ranked() if self.state.discovery.has_result else []
        if head is None or not ranked:
            scores = self.state.heads.gaze_scores
            if head is None or scores is None:
                return None
            from gaze_explorer.core.heads import ranking

            ranked = ranking(scores)
        for i, r in enumerate(ranked):
            if (r["layer"], r["head"]) == head:
                return r["score"], i + 1, len(ranked)
        return None

    def refresh(self) -> None:
        """Redraw what changed: a step change redraws only the heat and the step line (the matrix,
        title and mass curves are kept while their head, data and run stay the same)."""
        s = self.state
        head = s.inspector.head
        n_layers, n_heads = s.heads.n_layers, s.heads.n_heads
        if head is not None and not (0 <= head[0] < n_layers and 0 <= head[1] < n_heads):
            head = None
        run, grid = s.session.shown_run, s.session.grid
        static_key = (head, id(s.discovery.matrices), id(s.heads.gaze_scores), id(run), id(grid))
        if static_key != self._static_key:
            self._static_key = static_key
            self._refresh_static(head, run, grid)
        elif (
            run is not None
            and grid is not None
            and self.masses is not None
            and len(self.masses) < run.n_steps
        ):
            # a streaming run: only its new steps
            regions = run.regions or s.session.regions
            self.masses = np.concatenate(
                [self.masses, head_panel_masses(run, grid, regions, head, len(self.masses))]
            )
            self._show_masses(self.masses, regions)
        self.step_line.setValue(s.step.step)
        if head is None or run is None or grid is None or run.rows_at is None or run.n_steps == 0:
            self._show_heat(None)
            return
        step = min(s.step.step, run.n_steps - 1)
        rows = run.rows_at(step)
        if rows is not None and not self._reaches_image(rows, grid):
            rows = None
        one = HeadSet(f"L{head[0]}H{head[1]}", (head,))
        self._show_heat(None if rows is None else overlay_heat(rows, grid, one), step)

    def _refresh_static(self, head, run, grid) -> None:
        """Title, panel matrix and the per-region mass curves of ``head`` over ``run``."""
        s = self.state
        if head is None:
            self.title.setText("Click a cell of the layer × head grid (or press Best) to inspect that head.")
            self._show_matrix(None, "panel matrix")
            self._show_masses(None, [])
            return
        scored = self.head_score()
        score = (
            f" · gaze score {scored[0]:.3g} (rank {scored[1]} of {scored[2]})"
            if scored
            else " · no gaze score yet"
        )
        self.title.setText(f"<b>L{head[0]} H{head[1]}</b>{score}")
        matrices = s.discovery.matrices
        if matrices is None:
            self._show_matrix(None, "panel matrix: run discovery first")
        else:
            self._show_matrix(
                np.asarray(matrices)[head], f"panel matrix ({s.discovery.n_strips or '?'} strips)"
            )
        if run is None or grid is None or run.rows_at is None or run.n_steps == 0:
            self._show_masses(None, [])
            return
        regions = run.regions or s.session.regions
        first = run.rows_at(0)
        usable = bool(regions) and (first is None or self._reaches_image(first, grid))
        self.masses = head_panel_masses(run, grid, regions, head) if usable else None
        self._show_masses(self.masses, regions)

    @staticmethod
    def _reaches_image(rows: np.ndarray, grid) -> bool:
        """Whether a step's rows ``[layer, head, key]`` hold the image tokens' keys (a run whose rows
        and grid disagree is shown empty rather than raising on every step)."""
        return grid.n_tokens > 0 and int(grid.positions.max()) < rows.shape[-1]

    def _show_matrix(self, matrix: np.ndarray | None, title: str) -> None:
        self.matrix = None if matrix is None else np.asarray(matrix, dtype=np.float64)
        self.matrix_plot.setTitle(title, size="9pt")
        for label in self.matrix_labels:  # values of the previous head
            self.matrix_plot.removeItem(label)
        self.matrix_labels = []
        if self.matrix is None:
            self.matrix_item.clear()
            return
        m = self.matrix
        top = float(np.nanmax(m)) if np.isfinite(m).any() else 1.0
        self.matrix_item.setImage(m, autoLevels=False, levels=(0.0, top if top > 0 else 1.0))
        n = m.shape[0]
        self.matrix_item.setRect(QtCore.QRectF(-0.5, -0.5, m.shape[1], n))
        ticks = [[(i, f"P{i + 1}") for i in range(n)]]
        self.matrix_plot.getAxis("bottom").setTicks(ticks)
        self.matrix_plot.getAxis("left").setTicks(ticks)
        self.matrix_plot.autoRange(padding=0.02)
        self._label_matrix()

    def _label_matrix(self, *_: object) -> None:
        """The values in the cells, when a cell is wide enough to hold "0.00" legibly."""
        m = self.matrix
        vb = self.matrix_plot.getViewBox()
        want = (
            m is not None and vb.width() / max(m.shape[1], 1) >= 32 and vb.height() / max(m.shape[0], 1) >= 14
        )
        if want == bool(self.matrix_labels):
            return
        for label in self.matrix_labels:
            self.matrix_plot.removeItem(label)
        self.matrix_labels = []
        if not want:
            return
        top = float(np.nanmax(m)) if np.isfinite(m).any() else 1.0
        for (q, a), v in np.ndenumerate(m):
            label = pg.TextItem(f"{v:.2f}", color="w" if v < 0.6 * top else "k", anchor=(0.5, 0.5))
            label.setFont(self._value_font)
            label.setPos(a, q)
            label.setZValue(5)
            self.matrix_plot.addItem(label)
            self.matrix_labels.append(label)

    def _show_heat(self, heat: np.ndarray | None, step: int | None = None) -> None:
        s = self.state
        image = s.session.image
        if image is not None and id(image) != self._image_id:
            self._image_id = id(image)
            self.image_item.setImage(greyscale(image), autoLevels=False, levels=(0, 255))
            h, w = image.shape[:2]
            self.image_item.setRect(QtCore.QRectF(0, 0, w, h))
            self._fit_image()
        self.heat = heat
        grid = s.session.grid
        if heat is None or grid is None:
            self.heat_item.setVisible(False)
            self._set_caption("no run yet")
            return
        top = float(heat.max())
        x, y = grid_corners(grid)
        self.heat_item.setData(x, y, heat, autoLevels=False)
        self.heat_item.setLevels((0.0, top if top > 0 else 1.0))
        self.heat_item.setVisible(True)
        run = s.session.shown_run
        token = run.tokens[step] if run is not None and step is not None and step < run.n_steps else ""
        self._set_caption(f"step {step} {token!r} · max {top:.3g}")

    def _set_caption(self, text: str) -> None:
        if text != self.step_caption.toPlainText():
            self.step_caption.setText(text)

    def _show_masses(self, masses: np.ndarray | None, regions) -> None:
        if masses is not None and masses.size and len(self.mass_curves) == len(regions) == masses.shape[1]:
            steps = np.arange(masses.shape[0])  # the same regions: new data on the same curves
            for i, curve in enumerate(self.mass_curves):
                curve.setData(steps, masses[:, i])
            self._range_masses(masses)
            return
        for curve in self.mass_curves:
            self.mass_plot.removeItem(curve)
        self.mass_curves = []
        self.mass_legend.clear()
        if masses is None or masses.size == 0:
            self.mass_plot.setTitle("mass per panel over the run: no run yet", size="9pt")
            return
        steps = np.arange(masses.shape[0])
        for i, region in enumerate(regions):
            colour = PANEL_COLOURS[i % len(PANEL_COLOURS)]
            name = f"P{i + 1}" if region.kind == "panel" else region.name
            curve = self.mass_plot.plot(steps, masses[:, i], pen=pg.mkPen(colour, width=2), name=name)
            # the step line moves on every step and Qt repaints the curves it crosses: blit them
            # from a cache (redrawn when their data or the view change) instead of re-stroking them
            curve.curve.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.mass_curves.append(curve)
        self.mass_plot.setTitle("mass per region over the run", size="9pt")  # short: a title sets the width
        self.step_line.setValue(self.state.step.step)
        self._range_masses(masses)

    def _range_masses(self, masses: np.ndarray) -> None:
        """The run's steps and masses in view, set once per data change: in auto-range mode pyqtgraph
        recomputes every item's bounds on each paint that follows a move of the step line."""
        top = float(np.nanmax(masses)) if np.isfinite(masses).any() else 1.0
        self.mass_plot.setXRange(0, max(masses.shape[0] - 1, 1), padding=0.02)
        self.mass_plot.setYRange(0, top if top > 0 else 1.0, padding=0.05)

    # ---- view -> model -----------------------------------------------------------------------
    def _head_from_ui(self, *_: object) -> None:
        self.state.inspector.set_head((self.layer_spin.value(), self.head_spin.value()))

    def open_best(self) -> None:
        """Inspect the best-scoring head (posts a message when there are no scores yet)."""
        best = self.state.discovery.best_head()
        if best is None and self.state.heads.gaze_scores is not None:
            from gaze_explorer.core.heads import ranking

            top = ranking(self.state.heads.gaze_scores)[:1]
            best = (top[0]["layer"], top[0]["head"]) if top else None
        if best is None:
            self.state.status.post("no gaze scores yet: run discovery first")
            return
        self.state.inspector.set_head(best)

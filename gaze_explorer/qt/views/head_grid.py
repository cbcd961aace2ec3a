"""Layer x head grid: a per-head score image (gaze score, or the current step's attention mass on
the target or on one panel), with hover read-out, click-to-inspect, Ctrl+click to toggle a custom
pick and shift-drag rectangle picks.

The active head set is outlined, the inspected head framed. Picks go to the model's custom set; the
model decides what the active set is. Axis ticks stay on integers and label every layer and head
that fits (every one up to ~40 at a normal dock size; a stride, and wheel zoom, for 64 x 64).

Layers without softmax attention (Qwen3.5's linear-attention layers, 3 in 4) have no attention
weights. The model says which they are (``HeadSelectionModel.attention_layers``, from the loaded
model or the session file), so they are known before any discovery; without that (an older session
file) a layer whose every discovery score is NaN is one. Those rows are hatched grey, labelled "lin"
on the layer axis, say so on hover, and a click, Ctrl+click or rectangle does not inspect or pick
their heads (a status line says why).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.head_selection import HeadSelectionModel
from gaze_explorer.core.scoring import head_region_mass
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer, streaming
from gaze_explorer.qt.widgets.plot_style import IntegerAxis, plain_axis

INSPECTED_COLOUR = "#00BFFF"
NOT_APPLICABLE_COLOUR = "#8C8C8C"


def linear_layers(heads: HeadSelectionModel) -> tuple[int, ...]:
    """The layers without softmax attention: those not in the model's ``attention_layers`` when it
    is known; else the layers whose every head has no gaze score (NaN, ``[layer, head]`` scores):
    discovery scores a layer without softmax attention so (``inference.attention``: NaN rows for
    Qwen3.5's linear-attention layers), and no other cause empties a whole layer of its grid."""
    if heads.attention_layers is not None:
        attention = set(heads.attention_layers)
        return tuple(layer for layer in range(heads.n_layers) if layer not in attention)
    if heads.gaze_scores is None:
        return ()
    scores = np.asarray(heads.gaze_scores, dtype=np.float64)
    return tuple(int(layer) for layer in np.flatnonzero(np.isnan(scores).all(axis=1)))


def linear_layer_text(layer: int) -> str:
    return f"layer {layer}: linear attention, no attention weights"


class _LayerAxis(IntegerAxis):
    """The layer axis: integer ticks, a linear-attention layer's label suffixed "lin"."""

    def __init__(self, plot, linear, **kwargs) -> None:
        self.linear = linear  # a callable giving the linear layers
        super().__init__(plot, "left", **kwargs)

    def update(self, *_: object) -> list:
        ticks = super().update()
        linear = set(self.linear())
        if linear:
            ticks = [(v, f"{label} lin" if v in linear else label) for v, label in ticks]
            self.axis.setTicks([ticks, []])
        return ticks


class _PickViewBox(pg.ViewBox):
    """A ViewBox whose shift-drag draws a selection rectangle instead of panning."""

    rect_selected = QtCore.Signal(float, float, float, float)  # x0, y0, x1, y1 in data coordinates

    def __init__(self) -> None:
        super().__init__()
        self._band = QtWidgets.QGraphicsRectItem()
        self._band.setPen(pg.mkPen("#E69F00", width=2, style=QtCore.Qt.PenStyle.DashLine))
        self._band.setZValue(50)
        self._band.setVisible(False)
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if not ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        a = self.mapSceneToView(ev.buttonDownScenePos())
        b = self.mapSceneToView(ev.scenePos())
        rect = QtCore.QRectF(a, b).normalized()
        self._band.setRect(rect)
        self._band.setVisible(not ev.isFinish())
        if ev.isFinish():
            self.rect_selected.emit(rect.left(), rect.top(), rect.right(), rect.bottom())


class HeadGridView(QtWidgets.QWidget):
    """Per-head scores as a ``[layer, head]`` image (rows = layers, columns = heads)."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.scores: np.ndarray | None = None  # what the image shows, [layer, head]
        self._limits: tuple[int, int] | None = None
        self._title: str | None = None
        self._marks: tuple | None = None  # (active, custom, inspected) as drawn
        self.linear: tuple[int, ...] = ()  # linear-attention layers, as drawn
        self._linear_width = 0  # the heads their bands span, as drawn
        self.linear_items: list[QtWidgets.QGraphicsRectItem] = []  # one hatched band per such layer
        self.mode_combo = QtWidgets.QComboBox()
        self.mode_combo.addItem("gaze score (discovery)", "gaze")
        self.mode_combo.addItem("step → target", "target")
        self.mode_combo.addItem("step → panel", "panel")
        self.panel_spin = QtWidgets.QSpinBox()
        self.panel_spin.setRange(1, 32)
        self.panel_spin.setPrefix("panel ")
        self.mode_combo.currentIndexChanged.connect(self._mode_from_ui)
        self.panel_spin.valueChanged.connect(self._mode_from_ui)
        self.panel_spin.setVisible(False)
        self.hover_label = QtWidgets.QLabel("click: inspect")
        self.hover_label.setToolTip(
            "Click: open the head in the inspector · Ctrl+click: toggle a custom pick · "
            "Shift+drag: pick a rectangle · wheel: zoom"
        )
        self.hover_label.setMinimumWidth(120)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("score"))
        row.addWidget(self.mode_combo)
        row.addWidget(self.panel_spin)
        row.addStretch(1)
        row.addWidget(self.hover_label)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.viewbox = _PickViewBox()
        self.plot = self.graphics.addPlot(viewBox=self.viewbox)
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        for axis in ("bottom", "left"):
            plain_axis(self.plot.getAxis(axis))
        self.plot.setLabel("bottom", "head")
        self.plot.setLabel("left", "layer")
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image_item)
        self.colour_bar = pg.ColorBarItem(
            values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False, width=14
        )
        self.colour_bar.setImageItem(self.image_item, insert_in=self.plot)
        plain_axis(self.colour_bar.axis)
        # active set: unfilled squares on the cells; custom picks: small dots
        self.active_item = pg.ScatterPlotItem(
            symbol="s", size=0.92, pxMode=False, pen=pg.mkPen("#D55E00", width=3), brush=None
        )
        self.custom_item = pg.ScatterPlotItem(
            symbol="o", size=0.3, pxMode=False, pen=None, brush=pg.mkBrush("w")
        )
        self.inspected_item = pg.ScatterPlotItem(
            symbol="s", size=1.0, pxMode=False, pen=pg.mkPen(INSPECTED_COLOUR, width=2), brush=None
        )
        tick_font = QtGui.QFont()
        tick_font.setPointSize(8)  # small enough to label each of 40 layers in a ~450 px plot
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).setStyle(tickFont=tick_font)
        self.y_ticks = _LayerAxis(
            self.plot, lambda: self.linear, min_px=11, count=lambda: self.state.heads.n_layers
        )
        self.x_ticks = IntegerAxis(self.plot, "bottom", min_px=22, count=lambda: self.state.heads.n_heads)
        for item in (self.active_item, self.custom_item, self.inspected_item):
            item.setZValue(10)
            self.plot.addItem(item)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row)
        layout.addWidget(self.graphics, 1)

        self._hover_proxy = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.viewbox.rect_selected.connect(self._on_rect)
        self._redraw_timer = FrameCoalescer(
            self.refresh, min_gap_ms=15, parent=self, busy=lambda: streaming(self.state)
        )
        s = state
        s.heads.scores_changed.connect(self._schedule)
        s.heads.selection_changed.connect(self._draw_marks)
        s.heads.custom_changed.connect(self._draw_marks)
        s.inspector.head_changed.connect(self._draw_marks)
        s.grid_score_mode.mode_changed.connect(self._schedule)
        s.step.step_changed.connect(self._on_step)
        s.session.shown_runs_changed.connect(self._schedule)
        s.session.run_updated.connect(self._schedule)
        s.target.target_changed.connect(self._schedule)
        self.refresh()

    def _schedule(self, *_: object) -> None:
        self._redraw_timer.request()

    def _on_step(self, *_: object) -> None:
        if self.state.grid_score_mode.mode != "gaze":  # gaze scores do not change with the step
            self._redraw_timer.request()

    def _mode_from_ui(self, *_: object) -> None:
        mode = self.mode_combo.currentData()
        self.panel_spin.setVisible(mode == "panel")
        self.state.grid_score_mode.set_mode(mode, self.panel_spin.value() - 1)

    def compute_scores(self) -> tuple[np.ndarray | None, str]:
        """The ``[layer, head]`` scores for the current mode, and a title for them."""
        s = self.state
        mode = s.grid_score_mode.mode
        if mode == "gaze":
            if s.heads.gaze_scores is None:
                return None, "gaze score: run discovery first"
            return s.heads.gaze_scores, "gaze score"
        run, grid = s.session.shown_run, s.session.grid
        if run is None or grid is None or run.rows_at is None or run.n_steps == 0:
            return None, "no run"
        step = min(s.step.step, run.n_steps - 1)
        rows = run.rows_at(step)
        regions = run.regions or s.session.regions
        if rows is None or not regions:
            return None, "no captured attention"
        if mode == "target":
            index = run.targets[step] if step < len(run.targets) else None
            if index is None:
                index = s.target.panel
            title = "target"
        else:
            index = s.grid_score_mode.panel
            title = f"panel {index + 1}"
        if not 0 <= index < len(regions):
            return None, f"{title}: no such region"
        return head_region_mass(rows, grid, regions[index]), f"step {step} → {regions[index].name}"

    def refresh(self) -> None:
        scores, title = self.compute_scores()
        self.scores = scores
        if title != self._title:  # a title, even the same one, re-lays out the plot
            self._title = title
            self.plot.setTitle(title)
        n_layers, n_heads = self.state.heads.n_layers, self.state.heads.n_heads
        if n_layers and self._limits != (n_layers, n_heads):  # zoom and pan stay on the grid
            self._limits = (n_layers, n_heads)
            self.viewbox.setLimits(xMin=-1, xMax=n_heads, yMin=-1, yMax=n_layers, minXRange=3, minYRange=3)
        if scores is None:
            self.image_item.clear()
            if n_layers:
                self.plot.setXRange(-0.5, n_heads - 0.5, padding=0.02)
                self.plot.setYRange(-0.5, n_layers - 0.5, padding=0.02)
        else:
            top = float(np.nanmax(scores)) if np.isfinite(scores).any() else 1.0
            levels = (min(0.0, float(np.nanmin(scores))), top if top > 0 else 1.0)
            self.image_item.setImage(scores, autoLevels=False, levels=levels)
            self.image_item.setRect(QtCore.QRectF(-0.5, -0.5, scores.shape[1], scores.shape[0]))
            self.colour_bar.setLevels(levels)
            self.plot.setXRange(-0.5, scores.shape[1] - 0.5, padding=0.02)
            self.plot.setYRange(-0.5, scores.shape[0] - 0.5, padding=0.02)
        self._draw_linear(n_heads)
        self._draw_marks(only_if_changed=True)

    def _draw_linear(self, n_heads: int) -> None:
        """Hatch the linear-attention layers' rows and relabel the layer axis (when they change)."""
        linear = linear_layers(self.state.heads)
        if (linear, n_heads) == (self.linear, self._linear_width) and len(self.linear_items) == len(linear):
            return
        self.linear, self._linear_width = linear, n_heads
        for item in self.linear_items:
            self.plot.removeItem(item)
        self.linear_items = []
        brush = QtGui.QBrush(QtGui.QColor(NOT_APPLICABLE_COLOUR), QtCore.Qt.BrushStyle.BDiagPattern)
        for layer in linear:
            band = QtWidgets.QGraphicsRectItem(-0.5, layer - 0.5, max(n_heads, 1), 1.0)
            band.setBrush(brush)
            band.setPen(pg.mkPen(NOT_APPLICABLE_COLOUR, width=1))
            band.setToolTip(linear_layer_text(layer))
            band.setZValue(5)  # over the (transparent NaN) cells, under the marks
            self.plot.addItem(band)
            self.linear_items.append(band)
        self.y_ticks.update()

    def _draw_marks(self, *_: object, only_if_changed: bool = False) -> None:
        heads = self.state.heads
        marks = (heads.active.heads, frozenset(heads.custom), self.state.inspector.head)
        if only_if_changed and marks == self._marks:  # a step change leaves the marks as they are
            return
        self._marks = marks
        active = np.array(heads.active.heads, dtype=float).reshape(-1, 2)
        self.active_item.setData(x=active[:, 1], y=active[:, 0])
        custom = np.array(sorted(heads.custom), dtype=float).reshape(-1, 2)
        self.custom_item.setData(x=custom[:, 1], y=custom[:, 0])
        head = self.state.inspector.head
        self.inspected_item.setData(x=[] if head is None else [head[1]], y=[] if head is None else [head[0]])

    def _cell_at(self, scene_pos) -> tuple[int, int] | None:
        if not self.plot.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.viewbox.mapSceneToView(scene_pos)
        layer, head = round(p.y()), round(p.x())
        if 0 <= layer < self.state.heads.n_layers and 0 <= head < self.state.heads.n_heads:
            return layer, head
        return None

    def _on_hover(self, args) -> None:
        cell = self._cell_at(args[0])
        if cell is None:
            return
        layer, head = cell
        if layer in self.linear:
            self.hover_label.setText(linear_layer_text(layer))
            return
        value = "" if self.scores is None else f" = {self.scores[layer, head]:.4g}"
        self.hover_label.setText(f"L{layer} H{head}{value}")

    def _refuse_linear(self, layers) -> None:
        """A status line: these layers' heads cannot be inspected or steered."""
        names = ", ".join(str(layer) for layer in sorted(layers))
        if len(layers) == 1:
            text = f"{linear_layer_text(min(layers))}; its heads cannot be inspected or steered"
        else:
            text = f"layers {names}: linear attention, no attention weights; their heads were left out"
        self.state.status.post(text)

    def _on_click(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        cell = self._cell_at(event.scenePos())
        if cell is None:
            return
        if cell[0] in self.linear:
            self._refuse_linear({cell[0]})
            return
        if event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            self.state.heads.toggle(cell)
            if self.state.heads.kind != "custom":
                self.state.heads.set_kind("custom")
        else:
            self.state.inspector.set_head(cell)

    def _on_rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        heads = self.state.heads
        # every cell the rectangle touches (cells span index +- 0.5)
        h0, h1 = max(math.ceil(x0 - 0.5), 0), min(math.floor(x1 + 0.5), heads.n_heads - 1)
        l0, l1 = max(math.ceil(y0 - 0.5), 0), min(math.floor(y1 + 0.5), heads.n_layers - 1)
        picked = {(layer, head) for layer in range(l0, l1 + 1) for head in range(h0, h1 + 1)}
        linear = {layer for layer, _ in picked if layer in self.linear}
        if linear:
            self._refuse_linear(linear)
            picked = {(layer, head) for layer, head in picked if layer not in linear}
        if picked:
            heads.set_custom(sorted(heads.custom | picked))
            heads.set_kind("custom")

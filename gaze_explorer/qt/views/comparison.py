"""Comparison: several runs side by side (baseline, gaze-steered, random control, all heads).

Each run gets its label, its full answer, and its staircase (the observed heads' attention per step
and region, ``core.comparison``), all on one step axis: the plots are x-linked and span the longest
run, and each plot's bottom axis writes the run's tokens under their own step columns (thinned
where they would overlap; zoom the step axis to see each). A run whose target changed (a schedule
or a live switch) also lists its segments: the steps between switches, the target each was
generated under and the panel the offline judge reads in it (when the image has ground truth).

Each run's staircase is read on the run's own image (its token grid and panels, ``RunData.grid`` and
``regions``): runs of a session may be on different images, with different panel counts; then each
run's title names its image and its panels.

The runs come from the session's selection (``SessionModel.runs_selected``: two or more runs picked
in the session browser, or a reopened session's saved selection) or from "Compare conditions" (the
button asks the main window, which runs the four conditions through the controller: ``set_runs``).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.comparison import ComparisonRow, comparison_rows, shared_step_count
from gaze_explorer.core.judges import PanelTruth
from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.state_data import TrajectoryCache
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer
from gaze_explorer.qt.widgets.plot_style import IntegerAxis, plain_axis, thinned_token_ticks

ROW_PX = 16  # least height of one region row
PLOT_EXTRA_PX = 64  # the step axis on top, the token axis under the rows
LEFT_AXIS_PX = 44  # every plot's region axis equally wide, so step columns line up across runs
HIT, MISS = "✓", "✗"


def image_label(run: RunData) -> str:
    """The image a run was made on and its panel count, e.g. ``image second.png (3 panels)``."""
    name = run.params.get("image_name") or run.params.get("image") or "on screen"
    n = sum(1 for r in run.regions if r.kind == "panel")
    return f"image {name} ({n} panel{'' if n == 1 else 's'})"


def _region_name(index: int | None, names: Sequence[str]) -> str:
    if index is None:
        return "none"
    return names[index] if 0 <= index < len(names) else f"P{index + 1}"


class TokenAxis:
    """Writes a run's tokens under their step columns on a plot's bottom axis, as many as fit
    without overlapping at the current zoom (re-ticked when the range or the size changes)."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.tokens: list[str] = []
        self.ticks: list = []
        self.axis = plot.getAxis("bottom")
        plot.getViewBox().sigRangeChanged.connect(self.update)
        plot.getViewBox().sigResized.connect(self.update)

    def set_tokens(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.update()

    def update(self, *_: object) -> list:
        vb = self.plot.getViewBox()
        (x0, x1), _ = vb.viewRange()
        px_per_step = max(vb.sceneBoundingRect().width(), 1.0) / max(x1 - x0, 1e-6)
        metrics = QtGui.QFontMetrics(self.axis.style.get("tickFont") or QtGui.QFont())
        self.ticks = thinned_token_ticks(self.tokens, px_per_step, metrics.horizontalAdvance)
        self.axis.setTicks([self.ticks, []])
        return self.ticks


class RunPanel(QtWidgets.QFrame):
    """One run: its label, answer, segments and staircase."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.answer = QtWidgets.QLabel()
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.segments = QtWidgets.QLabel()
        self.segments.setWordWrap(True)
        self.segments.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showAxis("top")
        for axis in ("bottom", "left", "top"):
            plain_axis(self.plot.getAxis(axis))
        self.plot.getAxis("left").setWidth(LEFT_AXIS_PX)
        self.step_ticks = IntegerAxis(self.plot, "top", min_px=30)
        self.token_axis = TokenAxis(self.plot)
        # a fixed height for the token row: pyqtgraph sizes an axis from the tallest label it has
        # drawn so far, and the first plot kept a height from before its tokens came (descenders cut)
        bottom = self.plot.getAxis("bottom")
        font = bottom.style.get("tickFont") or QtGui.QFont()
        bottom.setHeight(QtGui.QFontMetrics(font).height() + bottom.style["tickTextOffset"][1] + 6)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setLookupTable(pg.colormap.get("inferno").getLookupTable(nPts=256))
        self.plot.addItem(self.image_item)
        self.switch_lines: list[pg.InfiniteLine] = []
        self.data: np.ndarray | None = None  # [region, step] as drawn
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        for w in (self.title, self.answer, self.segments):
            # the text keeps its height when the panel grows: the free height goes to the plot
            w.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Maximum)
            layout.addWidget(w)
        layout.addWidget(self.plot_widget, 1)

    def show_row(
        self, row: ComparisonRow, region_names: Sequence[str], heads_name: str, image: str = ""
    ) -> None:
        """Draw ``row``; ``image`` (its image and panels) is named when the runs are on several."""
        on_image = f" · {html.escape(image)}" if image else ""
        self.title.setText(
            f"<b>{html.escape(row.label)}</b> · {row.status} · {row.n_steps} tokens"
            f" · staircase of {html.escape(heads_name)}{on_image}"
        )
        self.answer.setText(row.text or "(no tokens yet)")
        self.segments.setText(segments_html(row, region_names))
        self.segments.setVisible(bool(row.segments))
        n_regions = max(len(region_names), 1)
        self.plot.getAxis("left").setTicks([list(enumerate(region_names))])
        # the plots share the dock's free height (a 1080p screen: taller rows); rows below ROW_PX
        # would not be legible, so then the dock scrolls instead
        self.plot_widget.setMinimumHeight(n_regions * ROW_PX + PLOT_EXTRA_PX)
        if row.staircase is None or not row.staircase.size:
            self.image_item.clear()
            self.data = None
        else:
            self.data = np.nan_to_num(row.staircase.T)  # [region, step]
            self.image_item.setImage(self.data, autoLevels=False)
            self.image_item.setRect(QtCore.QRectF(-0.5, -0.5, self.data.shape[1], self.data.shape[0]))
        for line in self.switch_lines:
            self.plot.removeItem(line)
        self.switch_lines = []
        for step in row.switch_steps:  # a segment starts at the left edge of its first column
            line = pg.InfiniteLine(step - 0.5, angle=90, pen=pg.mkPen("#00BFFF", width=2))
            self.plot.addItem(line)
            self.switch_lines.append(line)
        self.plot.setYRange(-0.5, n_regions - 0.5, padding=0)
        self.token_axis.set_tokens(row.tokens)


def segments_html(row: ComparisonRow, region_names: Sequence[str]) -> str:
    """The segments of a switched run as a table: steps, target, judged panel, text."""
    if not row.segments:
        return ""
    lines = [
        "<table cellspacing=0 cellpadding=3><tr><th align=left>steps</th><th align=left>target</th>"
        "<th align=left>judge</th><th align=left>text</th></tr>"
    ]
    for seg in row.segments:
        if seg.judgement is None:
            judged = "no ground truth"
        else:
            mark = HIT if seg.credit else MISS
            judged = f"{_region_name(seg.judged, region_names)} {mark}"
            if seg.judgement.degenerate:
                judged = f"{seg.judgement.reason} {MISS}"
        lines.append(
            f"<tr><td>{seg.start}–{seg.stop - 1}</td><td>{_region_name(seg.target, region_names)}</td>"
            f"<td>{html.escape(judged)}</td><td>{html.escape(seg.text)}</td></tr>"
        )
    return "".join(lines) + "</table>"


class ComparisonView(QtWidgets.QWidget):
    """Runs side by side on a shared step axis; ``compare_requested`` asks for "Compare conditions"."""

    compare_requested = QtCore.Signal()

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.indices: list[int] = []
        self.rows: list[ComparisonRow] = []
        self.panels: list[RunPanel] = []
        self.n_steps = 0
        self.images: list[str] = []  # each shown run's image and panel count (image_label)
        self.n_images = 0  # how many images the shown runs were made on
        self.cache = TrajectoryCache()  # the timeline's: a streaming run adds only its new steps
        # the ground truth of the image on screen, for judging segments (set by the main window)
        self.truth_source: Callable[[], PanelTruth | None] = lambda: None
        self.compare_button = QtWidgets.QPushButton("Compare conditions")
        self.compare_button.setToolTip(
            "Run baseline, top-K gaze, random control and all heads on the current prompt and target, "
            "one after the other, and show them here"
        )
        self.compare_button.clicked.connect(self.compare_requested)
        self.hint = QtWidgets.QLabel()
        self.hint.setWordWrap(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.hint, 1)
        top.addWidget(self.compare_button)
        self.body = QtWidgets.QWidget()
        self.body_layout = QtWidgets.QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        self.body_layout.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.body)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(scroll, 1)
        self._redraw = FrameCoalescer(self.refresh, min_gap_ms=100, parent=self)
        state.session.runs_changed.connect(self._on_runs_changed)
        state.session.run_updated.connect(self._on_run_updated)
        state.session.runs_selected.connect(self._on_runs_selected)
        state.session.compared_changed.connect(self._on_compared)
        state.heads.selection_changed.connect(self._redraw.request)
        self.refresh()

    def set_runs(self, indices: Sequence[int]) -> None:
        """Show runs ``indices`` of the session (in this order): the session model keeps them (a
        reopened session shows them again)."""
        self.state.session.set_compared(indices)
        self._on_compared(self.state.session.compared)

    def _on_compared(self, indices: list) -> None:
        if list(indices) != self.indices:
            self.indices = [int(i) for i in indices]
            self.refresh()

    def _on_runs_selected(self, indices: list) -> None:
        """Two or more runs selected (one run shows in the timeline; the comparison keeps its runs)."""
        if len(indices) >= 2 and list(indices) != self.indices:
            self.set_runs(indices)

    def _on_runs_changed(self) -> None:
        n = len(self.state.session.runs)
        self.indices = [i for i in self.indices if i < n]  # a new session drops the old runs
        self._redraw.request()

    def _on_run_updated(self, index: int) -> None:
        if index in self.indices:
            self._redraw.request()

    def refresh(self) -> None:
        session, heads = self.state.session, self.state.heads.active
        self.rows = comparison_rows(
            session.runs,
            self.indices,
            session.grid,
            session.regions,
            heads,
            self.truth_source(),
            staircase_of=lambda i: self.cache.get(self.state, i),
        )
        while len(self.panels) < len(self.rows):
            panel = RunPanel()
            if self.panels:
                panel.plot.setXLink(self.panels[0].plot)
            # a large stretch: the panels take the free height before the trailing stretch does
            self.body_layout.insertWidget(len(self.panels), panel, 100)
            self.panels.append(panel)
        for i, panel in enumerate(self.panels):
            panel.setVisible(i < len(self.rows))
        self.n_steps = shared_step_count(self.rows)
        # runs on several images (their own panels, maybe another count): each names its image
        self.images = [image_label(session.runs[row.index]) for row in self.rows]
        self.n_images = len({session.runs[row.index].params.get("image") for row in self.rows})
        several = self.n_images > 1
        top = 0.0
        for row, panel, image in zip(self.rows, self.panels, self.images, strict=False):
            run = session.runs[row.index]
            names = [
                f"P{i + 1}" if r.kind == "panel" else r.name
                for i, r in enumerate(run.regions or session.regions)
            ]
            panel.show_row(row, names, heads.name, image if several else "")
            if panel.data is not None:
                top = max(top, float(panel.data.max()))
        for panel in self.panels:
            panel.image_item.setLevels((0.0, top if top > 0 else 1.0))  # one colour scale for every run
        if self.panels and self.rows:
            self.panels[0].plot.setXRange(-0.5, max(self.n_steps, 1) - 0.5, padding=0.01)
        self.hint.setText(self.empty_text())

    def empty_text(self) -> str:
        if len(self.rows) >= 2:
            text = (
                f"{len(self.rows)} runs on one step axis of {self.n_steps} steps; scroll to zoom the steps."
            )
            if self.n_images > 1:
                text += f" They are on {self.n_images} images: each staircase is on its own image's panels."
            return text
        if not self.state.heads.active.heads and self.rows:
            return "No heads selected: the staircases need a head set (Steering dock)."
        return (
            "Select two or more runs in Session runs (Ctrl+click), or press Compare conditions to run "
            "baseline, top-K gaze, random control and all heads on the current prompt and target."
        )

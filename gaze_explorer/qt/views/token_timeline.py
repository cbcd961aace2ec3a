"""Token timeline: the generated tokens as chips, a step slider with play/scrub keys, and the
step x region trajectory ("staircase") of the selected heads with target-switch markers.

A second run (the comparison) is drawn under the first, on the same step axis. Each region row is
at least ``ROW_PX`` tall and labelled; the plots sit in a scroll area, so many regions or a second
run make the plots scroll instead of growing the dock. Step ticks are integers.

Spans: a left-drag across the staircase selects steps a..b (``state.spans``; the overlay then shows
their mean, and the range is shaded here); a click on one step goes back to per-step mode at that
step; Esc too. The middle button pans, the wheel zooms.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.state_data import TrajectoryCache
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer, streaming
from gaze_explorer.qt.widgets.plot_style import IntegerAxis, plain_axis, token_label
from gaze_explorer.qt.widgets.signals import signals_blocked
from gaze_explorer.qt.widgets.span_keys import claim_span_escape, is_span_escape
from gaze_explorer.qt.widgets.step_keys import step_key_action

SCHEDULED_SYMBOL, LIVE_SYMBOL = "t1", "d"  # ▲ scheduled switch, ◆ live switch
SCHEDULED_COLOUR, LIVE_COLOUR = "#0072B2", "#D55E00"
ROW_PX = 18  # least height of one region row of the staircase
TRACK_EXTRA_PX = 80  # a track's title, switch-marker row and step axis
LEFT_AXIS_PX = 44  # both tracks' region axes equally wide, so their step columns line up
CHIP_STYLE = "QLabel {{ background: {bg}; color: {fg}; border-radius: 4px; padding: 1px 4px; }}"
SPAN_CHIP_STYLE = "QLabel {{ background: {bg}; color: {fg}; border: 2px solid #E69F00; border-radius: 4px; padding: 0px 2px; }}"
SPAN_BRUSH = (230, 159, 0, 70)  # the shaded span on the staircase (Okabe-Ito orange)


class _StepRangeViewBox(pg.ViewBox):
    """A ViewBox whose left-drag selects a step range and whose left-click picks a step."""

    steps_dragged = QtCore.Signal(int, int, bool)  # first step, last step (as dragged), finished
    step_clicked = QtCore.Signal(int)

    def _step_at(self, scene_pos) -> int:
        return round(self.mapSceneToView(scene_pos).x())

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        self.steps_dragged.emit(
            self._step_at(ev.buttonDownScenePos()), self._step_at(ev.scenePos()), ev.isFinish()
        )

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseClickEvent(ev)
            return
        ev.accept()
        self.step_clicked.emit(self._step_at(ev.scenePos()))


class _RunTrack:
    """One run's trajectory plot: image, current-step line and switch markers."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.span_item = pg.LinearRegionItem(
            movable=False, brush=pg.mkBrush(SPAN_BRUSH), pen=pg.mkPen("#E69F00", width=2)
        )
        self.span_item.setZValue(5)
        self.span_item.setVisible(False)
        plot.addItem(self.span_item, ignoreBounds=True)
        plot.invertY(True)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=True, y=False)
        plot.setLabel("left", "region")
        for axis in ("bottom", "left"):
            plain_axis(plot.getAxis(axis))
        plot.getAxis("left").setWidth(LEFT_AXIS_PX)
        self.step_ticks = IntegerAxis(plot, "bottom", min_px=30)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        plot.addItem(self.image_item)
        self.step_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#00BFFF", width=2))
        plot.addItem(self.step_line)
        self.scheduled_item = pg.ScatterPlotItem(
            symbol=SCHEDULED_SYMBOL, size=14, brush=SCHEDULED_COLOUR, pen="w"
        )
        self.live_item = pg.ScatterPlotItem(symbol=LIVE_SYMBOL, size=14, brush=LIVE_COLOUR, pen="w")
        for item in (self.scheduled_item, self.live_item):
            item.setZValue(10)
            plot.addItem(item)
        self.data: np.ndarray | None = None  # [region, step] as drawn


class TokenTimelineView(QtWidgets.QWidget):
    """Chips + slider + trajectory heatmaps for the shown run (and the comparison run)."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.cache = TrajectoryCache()
        self.chips: list[QtWidgets.QLabel] = []
        self._x_extent = -1
        self._styled_step = -1  # the chip drawn as current
        self._chip_run: tuple | None = None

        self.chip_box = QtWidgets.QWidget()
        self.chip_layout = QtWidgets.QHBoxLayout(self.chip_box)
        self.chip_layout.setContentsMargins(2, 2, 2, 2)
        self.chip_layout.setSpacing(3)
        self.chip_layout.addStretch(1)
        self.chip_scroll = QtWidgets.QScrollArea()
        self.chip_scroll.setWidget(self.chip_box)
        self.chip_scroll.setWidgetResizable(True)
        self.chip_scroll.setFixedHeight(44)
        self.chip_scroll.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(state.step.set_step)
        self.play_button = QtWidgets.QPushButton("▶")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.toggled.connect(state.step.set_playing)
        self.step_label = QtWidgets.QLabel("step 0/0")
        # a fixed size (long tokens are elided): a label whose size may change re-lays out the whole
        # window on every step change (bench scrub: ~1 ms a step)
        self.step_label.setFixedSize(
            self.step_label.fontMetrics().horizontalAdvance("step 0000/0000  'abcdefghijklmnopqr'"),
            self.step_label.sizeHint().height(),
        )
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.play_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.tracks = [_RunTrack(self.graphics.addPlot(row=0, col=0, viewBox=_StepRangeViewBox()))]
        self.tracks.append(_RunTrack(self.graphics.addPlot(row=1, col=0, viewBox=_StepRangeViewBox())))
        for track in self.tracks:
            track.plot.vb.steps_dragged.connect(self._steps_dragged)
            track.plot.vb.step_clicked.connect(self.pick_step)
        self.tracks[1].plot.setXLink(self.tracks[0].plot)
        self.colour_bar = pg.ColorBarItem(
            values=(0, 1), colorMap=pg.colormap.get("inferno"), interactive=False, width=14
        )
        self.colour_bar.setImageItem([t.image_item for t in self.tracks])
        self.graphics.addItem(self.colour_bar, row=0, col=1, rowspan=2)
        plain_axis(self.colour_bar.axis)
        self.colour_bar.axis.setLabel("attention mass")
        self.tracks[1].plot.setVisible(False)
        self.tracks[1].plot.setMaximumHeight(0)
        self.graphics.setMinimumHeight(ROW_PX * 6 + TRACK_EXTRA_PX)
        self.plots_scroll = QtWidgets.QScrollArea()
        self.plots_scroll.setWidget(self.graphics)
        self.plots_scroll.setWidgetResizable(True)
        self.plots_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.plots_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.empty_label = QtWidgets.QLabel("")
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("QLabel { color: #555; padding: 2px 6px; }")

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.chip_scroll)
        layout.addLayout(row)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.plots_scroll, 1)

        self.play_timer = QtCore.QTimer(self, interval=120)
        self.play_timer.timeout.connect(self._advance)
        self._redraw_timer = FrameCoalescer(
            self.refresh, min_gap_ms=30, parent=self, busy=lambda: streaming(self.state)
        )
        s = state
        s.step.step_changed.connect(self._on_step)
        s.step.range_changed.connect(self._on_range)
        s.step.playing_changed.connect(self._on_playing)
        s.session.shown_runs_changed.connect(self._schedule)
        s.session.run_updated.connect(self._schedule)
        s.session.runs_changed.connect(self.cache.clear)
        s.heads.selection_changed.connect(self._schedule)
        s.spans.selection_changed.connect(self._show_span)
        self.slider.sliderPressed.connect(s.spans.clear)  # the user picks one step: per-step mode
        self._on_range(s.step.n_steps)
        self.refresh()

    # ---- model -> view -----------------------------------------------------------------------
    def _schedule(self, *_: object) -> None:
        self._redraw_timer.request()

    def _on_range(self, n: int) -> None:
        with signals_blocked(self.slider):
            self.slider.setRange(0, max(n - 1, 0))
            self.slider.setValue(self.state.step.step)
        self._on_step(self.state.step.step)

    def _on_step(self, step: int) -> None:
        with signals_blocked(self.slider):
            self.slider.setValue(step)
        n = self.state.step.n_steps
        run = self.state.session.shown_run
        token = run.tokens[step] if run is not None and step < run.n_steps else ""
        shown = token_label(token) if token == "" else repr(token)  # ∅ at the end of sequence, as the chips
        text = f"step {step}/{max(n - 1, 0)}  {shown}"
        width = self.step_label.width()
        self.step_label.setText(
            self.step_label.fontMetrics().elidedText(text, QtCore.Qt.TextElideMode.ElideRight, width)
        )
        for track in self.tracks:
            track.step_line.setValue(step)
        # while a run streams the step can reach a token whose chip the (throttled) redraw has not
        # added yet: add it now, so the label and the current chip name the same token
        if run is not None and len(self.chips) <= step < run.n_steps:
            self._sync_chips(run)
        # restyle only the chip that was current and the new one (a stylesheet costs ~0.3 ms a chip)
        old = self._styled_step
        if old != step and 0 <= old < len(self.chips):
            self._style_chip(self.chips[old], False, self._in_span(old))
        if 0 <= step < len(self.chips):
            self._style_chip(self.chips[step], True, self._in_span(step))
        self._styled_step = step
        span = self.state.spans.selection
        shown = step if span is None else span.start  # a shown span keeps its first token in view
        if 0 <= shown < len(self.chips):
            self.chip_scroll.ensureWidgetVisible(self.chips[shown], 40, 0)

    def _on_playing(self, playing: bool) -> None:
        with signals_blocked(self.play_button):
            self.play_button.setChecked(playing)
            self.play_button.setText("⏸" if playing else "▶")
        if playing:
            if self.state.step.step >= self.state.step.n_steps - 1:
                self.state.step.set_step(0)
            self.play_timer.start()
        else:
            self.play_timer.stop()

    def _advance(self) -> None:
        if self.state.step.step >= self.state.step.n_steps - 1:
            self.state.step.set_playing(False)
        else:
            self.state.step.move(1)

    @staticmethod
    def _style_chip(chip: QtWidgets.QLabel, current: bool, in_span: bool = False) -> None:
        bg, fg = ("#0072B2", "white") if current else ("#E8E8E8", "black")
        chip.setStyleSheet((SPAN_CHIP_STYLE if in_span else CHIP_STYLE).format(bg=bg, fg=fg))

    def _in_span(self, step: int) -> bool:
        span = self.state.spans.selection
        return span is not None and span.start <= step <= span.end

    def _show_span(self) -> None:
        """Shade the selected span on the staircase and outline its chips (or clear both)."""
        span = self.state.spans.selection
        for track in self.tracks:
            track.span_item.setVisible(span is not None)
            if span is not None:
                track.span_item.setRegion((span.start - 0.5, span.end + 0.5))
        for i, chip in enumerate(self.chips):
            self._style_chip(chip, i == self._styled_step, self._in_span(i))
        self._on_step(self.state.step.step)  # scrolls the chips to the span (or back to the step)

    def _sync_chips(self, run: RunData | None) -> None:
        tokens = [] if run is None else run.tokens
        key = (id(run),)
        if key != self._chip_run:
            for chip in self.chips:
                chip.deleteLater()
            self.chips = []
            self._chip_run = key
            self._styled_step = -1
        for i in range(len(self.chips), len(tokens)):
            chip = QtWidgets.QLabel(token_label(tokens[i]))
            chip.setToolTip(f"step {i}: {tokens[i]!r}")
            in_span = self._in_span(i)
            self._style_chip(chip, i == self.state.step.step, in_span)
            # one size for both styles (the span style's border makes it 2 px taller): a restyle then
            # re-lays out nothing (bench scrub: it re-laid out the window on every step change)
            hint = chip.sizeHint()
            chip.setFixedSize(hint.width(), hint.height() + (0 if in_span else 2))
            self.chip_layout.insertWidget(self.chip_layout.count() - 1, chip)
            self.chips.append(chip)

    def refresh(self) -> None:
        session = self.state.session
        self._sync_chips(session.shown_run)
        shown = [(0, session.shown), (1, session.compare)]
        levels_top = 0.0
        for t, index in shown:
            track = self.tracks[t]
            shown_track = index is not None or t == 0
            track.plot.setVisible(shown_track)
            # a hidden plot keeps its row in the layout; a zero height gives the row back
            track.plot.setMaximumHeight(1e6 if shown_track else 0)
            if index is None:
                track.image_item.clear()
                track.data = None
                track.scheduled_item.setData([], [])
                track.live_item.setData([], [])
                continue
            run = session.runs[index]
            traj = self.cache.get(self.state, index)  # [step, region]
            regions = run.regions or session.regions
            track.plot.setTitle(f"{run.name} · {run.status} · {self.state.heads.active.name}", size="9pt")
            track.plot.getAxis("left").setTicks(
                [[(i, f"P{i + 1}" if r.kind == "panel" else r.name) for i, r in enumerate(regions)]]
            )
            if traj is None:
                track.image_item.clear()
                track.data = None
            else:
                track.data = np.nan_to_num(traj.T)  # [region, step]
                track.image_item.setImage(track.data, autoLevels=False)
                track.image_item.setRect(QtCore.QRectF(-0.5, -0.5, traj.shape[0], traj.shape[1]))
                levels_top = max(levels_top, float(track.data.max()))
            live = [sw.step for sw in run.switches if sw.source == "live"]
            sched = sorted({sw.step for sw in run.switches if sw.source == "schedule"} | set(run.scheduled))
            track.live_item.setData(live, [-0.75] * len(live))
            track.scheduled_item.setData(sched, [-0.75] * len(sched))
            track.plot.setYRange(-1.1, max(len(regions), 1) - 0.5, padding=0)
        levels = (0.0, levels_top if levels_top > 0 else 1.0)
        n_max = max((session.runs[i].n_steps for _, i in shown if i is not None), default=0)
        if n_max != self._x_extent:  # follow a growing run; keep the user's zoom otherwise
            self._x_extent = n_max
            self.tracks[0].plot.setXRange(-0.5, max(n_max, 1) - 0.5, padding=0.01)
        compare = session.compare is not None
        self.tracks[0].plot.getAxis("bottom").setStyle(showValues=not compare)
        n_regions = [len(session.runs[i].regions or session.regions) for _, i in shown if i is not None] or [
            6
        ]
        self.graphics.setMinimumHeight(sum(max(n, 1) * ROW_PX + TRACK_EXTRA_PX for n in n_regions))
        self.empty_label.setText(self.empty_text())
        self.empty_label.setVisible(bool(self.empty_label.text()))
        for track in self.tracks:
            track.image_item.setLevels(levels)
        self.colour_bar.setLevels(levels)
        self.tracks[-1].plot.setLabel("bottom", "decode step")
        self._on_step(self.state.step.step)

    def empty_text(self) -> str:
        """What to do first when the staircase is empty (an empty string when it is not)."""
        s = self.state
        run = s.session.shown_run
        if run is None:
            return "No run yet: press Generate baseline or Steer (Steering dock) to see the staircase."
        if not s.heads.active.heads:
            if s.heads.gaze_scores is None:
                return (
                    "The staircase shows the attention of the selected heads, and none are selected yet: "
                    "run discovery (Discovery dock) for the top-K gaze heads, or Ctrl+click heads in the grid."
                )
            return (
                "No heads selected: choose a head set in the Steering dock, or Ctrl+click heads in the grid."
            )
        return ""

    # ---- view -> model -----------------------------------------------------------------------
    def _n_steps(self) -> int:
        run = self.state.session.shown_run
        return 0 if run is None else run.n_steps

    def _steps_dragged(self, first: int, last: int, finished: bool) -> None:
        """A drag across the staircase: shade it as it goes, select the steps when it ends."""
        n = self._n_steps()
        if n == 0:
            return
        lo, hi = sorted((min(max(first, 0), n - 1), min(max(last, 0), n - 1)))
        if not finished:
            for track in self.tracks:
                track.span_item.setRegion((lo - 0.5, hi + 0.5))
                track.span_item.setVisible(True)
            return
        self.select_steps(lo, hi)

    def select_steps(self, first: int, last: int) -> None:
        """Show the mean of steps ``first``..``last`` (one step: back to per-step mode there)."""
        if first == last:
            self.pick_step(first)
        else:
            self.state.spans.select(first, last)

    def pick_step(self, step: int) -> None:
        """Per-step mode at ``step`` (a click on the staircase)."""
        n = self._n_steps()
        self.state.spans.clear()
        self._show_span()  # a drag that ended on its own step leaves no shading behind
        if n:
            self.state.step.set_step(min(max(step, 0), n - 1))

    def event(self, event: QtCore.QEvent) -> bool:
        # getattr: Qt may still send events while the view is destroyed, after Python has cleared
        # its attributes (an exception there, inside pyqtgraph's item changes, crashed a test run)
        return claim_span_escape(event, getattr(self, "state", None)) or super().event(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if is_span_escape(event, self.state):
            self.state.spans.clear()
            return
        action = step_key_action(event.keyCombination())
        if action is not None:
            action(self.state.step)
        else:
            super().keyPressEvent(event)

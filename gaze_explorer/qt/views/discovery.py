"""Discovery: run gaze-head discovery on the demo comics, a folder, or the current strip, with a
progress bar and Cancel. The main window runs the worker; this view asks for it and shows progress.

Before any discovery it says that this is where to start; after one, a summary of
:class:`~gaze_explorer.core.state.DiscoveryModel`: strips used, the top heads with their scores, the
score histogram (paper Fig. 15), where the top-K heads sit by layer (Fig. 16) and, when discovery
kept what the other criteria need, the agreement between criteria (gaze / image / localization).
A session may hold several discoveries: the "shown" box lists them (key, source, strips, time; the
newest is the default) and choosing one asks the model to show it (the session control loads it).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gaze_explorer.core.state import AppState
from gaze_explorer.qt.widgets.plot_style import plain_axis

START_TEXT = (
    "<b>Start here.</b> Run discovery to find the gaze heads: it scores every head on comic strips "
    "(the demo comics take a few seconds). The top-K heads then drive the overlay, the staircase and "
    "Steer; click a grid cell to inspect one head."
)
N_TOP_SHOWN = 8

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
        self.choice_label = QtWidgets.QLabel("shown")
        self.choice_combo = QtWidgets.QComboBox()
        self.choice_combo.setToolTip(
            "The session's discoveries, oldest first: the one chosen drives the grid, the summary "
            "and the top-K heads (runs keep their own heads)"
        )
        self.choice_combo.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.choice_combo.activated.connect(self._choose)  # the user's pick only, not set_stored's
        layout.addWidget(self.choice_label, 4, 0)
        layout.addWidget(self.choice_combo, 4, 1, 1, 2)
        self.summary_label = QtWidgets.QLabel(START_TEXT)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.summary_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.summary_plots = pg.GraphicsLayoutWidget()
        self.summary_plots.setBackground("w")
        self.summary_plots.setMinimumHeight(260)
        self.hist_plot = self.summary_plots.addPlot(row=0, col=0)
        self.layer_plot = self.summary_plots.addPlot(row=1, col=0)
        for plot, bottom, left in (
            (self.hist_plot, "gaze score", "heads"),
            (self.layer_plot, "layer", "top-K heads"),
        ):
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.setLabel("bottom", bottom)
            plot.setLabel("left", left)
            for axis in ("bottom", "left"):
                plain_axis(plot.getAxis(axis))
        self.hist_item = pg.BarGraphItem(x=[], height=[], width=1.0, brush="#0072B2")
        self.layer_item = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#D55E00")
        self.hist_plot.addItem(self.hist_item)
        self.layer_plot.addItem(self.layer_item)
        self.summary_plots.setVisible(False)
        summary = QtWidgets.QWidget()
        summary_layout = QtWidgets.QVBoxLayout(summary)
        summary_layout.setContentsMargins(0, 0, 0, 0)
        summary_layout.addWidget(self.summary_label)
        summary_layout.addWidget(self.summary_plots)
        summary_layout.addStretch(1)
        self.summary_scroll = QtWidgets.QScrollArea()
        self.summary_scroll.setWidget(summary)
        self.summary_scroll.setWidgetResizable(True)
        self.summary_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.summary_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout.addWidget(self.summary_scroll, 5, 0, 1, 3)
        layout.setRowStretch(5, 1)
        self._source_changed()
        self._task_running = False
        state.status.progress_changed.connect(self._on_progress)
        state.discovery.result_changed.connect(self.show_summary)
        state.discovery.stored_changed.connect(self.show_stored)
        state.heads.selection_changed.connect(self._on_k_changed)
        self._summary_k = -1
        self.show_stored()

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

    # ---- the session's discoveries -------------------------------------------------------------
    def show_stored(self) -> None:
        """List the session's stored discoveries and select the one shown."""
        d = self.state.discovery
        combo = self.choice_combo
        with QtCore.QSignalBlocker(combo):
            combo.clear()
            for key, label in d.stored:
                combo.addItem(label, key)
            combo.setCurrentIndex(combo.findData(d.key) if d.key is not None else -1)
        for w in (self.choice_label, combo):
            w.setVisible(bool(d.stored))
        combo.setEnabled(len(d.stored) > 1)
        self.summary_label.setText(self.summary_text())  # it names the discovery shown

    def _choose(self, index: int) -> None:
        key = self.choice_combo.itemData(index)
        if key is not None:
            self.state.discovery.choose(str(key))

    # ---- summary -------------------------------------------------------------------------------
    def _on_k_changed(self) -> None:
        if self.state.discovery.has_result and self.state.heads.k != self._summary_k:
            self.show_summary()

    def summary_text(self) -> str:
        """The summary's text (HTML): strips, top heads with scores, agreement between criteria."""
        d = self.state.discovery
        if not d.has_result:
            return START_TEXT
        ranked = d.ranked()
        k = self.state.heads.k
        strips = f"{d.n_strips} strip(s)" if d.n_strips else "strips: as stored in the session"
        which = f" {d.key}" if d.key else ""
        lines = [f"<b>Discovery{which}</b>: {strips}, {len(ranked)} heads scored."]
        top = ", ".join(f"L{r['layer']}H{r['head']} {r['score']:.2f}" for r in ranked[:N_TOP_SHOWN])
        lines.append(f"<b>Top heads</b>: {top}")
        agreement = d.agreement()
        if agreement:
            short = {"gaze": "gaze", "image": "img", "localization": "loc"}
            head = "".join(
                f"<th>{short.get(p['a'], p['a'])}∩{short.get(p['b'], p['b'])}</th>"
                for p in agreement[0]["pairs"]
            )
            rows = [f"<tr><th>K</th>{head}<th>all</th></tr>"]
            for row in agreement:
                # Jaccard on a line of its own: the dock is narrow, and a wrapped cell split "J 0.05"
                cells = "".join(
                    f"<td>{p['overlap']} ({p['chance_overlap']:.1f})<br>J {p['jaccard']:.2f}</td>"
                    for p in row["pairs"]
                )
                common = f"{row['common']} ({row['chance_common']:.1f})"
                rows.append(f"<tr><td>{row['k_used']}</td>{cells}<td>{common}</td></tr>")
            lines.append(
                "<b>Agreement between criteria</b>: top-K overlap (chance in brackets) and Jaccard J; "
                "the heads common to all"
                f"<table cellspacing=6 cellpadding=0>{''.join(rows)}</table>"
            )
        lines.append(f"Histogram of gaze scores; where the top-{k} sit by layer:")
        return "<br>".join(lines)

    def show_summary(self) -> None:
        d = self.state.discovery
        self.summary_label.setText(self.summary_text())
        self.summary_plots.setVisible(d.has_result)
        if not d.has_result:
            return
        counts, edges = d.histogram()
        self.hist_item.setOpts(
            x=(edges[:-1] + edges[1:]) / 2, height=counts, width=float(edges[1] - edges[0])
        )
        self.hist_plot.autoRange()
        k = self._summary_k = self.state.heads.k
        by_layer = d.layer_counts(k)
        self.layer_item.setOpts(x=np.arange(by_layer.size), height=by_layer)
        self.layer_plot.setTitle(f"top-{k} heads by layer", size="9pt")
        self.layer_plot.autoRange()

"""Spans: the shown run's named step ranges, and the raw / value-weighted switch of span overlays.

Drag across the token timeline to select steps; here the selection gets a name and is kept with
the run (saved in the session as ``spans_json``). Pick a kept span to show its mean again, delete
it, or let "Propose spans" add the automatic proposal (``core.spans.propose_run_spans``: runs of
consecutive steps whose heat peaks in one region). Esc (here or in the timeline) goes back to
per-step mode. The switch weights each key's attention by its value vector's norm; a run stored
without norms (an older session) is raw only, and the switch says so.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.spans import NORMS_MISSING, Span, propose_run_spans, span_caption
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.widgets.signals import signals_blocked
from gaze_explorer.qt.widgets.span_keys import claim_span_escape, is_span_escape

WEIGHTED_TIP = (
    "Value-weighted: each image token's attention times the norm of its value vector ||v|| (what the "
    "head actually reads from it), renormalised over the image tokens at each step. Raw: the "
    "attention weights."
)


class SpanListView(QtWidgets.QWidget):
    """Name, keep, show, delete and propose the shown run's spans; the weighting switch."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._run = None  # the run the list shows

        self.header = QtWidgets.QLabel()
        self.header.setWordWrap(True)
        self.name_edit = QtWidgets.QLineEdit()
        self.name_edit.setPlaceholderText("name the selected steps")
        self.name_edit.returnPressed.connect(self.keep_selection)
        self.keep_button = QtWidgets.QPushButton("Keep")
        self.keep_button.setToolTip("Keep the selected steps as a named span (saved in the session)")
        self.keep_button.clicked.connect(self.keep_selection)
        self.list = QtWidgets.QListWidget()
        self.list.itemSelectionChanged.connect(self._item_selected)
        self.delete_button = QtWidgets.QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.propose_button = QtWidgets.QPushButton("Propose spans")
        self.propose_button.setToolTip(
            "Add the runs of consecutive steps whose heatmap peaks in the same region (panel, box, or "
            "a 3x3 block of the image)"
        )
        self.propose_button.clicked.connect(self.propose)
        self.weighted_check = QtWidgets.QCheckBox("value-weighted (‖v‖)")
        self.weighted_check.toggled.connect(state.spans.set_value_weighted)

        name_row = QtWidgets.QHBoxLayout()
        name_row.addWidget(self.name_edit, 1)
        name_row.addWidget(self.keep_button)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.propose_button)
        buttons.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addLayout(name_row)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.weighted_check)

        s = state
        s.spans.selection_changed.connect(self.refresh)
        s.spans.spans_changed.connect(self.refresh)
        s.spans.weighting_changed.connect(self.refresh)
        s.session.shown_runs_changed.connect(self._on_shown)
        s.session.runs_changed.connect(lambda: s.spans.prune(s.session.runs))
        s.session.run_updated.connect(self._on_run_updated)
        self.refresh()

    # ---- model -> view -----------------------------------------------------------------------
    def _on_shown(self) -> None:
        if self.state.session.shown_run is not self._run:
            self.state.spans.clear()  # the selection was a range of the run shown before
        self.refresh()

    def _on_run_updated(self, index: int) -> None:
        if index == self.state.session.shown:
            self._refresh_switch()  # a streaming run gets its id (and its norms) after the prefill

    def refresh(self) -> None:
        spans = self.state.spans
        run = self.state.session.shown_run
        self._run = run
        try:
            kept = spans.spans(run)
        except GazeExplorerError as err:
            kept = []
            self.state.status.post(f"cannot read the run's spans: {err}", error=True)
        selection = spans.selection
        if run is None:
            self.header.setText("No run shown.")
        elif selection is None:
            self.header.setText("Per step. Drag across the token timeline to average steps.")
        else:
            self.header.setText(
                f"Shown: {span_caption(selection, run.n_steps, self.weighted_shown())}. Esc: per step."
            )
        self.name_edit.setEnabled(selection is not None and run is not None)
        self.keep_button.setEnabled(selection is not None and run is not None)
        self.propose_button.setEnabled(run is not None and run.n_steps > 0)
        with signals_blocked(self.list):
            self.list.clear()
            for span in kept:
                text = "".join(run.tokens[span.start : span.end + 1]).strip()
                item = QtWidgets.QListWidgetItem(
                    f"{span.name} · steps {span.start}-{span.end} · {text[:30]!r}"
                )
                item.setData(QtCore.Qt.ItemDataRole.UserRole, span)
                self.list.addItem(item)
                if span == selection:
                    item.setSelected(True)
        self.delete_button.setEnabled(bool(self.list.selectedItems()))
        self._refresh_switch()

    def _refresh_switch(self) -> None:
        spans, run = self.state.spans, self.state.session.shown_run
        try:
            has_norms = spans.value_norms(run) is not None
        except GazeExplorerError as err:
            has_norms = False
            self.state.status.post(f"cannot read the run's value norms: {err}", error=True)
        self.weighted_check.setEnabled(has_norms)
        self.weighted_check.setToolTip(WEIGHTED_TIP if has_norms else NORMS_MISSING)
        with signals_blocked(self.weighted_check):
            self.weighted_check.setChecked(spans.value_weighted and has_norms)

    def weighted_shown(self) -> bool:
        """Whether the overlay's span is value-weighted (the switch on, and the run has norms)."""
        return self.state.spans.weights_for(self.state.session.shown_run) is not None

    def selected_span(self) -> Span | None:
        items = self.list.selectedItems()
        return items[0].data(QtCore.Qt.ItemDataRole.UserRole) if items else None

    # ---- view -> model -----------------------------------------------------------------------
    def _item_selected(self) -> None:
        span = self.selected_span()
        self.delete_button.setEnabled(span is not None)
        if span is not None:
            self.state.spans.show(span)

    def keep_selection(self) -> None:
        """Keep the selected steps under the typed name."""
        try:
            self.state.spans.add(self.state.session.shown_run, self.name_edit.text())
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)
            return
        self.name_edit.clear()

    def delete_selected(self) -> None:
        span = self.selected_span()
        if span is None:
            return
        try:
            self.state.spans.remove(self.state.session.shown_run, span.name)
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)

    def propose(self) -> None:
        """Add the automatic proposal's spans (those whose steps are not kept already)."""
        s = self.state
        run, grid = s.session.shown_run, s.session.grid
        if run is None or grid is None or run.rows_at is None:
            return
        if not s.heads.active.heads:
            s.status.post("select heads first: spans are proposed from their heatmaps", error=True)
            return
        regions = run.regions or s.session.regions
        proposed = propose_run_spans(run.rows_at, run.n_steps, grid, regions, s.heads.active)
        kept = s.spans.spans(run)
        ranges, names = {(k.start, k.end) for k in kept}, {k.name for k in kept}
        added = []
        for span in proposed:
            if (span.start, span.end) in ranges:
                continue
            name = span.name if span.name not in names else f"{span.name} (auto {span.start})"
            added.append(Span(name, span.start, span.end))
            names.add(name)
        if not added:
            s.status.post("no new spans: no other consecutive steps peak in one region")
            return
        try:
            s.spans.replace(run, [*kept, *added])
        except GazeExplorerError as err:
            s.status.post(str(err), error=True)
            return
        s.status.post(f"proposed {len(added)} span(s)")

    def event(self, event: QtCore.QEvent) -> bool:
        # getattr: Qt may still send events while the view is destroyed, after Python has cleared
        # its attributes (an exception there, inside pyqtgraph's item changes, crashed a test run)
        return claim_span_escape(event, getattr(self, "state", None)) or super().event(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if is_span_escape(event, self.state):
            self.state.spans.clear()
            with signals_blocked(self.list):
                self.list.clearSelection()
        elif event.key() == QtCore.Qt.Key.Key_Delete and self.selected_span() is not None:
            self.delete_selected()
        else:
            super().keyPressEvent(event)

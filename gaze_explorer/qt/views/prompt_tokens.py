"""Prompt tokens: the shown run's prompt as the model saw it, one token per chip.

The image tokens (hundreds of identical placeholders) are folded into one ``<image × N>`` chip,
so the text around them stays readable. Filled while a run streams (from its prefill) and when a
session is reopened (from the stored prompt token strings).
"""

from __future__ import annotations

import html

from PySide6 import QtWidgets

from gaze_explorer.core.state import AppState


def fold_repeats(tokens: list[str], min_run: int = 4) -> list[str]:
    """Tokens with runs of ``min_run`` or more equal tokens folded into one ``tok × n`` entry."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and tokens[j] == tokens[i]:
            j += 1
        out.extend([f"{tokens[i]} × {j - i}"] if j - i >= min_run else tokens[i:j])
        i = j
    return out


class PromptTokensView(QtWidgets.QWidget):
    """A read-only strip of the shown run's prompt tokens."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.header = QtWidgets.QLabel("no run")
        self.text = QtWidgets.QTextBrowser()
        self.text.setOpenLinks(False)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header)
        layout.addWidget(self.text, 1)
        self.tokens: list[str] = []  # what is shown (for tests and exports)
        self._shown: tuple | None = None  # (run, its name, tokens) last drawn
        s = state.session
        s.shown_runs_changed.connect(self.refresh)
        s.runs_changed.connect(self.refresh)
        s.run_updated.connect(lambda i: self.refresh() if i == s.shown else None)
        self.refresh()

    def refresh(self) -> None:
        run = self.state.session.shown_run
        tokens = list(run.prompt_tokens) if run is not None else []
        # the header names the run: runs with the same prompt (a baseline and its steered twin)
        # still change it, and a renamed or relabelled run too
        shown = (None if run is None else id(run), None if run is None else run.name, tokens)
        if shown == self._shown:
            return
        self._shown = shown
        self.tokens = tokens
        if run is None:
            self.header.setText("no run")
        elif not tokens:
            self.header.setText(f"{run.name}: no prompt tokens stored")
        else:
            self.header.setText(f"{run.name}: prompt of {len(tokens)} tokens")
        chips = "".join(
            f'<span style="background:#e8eef6;border:1px solid #9ab;">{html.escape(t).replace(" ", "&middot;")}</span> '
            for t in fold_repeats(tokens)
        )
        self.text.setHtml(chips)

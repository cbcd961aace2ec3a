"""Where the app's spans live: the open session file (``core.spans.SpanStore`` for ``SpanModel``).

A run's named spans are the run attribute ``spans_json`` and its value norms the dataset
``attention/value_norms`` (``docs/session_schema.md``). Spans are written through the session
recorder (its open writer, or the reopened file: ``SessionRecorder.write_spans``), and read, like
the norms, with a short-lived reader on the session file (SWMR, so it works while a run streams).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gaze_explorer.core.spans import Span
from gaze_explorer.core.state import AppState, RunData


class SessionSpanStore:
    """Spans and value norms of the runs of ``state.session`` (its ``path``), saved by ``recorder``."""

    def __init__(self, state: AppState, recorder) -> None:
        self.state = state
        self.recorder = recorder  # qt.session_io.SessionRecorder

    def _read(self, read):
        from gaze_explorer.storage import SessionReader

        path = self.state.session.path
        if not path:
            return None
        if self.recorder.writer is not None:
            self.recorder.writer.wait()  # what was handed to the writer is in the file
        with SessionReader(path) as reader:
            return read(reader)

    def load_spans(self, run: RunData) -> list[Span]:
        return list(self._read(lambda r: r.spans(run.run_id)) or [])

    def save_spans(self, run: RunData, spans: Sequence[Span]) -> None:
        self.recorder.write_spans(run.run_id, list(spans))

    def load_value_norms(self, run: RunData) -> np.ndarray | None:
        return self._read(lambda r: r.value_norms(run.run_id))

"""SpanModel, the app's Qt-free span state: selection, named spans kept per run and saved through
the attached store, value norms read once per saved run, and the errors a user can cause."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import SpanError
from gaze_explorer.core.spans import Span, SpanModel, span_caption
from gaze_explorer.core.state import RunData


class DictStore:
    """A SpanStore over plain dicts, counting reads (the app's is the session file)."""

    def __init__(self, spans=None, norms=None) -> None:
        self.saved = dict(spans or {})
        self.norms = dict(norms or {})
        self.norm_reads = 0

    def load_spans(self, run):
        return list(self.saved.get(run.run_id, []))

    def save_spans(self, run, spans):
        self.saved[run.run_id] = list(spans)

    def load_value_norms(self, run):
        self.norm_reads += 1
        return self.norms.get(run.run_id)


def _run(run_id, n=10):
    return RunData("r", tokens=[f"t{i}" for i in range(n)], run_id=run_id)


def test_selection_names_saves_and_deletes_spans():
    store = DictStore({"run_000": [Span("old", 0, 1)]})
    model = SpanModel()
    model.attach(store)
    run = _run("run_000")
    seen = []
    model.selection_changed.connect(lambda: seen.append(model.selection))
    assert model.spans(run) == [Span("old", 0, 1)]  # loaded from the store
    with pytest.raises(SpanError, match="drag across the timeline"):
        model.add(run, "dog")
    model.select(7, 3)
    assert model.selection == Span("", 3, 7)
    with pytest.raises(SpanError, match="give the span a name"):
        model.add(run, "  ")
    model.add(run, "dog")
    assert store.saved["run_000"] == [Span("old", 0, 1), Span("dog", 3, 7)]
    assert model.selection == Span("dog", 3, 7)  # the kept span is the one shown
    model.select(0, 2)
    with pytest.raises(SpanError, match="unique"):
        model.add(run, "old")
    model.show(Span("dog", 3, 7))
    model.remove(run, "dog")
    assert store.saved["run_000"] == [Span("old", 0, 1)] and model.selection is None
    assert seen == [Span("", 3, 7), Span("dog", 3, 7), Span("", 0, 2), Span("dog", 3, 7), None]
    with pytest.raises(SpanError, match="the run has steps 0-9"):
        model.replace(run, [Span("late", 5, 12)])


def test_value_norms_are_read_once_per_saved_run_and_only_weight_when_switched_on():
    norms = np.ones((2, 3, 4), dtype=np.float32)
    store = DictStore(norms={"run_001": norms})
    model = SpanModel()
    model.attach(store)
    unsaved, saved, old = _run(None), _run("run_001"), _run("run_000")
    assert model.value_norms(unsaved) is None and store.norm_reads == 0  # no id yet: asked again later
    assert model.value_norms(saved) is norms and model.value_norms(saved) is norms
    assert model.value_norms(old) is None and store.norm_reads == 2
    assert model.weights_for(saved) is None  # the switch is on raw
    model.set_value_weighted(True)
    assert model.weights_for(saved) is norms and model.weights_for(old) is None
    model.prune([old])
    model.value_norms(saved)
    assert store.norm_reads == 3  # forgotten with its run


def test_span_caption_names_the_steps_it_averages():
    assert (
        span_caption(Span("dog", 3, 11), 40, False)
        == "span 'dog': steps 3-11, mean of 9 steps · raw attention"
    )
    assert span_caption(Span("", 3, 11), 6, True).startswith(
        "span: steps 3-5, mean of 3 steps · value-weighted"
    )

"""Spans on a real session of the demo model (tests/data/session_v1.h5: a discovery, a baseline and
a scheduled top-10 run, written by the demo model): a span's heatmap equals the mean of the stored
per-step rows read straight from the file with h5py; named spans round-trip through the session."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from gaze_explorer.core.errors import SpanError
from gaze_explorer.core.heads import choose_heads
from gaze_explorer.core.scoring import span_heat
from gaze_explorer.core.spans import Span
from gaze_explorer.storage import SessionReader, SessionWriter

DEMO_SESSION = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"


def test_span_heat_equals_the_mean_of_the_stored_step_rows():
    with SessionReader(DEMO_SESSION) as r:
        info = r.runs()[1]
        heads = choose_heads("gaze:10", info.n_layers, info.n_heads, scores=r.gaze_scores()).heads
        grid = r.grid
        heat = span_heat(lambda s: r.step_rows(info.run_id, s), range(2, 7), grid, heads)
    with h5py.File(DEMO_SESSION, "r") as f:
        att = f["runs"][info.run_id]["attention"]
        decode = np.asarray(att["decode"][2:7], dtype=np.float64)  # [step, layer, head, key], as stored
    hl = np.array([h[0] for h in heads.heads])
    hh = np.array([h[1] for h in heads.heads])
    expect = decode[:, hl, hh][..., grid.positions].mean(axis=(0, 1)).reshape(grid.rows, grid.cols)
    np.testing.assert_allclose(heat, expect, rtol=1e-6)
    assert heat.shape == (grid.rows, grid.cols) and heat.sum() > 0


def test_named_spans_round_trip_through_the_session(tmp_path):
    path = tmp_path / "s.h5"
    shutil.copy(DEMO_SESSION, path)
    with SessionReader(path) as r:
        image, grid, regions = r.image, r.grid, r.regions
        meta = dict(r.meta["model"])
        run_ids = r.run_ids()
        assert r.spans(run_ids[1]) == []  # none saved yet
    spans = [Span("panel four", 0, 2), Span("panel 2", 3, 5), Span("the rest", 6, 8)]
    w = SessionWriter(path, meta=meta, image=image, grid=grid, regions=regions)
    w.write_spans(run_ids[1], spans)
    w.write_spans(run_ids[0], [Span("all", 0, 6)])
    w.close()
    with SessionReader(path) as r:
        assert r.spans(run_ids[1]) == spans and r.spans(run_ids[0]) == [Span("all", 0, 6)]
    w = SessionWriter(path, meta=meta, image=image, grid=grid, regions=regions)
    w.write_spans(run_ids[1], spans[:1])  # replaces the saved set
    with pytest.raises(ValueError, match="not a run id"):
        w.write_spans("runs/x", spans)
    w.close()
    with SessionReader(path) as r:
        assert r.spans(run_ids[1]) == spans[:1]
    with h5py.File(path, "a") as f:  # a damaged attribute reads as a clear error
        f["runs"][run_ids[1]].attrs["spans_json"] = "[{"
    with SessionReader(path) as r, pytest.raises(SpanError, match="not valid JSON"):
        r.spans(run_ids[1])

"""Spans, pure parts: parsing, checking, the span heatmap as the mean of per-step overlays (raw and
value-weighted), per-step peaks, coarse blocks, and the automatic proposal on hand-made
trajectories. (A real demo session: tests/storage/test_spans_session.py; export: test_cli_spans.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaze_explorer.core.errors import SpanError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, Region
from gaze_explorer.core.scoring import span_heat, step_peaks
from gaze_explorer.core.spans import (
    Span,
    block_regions,
    check_spans,
    dumps_spans,
    loads_spans,
    parse_spans,
    propose_run_spans,
    propose_spans,
    read_spans,
    spans_from_json,
)


def test_parse_spans_ranges_names_and_errors():
    assert parse_spans("0-12,13-30") == [Span("0-12", 0, 12), Span("13-30", 13, 30)]
    assert parse_spans("dog: 2-4, 7") == [Span("dog", 2, 4), Span("7-7", 7, 7)]
    assert list(Span("a", 2, 4).steps) == [2, 3, 4]
    for bad in ("0-", "a-b", "5-2", "-3"):
        with pytest.raises(SpanError):
            parse_spans(bad)
    with pytest.raises(SpanError, match="ends at step 30"):
        check_spans(parse_spans("0-12,13-30"), n_steps=30)
    with pytest.raises(SpanError, match="unique"):
        check_spans([Span("a", 0, 1), Span("a", 2, 3)], n_steps=9)


def test_spans_json_forms_and_text_round_trip(tmp_path):
    assert spans_from_json({"cat": [0, 3], "dog": [4, 9]}) == [Span("cat", 0, 3), Span("dog", 4, 9)]
    spans = [Span("cat", 0, 3), Span("the dog", 4, 9)]
    assert loads_spans(dumps_spans(spans)) == spans and loads_spans(None) == []
    f = tmp_path / "spans.json"
    f.write_text(json.dumps([s.to_dict() for s in spans]))
    assert read_spans(str(f)) == spans
    assert read_spans("1-2") == [Span("1-2", 1, 2)]
    with pytest.raises(SpanError, match="does not exist"):
        read_spans(str(tmp_path / "missing.json"))
    with pytest.raises(SpanError, match="start"):
        spans_from_json([{"name": "x", "start": 1}])


def test_span_heat_is_the_mean_of_the_steps_overlays_raw_and_value_weighted():
    rng = np.random.default_rng(3)
    grid = ImageTokenGrid.uniform(60, 40, 2, 3, first_position=2)  # image tokens at keys 2..7
    rows = rng.random((6, 3, 4, 12))  # [step, layer, head, key]
    heads = HeadSet("h", ((0, 1), (2, 3)))
    got = span_heat(lambda s: rows[s], range(1, 4), grid, heads)
    picked = rows[1:4][:, [0, 2], [1, 3]][..., 2:8]  # [step, head, image token]
    np.testing.assert_allclose(got, picked.mean(axis=(0, 1)).reshape(2, 3))
    norms = rng.random((3, 4, 10))  # prompt keys only
    weighted = span_heat(lambda s: rows[s], range(1, 4), grid, heads, value_norms=norms)
    per_step = (rows[1:4][:, [0, 2], [1, 3]][..., 2:8] * norms[[0, 2], [1, 3]][None, :, 2:8]).mean(axis=1)
    expect = (per_step / per_step.sum(axis=1, keepdims=True)).mean(axis=0)  # each step sums to 1
    np.testing.assert_allclose(weighted, expect.reshape(2, 3))
    assert weighted.sum() == pytest.approx(1.0)
    # steps without rows are left out; a span of none is NaN
    partial = span_heat(lambda s: rows[s] if s != 2 else None, range(1, 4), grid, heads)
    np.testing.assert_allclose(
        partial, rows[[1, 3]][:, [0, 2], [1, 3]][..., 2:8].mean(axis=(0, 1)).reshape(2, 3)
    )
    assert np.isnan(span_heat(lambda s: None, range(2), grid, heads)).all()


def test_step_peaks_and_block_regions():
    grid = ImageTokenGrid.uniform(120, 80, 4, 6, first_position=0)
    blocks = block_regions(grid, 2, 3)
    covered = np.sort(np.concatenate([b.token_indices for b in blocks]))
    np.testing.assert_array_equal(covered, np.arange(24))  # a partition: every token once
    assert [len(b.token_indices) for b in blocks] == [4] * 6 and blocks[0].box == (0.0, 0.0, 40.0, 40.0)
    heats = np.zeros((3, 4, 6))
    heats[0, 0, 0] = 1.0  # top-left block
    heats[1, 3, 5] = 2.0  # bottom-right block
    assert step_peaks(heats, blocks).tolist() == [0, 5, -1]  # an empty step has no peak


def test_propose_spans_on_a_hand_made_trajectory():
    panels = [Region(f"P{k + 1}", "panel", np.array([k])) for k in range(3)]
    # per step x region attention (a staircase P1, P1, P1, P2, P2, nothing, P3, P1, P1, P3)
    masses = np.array(
        [
            [0.9, 0.1, 0.0],
            [0.8, 0.2, 0.0],
            [0.7, 0.1, 0.2],
            [0.1, 0.6, 0.3],
            [0.2, 0.7, 0.1],
            [0.0, 0.0, 0.0],
            [0.1, 0.1, 0.8],
            [0.5, 0.2, 0.3],
            [0.6, 0.3, 0.1],
            [0.0, 0.1, 0.9],
        ]
    )
    peaks = step_peaks(masses, panels)
    assert peaks.tolist() == [0, 0, 0, 1, 1, -1, 2, 0, 0, 2]
    spans = propose_spans(peaks, [r.name for r in panels])
    assert spans == [Span("P1", 0, 2), Span("P2", 3, 4), Span("P1 #2", 7, 8)]  # single steps start none
    assert propose_spans(peaks, min_steps=1)[-1] == Span("region 3 #2", 9, 9)
    assert propose_spans([-1, -1]) == []


def test_a_run_with_one_region_proposes_spans_among_blocks():
    """A natural image generated without panels has one region, the whole image, in which every
    step peaks: the proposal compares peaks among 3x3 blocks instead, as with no region at all."""
    grid = ImageTokenGrid.uniform(90, 90, 3, 3, first_position=0)  # 9 image tokens, one per block
    whole = Region("image", "panel", np.arange(9))
    rows = np.zeros((4, 1, 1, 9))  # [step, layer, head, key]: steps 0-1 look at token 0, 2-3 at token 8
    rows[:2, ..., 0] = 1.0
    rows[2:, ..., 8] = 1.0
    heads = HeadSet("h", ((0, 0),))
    spans = propose_run_spans(lambda s: rows[s], 4, grid, [whole], heads)
    assert [(sp.name, sp.start, sp.end) for sp in spans] == [("block 1,1", 0, 1), ("block 3,3", 2, 3)]
    assert propose_run_spans(lambda s: rows[s], 4, grid, [], heads) == spans

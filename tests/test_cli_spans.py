"""``export --spans`` on a fresh session of the bundled demo model: one overlay figure per span (the
heads' attention averaged over the span's steps, the image underneath) and spans.json; spans given
as ranges, as a JSON file, saved in the session, or proposed automatically; bad spans are clear
errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaze_explorer.cli import main
from gaze_explorer.cli.helpers import load_strips
from gaze_explorer.core.heads import choose_heads
from gaze_explorer.core.scoring import overlay_heat
from gaze_explorer.core.spans import Span
from gaze_explorer.storage import SessionReader, SessionWriter

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spans")
    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    image = tmp / "strip.png"
    load_strips(ns, 1)[0].image.save(image)
    path = tmp / "s.h5"
    argv = ["generate", "--model", "demo", "--device", "cpu", "--image", str(image), "--panels", "6"]
    argv += [
        "--session",
        str(path),
        "--max-new-tokens",
        "12",
        "--ignore-eos",
        "--prompt",
        "Describe each panel of this comic strip in order, one short sentence each.",
    ]
    assert main(argv) == 0
    return path


def test_export_spans_writes_one_overlay_per_span(session, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["export", "--session", str(session), "--spans", "first:0-3,4-11", "--out", str(out)]) == 0
    listing = json.loads((out / "spans.json").read_text())
    assert [s["name"] for s in listing["spans"]] == ["first", "4-11"] and listing["weighting"] == "raw"
    for s in listing["spans"]:
        img = Image.open(out / s["figure"])
        assert img.size[0] > 100 and img.size[1] > 50
    # the listed peak is the argmax of the mean of the span's per-step overlays (all heads: a baseline)
    with SessionReader(session) as r:
        (info,) = r.runs()
        heads = choose_heads("all", info.n_layers, info.n_heads).heads
        mean = np.mean(
            [overlay_heat(r.step_rows(info.run_id, s), r.grid, heads) for s in range(0, 4)], axis=0
        )
        tokens = r.tokens(info.run_id)
    assert listing["spans"][0]["peak_token"] == list(np.unravel_index(int(mean.argmax()), mean.shape))
    assert listing["spans"][0]["text"] == "".join(tokens[0:4]).strip()
    assert str(out / "span_first.png") in capsys.readouterr().out


def test_export_spans_from_json_saved_and_auto(session, tmp_path, capsys):
    spans_file = tmp_path / "spans.json"
    spans_file.write_text(json.dumps({"a b": [1, 2]}))
    out = tmp_path / "j"
    assert main(["export", "--session", str(session), "--spans", str(spans_file), "--out", str(out)]) == 0
    assert (out / "span_a_b.png").exists()
    # saved: none yet is a clear error; after the writer stores two, both are drawn
    assert main(["export", "--session", str(session), "--spans", "saved", "--out", str(tmp_path / "s")]) == 1
    assert "no saved spans" in capsys.readouterr().err
    with SessionReader(session) as r:
        meta, image, grid, regions, run_id = dict(r.meta["model"]), r.image, r.grid, r.regions, r.run_ids()[0]
    w = SessionWriter(session, meta=meta, image=image, grid=grid, regions=regions)
    w.write_spans(run_id, [Span("x", 0, 1), Span("y", 2, 5)])
    w.close()
    assert main(["export", "--session", str(session), "--spans", "saved", "--out", str(tmp_path / "s")]) == 0
    assert [s["name"] for s in json.loads((tmp_path / "s" / "spans.json").read_text())["spans"]] == ["x", "y"]
    # auto: runs of consecutive steps whose heat peaks in the same panel, named after it
    assert main(["export", "--session", str(session), "--spans", "auto", "--out", str(tmp_path / "a")]) == 0
    spans = json.loads((tmp_path / "a" / "spans.json").read_text())["spans"]
    # expected from the reader's staircase (every head: the run is a baseline and the session has no
    # discovery): each step's peak panel, runs of >= 2 steps in one panel, named after it
    with SessionReader(session) as r:
        peaks = r.trajectory(run_id).argmax(axis=1).tolist()
    expect, start = [], 0
    while start < len(peaks):
        end = start
        while end + 1 < len(peaks) and peaks[end + 1] == peaks[start]:
            end += 1
        if end > start:
            expect.append((peaks[start], start, end))
        start = end + 1
    assert expect, "this demo run has runs of consecutive steps peaking in one panel"
    assert [(s["start"], s["end"]) for s in spans] == [(a, b) for _, a, b in expect]
    assert [s["name"].split(" #")[0] for s in spans] == [f"panel {p + 1}" for p, _, _ in expect]


def test_export_spans_bad_ranges_are_clear_errors(session, tmp_path, capsys):
    for bad, message in (
        ("0-99", "the run has steps 0-11"),
        ("4-2", "need 0 <= start <= end"),
        ("x", "step range"),
    ):
        assert main(["export", "--session", str(session), "--spans", bad, "--out", str(tmp_path / "b")]) == 1
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", "--session", str(session), "--spans", "0-2", "--figure", "timeline"])
    assert exc.value.code == 2 and "leave out --figure" in capsys.readouterr().err


def test_export_spans_value_weighted_uses_the_stored_norms(session, tmp_path):
    out = tmp_path / "v"
    argv = ["export", "--session", str(session), "--spans", "0-3", "--weighting", "value", "--out", str(out)]
    assert main(argv) == 0
    listing = json.loads((out / "spans.json").read_text())
    assert listing["weighting"] == "value"
    # by hand from the file: each step's all-heads heat of attention x ||v||, normalised over the image
    with SessionReader(session) as r:
        (info,) = r.runs()
        heads = choose_heads("all", info.n_layers, info.n_heads).heads
        norms = r.value_norms(info.run_id)
        assert norms is not None, "generate stores the value norms with each captured run"
        heats = []
        for s in range(4):
            rows = r.step_rows(info.run_id, s).astype(np.float64)
            k = min(rows.shape[-1], norms.shape[-1])
            weighted = np.zeros_like(rows)
            weighted[..., :k] = rows[..., :k] * norms[..., :k]
            heat = overlay_heat(weighted, r.grid, heads)
            heats.append(heat / heat.sum())
        raw = np.mean([overlay_heat(r.step_rows(info.run_id, s), r.grid, heads) for s in range(4)], axis=0)
    mean = np.mean(heats, axis=0)
    assert listing["spans"][0]["peak_token"] == list(np.unravel_index(int(mean.argmax()), mean.shape))
    assert not np.allclose(mean / mean.sum(), raw / raw.sum()), (
        "||v|| differs between keys: weighting matters"
    )


def test_export_spans_value_weighting_without_norms_is_a_clear_error(tmp_path, capsys):
    old = Path(__file__).parent / "data" / "session_v1.h5"  # written before value norms were stored
    argv = ["export", "--session", str(old), "--spans", "0-1", "--weighting", "value", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "without value norms" in capsys.readouterr().err
    assert not (tmp_path / "spans.json").exists()

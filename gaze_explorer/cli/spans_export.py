"""``gaze-explorer export --spans``: one figure per span of a run -- the selected heads' attention
over the image tokens averaged over the span's steps (``core.scoring.span_heat``), drawn over the
image with the app's overlay renderer -- and ``spans.json`` listing them.

``--spans`` takes ``"0-12,13-30"`` (steps, both ends included; ``name:0-12`` names a span), a spans
JSON file, ``saved`` (the spans stored with the run in the session) or ``auto`` (proposed: runs of
consecutive steps whose heatmap peaks in the same region). ``--weighting value`` weights them by the
``||v||`` that newer sessions store with each run (the app's Spans dock switch); raw by default."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError, SpanError
from gaze_explorer.core.scoring import span_heat
from gaze_explorer.core.spans import Span, check_spans, propose_run_spans, read_spans


def peak_regions(reader, run_id: str):
    """The regions span proposals compare peaks in: the run's panels or boxes, else the session's
    (``propose_run_spans`` falls back to 3x3 blocks when they are fewer than two)."""
    info = reader.run_info(run_id)
    return list(info.regions) if info.regions else list(reader.regions)


def spans_for(reader, run_id: str, arg: str, heads) -> list[Span]:
    """The spans ``--spans`` names for ``run_id`` (checked against its steps)."""
    n_steps = reader.run_info(run_id).n_steps
    if arg == "saved":
        spans = reader.spans(run_id)
        if not spans:
            raise SpanError(f"run {run_id} has no saved spans; give them as --spans 0-12,13-30")
    elif arg == "auto":
        regions = peak_regions(reader, run_id)
        spans = propose_run_spans(lambda s: reader.step_rows(run_id, s), n_steps, reader.grid, regions, heads)
        if not spans:
            raise SpanError(f"run {run_id}: no two consecutive steps peak in the same region; give --spans")
    else:
        spans = read_spans(arg)
    return check_spans(spans, n_steps)


def export_spans(args: argparse.Namespace, reader, run_id: str | None, heads, out: Path) -> list[Path]:
    """Write ``span_<name>.<format>`` per span and ``spans.json`` into ``out``; returns the paths."""
    from gaze_explorer.qt import export as ex

    if run_id is None:
        raise GazeExplorerError("the session has no runs to draw spans from")
    heads = ex.heads_or_top(reader, heads)
    spans = spans_for(reader, run_id, args.spans, heads)
    tokens = list(reader.tokens(run_id))
    weighting = getattr(args, "weighting", "raw")
    norms = reader.value_norms(run_id) if weighting == "value" else None
    if weighting == "value" and norms is None:
        raise SpanError(
            f"run {run_id} was stored without value norms (sessions written before they were recorded): "
            "use --weighting raw"
        )

    def rows_at(step):
        return reader.step_rows(run_id, step)

    heats = [span_heat(rows_at, sp.steps, reader.grid, heads, value_norms=norms) for sp in spans]
    top = max(float(np.nanmax(h)) for h in heats) or 1.0  # one colour scale: spans compare by eye
    out.mkdir(parents=True, exist_ok=True)
    written, listing = [], []
    model = reader.meta.get("model_id", "model")
    for sp, heat in zip(spans, heats, strict=True):
        text = "".join(tokens[sp.start : sp.end + 1]).strip()
        title = f"{model} · run {run_id} · span {sp.name} (steps {sp.start}-{sp.end}: {text[:40]!r}) · {heads.name}"
        fig = ex.overlay_figure(
            np.asarray(reader.image), reader.grid, heat, reader.regions, title, levels=(0.0, top)
        )
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sp.name).strip("_") or "span"
        written.append(ex.save_figure(fig, out / f"span_{safe}.{args.format}"))
        r, c = np.unravel_index(int(np.nanargmax(heat)), heat.shape)
        listing.append(
            {**sp.to_dict(), "text": text, "figure": written[-1].name, "peak_token": [int(r), int(c)]}
        )
    spans_json = out / "spans.json"
    spans_json.write_text(
        json.dumps(
            {
                "run": run_id,
                "heads": [list(h) for h in heads.heads],
                "weighting": weighting,
                "spans": listing,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return [*written, spans_json]

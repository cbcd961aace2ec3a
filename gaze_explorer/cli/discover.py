"""``gaze-explorer discover``: rank every head by gaze score; write the ranking (partial on Ctrl-C)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gaze_explorer.cli.helpers import DiscoveryInterrupted, load, load_strips, run_discovery
from gaze_explorer.core.heads import ranking
from gaze_explorer.core.strips import Strip


def write_discovery(out: Path, result, model_name: str, partial: bool = False) -> None:
    """``ranking.json``, ``gaze_scores.npy``, ``panel_matrices.npy`` and ``discovery.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    scores = np.asarray(result.scores, dtype=np.float64)  # [layer, head]
    tmp = out / "ranking.json.tmp"
    tmp.write_text(json.dumps(ranking(scores), indent=1), encoding="utf-8")
    tmp.replace(out / "ranking.json")
    np.save(out / "gaze_scores.npy", scores)
    np.save(out / "panel_matrices.npy", np.asarray(result.matrices, dtype=np.float32))  # [layer, head, N, N]
    meta = {
        "model": model_name,
        "n_strips": int(result.n_strips),
        "n_panels": int(result.n_panels),
        "partial": partial,
    }
    (out / "discovery.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def write_discovery_session(path: str, loaded, strip: Strip, result) -> None:
    """Store the scores and matrices (with the first strip's image) in a session file."""
    from gaze_explorer.core.regions import panel_regions
    from gaze_explorer.storage.writer import SessionWriter

    grid = loaded.adapter.build_inputs(strip.image, "discovery").grids[0]
    regions = panel_regions(grid, strip.n_panels, strip.panel_widths)
    writer = SessionWriter(
        path, meta=loaded.describe(), image=np.asarray(strip.image), grid=grid, regions=regions
    )
    try:
        writer.write_derived(
            "gaze_scores", np.asarray(result.scores, dtype=np.float32), {"n_strips": result.n_strips}
        )
        writer.write_derived("panel_matrices", np.asarray(result.matrices, dtype=np.float32), {})
    finally:
        writer.close()
    print(f"session: {path}")


def run(args: argparse.Namespace) -> int:
    strips = load_strips(args, args.n_strips)  # before the model: a bad folder fails fast
    loaded = load(args)
    out = Path(args.out)
    try:
        result = run_discovery(loaded, strips)
    except DiscoveryInterrupted as stop:
        if stop.partial is not None:
            write_discovery(out, stop.partial, args.model, partial=True)
            print(
                f"interrupted: partial ranking ({stop.partial.n_strips} strips) saved in {out}",
                file=sys.stderr,
            )
        raise
    write_discovery(out, result, args.model)
    if args.session:
        write_discovery_session(args.session, loaded, strips[0], result)
    ranked = ranking(np.asarray(result.scores))
    print(f"ranked {len(ranked)} heads over {result.n_strips} strips -> {out}/ranking.json")
    print("top heads: " + ", ".join(f"L{r['layer']}H{r['head']} {r['score']:.3f}" for r in ranked[:5]))
    return 0

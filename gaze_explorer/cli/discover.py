"""``gaze-explorer discover``: rank every head by gaze score; write the ranking (partial on Ctrl-C).

The same passes also give the other head-selection criteria (Image Heads, Localization Heads;
``core/criteria.py``): their inputs, scores and rankings are written beside the gaze ranking, and
``discovery.json`` holds the agreement table between the three (the paper's Tab. 6)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gaze_explorer.cli.args import REAL_PANEL_HEIGHT
from gaze_explorer.cli.coverage import strip_sizes, warn_partial_coverage
from gaze_explorer.cli.helpers import (
    DiscoveryInterrupted,
    load,
    load_strips,
    localization_options,
    run_discovery,
)
from gaze_explorer.core.criteria import criteria_report, image_head_scores
from gaze_explorer.core.errors import DatasetError
from gaze_explorer.core.heads import ranking
from gaze_explorer.core.strips import Strip


def write_discovery(
    out: Path, result, model_name: str, partial: bool = False, localization: dict | None = None
) -> dict | None:
    """``ranking.json``, ``gaze_scores.npy``, ``panel_matrices.npy`` and ``discovery.json`` under ``out``;
    with the criteria's inputs also ``image_mass.npy``, ``image_maps.npy``, ``image_scores.npy``
    (per-layer z), ``image_ranking.json``, ``localization.json``, and the criteria and their agreement
    in ``discovery.json``. Returns the criteria report (None without the inputs)."""
    from gaze_explorer.inference.discovery import discovery_input_params

    out.mkdir(parents=True, exist_ok=True)
    scores = np.asarray(result.scores, dtype=np.float64)  # [layer, head]
    _write_json(out / "ranking.json", ranking(scores))
    np.save(out / "gaze_scores.npy", scores)
    np.save(out / "panel_matrices.npy", np.asarray(result.matrices, dtype=np.float32))  # [layer, head, N, N]
    meta = {
        "model": model_name,
        "n_strips": int(result.n_strips),
        "n_panels": int(result.n_panels),
        "partial": partial,
        **discovery_input_params(result),  # input_policy, image_coverage (min over the strips)
    }
    report = None
    if getattr(result, "image_mass", None) is not None and getattr(result, "image_maps", None) is not None:
        mass = np.asarray(result.image_mass, dtype=np.float64)  # [layer, head]
        np.save(out / "image_mass.npy", mass)
        np.save(
            out / "image_maps.npy", np.asarray(result.image_maps, dtype=np.float32)
        )  # [layer, head, r, c]
        np.save(out / "image_scores.npy", image_head_scores(mass))
        # localization: the Localization Heads variants (--loc-entropy, --loc-bottom-row)
        report = criteria_report(scores, mass, result.image_maps, **(localization or {}))
        _write_json(out / "image_ranking.json", report["image"]["ranking"])
        _write_json(out / "localization.json", report["localization"])
        meta["criteria"] = {
            name: {key: value for key, value in report[name].items() if key != "ranking"}
            for name in ("image", "localization")
        }
        meta["agreement"] = report["agreement"]
    _write_json(out / "discovery.json", meta)
    return report


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")  # a reader never sees half a file
    tmp.write_text(json.dumps(value, indent=1, allow_nan=False), encoding="utf-8")
    tmp.replace(path)


def agreement_lines(report: dict) -> list[str]:
    """The agreement table as text, one line per K (the paper's Tab. 6)."""
    lines = []
    for row in report["agreement"]:
        k = f"K={row['k_used']}" + (
            f" (of {row['k']}: the model has {report['n_heads']} heads)" if row["clipped"] else ""
        )
        pairs = ", ".join(
            f"{p['a']}&{p['b']} {p['overlap']} (chance {p['chance_overlap']:.1f}, J {p['jaccard']:.2f})"
            for p in row["pairs"]
        )
        # the common core's own chance (K^3 / n^2 for three criteria), not a pair's
        lines.append(f"{k}: {pairs}; common to all {row['common']} (chance {row['chance_common']:.1f})")
    return lines


def write_discovery_session(path: str, loaded, strip: Strip, result, params: dict | None = None) -> None:
    """Add the discovery (with its source and parameters) to a session file: a new file holds the
    first strip's image; an existing one (an app session) keeps its own image and gains one more
    discovery."""
    from gaze_explorer.core.regions import panel_regions
    from gaze_explorer.storage import SessionReader
    from gaze_explorer.storage.writer import SessionWriter

    if Path(path).exists():
        with SessionReader(path) as r:  # the file's own header: the writer checks it is this file's
            header = dict(meta=dict(r.meta.get("model") or {}), image=r.image, grid=r.grid, regions=r.regions)
    else:
        grid = loaded.adapter.build_inputs(strip.image, "discovery").grids[0]
        regions = panel_regions(grid, strip.n_panels, strip.panel_widths)
        image = np.asarray(strip.image)
        header = dict(meta=loaded.describe(), image=image, grid=grid, regions=regions, image_name=strip.name)
    writer = SessionWriter(path, **header)
    params = dict(params or {})
    # where the strips came from, as the app names it ("demo", "folder"; the path is in the params)
    source = "demo" if params.get("comics") == "demo" else "folder"
    try:
        writer.write_discovery(result, source=source, params=params, localization=params.get("localization"))
    finally:
        writer.close()
    print(f"session: {path}")


def session_params(args: argparse.Namespace, result) -> dict:
    """How the discovery stored in a session was made (also by a sharded run's merge): every
    parameter that changes its result, with the questions asked as they were (one per panel)."""
    from gaze_explorer.cli.helpers import DEMO_PANEL_HEIGHT
    from gaze_explorer.inference.discovery import PAPER_PROMPT, discovery_input_params, panel_prompt

    n_panels = int(result.n_panels)
    demo = args.comics == "demo"
    return {
        "comics": str(args.comics),
        "use_raw": bool(getattr(args, "use_raw", False)),
        "seed": int(getattr(args, "seed", 0)),  # raw-corpus windows
        "n_panels": n_panels,
        "panel_height": int(args.panel_height or (DEMO_PANEL_HEIGHT if demo else REAL_PANEL_HEIGHT)),
        "n_strips": int(result.n_strips),
        "shard": None if getattr(args, "shard", None) is None else str(args.shard),
        "model": str(args.model),
        "dtype": str(getattr(args, "dtype", "")),
        "input_policy": getattr(args, "input_policy", None),
        "prompt": PAPER_PROMPT,  # the template; ``prompts``: the questions it made
        "prompts": [panel_prompt(PAPER_PROMPT, k, n_panels) for k in range(1, n_panels + 1)],
        "criteria": ["gaze", "image", "localization"],
        "localization": localization_options(args),  # the Localization Heads variants given
        **discovery_input_params(result),  # the policy the model used (not only the flag), coverage
    }


def run(args: argparse.Namespace) -> int:
    if getattr(args, "executor", None):
        from gaze_explorer.cli import executor

        return executor.run(args)
    strips = load_strips(args, args.n_strips)  # before the model: a bad folder fails fast
    if args.session and Path(args.session).exists():  # and a session that cannot take it
        from gaze_explorer.storage import SessionReader

        SessionReader(args.session).close()
    if getattr(args, "shard", None):
        from gaze_explorer.inference.evaluation import shard

        indices = shard(range(len(strips)), args.shard)
        if not indices:
            raise DatasetError(f"shard {args.shard} of {len(strips)} strips is empty")
        if getattr(args, "partial", None):  # a job of a sharded run: only its partial result
            from gaze_explorer.cli.merge import write_discovery_partial

            loaded, mine = load(args), [strips[i] for i in indices]
            warn_partial_coverage(loaded, strip_sizes(mine))  # in the shard's log
            write_discovery_partial(args.partial, loaded, mine, indices, len(strips))
            print(f"shard {args.shard}: {len(indices)} strips -> {args.partial}")
            return 0
        strips = [strips[i] for i in indices]
    loaded = load(args)
    out = Path(args.out)
    try:
        result = run_discovery(loaded, strips)
    except DiscoveryInterrupted as stop:
        if stop.partial is not None:
            write_discovery(
                out, stop.partial, args.model, partial=True, localization=localization_options(args)
            )
            print(
                f"interrupted: partial ranking ({stop.partial.n_strips} strips) saved in {out}",
                file=sys.stderr,
            )
        raise
    report = write_discovery(out, result, args.model, localization=localization_options(args))
    if args.session:
        write_discovery_session(args.session, loaded, strips[0], result, session_params(args, result))
    ranked = ranking(np.asarray(result.scores))
    print(f"ranked {len(ranked)} heads over {result.n_strips} strips -> {out}/ranking.json")
    print("top heads: " + ", ".join(f"L{r['layer']}H{r['head']} {r['score']:.3f}" for r in ranked[:5]))
    if report is not None:
        print("agreement of gaze, image and localization heads:")
        for line in agreement_lines(report):
            print("  " + line)
    return 0

"""``gaze-explorer export``: figures and head lists from a session file, with the app's renderers,
without a window. The grid, the matrix and the default heads come from one of the session's
discoveries: ``--discovery KEY``, by default the one the app showed when it saved the session, else
the newest. With only ``--session`` every figure is written: the grid, the panel matrix (of the head
inspected when the session was saved, else the discovery's top gaze head), the shown run's overlay and
timeline, and its head list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError, HeadSpecError
from gaze_explorer.core.heads import (
    HeadSet,
    choose_heads,
    default_control_pool,
    load_head_list,
    parse_head_spec,
    ranking,
)
from gaze_explorer.core.run_label import heads_label


def export_heads(args: argparse.Namespace, reader, discovery: str | None = None) -> HeadSet | None:
    """The head set of ``--heads`` for a session (top/random by the scores of the discovery
    ``discovery``); None (the discovery's top 10) when not given."""
    if args.heads is None:
        return None
    spec = parse_head_spec(args.heads)
    scores = reader.discovery_array("gaze_scores", discovery)
    if spec.kind in ("top", "random") and scores is None:
        raise HeadSpecError(f"--heads {args.heads} needs gaze scores, and the session has none")
    grids = scores
    if scores is not None and spec.kind == "top" and spec.criterion != "gaze":
        # image:K and localization:K rank by the discovery's image mass and maps, stored beside
        # its gaze scores (core.criteria, as the app and `generate` do)
        from gaze_explorer.core.criteria import criterion_scores

        mass = reader.discovery_array("image_mass", discovery)
        maps = reader.discovery_array("image_maps", discovery)
        if mass is None or (spec.criterion == "localization" and maps is None):
            raise HeadSpecError(
                f"--heads {args.heads} needs the discovery's image attention, which this session's "
                "discovery did not store (made before the criteria existed): run discover --session again"
            )
        # the Localization Heads variants the discovery was made with (its params), as the app uses
        found = [d for d in reader.discoveries() if discovery is None or d.key == discovery]
        recorded = found[-1].localization if found else {}
        grids = criterion_scores(np.asarray(scores), np.asarray(mass), maps, **recorded)
    try:
        n_layers, n_heads = np.asarray(scores).shape if scores is not None else session_shape(reader)
    except GazeExplorerError:
        if spec.kind != "file":
            raise
        return load_head_list(spec.path)  # no model size to check the file against
    pool = args.control_pool or default_control_pool(reader.meta.get("model_id") == "demo")
    layers = reader.attention_layers()
    return choose_heads(spec, n_layers, n_heads, scores=grids, pool=pool, attention_layers=layers).heads


def pick_run(reader, wanted: str | None) -> str | None:
    """The run id for ``--run``: a run id, the name the user gave a run, or its current derived label
    (``RunInfo.label``: the one the app shows, with every switch as it happened); the last run that
    matches. The name a run was started under (``baseline``, ``steered``) is taken when nothing else
    matches. Several runs of the same name or label: the newest, said on stderr with the others' ids.
    Default: the run the app showed when the session was saved, else the last run."""
    runs = reader.runs()
    if wanted is None:
        shown = reader.ui_state().get("shown")
        if shown in [r.run_id for r in runs]:
            return shown
        return runs[-1].run_id if runs else None
    for names in (
        lambda info: (info.run_id,),
        lambda info: (info.user_name.strip(), info.label),
        lambda info: (info.name,),
    ):
        matching = [info for info in runs if wanted.strip() in names(info)]
        if matching:
            if len(matching) > 1:
                others = ", ".join(run_choice(info) for info in matching[:-1])
                print(
                    f"note: --run {wanted!r} names {len(matching)} runs; exporting the newest, "
                    f"{run_choice(matching[-1])} (the others: {others}; give a run id to choose)",
                    file=sys.stderr,
                )
            return matching[-1].run_id
    have = ", ".join(run_choice(r) for r in runs) or "none"
    raise GazeExplorerError(f"the session has no run {wanted!r} (it has: {have})")


def run_choice(info) -> str:
    """A run as ``--run`` takes it: ``run_001 (top-10 gaze → 4 → 2 (live @7))``, with the user's name
    first when it was renamed: ``run_001 "mine" (top-10 gaze → 4)``."""
    named = f' "{info.user_name.strip()}"' if info.user_name.strip() else ""
    return f"{info.run_id}{named} ({info.label})"


def matrix_head(args: argparse.Namespace, reader, discovery: str | None) -> tuple[tuple[int, int], str]:
    """The head of the panel-matrix figure and why it is that one: ``--layer``/``--head``, else the
    head that was open in the head inspector when the session was saved, else the top gaze head of
    the discovery ``discovery``."""
    if args.layer is not None and args.head is not None:
        return (args.layer, args.head), "--layer/--head"
    inspected = reader.inspected_head()
    if inspected is not None:
        return inspected, "the head inspected when the session was saved"
    scores = reader.discovery_array("gaze_scores", discovery)
    ranked = ranking(np.asarray(scores)) if scores is not None else []
    if not ranked:
        raise GazeExplorerError(
            "the session has no gaze scores to choose the matrix's head: pass --layer and --head"
        )
    return (ranked[0]["layer"], ranked[0]["head"]), f"the top gaze head of discovery {discovery}"


def pick_discovery(reader, wanted: str | None) -> str | None:
    """The key of the discovery for ``--discovery`` (a key of ``SessionReader.discoveries``),
    default the one the app showed when it saved the session, else the newest (None: none)."""
    if wanted is None:
        key, note = reader.chosen_discovery_with_note()
        if note:
            print(note, file=sys.stderr)
        return key
    found = reader.discoveries()
    if wanted not in [d.key for d in found]:
        have = ", ".join(d.label for d in found) or "none"
        raise GazeExplorerError(f"the session has no discovery {wanted!r} (it has: {have})")
    return wanted


def run_heads(reader, run_id: str | None) -> HeadSet | None:
    """The head set a steered run was made with (its plan's heads), or None (a baseline, no run)."""
    if run_id is None:
        return None
    plan = reader.run_info(run_id).plan or {}
    if not plan.get("heads"):
        return None
    return HeadSet(heads_label(plan), tuple((int(ly), int(h)) for ly, h in plan["heads"]))


def fallback_heads(reader, run_id: str | None, discovery: str | None = None) -> HeadSet | None:
    """Without gaze scores (of the discovery ``discovery``) or a steered run: every head of the run's
    model (so a session of baselines still exports its overlay and timeline)."""
    if run_id is None or reader.discovery_array("gaze_scores", discovery) is not None:
        return None
    info = reader.run_info(run_id)
    return choose_heads("all", info.n_layers, info.n_heads, attention_layers=reader.attention_layers()).heads


def session_shape(reader) -> tuple[int, int]:
    """The model's (layers, heads) recorded in the session's metadata."""
    meta = reader.meta
    try:
        return int(meta["n_layers"]), int(meta["n_heads"])
    except (KeyError, TypeError, ValueError):
        raise GazeExplorerError("the session does not record the model's layer and head counts") from None


def run(args: argparse.Namespace) -> int:
    from gaze_explorer.qt import export as ex
    from gaze_explorer.storage.reader import SessionReader

    reader = SessionReader(args.session)
    run_id = pick_run(reader, args.run)
    key = pick_discovery(reader, args.discovery)
    scores = reader.discovery_array("gaze_scores", key)
    # default: the run's own head set, as the app outlined it (a baseline: the discovery's top 10)
    heads = export_heads(args, reader, key) or run_heads(reader, run_id)
    session = Path(args.session)
    out = Path(args.out) if args.out else session.with_name(f"{session.stem}_figures")
    if getattr(args, "spans", None):
        from gaze_explorer.cli.spans_export import export_spans

        chosen = heads or fallback_heads(reader, run_id, key)
        if chosen is None and scores is not None:
            chosen = ex.heads_or_top(reader, None, discovery=key)
        for p in export_spans(args, reader, run_id, chosen, out):
            print(p)
        return 0
    step = args.step
    if step is None:
        ui = reader.ui_state()
        step = int(ui.get("step", 0)) if ui.get("shown") == run_id else 0
    wanted = ("grid", "matrix", "overlay", "timeline", "heads") if args.figure == "all" else (args.figure,)
    single = len(wanted) == 1 and out.suffix != ""
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    written = []
    for what in wanted:
        suffix = ".json" if what == "heads" else f".{args.format}"
        target = out if single else out / f"{what}{suffix}"
        if what == "grid":
            if scores is None and args.figure == "all":
                print("grid: skipped, the session holds no discovery")
                continue
            written.append(ex.export_grid(reader, target, heads=heads, discovery=key))
        elif what == "matrix":
            if reader.discovery_array("panel_matrices", key) is None:
                if args.figure == "all":
                    print("matrix: skipped, the session holds no panel matrices (no discovery)")
                    continue
                raise GazeExplorerError("the session has no panel matrices (run discovery first)")
            (layer, head), why = matrix_head(args, reader, key)
            written.append(ex.export_panel_matrix(reader, target, layer=layer, head=head, discovery=key))
            print(f"matrix: L{layer}H{head}, {why}")
        elif what == "heads":
            chosen = ex.heads_or_top(reader, heads or fallback_heads(reader, run_id, key), discovery=key)
            written.append(ex.write_head_list(target, chosen, None if scores is None else np.asarray(scores)))
        elif run_id is None:
            if args.figure != "all":
                raise GazeExplorerError(f"the session has no runs to draw a {what} from")
        elif what == "overlay":
            chosen = heads or fallback_heads(reader, run_id, key)
            written.append(
                ex.export_overlay(reader, target, run=run_id, step=step, heads=chosen, discovery=key)
            )
        elif what == "timeline":
            chosen = heads or fallback_heads(reader, run_id, key)
            written.append(ex.export_timeline(reader, target, run=run_id, heads=chosen, discovery=key))
    for p in written:
        print(p)
    return 0

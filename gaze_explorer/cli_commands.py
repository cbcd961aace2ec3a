"""The headless commands behind ``gaze-explorer`` (argument parsing is in ``cli.py``).

Every command turns library errors into :class:`GazeExplorerError` (printed by ``cli.main``), shows
a progress bar on stderr for long work, and on Ctrl-C saves what it has finished before exiting
with code 130. torch, transformers, h5py and Qt are imported here, lazily, per command.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import DatasetError, GazeExplorerError, HeadSpecError
from gaze_explorer.core.heads import (
    HeadSet,
    all_heads,
    load_head_list,
    parse_head_spec,
    random_control_heads,
    ranking,
    save_head_list,
    top_k_heads,
)
from gaze_explorer.core.strips import Strip, iter_strip_folders, raw_comics_windows
from gaze_explorer.demo.comics import PANEL_SIZE
from gaze_explorer.demo.prompts import NARRATION_PROMPT, SENTENCE_TOKENS

DEMO_SWITCH_EVERY = SENTENCE_TOKENS  # one demo narration sentence, so the two cannot drift apart
# The demo model's trained questions where they differ from the paper's (its static and narration
# questions are the paper's own; its narration request is shorter than the paper's dynamic one)
DEMO_PROMPTS = {"dynamic": NARRATION_PROMPT}
DEMO_PANEL_HEIGHT = PANEL_SIZE  # the demo comics' panel size (demo/comics.py), so no resize
DEMO_DISCOVERY_STRIPS = 20


def resources_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources"


def _progress(total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=0.5, dynamic_ncols=True, leave=True)


# -- shared pieces -----------------------------------------------------------------------------------
def load(args: argparse.Namespace):
    """The model named by ``--model`` on ``--device`` (or spread by ``--device-map``)."""
    from gaze_explorer.core.errors import ModelLoadError
    from gaze_explorer.inference.loading import load_model

    device_map = getattr(args, "device_map", None)
    print(f"loading model {args.model} ...", file=sys.stderr)
    try:
        return load_model(
            args.model,
            device=args.device,
            dtype=args.dtype,
            device_map=device_map,
            trust_remote_code=bool(getattr(args, "trust_remote_code", False)),
        )
    except AssertionError as exc:
        # torch asserts when a device map names a backend it was built without ("cuda:0" on a CPU build)
        raise ModelLoadError(f"cannot place the model with --device-map {device_map}: {exc}") from exc


def is_demo(args: argparse.Namespace) -> bool:
    return args.model == "demo"


def load_strips(args: argparse.Namespace, limit: int | None = None) -> list[Strip]:
    """The strips named by ``--comics`` / ``--use-raw`` / ``--n-panels``, at most ``limit``."""
    n_panels = args.n_panels
    if args.comics == "demo":
        root = resources_dir() / "demo_comics"
        height = args.panel_height or DEMO_PANEL_HEIGHT
    else:
        root = Path(args.comics)
        height = args.panel_height or 256
    if not root.exists():
        raise DatasetError(f"comics folder {root} does not exist")
    if args.use_raw:
        it = raw_comics_windows(root, n_panels, seed=args.seed, n_strips=limit, height=height)
    else:
        it = iter_strip_folders(root, n_panels, height=height)
    strips = []
    for s in it:
        strips.append(s)
        if limit is not None and len(strips) >= limit:
            break
    return strips


def run_discovery(loaded, strips: list[Strip], cancel: threading.Event | None = None):
    """Discovery with a progress bar; returns the DiscoveryResult (partial if interrupted)."""
    from gaze_explorer.inference.discovery import DiscoveryResult, discover

    cancel = cancel or threading.Event()
    result = None
    bar = _progress(len(strips), "discover")
    stream = discover(loaded, strips, cancel=cancel)
    try:
        for event in stream:
            if isinstance(event, DiscoveryResult):
                result = event
            else:
                done = getattr(event, "done", None)
                if done is not None:
                    bar.n = int(done)
                    bar.refresh()
    except KeyboardInterrupt:
        # let discovery finish the strip in hand and hand back what it has
        cancel.set()
        for event in stream:
            if isinstance(event, DiscoveryResult):
                result = event
        raise _Interrupted(result) from None
    finally:
        bar.close()
    if result is None:
        raise GazeExplorerError("discovery produced no result")
    return result


class _Interrupted(KeyboardInterrupt):
    def __init__(self, partial: object) -> None:
        super().__init__()
        self.partial = partial


def scores_from_ranking(path: str, n_layers: int, n_heads: int) -> np.ndarray:
    """A ``[layer, head]`` score grid from an authors' ranking JSON (listed order when no scores)."""
    p = Path(path)
    try:
        records = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HeadSpecError(f"ranking file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeadSpecError(f"ranking file {p} is not valid JSON: {exc}") from exc
    heads = load_head_list(p)  # validates the records
    heads.validate(n_layers, n_heads)
    records = records["heads"] if isinstance(records, dict) else records
    scores = np.zeros((n_layers, n_heads), dtype=np.float64)
    have_scores = all(r.get("score") is not None for r in records)
    base = min((r["score"] for r in records), default=0.0) if have_scores else 0.0
    scores[:] = min(base, 0.0) - 1.0 if have_scores else 0.0
    for rank, r in enumerate(records):
        scores[r["layer"], r["head"]] = r["score"] if have_scores else float(len(records) - rank)
    return scores


def gaze_scores(args, loaded, strips_for_discovery) -> np.ndarray:
    """Scores from ``--heads-file``/``--ranking``, else discovered on the fly."""
    path = getattr(args, "heads_file", None) or getattr(args, "ranking", None)
    if path:
        return scores_from_ranking(path, loaded.n_layers, loaded.n_heads)
    strips = strips_for_discovery()
    print(f"no ranking given: discovering gaze heads on {len(strips)} strips", file=sys.stderr)
    return np.asarray(run_discovery(loaded, strips).scores, dtype=np.float64)


# -- discover ------------------------------------------------------------------------------------
def write_discovery(out: Path, result, model_name: str, partial: bool = False) -> None:
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


def cmd_discover(args: argparse.Namespace) -> int:
    strips = load_strips(args, args.n_strips)  # before the model: a bad folder fails fast
    loaded = load(args)
    out = Path(args.out)
    try:
        result = run_discovery(loaded, strips)
    except _Interrupted as stop:
        if stop.partial is not None:
            write_discovery(out, stop.partial, args.model, partial=True)
            print(
                f"interrupted: partial ranking ({stop.partial.n_strips} strips) saved in {out}",
                file=sys.stderr,
            )
        raise
    write_discovery(out, result, args.model)
    if args.session:
        _discovery_session(args.session, loaded, strips[0], result)
    top = ranking(np.asarray(result.scores))[:5]
    print(
        f"ranked {len(ranking(np.asarray(result.scores)))} heads over {result.n_strips} strips -> {out}/ranking.json"
    )
    print("top heads: " + ", ".join(f"L{r['layer']}H{r['head']} {r['score']:.3f}" for r in top))
    return 0


def _discovery_session(path: str, loaded, strip: Strip, result) -> None:
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


# -- generate ------------------------------------------------------------------------------------
def _heads_for(args, loaded) -> HeadSet:
    kind, k = parse_head_spec(args.heads)
    if kind == "all":
        return all_heads(loaded.n_layers, loaded.n_heads)
    if kind == "file":
        heads = load_head_list(args.heads)
        heads.validate(loaded.n_layers, loaded.n_heads)
        return heads
    if not args.ranking and not is_demo(args):
        raise HeadSpecError(f"--heads {args.heads} needs --ranking FILE (from gaze-explorer discover)")

    def demo_strips():
        ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
        return load_strips(ns, DEMO_DISCOVERY_STRIPS)

    scores = gaze_scores(args, loaded, demo_strips)
    top = top_k_heads(scores, k)
    if kind == "top":
        return top
    return random_control_heads(scores, k, seed=args.seed, exclude=top.heads)


def cmd_generate(args: argparse.Namespace) -> int:
    from gaze_explorer.cli_generate import generate

    return generate(args)


# -- evaluate ------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from gaze_explorer.cli_evaluate import evaluate

    return evaluate(args)


# -- export --------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from gaze_explorer.qt import export as ex
    from gaze_explorer.storage.reader import SessionReader

    reader = SessionReader(args.session)
    heads = None
    if args.heads is not None:
        kind, k = parse_head_spec(args.heads)
        scores = reader.gaze_scores()
        if kind == "file":
            heads = load_head_list(args.heads)
        elif kind == "all":
            n_layers, n_heads = _session_shape(reader)
            heads = all_heads(n_layers, n_heads)
        elif scores is None:
            raise HeadSpecError(f"--heads {args.heads} needs gaze scores, and the session has none")
        else:
            heads = top_k_heads(np.asarray(scores), k)
            if kind == "random":  # the random control of the evaluations: seeded, outside the top K
                heads = random_control_heads(np.asarray(scores), k, seed=0, exclude=heads.heads)
    out = Path(args.out)
    wanted = ("grid", "overlay", "timeline", "heads") if args.figure == "all" else (args.figure,)
    single = len(wanted) == 1 and out.suffix != ""
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    run = _pick_run(reader, args.run)
    written = []
    for what in wanted:
        suffix = ".json" if what == "heads" else f".{args.format}"
        target = out if single else out / f"{what}{suffix}"
        if what == "grid":
            written.append(ex.export_grid(reader, target, heads=heads))
        elif what == "matrix":
            written.append(ex.export_panel_matrix(reader, target, layer=args.layer, head=args.head))
        elif what == "heads":
            chosen = heads or ex._heads_or_top(reader, None)
            written.append(ex.write_head_list(target, chosen, _maybe(reader.gaze_scores())))
        elif run is None:
            if args.figure != "all":
                raise GazeExplorerError(f"the session has no runs to draw a {what} from")
        elif what == "overlay":
            written.append(ex.export_overlay(reader, target, run=run, step=args.step, heads=heads))
        elif what == "timeline":
            written.append(ex.export_timeline(reader, target, run=run, heads=heads))
    for p in written:
        print(p)
    return 0


def _pick_run(reader, wanted: str | None) -> str | None:
    """The run id for ``--run`` (a run id or a run name; the last run of that name), default the last run."""
    runs = reader.runs()
    if wanted is None:
        return runs[-1].run_id if runs else None
    for info in reversed(runs):
        if wanted in (info.run_id, info.name):
            return info.run_id
    have = ", ".join(f"{r.run_id} ({r.name})" for r in runs) or "none"
    raise GazeExplorerError(f"the session has no run {wanted!r} (it has: {have})")


def _maybe(scores):
    return None if scores is None else np.asarray(scores)


def _session_shape(reader) -> tuple[int, int]:
    meta = reader.meta
    try:
        return int(meta["n_layers"]), int(meta["n_heads"])
    except (KeyError, TypeError, ValueError):
        raise GazeExplorerError("the session does not record the model's layer and head counts") from None


__all__ = ["cmd_discover", "cmd_evaluate", "cmd_export", "cmd_generate", "save_head_list"]

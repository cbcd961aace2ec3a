"""Pieces the commands share: loading the model and the strips, progress bars, running discovery,
and gaze scores from a ranking file or discovered on the fly.

Imported only when a command runs; torch, transformers and h5py are still imported lazily inside
the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gaze_explorer.cli.args import REAL_PANEL_HEIGHT
from gaze_explorer.core.errors import DatasetError, GazeExplorerError, HeadSpecError
from gaze_explorer.core.heads import load_head_list
from gaze_explorer.core.paths import demo_comics_dir
from gaze_explorer.core.strips import Strip, iter_strip_folders, raw_comics_windows
from gaze_explorer.demo.comics import PANEL_SIZE
from gaze_explorer.demo.prompts import NARRATION_PROMPT, SENTENCE_TOKENS

DEMO_SWITCH_EVERY = SENTENCE_TOKENS  # one demo narration sentence, so the two cannot drift apart
SWITCH_EVERY = 50  # the paper's tokens per schedule step on real models
# The demo model's trained questions where they differ from the paper's (its static and narration
# questions are the paper's own; its narration request is shorter than the paper's dynamic one)
DEMO_PROMPTS = {"dynamic": NARRATION_PROMPT}
DEMO_PANEL_HEIGHT = PANEL_SIZE  # the demo comics' panel size (demo/comics.py), so no resize
DEMO_DISCOVERY_STRIPS = 20


def progress_bar(total: int | None, desc: str):
    """A tqdm bar on stderr (stdout stays for results)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=0.5, dynamic_ncols=True, leave=True)


def drive_evaluation(evaluation, desc: str) -> bool:
    """Run ``evaluation.run()`` with a progress bar; True when Ctrl-C cut it short (the evaluation
    is then marked cancelled and keeps what it finished)."""
    bar = None
    try:
        for progress in evaluation.run():
            if bar is None:
                bar = progress_bar(progress.total, desc)
            bar.n = progress.done
            bar.set_postfix_str(progress.message[-30:], refresh=True)
    except KeyboardInterrupt:
        evaluation.cancelled = True
        return True
    finally:
        if bar is not None:
            bar.close()
    return False


def finish_evaluation(
    args: argparse.Namespace, report: dict, table: str, interrupted: bool, done: str
) -> int:
    """Write ``--json``, print the table, and return the exit code (130 after Ctrl-C, ``done``
    saying what was kept)."""
    from gaze_explorer.core.evaluation_report import write_json

    if args.json:
        write_json(args.json, report)
    print(table)
    if args.json:
        print(f"results: {args.json}", file=sys.stderr)
    if interrupted:
        print(f"interrupted after {done}; partial results kept", file=sys.stderr)
        return 130
    return 0


def is_demo(args: argparse.Namespace) -> bool:
    return args.model == "demo"


def switch_every(args: argparse.Namespace) -> int:
    """Tokens per schedule step: ``--switch-every``, else one sentence on the demo model, else 50."""
    return args.switch_every or (DEMO_SWITCH_EVERY if is_demo(args) else SWITCH_EVERY)


def load(args: argparse.Namespace):
    """The model named by ``--model`` on ``--device`` (or spread by ``--device-map``); a model already
    loaded for this command line (``args.loaded``: ``report`` runs several commands on one) is reused."""
    if getattr(args, "loaded", None) is not None:
        return args.loaded
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
            input_policy=getattr(args, "input_policy", None),
        )
    except AssertionError as exc:
        # torch asserts when a device map names a backend it was built without ("cuda:0" on a CPU build)
        raise ModelLoadError(f"cannot place the model with --device-map {device_map}: {exc}") from exc


def load_strips(args: argparse.Namespace, limit: int | None = None) -> list[Strip]:
    """The strips named by ``--comics`` / ``--use-raw`` / ``--n-panels``, at most ``limit``."""
    n_panels = args.n_panels
    if args.comics == "demo":
        root = demo_comics_dir()
        height = args.panel_height or DEMO_PANEL_HEIGHT
    else:
        root = Path(args.comics)
        height = args.panel_height or REAL_PANEL_HEIGHT
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


def demo_discovery_strips() -> list[Strip]:
    """The bundled strips discovery runs on when top:K / random:K on the demo model has no ranking."""
    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    return load_strips(ns, DEMO_DISCOVERY_STRIPS)


class DiscoveryInterrupted(KeyboardInterrupt):
    """Ctrl-C during discovery, carrying the partial result (or None) so the command can save it."""

    def __init__(self, partial: object) -> None:
        super().__init__()
        self.partial = partial


def run_discovery(loaded, strips: list[Strip], cancel: threading.Event | None = None):
    """Discovery with a progress bar; returns the DiscoveryResult.

    On Ctrl-C, lets discovery finish the strip in hand and raises :class:`DiscoveryInterrupted`
    with the partial result."""
    from gaze_explorer.cli.coverage import strip_sizes, warn_partial_coverage
    from gaze_explorer.inference.discovery import DiscoveryResult, discover

    warn_partial_coverage(loaded, strip_sizes(strips))  # every discovery, on the fly or not
    cancel = cancel or threading.Event()
    result = None
    bar = progress_bar(len(strips), "discover")
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
        cancel.set()
        for event in stream:
            if isinstance(event, DiscoveryResult):
                result = event
        raise DiscoveryInterrupted(result) from None
    finally:
        bar.close()
    if result is None:
        raise GazeExplorerError("discovery produced no result")
    return result


def scores_from_ranking(
    path: str, n_layers: int, n_heads: int, attention_layers: Sequence[int] | None = None
) -> np.ndarray:
    """A ``[layer, head]`` score grid from an authors' ranking JSON (listed order when no scores).

    Layers not in ``attention_layers`` (linear attention, Qwen3.5) score NaN: not applicable, so
    no top-K, random control or "all" set picks their heads."""
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
    if attention_layers is not None:
        scores[[x for x in range(n_layers) if x not in set(attention_layers)]] = np.nan
    return scores


def gaze_scores(args, loaded, strips_for_discovery) -> np.ndarray:
    """Gaze scores from ``--heads-file``/``--ranking``, else discovered on the fly."""
    return criterion_grids(args, loaded, strips_for_discovery)["gaze"]


def criterion_grids(args, loaded, strips_for_discovery) -> dict[str, np.ndarray]:
    """``[layer, head]`` scores per head-selection criterion (``core.criteria.criterion_scores``):
    ``gaze`` always; ``image`` and ``localization`` from the discovery's image mass and maps. With
    ``--heads-file``/``--ranking``, those are read beside it (``image_mass.npy``, ``image_maps.npy``,
    written by ``discover --out``) when present; else discovery runs once on the fly."""
    return criterion_inputs(args, loaded, strips_for_discovery)[0]


def localization_options(args, recorded: dict | None = None) -> dict:
    """The Localization Heads variants for ``core.criteria.localization_heads``: those given by
    ``--loc-entropy`` / ``--loc-bottom-row`` over ``recorded`` (the ones the discovery whose results
    are reused recorded); a variant in neither, or a command without the flags: its default."""
    given = {
        "entropy_variant": getattr(args, "loc_entropy", None),
        "bottom_row": getattr(args, "loc_bottom_row", None),
    }
    return {**(recorded or {}), **{key: value for key, value in given.items() if value is not None}}


LOCALIZATION_VARIANTS = ("entropy_variant", "bottom_row")  # the variants the --loc flags choose


def recorded_localization(folder: Path) -> dict:
    """The Localization Heads variants a ``discover --out`` folder was made with: ``localization.json``,
    else ``discovery.json``'s criteria; {} when it recorded none (an older folder, or no image maps)."""
    for name in ("localization.json", "discovery.json"):
        p = folder / name
        if not p.exists():
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HeadSpecError(f"{p} is not valid JSON: {exc}") from exc
        if isinstance(data, dict) and name == "discovery.json":
            data = (data.get("criteria") or {}).get("localization")
        if isinstance(data, dict):
            found = {key: data[key] for key in LOCALIZATION_VARIANTS if isinstance(data.get(key), str)}
            if found:
                return found
    return {}


def criterion_inputs(args, loaded, strips_for_discovery) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """:func:`criterion_grids` and what each criterion's own selection keeps, with its parameters
    (``core.criteria.criterion_scores_and_selection``)."""
    from gaze_explorer.core.criteria import criterion_scores_and_selection

    path = getattr(args, "heads_file", None) or getattr(args, "ranking", None)
    if path:
        gaze = scores_from_ranking(path, loaded.n_layers, loaded.n_heads, loaded.adapter.attention_layers)
        folder = Path(path).parent
        # the variants the discovery recorded, unless a --loc flag overrides them (as the app does)
        options = localization_options(args, recorded_localization(folder))
        arrays = [folder / name for name in ("image_mass.npy", "image_maps.npy")]
        mass, maps = (np.load(a) if a.exists() else None for a in arrays)
        return criterion_scores_and_selection(gaze, mass, maps if mass is not None else None, **options)
    options = localization_options(args)
    strips = strips_for_discovery()
    print(f"no ranking given: discovering gaze heads on {len(strips)} strips", file=sys.stderr)
    result = run_discovery(loaded, strips)
    scores = np.asarray(result.scores, dtype=np.float64)
    return criterion_scores_and_selection(scores, result.image_mass, result.image_maps, **options)

"""``gaze-explorer merge DIR``: the shards' partial results -> what a single run writes.

Discovery partials (``shard-i-of-n.npz``) hold, for the shard's strips, each strip's panel matrix
``[layer, head, N, N]`` and image mass ``[layer, head]`` with its index in the unsharded strip list,
and the image maps as sums and counts per token-grid shape (a map per strip would be large). The
merge puts the strips back in their unsharded order and runs the same math as one discovery, so
the gaze scores, matrices and ranking are those of a single run (maps within float rounding).

Evaluation partials are the shards' own evaluation JSON: their ``generations`` are the per-pair
judgements. The merge puts them back in the unsharded order (shard ``i`` of ``n`` holds strips
``i-1, i-1+n, ...``), undoes the same-as-unsteered rule's marks and rebuilds the report with the
same seed, so accuracies and bootstrap CIs equal a single run's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError

FORMAT = "gaze-explorer-discovery-partial"


# -- discovery ---------------------------------------------------------------------------------------
def write_discovery_partial(
    path: str | Path, loaded, strips, indices: list[int], total: int, template=None
) -> Path:
    """Run discovery's per-strip passes on ``strips`` (indices ``indices`` of ``total``) and write
    the partial result atomically (a killed shard leaves no file)."""
    from gaze_explorer.core.criteria import MapAverage
    from gaze_explorer.inference.discovery import PAPER_PROMPT, strip_attention

    mats, masses = [], []
    maps = MapAverage()
    n_panels = {len(s.panel_widths) for s in strips}
    if len(n_panels) != 1:
        raise GazeExplorerError(f"every strip needs the same number of panels; got {sorted(n_panels)}")
    for strip in strips:
        att = strip_attention(loaded, strip, template or PAPER_PROMPT)
        mats.append(np.asarray(att.matrix))
        masses.append(np.asarray(att.image_mass))
        maps.add(att.image_map)
    arrays = {
        "strip_indices": np.asarray(indices, dtype=np.int64),
        "matrices": np.stack(mats),  # [strip, layer, head, N, N], as each strip gave it
        "image_mass": np.stack(masses),  # [strip, layer, head]
        "n_total": np.asarray(total),
        "n_panels": np.asarray(n_panels.pop()),
    }
    for (rows, cols), total_map in maps.sums().items():
        arrays[f"maps_sum_{rows}x{cols}"] = total_map  # [layer, head, rows, cols], float64 sum
        arrays[f"maps_count_{rows}x{cols}"] = np.asarray(maps.counts()[(rows, cols)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=np.asarray(FORMAT), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def merge_discovery(paths: list[Path]):
    """One ``DiscoveryResult`` from discovery partials, as a single run over all strips gives it."""
    from gaze_explorer.core.criteria import MapAverage
    from gaze_explorer.core.heads import ranking
    from gaze_explorer.core.scoring import gaze_scores, mean_matrices
    from gaze_explorer.inference.discovery import DiscoveryResult

    by_index: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    maps = MapAverage()
    totals, panels = set(), set()
    for path in paths:
        with np.load(path) as z:
            if str(z.get("format", "")) != FORMAT:
                raise GazeExplorerError(f"{path} is not a discovery partial result")
            totals.add(int(z["n_total"]))
            panels.add(int(z["n_panels"]))
            for k, i in enumerate(z["strip_indices"]):
                by_index[int(i)] = (z["matrices"][k], z["image_mass"][k])
            for name in z.files:
                if name.startswith("maps_sum_"):
                    shape = name[len("maps_sum_") :]
                    maps.add_sum(z[name], int(z[f"maps_count_{shape}"]))
    if len(totals) != 1 or len(panels) != 1:
        raise GazeExplorerError("the partial results come from different runs (strip or panel counts differ)")
    total = totals.pop()
    missing = sorted(set(range(total)) - set(by_index))
    if missing:
        raise GazeExplorerError(f"strips {missing[:10]} of {total} are in no partial result")
    # the same steps as inference.discovery._discover, over the strips in their unsharded order
    mats = [by_index[i][0] for i in range(total)]
    mass_sum = None
    for i in range(total):
        mass = by_index[i][1]
        mass_sum = mass if mass_sum is None else mass_sum + mass
    stacked = np.stack(mats).astype(np.float32)  # [strip, layer, head, N, N]
    scores = gaze_scores(stacked)
    return DiscoveryResult(
        scores=scores,
        matrices=mean_matrices(stacked).astype(np.float32),
        ranking=ranking(scores),
        n_strips=total,
        n_panels=panels.pop(),
        strip_matrices=stacked,
        cancelled=False,
        image_mass=(mass_sum / total).astype(np.float32),
        image_maps=maps.mean().astype(np.float32),
    )


# -- evaluation --------------------------------------------------------------------------------------
def merge_evaluation(reports: list[dict]) -> dict:
    """One evaluation report from the reports of shards ``1/n .. n/n`` (in that order)."""
    from gaze_explorer.core.evaluation_report import build_report
    from gaze_explorer.core.heads import HeadSet
    from gaze_explorer.core.stats import DEFAULT_RESAMPLES

    n = len(reports)
    first = reports[0]
    same = ("protocol", "model", "heads", "head_choices")
    for k, rep in enumerate(reports, start=1):
        if rep["settings"].get("shard") != f"{k}/{n}":
            raise GazeExplorerError(f"partial {k} is shard {rep['settings'].get('shard')}, expected {k}/{n}")
        if any(rep.get(key) != first.get(key) for key in same):
            raise GazeExplorerError(
                f"shard {k}/{n} steered other heads or ran another protocol than shard 1/{n}"
            )
        if rep.get("status") != "finished":
            raise GazeExplorerError(f"shard {k}/{n} did not finish (status {rep.get('status')})")
    # each shard's generations, grouped by strip in the shard's order; strip j of shard k is the
    # (k-1 + j*n)-th strip of the unsharded run
    ordered: list[tuple[int, int, dict]] = []
    for k, rep in enumerate(reports):
        strips: dict[str, int] = {}
        for g in rep["generations"]:
            j = strips.setdefault(g["strip"], len(strips))
            ordered.append((k + j * n, len(ordered), _unmark(g)))
    generations = [g for _, _, g in sorted(ordered, key=lambda t: (t[0], t[1]))]
    settings = dict(first["settings"])
    settings["shard"] = None
    settings["n_strips"] = sum(int(r["settings"]["n_strips"]) for r in reports)
    coverage = [
        r["settings"]["image_coverage_min"]
        for r in reports
        if r["settings"].get("image_coverage_min") is not None
    ]
    if coverage:  # the least image fraction any strip showed the model, over all shards
        settings["image_coverage_min"] = min(coverage)
    heads = {
        name: HeadSet(name, tuple(map(tuple, hs))) for name, hs in first["heads"].items() if name != "all"
    }
    merged = build_report(
        protocol=first["protocol"],
        model=first["model"],
        generations=generations,
        heads=heads,
        settings=settings,
        status="finished",
        n_resamples=int(settings.get("n_resamples", DEFAULT_RESAMPLES)),
        seed=int(settings.get("seed", 0)),
        baseline_rule=first["baseline_rule"]["rule"],
        head_choices=first.get("head_choices"),
    )
    merged["heads"] = dict(first["heads"])  # "all" is stored as a count
    return merged


def _unmark(g: dict) -> dict:
    """A generation record as the evaluation made it, before the same-as-unsteered rule marked it
    (the report applies the rule again)."""
    g = dict(g)
    if "judged_credit" in g:
        g["credit"] = g.pop("judged_credit")
    g.pop("same_as_baseline", None)
    return g


# -- the command -------------------------------------------------------------------------------------
def merge_dir(directory: str | Path, out: str | None = None, json_path: str | None = None) -> int:
    """Merge the partial results in ``directory`` (a sharded run's ``--shard-dir``) and write what a
    single run writes: discover's ``--out`` folder, evaluate's ``--json`` (and its table)."""
    from gaze_explorer.cli.executor import MANIFEST, missing_shards, partial_name

    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GazeExplorerError(
            f"{directory} holds no {MANIFEST}: not the shard folder of a sharded run"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise GazeExplorerError(f"cannot read {directory / MANIFEST}: {exc}") from exc
    command, n = manifest["command"], int(manifest["n_shards"])
    todo = missing_shards(directory, command, n)
    if todo:
        raise GazeExplorerError(
            f"shard(s) {', '.join(map(str, todo))} of {n} have no result yet in {directory}; "
            "run the sharded command again to resume them"
        )
    paths = [directory / partial_name(command, i, n) for i in range(1, n + 1)]
    if command == "discover":
        from gaze_explorer.cli.discover import write_discovery

        result = merge_discovery(paths)
        target = Path(out or manifest["out"])
        model = _flag(manifest["argv"], "--model", "demo")
        write_discovery(target, result, model)
        print(f"merged {n} shards: {result.n_strips} strips -> {target}/ranking.json")
        return 0
    from gaze_explorer.core.evaluation_report import format_table, write_json

    reports = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    report = merge_evaluation(reports)
    target = json_path or manifest["json"]
    write_json(target, report)
    print(format_table(report))
    print(f"merged {n} shards -> {target}", file=sys.stderr)
    return 0


def _flag(argv: list[str], name: str, default: str) -> str:
    for k, item in enumerate(argv):
        if item == name and k + 1 < len(argv):
            return argv[k + 1]
        if item.startswith(name + "="):
            return item.split("=", 1)[1]
    return default


def run(args: argparse.Namespace) -> int:
    return merge_dir(args.directory, out=args.out, json_path=args.json)

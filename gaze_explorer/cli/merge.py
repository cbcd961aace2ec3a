"""``gaze-explorer merge DIR``: the shards' partial results -> what a single run writes.

Discovery partials (``shard-i-of-n.npz``) hold, for the shard's strips, each strip's panel matrix
``[layer, head, N, N]`` and image mass ``[layer, head]`` with its index in the unsharded strip list,
and the image maps as sums and counts per token-grid shape (a map per strip would be large). The
merge puts the strips back in their unsharded order and runs the same math as one discovery, so
the gaze scores, matrices and ranking are those of a single run (maps within float rounding).

Evaluation partials are the shards' own evaluation JSON: their ``generations`` are the per-pair
judgements. The merge puts them back in the unsharded order (shard ``i`` of ``n`` holds strips
``i-1, i-1+n, ...``), undoes the same-as-unsteered rule's marks and rebuilds the report with the
same seed, so accuracies and bootstrap CIs equal a single run's. COCO region partials are handled
the same way with images in place of strips (shard ``i`` holds images ``i-1, i-1+n, ...``).

Sweep partials (``inference.sweep.PARTIAL_KIND``) hold each shard's (baseline or cell, strip) units
with their strip index: every cell's generations are put back in strip order and summarised by
``inference.sweep.cell_result``, the function an unsharded sweep uses.
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

    mats, masses, coverages = [], [], []
    maps = MapAverage()
    n_panels = {len(s.panel_widths) for s in strips}
    if len(n_panels) != 1:
        raise GazeExplorerError(f"every strip needs the same number of panels; got {sorted(n_panels)}")
    for strip in strips:
        att = strip_attention(loaded, strip, template or PAPER_PROMPT)
        mats.append(np.asarray(att.matrix))
        masses.append(np.asarray(att.image_mass))
        maps.add(att.image_map)
        coverages.append(att.coverage)
    arrays = {
        "strip_indices": np.asarray(indices, dtype=np.int64),
        "matrices": np.stack(mats),  # [strip, layer, head, N, N], as each strip gave it
        "image_mass": np.stack(masses),  # [strip, layer, head]
        "n_total": np.asarray(total),
        "n_panels": np.asarray(n_panels.pop()),
        # input_policy, image_coverage: merged as one run records them (one policy, the min coverage)
        "input_policy": np.asarray(str(getattr(loaded.adapter, "input_policy", "native"))),
        "image_coverage": np.asarray(min(coverages, default=1.0)),
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
    totals, panels, policies, coverages = set(), set(), set(), []
    for path in paths:
        with np.load(path) as z:
            if str(z.get("format", "")) != FORMAT:
                raise GazeExplorerError(f"{path} is not a discovery partial result")
            totals.add(int(z["n_total"]))
            panels.add(int(z["n_panels"]))
            if "input_policy" in z.files:  # partials written before issue 19 lack it
                policies.add(str(z["input_policy"]))
                coverages.append(float(z["image_coverage"]))
            for k, i in enumerate(z["strip_indices"]):
                by_index[int(i)] = (z["matrices"][k], z["image_mass"][k])
            for name in z.files:
                if name.startswith("maps_sum_"):
                    shape = name[len("maps_sum_") :]
                    maps.add_sum(z[name], int(z[f"maps_count_{shape}"]))
    if len(totals) != 1 or len(panels) != 1 or len(policies) > 1:
        raise GazeExplorerError(
            "the partial results come from different runs (strip or panel counts or input policies differ)"
        )
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
        input_policy=policies.pop() if policies else None,
        image_coverage=min(coverages) if coverages else None,
    )


# -- evaluation --------------------------------------------------------------------------------------
def merge_evaluation(reports: list[dict]) -> dict:
    """One evaluation report from the reports of shards ``1/n .. n/n`` (in that order)."""
    from gaze_explorer.core.evaluation_report import build_report
    from gaze_explorer.core.heads import HeadSet
    from gaze_explorer.core.stats import DEFAULT_RESAMPLES

    first = reports[0]
    _check_shards(
        reports, ("protocol", "model", "heads", "head_choices"), lambda r: r["settings"].get("shard")
    )
    generations = interleave([[_unmark(g) for g in rep["generations"]] for rep in reports], "strip")
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


def interleave(shards: list[list[dict]], key: str) -> list[dict]:
    """The generations of shards ``1/n .. n/n`` in the unsharded order: each shard's records come
    grouped by item (``key``: strip or image) in the shard's order, and item j of shard k is the
    (k-1 + j*n)-th item of the unsharded run."""
    n = len(shards)
    ordered: list[tuple[int, int, dict]] = []
    for k, gens in enumerate(shards):
        items: dict = {}
        for g in gens:
            j = items.setdefault(g[key], len(items))
            ordered.append((k + j * n, len(ordered), g))
    return [g for _, _, g in sorted(ordered, key=lambda t: (t[0], t[1]))]


def _check_shards(reports: list[dict], same: tuple[str, ...], label=lambda r: r.get("shard")) -> None:
    n = len(reports)
    for k, rep in enumerate(reports, start=1):
        if label(rep) != f"{k}/{n}":
            raise GazeExplorerError(f"partial {k} is shard {label(rep)}, expected {k}/{n}")
        if any(rep.get(key) != reports[0].get(key) for key in same):
            raise GazeExplorerError(f"shard {k}/{n} ran other settings than shard 1/{n}")
        if rep.get("status") != "finished":
            raise GazeExplorerError(f"shard {k}/{n} did not finish (status {rep.get('status')})")


# -- COCO region -------------------------------------------------------------------------------------
def merge_region(reports: list[dict]) -> dict:
    """One COCO region report (``evaluate region --coco-annotations``) from its shards' reports."""
    from gaze_explorer.core.coco import region_report
    from gaze_explorer.core.heads import HeadSet
    from gaze_explorer.core.stats import DEFAULT_RESAMPLES
    from gaze_explorer.inference.coco_region import evaluated_by_size

    _check_shards(reports, ("model", "heads", "head_choices"), lambda r: r["settings"].get("shard"))
    first = reports[0]
    generations = interleave([rep["generations"] for rep in reports], "image_id")
    settings = dict(first["settings"])
    settings.pop("shard")
    counts = dict(first["counts"])
    counts["skipped_no_tokens"] = sum(int(r["counts"]["skipped_no_tokens"]) for r in reports)
    counts["evaluated_by_size"] = evaluated_by_size(generations)
    heads = {
        name: HeadSet(name, tuple(map(tuple, hs))) for name, hs in first["heads"].items() if name != "all"
    }
    merged = region_report(
        model=first["model"],
        generations=generations,
        counts=counts,
        heads=heads,
        settings=settings,
        head_choices=first.get("head_choices"),
        status="finished",
        n_resamples=int(settings.get("n_resamples", DEFAULT_RESAMPLES)),
        seed=int(settings.get("seed", 0)),
    )
    merged["heads"] = dict(first["heads"])  # "all" is stored as a count
    return merged


# -- sweep -------------------------------------------------------------------------------------------
def merge_sweep(partials: list[dict]) -> dict:
    """The sweep JSON of a single run from the partials of shards ``1/n .. n/n``."""
    from gaze_explorer.core.sweep import SweepCell, sweep_report
    from gaze_explorer.inference.sweep import PARTIAL_KIND, baseline_summary, cell_result, error_record

    if any(p.get("kind") != PARTIAL_KIND for p in partials):
        raise GazeExplorerError("a partial result is not a sweep shard's")
    same = ("protocol", "model", "criteria", "over", "prompts", "settings", "n_cells", "cells", "eval")
    _check_shards(partials, same)
    first = partials[0]
    protocol, ev = first["protocol"], first["eval"]
    cells = [SweepCell(c["criterion"], c["k"], float(c["strength"]), c["prompt"]) for c in first["cells"]]

    def in_strip_order(pairs: list) -> list[dict]:  # a unit's records stay in their order (stable sort)
        return [g for _, g in sorted(pairs, key=lambda pair: pair[0])]

    baselines: dict[str, list[dict]] = {}
    for cell in cells:
        if cell.prompt not in baselines:
            pairs = [pair for p in partials for pair in p["baseline_units"].get(cell.prompt, [])]
            baselines[cell.prompt] = in_strip_order(pairs)
    records = []
    for ci, cell in enumerate(cells):
        units = [p["cell_units"][str(ci)] for p in partials if str(ci) in p["cell_units"]]
        if not units:
            raise GazeExplorerError(f"sweep cell {cell.label()} is in no partial result")
        errors = [u["error"] for u in units if u["error"]]
        if errors:
            records.append(error_record(cell, errors[0]))
            continue
        gens = in_strip_order([pair for u in units for pair in u["generations"]])
        records.append(cell_result(cell, protocol, baselines[cell.prompt], gens, units[0]["heads"], **ev))
    report = sweep_report(
        protocol=protocol,
        model=first["model"],
        criteria=first["criteria"],
        over=first["over"],
        prompts=first["prompts"],
        settings=first["settings"],
        baselines={
            prompt: baseline_summary(protocol, gens, n_resamples=ev["n_resamples"], seed=ev["seed"])
            for prompt, gens in baselines.items()
        },
        cells=records,
        n_cells=first["n_cells"],
        status="finished",
    )
    report["baseline_generations"] = baselines
    return report


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
        from gaze_explorer.cli.helpers import localization_options
        from gaze_explorer.cli.parser import build_parsers

        result = merge_discovery(paths)
        target = Path(out or manifest["out"])
        model = _flag(manifest["argv"], "--model", "demo")
        # the sharded command's own flags: its Localization Heads variants, as one run applies them
        args = build_parsers().main.parse_args(manifest["argv"])
        write_discovery(target, result, model, localization=localization_options(args))
        print(f"merged {n} shards: {result.n_strips} strips -> {target}/ranking.json")
        if manifest.get("session"):
            _write_session(manifest, result)
        return 0
    from gaze_explorer.core.evaluation_report import format_table, write_json

    reports = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    target = json_path or manifest["json"]
    kind = reports[0].get("kind") if isinstance(reports[0], dict) else None
    if kind == "gaze-explorer-sweep-partial":
        from gaze_explorer.cli.sweep import format_sweep_table, save_sweep_figure

        report = merge_sweep(reports)
        write_json(target, report)
        print(format_sweep_table(report))
        if manifest.get("figure"):
            save_sweep_figure(report, manifest["figure"])
            print(f"figure: {manifest['figure']}", file=sys.stderr)
    elif reports[0].get("dataset") == "coco":
        from gaze_explorer.core.coco import format_region_table

        report = merge_region(reports)
        write_json(target, report)
        print(format_region_table(report))
    else:
        report = merge_evaluation(reports)
        write_json(target, report)
        print(format_table(report))
    print(f"merged {n} shards -> {target}", file=sys.stderr)
    return 0


def _write_session(manifest: dict, result) -> None:
    """``discover --session`` of a sharded run: the merged discovery into the session, with the
    command line's own model and first strip (the model is loaded here, once)."""
    from gaze_explorer.cli.discover import session_params, write_discovery_session
    from gaze_explorer.cli.helpers import load, load_strips
    from gaze_explorer.cli.parser import build_parsers

    args = build_parsers().main.parse_args(manifest["argv"])
    strips = load_strips(args, args.n_strips)  # the unsharded run's first strip
    write_discovery_session(manifest["session"], load(args), strips[0], result, session_params(args, result))
    print(f"session: {manifest['session']}")


def _flag(argv: list[str], name: str, default: str) -> str:
    for k, item in enumerate(argv):
        if item == name and k + 1 < len(argv):
            return argv[k + 1]
        if item.startswith(name + "="):
            return item.split("=", 1)[1]
    return default


def run(args: argparse.Namespace) -> int:
    return merge_dir(args.directory, out=args.out, json_path=args.json)

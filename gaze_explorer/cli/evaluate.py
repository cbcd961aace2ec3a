"""``gaze-explorer evaluate``: run a protocol, print the table, write the JSON (also on Ctrl-C)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gaze_explorer.cli.coverage import strip_sizes, warn_partial_coverage
from gaze_explorer.cli.helpers import (
    DEMO_PROMPTS,
    criterion_inputs,
    drive_evaluation,
    finish_evaluation,
    gaze_scores,
    is_demo,
    load,
    load_strips,
    switch_every,
)
from gaze_explorer.core.errors import DatasetError, GazeExplorerError
from gaze_explorer.core.evaluation_report import format_table
from gaze_explorer.core.judges import AttributeJudge, CaptionJudge
from gaze_explorer.core.steering import SteeringMode


def read_boxes(path: str | None, strips) -> list | None:
    """Per-strip boxes from ``{"strip name": [[x0,y0,x1,y1], ...]}``; None means one per panel."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read boxes file {path}: {exc}") from exc
    missing = [s.name for s in strips if s.name not in data]
    if missing:
        raise DatasetError(f"boxes file {path} has no boxes for strip(s) {', '.join(missing[:5])}")
    return [data[s.name] for s in strips]


def n_resamples(args: argparse.Namespace) -> dict:
    """``EvalConfig``'s ``n_resamples`` when ``--n-resamples`` is given (else its default, 10,000)."""
    given = getattr(args, "n_resamples", None)
    return {} if given is None else {"n_resamples": int(given)}


def chosen_judge(args: argparse.Namespace, strips) -> AttributeJudge | CaptionJudge | None:
    """The judge of ``--judge`` (None for ``auto``: per strip, the best it can have), refused when a
    strip lacks what it judges against."""
    judge = {"auto": None, "attributes": AttributeJudge(), "captions": CaptionJudge()}[args.judge]
    need = {"attributes": "attributes", "captions": "captions"}.get(args.judge)
    if need and not all(getattr(s, need) for s in strips):
        raise DatasetError(f"--judge {args.judge} needs {need}.json for every strip")
    return judge


def print_fill_in_notes(choices) -> None:
    """One line per criterion choice whose K exceeds the heads its own selection keeps."""
    for choice in choices:
        note = choice.fill_in_note()
        if note:
            print(note, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; returns the exit code (130 when interrupted, partial results written)."""
    if getattr(args, "sweep", False):
        from gaze_explorer.cli import sweep

        return sweep.run(args)
    if getattr(args, "coco_annotations", None):
        from gaze_explorer.cli import region_coco

        return region_coco.run(args)
    if getattr(args, "executor", None):
        from gaze_explorer.cli import executor

        return executor.run(args)
    from gaze_explorer.inference.evaluation import (
        EVAL_CONTROL_POOL,
        EvalConfig,
        Evaluation,
        HeadConditions,
        default_top_k,
        shard,
    )

    limit = args.max_strips if args.max_strips is not None else args.n_strips
    all_strips = load_strips(args, limit)  # before the model: a bad folder fails fast
    strips = shard(all_strips, args.shard)
    if not strips:
        raise DatasetError(f"shard {args.shard} of {len(all_strips)} strips is empty")
    judge = chosen_judge(args, strips)
    loaded = load(args)
    warn_partial_coverage(loaded, strip_sizes(strips))  # before any pass: a discovery warns for its own
    top_k = args.top_k or default_top_k(loaded.n_layers, loaded.n_heads, is_demo(args))
    # every shard discovers on the same (unsharded) strips, so all shards steer the same heads
    criteria = [c for c in args.conditions if c in ("image", "localization")]
    selection = None
    if criteria:
        grids, selection = criterion_inputs(args, loaded, lambda: all_strips)
        missing = [c for c in criteria if c not in grids]
        if missing:
            raise GazeExplorerError(
                f"no {', '.join(missing)} scores: pass --heads-file from a discover --out folder that holds "
                "image_mass.npy and image_maps.npy, or leave --heads-file out to discover on the fly"
            )
    else:
        grids = {"gaze": gaze_scores(args, loaded, lambda: all_strips)}
    scores = grids["gaze"]
    if top_k > scores.size // 2:
        raise GazeExplorerError(
            f"--top-k {top_k} leaves too few heads for a random control ({scores.size} heads)"
        )
    config = EvalConfig(
        protocol=args.protocol,
        top_k=top_k,
        prompt=args.prompt or (DEMO_PROMPTS.get(args.protocol) if is_demo(args) else None),
        mode=SteeringMode.parse(args.mode),
        strength=args.strength,
        max_new_tokens=args.max_new_tokens,
        bias_on=args.bias_on,
        baseline_rule=args.baseline_rule,
        switch_every=switch_every(args),
        switch_alignment=args.switch_alignment or "project",
        seed=args.seed,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        conditions=tuple(args.conditions),
        **n_resamples(args),
    )
    heads = HeadConditions.from_scores(
        grids,
        top_k,
        seed=args.seed,
        pool=args.control_pool or EVAL_CONTROL_POOL,
        criteria=criteria,
        selection=selection,
    )
    print_fill_in_notes(heads.choices.values())
    evaluation = Evaluation(
        loaded,
        all_strips,  # planned in full, run for --shard only (the same schedules as one run)
        heads,
        config,
        boxes=read_boxes(args.boxes, all_strips),
        judge=judge,
        model_name=args.model,
        shard=args.shard,
    )
    interrupted = drive_evaluation(evaluation, f"evaluate {args.protocol}")
    report = evaluation.report()
    report["settings"]["shard"] = args.shard
    report["settings"]["n_strips_total"] = len(all_strips)
    return finish_evaluation(
        args, report, format_table(report), interrupted, f"{len(evaluation.generations)} generations"
    )

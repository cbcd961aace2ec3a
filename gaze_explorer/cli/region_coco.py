"""``gaze-explorer evaluate region --coco-annotations F --images DIR``: the paper's COCO region
steering (Tab. 1) on any dataset in the COCO instances format; prints the table by size class and
writes the JSON (docs/evaluation_json.md, "Region on COCO annotations"), also on Ctrl-C.
``--executor`` runs it as shards of images (``--shard i/n``: every n-th image), merged by ``cli.merge``."""

from __future__ import annotations

import argparse

from gaze_explorer.cli.coverage import warn_partial_coverage
from gaze_explorer.cli.helpers import (
    drive_evaluation,
    finish_evaluation,
    gaze_scores,
    is_demo,
    load,
    load_strips,
)
from gaze_explorer.core.coco import MIN_BOX_AREA, format_region_table, read_coco, select_objects
from gaze_explorer.core.errors import DatasetError, GazeExplorerError
from gaze_explorer.core.judges import CategoryJudge, read_synonyms
from gaze_explorer.core.steering import SteeringMode


def run(args: argparse.Namespace) -> int:
    """Run the COCO region evaluation; returns the exit code (130 when interrupted)."""
    if getattr(args, "executor", None):
        from gaze_explorer.cli import executor

        return executor.run(args)
    from gaze_explorer.cli.evaluate import n_resamples
    from gaze_explorer.inference.coco_region import CocoRegionEvaluation, image_paths
    from gaze_explorer.inference.evaluation import (
        EVAL_CONTROL_POOL,
        EvalConfig,
        HeadConditions,
        default_top_k,
    )

    # everything about the files is checked before the model loads: a bad path fails fast
    dataset = read_coco(args.coco_annotations)
    min_area = MIN_BOX_AREA if args.min_box_area is None else args.min_box_area
    selection = select_objects(dataset.objects, min_area, args.max_images)
    if not selection.objects:
        raise DatasetError(
            f"{args.coco_annotations}: no object to steer to ({selection.skipped_small} boxes under "
            f"{min_area:g} px^2, {selection.skipped_crowd} crowds, of {len(dataset.objects)} annotations)"
        )
    images = image_paths(dataset, selection, args.images)
    judge = CategoryJudge(read_synonyms(args.synonyms) if args.synonyms else {})
    criteria = [c for c in args.conditions if c in ("image", "localization")]
    if criteria:
        raise GazeExplorerError("--coco-annotations runs the gaze, random, all and baseline conditions only")
    loaded = load(args)
    sizes = [(p.name, (dataset.images[iid].width, dataset.images[iid].height)) for iid, p in images.items()]
    warn_partial_coverage(loaded, sizes)
    top_k = args.top_k or default_top_k(loaded.n_layers, loaded.n_heads, is_demo(args))
    # the gaze heads come from a ranking, or are discovered on the strips (--comics)
    scores = gaze_scores(args, loaded, lambda: load_strips(args, args.max_strips or args.n_strips))
    if top_k > scores.size // 2:
        raise GazeExplorerError(
            f"--top-k {top_k} leaves too few heads for a random control ({scores.size} heads)"
        )
    config = EvalConfig(
        protocol="region",
        top_k=top_k,
        prompt=args.prompt,
        mode=SteeringMode.parse(args.mode),
        strength=args.strength,
        max_new_tokens=args.max_new_tokens,
        bias_on=args.bias_on,
        seed=args.seed,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        conditions=tuple(args.conditions),
        **n_resamples(args),
    )
    evaluation = CocoRegionEvaluation(
        loaded,
        dataset,
        selection,
        images,
        HeadConditions.from_scores(
            scores, top_k, seed=args.seed, pool=args.control_pool or EVAL_CONTROL_POOL
        ),
        config,
        judge=judge,
        min_box_area=min_area,
        model_name=args.model,
        shard=args.shard,
    )
    interrupted = drive_evaluation(evaluation, "evaluate region (COCO)")
    report = evaluation.report(str(args.coco_annotations), str(args.images))
    if args.shard:
        report["settings"]["shard"] = args.shard
    return finish_evaluation(
        args,
        report,
        format_region_table(report),
        interrupted,
        f"{len(evaluation.generations)} judged answers",
    )

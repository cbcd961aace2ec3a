"""The parser of every ``gaze-explorer`` command, and the cross-argument rules argparse cannot express.

argparse only (plus the cheap flag groups of ``cli.args``): building the parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

from gaze_explorer.cli.args import (
    DEFAULT_CONDITIONS,
    FIGURES,
    PROTOCOLS,
    add_comics_args,
    add_executor_args,
    add_model_args,
    add_steering_args,
    box,
    capture_scope,
    conditions,
    control_pool,
    criteria,
    head_spec,
    non_negative_float,
    non_negative_int,
    panel_bounds,
    panel_widths,
    positive_int,
    schedule,
    shard,
)
from gaze_explorer.core.protocol_choices import (
    BASELINE_RULES,
    BIAS_ON,
    BOTTOM_ROW_RULES,
    DEFAULT_BASELINE_RULE,
    ENTROPY_VARIANTS,
)


class Parsers(NamedTuple):
    """The top-level parser and each command's own (whose ``error`` names the command)."""

    main: argparse.ArgumentParser
    commands: dict[str, argparse.ArgumentParser]


def build_parsers() -> Parsers:
    """The argument parser of every command (``--help`` on each)."""
    from gaze_explorer.demo.prompts import SENTENCE_TOKENS

    parser = argparse.ArgumentParser(
        prog="gaze-explorer",
        description="Find, inspect and steer the gaze heads of vision-language models. "
        "Without a command, starts the app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "discover",
        help="rank heads by gaze score over many strips",
        description="Rank every (layer, head) by its gaze score: the attention of the "
        "k-th-panel question's last token on panel k, averaged over panels and strips.",
    )
    add_model_args(d)
    add_comics_args(d)
    d.add_argument(
        "--out", required=True, help="folder for ranking.json, gaze_scores.npy, panel_matrices.npy"
    )
    d.add_argument("--session", default=None, help="also store scores and matrices in this session file")
    d.add_argument("--shard", type=shard, default=None, help="i/n: this job's share of the strips (1-based)")
    d.add_argument("--partial", default=None, help=argparse.SUPPRESS)  # a shard's partial result (executor)
    add_localization_args(d)
    add_executor_args(d)

    g = sub.add_parser(
        "generate", help="generate (optionally steered) text about one image, streaming tokens"
    )
    add_model_args(g)
    g.add_argument("--image", required=True, help="image file (png, jpg, webp, bmp...)")
    g.add_argument("--prompt", required=True, help="the question")
    where = g.add_mutually_exclusive_group()
    where.add_argument(
        "--panels", type=positive_int, default=None, help="split the image into N side-by-side panels"
    )
    where.add_argument(
        "--box", type=box, default=None, help="steer to the tokens inside x0,y0,x1,y1 (pixels)"
    )
    shape = g.add_mutually_exclusive_group()
    shape.add_argument(
        "--panel-widths",
        type=panel_widths,
        default=None,
        help="unequal panels: their relative widths left to right, e.g. 1,2,1,3 (implies --panels)",
    )
    shape.add_argument(
        "--panel-bounds",
        type=panel_bounds,
        default=None,
        help="unequal panels: x pixel positions of the boundaries between them, e.g. 300,900,1100",
    )
    g.add_argument(
        "--heads",
        type=head_spec,
        default=None,
        help="gaze:K (or top:K), image:K, localization:K, random:K, all, or a head-list file",
    )
    g.add_argument(
        "--ranking", default=None, help="gaze ranking JSON for top:K / random:K (default: discover on demo)"
    )
    when = g.add_mutually_exclusive_group()
    when.add_argument("--target", type=positive_int, default=None, help="panel to steer to (1-based)")
    when.add_argument("--schedule", type=schedule, default=None, help="panels in order, e.g. 4,2,1,6,5,3")
    g.add_argument(
        "--switch-every",
        type=positive_int,
        default=None,
        help=f"tokens per schedule step (default 50; demo {SENTENCE_TOKENS}, one sentence)",
    )
    g.add_argument(
        "--switch-alignment",
        choices=SWITCH_ALIGNMENT_CHOICES,
        default=None,
        help="--schedule: when each switch lands: project (default; the token at k x every is the first "
        "under the k-th panel) or authors (their script's timing, one token later)",
    )
    g.add_argument(
        "--bias-on",
        choices=BIAS_ON,
        default=None,
        help="when the steering bias applies: prefill+decode (default for a --target panel or a --box, as "
        "in the paper's static protocols) or decode (default for a --schedule, as in dynamic narration)",
    )
    add_steering_args(g)
    g.add_argument(
        "--ignore-eos",
        action="store_true",
        help="keep generating past the end-of-sequence token, up to --max-new-tokens",
    )
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of random:K heads")
    add_control_pool_arg(g)
    add_localization_args(g)
    g.add_argument("--session", default=None, help="append the run to this session file (.h5)")
    g.add_argument(
        "--capture",
        type=capture_scope,
        default="full",
        help="what the session stores of each step's attention: full (default), image-keys (only the "
        "keys up to the last image token: overlay, grid and staircase still work) or heads:FILE "
        "(only the heads of a head list)",
    )

    e = sub.add_parser(
        "evaluate",
        help="the paper's evaluation protocols, judged offline",
        description="Run a protocol under the gaze, random, all-heads and baseline conditions "
        "and report accuracy with 95% bootstrap CIs (see docs/evaluation_json.md).",
    )
    e.add_argument(
        "protocol",
        choices=(*PROTOCOLS, "sweep"),
        help="static (VQA), narration, dynamic or region; sweep: one of them across --over values",
    )
    add_model_args(e)
    add_comics_args(e)
    e.add_argument("--heads-file", default=None, help="gaze ranking JSON (default: discover on the strips)")
    e.add_argument(
        "--top-k", type=positive_int, default=None, help="K gaze heads (default 10%% demo, 100 real)"
    )
    e.add_argument(
        "--conditions",
        type=conditions,
        default=DEFAULT_CONDITIONS,
        help="comma list of gaze,image,localization,random,all,baseline (default gaze,random,all,baseline)",
    )
    add_control_pool_arg(e)
    sw = e.add_argument_group("sweep (evaluate sweep)")
    sw.add_argument(
        "--protocol",
        dest="sweep_protocol",
        choices=("static", "narration", "dynamic"),
        default=None,
        help="the protocol to sweep (default static)",
    )
    sw.add_argument(
        "--over",
        action="append",
        default=None,
        help="k=5,10,50 and/or strength=1,10,100 (repeat the flag for both)",
    )
    sw.add_argument(
        "--prompts", default=None, help="file with one prompt per line: each is a sweep axis value"
    )
    sw.add_argument(
        "--criteria",
        type=criteria,
        default=None,
        help="comma list of gaze,image,localization (default all three; random and all are always run)",
    )
    sw.add_argument("--resume", default=None, help="continue this sweep JSON, skipping its finished cells")
    sw.add_argument("--figure", default=None, help="draw the curve with 95%% CIs to this PNG/SVG/PDF")
    e.add_argument("--prompt", default=None, help="override the protocol's question")
    e.add_argument(
        "--switch-every",
        type=positive_int,
        default=None,
        help=f"dynamic: tokens per segment (default 50; demo {SENTENCE_TOKENS}, one sentence)",
    )
    e.add_argument(
        "--switch-alignment",
        choices=SWITCH_ALIGNMENT_CHOICES,
        default=None,
        help="dynamic: when each switch lands: project (default; the token at k x every is the first "
        "under the k-th panel) or authors (their script's timing, one token later)",
    )
    e.add_argument(
        "--bias-on",
        choices=BIAS_ON,
        default=None,
        help="when the steering bias applies: prefill+decode (default for static, narration and region, "
        "as in the paper) or decode (default for dynamic)",
    )
    e.add_argument(
        "--baseline-rule",
        choices=tuple(BASELINE_RULES),
        default=DEFAULT_BASELINE_RULE,
        help="static and narration: a steered answer like the unsteered one is a miss: jaccard (default, "
        "the paper: word Jaccard > 0.9), authors (their code), exact, off",
    )
    e.add_argument(
        "--n-resamples",
        type=positive_int,
        default=None,
        help="bootstrap resamples of the 95%% CIs (default 10,000, the paper's)",
    )
    add_localization_args(e)
    e.add_argument("--judge", choices=("auto", "attributes", "captions"), default="auto")
    e.add_argument("--max-strips", type=positive_int, default=None, help="evaluate only the first N strips")
    e.add_argument("--shard", type=shard, default=None, help="i/n: this job's share of the strips (1-based)")
    e.add_argument("--json", default=None, help="write the full results here (atomically)")
    e.add_argument(
        "--boxes",
        default=None,
        help='region: JSON {"strip name": [[x0,y0,x1,y1], ...]} (default: one per panel)',
    )
    co = e.add_argument_group("region on COCO-format annotations (evaluate region --coco-annotations)")
    co.add_argument(
        "--coco-annotations",
        default=None,
        help="region: a COCO instances JSON (images, annotations with bbox and area, categories); steer to "
        "each object's box and judge whether the answer names its category, by COCO size class",
    )
    co.add_argument("--images", default=None, help="the folder holding the annotations' image files")
    co.add_argument(
        "--synonyms", default=None, help='JSON {"category": ["other name", ...]} added to the built-in table'
    )
    co.add_argument(
        "--min-box-area",
        type=non_negative_float,
        default=None,
        help="skip boxes smaller than this in px^2 (default 750)",
    )
    co.add_argument("--max-images", type=positive_int, default=None, help="only the first N images")
    add_steering_args(e)
    # None: tells an explicit --strength (refused beside --over strength=...) from the default,
    # filled in by check_args
    e.set_defaults(strength=None)

    add_executor_args(e)

    m = sub.add_parser(
        "merge",
        help="merge the shards of a sharded discover/evaluate run (--executor) into one result",
        description="Build, from the partial results in a sharded run's --shard-dir, exactly what a "
        "single run writes (discover's --out folder, evaluate's --json).",
    )
    m.add_argument("directory", help="the shard folder (it holds manifest.json)")
    m.add_argument("--out", default=None, help="discover: write here instead of the run's --out")
    m.add_argument("--json", default=None, help="evaluate: write here instead of the run's --json")

    x = sub.add_parser("export", help="figures and head lists from a session file, without the GUI")
    x.add_argument("--session", required=True, help="session file (.h5)")
    x.add_argument("--figure", choices=FIGURES, default="all", help="what to export (default all)")
    x.add_argument(
        "--out",
        default=None,
        help="output folder (or file for a single figure; default SESSION_figures beside it)",
    )
    x.add_argument("--format", choices=("png", "svg", "pdf"), default="png")
    x.add_argument(
        "--run",
        default=None,
        help="run id, user name or label for overlay/timeline (default: the run the app showed, else the last)",
    )
    x.add_argument(
        "--step",
        type=non_negative_int,
        default=None,
        help="decode step for overlay (default: the saved one, else 0)",
    )
    x.add_argument(
        "--heads",
        type=head_spec,
        default=None,
        help="head set (default: the run's own heads; a baseline: top:10 of the session's scores)",
    )
    x.add_argument(
        "--layer",
        type=non_negative_int,
        default=None,
        help="matrix: the head's layer (default: the head inspected when saved, else the top gaze head)",
    )
    x.add_argument("--head", type=non_negative_int, default=None, help="matrix: the head (with --layer)")
    x.add_argument(
        "--discovery",
        default=None,
        help="the session's discovery for the grid, the matrix and the default heads, by key (disc_000, "
        "...; default: the one the app showed when it saved the session, else the newest)",
    )
    x.add_argument(
        "--spans",
        default=None,
        help="one overlay per span, averaged over its steps: 0-12,13-30 (name:0-12 names one), a spans JSON "
        "file, saved (the run's spans in the session) or auto (steps whose heat peaks in the same region)",
    )
    x.add_argument(
        "--weighting",
        choices=("raw", "value"),
        default="raw",
        help="--spans: raw attention, or value-weighted (attention x ||v||, renormalised over the image; "
        "needs a session that stores the value norms)",
    )
    add_control_pool_arg(x)

    r = sub.add_parser(
        "report",
        help="run the paper's experiments on one checkpoint and write a self-contained HTML report",
        description="Discovery (three criteria), static VQA and narration at K and over a K sweep, dynamic "
        "narration, and COCO region steering when given; writes OUT/report.json and OUT/index.html with the "
        "paper's figures beside its Qwen3-VL-8B numbers. --compare renders several reports side by side.",
    )
    add_model_args(r)
    add_comics_args(r)
    r.add_argument("--out", required=True, help="report folder (stage results in OUT/stages)")
    r.add_argument("--top-k", type=positive_int, default=None, help="K (default 10%% demo, 100 real)")
    r.add_argument("--coco-annotations", default=None, help="COCO instances JSON: Tab. 1 (with --images)")
    r.add_argument("--images", default=None, help="the folder of the annotations' image files")
    r.add_argument("--max-images", type=positive_int, default=None, help="COCO: only the first N images")
    r.add_argument("--max-strips", type=positive_int, default=None, help="at most N strips per evaluation")
    r.add_argument("--sweep-ks", type=sweep_ks_arg, default=None, help="K values of the sweep, e.g. 1,5,10")
    r.add_argument("--quick", action="store_true", help="few strips and a short sweep: a demo in minutes")
    r.add_argument("--resume", action="store_true", help="skip the stages finished in OUT/stages")
    r.add_argument(
        "--compare", nargs="+", default=None, metavar="REPORT_DIR", help="render these reports side by side"
    )
    add_executor_args(r)  # each shardable stage runs as shards, merged before the next

    # bench has its own parser (cli.bench.build_bench_parser); main() hands its arguments over
    b = sub.add_parser("bench", help="benchmarks (see gaze_explorer.bench)", add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    commands = {"discover": d, "generate": g, "evaluate": e, "merge": m, "export": x, "report": r, "bench": b}
    return Parsers(parser, commands)


def add_control_pool_arg(p: argparse.ArgumentParser) -> None:
    """``--control-pool``: where ``random:K`` heads are drawn from (``core.heads.ControlPool``; checked
    when the heads are chosen)."""
    p.add_argument(
        "--control-pool",
        type=control_pool,
        default=None,
        help="where random heads are drawn from: band (default; the layers the top-K gaze heads occupy, "
        "without them: the paper's headline), percentile:P (gaze score <= the P-th percentile; "
        "percentile:5 is the authors' code) or all-non-gaze",
    )


SWITCH_ALIGNMENT_CHOICES = ("project", "authors")  # core.steering.SWITCH_ALIGNMENTS (kept cheap here)


def add_localization_args(p: argparse.ArgumentParser) -> None:
    """``--loc-entropy`` / ``--loc-bottom-row``: the Localization Heads variants (``core.criteria``),
    where the paper's text and the authors' code differ."""
    p.add_argument(
        "--loc-entropy",
        choices=ENTROPY_VARIANTS,
        default=None,
        help="Localization Heads' spatial entropy: paper (default; sizes of the map's components above its "
        "mean) or code (the authors' code: components of the map above 2x its mean, by attention mass)",
    )
    p.add_argument(
        "--loc-bottom-row",
        choices=BOTTOM_ROW_RULES,
        default=None,
        help="Localization Heads' bottom-row filter: code (default, the authors' code: any bottom-row cell "
        "above 0.05), peak (the map's maximum in the bottom row) or off",
    )


def sweep_ks_arg(text: str) -> tuple[int, ...]:
    """``report --sweep-ks``: whole numbers >= 1 separated by commas."""
    return tuple(positive_int(part.strip()) for part in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (its sub-commands included)."""
    return build_parsers().main


def _version() -> str:
    from gaze_explorer import __version__

    return __version__


def check_generate_targets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``generate``'s rules on heads, regions, target and schedule; violations exit with code 2."""
    if args.switch_every is not None and args.schedule is None:
        parser.error("--switch-every needs --schedule")
    if args.switch_alignment is not None and args.schedule is None:
        parser.error("--switch-alignment needs --schedule")
    if args.bias_on is not None and args.heads is None:
        parser.error("--bias-on needs --heads (it says when the steering bias applies)")
    if (args.target is not None or args.schedule is not None) and args.heads is None:
        parser.error("--target/--schedule need --heads (top:K, random:K, all or a file)")
    shape = args.panel_widths or args.panel_bounds
    if shape is not None:
        n = len(args.panel_widths) if args.panel_widths else len(args.panel_bounds) + 1
        if args.box is not None:
            parser.error("--panel-widths/--panel-bounds split the image into panels; --box gives one region")
        if args.panels is not None and args.panels != n:
            parser.error(f"--panels {args.panels} but the panel widths/bounds give {n} panels")
        args.panels = n
    # a box is a target of its own: --heads with --box needs nothing more
    if args.heads is not None and args.target is None and args.schedule is None and args.box is None:
        parser.error("--heads needs a --target panel, a --schedule or a --box")
    if args.box is not None and args.schedule is not None:
        parser.error("--box gives one region; a --schedule needs --panels")
    if args.panels is not None:
        from gaze_explorer.core.errors import ScheduleError
        from gaze_explorer.core.steering import check_targets  # the app's and generate_stream's check

        for flag, panels in (("--target", [args.target]), ("--schedule", list(args.schedule or ()))):
            try:
                check_targets([p - 1 for p in panels if p is not None], args.panels)
            except ScheduleError as exc:
                parser.error(f"{flag}: {exc}")
    if args.target is not None and args.panels is None and args.box is None:
        parser.error("--target needs --panels N or --box")
    if args.schedule is not None and args.panels is None:
        parser.error("--schedule needs --panels N")
    if args.box is not None and args.target not in (None, 1):
        parser.error("with --box the box is the only target: leave --target out")


def check_args(parsers: Parsers, args: argparse.Namespace) -> None:
    """Cross-argument rules argparse cannot express; violations exit with code 2."""
    sub = parsers.commands[args.command]
    if args.command == "generate":
        check_generate_targets(sub, args)
        if args.capture != "full" and not args.session:
            sub.error("--capture needs --session (it chooses what the session stores)")
    if args.command in ("discover", "evaluate") and args.use_raw and args.comics == "demo":
        sub.error("--use-raw needs --comics DIR (the COMICS corpus folder)")
    if args.command == "evaluate":
        check_sweep(sub, args)
        if args.strength is None:  # the default of --strength, shared with generate
            args.strength = parsers.commands["generate"].get_default("strength")
        if args.switch_every is not None and args.protocol != "dynamic":
            sub.error("--switch-every only applies to evaluate dynamic")
        if args.switch_alignment is not None and args.protocol != "dynamic":
            sub.error("--switch-alignment only applies to evaluate dynamic")
        if args.boxes is not None and args.protocol != "region":
            sub.error("--boxes only applies to evaluate region")
        check_coco(sub, args)
        if args.protocol == "dynamic" and args.n_panels < 2:
            sub.error("dynamic narration needs at least 2 panels")
    if args.command == "export" and (args.layer is None) != (args.head is None):
        sub.error("--layer and --head name the matrix's head together: give both, or neither")
    if (
        args.command == "export"
        and args.spans is not None
        and (args.figure != "all" or args.step is not None)
    ):
        sub.error("--spans draws one overlay per span: leave out --figure and --step")
    if args.command in ("discover", "evaluate", "report"):
        check_executor(sub, args)


COCO_ONLY = ("images", "synonyms", "min_box_area", "max_images")


def check_coco(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``evaluate region --coco-annotations``'s rules."""
    if args.coco_annotations is None:
        given = [name for name in COCO_ONLY if getattr(args, name) is not None]
        if given:
            parser.error(f"--{given[0].replace('_', '-')} needs --coco-annotations")
        return
    if args.protocol != "region" or getattr(args, "sweep", False):
        parser.error("--coco-annotations only applies to evaluate region")
    if args.images is None:
        parser.error("--coco-annotations needs --images DIR (the folder of its image files)")
    if args.boxes is not None:
        parser.error("--coco-annotations gives the boxes: leave out --boxes")


def check_executor(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--executor``'s rules: it makes the shards itself, and its settings need it."""
    if args.executor is None:
        given = [
            f for f in ("detach", "slurm_partition", "slurm_gpus_per_job", "shard_dir") if getattr(args, f)
        ]
        if given:
            parser.error(f"--{given[0].replace('_', '-')} needs --executor")
        return
    if getattr(args, "shard", None) is not None or getattr(args, "partial", None) is not None:
        parser.error("--executor makes the shards itself: leave out --shard")
    if args.detach and args.executor != "slurm":
        parser.error("--detach only applies to --executor slurm")
    if args.detach and args.command == "report":
        parser.error("report cannot --detach: each stage needs the one before it merged")


SWEEP_ONLY = ("sweep_protocol", "over", "prompts", "resume", "figure", "criteria")


def check_sweep(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``evaluate sweep``'s rules. For the checks that follow, ``args.protocol`` becomes the swept
    protocol (``args.sweep`` records that it is a sweep)."""
    args.sweep = args.protocol == "sweep"
    if not args.sweep:
        given = [name for name in SWEEP_ONLY if getattr(args, name) is not None]
        if given:
            parser.error(
                f"--{given[0].replace('sweep_', '').replace('_', '-')} only applies to evaluate sweep"
            )
        return
    swept = {text.partition("=")[0].strip() for text in args.over or ()}
    if "k" in swept and args.top_k is not None:
        parser.error("--top-k does not apply with --over k=...: the --over axis gives the K values")
    if "strength" in swept and args.strength is not None:
        parser.error("--strength does not apply with --over strength=...: the --over axis gives the values")
    args.sweep_protocol = args.sweep_protocol or "static"
    args.protocol = args.sweep_protocol
    if args.boxes is not None:
        parser.error("evaluate sweep takes no --boxes")
    if args.prompts is not None and args.prompt is not None:
        parser.error("give --prompt or --prompts, not both")

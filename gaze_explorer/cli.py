"""The ``gaze-explorer`` command line: headless ``discover``, ``generate``, ``evaluate``, ``export``
and ``bench``; with no sub-command it starts the app.

This module only parses arguments; the commands live in ``cli_commands.py`` and import torch, h5py
or Qt lazily, so ``import gaze_explorer.cli`` stays cheap. Exit codes: 0 done, 1 a user error
(bad file, model, image... the message is printed, never a traceback), 2 bad arguments, 130
interrupted by Ctrl-C (completed work is saved first).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

COMMANDS = ("discover", "generate", "evaluate", "export", "bench")
PROTOCOLS = ("static", "narration", "dynamic", "region")
MODES = ("boost_suppress", "suppress_image", "suppress_all", "max_suppress_all")
CONDITIONS = ("gaze", "random", "all", "baseline")
FIGURES = ("grid", "overlay", "timeline", "matrix", "heads", "all")


# -- argument types: each raises ArgumentTypeError, which argparse turns into exit code 2 ---------
def _whole_number(text: str, minimum: int, requirement: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "0 or more")


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def box(text: str) -> tuple[float, float, float, float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a box is four numbers x0,y0,x1,y1 in image pixels"
        ) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise argparse.ArgumentTypeError(f"{text!r}: coordinates must be finite")
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"{text!r}: need x1 > x0 and y1 > y0")
    return (x0, y0, x1, y1)


def panel_number(text: str) -> int:
    value = positive_int(text)
    return value


def schedule(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        panels = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write panel numbers separated by commas, e.g. 4,2,1,6,5,3"
        ) from None
    if any(p < 1 for p in panels):
        raise argparse.ArgumentTypeError(f"{text!r}: panels are numbered from 1")
    return panels


def shard(text: str) -> str:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write i/n, e.g. 1/4 for the first of four shards"
        ) from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= i <= n")
    return f"{i}/{n}"


def head_spec(text: str) -> str:
    from gaze_explorer.core.errors import HeadSpecError
    from gaze_explorer.core.heads import parse_head_spec

    try:
        parse_head_spec(text)
    except HeadSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def device(text: str) -> str:
    ok = text in ("auto", "cpu", "mps") or text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def device_map(text: str) -> str:
    """An accelerate ``device_map``: a placement strategy, or one device for the whole model."""
    ok = (
        text in DEVICE_MAP_STRATEGIES
        or text in ("cpu", "cuda", "mps", "disk")
        or (text.startswith("cuda:") and text[5:].isdigit())
    )
    if not ok:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use {', '.join(DEVICE_MAP_STRATEGIES)}, or one device (cpu, cuda, cuda:N, mps)"
        )
    return text


def conditions(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in CONDITIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: choose among {','.join(CONDITIONS)}")
    return names


# -- the parser ------------------------------------------------------------------------------------
def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="demo", help="'demo' (bundled), a local folder, or a cached Hugging Face id"
    )
    p.add_argument(
        "--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)"
    )
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    add_placement_args(p)


def add_placement_args(p: argparse.ArgumentParser) -> None:
    """``--device-map`` and ``--trust-remote-code``, for every parser that loads a model (also the app's)."""
    p.add_argument(
        "--device-map",
        type=device_map,
        default=None,
        help="spread a checkpoint too large for one GPU with accelerate: auto, balanced, "
        "balanced_low_0, sequential, or one device (overrides --device; default off)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the Python code shipped in the model folder (needed by some checkpoints); "
        "only for checkpoints you trust (default off)",
    )


def _comics_args(p: argparse.ArgumentParser, n_strips_default: int | None) -> None:
    p.add_argument(
        "--comics",
        default="demo",
        help="'demo' (bundled held-out strips) or a folder of comicN/p1..pN strips",
    )
    p.add_argument(
        "--use-raw", action="store_true", help="--comics is the COMICS corpus: <comic>/<page>_<panel>.jpg"
    )
    p.add_argument("--n-panels", type=positive_int, default=6, help="panels per strip (default 6)")
    p.add_argument(
        "--panel-height", type=positive_int, default=None, help="strip height in px (default 256; demo 96)"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of raw-corpus windows, controls, schedules"
    )
    p.add_argument(
        "--n-strips", type=positive_int, default=n_strips_default, help="use at most this many strips"
    )


def _steer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="boost_suppress", help="steering bias mode")
    p.add_argument("--strength", type=positive_float, default=1e4, help="bias strength (default 1e4)")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="tokens to generate")
    p.add_argument("--repetition-penalty", type=positive_float, default=1.0)
    p.add_argument("--no-repeat-ngram-size", type=non_negative_int, default=0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (``--help`` on each)."""
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
    _model_args(d)
    _comics_args(d, None)
    d.add_argument(
        "--out", required=True, help="folder for ranking.json, gaze_scores.npy, panel_matrices.npy"
    )
    d.add_argument("--session", default=None, help="also store scores and matrices in this session file")

    g = sub.add_parser(
        "generate", help="generate (optionally steered) text about one image, streaming tokens"
    )
    _model_args(g)
    g.add_argument("--image", required=True, help="image file (png, jpg, webp, bmp...)")
    g.add_argument("--prompt", required=True, help="the question")
    where = g.add_mutually_exclusive_group()
    where.add_argument(
        "--panels", type=positive_int, default=None, help="split the image into N side-by-side panels"
    )
    where.add_argument(
        "--box", type=box, default=None, help="steer to the tokens inside x0,y0,x1,y1 (pixels)"
    )
    g.add_argument("--heads", type=head_spec, default=None, help="top:K, random:K, all, or a head-list file")
    g.add_argument(
        "--ranking", default=None, help="gaze ranking JSON for top:K / random:K (default: discover on demo)"
    )
    when = g.add_mutually_exclusive_group()
    when.add_argument("--target", type=panel_number, default=None, help="panel to steer to (1-based)")
    when.add_argument("--schedule", type=schedule, default=None, help="panels in order, e.g. 4,2,1,6,5,3")
    g.add_argument(
        "--switch-every", type=positive_int, default=None, help="tokens per schedule step (default 50)"
    )
    _steer_args(g)
    g.add_argument(
        "--ignore-eos",
        action="store_true",
        help="keep generating past the end-of-sequence token, up to --max-new-tokens",
    )
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of random:K heads")
    g.add_argument("--session", default=None, help="append the run to this session file (.h5)")

    e = sub.add_parser(
        "evaluate",
        help="the paper's evaluation protocols, judged offline",
        description="Run a protocol under the gaze, random, all-heads and baseline conditions "
        "and report accuracy with 95% bootstrap CIs (see docs/evaluation_json.md).",
    )
    e.add_argument("protocol", choices=PROTOCOLS, help="static (VQA), narration, dynamic or region")
    _model_args(e)
    _comics_args(e, None)
    e.add_argument("--heads-file", default=None, help="gaze ranking JSON (default: discover on the strips)")
    e.add_argument(
        "--top-k", type=positive_int, default=None, help="K gaze heads (default 10%% demo, 100 real)"
    )
    e.add_argument(
        "--conditions", type=conditions, default=CONDITIONS, help="comma list of gaze,random,all,baseline"
    )
    e.add_argument("--prompt", default=None, help="override the protocol's question")
    e.add_argument(
        "--switch-every",
        type=positive_int,
        default=None,
        help="dynamic: tokens per segment (default 50; demo 6, one sentence)",
    )
    e.add_argument("--judge", choices=("auto", "attributes", "captions"), default="auto")
    e.add_argument("--max-strips", type=positive_int, default=None, help="evaluate only the first N strips")
    e.add_argument("--shard", type=shard, default=None, help="i/n: this job's share of the strips (1-based)")
    e.add_argument("--json", default=None, help="write the full results here (atomically)")
    e.add_argument(
        "--boxes",
        default=None,
        help='region: JSON {"strip name": [[x0,y0,x1,y1], ...]} (default: one per panel)',
    )
    _steer_args(e)

    x = sub.add_parser("export", help="figures and head lists from a session file, without the GUI")
    x.add_argument("--session", required=True, help="session file (.h5)")
    x.add_argument("--figure", choices=FIGURES, default="all", help="what to export (default all)")
    x.add_argument("--out", required=True, help="output folder (or file for a single figure)")
    x.add_argument("--format", choices=("png", "svg", "pdf"), default="png")
    x.add_argument("--run", default=None, help="run name for overlay/timeline (default: the last run)")
    x.add_argument("--step", type=non_negative_int, default=0, help="decode step for overlay")
    x.add_argument(
        "--heads", type=head_spec, default=None, help="head set (default top:10 of the session's scores)"
    )
    x.add_argument("--layer", type=non_negative_int, default=None, help="matrix: the head's layer")
    x.add_argument("--head", type=non_negative_int, default=None, help="matrix: the head")

    b = sub.add_parser("bench", help="benchmarks (see gaze_explorer.bench)", add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def _version() -> str:
    from gaze_explorer import __version__

    return __version__


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Cross-argument rules argparse cannot express; violations exit with code 2."""
    sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    if args.command == "generate":
        if args.switch_every is not None and args.schedule is None:
            sub.error("--switch-every needs --schedule")
        if (args.target is not None or args.schedule is not None) and args.heads is None:
            sub.error("--target/--schedule need --heads (top:K, random:K, all or a file)")
        if args.heads is not None and args.target is None and args.schedule is None:
            sub.error("--heads needs a --target panel or a --schedule")
        if args.box is not None and args.schedule is not None:
            sub.error("--box gives one region; a --schedule needs --panels")
        n = args.panels
        if n is not None:
            if args.target is not None and args.target > n:
                sub.error(f"--target {args.target} but the image has only {n} panels")
            if args.schedule is not None and max(args.schedule) > n:
                sub.error(f"--schedule names panel {max(args.schedule)} but the image has only {n} panels")
        if args.target is not None and args.panels is None and args.box is None:
            sub.error("--target needs --panels N or --box")
        if args.schedule is not None and args.panels is None:
            sub.error("--schedule needs --panels N")
        if args.box is not None and args.target not in (None, 1):
            sub.error("with --box the only target is the box (--target 1 or none)")
    if args.command in ("discover", "evaluate") and args.use_raw and args.comics == "demo":
        sub.error("--use-raw needs --comics DIR (the COMICS corpus folder)")
    if args.command == "evaluate":
        if args.switch_every is not None and args.protocol != "dynamic":
            sub.error("--switch-every only applies to evaluate dynamic")
        if args.boxes is not None and args.protocol != "region":
            sub.error("--boxes only applies to evaluate region")
        if args.protocol == "dynamic" and args.n_panels < 2:
            sub.error("dynamic narration needs at least 2 panels")
    if args.command == "export" and args.figure == "matrix" and (args.layer is None or args.head is None):
        sub.error("--figure matrix needs --layer and --head")


def _run_app(argv: list[str]) -> int:
    try:
        from gaze_explorer.qt import app
    except ImportError as exc:
        print(f"gaze-explorer: cannot start the app ({exc}); use a command, see --help", file=sys.stderr)
        return 1
    entry = getattr(app, "main", None) or app.run
    return int(entry(argv) or 0)


def main(argv: Sequence[str] | None = None, app_only: bool = False) -> int:
    """Entry point of ``gaze-explorer``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if app_only or not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        return _run_app(argv)
    parser = build_parser()
    if argv[0] == "bench":
        return _run_bench(argv[1:])
    args = parser.parse_args(argv)  # exits with code 2 on bad arguments
    check_args(parser, args)
    from gaze_explorer import cli_commands
    from gaze_explorer.core.errors import GazeExplorerError

    handler = getattr(cli_commands, f"cmd_{args.command}")
    try:
        return int(handler(args) or 0)
    except GazeExplorerError as exc:
        print(f"gaze-explorer {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ngaze-explorer {args.command}: interrupted", file=sys.stderr)
        return 130


def _run_bench(argv: list[str]) -> int:
    import importlib.util

    if importlib.util.find_spec("gaze_explorer.bench") is None:
        print("gaze-explorer bench: the benchmarks are not installed in this build", file=sys.stderr)
        return 1
    from gaze_explorer import bench

    return int(bench.main(argv) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

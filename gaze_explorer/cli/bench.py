"""``gaze-explorer bench <name>``: the benchmarks' options, parsed here, and the run of one benchmark
(``gaze_explorer.bench.run_named``), whose figures are printed and written as a JSON record
(``--json FILE``).

``gaze_explorer.bench`` is imported only when the command runs (and may be absent from a build);
it never imports the CLI. See ``docs/benchmarks.md`` for the measured numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from gaze_explorer.cli.args import device, positive_int


def build_bench_parser() -> argparse.ArgumentParser:
    """The options of ``gaze-explorer bench``; values are checked by the CLI's argument types."""
    from gaze_explorer.bench import NAMES

    p = argparse.ArgumentParser(
        prog="gaze-explorer bench", description="Run one benchmark (ours vs the usual method)."
    )
    p.add_argument("name", choices=NAMES, help="which benchmark")
    p.add_argument("--json", metavar="FILE", help="write the JSON record here")
    p.add_argument("--repeats", type=positive_int, default=None, help="alternating repeats of each method")
    p.add_argument("--model", default="demo", help="'demo', a local checkpoint folder or a cached id")
    p.add_argument(
        "--random-init",
        metavar="GEOMETRY",
        help="build a random-initialised Qwen3-VL of this geometry "
        "(e.g. Qwen3-VL-8B-Instruct, tiny) instead of loading --model",
    )
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument(
        "--tokens",
        type=positive_int,
        default=None,
        help="capture, ui: tokens to generate (default 200; ui 300)",
    )
    p.add_argument(
        "--strips", type=positive_int, default=None, help="discovery: strips per repeat (default 4)"
    )
    p.add_argument(
        "--steps", type=positive_int, default=None, help="scrub: random step changes (default 300)"
    )
    p.add_argument(
        "--layers",
        type=positive_int,
        default=None,
        help="scrub: layers of the synthetic session (default 36)",
    )
    p.add_argument(
        "--heads", type=positive_int, default=None, help="scrub: heads of the synthetic session (default 32)"
    )
    p.add_argument(
        "--keys", type=positive_int, default=None, help="scrub: keys of the synthetic session (default 1000)"
    )
    p.add_argument(
        "--short", type=positive_int, default=None, help="memory: short generation length (default 50)"
    )
    p.add_argument(
        "--long", type=positive_int, default=None, help="memory: long generation length (default 400)"
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="memory: child processes measured at once (default 1; each peak is its own process's)",
    )
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    return p


def run_bench(argv: list[str]) -> int:
    """Run ``gaze-explorer bench ARGS``; exit code 1 when the benchmarks are not installed or a run
    fails on bad input (the message is printed), 2 on bad arguments."""
    if importlib.util.find_spec("gaze_explorer.bench") is None:
        print("gaze-explorer bench: the benchmarks are not installed in this build", file=sys.stderr)
        return 1
    args = build_bench_parser().parse_args(argv)
    from gaze_explorer.bench import run_named
    from gaze_explorer.bench.harness import report
    from gaze_explorer.core.errors import GazeExplorerError

    if args.name in ("capture", "memory", "discovery", "ui"):
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        result = run_named(args)
    except GazeExplorerError as exc:
        print(f"gaze-explorer bench {args.name}: error: {exc}", file=sys.stderr)
        return 1
    report(result, args.json)
    return 0

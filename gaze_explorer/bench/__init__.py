"""``gaze-explorer bench <name>``: side-by-side benchmarks of our method against the usual one.

Each benchmark module has ``run(...) -> Result``; ``main(argv)`` parses the options, runs one
benchmark, prints the figures and writes the JSON record (``--json FILE``). See
``docs/benchmarks.md`` for the measured numbers and the commands that reproduce them.
"""

from __future__ import annotations

import argparse
import sys

from gaze_explorer.cli.args import device, positive_int  # the CLI's argument types: argparse only

NAMES = ("capture", "memory", "discovery", "scrub", "startup", "ui")


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    return p


def _given(args: argparse.Namespace, **names: str) -> dict:
    """Keyword arguments for ``run`` from the options the user gave (others keep their defaults)."""
    return {kw: getattr(args, attr) for kw, attr in names.items() if getattr(args, attr) is not None}


def run_named(args: argparse.Namespace):
    """Run the benchmark ``args.name``; return its Result."""
    model_kw = {"model": args.model, "random_init": args.random_init, "device": args.device}
    rep = _given(args, repeats="repeats")
    if args.name == "capture":
        from gaze_explorer.bench import capture

        return capture.run(**model_kw, **rep, **_given(args, tokens="tokens"))
    if args.name == "discovery":
        from gaze_explorer.bench import discovery

        return discovery.run(**model_kw, **rep, **_given(args, strips="strips"))
    if args.name == "memory":
        from gaze_explorer.bench import memory

        return memory.run(**model_kw, **rep, **_given(args, short="short", long="long"))
    if args.name == "ui":
        from gaze_explorer.bench import ui

        return ui.run(model=args.model, device=args.device, **rep, **_given(args, tokens="tokens"))
    if args.name == "scrub":
        from gaze_explorer.bench import scrub

        return scrub.run(**_given(args, steps="steps", layers="layers", heads="heads", keys="keys"))
    from gaze_explorer.bench import startup

    return startup.run(**rep)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gaze-explorer bench``; returns the exit status."""
    if isinstance(argv, argparse.Namespace):  # tolerate a caller passing a parsed namespace
        argv = list(getattr(argv, "bench_args", []) or [])
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from gaze_explorer.core.errors import GazeExplorerError

    if args.name in ("capture", "memory", "discovery", "ui"):
        import torch

        torch.set_num_threads(max(1, args.threads))
    from gaze_explorer.bench.harness import report

    try:
        result = run_named(args)
    except GazeExplorerError as exc:
        print(f"gaze-explorer bench {args.name}: error: {exc}", file=sys.stderr)
        return 1
    report(result, args.json)
    return 0

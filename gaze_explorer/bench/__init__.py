"""``gaze-explorer bench <name>``: side-by-side benchmarks of our method against the usual one.

Each benchmark module has ``run(...) -> Result``; :func:`run_named` runs the one named by the
parsed options. The options are parsed by the CLI (``gaze_explorer.cli.bench``), which prints the
figures and writes the JSON record (``--json FILE``); this package never imports the CLI. See
``docs/benchmarks.md`` for the measured numbers and the commands that reproduce them.
"""

from __future__ import annotations

import argparse

NAMES = ("capture", "memory", "discovery", "scrub", "startup", "ui")


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

        return memory.run(
            **model_kw, **rep, **_given(args, short="short", long="long", jobs="jobs"), threads=args.threads
        )
    if args.name == "ui":
        from gaze_explorer.bench import ui

        return ui.run(model=args.model, device=args.device, **rep, **_given(args, tokens="tokens"))
    if args.name == "scrub":
        from gaze_explorer.bench import scrub

        return scrub.run(**_given(args, steps="steps", layers="layers", heads="heads", keys="keys"))
    from gaze_explorer.bench import startup

    return startup.run(**rep)

"""The ``gaze-explorer`` command line: headless ``discover``, ``generate``, ``evaluate``, ``export``,
``report`` and ``bench``; with no sub-command it starts the app.

This module only dispatches. Argument types and flag groups are in ``args.py`` (shared with the
app's flags, ``app_args.py``, and the benchmarks' flags, ``bench.py``), the parser and its
cross-argument rules in ``parser.py``, shared command pieces in ``helpers.py``, and each command in
its own module, imported only when it runs (commands import torch, h5py or Qt lazily), so
``import gaze_explorer.cli`` stays cheap. cli is the only part of the package that parses arguments.
Exit codes: 0 done, 1 a user error (bad file, model, image... the message is printed, never a
traceback), 2 bad arguments, 130 interrupted by Ctrl-C (completed work is saved first).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from gaze_explorer.cli.parser import Parsers, build_parser, build_parsers, check_args

# each parsed command and the module whose ``run(args) -> int`` carries it out
COMMAND_MODULES = {
    "discover": "gaze_explorer.cli.discover",
    "generate": "gaze_explorer.cli.generate",
    "evaluate": "gaze_explorer.cli.evaluate",
    "export": "gaze_explorer.cli.export",
    "merge": "gaze_explorer.cli.merge",
    "report": "gaze_explorer.cli.report",
}
# bench has its own parser (gaze_explorer.cli.bench): the main parser hands its arguments over unparsed
COMMANDS = (*COMMAND_MODULES, "bench")


def run_app(argv: list[str]) -> int:
    """Parse the app's flags (``cli.app_args``: ``--help`` and bad flags exit with code 2 before Qt
    is imported), then start the desktop app (``gaze_explorer.qt.app``)."""
    from gaze_explorer.cli.app_args import build_app_parser

    args = build_app_parser().parse_args(argv)
    try:
        from gaze_explorer.qt import app
    except ImportError as exc:
        print(f"gaze-explorer: cannot start the app ({exc}); use a command, see --help", file=sys.stderr)
        return 1
    return int(app.main(args) or 0)


def main(argv: Sequence[str] | None = None, app_only: bool = False) -> int:
    """Entry point of ``gaze-explorer``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if app_only or not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        return run_app(argv)
    if argv[0] == "bench":
        from gaze_explorer.cli.bench import run_bench

        return run_bench(argv[1:])
    parsers = build_parsers()
    args = parsers.main.parse_args(argv)  # exits with code 2 on bad arguments
    check_args(parsers, args)
    args.argv = argv  # a sharded run (--executor) gives each shard the same command line
    from gaze_explorer.core.errors import GazeExplorerError

    command = importlib.import_module(COMMAND_MODULES[args.command])
    try:
        return int(command.run(args) or 0)
    except GazeExplorerError as exc:
        print(f"gaze-explorer {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ngaze-explorer {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "COMMAND_MODULES", "Parsers", "build_parser", "build_parsers", "check_args", "main"]

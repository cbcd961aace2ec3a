"""The desktop app's own flags (``gaze-explorer`` with no sub-command, ``python main.py``).

Parsed here, in the CLI, before Qt is imported: ``--help`` and bad values exit with code 2 at once,
and ``gaze_explorer.qt.app.main`` receives the parsed namespace. Values are checked by the CLI's
argument types (``cli.args``), as for the commands.
"""

from __future__ import annotations

import argparse

from gaze_explorer.cli.args import add_model_args, non_negative_int


def build_app_parser() -> argparse.ArgumentParser:
    """The app's flags: the model flags of the commands, and what to open and show."""
    p = argparse.ArgumentParser(
        prog="gaze-explorer", description="Find, inspect and steer the gaze heads of VLMs."
    )
    add_model_args(p)  # --model, --device, --dtype, --device-map, --trust-remote-code: as the CLI commands
    p.add_argument("--session", help="open this session file (no model is loaded)")
    p.add_argument("--image", help="open this image instead of the demo strip")
    p.add_argument(
        "--panels",
        type=non_negative_int,
        default=None,
        help="how many side-by-side panels the image has (0 = none)",
    )
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and exit")
    p.add_argument("--step", type=non_negative_int, default=None, help="the decode step to show")
    return p

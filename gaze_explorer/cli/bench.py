"""``gaze-explorer bench``: hands its arguments to ``gaze_explorer.bench``, which parses its own."""

from __future__ import annotations

import importlib.util
import sys


def run_bench(argv: list[str]) -> int:
    """Run ``gaze-explorer bench ARGS``; exit code 1 when the benchmarks are not installed."""
    if importlib.util.find_spec("gaze_explorer.bench") is None:
        print("gaze-explorer bench: the benchmarks are not installed in this build", file=sys.stderr)
        return 1
    from gaze_explorer import bench

    return int(bench.main(argv) or 0)

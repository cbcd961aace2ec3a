"""``python -m gaze_explorer.bench <name>``: the benchmarks without the CLI (handy under a profiler)."""

import sys

from gaze_explorer.bench import main

sys.exit(main(sys.argv[1:]))

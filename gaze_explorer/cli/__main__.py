"""``python -m gaze_explorer.cli``: the same as the ``gaze-explorer`` console script."""

import sys

from gaze_explorer.cli import main

sys.exit(main())

"""Launch gaze-explorer: with no arguments, the main window on the bundled demo model."""

import sys

from gaze_explorer.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], app_only=True))

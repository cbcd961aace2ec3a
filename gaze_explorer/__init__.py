"""gaze-explorer: find, inspect and steer the gaze heads of vision-language models."""

__version__ = "0.1.0"

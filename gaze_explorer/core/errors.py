"""The exception types that gaze-explorer raises for bad input.

Every error a user can cause (a bad path, image, head list, schedule, box or file) is one of these,
with a message that says what was wrong and how to fix it. Callers (CLI, app) catch
``GazeExplorerError`` and show ``str(err)``; anything else is a bug.
"""

from __future__ import annotations


class GazeExplorerError(Exception):
    """Base class of every error caused by input that the user can fix."""


class ModelLoadError(GazeExplorerError):
    """A model path, id or checkpoint that cannot be loaded (missing, corrupted, not safetensors)."""


class UnsupportedFamilyError(ModelLoadError):
    """A checkpoint whose architecture no adapter supports."""


class InvalidImageError(GazeExplorerError):
    """A file that is not a readable image, or an image we cannot use (too large, animated...)."""


class DatasetError(GazeExplorerError):
    """A strip folder or comics corpus that is missing or does not have the expected layout."""


class RegionError(GazeExplorerError):
    """A panel count, box or token set that does not map to any image token."""


class HeadSpecError(GazeExplorerError):
    """A head list that is malformed, or names a layer or head out of range for the model."""


class ControlPoolError(HeadSpecError):
    """A random control whose pool (the heads it may be drawn from) holds fewer heads than K."""


class ScheduleError(GazeExplorerError):
    """A steering schedule that is malformed or names a region that does not exist."""


class PromptError(GazeExplorerError):
    """An empty prompt, or one too long for the model's context."""


class SessionFileError(GazeExplorerError):
    """A session file that cannot be opened or is not a valid gaze-explorer session."""


class SchemaVersionError(SessionFileError):
    """A session file written by a newer gaze-explorer than this one."""


class DiskSpaceError(GazeExplorerError):
    """Not enough free disk space for a run's estimated size, or a write failed mid-run."""


class CancelledError(GazeExplorerError):
    """Long work stopped by the user; whatever finished before it was kept."""


class SweepError(GazeExplorerError):
    """A bad ``evaluate sweep --over`` value or prompts file, or a ``--resume`` file of another sweep."""


class SpanError(GazeExplorerError):
    """A malformed span (a named step range of a run) or one outside the run's steps."""

"""h5py session files: schema, one background writer thread, and a reader that hands out numpy arrays.

``SessionWriter`` writes (``RunRecorder`` / ``record`` store a generation stream in it), ``SessionReader`` reads;
``estimate_run_bytes`` and ``check_disk_space`` guard a run before it starts. The file layout is
documented in ``docs/session_schema.md``.
"""

from gaze_explorer.storage.reader import SessionReader
from gaze_explorer.storage.record import RunRecorder, record, record_events
from gaze_explorer.storage.run_info import RunInfo
from gaze_explorer.storage.schema import SCHEMA_VERSION, check_disk_space, estimate_run_bytes
from gaze_explorer.storage.writer import SessionWriter

__all__ = [
    "SCHEMA_VERSION",
    "RunInfo",
    "RunRecorder",
    "SessionReader",
    "SessionWriter",
    "check_disk_space",
    "estimate_run_bytes",
    "record",
    "record_events",
]

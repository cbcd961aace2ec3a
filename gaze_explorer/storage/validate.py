"""Checks that an open HDF5 file is a session this version can read, with clear messages if not.

Reading never changes the file; these checks only look. Each failure is a ``SessionFileError``
(``SchemaVersionError`` for a newer schema) that names the file and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from gaze_explorer.core.errors import SchemaVersionError, SessionFileError
from gaze_explorer.storage.schema import FORMAT_NAME, RUNS_GROUP, SCHEMA_VERSION

REQUIRED_RUN_ITEMS = ("status", "n_steps", "token_ids", "targets", "token_text", "token_text_end", "switches")
_INT_RUN_ATTRS = ("n_layers", "n_heads", "max_keys", "prompt_len")
_STR_RUN_ATTRS = ("name", "prompt", "prefill_mode", "options_json", "plan_json", "schedule_json")


def as_str(value, what: str, path: Path) -> str:
    """An attribute that must be text (h5py gives ``str``, or ``bytes`` for fixed-length strings)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    raise SessionFileError(f"{path}: {what} should be text, but is {type(value).__name__} {value!r}")


def as_int(value, what: str, path: Path) -> int:
    """An attribute that must be an integer (numpy or Python)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if (
            isinstance(value, np.ndarray)
            and value.shape in ((), (1,))
            and np.issubdtype(value.dtype, np.integer)
        ):
            return int(value.reshape(-1)[0])
        raise SessionFileError(
            f"{path}: {what} should be an integer, but is {type(value).__name__} {value!r}"
        )
    return int(value)


def as_json(value, what: str, path: Path):
    text = as_str(value, what, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionFileError(f"{path}: {what} is not valid JSON ({exc})") from exc


def validate_session(f: h5py.File, path: Path) -> int:
    """Check format name, schema version and the top-level groups; return the schema version."""
    attrs = f.attrs
    if "format" not in attrs:
        raise SessionFileError(
            f"{path} is an HDF5 file but not a gaze-explorer session (it has no 'format' attribute)"
        )
    fmt = as_str(attrs["format"], "the 'format' attribute", path)
    if fmt != FORMAT_NAME:
        raise SessionFileError(f"{path} is not a gaze-explorer session (format is {fmt!r})")
    if "schema_version" not in attrs:
        raise SessionFileError(f"{path} has no 'schema_version' attribute")
    version = as_int(attrs["schema_version"], "the 'schema_version' attribute", path)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} was written with session schema version {version}, but this gaze-explorer reads "
            f"versions up to {SCHEMA_VERSION}; update gaze-explorer to open it"
        )
    if version < 1:
        raise SessionFileError(f"{path} has an invalid schema version {version}")
    missing = [name for name in ("image", "grid", "regions", RUNS_GROUP) if name not in f]
    if missing:
        raise SessionFileError(
            f"{path} is missing part of a session: no {', '.join(repr(m) for m in missing)}"
        )
    grid = f["grid"]
    for name in ("token_boxes", "positions"):
        if name not in grid:
            raise SessionFileError(f"{path} is missing 'grid/{name}'")
    for key in ("image_width", "image_height", "rows", "cols"):
        if key not in grid.attrs:
            raise SessionFileError(f"{path} is missing the grid attribute {key!r}")
        as_int(grid.attrs[key], f"grid attribute {key!r}", path)
    image = f["image"]
    if not isinstance(image, h5py.Dataset) or image.ndim != 3 or image.dtype != np.uint8:
        raise SessionFileError(f"{path}: 'image' should be an [H, W, 3] uint8 array")
    return version


def validate_run(g: h5py.Group, path: Path) -> None:
    """Check a run group has its datasets and well-typed attributes."""
    where = f"{path}: run {g.name}"
    missing = [name for name in REQUIRED_RUN_ITEMS if name not in g]
    if missing:
        raise SessionFileError(f"{where} is missing {', '.join(repr(m) for m in missing)}")
    for key in _INT_RUN_ATTRS:
        if key not in g.attrs:
            raise SessionFileError(f"{where} has no attribute {key!r}")
        as_int(g.attrs[key], f"run attribute {key!r}", path)
    for key in _STR_RUN_ATTRS:
        if key not in g.attrs:
            raise SessionFileError(f"{where} has no attribute {key!r}")
        as_str(g.attrs[key], f"run attribute {key!r}", path)

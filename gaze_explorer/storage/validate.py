"""Checks that an open HDF5 file is a session this version can read, with clear messages if not.

Reading never changes the file; these checks only look. Each failure is a ``SessionFileError``
(``SchemaVersionError`` for a newer schema) that names the file and what is wrong.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import h5py
import numpy as np

from gaze_explorer.core.errors import SchemaVersionError, SessionFileError
from gaze_explorer.storage.schema import FORMAT_NAME, RUNS_GROUP, SCHEMA_VERSION

REQUIRED_RUN_ITEMS = ("status", "n_steps", "token_ids", "targets", "token_text", "token_text_end", "switches")
_INT_RUN_ATTRS = ("n_layers", "n_heads", "max_keys", "prompt_len")
_STR_RUN_ATTRS = ("name", "prompt", "prefill_mode", "options_json", "plan_json", "schedule_json")
# Arrays read whole (image, grid, prompt tokens, derived arrays) larger than this come from a
# damaged shape, not from a real session: refuse them before numpy tries to allocate them.
MAX_WHOLE_READ_BYTES = 2 << 30
_GCOL = b"GCOL"
_GCOL_OBJ_HEADER = 16  # object index (2), reference count (2), reserved (4), size (8)
_MASK64 = (1 << 64) - 1


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


def check_global_heaps(path: Path) -> None:
    """Refuse a file whose global heap collections (where HDF5 keeps variable-length strings) are
    damaged so that HDF5 would loop forever decoding them.

    HDF5 walks a collection's objects by their stored sizes; a zeroed free-space object (or a size
    that wraps the 64-bit offset back) makes its walk stand still, and the read of any string
    attribute then spins in C, where no Python timeout can stop it. The walk is re-done here, on
    the raw bytes, before h5py opens the file. Collections are found by their "GCOL" signature.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                at = mm.find(_GCOL)
                while at >= 0:
                    _check_collection(mm, at, size, path)
                    at = mm.find(_GCOL, at + 4)
    except OSError as exc:
        raise SessionFileError(f"cannot read {path}: {exc}") from exc


def _check_collection(mm: mmap.mmap, start: int, file_size: int, path: Path) -> None:
    """Walk one global heap collection the way HDF5 does; raise if the walk would not end."""
    if start + 16 > file_size or mm[start + 4] != 1:
        return  # not a version-1 collection header (HDF5 refuses other versions with an error)
    length = int.from_bytes(mm[start + 8 : start + 16], "little")
    if length > file_size - start:
        return  # HDF5 refuses to read past the end of the file, with an error
    end = start + length
    p = start + 16  # [GCOL, version, 3 reserved, collection size]
    while p < end:
        if p + _GCOL_OBJ_HEADER > end:
            return  # HDF5 takes a tail too short for a header as free space and stops
        index = int.from_bytes(mm[p : p + 2], "little")
        obj_size = int.from_bytes(mm[p + 8 : p + 16], "little")
        # object 0 is the free space; its size already includes its header and is not padded
        need = obj_size if index == 0 else (_GCOL_OBJ_HEADER + ((obj_size + 7) & ~7)) & _MASK64
        if need == 0 or need >= file_size:
            raise SessionFileError(
                f"{path} is damaged: the global heap at byte {start} (where HDF5 keeps text) has an "
                f"object of impossible size {obj_size} at byte {p}; it cannot be read"
            )
        p += need


def check_whole_read(ds: h5py.Dataset, what: str, path: Path) -> None:
    """Refuse to read a dataset whole if its stored shape is absurd (a damaged file)."""
    nbytes = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize)
    if nbytes > MAX_WHOLE_READ_BYTES:
        raise SessionFileError(
            f"{path} is damaged: {what} claims shape {ds.shape} ({nbytes} bytes), too large to be real"
        )


def attention_group(g: h5py.Group, run_id: str, path: Path) -> h5py.Group:
    """A run's ``attention`` group, with its ``decode`` rows ``[step, layer, head, key]`` and
    ``valid_keys``; a clear error if the run captured none, or if the file lost them."""
    captured = bool(g.attrs.get("capture_decode", False))  # absent in early files
    if "attention" not in g or "decode" not in g["attention"]:
        if captured or "attention" in g:
            # the writer made these datasets when the run began: something deleted them
            name = f"{g.name}/attention" + ("/decode" if "attention" in g else "")
            raise SessionFileError(
                f"{path} is damaged: run {run_id} captured decode attention, but its "
                f"dataset {name} is missing"
            )
        raise SessionFileError(f"run {run_id} was generated without attention capture")
    att = g["attention"]
    if "valid_keys" not in att:
        raise SessionFileError(
            f"{path} is damaged: the dataset {att.name}/valid_keys of run {run_id} is missing"
        )
    d = att["decode"]
    if not isinstance(d, h5py.Dataset) or d.ndim != 4:
        raise SessionFileError(
            f"{path} is damaged: {att.name}/decode should be a [step, layer, head, key] array"
        )
    return att


def check_rows_read(d: h5py.Dataset, n_steps: int, n_keys: int, path: Path) -> None:
    """Refuse a read of ``n_steps`` x all heads x ``n_keys`` if a damaged shape makes it absurd."""
    nbytes = float(n_steps) * d.shape[1] * d.shape[2] * n_keys * 4
    if nbytes > MAX_WHOLE_READ_BYTES:
        raise SessionFileError(f"{path} is damaged: {d.name} claims shape {d.shape}, too large to be real")

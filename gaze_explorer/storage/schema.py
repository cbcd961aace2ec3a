"""The session file's layout: names, version, status codes, size estimates and the disk-space check.

Everything that both the writer and the reader must agree on lives here, so the layout is written
down once (and documented for h5py / h5dump users in ``docs/session_schema.md``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import DiskSpaceError

FORMAT_NAME = "gaze-explorer-session"
SCHEMA_VERSION = 2
# What an older file may lack (docs/session_schema.md, "Version 1 files"). SessionReader.missing
# checks the file's data for each (an upgraded version-1 file still lacks most of them) and the app
# shows what it finds as a note when such a file is opened.
MISSING_DISCOVERY_V1 = (
    "discovery parameters, source, time stamp, ranking and criteria (a version-1 file keeps only the "
    "newest discovery's arrays)"
)
MISSING_DISCOVERY_PARAMS = "the parameters, source and time stamp of discovery {keys} (version 1 kept none)"
MISSING_HEAD_CHOICE = (
    "how the heads of {runs} were chosen (criterion, K, seed, pool: their steering plans have no 'choice')"
)
MISSING_FIRST_IMAGE_NAME = "the first image's name (the session file's name is shown instead)"
MISSING_RUN_NAMES = "user-given run names (runs show their derived label)"
MISSING_SELECTION = "the selection on screen when it was saved (the last run is shown)"
# Run status codes, stored in the run's one-element ``status`` dataset (int8) so that it can be
# overwritten while the file is in SWMR mode (attributes cannot be).
STATUS_RUNNING = 0
STATUS_CODES = {0: "running", 1: "finished", 2: "cancelled", 3: "failed"}
STATUS_BY_NAME = {name: code for code, name in STATUS_CODES.items()}
UNFINISHED = "unfinished"  # what a reader reports for a run whose writer is gone while "running"

SWITCH_SOURCES = ("schedule", "live")
NO_TARGET = -1  # a None target in the int datasets (targets, switches)
REASON_BYTES = 1024  # fixed size of the UTF-8 ``reason`` dataset, zero padded

RUNS_GROUP = "runs"
DERIVED_GROUP = "derived"
# What a discovery stores under /derived (docs/session_schema.md, "Discovery"): the gaze score
# [layer, head], the panel matrices [layer, head, N, N], and for the other head-selection criteria
# (core/criteria.py) the image mass [layer, head] and the image maps [layer, head, rows, cols].
DISCOVERY_ARRAYS = {
    "scores": "gaze_scores",
    "matrices": "panel_matrices",
    "image_mass": "image_mass",
    "image_maps": "image_maps",
}
# Version 2: every discovery in its own group /discoveries/disc_NNN (arrays as above, plus the
# ranking and attributes), newest last; a run's user-given name; the selection on screen.
DISCOVERIES_GROUP = "discoveries"
USER_NAME_ATTR = "user_name"  # a run's name as the user typed it ("" = show the derived label)
IMAGES_GROUP = "images"  # the session's further images: /images/img_001... (img_000 is the root's)
FIRST_IMAGE = "img_000"  # the root /image, /grid, /regions; a run without image_key was made on it
IMAGE_NAME_ATTR = "image_name"  # root attribute: the first image's name (files before it: none)
UPGRADED_ATTR = "upgraded_from"  # root (and disc_000) attribute: the schema version a file was upgraded from
UI_ATTR = "ui_json"  # root attribute: the selection on screen (shown/compare run ids, step, ...)
SPANS_ATTR = "spans_json"  # a run's named spans: [{"name", "start", "end"}] (core.spans), additive
RUN_DATASETS = (
    "status",
    "n_steps",
    "token_ids",
    "targets",
    "token_text",
    "token_text_end",
    "switches",
    "reason",
)
COMPRESSIONS = ("none", "gzip", "lzf", "lz4", "zstd")
DEFAULT_COMPRESSION = "lz4"  # chosen by measurement, see docs/session_schema.md
ATTENTION_DTYPE = np.float16


def run_key(index: int) -> str:
    """The group name of the ``index``-th run of a session (``run_000``, ``run_001``...)."""
    return f"run_{index:03d}"


def discovery_key(index: int) -> str:
    """The group name of the ``index``-th discovery of a session (``disc_000``...)."""
    return f"disc_{index:03d}"


def image_key(index: int) -> str:
    """The key of the ``index``-th image of a session (``img_000`` is the root image)."""
    return f"img_{index:03d}"


def image_digest(image) -> str:
    """A digest of an image's shape and pixels (the same picture opened twice is one image)."""
    import hashlib

    a = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    return hashlib.sha1(repr(a.shape).encode() + a.tobytes()).hexdigest()


def dumps(value) -> str:
    """JSON text for an attribute (nested parameters: options, steering plan, schedule, regions)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def compression_kwargs(name: str) -> dict:
    """``create_dataset`` keyword arguments for a compression name from :data:`COMPRESSIONS`."""
    if name == "none":
        return {}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if name in ("lz4", "zstd"):
        import hdf5plugin  # registers the Blosc filter with HDF5 (storage.handles imports it too)

        level = 5 if name == "lz4" else 3
        return dict(hdf5plugin.Blosc(cname=name, clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
    raise ValueError(f"compression must be one of {COMPRESSIONS}, got {name!r}")


def estimate_run_bytes(
    n_layers: int,
    n_heads: int,
    prompt_len: int,
    max_new_tokens: int,
    prefill_mode: str = "last",
    prefill_queries: int | None = None,
    capture_decode: bool = True,
    stored_keys: int | None = None,
) -> int:
    """Uncompressed bytes of a run's attention: decode rows padded to the run's maximum key count
    (or ``stored_keys``, an image-keys capture scope's width), plus the prefill (last row, or the
    full query x key matrix). float16 = 2 bytes a value."""
    bytes_per = np.dtype(ATTENTION_DTYPE).itemsize
    max_keys = prompt_len + max_new_tokens if stored_keys is None else int(stored_keys)
    decode = max_new_tokens * n_layers * n_heads * max_keys * bytes_per if capture_decode else 0
    if prefill_mode == "full" or prefill_queries:
        queries = prefill_queries if prefill_queries else prompt_len
        prefill = n_layers * n_heads * queries * prompt_len * bytes_per
    elif prefill_mode == "last":
        prefill = n_layers * n_heads * prompt_len * bytes_per
    else:
        prefill = 0
    tokens = max_new_tokens * 64  # ids, targets, text, offsets: small next to the attention
    return int(decode + prefill + tokens)


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``; binary units, as ``df -h`` prints them."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns


def existing_dir(path: str | os.PathLike) -> Path:
    """The nearest existing folder of ``path`` (the file itself may not exist yet)."""
    p = Path(path).absolute()
    if p.is_dir():
        return p
    p = p.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_disk_space(path: str | os.PathLike, needed_bytes: int) -> int:
    """Raise DiskSpaceError when the disk holding ``path`` has less than ``needed_bytes`` free.

    Returns the free bytes. The message states both numbers, so the user can free space or
    shorten the run (fewer new tokens, prefill ``last`` instead of ``full``).
    """
    folder = existing_dir(path)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise DiskSpaceError(
            f"not enough free disk space for this run in {folder}: it needs about "
            f"{human_bytes(needed_bytes)} ({needed_bytes} bytes) but only {human_bytes(free)} "
            f"({free} bytes) is free. Free some space, choose another session folder, generate "
            "fewer tokens, or capture the prefill as 'last' instead of 'full'."
        )
    return int(free)

"""Opening session files, and coordinating a writer with readers of the same file in this process.

HDF5 shares one open file between every handle of a process. When the writer must leave SWMR mode
(to add a run's groups and datasets it closes and reopens the file) a reader's handle in the same
process would keep the old SWMR-mode file alive and the "reopen" would silently get it back. So
readers register here, and the writer asks them to drop their handles (under a per-file lock)
before it closes, reopens or starts SWMR; readers reopen lazily on their next access.

Both sides open with ``locking=False``: HDF5 refuses to share a file opened with different locking
flags, and a reader in another process must never block the writer. Two writers on one file are
prevented in-process by :func:`claim_writer`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path

import h5py

from gaze_explorer.core.errors import SessionFileError

_registry_lock = threading.Lock()
_states: dict[str, _PathState] = {}


class _PathState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.readers: weakref.WeakSet = weakref.WeakSet()
        self.writer: object | None = None


def path_state(path: str | os.PathLike) -> _PathState:
    """The shared lock and reader set of one file (by its real path)."""
    key = os.path.realpath(os.fspath(path))
    with _registry_lock:
        state = _states.get(key)
        if state is None:
            state = _states[key] = _PathState()
        return state


def claim_writer(path: str | os.PathLike, writer: object) -> _PathState:
    """Register ``writer`` as the only writer of ``path`` in this process."""
    state = path_state(path)
    with state.lock:
        if state.writer is not None:
            raise SessionFileError(f"{path} is already being written by another session writer")
        state.writer = writer
    return state


def release_writer(path: str | os.PathLike, writer: object) -> None:
    state = path_state(path)
    with state.lock:
        if state.writer is writer:
            state.writer = None


def has_writer(path: str | os.PathLike) -> bool:
    """True while a writer of this process has ``path`` open."""
    return path_state(path).writer is not None


def drop_reader_handles(state: _PathState) -> None:
    """Make every same-process reader close its handle (call with ``state.lock`` held)."""
    for reader in list(state.readers):
        reader._drop_handle()


def open_for_writing(path: Path, create: bool) -> h5py.File:
    """Open (or create) a session file for writing, newest file format (SWMR needs it)."""
    try:
        return h5py.File(path, "w-" if create else "r+", libver="latest", locking=False)
    except FileExistsError as exc:
        raise SessionFileError(f"{path} already exists") from exc
    except OSError as exc:
        text = str(exc)
        if "already open for write" in text or "consistency flags" in text:
            raise SessionFileError(
                f"{path} was left open by a writer that stopped without closing it (a crash or a "
                "kill). It can still be read; to add runs, start a new session, or clear the flag "
                f"with `h5clear -s {path}`."
            ) from exc
        raise SessionFileError(f"cannot open {path} for writing: {text}") from exc


def open_for_reading(path: Path) -> h5py.File:
    """Open a session read-only, in SWMR mode when the file allows it (it never changes the file)."""
    if not path.exists():
        raise SessionFileError(f"no session file at {path}")
    if path.is_dir():
        raise SessionFileError(f"{path} is a folder, not a session file")
    if not h5py.is_hdf5(path):
        raise SessionFileError(f"{path} is not an HDF5 file, so it cannot be a gaze-explorer session")
    # Plain read-only first: it refuses a truncated file at once, where a SWMR reader would retry
    # its metadata reads for minutes. SWMR only for a file that a writer holds (or left) open. A
    # writer adding a run holds the file in normal mode for a moment: retry for a few seconds.
    deadline = time.monotonic() + 5.0
    while True:
        try:
            return h5py.File(path, "r", libver="latest", locking=False)
        except OSError as exc:
            detail = str(exc)
        if "truncated" in detail:
            raise SessionFileError(f"{path} is truncated (the file ends early); it cannot be read: {detail}")
        try:
            return h5py.File(path, "r", libver="latest", swmr=True, locking=False)
        except OSError as exc:
            if "not already open for SWMR" not in str(exc) or time.monotonic() > deadline:
                raise SessionFileError(f"{path} is damaged and cannot be opened: {detail}; {exc}") from exc
        time.sleep(0.02)

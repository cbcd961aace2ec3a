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

try:  # registers the Blosc filter (the default "lz4" compression) with HDF5 for readers and writers
    import hdf5plugin
except ImportError:  # pragma: no cover - a dependency; without it only lz4/zstd sessions are unreadable
    hdf5plugin = None

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
    _check_heaps_once(path)
    # Plain read-only first: it refuses a truncated file at once, where a SWMR reader would retry
    # its metadata reads for minutes. SWMR only for a file that a writer holds (or left) open. A
    # writer adding a run holds the file in normal mode for a moment: retry for a few seconds.
    deadline = time.monotonic() + 5.0
    truncated_deadline = time.monotonic() + 1.0
    while True:
        try:
            return h5py.File(path, "r", libver="latest", locking=False)
        except (OSError, RuntimeError) as exc:  # h5py raises both for damaged files
            detail = str(exc)
        if "truncated" in detail:
            # a writer in another process may be extending the file this very moment: retry
            # briefly, but only if the superblock says a writer has it open (no one else extends it)
            if not writer_flag_set(path):
                raise SessionFileError(
                    f"{path} is truncated (the file ends early); it cannot be read: {detail}"
                )
            if time.monotonic() > truncated_deadline:
                # a writer that died after a failed write (a full disk) leaves the file shorter
                # than its superblock says; a SWMR reader does not insist on the stored length
                try:
                    return h5py.File(path, "r", libver="latest", swmr=True, locking=False)
                except (OSError, RuntimeError) as exc:
                    raise SessionFileError(
                        f"{path} is truncated (the file ends early); it cannot be read: {detail}"
                    ) from exc
            time.sleep(0.05)
            continue
        if not writer_flag_set(path):
            # No writer has it open, so SWMR cannot help; and a SWMR reader retries every failed
            # metadata checksum for minutes before it gives up on a damaged file.
            raise SessionFileError(f"{path} is damaged and cannot be opened: {detail}")
        try:
            return h5py.File(path, "r", libver="latest", swmr=True, locking=False)
        except (OSError, RuntimeError) as exc:  # h5py raises both for damaged files
            if "not already open for SWMR" not in str(exc) or time.monotonic() > deadline:
                if "already open for write" in detail:
                    # a writer was killed while it held the file outside SWMR mode (adding a run)
                    return _open_flag_cleared_copy(path, detail)
                raise SessionFileError(f"{path} is damaged and cannot be opened: {detail}; {exc}") from exc
        time.sleep(0.02)


# realpath -> (size, mtime_ns) of the last version whose global heaps were checked
_heaps_checked: dict[str, tuple[int, int]] = {}


def _check_heaps_once(path: Path) -> None:
    """Run :func:`validate.check_global_heaps` once per version (size, mtime) of a file. A file
    that a writer of this process holds is ours and is not checked. A writer in another process
    may be rewriting a collection this very moment, so a failure is retried briefly while the
    superblock says the file is open for writing."""
    from gaze_explorer.storage.validate import check_global_heaps

    if has_writer(path):
        return
    key = os.path.realpath(path)
    deadline = time.monotonic() + 1.0
    while True:
        st = os.stat(path)
        version = (st.st_size, st.st_mtime_ns)
        if _heaps_checked.get(key) == version:
            return
        try:
            check_global_heaps(path)
        except SessionFileError:
            if not writer_flag_set(path) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        _heaps_checked[key] = version
        return


def writer_flag_set(path: Path) -> bool:
    """True if the superblock (version 2/3, its checksum intact) says a writer has the file open,
    or left it open. A damaged superblock says nothing: False."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return cleared_superblock(head) is not None and head[11] != 0


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (byte-wise), the checksum HDF5 puts on its metadata."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & mask
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & mask
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & mask
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & mask
        a = (a - c) & mask
        a ^= rot(c, 4)
        c = (c + b) & mask
        b = (b - a) & mask
        b ^= rot(a, 6)
        a = (a + c) & mask
        c = (c - b) & mask
        c ^= rot(b, 8)
        b = (b + a) & mask
        a = (a - c) & mask
        a ^= rot(c, 16)
        c = (c + b) & mask
        b = (b - a) & mask
        b ^= rot(a, 19)
        a = (a + c) & mask
        c = (c - b) & mask
        c ^= rot(b, 4)
        b = (b + a) & mask
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i : i + length] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & mask
    b = (b + int.from_bytes(tail[4:8], "little")) & mask
    c = (c + int.from_bytes(tail[8:12], "little")) & mask
    c ^= b
    c = (c - rot(b, 14)) & mask
    a ^= c
    a = (a - rot(c, 11)) & mask
    b ^= a
    b = (b - rot(a, 25)) & mask
    c ^= b
    c = (c - rot(b, 16)) & mask
    a ^= c
    a = (a - rot(c, 4)) & mask
    b ^= a
    b = (b - rot(a, 14)) & mask
    c ^= b
    c = (c - rot(b, 24)) & mask
    return c


def cleared_superblock(head: bytes) -> bytes | None:
    """The file's first bytes with the superblock's "open for write" flags cleared and its checksum
    recomputed (what ``h5clear -s`` does), or None if it is not a version 2/3 superblock."""
    if head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] not in (2, 3):
        return None
    size_of_offsets = head[9]
    end = 12 + 4 * size_of_offsets  # four addresses follow the flags byte
    if len(head) < end + 4 or int.from_bytes(head[end : end + 4], "little") != _lookup3(head[:end]):
        return None
    fixed = bytearray(head[: end + 4])
    fixed[11] = 0
    fixed[end : end + 4] = _lookup3(bytes(fixed[:end])).to_bytes(4, "little")
    return bytes(fixed)


def _open_flag_cleared_copy(path: Path, detail: str) -> h5py.File:
    """Open a private copy of a file whose writer died outside SWMR mode, with its consistency
    flags cleared. The original is never modified (``h5clear -s FILE`` repairs it in place)."""
    import shutil
    import tempfile

    with open(path, "rb") as fh:
        head = fh.read(256)
    fixed = cleared_superblock(head)
    if fixed is None:
        raise SessionFileError(f"{path} is damaged and cannot be opened: {detail}")
    fd, tmp = tempfile.mkstemp(prefix="gaze-explorer-recovered-", suffix=".h5")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        with open(tmp, "r+b") as fh:
            fh.write(fixed)
        f = h5py.File(tmp, "r", libver="latest", locking=False)
    except OSError as exc:
        os.unlink(tmp)
        raise SessionFileError(f"{path} is damaged and cannot be opened: {detail}; {exc}") from exc
    # the copy disappears once closed (POSIX keeps the open file alive)
    os.unlink(tmp)
    return f

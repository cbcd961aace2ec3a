"""A writer killed while it holds the file outside SWMR mode (adding a run) leaves HDF5's
"open for write" flag set. The reader must still open the session, without modifying the file."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from gaze_explorer.core.errors import SessionFileError
from gaze_explorer.storage import SessionReader, SessionWriter
from gaze_explorer.storage.handles import cleared_superblock

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import storage_synthetic as synthetic


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_session_killed_in_normal_write_mode_still_opens_and_is_unchanged(tmp_path):
    path = tmp_path / "s.h5"
    grid = synthetic.make_grid()
    w = SessionWriter(
        path,
        meta=synthetic.META,
        image=synthetic.make_image(),
        grid=grid,
        regions=synthetic.make_regions(grid),
    )
    w.close()
    code = (
        "import h5py, sys, time\n"
        f"f = h5py.File({str(path)!r}, 'a', libver='latest', locking=False)\n"
        "f.flush(); print('open', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "open"
    child.send_signal(signal.SIGKILL)
    child.wait()
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r", libver="latest", locking=False)
    before = _sha(path)
    t0 = time.monotonic()
    with SessionReader(path) as r:
        np.testing.assert_array_equal(r.image, synthetic.make_image())
        assert r.runs() == []
    assert time.monotonic() - t0 < 10
    assert _sha(path) == before


def test_cleared_superblock_refuses_a_bad_checksum(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["x"] = np.arange(3)
    head = bytearray(path.read_bytes()[:256])
    assert cleared_superblock(bytes(head)) is not None
    head[20] ^= 0xFF  # corrupt an address covered by the checksum
    assert cleared_superblock(bytes(head)) is None
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(SessionFileError):
        SessionReader(path)

"""Bad session files give a clear SessionFileError / SchemaVersionError and are never modified."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
import storage_synthetic as synthetic

from gaze_explorer.core.errors import SchemaVersionError, SessionFileError
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, SessionWriter, record


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def good_file(new_writer):
    w = new_writer("good.h5")
    spec = RunSpec(
        name="r",
        prompt="p",
        n_layers=synthetic.N_LAYERS,
        n_heads=synthetic.N_HEADS,
        max_new_tokens=4,
    )
    record(synthetic.events(4), w, spec)
    w.close()
    return w.path


def _assert_refused(path, error=SessionFileError, match=None):
    before = _digest(path) if path.is_file() else None
    with pytest.raises(error, match=match):
        SessionReader(path)
    if before is not None:
        assert _digest(path) == before, "opening a bad file changed it"


def test_truncated_file(good_file, tmp_path):
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(good_file.read_bytes()[: good_file.stat().st_size // 2])
    _assert_refused(bad, match="truncated|damaged")


def test_not_hdf5(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("these are my notes, not a session\n")
    _assert_refused(bad, match="not an HDF5 file")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    _assert_refused(empty, match="not an HDF5 file")
    _assert_refused(tmp_path / "missing.h5", match="no session file")
    _assert_refused(tmp_path, match="is a folder")


def test_newer_schema_version(good_file):
    with h5py.File(good_file, "r+") as f:
        f.attrs["schema_version"] = 99
    _assert_refused(good_file, SchemaVersionError, match="version 99.*up to 2")
    grid = synthetic.make_grid()
    with pytest.raises(SchemaVersionError):  # nor will a writer append to it
        SessionWriter(
            good_file, meta={}, image=synthetic.make_image(), grid=grid, regions=synthetic.make_regions(grid)
        )


def test_hdf5_but_not_a_session(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    _assert_refused(other, match="not a gaze-explorer session")


@pytest.mark.parametrize("missing", ["image", "grid", "runs", "grid/positions"])
def test_missing_groups(good_file, missing):
    with h5py.File(good_file, "r+") as f:
        del f[missing]
    _assert_refused(good_file, match=f"missing.*{missing.split('/')[-1]}")


def test_missing_run_dataset_is_refused_when_the_run_is_read(good_file):
    with h5py.File(good_file, "r+") as f:
        del f["runs/run_000/token_text"]
    before = _digest(good_file)
    with SessionReader(good_file) as r, pytest.raises(SessionFileError, match="missing 'token_text'"):
        r.run_info(0)
    assert _digest(good_file) == before


@pytest.mark.parametrize(
    ("where", "key", "value", "match"),
    [
        ("/", "schema_version", "one", "schema_version.*integer"),
        ("/", "format", 7, "format.*text"),
        ("grid", "rows", "two", "rows.*integer"),
        ("runs/run_000", "n_layers", 2.5, "n_layers.*integer"),
        ("runs/run_000", "options_json", "{not json", "options_json.*JSON"),
    ],
)
def test_attributes_of_the_wrong_type(good_file, where, key, value, match):
    with h5py.File(good_file, "r+") as f:
        f[where].attrs[key] = value
    before = _digest(good_file)
    with pytest.raises(SessionFileError, match=match), SessionReader(good_file) as r:
        r.runs()
    assert _digest(good_file) == before


def test_bad_run_and_step_arguments(good_file):
    with SessionReader(good_file) as r:
        with pytest.raises(SessionFileError, match="no run 'run_009'"):
            r.tokens("run_009")
        with pytest.raises(SessionFileError, match="no run 5"):
            r.run_info(5)
        with pytest.raises(SessionFileError, match="no step 4"):
            r.step_rows(0, 4)
        with pytest.raises(SessionFileError, match="no head L7H0"):
            r.head_rows(0, 7, 0)

"""Hypothesis fuzz of the session reader (random corruptions of a real file) and of the schedule,
box and head-list parsers: nothing may escape but our own clear errors (and, for the CLI's argparse
type functions, ``ArgumentTypeError``, which argparse prints as a usage message).

Every damaged file is read in a child process (:class:`robust_helpers.ReadWorker`) under a time
limit: HDF5 can spin in C on a damaged file, and such a hang must fail the test, not stall CI. The
examples are derandomized (a fixed seed per test), so a CI failure reproduces locally.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robust_helpers import ReadWorker, read_everything, write_session

from gaze_explorer.cli import args as cli_args
from gaze_explorer.core.errors import HeadSpecError, RegionError, ScheduleError, SessionFileError
from gaze_explorer.core.heads import parse_head_list, parse_head_spec
from gaze_explorer.core.regions import ImageTokenGrid, box_region, validate_box
from gaze_explorer.core.steering import parse_schedule
from gaze_explorer.storage import SessionReader

DATA = Path(__file__).resolve().parent / "data"
# a read of this small file takes milliseconds; the limit is for a loaded CI machine
READ_LIMIT_S = 20.0
FILE_FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BYTE_FUZZ = settings(FILE_FUZZ, max_examples=150)  # each read takes milliseconds
PARSER_FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def reader_worker():
    worker = ReadWorker()
    yield worker
    worker.close()


def _read_in_child(worker: ReadWorker, path: Path) -> str:
    """Read ``path`` in the worker; fail on anything but success or our own clear error."""
    outcome, detail = worker.read(path, READ_LIMIT_S)
    if outcome == "timeout":
        keep = path.with_suffix(".hang.h5")
        keep.write_bytes(path.read_bytes())
        pytest.fail(f"{detail}: the read hangs on this damaged file (kept at {keep})")
    assert outcome in ("ok", "ours"), f"{outcome}: {detail}"
    if outcome == "ours":
        assert detail.split(": ", 1)[1].strip(), "our error has an empty message"
    return outcome


# ---- the hang the first version of this fuzz found ---------------------------------------------
def test_zeroed_global_heap_object_is_refused_at_once(tmp_path):
    """Regression: the corrupted bytes that hung the reader forever. A zeroed object in the
    global heap (where HDF5 keeps the string attributes) made HDF5's collection walk stand still,
    spinning in C while reading the 'format' attribute."""
    path = tmp_path / "heap_loop.h5"
    path.write_bytes(gzip.decompress((DATA / "heap_loop_session.h5.gz").read_bytes()))
    start = time.monotonic()
    with pytest.raises(SessionFileError, match=r"global heap .* impossible size 0"):
        SessionReader(path)
    assert time.monotonic() - start < 2.0


def test_a_zeroed_heap_object_in_a_fresh_file_is_refused(tmp_path):
    """The same damage made on purpose to a fresh file: zero the header of a string attribute's
    object in the first global heap collection."""
    path = write_session(tmp_path / "s.h5")
    blob = bytearray(path.read_bytes())
    gcol = blob.find(b"GCOL")
    assert gcol >= 0, "the session has no global heap; the fixture changed"
    first = gcol + 16  # collection header: "GCOL", version, reserved, size
    first_size = int.from_bytes(blob[first + 8 : first + 16], "little")
    victim = first + 16 + (first_size + 7) // 8 * 8  # the second object's header
    blob[victim : victim + 16] = bytes(16)
    path.write_bytes(bytes(blob))
    start = time.monotonic()
    with pytest.raises(SessionFileError, match="global heap"):
        read_everything(path)
    assert time.monotonic() - start < 2.0


def test_a_damaged_file_is_refused_without_the_swmr_retries(tmp_path):
    """A damaged superblock once sent the reader into HDF5's SWMR retries (minutes): a file that
    no writer holds open is refused after the first, plain attempt."""
    path = write_session(tmp_path / "s.h5")
    blob = bytearray(path.read_bytes())
    blob[40:48] = b"\xff" * 8  # inside the superblock: its checksum fails
    path.write_bytes(bytes(blob))
    start = time.monotonic()
    with pytest.raises(SessionFileError, match="damaged"):
        SessionReader(path)
    assert time.monotonic() - start < 2.0  # the SWMR retries took minutes


def test_a_truncated_file_is_refused_without_waiting_for_a_writer(tmp_path):
    """The one-second wait for a writer that extends a truncated file happens only when the
    superblock says a writer has it open."""
    path = write_session(tmp_path / "s.h5")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    start = time.monotonic()
    with pytest.raises(SessionFileError, match="truncated"):
        SessionReader(path)
    assert time.monotonic() - start < 0.9  # the wait for a writer is 1 s


def test_an_absurd_stored_shape_is_refused_before_allocating(tmp_path):
    """A damaged dataspace that claims terabytes is refused, not handed to numpy to allocate."""
    path = write_session(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        del f["grid/positions"]
        f.create_dataset("grid/positions", shape=(2**40,), dtype=np.int64, chunks=(1024,))
    with pytest.raises(SessionFileError, match="too large to be real"):
        SessionReader(path)


def test_a_deleted_attention_dataset_is_named_as_missing(tmp_path):
    """A run that captured attention but lost its dataset is a damaged file, not a run 'generated
    without attention capture'."""
    path = write_session(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        del f["runs/run_000/attention/decode"]
    with SessionReader(path) as r, pytest.raises(SessionFileError) as err:
        r.step_rows(0, 0)
    text = str(err.value)
    assert "damaged" in text and "/runs/run_000/attention/decode" in text and "missing" in text
    assert "without attention capture" not in text


def test_a_deleted_attention_group_is_named_as_missing(tmp_path):
    path = write_session(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        del f["runs/run_000/attention"]
    with SessionReader(path) as r, pytest.raises(SessionFileError, match="attention is missing"):
        r.trajectory(0)


# ---- random damage ------------------------------------------------------------------------------
def test_the_fuzz_base_file_reads_cleanly(tmp_path, reader_worker):
    """Sanity: the undamaged file passes, so a refused fuzz case is really the damage's doing."""
    path = write_session(tmp_path / "s.h5")
    assert _read_in_child(reader_worker, path) == "ok"


@BYTE_FUZZ
@given(data=st.data())
def test_reader_survives_random_byte_corruption(tmp_path_factory, session_bytes, reader_worker, data):
    blob = bytearray(session_bytes)
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        # half the edits land in the first 4 KiB: the superblock, root header and first heap
        top = 4096 if data.draw(st.booleans(), label="near_start") else len(blob)
        at = data.draw(st.integers(0, top - 1), label="offset")
        chunk = data.draw(
            st.one_of(st.binary(min_size=1, max_size=64), st.integers(1, 64).map(bytes)), label="bytes"
        )
        blob[at : at + len(chunk)] = chunk
    if data.draw(st.integers(0, 4), label="truncate") == 0:
        blob = blob[: data.draw(st.integers(0, len(blob)), label="keep")]
    path = tmp_path_factory.mktemp("corrupt") / "s.h5"
    path.write_bytes(bytes(blob))
    _read_in_child(reader_worker, path)
    assert path.read_bytes() == bytes(blob), "reading a corrupted file modified it"


ATTR_VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just("{not json"),
    st.lists(st.integers(-5, 5), min_size=0, max_size=4).map(lambda v: np.asarray(v, dtype=np.int64)),
)


@FILE_FUZZ
@given(data=st.data())
def test_reader_survives_random_attribute_and_dataset_damage(
    tmp_path_factory, session_bytes, reader_worker, data
):
    path = tmp_path_factory.mktemp("attrs") / "s.h5"
    path.write_bytes(session_bytes)
    with h5py.File(path, "r+") as f:
        names = ["/"]
        f.visit(names.append)
        for _ in range(data.draw(st.integers(1, 4), label="edits")):
            name = data.draw(st.sampled_from(names), label="object")
            if name not in f and name != "/":
                continue
            obj = f[name]
            action = data.draw(st.sampled_from(["set_attr", "del_attr", "delete", "shrink"]), label="action")
            keys = list(obj.attrs.keys())
            if action == "set_attr" and keys:
                obj.attrs[data.draw(st.sampled_from(keys), label="key")] = data.draw(ATTR_VALUES, label="val")
            elif action == "del_attr" and keys:
                del obj.attrs[data.draw(st.sampled_from(keys), label="key")]
            elif action == "delete" and name != "/":
                del f[name]
            elif (
                action == "shrink"
                and isinstance(obj, h5py.Dataset)
                and obj.maxshape
                and obj.maxshape[0] is None
            ):
                obj.resize(data.draw(st.integers(0, obj.shape[0]), label="len"), axis=0)
    _read_in_child(reader_worker, path)


# ---- parsers ------------------------------------------------------------------------------------
@PARSER_FUZZ
@given(text=st.text(max_size=40), n_regions=st.integers(1, 12), every=st.integers(1, 64))
def test_schedule_parser(text, n_regions, every):
    try:
        sched = parse_schedule(text, n_regions, every)
    except ScheduleError as exc:
        assert str(exc)
        return
    assert all(0 <= t < n_regions for t in sched.targets)


@PARSER_FUZZ
@given(text=st.text(alphabet="0123456789,;- x+e.abc", max_size=30))
def test_schedule_parser_on_number_like_text(text):
    try:
        sched = parse_schedule(text, 6, 8)
    except ScheduleError:
        return
    assert all(0 <= t < 6 for t in sched.targets)


COORD = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-(10**6), 10**6))
GRID = ImageTokenGrid.uniform(192, 64, rows=2, cols=6, first_position=5)


@PARSER_FUZZ
@given(box=st.lists(COORD, min_size=0, max_size=6))
def test_box_validation_and_box_regions(box):
    try:
        x0, y0, x1, y1 = validate_box(box, 192, 64)
    except RegionError as exc:
        assert str(exc)
        return
    assert 0 <= x0 < x1 <= 192 and 0 <= y0 < y1 <= 64
    try:
        region = box_region(GRID, box)
    except RegionError:
        return
    assert len(region.token_indices) >= 1


@PARSER_FUZZ
@given(text=st.text(max_size=60))
def test_cli_box_and_schedule_types(text):
    for fn in (cli_args.box, cli_args.schedule):
        try:
            value = fn(text)
        except argparse.ArgumentTypeError as exc:
            assert str(exc)
            continue
        if fn is cli_args.box:
            assert all(math.isfinite(v) for v in value) and value[2] > value[0] and value[3] > value[1]
        else:
            assert all(p >= 1 for p in value)


HEAD_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet='[]{}":,0123456789 layerhd-\n', max_size=80),
    st.lists(
        st.fixed_dictionaries({"layer": st.integers(-3, 9), "head": st.integers(-3, 9)}), max_size=5
    ).map(json.dumps),
)


@PARSER_FUZZ
@given(text=HEAD_TEXT, fmt=st.sampled_from(["json", "csv", "txt", ""]))
def test_head_list_parser(text, fmt):
    try:
        heads, _ = parse_head_list(text, fmt, "fuzz")
        heads.validate(6, 8)
    except HeadSpecError as exc:
        assert str(exc)
        return
    assert all(0 <= layer < 6 and 0 <= head < 8 for layer, head in heads.heads)


@PARSER_FUZZ
@given(text=st.text(max_size=30))
def test_head_spec_parser(text):
    try:
        spec = parse_head_spec(text)
    except HeadSpecError:
        return
    assert spec.kind in ("all", "top", "random", "file")
    assert spec.k is None or spec.k >= 1

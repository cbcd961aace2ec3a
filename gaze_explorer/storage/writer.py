"""The session writer: one background thread owns the h5py file; producers hand it plain arrays.

Generation calls ``append_step`` and goes on; the step waits in a bounded queue and is written by
the thread named ``gaze-explorer-session-writer``. A full queue blocks the producer (back-pressure)
instead of growing memory. Steps are written in small batches (those that arrive within
``COMMIT_INTERVAL_S`` of each other, see :meth:`SessionWriter._loop`), and every batch is flushed
twice: once after its rows, tokens and switches, and once after the run's ``n_steps`` counter, so a
killed process leaves a file whose complete steps are exactly those counted.

SWMR: a run's datasets are created with the file in normal mode, then SWMR writing starts at the
first step, so readers (in this or another process) can follow the run. Adding a later run, the
prefill or a derived array needs normal mode again, which in HDF5 means closing and reopening the
file; :mod:`gaze_explorer.storage.handles` keeps same-process readers out of the way meanwhile.

The thread's file operations are in :class:`~gaze_explorer.storage.run_layout.FileOps`; this module
is the threading, queueing and error handling around them.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaze_explorer.core.capture_scope import CaptureScope, image_key_end
from gaze_explorer.core.errors import DiskSpaceError, GazeExplorerError, SessionFileError
from gaze_explorer.core.regions import ImageTokenGrid, Region
from gaze_explorer.storage import handles
from gaze_explorer.storage.run_layout import FileOps, RunSpec
from gaze_explorer.storage.schema import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DISCOVERY_ARRAYS,
    FIRST_IMAGE,
    RUNS_GROUP,
    SPANS_ATTR,
    STATUS_BY_NAME,
    UI_ATTR,
    USER_NAME_ATTR,
    check_disk_space,
    dumps,
    estimate_run_bytes,
    human_bytes,
    image_digest,
    image_key,
    run_key,
)
from gaze_explorer.storage.upgrade import ranking_array

THREAD_NAME = "gaze-explorer-session-writer"
# Steps that arrive within this long of the last commit are written together: one resize and one
# write per dataset and one pair of flushes for all of them, instead of per step (docs/benchmarks.md,
# capture: 10 ms gave 1.33x, 30 ms 1.20x on the demo). A queued step is on disk and counted at most
# this long after the writer thread took it (a step after a quiet spell goes at once); the app's
# views hear of new steps at ~30 Hz anyway.
COMMIT_INTERVAL_S = 0.03
MAX_STAGED_STEPS = 64
ROOM_RECHECK_S = 0.25  # how long a free-space answer is reused (see SessionWriter._check_room)
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass
class _ProducerRun:
    """What the producer side checks before queueing a step (shapes and step order)."""

    spec: RunSpec
    next_step: int = 0
    ended: bool = False


def _to_json_value(value):
    """Plain JSON for options / plan / schedule / target arguments (objects with ``to_dict``)."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "target"):  # FixedTarget
        return {"fixed": value.target}
    return repr(value)


class SessionWriter:
    """Creates a session file (or appends runs to one) from a single background thread.

    ``meta`` is the model description (``LoadedModel.describe()``): ``model_id``, ``revision``,
    ``family``, ``dtype``, ``device`` and anything else (kept as JSON). ``image`` is ``[H, W, 3]``
    uint8; ``image_name`` its name (a file name, a strip's name), stored when the file is created (an
    existing file keeps its own). Errors of the thread (a full disk) come back as ``DiskSpaceError`` / ``SessionFileError``
    from the producer's next call.

    Test seam: a subclass may override ``_write_step`` (called on the writer thread with the
    ``FileOps`` and the step's values, which it stages for the next commit) to inject a write
    failure, and ``_step_committed(run_id, step)`` hears of each step once it is flushed and counted.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        meta: dict,
        image: np.ndarray,
        grid: ImageTokenGrid,
        regions: Sequence[Region],
        queue_size: int = 16,
        compression: str = DEFAULT_COMPRESSION,
        image_name: str = "",
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._state = handles.claim_writer(self.path, self)
        try:
            self._ops = FileOps.open(
                self.path, meta, image, grid, regions, compression, self._state, image_name=image_name
            )
        except BaseException:
            handles.release_writer(self.path, self)
            raise
        self._grid_positions = np.asarray(grid.positions)  # for the image-keys capture scope
        self._images = dict(self._ops.images)  # digest -> key of the file's images
        self._image_positions = {FIRST_IMAGE: self._grid_positions}
        self._current_image = self._images.get(image_digest(image), FIRST_IMAGE)
        self._runs: dict[str, _ProducerRun] = {}
        self._next_index = self._ops.n_existing_runs
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: GazeExplorerError | None = None
        self._needed_bytes = 0
        self._closed = False
        self.last_run_id: str | None = None  # set by record()
        self._room: tuple[int, str, float, int] = (0, "", -1e9, 0)  # room, where, when asked, staged since
        self.commits = 0  # batches of steps written (each: one write per dataset, two flushes)
        self.committed_steps = 0
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
        self._thread.start()

    # ---- producer side -------------------------------------------------------------------
    def begin_run(
        self,
        name: str,
        *,
        prompt: str,
        options=None,
        plan=None,
        schedule=None,
        target=None,
        n_layers: int,
        n_heads: int,
        max_keys: int,
        prompt_len: int,
        prefill_mode: str = "last",
        capture_decode: bool = True,
        regions: Sequence[Region] | None = None,
        capture_scope: CaptureScope | None = None,
    ) -> str:
        """Check the free disk space against the run's estimated size, then queue its creation.

        ``max_keys`` is ``prompt_len + max_new_tokens``: decode rows are padded to it, or cut to
        the image keys / NaN outside the chosen heads under ``capture_scope`` (core.capture_scope).
        """
        scope = capture_scope or CaptureScope()
        scope.head_mask(int(n_layers), int(n_heads))  # a head out of range fails here, not on the thread
        positions = self._image_positions.get(self._current_image, self._grid_positions)
        stored_keys = scope.stored_keys(max_keys, image_key_end(positions))
        self._raise_if_failed()
        if max_keys <= prompt_len:
            raise ValueError(f"max_keys ({max_keys}) must exceed prompt_len ({prompt_len})")
        needed = estimate_run_bytes(
            n_layers,
            n_heads,
            prompt_len,
            max_keys - prompt_len,
            prefill_mode,
            None,
            capture_decode,
            stored_keys=stored_keys,
        )
        check_disk_space(self.path, needed)
        with self._lock:
            run_id = run_key(self._next_index)
            self._next_index += 1
            spec = RunSpec(
                run_id=run_id,
                name=str(name),
                prompt=str(prompt),
                options=_to_json_value(options),
                plan=_to_json_value(plan),
                schedule=_to_json_value(schedule),
                target=_to_json_value(target),
                n_layers=int(n_layers),
                n_heads=int(n_heads),
                max_keys=int(max_keys),
                prompt_len=int(prompt_len),
                prefill_mode=str(prefill_mode),
                capture_decode=bool(capture_decode),
                regions=None if regions is None else [r.to_dict() for r in regions],
                capture_scope=scope.to_dict(),
                stored_keys=stored_keys,
                image_key=self._current_image,
            )
            self._runs[run_id] = _ProducerRun(spec)
            self._needed_bytes = needed
        self._submit(("begin", spec))
        return run_id

    def write_prefill(self, run_id: str, rows, token_ids, token_strings, value_norms=None) -> None:
        """Store the prompt's token ids and strings, its captured rows ``[layer, head, query, key]``
        and the value-vector norms ``||v||`` of its keys ``[layer, head, key]`` (query heads, as
        ``PrefillEvent.value_norms``; stored once per group of heads sharing a KV head)."""
        run = self._run(run_id)
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        strings = [str(s) for s in token_strings]
        if value_norms is not None:
            value_norms = kv_value_norms(value_norms, run.spec.n_layers, run.spec.n_heads)
        if rows is not None:
            rows = np.asarray(rows)
            spec = run.spec
            if rows.ndim != 4 or rows.shape[:2] != (spec.n_layers, spec.n_heads):
                raise ValueError(
                    f"prefill rows must be [layer, head, query, key] with {spec.n_layers} layers and "
                    f"{spec.n_heads} heads, got {rows.shape}"
                )
        self._submit(("prefill", run_id, rows, ids, strings, value_norms))

    def append_step(self, run_id: str, event) -> None:
        """Queue one decode step (a ``TokenEvent``: step, token_id, text, target, rows, switch)."""
        run = self._run(run_id)
        step = int(event.step)
        if step != run.next_step:
            raise ValueError(f"{run_id}: expected step {run.next_step}, got {step}")
        rows = getattr(event, "rows", None)
        if rows is not None:
            rows = np.asarray(rows)  # [layer, head, key]
            spec = run.spec
            if rows.ndim != 3 or rows.shape[:2] != (spec.n_layers, spec.n_heads):
                raise ValueError(f"step rows must be [layer, head, key], got {rows.shape}")
            if rows.shape[2] > spec.max_keys:
                raise ValueError(f"step {step} has {rows.shape[2]} keys, more than max_keys {spec.max_keys}")
        switch = getattr(event, "switch", None)
        item = (
            "step",
            run_id,
            step,
            int(event.token_id),
            str(event.text),
            getattr(event, "target", None),
            rows,
            switch,
        )
        self._submit(item)
        run.next_step += 1

    def end_run(self, run_id: str, status: str, switches=(), reason: str = "") -> None:
        """Mark the run finished / cancelled / failed and store the switches that happened."""
        if status not in STATUS_BY_NAME or status == "running":
            raise ValueError(f"status must be finished, cancelled or failed, got {status!r}")
        run = self._run(run_id)
        run.ended = True
        self._submit(("end", run_id, status, list(switches), str(reason)))

    def write_derived(self, name: str, array, attrs: dict | None = None, run: str | None = None) -> None:
        """Store a derived array (gaze scores ``[layer, head]``, panel matrices, a trajectory) under
        ``/derived/<name>``, or ``/runs/<run>/derived/<name>``; an existing one is replaced."""
        self._raise_if_failed()
        if not name or "/" in name:
            raise ValueError(f"derived array name must be a plain name, got {name!r}")
        if run is not None:
            self._run(run, allow_ended=True)
        self._submit(("derived", str(name), np.asarray(array), dict(attrs or {}), run))

    def write_discovery(
        self,
        result,
        *,
        source: str = "",
        params: dict | None = None,
        localization: dict | None = None,
    ) -> None:
        """Store a discovery result (``inference.discovery.DiscoveryResult``, duck-typed: storage
        never imports the inference layer) as a new group ``/discoveries/disc_NNN``: every array of
        :data:`~gaze_explorer.storage.schema.DISCOVERY_ARRAYS` that the result holds (float32), the
        ranking (``[n, 2]`` layer, head, best gaze score first), and the attributes ``n_strips``,
        ``n_panels``, ``cancelled`` (a partial discovery), ``created``, ``source`` (demo, folder,
        current image...), ``params_json`` (strips, prompt, panels, dtype, criterion...) and
        ``criteria_json`` (core.criteria.criteria_report, when the result holds the image arrays;
        ``localization``: the Localization Heads variants it was computed with, e.g.
        ``{"entropy_variant": "code"}``, also kept in the params as ``localization`` when given).
        A session may hold several; the newest is the one readers serve by default."""
        self._raise_if_failed()
        arrays = {}
        for field_name, name in DISCOVERY_ARRAYS.items():
            value = getattr(result, field_name, None)
            if value is not None:
                arrays[name] = np.asarray(value, dtype=np.float32)
        if "gaze_scores" not in arrays:
            raise ValueError("a discovery result needs its gaze scores")
        arrays["ranking"] = ranking_array(arrays["gaze_scores"])
        attrs = {
            "n_strips": int(result.n_strips),
            "n_panels": int(result.n_panels),
            "cancelled": int(bool(getattr(result, "cancelled", False))),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": str(source),
            "params_json": dumps(
                {**(params or {}), **({"localization": dict(localization)} if localization else {})}
            ),
        }
        if "image_mass" in arrays and "image_maps" in arrays:
            from gaze_explorer.core.criteria import criteria_report

            try:
                report = criteria_report(
                    arrays["gaze_scores"], arrays["image_mass"], arrays["image_maps"], **(localization or {})
                )
                attrs["criteria_json"] = json.dumps(report, default=float)
            except (ValueError, GazeExplorerError):  # arrays too small for a criterion: recomputable later
                pass
        self._submit(("discovery", arrays, attrs))

    def use_image(self, image, grid: ImageTokenGrid, regions: Sequence[Region], name: str = "") -> str:
        """Make ``image`` the one the next runs are made on: one the session already holds (same
        pixels), or a new ``/images/img_NNN``. Returns its key."""
        self._raise_if_failed()
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be [H, W, 3] uint8, got {image.shape} {image.dtype}")
        digest = image_digest(image)
        key = self._images.get(digest)
        if key is None:
            key = image_key(len(self._images))
            self._images[digest] = key
            self._submit(("image", key, str(name), image, grid, list(regions)))
        self._image_positions[key] = np.asarray(grid.positions)
        self._current_image = key
        return key

    @property
    def current_image(self) -> str:
        """The key of the image the next run is made on."""
        return self._current_image

    def rename_run(self, run_id: str, name: str) -> None:
        """Save the user's name for a run (``""`` = show the derived label again)."""
        self._raise_if_failed()
        if not run_id.startswith("run_") or "/" in run_id:
            raise ValueError(f"not a run id: {run_id!r}")
        self._submit(("attrs", f"{RUNS_GROUP}/{run_id}", {USER_NAME_ATTR: str(name)}))

    def write_spans(self, run_id: str, spans) -> None:
        """Save a run's named spans (``core.spans.Span``s; replaces the ones saved before)."""
        from gaze_explorer.core.spans import dumps_spans

        self._raise_if_failed()
        if not run_id.startswith("run_") or "/" in run_id:
            raise ValueError(f"not a run id: {run_id!r}")
        self._submit(("attrs", f"{RUNS_GROUP}/{run_id}", {SPANS_ATTR: dumps_spans(spans)}))

    def write_ui(self, ui: dict) -> None:
        """Save the selection on screen (shown / compared run ids, step...) in the root attributes."""
        self._raise_if_failed()
        self._submit(("attrs", "/", {UI_ATTR: dumps(ui)}))

    def wait(self) -> None:
        """Block until every queued item has been written (or the thread failed)."""
        while self._thread.is_alive() and self._queue.unfinished_tasks:
            self._raise_if_failed()
            threading.Event().wait(0.01)
        self._raise_if_failed()

    def close(self) -> None:
        """Finish the queue, mark runs never ended as cancelled, close the file, stop the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread.is_alive():
                self._submit(("close",), checked=False)
            self._thread.join()
        finally:
            handles.release_writer(self.path, self)
        self._raise_if_failed()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def failed(self) -> GazeExplorerError | None:
        return self._error

    def _run(self, run_id: str, allow_ended: bool = False) -> _ProducerRun:
        self._raise_if_failed()
        if self._closed:
            raise SessionFileError(f"the writer of {self.path} is closed")
        run = self._runs.get(run_id)
        if run is None:
            raise ValueError(f"no run {run_id!r} was begun by this writer")
        if run.ended and not allow_ended:
            raise ValueError(f"run {run_id} has already ended")
        return run

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _submit(self, item: tuple, checked: bool = True) -> None:
        """Put an item on the bounded queue; block while it is full (back-pressure)."""
        while True:
            if checked:
                self._raise_if_failed()
            if not self._thread.is_alive():
                self._raise_if_failed()
                if checked:
                    raise SessionFileError(f"the writer of {self.path} has stopped")
                return
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    # ---- writer thread -------------------------------------------------------------------
    def _loop(self) -> None:
        ops = self._ops
        last_commit = time.monotonic()
        try:
            while True:
                if ops.n_pending:
                    # staged steps wait at most COMMIT_INTERVAL_S for company, then are written
                    left = last_commit + COMMIT_INTERVAL_S - time.monotonic()
                    try:
                        item = self._queue.get(timeout=max(0.0, left))
                    except queue.Empty:
                        self._commit(ops)
                        last_commit = time.monotonic()
                        continue
                else:
                    item = self._queue.get()
                staged = False
                try:
                    kind = item[0]
                    if kind != "step":
                        self._commit(ops)  # steps first, in the order they were queued
                    if kind == "close":
                        ops.close(unended_status="cancelled")
                        return
                    if kind == "begin":
                        ops.begin_run(item[1])
                    elif kind == "prefill":
                        ops.write_prefill(*item[1:])
                    elif kind == "step":
                        self._check_room(ops, item[1], item[2])
                        self._write_step(ops, *item[1:])
                        staged = True  # its task is done when it is committed
                        now = time.monotonic()
                        if now - last_commit >= COMMIT_INTERVAL_S or ops.n_pending >= MAX_STAGED_STEPS:
                            self._commit(ops)
                            last_commit = now
                    elif kind == "end":
                        ops.end_run(*item[1:])
                    elif kind == "derived":
                        ops.write_derived(*item[1:])
                    elif kind == "discovery":
                        ops.write_discovery(*item[1:])
                    elif kind == "attrs":
                        ops.set_attrs(*item[1:])
                    elif kind == "image":
                        ops.add_image(*item[1:])
                finally:
                    if not staged:
                        self._queue.task_done()
        except BaseException as exc:
            # The traceback's frames hold h5py objects of the file. Release them now, while the
            # file is still open: freed after a close that failed (a full disk), they crash HDF5.
            exc.__traceback__ = None
            self._error = self._translate(exc)
            try:
                self._commit(ops)  # the steps staged before the failure, when the file still takes them
            except BaseException:
                for _ in range(ops.discard_pending()):
                    self._queue.task_done()
            ops.abort()
            self._drain()

    def _commit(self, ops: FileOps) -> None:
        """Write the staged steps, then mark their queue items done and report them."""
        if not ops.n_pending:
            return
        self.commits += 1
        for run_id, steps in ops.commit():
            self.committed_steps += len(steps)
            for step in steps:
                self._queue.task_done()
                self._step_committed(run_id, step)

    def _step_committed(self, run_id: str, step: int) -> None:
        """Called on the writer thread once a step is on disk and counted (a hook for subclasses)."""

    def _check_room(self, ops: FileOps, run_id: str, step: int) -> None:
        """Stop the run cleanly before a step that the disk (or the process's file-size limit)
        may not hold. HDF5 does not survive a failed write well: the file is left claiming more
        bytes than it has, and closing it can crash the process. So the run ends as failed while
        there is still room to close the file properly."""
        spec = ops.runs[run_id].spec
        step_bytes = spec.n_layers * spec.n_heads * spec.stored_keys * 2 if spec.capture_decode else 0
        step_bytes += 64  # tokens, targets, text
        need = (ops.n_pending + 2) * step_bytes + _CLOSE_SLACK_BYTES
        # Asking the file system costs ~50 us, a third of a small model's step on this thread. So
        # the answer is reused for ROOM_RECHECK_S, less the bytes staged since (uncompressed, so
        # an overestimate), and asked again early when that estimate gets within 8 steps of need.
        now = time.monotonic()
        room, where, asked_at, spent = self._room
        if now - asked_at > ROOM_RECHECK_S or room - spent < need + 8 * step_bytes:
            room, where = room_for(self.path)
            spent = 0
            asked_at = now
        if room - spent >= need:
            self._room = (room, where, asked_at, spent + step_bytes)
            return
        room -= spent
        left = max(1, spec.max_keys - spec.prompt_len - step)
        needed = left * step_bytes + _CLOSE_SLACK_BYTES  # step_bytes already holds the 64 for text
        reason = (
            f"stopped writing {self.path} at step {step}: the rest of the run needs about "
            f"{human_bytes(needed)} ({needed} bytes) but only {human_bytes(room)} ({room} bytes) "
            f"is left {where}. The {step} steps written before are kept and the file stays readable; "
            "free some space or generate fewer tokens."
        )
        self._commit(ops)
        ops.end_run(run_id, "failed", [], reason)
        raise DiskSpaceError(reason)

    def _write_step(self, ops: FileOps, run_id, step, token_id, text, target, rows, switch) -> None:
        ops.stage_step(run_id, step, token_id, text, target, rows, switch)

    def _drain(self) -> None:
        """After a failure: empty the queue so no producer stays blocked on it."""
        while True:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                return

    def _translate(self, exc: BaseException) -> GazeExplorerError:
        if isinstance(exc, GazeExplorerError):
            return exc
        text = str(exc)
        full = (
            (isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS)
            or any(f"errno = {code}," in text for code in _DISK_FULL_ERRNOS)  # h5py's RuntimeError
            or "No space left" in text
        )
        if full:
            try:
                free = human_bytes(check_free(self.path))
            except OSError:
                free = "unknown"
            err: GazeExplorerError = DiskSpaceError(
                f"writing {self.path} failed because the disk is full ({text}). The run needed about "
                f"{human_bytes(self._needed_bytes)}; {free} is free now. Steps written before the "
                "failure are kept and the file stays readable."
            )
        else:
            err = SessionFileError(f"writing {self.path} failed: {type(exc).__name__}: {text}")
        err.__cause__ = exc
        return err


# room kept for closing the file properly (run end, token strings, metadata flushes)
_CLOSE_SLACK_BYTES = 64 * 1024


def kv_value_norms(value_norms, n_layers: int, n_heads: int) -> tuple[np.ndarray, int]:
    """``(norms [layer, kv_head, key] float32, heads_per_kv)`` from query-head norms ``[layer, head,
    key]``: the largest group of consecutive heads whose norms are identical is stored once (GQA
    repeats each KV head's norms to its query heads, so this finds the KV heads; where heads do
    not share, the group is 1). Lossless: ``np.repeat(norms, heads_per_kv, axis=1)`` gives them back.
    """
    norms = np.asarray(value_norms, dtype=np.float32)
    if norms.ndim != 3 or norms.shape[:2] != (n_layers, n_heads):
        raise ValueError(
            f"value norms must be [layer, head, key] with {n_layers} layers and {n_heads} heads, "
            f"got {norms.shape}"
        )
    for group in range(n_heads, 1, -1):
        if n_heads % group == 0:
            kv = norms[:, ::group]
            if np.array_equal(np.repeat(kv, group, axis=1), norms, equal_nan=True):
                return np.ascontiguousarray(kv), group
    return norms, 1


def room_for(path: Path) -> tuple[int, str]:
    """Bytes that ``path`` may still grow by: the free disk space, or less under the process's
    file-size limit (``ulimit -f``); and where the limit comes from, for messages."""
    room, where = check_free(path), "on the disk"
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (ImportError, OSError, ValueError):  # no such limit on this platform
        return room, where
    if soft != resource.RLIM_INFINITY:
        size = path.stat().st_size if path.exists() else 0
        if soft - size < room:
            room, where = max(0, soft - size), f"under this process's file-size limit of {soft} bytes"
    return room, where


def check_free(path: Path) -> int:
    """Free bytes on the disk holding ``path``."""
    import shutil

    from gaze_explorer.storage.schema import existing_dir

    return shutil.disk_usage(existing_dir(path)).free

"""The writer thread's file operations: session header, run groups, steps, prefill, derived arrays.

Only the writer thread calls :class:`FileOps`. It tracks whether the file is in SWMR mode and
switches it as each operation needs: structure changes (new groups, datasets, attributes) in
normal mode, step appends in SWMR mode. The layout is documented in ``docs/session_schema.md``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

import gaze_explorer
from gaze_explorer.core.errors import SessionFileError
from gaze_explorer.core.regions import ImageTokenGrid
from gaze_explorer.storage import handles
from gaze_explorer.storage.schema import (
    ATTENTION_DTYPE,
    DERIVED_GROUP,
    DISCOVERIES_GROUP,
    FIRST_IMAGE,
    FORMAT_NAME,
    IMAGE_NAME_ATTR,
    IMAGES_GROUP,
    NO_TARGET,
    REASON_BYTES,
    RUNS_GROUP,
    SCHEMA_VERSION,
    STATUS_BY_NAME,
    STATUS_RUNNING,
    SWITCH_SOURCES,
    UI_ATTR,
    compression_kwargs,
    discovery_key,
    dumps,
    image_digest,
)
from gaze_explorer.storage.upgrade import upgrade_in_place
from gaze_explorer.storage.validate import validate_session

_STR = h5py.string_dtype("utf-8")
_META_KEYS = ("model_id", "revision", "family", "dtype", "device", "input_policy", "image_coverage")


@dataclass
class RunSpec:
    """Everything ``begin_run`` knows about a run (becomes the run group's attributes)."""

    run_id: str
    name: str
    prompt: str
    options: object
    plan: object
    schedule: object
    target: object
    n_layers: int
    n_heads: int
    max_keys: int
    prompt_len: int
    prefill_mode: str
    capture_decode: bool = True
    regions: list | None = None
    capture_scope: dict | None = None  # core.capture_scope.CaptureScope.to_dict(); None: full
    stored_keys: int = 0  # keys stored per decode row (max_keys, or fewer for image-keys); 0: max_keys
    image_key: str = FIRST_IMAGE  # the session image the run was made on

    def __post_init__(self) -> None:
        if not self.stored_keys:
            self.stored_keys = self.max_keys


@dataclass
class _StagedStep:
    """A decode step held by the writer thread until the next commit."""

    step: int
    token_id: int
    text: str
    target: int
    padded: np.ndarray | None  # [layer, head, max_keys], or None without decode capture
    n_keys: int
    switch: object


@dataclass
class _ThreadRun:
    spec: RunSpec
    tokens: list[str] = field(default_factory=list)
    text_bytes: int = 0
    ended: bool = False
    datasets: dict = field(default_factory=dict)  # name -> h5py.Dataset, valid for datasets_file
    datasets_file: object = None  # the h5py.File the handles belong to (reopened files need new ones)


def _skipped_heads(spec: RunSpec) -> np.ndarray | None:
    """``[layer, head]`` bool of the heads a 'heads' capture scope does not store, or None."""
    heads = (spec.capture_scope or {}).get("heads")
    if heads is None:
        return None
    keep = np.zeros((spec.n_layers, spec.n_heads), dtype=bool)
    keep[tuple(np.asarray(heads, dtype=np.int64).reshape(-1, 2).T)] = True
    return ~keep


def _none_to_int(value) -> int:
    return NO_TARGET if value is None else int(value)


class FileOps:
    """The open h5py file and the writes the thread makes to it."""

    def __init__(self, path: Path, file: h5py.File, compression: str, state) -> None:
        self.path = path
        self.file = file
        self.compression = compression
        self.state = state
        self.swmr = False
        self.runs: dict[str, _ThreadRun] = {}
        self.pending: dict[str, list[_StagedStep]] = {}  # run id -> steps staged, not yet written
        self.n_pending = 0
        self.n_existing_runs = len(file[RUNS_GROUP])
        # digest -> key of every image the file holds (the producer side picks keys from it)
        self.images = {image_digest(file["image"][()]): FIRST_IMAGE}
        for key in sorted(file[IMAGES_GROUP].keys()) if IMAGES_GROUP in file else ():
            self.images[image_digest(file[IMAGES_GROUP][key]["image"][()])] = key

    @classmethod
    def open(
        cls, path: Path, meta, image, grid, regions, compression, state, image_name: str = ""
    ) -> FileOps:
        """Create a new session file with its header (``image_name``: the first image's name), or
        open an existing one to add runs."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be [H, W, 3] uint8, got {image.shape} {image.dtype}")
        create = not path.exists()
        with state.lock:  # readers of this process (a reopened session on screen) let go first
            handles.drop_reader_handles(state)
            f = handles.open_for_writing(path, create=create)
        try:
            if create:
                _write_header(f, meta, image, grid, regions, image_name)
                f.flush()
            else:
                validate_session(f, path)
                upgrade_in_place(f)  # a version-1 file gains the version-2 layout before it grows
                if f["image"].shape != image.shape or not np.array_equal(f["image"][()], image):
                    raise SessionFileError(
                        f"{path} holds a different image; a session holds one image, so start a new session"
                    )
        except BaseException:
            f.close()
            raise
        return cls(path, f, compression, state)

    # ---- mode switches -------------------------------------------------------------------
    def _structure_mode(self) -> None:
        """Normal (non-SWMR) mode, in which groups, datasets and attributes can be added."""
        if not self.swmr:
            return
        with self.state.lock:
            handles.drop_reader_handles(self.state)
            self.file.flush()
            self.file.close()
            self.file = handles.open_for_writing(self.path, create=False)
            self.swmr = False

    def _swmr_mode(self) -> None:
        if self.swmr:
            return
        with self.state.lock:
            handles.drop_reader_handles(self.state)
            self.file.flush()
            self.file.swmr_mode = True
            self.swmr = True

    # ---- operations ----------------------------------------------------------------------
    def begin_run(self, spec: RunSpec) -> None:
        self._structure_mode()
        g = self.file[RUNS_GROUP].create_group(spec.run_id)
        a = g.attrs
        a["name"] = spec.name
        a["prompt"] = spec.prompt
        a["options_json"] = dumps(spec.options)
        a["plan_json"] = dumps(spec.plan)
        a["schedule_json"] = dumps(spec.schedule)
        a["target_json"] = dumps(spec.target)
        a["regions_json"] = dumps(spec.regions)
        a["n_layers"] = spec.n_layers
        a["n_heads"] = spec.n_heads
        a["max_keys"] = spec.max_keys
        a["prompt_len"] = spec.prompt_len
        a["prefill_mode"] = spec.prefill_mode
        a["capture_decode"] = spec.capture_decode
        a["capture_scope_json"] = dumps(spec.capture_scope or {"kind": "full", "heads": None})
        a["stored_keys"] = spec.stored_keys
        a["compression"] = self.compression
        a["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        a["writer_pid"] = os.getpid()
        a["writer_host"] = socket.gethostname()
        a["status"] = "running"
        a["image_key"] = spec.image_key
        g.create_dataset("status", data=np.array([STATUS_RUNNING], dtype=np.int8))
        g.create_dataset("n_steps", data=np.zeros(1, dtype=np.int64))
        g.create_dataset("reason", data=np.zeros(REASON_BYTES, dtype=np.uint8))
        for name, dtype, chunk in (
            ("token_ids", np.int64, 256),
            ("targets", np.int32, 256),
            ("token_text", np.uint8, 4096),
            ("token_text_end", np.int64, 256),
        ):
            g.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(chunk,), dtype=dtype)
        g.create_dataset("switches", shape=(0, 4), maxshape=(None, 4), chunks=(64, 4), dtype=np.int64)
        if spec.capture_decode:
            L, H, K = spec.n_layers, spec.n_heads, spec.stored_keys  # K < max_keys: image-keys scope
            att = g.create_group("attention")
            att.create_dataset(
                "decode",
                shape=(0, L, H, K),
                maxshape=(None, L, H, K),
                chunks=(1, L, H, K),  # one chunk per step: scrubbing reads exactly one chunk
                dtype=ATTENTION_DTYPE,
                **compression_kwargs(self.compression),
            )
            att.create_dataset("valid_keys", shape=(0,), maxshape=(None,), chunks=(256,), dtype=np.int32)
        self.file.flush()
        self.runs[spec.run_id] = _ThreadRun(spec)

    def write_prefill(
        self, run_id: str, rows, token_ids: np.ndarray, token_strings: list[str], value_norms=None
    ) -> None:
        self._structure_mode()
        g = self.file[RUNS_GROUP][run_id]
        g.create_dataset("prompt_token_ids", data=token_ids)
        g.create_dataset("prompt_token_strings", data=np.array(token_strings, dtype=object), dtype=_STR)
        if value_norms is not None:
            norms, heads_per_kv = value_norms  # [layer, kv_head, key] float32, query heads per KV head
            d = g.require_group("attention").create_dataset("value_norms", data=norms)
            d.attrs["heads_per_kv"] = int(heads_per_kv)
        if rows is not None:
            rows = np.asarray(rows, dtype=ATTENTION_DTYPE)  # [layer, head, query, key]
            att = g.require_group("attention")
            d = att.create_dataset(
                "prefill",
                data=rows,
                chunks=(1, 1, *rows.shape[2:]),
                **compression_kwargs(self.compression),
            )
            d.attrs["mode"] = g.attrs["prefill_mode"]
        self.file.flush()

    def _step_datasets(self, run_id: str, run: _ThreadRun) -> dict:
        """The run's per-step datasets, looked up once per file handle (a look-up costs ~0.1 ms,
        and a step touches ten of them)."""
        if run.datasets_file is not self.file:
            g = self.file[RUNS_GROUP][run_id]
            names = ("token_ids", "targets", "token_text", "token_text_end", "switches", "n_steps")
            run.datasets = {name: g[name] for name in names}
            if run.spec.capture_decode:
                run.datasets["decode"] = g["attention"]["decode"]
                run.datasets["valid_keys"] = g["attention"]["valid_keys"]
            run.datasets_file = self.file
        return run.datasets

    def stage_step(self, run_id, step, token_id, text, target, rows, switch) -> None:
        """Hold one decode step for the next :meth:`commit` (steps of a run arrive in order)."""
        run = self.runs[run_id]
        spec = run.spec
        padded = None
        n_keys = 0
        if spec.capture_decode:
            padded = np.zeros((spec.n_layers, spec.n_heads, spec.stored_keys), dtype=ATTENTION_DTYPE)
            if rows is not None:
                n_keys = rows.shape[2]  # the step's real key count, stored in valid_keys
                width = min(n_keys, spec.stored_keys)
                padded[:, :, :width] = rows[:, :, :width]  # [layer, head, key], zero padded
                skipped = _skipped_heads(spec)
                if skipped is not None:
                    padded[skipped] = np.nan  # heads outside a 'heads' capture scope
        self.pending.setdefault(run_id, []).append(
            _StagedStep(int(step), int(token_id), str(text), _none_to_int(target), padded, n_keys, switch)
        )
        self.n_pending += 1

    def commit(self) -> list[tuple[str, list[int]]]:
        """Write every staged step: per run one resize and one write per dataset, a flush, then
        the run's ``n_steps`` counter and a second flush. Returns ``(run_id, steps)`` written.

        A kill before the second flush leaves those steps uncounted, so readers (and a reopened
        file) see exactly the steps before them, complete."""
        if not self.n_pending:
            return []
        self._swmr_mode()
        done = []
        for run_id, staged in self.pending.items():
            if staged:
                self._write_batch(run_id, staged)
        self.file.flush()
        for run_id, staged in self.pending.items():
            if staged:
                self._step_datasets(run_id, self.runs[run_id])["n_steps"][0] = staged[-1].step + 1
                done.append((run_id, [st.step for st in staged]))
        self.file.flush()  # only now are the steps complete for readers and after a crash
        self.discard_pending()
        return done

    def discard_pending(self) -> int:
        """Forget the staged steps (written, or lost with a failed file); returns how many."""
        n, self.pending, self.n_pending = self.n_pending, {}, 0
        return n

    def _write_batch(self, run_id: str, staged: list[_StagedStep]) -> None:
        run = self.runs[run_id]
        ds = self._step_datasets(run_id, run)
        first, n = staged[0].step, staged[-1].step + 1
        if [st.step for st in staged] != list(range(first, n)) or first != ds["token_ids"].shape[0]:
            raise ValueError(
                f"{run_id}: steps {first}..{n - 1} do not follow step {ds['token_ids'].shape[0] - 1}"
            )
        if run.spec.capture_decode:
            decode = ds["decode"]
            decode.resize(n, axis=0)
            decode[first:n] = np.stack([st.padded for st in staged])
            _append(ds["valid_keys"], np.array([st.n_keys for st in staged], dtype=np.int32))
        _append(ds["token_ids"], np.array([st.token_id for st in staged], dtype=np.int64))
        _append(ds["targets"], np.array([st.target for st in staged], dtype=np.int32))
        encoded = [st.text.encode("utf-8") for st in staged]
        _append(ds["token_text"], np.frombuffer(b"".join(encoded), dtype=np.uint8))
        ends = run.text_bytes + np.cumsum([len(e) for e in encoded], dtype=np.int64)
        run.text_bytes = int(ends[-1])
        _append(ds["token_text_end"], ends)
        run.tokens.extend(st.text for st in staged)
        switches = [st.switch for st in staged if st.switch is not None]
        if switches:
            _append(ds["switches"], _switch_rows(switches))

    def end_run(self, run_id: str, status: str, switches: list, reason: str) -> None:
        run = self.runs[run_id]
        g = self.file[RUNS_GROUP][run_id]
        # first the SWMR-safe datasets, so the end survives even a kill in the step below
        rows = _switch_rows(switches)
        sw = g["switches"]
        sw.resize(rows.shape[0], axis=0)
        if rows.shape[0]:
            sw[:] = rows
        raw = reason.encode("utf-8")[: REASON_BYTES - 4]
        buf = np.zeros(REASON_BYTES, dtype=np.uint8)
        buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        g["reason"][:] = buf
        g["status"][0] = STATUS_BY_NAME[status]
        self.file.flush()
        run.ended = True
        # then, in normal mode, the conveniences for h5dump users: token strings and attributes
        self._structure_mode()
        g = self.file[RUNS_GROUP][run_id]
        g.create_dataset("token_strings", data=np.array(run.tokens, dtype=object), dtype=_STR)
        g.attrs["status"] = status
        g.attrs["reason"] = reason
        g.attrs["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.file.flush()

    def write_derived(self, name: str, array: np.ndarray, attrs: dict, run: str | None) -> None:
        self._structure_mode()
        parent = self.file[RUNS_GROUP][run] if run is not None else self.file
        group = parent.require_group(DERIVED_GROUP)
        if name in group:
            del group[name]
        d = group.create_dataset(name, data=array)
        for key, value in attrs.items():
            d.attrs[key] = value if isinstance(value, (int, float, str, np.ndarray)) else dumps(value)
        self.file.flush()

    def write_discovery(self, arrays: dict, attrs: dict) -> str:
        """A new group ``/discoveries/disc_NNN`` with the discovery's arrays and attributes."""
        self._structure_mode()
        parent = self.file.require_group(DISCOVERIES_GROUP)
        key = discovery_key(len(parent))
        g = parent.create_group(key)
        for name, array in arrays.items():
            g.create_dataset(name, data=array, compression="gzip", compression_opts=1)
        for name, value in attrs.items():
            g.attrs[name] = value if isinstance(value, (int, float, str)) else dumps(value)
        self._choose_discovery(key)
        self.file.flush()
        return key

    def _choose_discovery(self, key: str) -> None:
        """A discovery just added is the one to show: a saved choice of an older one (the app's
        ``discovery`` entry of the saved selection) would otherwise hide what, e.g., ``discover
        --session`` has just added. A selection that is not readable JSON is left as it is (the
        reader reports it)."""
        raw = self.file.attrs.get(UI_ATTR)
        if raw is None:
            return
        try:
            ui = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        except ValueError:
            return
        if isinstance(ui, dict) and ui.get("discovery") not in (None, key):
            ui["discovery"] = key
            self.file.attrs[UI_ATTR] = dumps(ui)

    def add_image(self, key: str, name: str, image: np.ndarray, grid: ImageTokenGrid, regions) -> None:
        """A further image of the session: ``/images/<key>`` with its own grid and regions."""
        self._structure_mode()
        g = self.file.require_group(IMAGES_GROUP).create_group(key)
        g.attrs["name"] = str(name)
        _write_image(g, image, grid, regions)
        self.file.flush()

    def set_attrs(self, where: str, attrs: dict) -> None:
        """Set attributes of an existing object (a run's user name, the root's saved selection)."""
        self._structure_mode()
        if where not in self.file:
            raise SessionFileError(f"{self.path} has no {where!r}")
        obj = self.file[where]
        for name, value in attrs.items():
            obj.attrs[name] = value if isinstance(value, (int, float, str)) else dumps(value)
        self.file.flush()

    def close(self, unended_status: str) -> None:
        """Mark runs that were never ended, then close the file (clears HDF5's open flags)."""
        for run_id, run in self.runs.items():
            if not run.ended:
                self.end_run(run_id, unended_status, [], "the writer was closed before the run ended")
        with self.state.lock:
            handles.drop_reader_handles(self.state)
            self.file.close()

    def abort(self) -> None:
        """After a write failure: best-effort mark open runs failed, flush and close."""
        try:
            for run_id, run in self.runs.items():
                if not run.ended:
                    self.file[RUNS_GROUP][run_id]["status"][0] = STATUS_BY_NAME["failed"]
            self.file.flush()
        except Exception:  # the disk may still be full; the counted steps are intact anyway
            pass
        try:
            with self.state.lock:
                handles.drop_reader_handles(self.state)
                self.file.close()
        except Exception:
            pass


def _append(dataset: h5py.Dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize(start + values.shape[0], axis=0)
    dataset[start:] = values


def _switch_rows(switches) -> np.ndarray:
    """Switches as ``[n, 4]`` int64 rows: step, previous, to (-1 = none), source (0 schedule, 1 live)."""
    out = np.zeros((len(switches), 4), dtype=np.int64)
    for i, s in enumerate(switches):
        source = SWITCH_SOURCES.index(s.source) if s.source in SWITCH_SOURCES else len(SWITCH_SOURCES)
        out[i] = (int(s.step), _none_to_int(s.previous), _none_to_int(s.to), source)
    return out


def _write_header(
    f: h5py.File, meta: dict, image: np.ndarray, grid: ImageTokenGrid, regions, image_name: str = ""
) -> None:
    meta = dict(meta or {})
    a = f.attrs
    a[IMAGE_NAME_ATTR] = str(image_name)  # the first image's (a further image's is /images/<key>'s name)
    a["format"] = FORMAT_NAME
    a["schema_version"] = SCHEMA_VERSION
    a["app_version"] = gaze_explorer.__version__
    a["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for key in _META_KEYS:
        a[key] = "" if meta.get(key) is None else str(meta[key])
    a["meta_json"] = dumps(meta)
    _write_image(f, image, grid, regions)
    f.create_group(RUNS_GROUP)
    f.create_group(DISCOVERIES_GROUP)


def _write_image(parent, image: np.ndarray, grid: ImageTokenGrid, regions) -> None:
    """``image``, ``grid`` and ``regions`` of one session image under ``parent`` (the root, or
    ``/images/<key>``)."""
    f = parent
    f.create_dataset("image", data=image, compression="gzip", compression_opts=1)
    g = f.create_group("grid")
    for key in ("image_width", "image_height", "rows", "cols"):
        g.attrs[key] = int(getattr(grid, key))
    g.create_dataset("token_boxes", data=grid.token_boxes)  # [n_image_tokens, 4] x0 y0 x1 y1 px
    g.create_dataset("positions", data=grid.positions)  # [n_image_tokens] sequence positions
    region_dicts = []
    for r in regions:
        d = r.to_dict()
        d["positions"] = [int(p) for p in r.positions(grid)]
        region_dicts.append(d)
    f.create_group("regions").attrs["regions_json"] = dumps(region_dicts)

"""The session reader: opens a session read-only and hands out numpy arrays, never h5py objects.

It reads runs that are still being written (SWMR; call :meth:`SessionReader.refresh` to see new
steps and runs) and runs whose writer was killed (reported as ``unfinished``; every counted step
is complete). Step rows are read one chunk at a time and kept in a small LRU cache, so scrubbing
back and forth does not touch the disk again.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from gaze_explorer.core.capture_scope import CaptureScope
from gaze_explorer.core.errors import SessionFileError
from gaze_explorer.core.regions import ImageTokenGrid, Region
from gaze_explorer.core.scoring import head_index, image_attention, region_masses, trajectory
from gaze_explorer.core.steering import Switch
from gaze_explorer.storage import handles
from gaze_explorer.storage.discovery_reads import DiscoveryReads
from gaze_explorer.storage.run_info import RunInfo
from gaze_explorer.storage.schema import (
    FIRST_IMAGE,
    IMAGE_NAME_ATTR,
    IMAGES_GROUP,
    NO_TARGET,
    RUNS_GROUP,
    SPANS_ATTR,
    STATUS_CODES,
    SWITCH_SOURCES,
    UNFINISHED,
    USER_NAME_ATTR,
)
from gaze_explorer.storage.validate import (
    MAX_WHOLE_READ_BYTES,
    as_int,
    as_json,
    as_str,
    attention_group,
    check_rows_read,
    check_whole_read,
    validate_run,
    validate_session,
)

# h5py raises these for damaged metadata (RuntimeError: a checksum that fails on every retry)
_H5_ERRORS = (KeyError, ValueError, TypeError, OSError, RuntimeError)


def _optional_int(value: int) -> int | None:
    return None if value == NO_TARGET else int(value)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SessionReader(DiscoveryReads):
    """Read a session file. ``run`` arguments are a run id (``run_000``) or an index into ``runs()``."""

    def __init__(self, path: str | os.PathLike, cache_steps: int = 32) -> None:
        self.path = Path(path)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_steps = max(0, int(cache_steps))
        self._file: h5py.File | None = None
        self._state = handles.path_state(self.path)
        with self._state.lock:
            f = handles.open_for_reading(self.path)
            try:
                validate_session(f, self.path)
                self._load_header(f)
            except SessionFileError:
                f.close()
                raise
            except _H5_ERRORS as exc:
                f.close()
                raise SessionFileError(f"{self.path} is damaged: {exc}") from exc
            self._file = f
            self._state.readers.add(self)

    # ---- file handle ---------------------------------------------------------------------
    def _drop_handle(self) -> None:
        """Close the handle (the writer needs it gone); the next access reopens it."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None

    @contextlib.contextmanager
    def _access(self) -> Iterator[h5py.File]:
        with self._state.lock:
            if self._file is None:
                self._file = handles.open_for_reading(self.path)
            try:
                yield self._file
            except _H5_ERRORS as exc:
                raise SessionFileError(f"cannot read {self.path}: {exc}") from exc

    def _ds(self, f: h5py.File, name: str) -> h5py.Dataset:
        """A dataset, refreshed so that a run still being written shows its new steps."""
        d = f[name]
        if not isinstance(d, h5py.Dataset):
            raise SessionFileError(f"{self.path}: {name} should be a dataset")
        if f.swmr_mode:
            with contextlib.suppress(Exception):
                d.refresh()
        return d

    def refresh(self) -> None:
        """See runs and steps added since the file was opened (reopens the handle)."""
        with self._state.lock:
            self._drop_handle()

    def close(self) -> None:
        with self._state.lock:
            self._drop_handle()
            self._state.readers.discard(self)
        self._cache.clear()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- session -------------------------------------------------------------------------
    def _load_header(self, f: h5py.File) -> None:
        p = self.path
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        meta = {k: v for k, v in attrs.items() if k != "meta_json"}
        meta["model"] = as_json(attrs.get("meta_json", "{}"), "the 'meta_json' attribute", p)
        self.meta: dict = meta
        image, grid, regions = self._read_image(f)
        self.image: np.ndarray = image  # [H, W, 3] uint8, the session's first image
        self.grid: ImageTokenGrid = grid
        self.regions: list[Region] = regions
        # the first image's name ("" in files written before it was stored: callers show the file's)
        self.image_name: str = as_str(attrs.get(IMAGE_NAME_ATTR, ""), "the first image's name", p)

    def attention_layers(self) -> tuple[int, ...] | None:
        """The true indices of the session model's softmax-attention layers (``meta_json``'s
        ``attention_layers``); the other layers (Qwen3.5's linear attention) have no attention
        weights. None for a file written before the entry existed: every layer is attention."""
        model = self.meta.get("model") or {}
        if not isinstance(model, dict) or model.get("attention_layers") is None:
            return None
        layers = model["attention_layers"]
        n_layers = model.get("n_layers")
        if (
            not isinstance(layers, list)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in layers)
            or (isinstance(n_layers, int) and any(x >= n_layers for x in layers))
        ):
            raise SessionFileError(
                f"{self.path}: the model's attention_layers should be layer indices below its "
                f"{n_layers} layers, but is {layers!r}"
            )
        return tuple(sorted(set(layers)))

    def _read_image(self, parent) -> tuple[np.ndarray, ImageTokenGrid, list[Region]]:
        """Image, token grid and regions of one session image (the root, or /images/<key>)."""
        p = self.path
        image = np.asarray(self._whole(parent["image"], "the image"))
        g = parent["grid"]
        grid = ImageTokenGrid(
            *(
                as_int(g.attrs[k], f"grid attribute {k!r}", p)
                for k in ("image_width", "image_height", "rows", "cols")
            ),
            np.asarray(self._whole(g["token_boxes"], "grid/token_boxes")),
            np.asarray(self._whole(g["positions"], "grid/positions")),
        )
        regions = as_json(parent["regions"].attrs.get("regions_json", "[]"), "the regions", p)
        return image, grid, [Region.from_dict(r) for r in regions]

    def image_keys(self) -> list[str]:
        """The keys of the session's images: ``img_000`` (the first, at the root), then any more."""
        with self._access() as f:
            more = sorted(f[IMAGES_GROUP].keys()) if IMAGES_GROUP in f else []
        return [FIRST_IMAGE, *more]

    def image_set(self, key: str = FIRST_IMAGE) -> tuple[np.ndarray, ImageTokenGrid, list[Region], str]:
        """``(image, grid, regions, name)`` of the session image ``key`` (name "": none stored)."""
        if key == FIRST_IMAGE:
            return self.image, self.grid, self.regions, self.image_name
        with self._access() as f:
            if IMAGES_GROUP not in f or key not in f[IMAGES_GROUP]:
                raise SessionFileError(
                    f"{self.path} has no image {key!r} (it has {', '.join(self.image_keys())})"
                )
            g = f[IMAGES_GROUP][key]
            image, grid, regions = self._read_image(g)
            return image, grid, regions, as_str(g.attrs.get("name", ""), "image name", self.path)

    def _whole(self, d, what: str) -> np.ndarray:
        """Read a whole dataset, refusing absurd stored shapes before allocating them."""
        if not isinstance(d, h5py.Dataset):
            raise SessionFileError(f"{self.path}: {what} should be a dataset")
        check_whole_read(d, what, self.path)
        return d[()]

    def run_ids(self) -> list[str]:
        with self._access() as f:
            return sorted(f[RUNS_GROUP].keys())

    def runs(self) -> list[RunInfo]:
        """Every run in the file, in the order they were begun."""
        return [self.run_info(r) for r in self.run_ids()]

    def _run_id(self, run: str | int) -> str:
        ids = self.run_ids()
        if isinstance(run, (int, np.integer)):
            if not -len(ids) <= run < len(ids):
                raise SessionFileError(f"{self.path} has {len(ids)} run(s); there is no run {run}")
            return ids[run]
        if run not in ids:
            raise SessionFileError(f"{self.path} has no run {run!r} (it has {', '.join(ids) or 'none'})")
        return run

    def _group(self, f: h5py.File, run_id: str) -> h5py.Group:
        g = f[RUNS_GROUP][run_id]
        validate_run(g, self.path)
        return g

    def _n_steps(self, f: h5py.File, run_id: str) -> int:
        g = f[RUNS_GROUP][run_id]
        counted = int(self._ds(f, f"{g.name}/n_steps")[0])
        # the counter is written last, so it never exceeds the stored steps; clamp defensively
        return min(counted, self._ds(f, f"{g.name}/token_ids").shape[0])

    def run_info(self, run: str | int) -> RunInfo:
        """The stored parameters, status and progress of one run."""
        run_id = self._run_id(run)
        p = self.path
        with self._access() as f:
            g = self._group(f, run_id)
            a = g.attrs
            code = int(self._ds(f, f"{g.name}/status")[0])
            status = STATUS_CODES.get(code)
            if status is None:
                raise SessionFileError(f"{p}: run {run_id} has an unknown status code {code}")
            if status == "running" and not self._writer_alive(a):
                status = UNFINISHED
            raw_reason = bytes(self._ds(f, f"{g.name}/reason")[()])
            reason = raw_reason.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            switches = tuple(
                Switch(
                    int(s[0]),
                    _optional_int(s[1]),
                    _optional_int(s[2]),
                    SWITCH_SOURCES[s[3]] if 0 <= s[3] < len(SWITCH_SOURCES) else "unknown",
                )
                for s in np.asarray(self._ds(f, f"{g.name}/switches")[()])
            )
            regions = as_json(a.get("regions_json", "null"), "run attribute 'regions_json'", p)
            n_steps = self._n_steps(f, run_id)
            targets = tuple(_optional_int(t) for t in self._ds(f, f"{g.name}/targets")[:n_steps])
            return RunInfo(
                run_id=run_id,
                name=as_str(a["name"], "run name", p),
                status=status,
                n_steps=n_steps,
                prompt=as_str(a["prompt"], "run prompt", p),
                prompt_len=as_int(a["prompt_len"], "prompt_len", p),
                n_layers=as_int(a["n_layers"], "n_layers", p),
                n_heads=as_int(a["n_heads"], "n_heads", p),
                max_keys=as_int(a["max_keys"], "max_keys", p),
                prefill_mode=as_str(a["prefill_mode"], "prefill_mode", p),
                capture_decode="attention" in g and "decode" in g["attention"],
                options=as_json(a["options_json"], "options_json", p),
                plan=as_json(a["plan_json"], "plan_json", p),
                schedule=as_json(a["schedule_json"], "schedule_json", p),
                target=as_json(a.get("target_json", "null"), "target_json", p),
                switches=switches,
                reason=reason,
                created=as_str(a.get("created", ""), "created", p),
                regions=None if regions is None else tuple(Region.from_dict(r) for r in regions),
                targets=targets,
                capture_scope=CaptureScope.from_dict(
                    as_json(a.get("capture_scope_json", "null"), "capture_scope_json", p)
                ),
                user_name=as_str(a.get(USER_NAME_ATTR, ""), "user_name", p),
                image_key=as_str(a.get("image_key", FIRST_IMAGE), "image_key", p),
            )

    def _writer_alive(self, attrs) -> bool:
        pid = int(attrs.get("writer_pid", -1))
        host = attrs.get("writer_host", "")
        if pid == os.getpid():
            return handles.has_writer(self.path)
        return host == socket.gethostname() and pid > 0 and _pid_alive(pid)

    # ---- tokens --------------------------------------------------------------------------
    def tokens(self, run: str | int) -> list[str]:
        """The generated token strings of the complete steps (UTF-8, any script)."""
        run_id = self._run_id(run)
        with self._access() as f:
            name = f"{RUNS_GROUP}/{run_id}"
            n = self._n_steps(f, run_id)
            if n == 0:
                return []
            ends = np.asarray(self._ds(f, f"{name}/token_text_end")[:n])
            data = bytes(np.asarray(self._ds(f, f"{name}/token_text")[: int(ends[-1])]))
        starts = np.concatenate([[0], ends[:-1]])
        return [
            data[int(s) : int(e)].decode("utf-8", errors="replace") for s, e in zip(starts, ends, strict=True)
        ]

    def token_ids(self, run: str | int) -> np.ndarray:
        run_id = self._run_id(run)
        with self._access() as f:
            n = self._n_steps(f, run_id)
            return np.asarray(self._ds(f, f"{RUNS_GROUP}/{run_id}/token_ids")[:n])

    def targets(self, run: str | int) -> list[int | None]:
        """The steering target region of each step (None where none)."""
        run_id = self._run_id(run)
        with self._access() as f:
            n = self._n_steps(f, run_id)
            return [_optional_int(t) for t in self._ds(f, f"{RUNS_GROUP}/{run_id}/targets")[:n]]

    def prompt_tokens(self, run: str | int) -> tuple[np.ndarray, list[str]]:
        """The prompt's token ids and strings (empty if no prefill was written)."""
        run_id = self._run_id(run)
        with self._access() as f:
            g = f[RUNS_GROUP][run_id]
            if "prompt_token_ids" not in g:
                return np.zeros(0, dtype=np.int64), []
            ids = np.asarray(self._whole(g["prompt_token_ids"], "prompt_token_ids"))
            strings = [
                s.decode("utf-8", errors="replace") if isinstance(s, bytes) else str(s)
                for s in self._whole(g["prompt_token_strings"], "prompt_token_strings")
            ]
            return ids, strings

    # ---- attention -----------------------------------------------------------------------
    def step_rows(self, run: str | int, step: int, *, as_stored: bool = False) -> np.ndarray:
        """Attention of decode step ``step``: ``[layer, head, key]``, its valid keys only (under an
        ``image-keys`` capture scope, the stored keys: those up to the last image token).

        float32 by default (a fresh array). ``as_stored=True`` returns the stored dtype (float16)
        as the reader's cached, read-only array: a scrub frame asks for the same step from several
        views, and converting a whole 8B step (36 x 32 x 1,000) to float32 costs as much as reading
        it, while the views only need a few heads or one region (they upcast what they pick).
        """
        run_id = self._run_id(run)
        key = (run_id, int(step))
        rows = self._cache.get(key)
        if rows is not None:
            self._cache.move_to_end(key)
        else:
            with self._access() as f:
                n = self._n_steps(f, run_id)
                if not 0 <= step < n:
                    raise SessionFileError(f"run {run_id} has {n} complete step(s); there is no step {step}")
                att = self._attention_group(f, run_id)
                n_keys = int(self._ds(f, f"{att.name}/valid_keys")[step])
                d = self._ds(f, f"{att.name}/decode")
                self._check_rows(d, 1, max(0, min(n_keys, d.shape[-1])))
                rows = np.asarray(d[step, :, :, :n_keys])
            rows.flags.writeable = False
            if self._cache_steps:
                self._cache[key] = rows
                while len(self._cache) > self._cache_steps:
                    self._cache.popitem(last=False)
        return rows if as_stored else rows.astype(np.float32)

    def _attention_group(self, f: h5py.File, run_id: str) -> h5py.Group:
        return attention_group(f[RUNS_GROUP][run_id], run_id, self.path)

    def _check_rows(self, d: h5py.Dataset, n_steps: int, n_keys: int) -> None:
        check_rows_read(d, n_steps, n_keys, self.path)

    def head_rows(self, run: str | int, layer: int, head: int) -> np.ndarray:
        """One head's rows over all complete steps: ``[step, key]`` float32, zero beyond each step's
        valid keys (step ``s`` has ``prompt_len + s`` keys)."""
        run_id = self._run_id(run)
        with self._access() as f:
            n = self._n_steps(f, run_id)
            att = self._attention_group(f, run_id)
            d = self._ds(f, f"{att.name}/decode")
            if not (0 <= layer < d.shape[1] and 0 <= head < d.shape[2]):
                raise SessionFileError(
                    f"no head L{layer}H{head} in a model of {d.shape[1]}x{d.shape[2]} heads"
                )
            width = int(np.max(self._ds(f, f"{att.name}/valid_keys")[:n], initial=0))
            width = max(0, min(width, d.shape[3]))
            if float(n) * width * 4 > MAX_WHOLE_READ_BYTES:
                raise SessionFileError(f"{self.path} is damaged: {d.name} claims shape {d.shape}")
            return np.asarray(d[:n, layer, head, :width], dtype=np.float32)

    def prefill_rows(self, run: str | int) -> np.ndarray | None:
        """The captured prefill ``[layer, head, query, key]`` (one query for 'last'), or None."""
        run_id = self._run_id(run)
        with self._access() as f:
            g = f[RUNS_GROUP][run_id]
            if "attention" not in g or "prefill" not in g["attention"]:
                return None
            return np.asarray(
                self._whole(g["attention"]["prefill"], "the prefill attention"), dtype=np.float32
            )

    def value_norms(self, run: str | int) -> np.ndarray | None:
        """The value-vector norms ``||v||`` of the prompt's keys, ``[layer, head, key]`` float32 (query
        heads: each KV head's norms repeated to the heads that share it), or None for a run stored
        without them (sessions written before they were recorded: value weighting falls back to raw)."""
        run_id = self._run_id(run)
        with self._access() as f:
            g = f[RUNS_GROUP][run_id]
            if "attention" not in g or "value_norms" not in g["attention"]:
                return None
            d = g["attention"]["value_norms"]
            norms = np.asarray(self._whole(d, "the value norms"), dtype=np.float32)  # [layer, kv_head, key]
            group = int(d.attrs.get("heads_per_kv", 1))
            if norms.ndim != 3 or group < 1:
                raise SessionFileError(f"{self.path}: {d.name} has shape {norms.shape}, heads_per_kv {group}")
            return np.repeat(norms, group, axis=1)

    def _regions_of(self, info: RunInfo) -> list[Region]:
        return list(info.regions) if info.regions else self.image_set(info.image_key)[2]

    def grid_of(self, run: str | int | RunInfo) -> ImageTokenGrid:
        """The token grid of the image a run was made on."""
        info = run if isinstance(run, RunInfo) else self.run_info(run)
        return self.image_set(info.image_key)[1]

    def image_attention(self, run: str | int, step: int, heads=None) -> tuple[np.ndarray, np.ndarray]:
        """Mean over ``heads`` (all if None) of step ``step``'s attention on each image token
        ``[n_image_tokens]``, and its sum over each region's tokens ``[n_regions]`` (not renormalised).
        The math is ``core.scoring``'s; a head out of range raises HeadSpecError."""
        info = self.run_info(run)
        per_token = image_attention(self.step_rows(info.run_id, step), self.grid_of(info).positions, heads)
        per_region = region_masses(per_token, self._regions_of(info))
        return per_token.astype(np.float32), per_region.astype(np.float32)

    def trajectory(self, run: str | int, heads=None, block: int = 16) -> np.ndarray:
        """``[step, region]``: at each complete step, the mean over ``heads`` of the attention summed
        over each region's image tokens (the "staircase", ``core.scoring.trajectory``'s ``raw``).
        Reads ``block`` steps at a time."""
        info = self.run_info(run)
        regions = self._regions_of(info)
        head_index(heads, info.n_layers, info.n_heads)  # a bad head set fails before any read
        grid = self.grid_of(info)
        positions = [r.positions(grid) for r in regions]
        out = np.zeros((info.n_steps, len(regions)), dtype=np.float32)
        with self._access() as f:
            att = self._attention_group(f, info.run_id)
            d = self._ds(f, f"{att.name}/decode")
            width = int(grid.positions.max()) + 1  # image tokens come before any generated key
            if width > d.shape[3]:
                raise SessionFileError(
                    f"{self.path} is damaged: {d.name} has {d.shape[3]} keys, fewer than the image's {width}"
                )
            self._check_rows(d, block, width)
            for start in range(0, info.n_steps, block):
                stop = min(start + block, info.n_steps)
                chunk = np.asarray(d[start:stop, :, :, :width], dtype=np.float32)  # [step, layer, head, key]
                out[start:stop] = trajectory(chunk, heads, positions)["raw"]
        return out

    def spans(self, run: str | int) -> list:
        """A run's named spans (``core.spans.Span``, saved by ``SessionWriter.write_spans``), or []."""
        from gaze_explorer.core.spans import loads_spans

        run_id = self._run_id(run)
        with self._access() as f:
            raw = self._group(f, run_id).attrs.get(SPANS_ATTR)
        return loads_spans(None if raw is None else as_str(raw, SPANS_ATTR, self.path))

"""Session files for the app: write each run as it streams, and reopen a file into the models.

Writing happens on the generation worker's thread (the storage writer has its own queue and
thread); reopening reads only what a view asks for, through the reader's cached accessors.
h5py is imported lazily, by the storage package.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError, SessionFileError
from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.steering import LiveTarget, Schedule


@dataclass
class RunHandle:
    """One run being written: created on the GUI thread, filled on the worker thread."""

    run: RunData
    begin_kwargs: dict
    run_id: str | None = None
    ended: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionRecorder:
    """Owns the open :class:`SessionWriter`; one session file per image."""

    def __init__(self, state: AppState, directory: str | Path | None = None) -> None:
        self.state = state
        self.directory = Path(directory) if directory is not None else Path.cwd() / "sessions"
        self.writer = None
        self.enabled = True
        self._reader = None  # a SessionReader on the file being written, for finished runs

    def _ensure_writer(self, image, grid, regions, loaded) -> None:
        if self.writer is not None or not self.enabled:
            return
        from gaze_explorer.storage import SessionWriter

        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H%M%S_%f")
        path = self.directory / f"{stamp}.h5"
        meta = loaded.describe() if hasattr(loaded, "describe") else {}
        self.writer = SessionWriter(path, meta=meta, image=np.asarray(image), grid=grid, regions=regions)
        self.state.session.path = str(path)

    def begin(self, run: RunData, image, grid, regions, loaded, source, plan, options) -> RunHandle:
        """Prepare a run; the file is created now, the run itself on the first (prefill) event."""
        panels = [r for r in regions if r.kind == "panel"]
        try:
            self._ensure_writer(image, grid, panels, loaded)
        except GazeExplorerError as err:
            self.state.status.post(f"this run is not being saved: {err}", error=True)
            self.enabled = False
        schedule = source if isinstance(source, Schedule) else None
        own_regions = None if [r.name for r in regions] == [r.name for r in panels] else list(regions)
        target = source.get() if isinstance(source, LiveTarget) else None
        kwargs = dict(
            prompt=run.params.get("prompt", ""),
            options=options,
            plan=plan,
            schedule=schedule,
            target=target,
            n_layers=loaded.n_layers,
            n_heads=loaded.n_heads,
            max_keys=None,
            prompt_len=None,
            prefill_mode="last",
            regions=own_regions,
        )
        return RunHandle(run, kwargs)

    def write(self, handle: RunHandle, event: object) -> None:
        """Called on the worker thread for every generation event."""
        if self.writer is None:
            return
        kind = type(event).__name__
        with handle.lock:
            if handle.ended:
                return
            if kind == "PrefillEvent":
                kw = dict(handle.begin_kwargs)
                kw["prompt_len"] = int(event.prompt_len)
                kw["max_keys"] = int(event.prompt_len) + int(kw["options"].max_new_tokens)
                handle.run_id = self.writer.begin_run(handle.run.name, **kw)
                handle.run.run_id = handle.run_id
                if event.rows is not None:
                    self.writer.write_prefill(handle.run_id, event.rows, event.token_ids, event.token_strings)
            elif kind == "TokenEvent" and handle.run_id is not None:
                self.writer.append_step(handle.run_id, event)
            elif kind == "FinishedEvent" and handle.run_id is not None:
                self.writer.end_run(handle.run_id, event.status, list(event.switches), getattr(event, "reason", "") or "")
                handle.ended = True

    def end_handle(self, handle: RunHandle, status: str, reason: str = "") -> None:
        """Close a run whose stream raised (no FinishedEvent came): keep it, marked ``status``."""
        if self.writer is None:
            return
        with handle.lock:
            if handle.ended or handle.run_id is None:
                return
            self.writer.end_run(handle.run_id, status, list(handle.run.switches), reason)
            handle.ended = True

    def attach_reader(self, handle: RunHandle) -> bool:
        """Back a finished run by the session file (what was stored, float16) and free its buffer.

        The overlay and trajectory then show exactly what a reopened session shows.
        """
        if self.writer is None or handle.run_id is None:
            return False
        from gaze_explorer.storage import SessionReader

        self.writer.wait()
        if self._reader is None or str(self._reader.path) != str(self.writer.path):
            self._reader = SessionReader(self.writer.path)
        reader, run_id, n = self._reader, handle.run_id, handle.run.n_steps
        reader.refresh()
        handle.run.rows_at = lambda s: reader.step_rows(run_id, s) if 0 <= s < n else None
        handle.run._rows = []  # type: ignore[attr-defined]
        return True

    def write_discovery(self, result) -> None:
        if self.writer is None:
            return
        self.writer.write_derived("gaze_scores", np.asarray(result.scores), {"n_strips": int(result.n_strips)})
        if getattr(result, "matrices", None) is not None:
            self.writer.write_derived("panel_matrices", np.asarray(result.matrices), {"n_panels": int(result.n_panels)})

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            finally:
                self.writer = None


def open_session(path: str | Path, state: AppState):
    """Load a session file into the models (image, runs, grid scores); returns the reader.

    Raises SessionFileError with a clear message for a file that cannot be opened. Runs are
    backed by the reader, so nothing is read until a view asks for a step.
    """
    from gaze_explorer.storage import SessionReader

    p = Path(path)
    if not p.exists():
        raise SessionFileError(f"session file {p} does not exist")
    try:
        reader = SessionReader(p)
    except GazeExplorerError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise SessionFileError(f"cannot open session {p}: {err}") from err
    session = state.session
    image = np.asarray(reader.image)
    regions = list(reader.regions)
    n_panels = sum(1 for r in regions if r.kind == "panel")
    model_meta = dict(reader.meta.get("model") or {})
    n_layers, n_heads = int(model_meta.get("n_layers", 0)), int(model_meta.get("n_heads", 0))
    session.clear_runs()
    session.path = str(p)
    session.set_image(image, reader.grid, [r for r in regions if r.kind == "panel"], n_panels, name=p.name)
    runs = reader.runs()
    if runs and not n_layers:
        n_layers, n_heads = int(runs[0].n_layers), int(runs[0].n_heads)
    if n_layers:
        state.heads.set_shape(n_layers, n_heads)
    scores = reader.gaze_scores()
    if scores is not None:
        state.heads.set_gaze_scores(np.asarray(scores))
    for info in runs:
        session.add_run(run_from_reader(reader, info, regions), show=False)
    if session.runs:
        session.show_runs(len(session.runs) - 1)
        state.step.set_n_steps(session.runs[-1].n_steps)
    state.status.update(
        model=str(model_meta.get("model_id", "session")),
        device=str(model_meta.get("device", "-")),
        dtype=str(model_meta.get("dtype", "-")),
        activity=f"session {p.name} (no model loaded)",
    )
    return reader


def run_from_reader(reader, info, session_regions) -> RunData:
    """A RunData whose rows are read on demand from the session file."""
    run_id = info.run_id
    tokens = list(reader.tokens(run_id))
    regions = [r for r in session_regions if r.kind == "panel"]
    if info.regions:
        regions = list(info.regions)
    targets = list(info.targets)
    return RunData(
        name=info.name,
        tokens=tokens,
        targets=targets,
        switches=list(info.switches),
        status=str(info.status),
        params=dict(info.params),
        run_id=run_id,
        prompt_len=int(info.prompt_len),
        rows_at=lambda s: reader.step_rows(run_id, s) if 0 <= s < len(tokens) else None,
        regions=regions,
    )

"""Session files for the app: write each run as it streams, and reopen a file into the models.

Writing happens on the generation worker's thread (the storage writer has its own queue and
thread); reopening reads only what a view asks for, through the reader's cached accessors.
h5py is imported lazily, by the storage package.

Memory of a streaming run: a step's attention rows (``[layer, head, key]``, ~14 MB for an 8B
model) stay in RAM only until the writer thread has flushed that step (a :class:`StepWindow`,
bounded by the writer's queue); ``rows_at`` reads flushed steps back from the file (SWMR) through
the reader's LRU cache, so a 1,000-token run costs no more memory than a 10-token one.
"""

from __future__ import annotations

import datetime as _dt
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError, SessionFileError
from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.heads import default_top_k
from gaze_explorer.core.options import CaptureSpec
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.core.state import AppState, RunData

if TYPE_CHECKING:
    from gaze_explorer.storage.record import RunRecorder

STORED_DTYPE = np.float16  # what the session file keeps (storage.schema.ATTENTION_DTYPE)


class StepWindow:
    """The rows of a streaming run's steps that are not in the session file yet.

    The worker thread puts a step in before queueing it for the writer; the writer thread takes it
    out once the step is flushed (``mark_flushed``). The writer's queue is bounded and blocks the
    producer when full, so the window never holds more than about ``queue_size + 2`` steps. Rows
    are kept as the file will hold them (float16, returned as float32), so a step reads the same
    before and after its flush. With ``keep_all`` (no session file) memory is the only copy and
    nothing leaves.
    """

    def __init__(self, keep_all: bool = False) -> None:
        self.keep_all = keep_all
        self.flushed = 0  # steps [0, flushed) are complete in the file
        self.peak = 0  # the most steps held at once (for tests and the memory benchmark)
        self._rows: dict[int, np.ndarray | None] = {}
        self._lock = threading.Lock()

    def put(self, step: int, rows: np.ndarray | None) -> None:
        stored = (
            None if rows is None else np.asarray(rows).astype(STORED_DTYPE)
        )  # as the file (and the reader) serve it
        with self._lock:
            if self.keep_all or step >= self.flushed:
                self._rows[int(step)] = stored  # [layer, head, key]
                self.peak = max(self.peak, len(self._rows))

    def mark_flushed(self, step: int) -> None:
        """Step ``step`` (and every earlier one) is now complete in the file."""
        with self._lock:
            self.flushed = max(self.flushed, int(step) + 1)
            if not self.keep_all:
                for s in [s for s in self._rows if s < self.flushed]:
                    del self._rows[s]

    def get(self, step: int) -> tuple[bool, np.ndarray | None]:
        """``(True, rows)`` if the window holds the step, else ``(False, None)``."""
        with self._lock:
            if step in self._rows:
                return True, self._rows[step]
            return False, None

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


@dataclass
class RunHandle:
    """One run being written: created on the GUI thread, filled on the worker thread."""

    run: RunData
    window: StepWindow = field(default_factory=StepWindow)
    recorder: RunRecorder | None = None  # None when the session is not being saved

    @property
    def run_id(self) -> str | None:
        return None if self.recorder is None else self.recorder.run_id


@functools.cache
def _flush_tracking_writer() -> type:
    """A SessionWriter that reports each step once it is flushed (built lazily: storage imports h5py)."""
    from gaze_explorer.storage import SessionWriter

    class FlushTrackingWriter(SessionWriter):
        def __init__(self, *args, on_step_flushed: Callable[[str, int], None], **kwargs) -> None:
            self._on_step_flushed = on_step_flushed
            super().__init__(*args, **kwargs)

        def _step_committed(self, run_id: str, step: int) -> None:
            # the rows and then the n_steps counter are flushed: readers see the step
            self._on_step_flushed(run_id, int(step))

    return FlushTrackingWriter


class SessionRecorder:
    """Owns the open :class:`SessionWriter`; one session file per image."""

    def __init__(self, state: AppState, directory: str | Path | None = None) -> None:
        self.state = state
        self.directory = Path(directory) if directory is not None else Path.cwd() / "sessions"
        self.writer = None
        self.enabled = True
        self.adopted: Path | None = None  # a reopened session file: new runs and discoveries go there
        self._reader = None  # a SessionReader on the file being written (streaming and finished runs)
        self._windows: dict[str, StepWindow] = {}  # run id -> its window, for the writer thread
        state.discovery.chosen.connect(self.show_discovery)  # the user picked a stored discovery

    def _ensure_writer(self, image, grid, regions, loaded) -> None:
        """Open the session file (new, or the reopened one) and make ``image`` its current image:
        a session holds every image its runs were made on."""
        if not self.enabled:
            return
        name = self.state.session.image_name
        if self.writer is not None:
            self.writer.use_image(np.asarray(image), grid, regions, name)
            return
        if self.adopted is not None and self.adopted.exists():
            path = self.adopted
            header = self._file_header(path)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H%M%S_%f")
            path = self.directory / f"{stamp}.h5"
            meta = loaded.describe() if hasattr(loaded, "describe") else {}
            header = dict(meta=meta, image=np.asarray(image), grid=grid, regions=regions, image_name=name)
        self.writer = _flush_tracking_writer()(path, **header, on_step_flushed=self._step_flushed)
        self.writer.use_image(np.asarray(image), grid, regions, name)
        self.state.session.path = str(path)

    @staticmethod
    def _file_header(path: Path) -> dict:
        """A session file's own first image, grid, regions and model (what its writer checks)."""
        from gaze_explorer.storage import SessionReader

        with SessionReader(path) as r:
            return dict(meta=dict(r.meta.get("model") or {}), image=r.image, grid=r.grid, regions=r.regions)

    def _step_flushed(self, run_id: str, step: int) -> None:
        """Called on the writer thread: the step is in the file, so its rows leave memory."""
        window = self._windows.get(run_id)
        if window is not None:
            window.mark_flushed(step)

    def _file_reader(self):
        """The reader on the file being written (opened once, SWMR; it follows new steps)."""
        from gaze_explorer.storage import SessionReader

        if self._reader is None or str(self._reader.path) != str(self.writer.path):
            self._reader = SessionReader(self.writer.path)
        return self._reader

    def rows_source(self, handle: RunHandle) -> Callable[[int], np.ndarray | None]:
        """``rows_at`` of a streaming run: the window for steps not flushed yet, else the file."""
        window = handle.window

        def rows_at(step: int) -> np.ndarray | None:
            held, rows = window.get(step)
            if held:
                return rows
            if handle.run_id is None or not 0 <= step < window.flushed or self.writer is None:
                return None
            try:
                return self._file_reader().step_rows(handle.run_id, step, as_stored=True)
            except GazeExplorerError:  # the file went away under us: show nothing for this step
                return None

        return rows_at

    def begin(
        self,
        run: RunData,
        image,
        grid,
        regions,
        loaded,
        source,
        plan,
        options,
        capture: CaptureSpec | None = None,
    ) -> RunHandle:
        """Prepare a run; the file is created now, the run itself on the first (prefill) event."""
        panels = [r for r in regions if r.kind == "panel"]
        try:
            self._ensure_writer(image, grid, panels, loaded)
        except GazeExplorerError as err:
            self.state.status.post(f"this run is not being saved: {err}", error=True)
            self.enabled = False
        own_regions = None if [r.name for r in regions] == [r.name for r in panels] else list(regions)
        spec = RunSpec.with_source(
            run.name,
            run.params.get("prompt", ""),
            loaded.n_layers,
            loaded.n_heads,
            source=source,
            capture=capture,
            regions=own_regions,
            options=options,
            plan=plan,
        )
        handle = RunHandle(run, window=StepWindow(keep_all=self.writer is None))
        run.params["image"] = None if self.writer is None else self.writer.current_image
        run.params["image_name"] = self.state.session.image_name
        run.grid = grid  # the run's own image's grid (the comparison draws each run on its own)
        if self.writer is not None:
            from gaze_explorer.storage.record import RunRecorder

            handle.recorder = RunRecorder(
                self.writer,
                spec,
                on_begin=lambda run_id: self._run_begun(handle, run_id),
                on_step=lambda ev: handle.window.put(ev.step, ev.rows),
                release_rows=True,
            )
        run.rows_at = self.rows_source(handle)
        return handle

    def _run_begun(self, handle: RunHandle, run_id: str) -> None:
        handle.run.run_id = run_id
        self._windows[run_id] = handle.window

    def write(self, handle: RunHandle, event: object) -> None:
        """Called on the worker thread for every generation event.

        A token's rows go into the run's window and to the writer; the event then drops them, so
        the queued Qt signal that carries it to the GUI holds no attention rows either.
        """
        if handle.recorder is not None:
            handle.recorder.feed(event)
        elif isinstance(event, TokenEvent):  # not saved: memory is the only copy
            handle.window.put(event.step, event.rows)
            event.rows = None

    def end_handle(self, handle: RunHandle, status: str, reason: str = "") -> None:
        """Close a run whose stream raised (no FinishedEvent came): keep it, marked ``status``."""
        if handle.recorder is not None:
            handle.recorder.end(status, reason)

    def attach_reader(self, handle: RunHandle) -> bool:
        """Back a finished run by the session file (what was stored, float16) and free its buffer.

        The overlay and trajectory then show exactly what a reopened session shows.
        """
        if self.writer is None or handle.run_id is None:
            return False
        self.writer.wait()
        reader, run_id, n = self._file_reader(), handle.run_id, handle.run.n_steps
        reader.refresh()
        handle.run.rows_at = stored_rows(reader, run_id, n)
        handle.window.clear()
        self._windows.pop(run_id, None)
        return True

    @property
    def current_path(self) -> str | None:
        """The file the next run goes to (open, or reopened), if any."""
        if self.writer is not None:
            return str(self.writer.path)
        return None if self.adopted is None else str(self.adopted)

    def write_discovery(self, result, image, grid, regions, loaded, source: str = "", params=None) -> None:
        """Save a discovery in the session file, creating the file if no run has yet."""
        panels = [r for r in regions if r.kind == "panel"]
        self._ensure_writer(image, grid, panels, loaded)
        if self.writer is None:
            return
        # the one place that knows a discovery's arrays
        self.writer.write_discovery(result, source=source, params=params)
        self.writer.wait()
        reader = self._file_reader()
        reader.refresh()
        found = reader.discoveries()  # the new one is the newest: listed and shown
        self.state.discovery.set_stored([(d.key, d.label) for d in found], found[-1].key if found else None)

    def show_discovery(self, key: str) -> None:
        """Show the session's stored discovery ``key`` (the user chose it): its arrays from the file
        being written, else from the reopened file. A key the file does not hold is said."""
        from gaze_explorer.storage import SessionReader

        try:
            if self.writer is not None:
                self.writer.wait()
                reader = self._file_reader()
                reader.refresh()
                show_discovery(self.state, reader, key)
            elif self.adopted is not None:
                with SessionReader(self.adopted) as reader:
                    show_discovery(self.state, reader, key)
            else:
                raise SessionFileError("no session file is open")
        except GazeExplorerError as err:
            self.state.status.post(f"cannot show discovery {key}: {err}", error=True)

    def rename_run(self, run_id: str, name: str) -> None:
        """Save a run's user-given name: through the open writer, or in the reopened file."""
        self._edit(lambda w: w.rename_run(run_id, name))

    def write_spans(self, run_id: str, spans) -> None:
        """Save a run's named spans (``core.spans.Span``) in the session file (replaces the saved set)."""
        self._edit(lambda w: w.write_spans(run_id, spans))

    def save_ui(self, ui: dict) -> None:
        """Save the selection on screen in the session file."""
        self._edit(lambda w: w.write_ui(ui))

    def _edit(self, action) -> None:
        if self.writer is not None:
            action(self.writer)
            self.writer.wait()
            return
        if self.adopted is None or not self.adopted.exists():
            return
        from gaze_explorer.storage import SessionWriter

        writer = SessionWriter(self.adopted, **self._file_header(self.adopted))
        try:
            action(writer)
        finally:
            writer.close()

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            finally:
                self.writer = None
                self._windows.clear()


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
    state.step.set_n_steps(0)
    session.path = str(p)
    panels = [r for r in regions if r.kind == "panel"]
    session.set_image(image, reader.grid, panels, n_panels, name=reader.image_name or p.name)
    runs = reader.runs()
    if runs and not n_layers:
        n_layers, n_heads = int(runs[0].n_layers), int(runs[0].n_heads)
    if n_layers:
        # the session model's softmax layers (None in older files: the grid falls back to NaN rows)
        state.heads.set_shape(n_layers, n_heads, reader.attention_layers())
        # K as loading this model would default it (the shown run's own choice comes below)
        demo = model_meta.get("model_id") == "demo"
        state.heads.set_kind(state.heads.kind, k=default_top_k(n_layers, n_heads, demo))
    restore_discovery(state, reader)
    for info in runs:
        session.add_run(run_from_reader(reader, info, regions), show=False)
    ui = reader.ui_state()
    restore_heads(state, ui.get("heads"))  # the head-set control; a steered shown run's own set wins
    ids = [r.run_id for r in session.runs]
    shown = ids.index(ui["shown"]) if ui.get("shown") in ids else (len(ids) - 1 if ids else None)
    compare = ids.index(ui["compare"]) if ui.get("compare") in ids else None
    saved = ui.get("selected")
    selected = [ids.index(i) for i in saved if i in ids] if isinstance(saved, list) else None
    restore_view(state, shown, compare, ui.get("step"), selected)
    restore_comparison(state, ui.get("comparison"))
    restore_inspected(state, reader)
    state.status.update(
        model=str(model_meta.get("model_id", "session")),
        device=str(model_meta.get("device", "-")),
        dtype=str(model_meta.get("dtype", "-")),
        activity=f"session {p.name} (no model loaded)",
    )
    return reader


def restore_discovery(state: AppState, reader) -> None:
    """Show the discovery the session was saved with (``SessionReader.chosen_discovery``: the
    newest when none was saved); a saved one the file no longer holds is said in the status bar."""
    key, note = reader.chosen_discovery_with_note()
    if note:
        state.status.post(note)
    show_discovery(state, reader, key)


def show_discovery(state: AppState, reader, key: str | None) -> None:
    """Make the stored discovery ``key`` (None: none) the one on screen: its gaze scores and the
    other criteria's arrays drive the grid and the top-K head sets, its summary the discovery dock.
    Runs are not touched. The arrays are read through ``SessionReader.discovery_array``."""
    from gaze_explorer.storage.schema import DISCOVERY_ARRAYS  # a reader is open: storage is imported

    found = reader.discoveries()
    info = next((d for d in found if d.key == key), None)
    if key is not None and info is None:
        have = ", ".join(d.key for d in found) or "none"
        raise SessionFileError(f"{reader.path} has no discovery {key!r} (it has {have})")
    names = DISCOVERY_ARRAYS.values()
    arrays = {name: None if key is None else reader.discovery_array(name, key) for name in names}
    scores, mass, maps = arrays["gaze_scores"], arrays["image_mass"], arrays["image_maps"]
    # the Localization Heads variants it was made with (discover --loc-entropy/--loc-bottom-row)
    localization = info.localization if info is not None else {}
    if scores is not None:
        state.heads.set_gaze_scores(np.asarray(scores), mass, maps, localization)
    n_strips = 0 if info is None else info.n_strips
    state.discovery.set_result(scores, arrays["panel_matrices"], n_strips, mass, maps, localization)
    state.discovery.set_stored([(d.key, d.label) for d in found], key)


def discovery_ui(state: AppState) -> str | None:
    """The discovery on screen as the saved selection holds it (``ui_json``'s ``discovery``): its
    key; None for none, or for a version-1 file's single one (``derived``: the file's newest, whose
    key changes when the file is upgraded)."""
    key = state.discovery.key
    return None if key in (None, "derived") else key


def run_image(recorder: SessionRecorder, reader, key: str):
    """``(image, grid, regions, name)`` of the session image ``key``: from the file being written,
    else from the reopened session's reader; None if neither holds it."""
    sources = []
    if recorder.writer is not None:
        recorder.writer.wait()
        sources.append(recorder._file_reader)
    if reader is not None:
        sources.append(lambda: reader)
    for open_source in sources:
        try:
            source = open_source()
            if key in source.image_keys():
                return source.image_set(key)
        except GazeExplorerError:
            continue
    return None


def restore_view(
    state: AppState,
    shown: int | None,
    compare: int | None,
    step: int | None,
    selected: list[int] | None = None,
) -> None:
    """Select the runs the session was saved with, as a user's pick would: ``selected`` (every
    selected run in the order picked, ending with ``shown``; default ``compare``, ``shown``) at
    ``step`` (default: the last). ``SessionModel.select_runs`` announces it, so the comparison shows
    the runs and the shown run's own head set is outlined (``AppState``: a baseline keeps the
    current set), exactly as when the user selects them."""
    if shown is None:
        return
    picked = [int(i) for i in selected or () if i is not None]
    if not picked or picked[-1] != shown:  # an older file (no "selected"), or one that disagrees
        picked = [i for i in (compare, shown) if i is not None]
    state.session.select_runs(picked)
    n = state.session.runs[shown].n_steps
    state.step.set_step(max(0, min(n - 1, n - 1 if step is None else int(step))))


def restore_heads(state: AppState, saved: dict | None) -> None:
    """Set the head-set control (kind, K, criterion, seed, pool, custom picks, fixed set) from the
    saved selection's ``heads`` entry (``HeadSelectionModel.ui_state``); none saved (older files)
    keeps it. A damaged entry is said in the status bar (the session itself opened)."""
    if saved is None:
        return
    try:
        state.heads.restore_ui(saved)
    except GazeExplorerError as err:
        state.status.post(f"{err}; the head set is not restored")


def heads_ui(state: AppState) -> dict:
    """The head-set control as the saved selection holds it (``ui_json``'s ``heads``)."""
    return state.heads.ui_state()


def comparison_ui(state: AppState) -> list[str]:
    """The runs the Comparison dock shows, as run ids (``ui_json``'s ``comparison``)."""
    session = state.session
    return [session.runs[i].run_id for i in session.compared if 0 <= i < len(session.runs)]


def restore_comparison(state: AppState, saved) -> None:
    """Show the saved comparison again (e.g. the four runs of Compare conditions, which are not
    selected); without one (older files) the restored selection's comparison stays."""
    if not isinstance(saved, list):
        return
    ids = [r.run_id for r in state.session.runs]
    picked = [ids.index(i) for i in saved if i in ids]
    if len(picked) >= 2:
        state.session.set_compared(picked)


def selected_ui(state: AppState) -> list[str | None]:
    """Every selected run's id, in the order picked (``ui_json``'s ``selected``)."""
    session = state.session
    return [session.runs[i].run_id for i in session.selected if 0 <= i < len(session.runs)]


def restore_inspected(state: AppState, reader) -> None:
    """Open the head the session was saved with in the head inspector, or none (a file saved
    without one, or before sessions kept it); a damaged entry or a head the session's model does
    not have is said in the status bar (the session itself opened), not raised."""
    try:
        head = reader.inspected_head()
    except GazeExplorerError as err:  # the session itself opened: a status line, not a message box
        state.status.post(f"{err}; the inspector opens no head")
        head = None
    n_layers, n_heads = state.heads.n_layers, state.heads.n_heads
    if head is not None and not (head[0] < n_layers and head[1] < n_heads):
        state.status.post(
            f"the session's inspected head L{head[0]} H{head[1]} is not in its {n_layers} x {n_heads} "
            "model; the inspector opens no head"
        )
        head = None
    state.inspector.set_head(head)


def inspected_ui(state: AppState) -> list[int] | None:
    """The inspected head as the saved selection holds it (``ui_json``'s ``inspected``)."""
    head = state.inspector.head
    return None if head is None else [int(head[0]), int(head[1])]


def stored_rows(reader, run_id: str, n_steps: int) -> Callable[[int], np.ndarray | None]:
    """``rows_at`` of a run read back from the session file: steps ``0..n_steps-1`` as stored.

    The last step asked for is kept: a step change makes the overlay, the grid and the head
    inspector ask for the same step in turn, and even a step in the reader's cache costs a look-up
    of the file's run list (~0.3 ms) each time."""
    last: list = [None, None]  # step, its rows

    def rows_at(step: int) -> np.ndarray | None:
        if not 0 <= step < n_steps:
            return None
        if last[0] != step:
            last[1] = reader.step_rows(run_id, step, as_stored=True)
            last[0] = step
        return last[1]

    return rows_at


def run_from_reader(reader, info, session_regions) -> RunData:
    """A RunData whose rows are read on demand from the session file."""
    run_id = info.run_id
    tokens = list(reader.tokens(run_id))
    grid, image_name = reader.grid, reader.image_name
    if info.image_key != reader.image_keys()[0]:  # a run on another image of the session
        _, grid, session_regions, image_name = reader.image_set(info.image_key)
    regions = [r for r in session_regions if r.kind == "panel"]
    if info.regions:
        regions = list(info.regions)
    targets = list(info.targets)
    _, prompt_tokens = reader.prompt_tokens(run_id)
    params = dict(info.params)
    params["user_name"] = info.user_name
    params["image"] = info.image_key
    params["image_name"] = image_name  # "" for a first image of a file that keeps no name
    # what the run's file holds (full, image-keys, heads (N)); older files have no scope: full
    params["capture_scope"] = info.capture_scope.label() if info.capture_scope is not None else "full"
    return RunData(
        name=info.display_name,
        tokens=tokens,
        targets=targets,
        switches=list(info.switches),
        status=str(info.status),
        params=params,
        run_id=run_id,
        prompt_len=int(info.prompt_len),
        prompt_tokens=list(prompt_tokens),
        rows_at=stored_rows(reader, run_id, len(tokens)),
        regions=regions,
        grid=grid,
    )

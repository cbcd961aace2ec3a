"""What the app works on: the loaded model, the image on screen and the session file.

``SessionControl`` loads a model on a worker (a bad spec leaves the previous model in place), shows a
new image (the session goes on: it holds runs on several images), reopens a session file (its image
becomes the next run's, new runs go into the same file), follows the shown run to its image, and
saves the selection on screen in the file. It owns the ``SessionRecorder`` and keeps the status bar
true: which model, on which device, and which session file the next run goes to. torch,
transformers and h5py are imported lazily, inside the actions that need them.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.core.errors import GazeExplorerError, ModelLoadError
from gaze_explorer.core.heads import default_control_pool
from gaze_explorer.core.regions import coverage_warning, panel_regions
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.control.worker_pool import WorkerPool
from gaze_explorer.qt.session_io import (
    SessionRecorder,
    comparison_ui,
    discovery_ui,
    heads_ui,
    inspected_ui,
    selected_ui,
)
from gaze_explorer.qt.workers import Worker


class SessionControl(QtCore.QObject):
    """The loaded model, the image on screen and the session file being written."""

    model_loaded = QtCore.Signal()

    def __init__(self, state: AppState, pool: WorkerPool, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.pool = pool
        self.recorder = SessionRecorder(state)
        self.loaded = None  # inference.loading.LoadedModel
        self.pil_image: Image.Image | None = None
        self.panel_widths: list[int] | None = None
        self.truth = None  # core.judges.PanelTruth of the image on screen (a demo strip), for judging
        self.image_key: str | None = None  # the session image on screen (storage's img_NNN)
        # asks how many panels an opened image has: (image, current count) -> (n, widths) or None
        # (cancelled); the main window sets the dialog, None keeps the current count
        self.ask_panels = None
        self._reader = None  # the reopened session's reader (its other images are read from it)
        self._saved_view: dict | None = None  # the selection as the session file last held it
        state.session.shown_runs_changed.connect(self._follow_run_image)
        # a model loaded while a run or discovery goes on waits for it to end: swapping the grid's
        # shape, K and the image's grid under a streaming run would mix two models on screen
        self._pending_model = None
        state.status.busy_changed.connect(self._take_pending_model)

    # ---- model ---------------------------------------------------------------------------------
    def load_model(
        self,
        spec: str,
        device: str = "auto",
        dtype: str = "auto",
        device_map: str | None = None,
        trust_remote_code: bool = False,
        input_policy: str | None = None,
    ) -> Worker:
        """Load a model on a worker; a bad spec posts a clear error and keeps the app usable.

        ``trust_remote_code`` stays off unless the user passed ``--trust-remote-code``;
        ``input_policy`` is ``--input-policy`` (None: the family's default).
        """
        loading = [True]  # until its own end handler runs (the pool forgets it only on ``done``)

        def stream(cancel: threading.Event):
            from gaze_explorer.inference.loading import load_model

            try:
                yield load_model(
                    spec,
                    device=device,
                    dtype=dtype,
                    device_map=device_map,
                    trust_remote_code=trust_remote_code,
                    input_policy=input_policy,
                )
            except GazeExplorerError:
                raise
            except (
                OSError,
                ValueError,
                KeyError,
                RuntimeError,
                AssertionError,
            ) as err:  # torch asserts on CUDA
                raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err

        def ended() -> None:
            loading[0] = False

        worker = Worker("load-model", stream, classify=lambda _item: "finished")
        worker.finished.connect(ended)
        worker.finished.connect(self._use_when_idle)
        worker.errored.connect(ended)
        worker.errored.connect(lambda *_: self._on_model_failed(spec))
        self.pool.start(worker, activity=lambda: f"loading {spec}…" if loading[0] else None)
        # a run streaming meanwhile is still said first ("generating '…' · loading …")
        self.state.status.update(activity=self.ready_text())
        return worker

    def _use_when_idle(self, loaded: object) -> None:
        """Use a freshly loaded model now, or, while a run or discovery goes on (it keeps the model
        it started with), once it has ended."""
        if not self.state.status.busy:
            self.use_model(loaded)
            return
        self._pending_model = loaded
        name = getattr(loaded, "model_id", "the model")
        self.state.status.post(f"{name} is loaded; it takes over when the current run ends")

    def _take_pending_model(self, busy: bool) -> None:
        if not busy and self._pending_model is not None:
            loaded, self._pending_model = self._pending_model, None
            self.use_model(loaded)

    def _on_model_failed(self, spec: str) -> None:
        """A failed load leaves the model that was loaded (if any) in place: say which, and what
        is still running (a run streaming meanwhile goes on with the loaded model)."""
        if self.loaded is None:
            self.state.status.update(activity="no model loaded")
        else:
            self.state.status.update(activity=f"could not load {spec}; {self.ready_text()}")

    def use_model(self, loaded: object) -> None:
        """Make ``loaded`` (an ``inference.loading.LoadedModel``) the app's model: the status bar,
        the grid's shape, K and the control pool follow it, and the image on screen is re-gridded."""
        self.loaded = loaded
        info = loaded.describe() if hasattr(loaded, "describe") else {}
        memory = 0.0
        with contextlib.suppress(AttributeError):
            memory = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2**20
        self.state.status.update(
            model=str(info.get("model_id", getattr(loaded, "model_id", "model"))),
            device=str(getattr(loaded, "device", "-")),
            dtype=str(getattr(loaded, "dtype", "-")).replace("torch.", ""),
            memory_mb=memory,
            activity=self.ready_text(),
        )
        self.state.heads.set_shape(loaded.n_layers, loaded.n_heads, loaded.adapter.attention_layers)
        # K and the control pool as the CLI's evaluation defaults them: 10 % of the heads on the demo
        # model, the paper's 100 otherwise (at most half the heads)
        from gaze_explorer.inference.evaluation import default_top_k

        demo = getattr(loaded, "model_id", "") == "demo"
        self.state.heads.set_kind(
            self.state.heads.kind,
            k=default_top_k(loaded.n_layers, loaded.n_heads, demo),
            pool=default_control_pool(demo),
        )
        if self.pil_image is not None:
            self._rebuild_grid()
        self.model_loaded.emit()

    def require_model(self):
        """The loaded model; raises (with the message the user sees) when none is loaded."""
        if self.loaded is None:
            raise GazeExplorerError("no model is loaded (Model → Load model…)")
        return self.loaded

    def ready_text(self) -> str:
        """The status bar's activity: what runs (a generation with its current label, a discovery,
        a model load), else ready, and on which session file (the next run's)."""
        running = self.pool.activity()
        if running:
            return running
        path = self.recorder.current_path
        return f"ready · session {Path(path).name}" if path else "ready"

    # ---- image ---------------------------------------------------------------------------------
    def set_image(
        self, image: Image.Image, n_panels: int, name: str, widths: list[int] | None = None, truth=None
    ) -> None:
        """Show a new image with ``n_panels`` side-by-side panels (0 = none). Starts a new session.
        ``truth`` (``core.judges.PanelTruth``) is what is known of its panels, to judge answers by."""
        self.pil_image = image.convert("RGB")
        self.truth = truth
        self.panel_widths = widths
        self._reset_box_target()
        self.image_key = None  # known once a run is made on it (the session file names it)
        # the session goes on (it holds runs on several images): no run of another image is shown
        self.state.session.show_runs(None)
        self.state.step.set_n_steps(0)
        self._rebuild_grid(n_panels, name)

    def open_image(self, path: str, n_panels: int | None = None) -> bool:
        """Load an image file; an unreadable file posts a clear error and changes nothing."""
        from gaze_explorer.core.strips import load_image

        try:
            image = load_image(path)
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)
            return False
        widths = None
        if n_panels is None and self.ask_panels is not None:  # the user confirms the panels
            answer = self.ask_panels(image, self.state.session.n_panels)
            if answer is None:
                return False
            n_panels, widths = answer
        panels = self.state.session.n_panels if n_panels is None else n_panels
        self.set_image(image, panels, Path(path).name, widths)
        return True

    def set_panel_count(self, n_panels: int) -> None:
        if self.pil_image is not None:
            self.panel_widths = None
            self._rebuild_grid(n_panels, self.state.session.image_name)

    def _reset_box_target(self) -> None:
        target = self.state.target
        if target.kind == "box" or target.box is not None:
            target.box = None
            target.set_panel(0)

    def _rebuild_grid(self, n_panels: int | None = None, name: str | None = None) -> None:
        session = self.state.session
        n_panels = session.n_panels if n_panels is None else n_panels
        name = session.image_name if name is None else name
        grid, regions = None, []
        if self.loaded is not None:
            prepared = self.loaded.adapter.build_inputs(self.pil_image, ["image"])
            grid = prepared.grids[0]
            # a policy that crops (LLaVA's centre crop) hides part of the image: say so, as the CLI does
            coverage = float(prepared.info["vision"].get("coverage", 1.0))
            warning = coverage_warning(coverage, self.loaded.adapter.input_policy, self.loaded.family)
            if warning:
                self.state.status.post(f"warning: {warning}")  # the status bar, not a modal box
            if n_panels:
                try:
                    regions = panel_regions(grid, n_panels, self.panel_widths)
                except GazeExplorerError as err:
                    self.state.status.post(str(err), error=True)
                    n_panels = 0
        session.set_image(np.asarray(self.pil_image), grid, regions, n_panels, name=name)

    # ---- session file --------------------------------------------------------------------------
    def open_session(self, path: str):
        """Reopen a session file: its image becomes the one the next run uses, new runs are added
        to the same file, and the status bar keeps naming the model that is loaded (if any).
        Returns the reader; raises GazeExplorerError for a file that cannot be opened."""
        from gaze_explorer.qt.session_io import open_session, restore_view

        self.save_view()
        self.image_key = None
        reader = open_session(path, self.state)
        self._reader = reader
        heads = self.state.heads
        if (
            heads.attention_layers is None  # a file from before the entry: the loaded model knows
            and self.loaded is not None
            and (heads.n_layers, heads.n_heads) == (self.loaded.n_layers, self.loaded.n_heads)
        ):
            heads.set_shape(heads.n_layers, heads.n_heads, self.loaded.adapter.attention_layers)
        self.recorder.close()
        self.recorder.adopted = Path(path)
        self._reset_box_target()
        self._follow_run_image()  # the shown run's image (a session may hold several)
        self.pil_image = Image.fromarray(np.asarray(self.state.session.image)).convert("RGB")
        panels = [r for r in self.state.session.regions if r.kind == "panel" and r.box is not None]
        self.panel_widths = [round(r.box[2] - r.box[0]) for r in panels] or None
        if self.loaded is not None:
            session = self.state.session
            shown, compare, step = session.shown, session.compare, self.state.step.step
            selected, compared = list(session.selected), list(session.compared)
            self._rebuild_grid(len(panels), session.image_name)  # the loaded model's grid
            restore_view(self.state, shown, compare, step, selected)
            session.set_compared(compared)
            self.state.status.update(activity=f"{self.ready_text()} (opened)")
        self._saved_view = self._view()
        missing = reader.missing()
        if missing:
            # a version-1 file says its schema; an upgraded or early version-2 file has the current
            # schema but still lacks what was never recorded in it
            schema = f" (session schema {reader.schema_version})" if reader.schema_version < 2 else ""
            self.state.status.post(
                f"{Path(path).name} was written by an older gaze-explorer{schema}; it does not hold: "
                + "; ".join(missing)
            )
        return reader

    def _follow_run_image(self) -> None:
        """Showing a run made on another image of the session shows that image (and makes it the
        next run's)."""
        run = self.state.session.shown_run
        key = None if run is None else run.params.get("image")
        if key is None or key == self.image_key:
            return
        from gaze_explorer.qt.session_io import run_image

        found = run_image(self.recorder, self._reader, key)
        if found is None:
            return
        image, grid, regions, name = found
        self.image_key = key
        self.pil_image = Image.fromarray(np.asarray(image)).convert("RGB")
        panels = [r for r in regions if r.kind == "panel"]
        self.panel_widths = [round(r.box[2] - r.box[0]) for r in panels if r.box is not None] or None
        self._reset_box_target()
        shown_name = name or self.state.session.image_name or key  # the first image: the session's name
        self.state.session.set_image(np.asarray(image), grid, panels, len(panels), name=shown_name)

    def _view(self) -> dict | None:
        session = self.state.session
        ids = [None if i is None else session.runs[i].run_id for i in (session.shown, session.compare)]
        inspected = inspected_ui(self.state)  # the head inspector's head: kept with the session too
        discovery = discovery_ui(self.state)  # the discovery on screen: kept too
        if ids[0] is None and inspected is None and discovery is None:
            return None
        return {
            "shown": ids[0],  # shown and compare are kept for older readers: "selected" ends with them
            "compare": ids[1],
            "selected": selected_ui(self.state),  # every selected run, in pick order
            "comparison": comparison_ui(self.state),  # what the Comparison dock shows
            "step": int(self.state.step.step),
            "inspected": inspected,
            "discovery": discovery,
            "heads": heads_ui(self.state),  # the head-set control (a baseline shown keeps it)
        }

    def save_view(self) -> None:
        """Save the selection on screen (selected runs, step, head set...) in the session file, when
        it changed since the file was opened (only looking at a file does not write to it)."""
        view = self._view()
        if view is None or view == self._saved_view:
            return
        try:
            self.recorder.save_ui(view)
            self._saved_view = view
        except GazeExplorerError as err:
            self.state.status.post(f"the selection could not be saved in the session: {err}", error=True)

    def close(self) -> None:
        """Save the selection and close the session file (the window is closing)."""
        self.save_view()
        self.recorder.close()

"""The app's controller: the one object the main window talks to. It turns user requests (load a
model or image, open a session, generate, steer, stop, switch live, compare, discover) into worker
runs, and worker events into model updates; views never see the model, the live target or the
session file it holds.

It is a thin facade over its parts in ``qt/control/``, one responsibility each:
``WorkerPool`` (the running workers), ``SessionControl`` (the loaded model, the image on screen,
the session file and the status bar's account of them), ``RunControl`` (generation, stop, live
switches, schedules, "Compare conditions", renaming) and ``DiscoveryControl`` (discovery and its
stored result). Its signals are the parts' own.
"""

from __future__ import annotations

from PIL import Image
from PySide6 import QtCore

from gaze_explorer.core.paths import demo_comics_dir, resources_dir
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.control.discovery import DiscoveryControl
from gaze_explorer.qt.control.runs import RunControl
from gaze_explorer.qt.control.session import SessionControl
from gaze_explorer.qt.control.worker_pool import WorkerPool
from gaze_explorer.qt.workers import Worker

# the bundled resources, for app.py and the tests (core.paths is their one home)
RESOURCES = resources_dir()
DEMO_COMICS = demo_comics_dir()


class AppController(QtCore.QObject):
    """Runs the app's long work on workers and keeps the models up to date.

    Signals (each a part's): ``model_loaded``; ``run_finished(int)`` (the run's index in the
    session model); ``condition_started(list)`` and ``conditions_compared(list)`` (the runs of
    "Compare conditions" so far, and when the last one ends); ``discovery_finished``.
    """

    def __init__(self, state: AppState, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.pool = WorkerPool(state.status)
        self.session_control = SessionControl(state, self.pool, self)
        self.run_control = RunControl(state, self.pool, self.session_control, self)
        self.discovery_control = DiscoveryControl(state, self.pool, self.session_control, self)
        self.recorder = self.session_control.recorder
        self.model_loaded = self.session_control.model_loaded
        self.run_finished = self.run_control.run_finished
        self.conditions_compared = self.run_control.conditions_compared
        self.condition_started = self.run_control.condition_started
        self.discovery_finished = self.discovery_control.discovery_finished

    # ---- what the window and the tests read ----------------------------------------------------
    @property
    def workers(self) -> list[Worker]:
        return self.pool.workers

    @property
    def busy(self) -> bool:
        return self.pool.busy

    @property
    def loaded(self):
        """The loaded ``inference.loading.LoadedModel`` (None before the first load)."""
        return self.session_control.loaded

    @property
    def pil_image(self) -> Image.Image | None:
        return self.session_control.pil_image

    @property
    def truth(self):
        """``core.judges.PanelTruth`` of the image on screen (a demo strip), or None."""
        return self.session_control.truth

    @property
    def ask_panels(self):
        """(image, current count) -> (n, widths) or None: asks how many panels an opened image has."""
        return self.session_control.ask_panels

    @ask_panels.setter
    def ask_panels(self, ask) -> None:
        self.session_control.ask_panels = ask

    # ---- model, image, session -----------------------------------------------------------------
    def load_model(self, spec: str, **options) -> Worker:
        """Load a model on a worker (``SessionControl.load_model``: device, dtype, device_map,
        trust_remote_code, input_policy)."""
        return self.session_control.load_model(spec, **options)

    def _on_model_loaded(self, loaded: object) -> None:
        """Use a model loaded elsewhere (the tests and scripts hand theirs in here)."""
        self.session_control.use_model(loaded)

    def set_image(
        self, image: Image.Image, n_panels: int, name: str, widths: list[int] | None = None, truth=None
    ) -> None:
        self.session_control.set_image(image, n_panels, name, widths, truth)

    def open_image(self, path: str, n_panels: int | None = None) -> bool:
        return self.session_control.open_image(path, n_panels)

    def set_panel_count(self, n_panels: int) -> None:
        self.session_control.set_panel_count(n_panels)

    def open_session(self, path: str):
        return self.session_control.open_session(path)

    def save_view(self) -> None:
        self.session_control.save_view()

    # ---- runs and discovery --------------------------------------------------------------------
    def generate(self, prompt: str, options, plan=None, capture=None) -> Worker | None:
        return self.run_control.generate(prompt, options, plan=plan, capture=capture)

    def compare_conditions(self, prompt: str, options, plan) -> bool:
        return self.run_control.compare_conditions(prompt, options, plan)

    def rename_run(self, index: int, name: str) -> None:
        self.run_control.rename_run(index, name)

    def stop(self) -> None:
        self.run_control.stop()

    def discover(self, source: str, folder: str = "") -> Worker | None:
        return self.discovery_control.discover(source, folder)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel and join every worker; save the selection and close the session file."""
        self.pool.shutdown(timeout)
        self.session_control.close()

"""Discovery in the app: score every head on the demo comics, a folder in the authors' layout or
the strip on screen, on a worker; then store the result where the app and the session keep it (the
head grid's gaze scores, the discovery model, and the session file with its parameters).
torch and transformers are imported lazily, on the worker.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.paths import demo_comics_dir
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.control.session import SessionControl
from gaze_explorer.qt.control.worker_pool import WorkerPool
from gaze_explorer.qt.workers import Worker


class DiscoveryControl(QtCore.QObject):
    """Runs discovery on a worker and stores its result."""

    discovery_finished = QtCore.Signal()

    def __init__(
        self,
        state: AppState,
        pool: WorkerPool,
        session: SessionControl,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.pool = pool
        self.session = session
        self._params: dict = {}  # the running discovery's parameters, saved with its result

    def discover(self, source: str, folder: str = "") -> Worker | None:
        """Run discovery on the demo comics, a folder in the authors' layout, or the current strip."""
        from gaze_explorer.core.strips import Strip, strip_folder_names

        session = self.state.session
        try:
            self.pool.require_idle()
            loaded = self.session.require_model()
            if source == "current":
                regions = [r for r in session.regions if r.kind == "panel"]
                if self.session.pil_image is None or len(regions) < 2:
                    raise GazeExplorerError(
                        "discovery on the current image needs a strip of at least 2 panels"
                    )
                widths = [int(r.box[2] - r.box[0]) for r in regions]
                strips = [Strip(self.session.pil_image, widths, name=session.image_name)]
                total = 1
            else:
                root = demo_comics_dir() if source == "demo" else Path(folder)
                n_panels = session.n_panels or 6
                total = len(strip_folder_names(root, n_panels))
                strips = None
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)
            return None

        def stream(cancel: threading.Event):
            from gaze_explorer.core.strips import iter_strip_folders
            from gaze_explorer.inference.discovery import discover

            items = strips if strips is not None else iter_strip_folders(root, n_panels)
            yield from discover(loaded, items, cancel=cancel)

        def classify(item: object) -> str:  # on the worker thread, once discovery is imported
            from gaze_explorer.inference.discovery import DiscoveryResult

            return "finished" if isinstance(item, DiscoveryResult) else "progress"

        self._params = {
            "source": source,
            "folder": "" if source != "folder" else str(folder),
            "n_strips": int(total),
            "n_panels": int(session.n_panels if source == "current" else n_panels),
            "image": session.image_name if source == "current" else "",
            "model_id": str(getattr(loaded, "model_id", "")),
            "dtype": str(getattr(loaded, "dtype", "")).replace("torch.", ""),
        }
        status = self.state.status
        worker = Worker("discover", stream, classify=classify)
        status.set_progress("discovery", 0, total)
        running = [True]  # until its own end handler runs (the pool forgets it only on ``done``)

        def ended() -> None:
            running[0] = False

        worker.progress.connect(lambda p: status.set_progress("discovery", getattr(p, "done", 0), total))
        worker.finished.connect(ended)
        worker.finished.connect(self._on_discovered)
        worker.errored.connect(ended)
        worker.errored.connect(self._on_failed)
        status.set_busy(True)
        what = f"discovering gaze heads on {total} strip(s)"
        self.pool.start(worker, activity=lambda: what if running[0] else None)
        status.update(activity=self.session.ready_text())
        return worker

    def _on_failed(self) -> None:
        self.state.status.set_progress("discovery", 0, 0)
        self.state.status.update(activity=self.session.ready_text())

    def _on_discovered(self, result) -> None:
        state = self.state
        state.status.set_progress("discovery", 0, 0)
        if result is None or not hasattr(result, "scores"):
            state.status.update(activity=self.session.ready_text())
            state.status.post("discovery cancelled; the grid is unchanged")
            return
        image_mass = getattr(result, "image_mass", None)
        image_maps = getattr(result, "image_maps", None)
        state.heads.set_gaze_scores(np.asarray(result.scores), image_mass, image_maps)
        matrices = getattr(result, "matrices", None)  # [layer, head, N, N]
        state.discovery.set_result(result.scores, matrices, result.n_strips, image_mass, image_maps)
        state.heads.set_kind(state.heads.kind if state.heads.kind != "file" else "top")
        params = dict(self._params)
        params["n_strips"] = int(result.n_strips)
        from gaze_explorer.inference.discovery import PAPER_PROMPT, discovery_input_params

        params["prompt"] = PAPER_PROMPT  # the template every discovery in the app asks
        params.update(discovery_input_params(result))  # the input policy, the smallest coverage
        params["criteria"] = ["gaze"] + (["image", "localization"] if image_maps is not None else [])
        session = self.session
        try:
            if session.pil_image is not None and state.session.grid is not None:
                session.recorder.write_discovery(
                    result,
                    session.pil_image,
                    state.session.grid,
                    state.session.regions,
                    session.loaded,
                    source=str(params.get("source", "")),
                    params=params,
                )
            else:
                state.status.post("discovery done; open an image to save it in a session")
        except GazeExplorerError as err:
            state.status.post(f"the discovery is shown but could not be saved: {err}", error=True)
        state.grid_score_mode.set_mode("gaze")
        state.status.update(activity=session.ready_text())  # names the session file, if it was just made
        state.status.post(f"discovery done on {result.n_strips} strip(s)")
        self.discovery_finished.emit()

"""The app's controller: turns user requests (load a model or image, generate, steer, stop, switch
live, discover) into worker runs, and worker events into model updates.

It owns the loaded model, the live target and the session file being written; views never see
any of them. A streaming run's attention rows live in the session file, not in memory: only the
few steps the writer has not flushed yet are held (see ``session_io.StepWindow``).

Live switches: in a panel or box run, and in a scheduled run too, clicking a panel or pressing 1-9
while tokens stream switches the target at the next token. In a scheduled run the live target
holds until the schedule's next switch point (``core.steering.LiveSchedule``). Either way the
switch is recorded with source "live". torch, transformers and h5py are imported lazily, inside the actions that need them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.core.errors import GazeExplorerError, ModelLoadError, PromptError
from gaze_explorer.core.heads import default_control_pool
from gaze_explorer.core.paths import demo_comics_dir, resources_dir
from gaze_explorer.core.regions import coverage_warning, panel_regions
from gaze_explorer.core.run_label import display_name, run_label
from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.steering import LiveSchedule, LiveTarget, Schedule, check_steering, check_targets
from gaze_explorer.qt.session_io import SessionRecorder
from gaze_explorer.qt.workers import Worker

RESOURCES = resources_dir()
DEMO_COMICS = demo_comics_dir()


class AppController(QtCore.QObject):
    """Runs the app's long work on workers and keeps the models up to date."""

    model_loaded = QtCore.Signal()
    run_finished = QtCore.Signal(int)  # index of the run in the session model
    conditions_compared = QtCore.Signal(list)  # the runs of "Compare conditions", in order
    condition_started = QtCore.Signal(list)  # the same, so far: each time another condition starts
    discovery_finished = QtCore.Signal()

    def __init__(self, state: AppState, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.loaded = None  # inference.loading.LoadedModel
        self.pil_image: Image.Image | None = None
        self.panel_widths: list[int] | None = None
        self.truth = None  # core.judges.PanelTruth of the image on screen (a demo strip), for judging
        self._comparing: dict | None = None  # "Compare conditions" in progress: plans left, runs made
        self.workers: list[Worker] = []
        self.live: LiveTarget | LiveSchedule | None = None
        self.recorder = SessionRecorder(state)
        self._run_index: int | None = None
        self.panel_matrices: np.ndarray | None = None  # [layer, head, N, N] from the last discovery
        self._handles: dict = {}  # run index -> session_io.RunHandle
        self._saved_view: dict | None = None  # the selection as the session file last held it
        self._image_key: str | None = None  # the session image on screen (storage's img_NNN)
        # asks how many panels an opened image has: (image, current count) -> (n, widths) or None
        # (cancelled); the main window sets the dialog, None keeps the current count
        self.ask_panels = None
        self._reader = None  # the reopened session's reader (its other images are read from it)
        state.session.shown_runs_changed.connect(self._follow_run_image)
        self._t0 = 0.0
        # Token events land at model speed (hundreds a second on the demo); the run's data is
        # appended at once, but the views hear about it at most ~30 times a second.
        self._pending_runs: set[int] = set()
        self._notify_timer = QtCore.QTimer(self, singleShot=True, interval=33)
        self._notify_timer.timeout.connect(self._flush_token_notices)
        state.target.target_changed.connect(self._on_target_changed)

    # ---- helpers -------------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.state.status.post(message, error=True)

    def _start(self, worker: Worker) -> Worker:
        self.workers.append(worker)
        worker.done.connect(lambda: self._forget(worker))
        worker.errored.connect(lambda msg, _user: self._fail(msg))
        worker.start()
        return worker

    def _forget(self, worker: Worker) -> None:
        worker.wait(5)
        if worker in self.workers:
            self.workers.remove(worker)
        if not any(w.name.startswith(("generate", "discover")) for w in self.workers):
            self.state.status.set_busy(False)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel and join every worker; close the session file."""
        for w in list(self.workers):
            w.cancel()
        for w in list(self.workers):
            w.wait(timeout)
        self.save_view()
        self.recorder.close()

    @property
    def busy(self) -> bool:
        return any(w.is_running() for w in self.workers)

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
        self.state.status.update(activity=f"loading {spec}…")

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

        worker = Worker("load-model", stream, classify=lambda _item: "finished")
        worker.finished.connect(self._on_model_loaded)
        worker.errored.connect(lambda *_: self._on_model_failed(spec))
        return self._start(worker)

    def _on_model_failed(self, spec: str) -> None:
        """A failed load leaves the model that was loaded (if any) in place: say which."""
        if self.loaded is None:
            self.state.status.update(activity="no model loaded")
        else:
            self.state.status.update(activity=f"could not load {spec}; {self._ready_text()}")

    def _ready_text(self) -> str:
        """The idle status: ready, and on which session file (the next run's)."""
        path = self.recorder.current_path
        return f"ready · session {Path(path).name}" if path else "ready"

    def _on_model_loaded(self, loaded: object) -> None:
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
            activity="ready",
        )
        self.state.status.update(activity=self._ready_text())
        self.state.heads.set_shape(loaded.n_layers, loaded.n_heads)
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
        self._image_key = None  # known once a run is made on it (the session file names it)
        # the session goes on (it holds runs on several images): no run of another image is shown
        self.state.session.show_runs(None)
        self.state.step.set_n_steps(0)
        self._rebuild_grid(n_panels, name)

    def _reset_box_target(self) -> None:
        target = self.state.target
        if target.kind == "box" or target.box is not None:
            target.box = None
            target.set_panel(0)

    def open_session(self, path: str):
        """Reopen a session file: its image becomes the one the next run uses, new runs are added
        to the same file, and the status bar keeps naming the model that is loaded (if any).
        Returns the reader; raises GazeExplorerError for a file that cannot be opened."""
        from gaze_explorer.qt.session_io import open_session, restore_view

        self.save_view()
        self._image_key = None
        reader = open_session(path, self.state)
        self._reader = reader
        self.recorder.close()
        self.recorder.adopted = Path(path)
        self._reset_box_target()
        self._follow_run_image()  # the shown run's image (a session may hold several)
        self.pil_image = Image.fromarray(np.asarray(self.state.session.image)).convert("RGB")
        panels = [r for r in self.state.session.regions if r.kind == "panel" and r.box is not None]
        self.panel_widths = [round(r.box[2] - r.box[0]) for r in panels] or None
        if self.loaded is not None:
            shown, compare, step = self.state.session.shown, self.state.session.compare, self.state.step.step
            self._rebuild_grid(len(panels), self.state.session.image_name)  # the loaded model's grid
            restore_view(self.state, shown, compare, step)
            self.state.status.update(activity=f"{self._ready_text()} (opened)")
        self._saved_view = self._view()
        missing = reader.missing()
        if missing:
            self.state.status.post(
                f"{Path(path).name} was saved by an older gaze-explorer (session schema "
                f"{reader.schema_version}); it does not hold: " + "; ".join(missing)
            )
        return reader

    def _follow_run_image(self) -> None:
        """Showing a run made on another image of the session shows that image (and makes it the
        next run's)."""
        run = self.state.session.shown_run
        key = None if run is None else run.params.get("image")
        if key is None or key == self._image_key:
            return
        from gaze_explorer.qt.session_io import run_image

        found = run_image(self.recorder, self._reader, key)
        if found is None:
            return
        image, grid, regions, name = found
        self._image_key = key
        self.pil_image = Image.fromarray(np.asarray(image)).convert("RGB")
        panels = [r for r in regions if r.kind == "panel"]
        self.panel_widths = [round(r.box[2] - r.box[0]) for r in panels if r.box is not None] or None
        self._reset_box_target()
        shown_name = name or self.state.session.image_name or key  # the first image: the session's name
        self.state.session.set_image(np.asarray(image), grid, panels, len(panels), name=shown_name)

    def rename_run(self, index: int, name: str) -> None:
        """Give run ``index`` the user's name (empty: its derived label again), saved in the file."""
        run = self.state.session.runs[index]
        run.params["user_name"] = name.strip()
        run.name = self._run_name(run)
        if run.run_id is not None:
            try:
                self.recorder.rename_run(run.run_id, name.strip())
            except GazeExplorerError as err:
                self._fail(f"the new name is shown but not saved: {err}")
        self.state.session.notify_run(index)

    def _view(self) -> dict | None:
        session = self.state.session
        ids = [None if i is None else session.runs[i].run_id for i in (session.shown, session.compare)]
        if ids[0] is None:
            return None
        return {"shown": ids[0], "compare": ids[1], "step": int(self.state.step.step)}

    def save_view(self) -> None:
        """Save the selection on screen (shown and compared runs, step) in the session file, when
        it changed since the file was opened (only looking at a file does not write to it)."""
        view = self._view()
        if view is None or view == self._saved_view:
            return
        try:
            self.recorder.save_ui(view)
            self._saved_view = view
        except GazeExplorerError as err:
            self._fail(f"the selection could not be saved in the session: {err}")

    @staticmethod
    def _run_name(run: RunData) -> str:
        p = run.params
        label = run_label(
            p.get("plan"), p.get("schedule"), p.get("target"), run.switches, [r.name for r in run.regions]
        )
        return display_name(str(p.get("user_name", "")), label)

    def open_image(self, path: str, n_panels: int | None = None) -> bool:
        """Load an image file; an unreadable file posts a clear error and changes nothing."""
        from gaze_explorer.core.strips import load_image

        try:
            image = load_image(path)
        except GazeExplorerError as err:
            self._fail(str(err))
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
                    self._fail(str(err))
                    n_panels = 0
        session.set_image(np.asarray(self.pil_image), grid, regions, n_panels, name=name)

    # ---- generation ----------------------------------------------------------------------------
    def generate(self, prompt: str, options, plan=None, capture=None) -> Worker | None:
        """Start a baseline (``plan`` None) or steered run; bad input posts a message instead.

        ``capture`` is a ``CaptureSpec`` (default: every decode row and the prompt's last row).
        """
        state = self.state
        if self.busy:
            self._fail("a run is already in progress; press Stop first")
            return None
        if self.loaded is None:
            self._fail("no model is loaded (Model → Load model…)")
            return None
        if self.pil_image is None or state.session.grid is None:
            self._fail("open an image first")
            return None
        try:
            if not prompt:
                raise PromptError("the prompt is empty; type a question about the image")
            grid = state.session.grid
            panels = list(state.session.regions)
            if plan is None:
                regions, source = panels, None
            else:
                if not plan.heads.heads and state.heads.problem:
                    raise GazeExplorerError(state.heads.problem)  # why the head set could not be chosen
                regions, target = state.target.resolve(grid, panels)
                source = LiveSchedule(target) if isinstance(target, Schedule) else LiveTarget(target)
                loaded = self.loaded
                check_steering(
                    plan,
                    source,
                    len(regions),
                    loaded.n_layers,
                    loaded.n_heads,
                    loaded.adapter.attention_layers,
                )
        except GazeExplorerError as err:
            self._fail(str(err))
            return None
        chosen = state.heads.choice  # how the active heads were chosen (criterion, K, seed, pool)
        if plan is not None and plan.choice is None and chosen is not None and chosen.heads == plan.heads:
            plan = dataclasses.replace(plan, choice=chosen)
        run = RunData(
            "",
            params={
                "prompt": prompt,
                "options": options.to_dict(),
                "plan": None if plan is None else plan.to_dict(),
                "target": None if source is None or isinstance(source, LiveSchedule) else source.get(),
            },
            regions=regions,
        )  # rows_at is set by the recorder: a small window of unflushed steps, then the session file
        if isinstance(source, LiveSchedule):
            run.scheduled = list(
                range(source.switch_every, source.switch_every * len(source.targets), source.switch_every)
            )
            run.params["schedule"] = source.to_dict()
        run.name = self._run_name(run)
        loaded, image = self.loaded, self.pil_image
        cancel = threading.Event()
        from gaze_explorer.inference.generation import generate_stream

        try:  # validates the input now, on this thread; the tokens come on the worker
            stream = generate_stream(
                loaded,
                image,
                prompt,
                regions=regions,
                plan=plan,
                target=source,
                options=options,
                capture=capture,
                cancel=cancel,
            )
        except GazeExplorerError as err:
            self._fail(str(err))
            return None
        self.live = source
        run_handle = self.recorder.begin(
            run, image, grid, regions, loaded, source, plan, options, capture=capture
        )
        self._image_key = run.params.get("image")  # the image on screen, as the session file names it
        index = state.session.add_run(run)  # after begin: the session file exists and is named
        self._handles[index] = run_handle
        self._run_index = index
        state.step.set_n_steps(0)

        worker = Worker(
            "generate",
            lambda _cancel: stream,
            on_item=lambda ev: self.recorder.write(run_handle, ev),
            cancel_event=cancel,
        )
        worker.progress.connect(lambda ev: self._on_prefill(index, ev))
        worker.token.connect(lambda ev: self._on_token(index, ev))
        worker.finished.connect(lambda ev: self._on_finished(index, ev))
        worker.errored.connect(lambda msg, _u: self._on_failed(index, msg))
        state.status.set_busy(True)
        state.status.update(activity=f"generating '{run.name}'")
        self._t0 = time.perf_counter()
        return self._start(worker)

    def _on_prefill(self, index: int, event: object) -> None:
        run = self.state.session.runs[index]
        run.prompt_len = int(event.prompt_len)  # the generate worker's only progress item: the PrefillEvent
        run.prompt_tokens = list(event.token_strings)
        self.state.session.notify_run(index)

    def _on_token(self, index: int, event) -> None:
        run = self.state.session.runs[index]
        run.tokens.append(event.text)
        run.targets.append(event.target)
        if event.switch is not None:
            run.switches.append(event.switch)
            run.name = self._run_name(run)  # the label follows the switches as they happen
        self._pending_runs.add(index)
        if not self._notify_timer.isActive():
            self._notify_timer.start()

    def _flush_token_notices(self) -> None:
        """Tell the views about the tokens appended since the last notice (one update per run)."""
        self._notify_timer.stop()
        pending, self._pending_runs = self._pending_runs, set()
        for index in sorted(pending):
            run = self.state.session.runs[index]
            elapsed = time.perf_counter() - self._t0
            self.state.status.update(tokens_per_s=run.n_steps / elapsed if elapsed > 0 else 0.0)
            self.state.session.notify_run(index)
            if self.state.session.shown == index:
                step = self.state.step
                # follow the stream only from its last step, so scrubbing back while it streams stays put
                step.set_n_steps(run.n_steps, follow=step.step >= step.n_steps - 1)

    def _on_finished(self, index: int, event) -> None:
        self._flush_token_notices()
        run = self.state.session.runs[index]
        run.status = str(getattr(event, "status", "finished"))
        switches = list(getattr(event, "switches", []) or [])
        if switches:
            run.switches = switches
        run.name = self._run_name(run)
        handle = self._handles.pop(index, None)
        if handle is not None:
            try:
                self.recorder.attach_reader(handle)
            except GazeExplorerError as err:
                self._fail(f"the run is shown from memory; its session file could not be read: {err}")
        self.live = None
        self.state.status.update(activity=self._ready_text())
        self.state.session.notify_run(index)
        if run.status == "cancelled":
            self.state.status.post(f"stopped: kept {run.n_steps} token(s) of '{run.name}', marked cancelled")
        self.run_finished.emit(index)

    def _on_failed(self, index: int, message: str) -> None:
        self._flush_token_notices()
        run = self.state.session.runs[index]
        run.status = "failed"
        handle = self._handles.pop(index, None)
        if handle is not None:
            self.recorder.end_handle(handle, "failed", message)
        self.live = None
        self.state.status.update(activity=self._ready_text())
        self.state.session.notify_run(index)
        self.run_finished.emit(index)

    def stop(self) -> None:
        self._comparing = None  # a stopped comparison runs no further condition
        for w in self.workers:
            if w.name in ("generate", "discover"):
                w.cancel()

    # ---- compare conditions ----------------------------------------------------------------------
    def compare_conditions(self, prompt: str, options, plan) -> bool:
        """Run the paper's four conditions one after the other on the current prompt and target:
        baseline, top-K gaze, random control and all heads (K, seed and pool of the head set
        chooser; ``plan`` gives mode, strength and decode-only). Emits ``conditions_compared`` with
        the runs' indices when the last one ends. False (with a message) when it cannot start."""
        heads = self.state.heads
        if self.busy:
            self._fail("a run is already in progress; press Stop first")
            return False
        if heads.gaze_scores is None:
            self._fail("Compare conditions needs gaze scores (top-K, random control): run discovery first")
            return False
        from gaze_explorer.inference.evaluation import HeadConditions

        try:
            sets = HeadConditions.from_scores(heads.gaze_scores, heads.k, seed=heads.seed, pool=heads.pool)
        except GazeExplorerError as err:
            self._fail(str(err))
            return False
        plans = [None] + [
            dataclasses.replace(plan, heads=sets.choices[c].heads, choice=sets.choices[c])
            for c in ("gaze", "random", "all")
        ]
        self._comparing = {"prompt": prompt, "options": options, "plans": plans, "runs": []}
        return self._next_condition()

    def _next_condition(self) -> bool:
        job = self._comparing
        if job is None:
            return False
        if not job["plans"]:
            self._comparing = None
            self.conditions_compared.emit(list(job["runs"]))
            return True
        worker = self.generate(job["prompt"], job["options"], plan=job["plans"].pop(0))
        if worker is None:  # refused, with a message
            self._comparing = None
            return False
        index = self._run_index
        job["runs"].append(index)
        self.condition_started.emit(list(job["runs"]))
        # after the controller's own handling of ``done`` (connected first): the worker is gone
        worker.done.connect(lambda: self._condition_done(job, index))
        return True

    def _condition_done(self, job: dict, index: int) -> None:
        if job is not self._comparing:  # stopped
            if job["runs"]:
                self.conditions_compared.emit(list(job["runs"]))
            return
        if self.state.session.runs[index].status != "finished":
            self._comparing = None
            self.state.status.post(f"Compare conditions stopped after {len(job['runs'])} run(s)")
            self.conditions_compared.emit(list(job["runs"]))
            return
        self._next_condition()

    def _on_target_changed(self) -> None:
        """While a run streams, a new panel target switches it live at the next token."""
        target, live = self.state.target, self.live
        if live is None or target.kind != "panel" or self._run_index is None:
            return
        regions = self.state.session.runs[self._run_index].regions
        try:
            check_targets((target.panel,), len(regions))
        except GazeExplorerError as err:
            self._fail(str(err))
            return
        live.set(target.panel)
        until = " until the schedule's next switch" if isinstance(live, LiveSchedule) else ""
        self.state.status.post(f"switching to {regions[target.panel].name} at the next token{until}")

    # ---- discovery -----------------------------------------------------------------------------
    def discover(self, source: str, folder: str = "") -> Worker | None:
        """Run discovery on the demo comics, a folder in the authors' layout, or the current strip."""
        if self.busy:
            self._fail("a run is already in progress; press Stop first")
            return None
        if self.loaded is None:
            self._fail("no model is loaded (Model → Load model…)")
            return None
        from gaze_explorer.core.strips import Strip, strip_folder_names

        try:
            if source == "current":
                regions = [r for r in self.state.session.regions if r.kind == "panel"]
                if self.pil_image is None or len(regions) < 2:
                    raise GazeExplorerError(
                        "discovery on the current image needs a strip of at least 2 panels"
                    )
                widths = [int(r.box[2] - r.box[0]) for r in regions]
                strips = [Strip(self.pil_image, widths, name=self.state.session.image_name)]
                total = 1
            else:
                root = DEMO_COMICS if source == "demo" else Path(folder)
                n_panels = self.state.session.n_panels or 6
                total = len(strip_folder_names(root, n_panels))
                strips = None
        except GazeExplorerError as err:
            self._fail(str(err))
            return None
        loaded = self.loaded

        def stream(cancel: threading.Event):
            from gaze_explorer.core.strips import iter_strip_folders
            from gaze_explorer.inference.discovery import discover

            items = strips if strips is not None else iter_strip_folders(root, n_panels)
            yield from discover(loaded, items, cancel=cancel)

        def classify(item: object) -> str:  # on the worker thread, once discovery is imported
            from gaze_explorer.inference.discovery import DiscoveryResult

            return "finished" if isinstance(item, DiscoveryResult) else "progress"

        self._discovery_params = {
            "source": source,
            "folder": "" if source != "folder" else str(folder),
            "n_strips": int(total),
            "n_panels": int(self.state.session.n_panels if source == "current" else n_panels),
            "image": self.state.session.image_name if source == "current" else "",
            "model_id": str(getattr(loaded, "model_id", "")),
            "dtype": str(getattr(loaded, "dtype", "")).replace("torch.", ""),
        }
        worker = Worker("discover", stream, classify=classify)
        self.state.status.set_progress("discovery", 0, total)
        worker.progress.connect(
            lambda p: self.state.status.set_progress("discovery", getattr(p, "done", 0), total)
        )
        worker.finished.connect(self._on_discovered)
        worker.errored.connect(lambda *_: self.state.status.set_progress("discovery", 0, 0))
        self.state.status.set_busy(True)
        return self._start(worker)

    def _on_discovered(self, result) -> None:
        self.state.status.set_progress("discovery", 0, 0)
        if result is None or not hasattr(result, "scores"):
            self.state.status.post("discovery cancelled; the grid is unchanged")
            return
        self.state.heads.set_gaze_scores(
            np.asarray(result.scores),
            getattr(result, "image_mass", None),
            getattr(result, "image_maps", None),
        )
        self.panel_matrices = getattr(result, "matrices", None)
        self.state.discovery.set_result(
            result.scores,
            self.panel_matrices,
            result.n_strips,
            getattr(result, "image_mass", None),
            getattr(result, "image_maps", None),
        )
        self.state.heads.set_kind(self.state.heads.kind if self.state.heads.kind != "file" else "top")
        params = dict(getattr(self, "_discovery_params", {}) or {})
        params["n_strips"] = int(result.n_strips)
        from gaze_explorer.inference.discovery import PAPER_PROMPT

        params["prompt"] = PAPER_PROMPT  # the template every discovery in the app asks
        params["criteria"] = ["gaze"] + (
            ["image", "localization"] if getattr(result, "image_maps", None) is not None else []
        )
        try:
            if self.pil_image is not None and self.state.session.grid is not None:
                self.recorder.write_discovery(
                    result,
                    self.pil_image,
                    self.state.session.grid,
                    self.state.session.regions,
                    self.loaded,
                    source=str(params.get("source", "")),
                    params=params,
                )
            else:
                self.state.status.post("discovery done; open an image to save it in a session")
        except GazeExplorerError as err:
            self._fail(f"the discovery is shown but could not be saved: {err}")
        self.state.grid_score_mode.set_mode("gaze")
        self.state.status.post(f"discovery done on {result.n_strips} strip(s)")
        self.discovery_finished.emit()

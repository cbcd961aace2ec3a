"""Generation in the app: start a baseline or steered run on a worker, stream its events into the
session model, stop it, switch its target live, run "Compare conditions", rename a run.

A streaming run's attention rows live in the session file, not in memory: only the few steps the
writer has not flushed yet are held (see ``session_io.StepWindow``).

Live switches: in a panel or box run, and in a scheduled run too, clicking a panel or pressing 1-9
while tokens stream switches the target at the next token. In a scheduled run the live target holds
until the schedule's next switch point (``core.steering.LiveSchedule``). Either way the switch is
recorded with source "live". torch and transformers are imported lazily, when a run starts.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from PySide6 import QtCore

from gaze_explorer.core.errors import GazeExplorerError, PromptError
from gaze_explorer.core.run_label import display_name
from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.steering import LiveSchedule, LiveTarget, Schedule, check_steering, check_targets
from gaze_explorer.qt.control.session import SessionControl
from gaze_explorer.qt.control.worker_pool import WorkerPool
from gaze_explorer.qt.workers import Worker


def run_name(run: RunData) -> str:
    """The run's name in the app: the user's, else the label derived from its head set, target and
    switches so far (``core.run_label``, as a reopened session names it)."""
    return display_name(str(run.params.get("user_name", "")), run.derived_label)


class RunControl(QtCore.QObject):
    """Starts generation runs and turns their events into session-model updates."""

    run_finished = QtCore.Signal(int)  # index of the run in the session model
    conditions_compared = QtCore.Signal(list)  # the runs of "Compare conditions", in order
    condition_started = QtCore.Signal(list)  # the same, so far: each time another condition starts

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
        self.live: LiveTarget | LiveSchedule | None = None  # the streaming run's target, read per token
        self.handles: dict = {}  # run index -> session_io.RunHandle, while the run streams
        self._run_index: int | None = None  # the last run started
        self._comparing: dict | None = None  # "Compare conditions" in progress: plans left, runs made
        self._t0 = 0.0
        # Token events land at model speed (hundreds a second on the demo); the run's data is
        # appended at once, but the views hear about it at most ~30 times a second.
        self._pending_runs: set[int] = set()
        self._notify_timer = QtCore.QTimer(self, singleShot=True, interval=33)
        self._notify_timer.timeout.connect(self._flush_token_notices)
        state.target.target_changed.connect(self._on_target_changed)

    # ---- start ---------------------------------------------------------------------------------
    def generate(self, prompt: str, options, plan=None, capture=None) -> Worker | None:
        """Start a baseline (``plan`` None) or steered run; bad input posts a message instead.

        ``capture`` is a ``CaptureSpec`` (default: every decode row and the prompt's last row).
        """
        state, session = self.state, self.session
        try:
            self.pool.require_idle()
            loaded = session.require_model()
            if session.pil_image is None or state.session.grid is None:
                raise GazeExplorerError("open an image first")
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
                check_steering(
                    plan,
                    source,
                    len(regions),
                    loaded.n_layers,
                    loaded.n_heads,
                    loaded.adapter.attention_layers,
                )
        except GazeExplorerError as err:
            state.status.post(str(err), error=True)
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
        run.name = run_name(run)
        image = session.pil_image
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
            state.status.post(str(err), error=True)
            return None
        self.live = source
        recorder = session.recorder
        run_handle = recorder.begin(run, image, grid, regions, loaded, source, plan, options, capture=capture)
        session.image_key = run.params.get("image")  # the image on screen, as the session file names it
        index = state.session.add_run(run)  # after begin: the session file exists and is named
        self.handles[index] = run_handle
        self._run_index = index
        state.step.set_n_steps(0)

        worker = Worker(
            "generate",
            lambda _cancel: stream,
            on_item=lambda ev: recorder.write(run_handle, ev),
            cancel_event=cancel,
        )
        worker.progress.connect(lambda ev: self._on_prefill(index, ev))
        worker.token.connect(lambda ev: self._on_token(index, ev))
        worker.finished.connect(lambda ev: self._on_finished(index, ev))
        worker.errored.connect(lambda msg, _u: self._on_failed(index, msg))
        state.status.set_busy(True)
        self._t0 = time.perf_counter()
        # the run's current label (it follows live switches and a rename) until its end handler
        # marks it ended
        self.pool.start(
            worker, activity=lambda: f"generating '{run.name}'" if run.status == "running" else None
        )
        state.status.update(activity=session.ready_text())
        return worker

    # ---- stream events -------------------------------------------------------------------------
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
            run.name = run_name(run)  # the label follows the switches as they happen, in the status too
            self.state.status.update(activity=self.session.ready_text())
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
        run.name = run_name(run)
        handle = self.handles.pop(index, None)
        if handle is not None:
            try:
                self.session.recorder.attach_reader(handle)
            except GazeExplorerError as err:
                self.state.status.post(
                    f"the run is shown from memory; its session file could not be read: {err}", error=True
                )
        self.live = None
        self.state.status.update(activity=self.session.ready_text())
        self.state.session.notify_run(index)
        if run.status == "cancelled":
            self.state.status.post(f"stopped: kept {run.n_steps} token(s) of '{run.name}', marked cancelled")
        self.run_finished.emit(index)

    def _on_failed(self, index: int, message: str) -> None:
        self._flush_token_notices()
        run = self.state.session.runs[index]
        run.status = "failed"
        handle = self.handles.pop(index, None)
        if handle is not None:
            self.session.recorder.end_handle(handle, "failed", message)
        self.live = None
        self.state.status.update(activity=self.session.ready_text())
        self.state.session.notify_run(index)
        self.run_finished.emit(index)

    # ---- stop, live switch, rename -------------------------------------------------------------
    def stop(self) -> None:
        """Stop the run (and a discovery) in progress; a comparison runs no further condition."""
        self._comparing = None
        self.pool.cancel_runs()

    def _on_target_changed(self) -> None:
        """While a run streams, a new panel target switches it live at the next token."""
        target, live = self.state.target, self.live
        if live is None or target.kind != "panel" or self._run_index is None:
            return
        regions = self.state.session.runs[self._run_index].regions
        try:
            check_targets((target.panel,), len(regions))
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)
            return
        live.set(target.panel)
        until = " until the schedule's next switch" if isinstance(live, LiveSchedule) else ""
        self.state.status.post(f"switching to {regions[target.panel].name} at the next token{until}")

    def rename_run(self, index: int, name: str) -> None:
        """Give run ``index`` the user's name (empty: its derived label again), saved in the file."""
        run = self.state.session.runs[index]
        run.params["user_name"] = name.strip()
        run.name = run_name(run)
        if run.status == "running":  # the status bar names the streaming run as the list does
            self.state.status.update(activity=self.session.ready_text())
        if run.run_id is not None:
            try:
                self.session.recorder.rename_run(run.run_id, name.strip())
            except GazeExplorerError as err:
                self.state.status.post(f"the new name is shown but not saved: {err}", error=True)
        self.state.session.notify_run(index)

    # ---- compare conditions --------------------------------------------------------------------
    def compare_conditions(self, prompt: str, options, plan) -> bool:
        """Run the paper's four conditions one after the other on the current prompt and target:
        baseline, top-K gaze, random control and all heads (K, seed and pool of the head set
        chooser; ``plan`` gives mode, strength and decode-only). Emits ``conditions_compared`` with
        the runs' indices when the last one ends. False (with a message) when it cannot start."""
        heads = self.state.heads
        try:
            self.pool.require_idle()
            if heads.gaze_scores is None:
                raise GazeExplorerError(
                    "Compare conditions needs gaze scores (top-K, random control): run discovery first"
                )
            from gaze_explorer.inference.evaluation import HeadConditions

            sets = HeadConditions.from_scores(heads.gaze_scores, heads.k, seed=heads.seed, pool=heads.pool)
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)
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
        # after the pool's own handling of ``done`` (connected first): the worker is gone
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

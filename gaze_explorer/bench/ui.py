"""``ui`` benchmark: how long the Qt event loop stalls while the main window follows a streaming run.

The real app path: the main window loads the model on its worker, shows the first demo strip and
generates ``tokens`` tokens (``ignore_eos``, so the run really is that long) through the steering
panel's prompt, with every view following the run and the session file being written. A 5 ms
precise timer ticks meanwhile; each tick's lateness beyond 5 ms is a stall of the event loop (what
a user feels as a frozen window). The figure is the 95th percentile stall against 50 ms.

Load matters: a second CPU-heavy job on a 2-core machine stretches the stalls (the GUI thread waits
for a core), which is why this is a benchmark and not a test; the test suite checks the mechanism
(token notices coalesced, redraws spaced) in tests/robustness/test_ui_responsiveness.py.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from gaze_explorer.bench.harness import Result, summary

BUDGET_MS = 50.0
TICK_MS = 5


def stall_stats(ticks: list[float], interval_s: float) -> dict[str, float]:
    """Event-loop stalls in ms from a timer's tick times: each gap minus the interval (>= 0)."""
    gaps = np.maximum(np.diff(np.asarray(ticks, dtype=float)) - interval_s, 0.0) * 1000.0
    if gaps.size == 0:
        raise ValueError("fewer than two timer ticks: nothing to measure")
    return {
        "n": int(gaps.size),
        "p50": float(np.percentile(gaps, 50)),
        "p95": float(np.percentile(gaps, 95)),
        "max": float(gaps.max()),
    }


def _run_until(signal, timeout_s: float) -> bool:
    """Run the event loop, as app.exec() does, until ``signal`` fires; False on timeout."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    fired: list[bool] = []
    signal.connect(lambda *_: (fired.append(True), loop.quit()))
    QtCore.QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    return bool(fired)


def stream_once(window, tokens: int, timeout_s: float = 1800.0) -> dict:
    """Generate ``tokens`` tokens in ``window`` while a 5 ms timer ticks; the stall statistics."""
    from PySide6 import QtCore

    from gaze_explorer.core.options import GenerationOptions

    controller = window.controller
    ticks: list[float] = []
    timer = QtCore.QTimer()
    timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    # what "Generate baseline" does, plus ignore_eos (the panel has no control for it)
    options = GenerationOptions(max_new_tokens=tokens, ignore_eos=True)
    t0 = time.perf_counter()
    timer.start()
    worker = controller.generate(window.steering_panel.prompt(), options, plan=None)
    if worker is None:
        raise RuntimeError(f"the window did not start the run: {window.messages}")
    # the worker's signals arrive queued, so connecting after the start misses none
    finished = _run_until(worker.done, timeout_s)
    timer.stop()
    seconds = time.perf_counter() - t0
    run = controller.state.session.runs[-1]
    if not finished or run.n_steps != tokens:
        raise RuntimeError(f"the run made {run.n_steps} of {tokens} tokens in {seconds:.0f} s ({run.status})")
    stats = stall_stats(ticks, TICK_MS / 1000.0)
    stats.update(seconds=seconds, tokens_per_s=tokens / seconds)
    return stats


def run(tokens: int = 300, repeats: int = 1, model: str = "demo", device: str = "cpu") -> Result:
    """Open the main window on ``model`` and stream ``tokens`` tokens ``repeats`` times into it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from gaze_explorer.bench.models import demo_strip
    from gaze_explorer.core.errors import ModelLoadError
    from gaze_explorer.qt.app import dispose_windows
    from gaze_explorer.qt.compat import singleton_refs_guard
    from gaze_explorer.qt.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["gaze-explorer-bench"])
    singleton_refs_guard()  # what the app's main() does: thousands of redraws leak None references
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gaze-bench-ui-") as tmp:
        window = MainWindow()
        try:
            window.controller.recorder.directory = Path(tmp)
            loader = window.controller.load_model(model, device=device)
            _run_until(loader.done, 600.0)
            if window.controller.loaded is None:
                raise ModelLoadError(f"the window could not load {model!r}: {window.messages}")
            strip = demo_strip()
            window.controller.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths)
            window.show()
            for _ in range(20):  # let the first layout and paints settle before measuring
                app.processEvents()
                time.sleep(0.01)
            for _ in range(max(1, repeats)):
                runs.append(stream_once(window, tokens))
        finally:  # before the session folder goes: the window may still read its file
            window.controller.shutdown()
            dispose_windows([window])
    p95 = [r["p95"] for r in runs]
    ours = summary(p95)
    budget = {"median": BUDGET_MS, "spread": {"min": BUDGET_MS, "max": BUDGET_MS, "iqr": 0.0}}
    return Result(
        name="ui",
        ours=ours,
        compared=budget,
        unit="ms",
        ratio=ours["median"] / BUDGET_MS,
        target=f"p95 stall <= {BUDGET_MS:g} ms",
        met=ours["median"] <= BUDGET_MS,
        model=model,
        repeats=len(runs),
        extra={"tokens": tokens, "tick_ms": TICK_MS, "runs": runs},
    )

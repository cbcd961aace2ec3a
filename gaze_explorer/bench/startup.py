"""``startup`` benchmark: ``main.py`` launch to the first painted main window, against a 3 s budget.

Each repeat spawns a fresh interpreter that runs ``main.py`` unchanged (through ``runpy``) after
installing an application-wide event filter; the filter notes the wall-clock time of the first
paint event of the main window and ends the process at once. The figure is that time minus the
moment the parent spawned the child: interpreter start, imports, window construction, first paint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gaze_explorer.bench.harness import Result, summary

BUDGET_S = 3.0
ROOT = Path(__file__).resolve().parents[2]


def launch_once(timeout_s: float = 120.0) -> float:
    """Seconds from spawning ``main.py`` to its first painted main window."""
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "gaze_explorer.bench.startup", "--probe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"the start-up probe reported no paint (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return float(json.loads(lines[-1])["painted_at"]) - t0


def run(repeats: int = 5) -> Result:
    """Launch ``main.py`` ``repeats`` times; median seconds to the first paint vs the 3 s budget."""
    times = [launch_once() for _ in range(max(1, repeats))]
    s = summary(times)
    budget = {"median": BUDGET_S, "spread": {"min": BUDGET_S, "max": BUDGET_S, "iqr": 0.0}}
    return Result(
        name="startup",
        ours=s,
        compared=budget,
        unit="s",
        ratio=s["median"] / BUDGET_S,
        target=f"<= {BUDGET_S} s",
        met=s["median"] <= BUDGET_S,
        model="demo (loaded after the first paint)",
        repeats=len(times),
        extra={"max_s": max(times)},
    )


def _probe() -> None:
    """Child side: run main.py, print the time of the main window's first paint, exit."""
    import runpy

    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication(sys.argv[:1])

    class FirstPaint(QtCore.QObject):
        def eventFilter(self, obj, event):
            is_paint = event.type() == QtCore.QEvent.Type.Paint and isinstance(obj, QtWidgets.QWidget)
            if is_paint and isinstance(obj.window(), QtWidgets.QMainWindow):
                print(json.dumps({"painted_at": time.time()}), flush=True)
                os._exit(0)  # the model load that follows is not part of start-up
            return False

    watcher = FirstPaint()
    app.installEventFilter(watcher)
    sys.argv = [str(ROOT / "main.py")]
    runpy.run_path(str(ROOT / "main.py"), run_name="__main__")


if __name__ == "__main__":
    if "--probe" in sys.argv:
        _probe()

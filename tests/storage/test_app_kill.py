"""The app's recording path survives a kill: a real process runs the main window (offscreen, demo
model) and its SessionRecorder, records a finished run and then a long one, and is SIGKILLed once
the writer has flushed some steps of the second. The session must open with both runs, the second
unfinished with at least the steps flushed before the kill, readable.

The storage kill tests kill a CLI or a bare writer, and tests/robustness/test_kills.py (slow) kills
the app during its first run; this one kills the app's second run, which starts from the file as
the first run's end left it (normal mode, the app's own reader of it open, the selection saved),
and waits on the writer's flushed steps rather than the tokens shown."""

from __future__ import annotations

import signal

import numpy as np
from forked_children import Child

from gaze_explorer.storage import SessionReader

CHILD = "app_kill_child:main"
KILL_AFTER = 5  # flushed steps of the second run


def _line(child: Child, err) -> list[str]:
    line = child.stdout.readline().decode()
    assert line, f"the child ended early: {err.read_text()}"
    return line.split()


def test_sigkill_of_the_app_mid_run_keeps_the_flushed_steps(tmp_path):
    err = tmp_path / "child.stderr.txt"
    child = Child(CHILD, [str(tmp_path / "sessions")], err)
    try:
        words = _line(child, err)
        assert words[0] == "path", words
        path = words[1]
        flushed = 0
        while flushed < KILL_AFTER:
            words = _line(child, err)
            assert words[0] == "flushed", words
            flushed = int(words[1])
        child.send_signal(signal.SIGKILL)
        assert child.wait(60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(60)
        child.stdout.close()
    with SessionReader(path) as r:
        assert r.run_ids() == ["run_000", "run_001"]
        first, second = r.run_info("run_000"), r.run_info("run_001")
        assert first.status == "finished"
        assert second.status == "unfinished"
        assert second.n_steps >= flushed
        assert len(r.tokens("run_001")) == second.n_steps
        rows = r.step_rows("run_001", second.n_steps - 1)
        assert rows.shape[:2] == (second.n_layers, second.n_heads) and np.isfinite(rows).any()

"""A writer killed with SIGKILL mid-run leaves a readable file; a second process reads while it writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import storage_synthetic as synthetic

from gaze_explorer.storage import SessionReader

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).parents[2]


def _start(path, n_steps):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(n_steps)], stdout=subprocess.PIPE, text=True, env=env
    )


def test_sigkill_mid_run_keeps_every_counted_step(tmp_path):
    for i, kill_after in enumerate((3, 11, 25)):
        path = tmp_path / f"crash{i}.h5"
        child = _start(path, 200)
        for _ in range(kill_after):
            child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait()
        with SessionReader(path) as r:
            info = r.run_info(0)
            assert info.status == "unfinished"
            assert kill_after - 1 <= info.n_steps < 200
            for s in range(info.n_steps):
                want = synthetic.softmax_rows(
                    s, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + s
                )
                np.testing.assert_array_equal(r.step_rows(0, s), want.astype(np.float16).astype(np.float32))
            assert len(r.tokens(0)) == info.n_steps


def test_second_process_reads_while_the_writer_appends(tmp_path):
    path = tmp_path / "live.h5"
    child = _start(path, 60)
    child.stdout.readline()
    seen = []
    with SessionReader(path) as r:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r.refresh()
            seen.append(r.run_info(0).n_steps)
            if seen[-1] >= 60:
                break
            time.sleep(0.05)
        assert child.wait(timeout=30) == 0
        r.refresh()
        assert r.run_info(0).status == "finished"
        np.testing.assert_array_equal(
            r.step_rows(0, 59),
            synthetic.softmax_rows(59, synthetic.N_LAYERS, synthetic.N_HEADS, 99)
            .astype(np.float16)
            .astype(np.float32),
        )
    assert len(set(seen)) > 2 and seen == sorted(seen)  # it saw the run grow

"""Crash test with a real model: a child process generates with full capture into a session and
is SIGKILLed mid-run, several times. The file must open, the run must read as unfinished, and
every counted step must equal the same step of an uninterrupted run of the same input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.storage import SessionReader

CHILD = Path(__file__).with_name("model_crash_child.py")
REPO = Path(__file__).resolve().parents[2]
N_STEPS = 40


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from gaze_explorer.inference.random_init import build_random_qwen3_vl

    return build_random_qwen3_vl(tmp_path_factory.mktemp("tiny") / "model", geometry="tiny", seed=0)


def _start(model_dir, path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(model_dir), str(path), str(N_STEPS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_sigkill_during_real_generation_keeps_flushed_steps(tiny_model_dir, tmp_path):
    full_path = tmp_path / "full.h5"
    child = _start(tiny_model_dir, full_path)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    with SessionReader(full_path) as r:
        full = r.run_info(0)
        assert full.status == "finished"
        want_rows = [r.step_rows(0, s) for s in range(full.n_steps)]  # [layer, head, key] each
        want_tokens = r.tokens(0)
    assert full.n_steps >= 12, "the uninterrupted run must be long enough to kill mid-run"

    flushed = []
    for i, kill_after in enumerate((2, 6, 11)):
        path = tmp_path / f"killed{i}.h5"
        child = _start(tiny_model_dir, path)
        for _ in range(kill_after):
            assert child.stdout.readline(), child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait()
        with SessionReader(path) as r:
            info = r.run_info(0)
            assert info.status == "unfinished"
            # the writer thread may lag the printed steps by its queue, never lead them
            assert info.n_steps <= kill_after < full.n_steps
            flushed.append(info.n_steps)
            for s in range(info.n_steps):
                np.testing.assert_array_equal(r.step_rows(0, s), want_rows[s])
            assert r.tokens(0) == want_tokens[: info.n_steps]
    assert max(flushed) >= 2, f"no kill left flushed steps to compare: {flushed}"

"""Crash test with a real model: a child process generates with full capture into a session and
is SIGKILLed mid-run, several times. The file must open, the run must read as unfinished, and
every counted step must equal the same step of an uninterrupted run of the same input.

The children are real processes forked from one server that has imported torch and transformers
(tests/forked_children.py), so each does not pay the ~6 s of imports of a fresh ``python``."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from forked_children import Child

from gaze_explorer.storage import SessionReader

CHILD = "model_crash_child:main"
N_STEPS = 40


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from gaze_explorer.inference.random_init import build_random_qwen3_vl

    return build_random_qwen3_vl(tmp_path_factory.mktemp("tiny") / "model", geometry="tiny", seed=0)


def _start(model_dir, path) -> Child:
    return Child(CHILD, [str(model_dir), str(path), str(N_STEPS)], path.with_suffix(".stderr.txt"))


@pytest.mark.slow
def test_sigkill_during_real_generation_keeps_flushed_steps(tiny_model_dir, tmp_path):
    full_path = tmp_path / "full.h5"
    child = _start(tiny_model_dir, full_path)
    child.stdout.read()  # to EOF: the child has ended
    child.stdout.close()
    assert child.wait(300) == 0, full_path.with_suffix(".stderr.txt").read_text()
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
            assert child.stdout.readline(), path.with_suffix(".stderr.txt").read_text()
        child.send_signal(signal.SIGKILL)
        assert child.wait(300) == -signal.SIGKILL
        printed = kill_after + len(child.stdout.read().splitlines())  # it may have run ahead of our reads
        child.stdout.close()
        with SessionReader(path) as r:
            info = r.run_info(0)
            assert info.status == "unfinished"
            # the writer thread may lag the printed steps by its queue, never lead them
            assert info.n_steps <= printed and kill_after < full.n_steps
            flushed.append(info.n_steps)
            for s in range(info.n_steps):
                np.testing.assert_array_equal(r.step_rows(0, s), want_rows[s])
            assert r.tokens(0) == want_tokens[: info.n_steps]
    assert max(flushed) >= 2, f"no kill left flushed steps to compare: {flushed}"

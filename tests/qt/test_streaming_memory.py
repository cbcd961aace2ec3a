"""A long streaming run on the demo model keeps only a small window of unflushed steps in memory:
every other step's rows are read back from the session file (SWMR) while the run is written, and
all of them once it has ended. Scrubbing back while tokens stream stays where the user put it."""

from __future__ import annotations

import numpy as np
from pacing import pace

from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.core.scoring import overlay_heat
from gaze_explorer.demo.prompts import AMBIGUOUS_PROMPT

N_TOKENS = 110
QUEUE_SIZE = 16  # SessionWriter's default queue: the producer blocks beyond it
WINDOW_BOUND = QUEUE_SIZE + 2  # queued steps, plus the one being written and the one being put


def test_long_run_rows_come_from_the_file_with_a_bounded_window(qtbot, demo_window):
    from gaze_explorer.storage import SessionReader

    win = demo_window
    s, c = win.state, win.controller
    s.heads.set_custom([(1, 2), (4, 5), (5, 0)])
    s.heads.set_kind("custom")
    s.overlay.update(normalisation="global")  # the colour scale's top: the max over every step so far
    worker = c.generate(AMBIGUOUS_PROMPT, GenerationOptions(max_new_tokens=N_TOKENS, ignore_eos=True))
    assert worker is not None
    index = len(s.session.runs) - 1
    run, window = s.session.runs[index], c.run_control.handles[index].window
    # the worker waits for the window (at most 2 steps ahead): on a busy machine the 110-token run
    # could otherwise end before the scrub below has 10 more steps to stream
    pace(worker, run)
    sizes: list[int] = []
    s.session.run_updated.connect(lambda i: sizes.append(len(window)) if i == index else None)

    # mid-stream: flushed steps come from the file, byte for byte what an independent reader sees
    qtbot.waitUntil(lambda: window.flushed >= 40, timeout=60000)
    assert run.status == "running"
    check = SessionReader(s.session.path)
    rng = np.random.default_rng(0)
    for step in rng.choice(window.flushed, size=8, replace=False):
        assert np.array_equal(run.rows_at(int(step)), check.step_rows(run.run_id, int(step)))
    # scrub back while it streams: the step stays put and the overlay draws that step's file rows.
    # The window must show step 17 first: the file can be ahead of the window's step range (the
    # worker flushes while the GUI thread works through its token notices), and a step past the
    # range is clamped to its last step, which follows the stream.
    qtbot.waitUntil(lambda: s.step.n_steps > 18, timeout=60000)
    s.step.set_step(17)
    n_then = run.n_steps
    qtbot.waitUntil(lambda: run.n_steps >= n_then + 10, timeout=60000)
    assert s.step.step == 17
    expected = overlay_heat(check.step_rows(run.run_id, 17), s.session.grid, s.heads.active)
    qtbot.waitUntil(lambda: win.overlay_view.heat_item.isVisible())
    qtbot.waitUntil(lambda: np.allclose(win.overlay_view.heat_item.z, expected), timeout=5000)
    # what the window serves for steps not yet flushed equals what the file holds once they are
    seen = {}
    for step in range(run.n_steps - 1, max(run.n_steps - 6, -1), -1):
        rows = run.rows_at(step)
        assert rows is not None and rows.dtype == np.float16  # the stored dtype, from the window or the file
        seen[step] = rows

    qtbot.waitUntil(lambda: run.status != "running", timeout=120000)
    assert run.status == "finished" and run.n_steps == N_TOKENS  # ignore_eos ran past the answer
    assert window.peak <= WINDOW_BOUND and max(sizes) <= WINDOW_BOUND
    assert len(window) == 0 and window.flushed == N_TOKENS  # nothing is held once it is all in the file
    check.refresh()
    for step in [*rng.choice(N_TOKENS, size=10, replace=False), *seen]:
        expected_rows = check.step_rows(run.run_id, int(step))
        assert expected_rows.shape[-1] == run.prompt_len + int(step)  # [layer, head, key]
        assert np.array_equal(run.rows_at(int(step)), expected_rows)
    for step, rows in seen.items():
        assert np.array_equal(rows, check.step_rows(run.run_id, step))
    heats = [
        overlay_heat(check.step_rows(run.run_id, k), s.session.grid, s.heads.active) for k in range(N_TOKENS)
    ]
    s.step.set_step(N_TOKENS - 1)
    top = max(float(h.max()) for h in heats)
    qtbot.waitUntil(lambda: np.isclose(win.overlay_view.heat_item.getLevels()[1], top), timeout=5000)
    check.close()


def test_without_a_session_file_the_rows_stay_in_memory(qtbot, demo_window):
    win = demo_window
    s, c = win.state, win.controller
    c.recorder.enabled = False  # e.g. the disk was full when the session file was to be created
    c.generate(AMBIGUOUS_PROMPT, GenerationOptions(max_new_tokens=12, ignore_eos=True))
    index = len(s.session.runs) - 1
    window = c.run_control.handles[index].window
    run = s.session.runs[index]
    qtbot.waitUntil(lambda: run.status != "running", timeout=60000)
    assert run.status == "finished" and window.keep_all and len(window) == 12
    assert all(run.rows_at(k).shape[-1] == run.prompt_len + k for k in range(12))

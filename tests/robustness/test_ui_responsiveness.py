"""UI responsiveness while tokens stream: the mechanism, checked without timing anything.

Two things keep the window responsive: the controller coalesces token notices (any number of
tokens that arrive before the event loop turns become one update of the views), and each view's
``FrameCoalescer`` spaces its redraws (one per frame, and further apart while a run streams when a
redraw is costly). How long the event loop actually stalls depends on the machine and its load,
so that figure is a benchmark: ``gaze-explorer bench ui`` (docs/benchmarks.md).
"""

from __future__ import annotations

import pytest
from robust_helpers import DEMO_MODEL

from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.qt.widgets.coalesce import FrameCoalescer

N_TOKENS = 24


def test_a_burst_of_redraw_requests_is_one_redraw(qtbot):
    calls: list[int] = []
    coalescer = FrameCoalescer(lambda: calls.append(1), min_gap_ms=15)
    for _ in range(100):
        coalescer.request()
    qtbot.waitUntil(lambda: bool(calls), timeout=5000)
    assert calls == [1] and not coalescer.isActive()  # nothing left pending after the one redraw


def test_redraws_are_spaced_by_the_gap_and_by_their_cost_while_streaming(qtbot):
    now = [100.0]  # a fake clock, in seconds: the spacing is checked exactly, whatever the load
    streaming = [False]

    def redraw() -> None:
        now[0] += 0.010  # a redraw that costs 10 ms

    coalescer = FrameCoalescer(
        redraw, min_gap_ms=15, cost_factor=3.0, busy=lambda: streaming[0], clock=lambda: now[0]
    )
    assert coalescer.delay_ms() == 0  # an isolated change waits for nothing
    coalescer.request()
    qtbot.waitUntil(lambda: not coalescer.isActive(), timeout=5000)  # the redraw ran (10 ms, fake)
    now[0] += 0.002
    assert coalescer.delay_ms() == 13  # 2 ms after a redraw: the rest of the 15 ms gap
    streaming[0] = True
    assert coalescer.delay_ms() == 28  # streaming: 3 x the 10 ms cost, minus the 2 ms gone by
    now[0] += 0.050
    assert coalescer.delay_ms() == 0  # long after the last redraw: at once again


@pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="no demo model")
def test_a_burst_of_tokens_is_one_notice_and_every_token_arrives(qtbot, tmp_path):
    from gaze_explorer.bench.models import demo_strip
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    controller = win.controller
    controller.recorder.directory = tmp_path / "sessions"
    with qtbot.waitSignal(controller.model_loaded, timeout=120_000):
        controller.load_model("demo", device="cpu")
    strip = demo_strip()
    controller.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths)
    notices: list[int] = []
    win.state.session.run_updated.connect(lambda index, *_: notices.append(index))

    worker = controller.generate(
        win.steering_panel.prompt(), GenerationOptions(max_new_tokens=N_TOKENS, ignore_eos=True), plan=None
    )
    assert worker is not None, win.messages
    # The GUI thread is blocked until the worker has emitted every token: they all wait in the
    # event queue at once, which is the burst a busy GUI thread sees while a fast model streams.
    assert worker.wait(300)
    qtbot.waitUntil(lambda: not controller.workers, timeout=60_000)

    run = win.state.session.runs[-1]
    assert run.status == "finished" and run.n_steps == N_TOKENS  # every token was delivered
    assert len(run.targets) == N_TOKENS and all(isinstance(t, str) for t in run.tokens)
    # one notice for the prompt, one for the whole burst of tokens, one when the run finished
    assert 1 <= len(notices) <= 3 < N_TOKENS, notices
    assert win.state.step.n_steps == N_TOKENS  # the views were told about the last token
    controller.shutdown()

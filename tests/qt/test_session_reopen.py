"""The prompt's tokens are stored with every run, captured prefill rows or not, and File → Open
session shows them again (demo model)."""

from __future__ import annotations

from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.demo.prompts import AMBIGUOUS_PROMPT
from gaze_explorer.qt.main_window import MainWindow


def test_reopened_session_shows_the_prompt_tokens(qtbot, demo_window):
    from gaze_explorer.storage import SessionReader

    win = demo_window
    s, c = win.state, win.controller
    options = GenerationOptions(max_new_tokens=6)
    for capture in (CaptureSpec(prefill="none"), CaptureSpec()):  # no prefill rows, then the default
        c.generate(AMBIGUOUS_PROMPT, options, capture=capture)
        qtbot.waitUntil(lambda: s.session.runs[-1].status != "running", timeout=60000)
    live = [list(r.prompt_tokens) for r in s.session.runs]
    ids = c.loaded.prepare(win.controller.pil_image, AMBIGUOUS_PROMPT).tensors["input_ids"][0].tolist()
    expected = c.loaded.adapter.token_strings(ids)
    assert live == [expected, expected] and len(expected) == s.session.runs[0].prompt_len
    assert win.prompt_view.tokens == expected  # the shown (last) run, while the app made it
    path = s.session.path
    c.recorder.close()
    with SessionReader(path) as reader:
        assert [reader.prefill_rows(r) is None for r in (0, 1)] == [True, False]

    other = MainWindow()
    qtbot.addWidget(other)
    assert other.open_session(path)
    runs = other.state.session.runs
    assert [r.prompt_tokens for r in runs] == [expected, expected]
    other.session_view.select_run(0)  # the run stored without prefill rows
    assert other.state.session.shown == 0
    assert other.prompt_view.tokens == expected
    assert f"prompt of {len(expected)} tokens" in other.prompt_view.header.text()
    shown = other.prompt_view.text.toPlainText()
    assert expected[-1].strip() in shown and "×" in shown  # image tokens folded into one chip

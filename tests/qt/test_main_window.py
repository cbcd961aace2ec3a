"""The main window on a real (tiny, random-initialised) Qwen3-VL: runs stream into the views and the
session file, Stop keeps a cancelled partial run, live switches are recorded, and every bad input
gets a clear message with nothing lost."""

from __future__ import annotations

import numpy as np
import pytest
from pacing import pace
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.qt.main_window import MainWindow

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from gaze_explorer.inference.loading import load_model
    from gaze_explorer.inference.random_init import build_random_qwen3_vl

    torch.set_num_threads(1)  # the suite's one thread (tests/conftest.py); 2 stayed set for later tests
    path = build_random_qwen3_vl(tmp_path_factory.mktemp("tiny") / "model", "tiny", seed=3)
    return load_model(str(path))


def strip_image() -> Image.Image:
    img = Image.new("RGB", (576, 96))
    for k, c in enumerate(COLOURS):
        img.paste(Image.new("RGB", (96, 96), c), (96 * k, 0))
    return img


@pytest.fixture
def window(qtbot, tiny_model, tmp_path):
    win = MainWindow()
    qtbot.addWidget(win)
    win.controller.recorder.directory = tmp_path / "sessions"
    win.controller._on_model_loaded(tiny_model)
    win.controller.set_image(strip_image(), 6, "test strip")
    win.show()
    yield win
    win.controller.shutdown()


def _run(qtbot, win, steer: bool, max_new: int = 12, timeout: int = 30000):
    win.steering_panel.max_tokens.setValue(max_new)
    with qtbot.waitSignal(win.controller.run_finished, timeout=timeout):
        (win.steer if steer else win.generate_baseline)()
    qtbot.waitUntil(lambda: not win.controller.busy, timeout=60000)
    return win.state.session.runs[-1]


def test_baseline_streams_into_views_and_session_file(qtbot, window):
    from gaze_explorer.storage import SessionReader

    s = window.state
    assert s.session.grid is not None and len(s.session.regions) == 6
    run = _run(qtbot, window, steer=False)
    assert run.status == "finished" and run.n_steps == 12
    assert s.step.n_steps == 12 and s.step.step == 11  # followed the stream
    qtbot.waitUntil(lambda: len(window.timeline_view.chips) == 12)  # redraws are coalesced
    assert "tok/s" in window.status_label.text()
    # the same run is in the session file, written as it streamed; the finished run is now
    # shown from it, so the views draw exactly what a reopened session draws
    reader = SessionReader(s.session.path)
    info = reader.runs()[-1]
    assert info.status == "finished" and reader.tokens(info.run_id) == run.tokens
    assert np.array_equal(reader.step_rows(info.run_id, 5), run.rows_at(5))


def test_stop_keeps_a_cancelled_partial_run(qtbot, window):
    from gaze_explorer.storage import SessionReader

    window.steering_panel.max_tokens.setValue(2000)
    window.generate_baseline()
    assert window.steering_panel.stop_button.isEnabled()
    pace(window.controller.workers[-1], window.state.session.runs[-1])  # Stop lands mid-run, also under load
    qtbot.waitUntil(lambda: window.state.session.runs[-1].n_steps >= 4, timeout=20000)
    with qtbot.waitSignal(window.controller.run_finished, timeout=20000):
        qtbot.mouseClick(window.steering_panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    run = window.state.session.runs[-1]
    assert run.status == "cancelled" and 4 <= run.n_steps < 2000
    assert "cancelled" in window.session_view.list.item(0).text()
    assert any("marked cancelled" in m for m, _ in window.messages)
    window.controller.recorder.close()
    info = SessionReader(window.state.session.path).runs()[-1]
    assert info.status == "cancelled" and info.n_steps == run.n_steps


def test_live_switch_is_recorded_and_marked(qtbot, window):
    s = window.state
    s.heads.set_custom([(0, 0), (1, 1)])
    s.heads.set_kind("custom")
    s.target.set_panel(3)
    window.steering_panel.max_tokens.setValue(2000)
    window.steer()
    pace(window.controller.workers[-1], s.session.runs[-1])
    qtbot.waitUntil(lambda: s.session.runs[-1].n_steps >= 5, timeout=20000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_2)  # switch live to panel 2
    qtbot.waitUntil(lambda: len(s.session.runs[-1].switches) > 0, timeout=20000)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=20000)
    run = s.session.runs[-1]
    (switch,) = run.switches
    assert switch.source == "live" and switch.previous == 3 and switch.to == 1 and switch.step >= 5
    assert run.targets[switch.step - 1] == 3 and run.targets[switch.step] == 1
    qtbot.waitUntil(lambda: list(window.timeline_view.tracks[0].live_item.getData()[0]) == [switch.step])


def test_bad_inputs_get_clear_messages_and_lose_nothing(qtbot, window, tmp_path):
    s = window.state
    before_image = s.session.image.copy()
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"this is not a png")
    assert not window.controller.open_image(str(bad_image))
    assert "broken.png" in window.messages[-1][0] and window.messages[-1][1]
    assert np.array_equal(s.session.image, before_image)
    bad_session = tmp_path / "broken.h5"
    bad_session.write_bytes(b"\x00" * 100)
    assert not window.open_session(str(bad_session))
    assert "broken.h5" in window.messages[-1][0]
    assert not window.open_session(str(tmp_path / "missing.h5"))
    assert "does not exist" in window.messages[-1][0]
    # a schedule that names a panel that does not exist: no run starts
    s.heads.set_custom([(0, 0)])
    s.heads.set_kind("custom")
    s.target.set_schedule("4,9,1", 4)
    n_runs = len(s.session.runs)
    window.steer()
    assert "panel 9" in window.messages[-1][0] and len(s.session.runs) == n_runs
    # an empty prompt
    window.steering_panel.prompt_edit.setPlainText("  ")
    window.generate_baseline()
    assert "prompt is empty" in window.messages[-1][0]
    # a model that cannot be loaded keeps the loaded one
    loaded = window.controller.loaded
    with qtbot.waitSignal(window.state.status.message_posted, timeout=20000):
        window.controller.load_model(str(tmp_path / "no-such-model"))
    qtbot.waitUntil(lambda: not window.controller.workers, timeout=10000)
    assert "does not exist" in window.messages[-1][0] and window.controller.loaded is loaded
    assert window.isVisible()


def test_open_session_restores_everything_without_a_model(qtbot, window, tmp_path):
    from gaze_explorer.cli import run_app
    from gaze_explorer.core.scoring import overlay_heat

    s = window.state
    _run(qtbot, window, steer=False, max_new=8)
    s.heads.set_custom([(0, 1), (1, 2)])
    s.heads.set_kind("custom")
    s.target.set_panel(4)
    steered = _run(qtbot, window, steer=True, max_new=8)
    path = s.session.path
    window.controller.recorder.close()

    other = MainWindow()
    qtbot.addWidget(other)
    assert other.open_session(path)
    o = other.state
    assert other.controller.loaded is None
    assert np.array_equal(o.session.image, np.asarray(strip_image()))
    assert [r.name for r in o.session.runs] == ["baseline", steered.name]
    assert o.session.runs[1].tokens == steered.tokens and o.session.shown == 1
    assert o.heads.n_layers == 2 and o.step.n_steps == 8
    # pick two runs to compare, then look at a step with some heads
    other.session_view.select_run(0)
    other.session_view.select_run(1, add=True)
    assert (o.session.shown, o.session.compare) == (1, 0)
    o.heads.set_custom([(1, 2)])
    o.heads.set_kind("custom")
    o.step.set_step(3)
    expected, _ = other.reader.image_attention(o.session.runs[1].run_id, 3, o.heads.active)
    # the reopened run's own heads were drawn at first (outlined and overlaid): wait for the redraw
    # with the custom set, which must show exactly the stored attention of those heads
    qtbot.waitUntil(
        lambda: (
            other.overlay_view.heat_item.isVisible()
            and other.overlay_view.heat_item.z.size == expected.size
            and np.allclose(other.overlay_view.heat_item.z.reshape(-1), expected)
        )
    )
    assert np.allclose(
        overlay_heat(o.session.runs[1].rows_at(3), o.session.grid, o.heads.active).reshape(-1), expected
    )
    qtbot.waitUntil(lambda: other.timeline_view.tracks[1].data is not None)
    # the headless screenshot option on the same file
    shot = tmp_path / "shot.png"
    assert run_app(["--screenshot", str(shot), "--session", path, "--step", "2"]) == 0
    assert shot.stat().st_size > 10_000
    assert run_app(["--screenshot", str(tmp_path / "x.png"), "--session", str(tmp_path / "nope.h5")]) == 1

"""The layer x head grid knows a hybrid model's linear-attention layers before any discovery (issue
19): from the loaded model (``FamilyAdapter.attention_layers``) and, with no model, from the session
file (``attention_layers`` in the model's meta). On a tiny random Qwen3.5 (layers 0 and 2 linear
attention, 1 and 3 softmax): loaded with no discovery, the grid hatches exactly its linear layers and
refuses a click there; a session recorded with it (one short run), reopened in a fresh window with
no model, marks them too; an older file without the entry opens and marks nothing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore

from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.qt.main_window import MainWindow

LEFT = QtCore.Qt.MouseButton.LeftButton
CTRL = QtCore.Qt.KeyboardModifier.ControlModifier
V1_FILE = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"
LINEAR = (0, 2)  # the tiny Qwen3.5's linear-attention layers (tests/inference/test_family_qwen3_5.py)


@pytest.fixture(scope="module")
def qwen3_5_loaded():
    """The inference tests' tiny random Qwen3.5, as a LoadedModel."""
    import torch

    from gaze_explorer.inference.loading import loaded_from_parts

    inference_tests = str(Path(__file__).resolve().parents[1] / "inference")
    sys.path.insert(0, inference_tests)
    try:
        from test_family_qwen3_5 import tiny_qwen3_5
    finally:
        sys.path.remove(inference_tests)
    torch.set_num_threads(1)
    model, adapter = tiny_qwen3_5()
    assert tuple(x for x in range(adapter.n_layers) if x not in adapter.attention_layers) == LINEAR
    return loaded_from_parts(model, adapter, model_id="tiny-qwen3_5")


def _strip() -> Image.Image:
    """A 384 x 64 strip of six coloured panels (12 x 2 image tokens on the tiny model)."""
    rng = np.random.default_rng(0)
    img = np.zeros((64, 384, 3), dtype=np.uint8)
    for k in range(6):
        img[:, 64 * k : 64 * (k + 1)] = rng.integers(0, 255, 3, dtype=np.uint8)
    return Image.fromarray(img)


def _window(qtbot, tmp_path) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.controller.recorder.directory = tmp_path / "sessions"
    win.show()
    qtbot.waitExposed(win)
    return win


def _band_layers(view) -> list[int]:
    return [round(item.rect().top() + 0.5) for item in view.linear_items]


def _click(qtbot, view, head: int, layer: int, modifier=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    pos = view.graphics.mapFromScene(view.viewbox.mapViewToScene(QtCore.QPointF(head, layer)))
    qtbot.mouseClick(view.graphics.viewport(), LEFT, modifier, pos=pos)


def _assert_marks_linear(qtbot, win) -> None:
    """The grid hatches exactly the linear layers and labels them "lin", with no discovery."""
    view = win.grid_view
    qtbot.waitUntil(lambda: view.linear == LINEAR)
    assert win.state.heads.gaze_scores is None  # no discovery: the model (or file) said which
    assert _band_layers(view) == list(LINEAR)
    assert all(item.rect().width() == win.state.heads.n_heads for item in view.linear_items)
    labels = dict(view.y_ticks.update())
    assert [layer for layer, label in labels.items() if label.endswith(" lin")] == list(LINEAR)


def test_loaded_hybrid_model_marks_its_linear_layers_before_discovery(qtbot, tmp_path, qwen3_5_loaded):
    win = _window(qtbot, tmp_path)
    try:
        win.controller._on_model_loaded(qwen3_5_loaded)
        win.controller.set_image(_strip(), 6, "strip")
        _assert_marks_linear(qtbot, win)
        view, s = win.grid_view, win.state
        messages = []
        s.status.message_posted.connect(lambda text, error: messages.append(text))
        _click(qtbot, view, 1, 2)  # a linear layer: refused, and said why
        qtbot.waitUntil(lambda: len(messages) == 1)
        assert messages[0].startswith("layer 2: linear attention, no attention weights")
        assert s.inspector.head is None
        _click(qtbot, view, 0, 0, CTRL)  # nor picked
        qtbot.waitUntil(lambda: len(messages) == 2)
        assert s.heads.custom == set()
        _click(qtbot, view, 1, 3)  # a softmax layer opens in the inspector
        qtbot.waitUntil(lambda: s.inspector.head == (3, 1))
    finally:
        win.controller.shutdown()


def test_reopened_session_marks_the_linear_layers_without_a_model(qtbot, tmp_path, qwen3_5_loaded):
    from gaze_explorer.storage import SessionReader

    win = _window(qtbot, tmp_path)
    try:
        win.controller._on_model_loaded(qwen3_5_loaded)
        win.controller.set_image(_strip(), 6, "strip")
        win.controller.generate("what is in the first panel ?", GenerationOptions(max_new_tokens=2))
        run = win.state.session.runs[-1]
        qtbot.waitUntil(lambda: run.status != "running", timeout=60000)
        assert run.status == "finished", win.messages
        path = win.state.session.path
    finally:
        win.controller.shutdown()
    with SessionReader(path) as r:
        assert r.attention_layers() == (1, 3) and len(r.runs()) == 1 and not r.discoveries()

    other = _window(qtbot, tmp_path)
    try:
        assert other.open_session(path)
        assert other.controller.session_control.loaded is None
        assert other.state.heads.attention_layers == (1, 3)
        _assert_marks_linear(qtbot, other)
        messages = []
        other.state.status.message_posted.connect(lambda text, error: messages.append(text))
        _click(qtbot, other.grid_view, 2, 0)
        qtbot.waitUntil(lambda: len(messages) == 1)
        assert messages[0].startswith("layer 0: linear attention") and other.state.inspector.head is None
    finally:
        other.controller.shutdown()


def test_older_session_without_the_entry_marks_nothing(qtbot, tmp_path, qwen3_5_loaded):
    """A file written before ``attention_layers`` existed: every layer counts as attention (its
    discovery scores every layer), even right after a hybrid model's session was shown."""
    from gaze_explorer.storage import SessionReader, SessionWriter

    hybrid = tmp_path / "hybrid.h5"  # a session header written by the real writer, no run
    image = np.asarray(_strip())
    grid = qwen3_5_loaded.prepare(_strip(), "image").grids[0]
    SessionWriter(hybrid, meta=qwen3_5_loaded.describe(), image=image, grid=grid, regions=[]).close()
    old = tmp_path / "v1.h5"
    shutil.copy(V1_FILE, old)
    with SessionReader(old) as r:
        assert r.attention_layers() is None and r.meta["model"]["n_layers"] == 6
    win = _window(qtbot, tmp_path)
    try:
        assert win.open_session(str(hybrid))
        qtbot.waitUntil(lambda: win.grid_view.linear == LINEAR)
        assert win.open_session(str(old))
        assert win.state.heads.attention_layers is None and win.state.heads.n_layers == 6
        assert win.state.heads.gaze_scores is not None  # its discovery, finite on every layer
        qtbot.waitUntil(lambda: win.grid_view.linear == ())
        assert win.grid_view.linear_items == []
        assert not any(label.endswith(" lin") for label in dict(win.grid_view.y_ticks.update()).values())
    finally:
        win.controller.shutdown()


def test_older_file_opened_with_the_model_loaded_takes_its_layers(qtbot, tmp_path, qwen3_5_loaded):
    """A file without the entry, of the loaded model's grid, reopened while that model is loaded:
    the loaded model says which layers are linear (they are its file's layers too)."""
    from gaze_explorer.storage import SessionWriter

    meta = {k: v for k, v in qwen3_5_loaded.describe().items() if k != "attention_layers"}
    path = tmp_path / "older.h5"
    grid = qwen3_5_loaded.prepare(_strip(), "image").grids[0]
    SessionWriter(path, meta=meta, image=np.asarray(_strip()), grid=grid, regions=[]).close()
    win = _window(qtbot, tmp_path)
    try:
        win.controller._on_model_loaded(qwen3_5_loaded)
        assert win.open_session(str(path))
        assert win.state.heads.attention_layers == (1, 3)
        _assert_marks_linear(qtbot, win)
    finally:
        win.controller.shutdown()

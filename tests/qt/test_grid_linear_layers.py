"""The layer x head grid on a hybrid model (issue 19): layers without softmax attention (Qwen3.5's
linear-attention layers, whose discovery scores are NaN) are hatched grey, labelled "lin" on the
layer axis, say so on hover, and a click, Ctrl+click or rectangle does not inspect or pick their
heads (a status line says why); the other layers behave as before."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from test_head_grid import _shown, _widget_pos, drag  # the grid tests' own helpers

from gaze_explorer.core.state import AppState

LEFT = QtCore.Qt.MouseButton.LeftButton
CTRL = QtCore.Qt.KeyboardModifier.ControlModifier
LINEAR_TEXT = "layer 1: linear attention, no attention weights"


def _with_linear_layer_1(state) -> np.ndarray:
    scores = np.arange(12, dtype=float).reshape(3, 4)
    scores[1] = np.nan  # what discovery gives a linear-attention layer
    state.heads.set_gaze_scores(scores)
    return scores


def _band_rows(view) -> list[tuple[float, float, float, float]]:
    return [(r.left(), r.top(), r.width(), r.height()) for r in (item.rect() for item in view.linear_items)]


def test_linear_rows_are_hatched_labelled_and_say_so_on_hover(qtbot, state):
    view = _shown(qtbot, state)
    assert view.linear == () and view.linear_items == []  # every layer scored: nothing marked
    _with_linear_layer_1(state)
    qtbot.waitUntil(lambda: view.linear == (1,))
    assert _band_rows(view) == [(-0.5, 0.5, 4.0, 1.0)]  # the whole row of layer 1, every head
    (band,) = view.linear_items
    assert band.brush().style() == QtCore.Qt.BrushStyle.BDiagPattern and band.toolTip() == LINEAR_TEXT
    assert dict(view.y_ticks.update()) == {0: "0", 1: "1 lin", 2: "2"}
    assert np.isnan(view.image_item.image[1]).all()  # no colour claims a value there
    # hover: the read-out names the layer as linear, a scored cell shows its value
    for layer, expected in ((1, LINEAR_TEXT), (2, "L2 H3 = 11")):
        pos = _widget_pos(view, 3, layer)
        event = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove,
            QtCore.QPointF(pos),
            QtCore.QPointF(view.graphics.mapToGlobal(pos)),
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(view.graphics.viewport(), event)
        qtbot.waitUntil(lambda expected=expected: view.hover_label.text() == expected)
    # scores for every layer again (another model's discovery): the marks go
    state.heads.set_gaze_scores(np.ones((3, 4)))
    qtbot.waitUntil(lambda: view.linear == ())
    assert view.linear_items == [] and dict(view.y_ticks.update())[1] == "1"


def test_clicks_and_rectangles_leave_linear_heads_alone(qtbot, state):
    view = _shown(qtbot, state)
    _with_linear_layer_1(state)
    qtbot.waitUntil(lambda: view.linear == (1,))
    messages = []
    state.status.message_posted.connect(lambda text, error: messages.append((text, error)))
    viewport = view.graphics.viewport()
    qtbot.mouseClick(viewport, LEFT, pos=_widget_pos(view, 2, 1))
    qtbot.waitUntil(lambda: len(messages) == 1)
    assert state.inspector.head is None
    assert messages == [(f"{LINEAR_TEXT}; its heads cannot be inspected or steered", False)]
    qtbot.mouseClick(viewport, LEFT, CTRL, pos=_widget_pos(view, 0, 1))
    qtbot.waitUntil(lambda: len(messages) == 2)
    assert state.heads.custom == set() and state.heads.kind == "top"
    # the same clicks on a softmax layer inspect and pick, as before
    qtbot.mouseClick(viewport, LEFT, pos=_widget_pos(view, 2, 2))
    qtbot.waitUntil(lambda: state.inspector.head == (2, 2))
    # a rectangle over layers 0..2, heads 1..2: the linear layer's heads are left out, and said so
    drag(
        viewport,
        [_widget_pos(view, 1, 0), _widget_pos(view, 1.5, 1), _widget_pos(view, 2, 2)],
        QtCore.Qt.KeyboardModifier.ShiftModifier,
        pause_ms=40,
    )
    qtbot.waitUntil(lambda: state.heads.custom == {(0, 1), (0, 2), (2, 1), (2, 2)})
    assert state.heads.kind == "custom" and "layers" not in messages[-1][0]
    assert messages[-1][0].startswith(LINEAR_TEXT)


def test_tiny_qwen3_5_discovery_marks_exactly_its_linear_layers(qtbot):
    """Discovery on a tiny random Qwen3.5 (layers 0 and 2 linear attention, 1 and 3 softmax): the
    grid hatches the model's own linear layers, no more, no fewer."""
    inference_tests = str(Path(__file__).resolve().parents[1] / "inference")
    sys.path.insert(0, inference_tests)
    try:
        from family_helpers import strip_image
        from test_family_qwen3_5 import tiny_qwen3_5
    finally:
        sys.path.remove(inference_tests)
    from types import SimpleNamespace

    from gaze_explorer.inference.discovery import discover
    from gaze_explorer.inference.loading import loaded_from_parts

    model, adapter = tiny_qwen3_5()
    loaded = loaded_from_parts(model, adapter)
    strip = SimpleNamespace(image=strip_image(384, 64), panel_widths=[64] * 6, name="s")
    result = list(discover(loaded, [strip], prompt_template="what is in the {ordinal} panel ?"))[-1]
    state = AppState()
    state.heads.set_shape(adapter.n_layers, adapter.n_heads)
    state.heads.set_gaze_scores(result.scores, result.image_mass, result.image_maps)
    view = _shown(qtbot, state)
    linear = tuple(layer for layer in range(adapter.n_layers) if layer not in adapter.attention_layers)
    assert linear == (0, 2)
    qtbot.waitUntil(lambda: view.linear == linear)
    assert [round(top + 0.5) for _, top, _, _ in _band_rows(view)] == [0, 2]

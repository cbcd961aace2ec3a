"""The step keys, defined once: Left/Right (Shift: 10 steps), Home/End, Space (play/pause).

The main window turns the table into window-wide shortcuts; the token timeline handles the same
keys when it has the focus on its own (outside a main window, whose shortcuts come first).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore

from gaze_explorer.core.state import StepModel

BIG_STEP = 10  # Shift+Left/Right

_Key, _Mod = QtCore.Qt.Key, QtCore.Qt.KeyboardModifier
_NONE, _SHIFT = _Mod.NoModifier, _Mod.ShiftModifier

STEP_KEYS: tuple[tuple[QtCore.QKeyCombination, Callable[[StepModel], None]], ...] = (
    (QtCore.QKeyCombination(_NONE, _Key.Key_Right), lambda step: step.move(1)),
    (QtCore.QKeyCombination(_NONE, _Key.Key_Left), lambda step: step.move(-1)),
    (QtCore.QKeyCombination(_SHIFT, _Key.Key_Right), lambda step: step.move(BIG_STEP)),
    (QtCore.QKeyCombination(_SHIFT, _Key.Key_Left), lambda step: step.move(-BIG_STEP)),
    (QtCore.QKeyCombination(_NONE, _Key.Key_Home), lambda step: step.set_step(0)),
    (QtCore.QKeyCombination(_NONE, _Key.Key_End), lambda step: step.set_step(step.n_steps - 1)),
    (QtCore.QKeyCombination(_NONE, _Key.Key_Space), lambda step: step.set_playing(not step.playing)),
)


def step_key_action(combination: QtCore.QKeyCombination) -> Callable[[StepModel], None] | None:
    """What a key press (key plus modifiers; keypad keys count as the plain ones) does to the step."""
    plain = QtCore.QKeyCombination(combination.keyboardModifiers() & ~_Mod.KeypadModifier, combination.key())
    return next((act for combo, act in STEP_KEYS if combo == plain), None)

"""Steering panel: head set, mode and strength, prompt and decoding options, target, and the
Generate baseline / Steer / Stop buttons.

Head-set and target choices are written to the models at once; the buttons only announce a
request (``baseline_requested`` ...), which the main window turns into a worker run. The target row
and the buttons sit below a scroll area that holds the rest, so they never scroll away on a small
screen.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.errors import GazeExplorerError, HeadSpecError
from gaze_explorer.core.heads import (
    AUTHORS_CONTROL_POOL,
    CRITERIA,
    DEFAULT_CONTROL_POOL,
    ControlPool,
    load_head_list,
)
from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.core.protocol_choices import DEFAULT_BIAS_ON
from gaze_explorer.core.state import AppState
from gaze_explorer.core.steering import DEFAULT_STRENGTH, SteeringMode, SteeringPlan
from gaze_explorer.qt.widgets.signals import signals_blocked

DEFAULT_PROMPT = "What is happening in this panel of the comic strip?"
POOL_CHOICES = (DEFAULT_CONTROL_POOL, AUTHORS_CONTROL_POOL, "all-non-gaze")  # ControlPool's kinds
POOL_TIP = (
    "where the random control draws its K heads from, never the top-K gaze heads: band = the layers "
    "the top-K gaze heads occupy (the paper's headline control); percentile:P = heads scoring at or "
    "below the P-th percentile (the authors' code: percentile:5); all-non-gaze = every other head"
)
FILE_SET_TEXT = "from file"  # the fixed-set radio for a loaded head list
RUN_SET_TEXT = "run's own heads"  # the same radio for a shown run's own set (HeadSelectionModel.file_source)

# The protocol each target kind runs (issue 17): one panel is static steering, a drawn box is region
# steering, a schedule is dynamic narration. DEFAULT_BIAS_ON says when each one's bias applies.
TARGET_PROTOCOL = {"panel": "static", "box": "region", "schedule": "dynamic"}
DECODE_ONLY_TIP = (
    "Apply the steering bias on decode steps only (unticked: on the prompt rows too).\n"
    "Follows the target, as in the paper: unticked for a panel or a box (prefill+decode), ticked for a\n"
    "schedule (decode only). Once you tick or untick it, your choice is kept for every target;\n"
    "right-click → 'Follow the target' to give it back to the target. A live switch during a run\n"
    "changes nothing here: the run keeps the setting it started with."
)


def default_decode_only(target_kind: str) -> bool:
    """Whether the paper's protocol for this target kind biases decode steps only."""
    return DEFAULT_BIAS_ON[TARGET_PROTOCOL[target_kind]] == "decode"


class SteeringPanel(QtWidgets.QWidget):
    """The steering controls."""

    baseline_requested = QtCore.Signal()
    steer_requested = QtCore.Signal()
    stop_requested = QtCore.Signal()

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        options = QtWidgets.QWidget()
        options_column = QtWidgets.QVBoxLayout(options)
        options_column.setContentsMargins(0, 0, 0, 0)
        form = QtWidgets.QFormLayout()
        options_column.addLayout(form)
        options_column.addStretch(1)  # spare height below the options, not between them
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(4, 2, 4, 2)
        self.options_scroll = QtWidgets.QScrollArea()
        self.options_scroll.setWidget(options)
        self.options_scroll.setWidgetResizable(True)
        self.options_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.options_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        fixed = QtWidgets.QFormLayout()
        fixed.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        fixed.setContentsMargins(4, 2, 4, 2)
        self._options = options
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        outer.addWidget(self.options_scroll, 1)
        outer.addLayout(fixed)

        # head set
        self.head_buttons: dict[str, QtWidgets.QRadioButton] = {}
        self.k_spin = QtWidgets.QSpinBox()
        self.k_spin.setRange(1, 100000)
        self.k_spin.setValue(state.heads.k)
        self.seed_spin = QtWidgets.QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setPrefix("seed ")
        self.load_heads_button = QtWidgets.QPushButton("Load list…")
        # what top-K ranks by (issue 17: every place that takes a head set takes a criterion)
        self.criterion_combo = QtWidgets.QComboBox()
        self.criterion_combo.addItems(list(CRITERIA))
        self.criterion_combo.setCurrentText(state.heads.criterion)
        self.criterion_combo.setToolTip("top-K ranks the heads by this criterion's discovery scores")
        # where the random control draws from (issue 17: band, the paper's headline; percentile:5,
        # the authors' code; all-non-gaze), and how many heads that pool holds (issue 16)
        self.pool_combo = QtWidgets.QComboBox()
        self.pool_combo.setEditable(True)  # percentile:P for any P
        self.pool_combo.addItems(list(POOL_CHOICES))
        self.pool_combo.setCurrentText(state.heads.pool)
        self.pool_combo.setToolTip(POOL_TIP)
        self.pool_label = QtWidgets.QLabel("")
        self.pool_label.setWordWrap(True)
        self.head_group = QtWidgets.QButtonGroup(self)
        heads_box = QtWidgets.QGridLayout()
        for i, (kind, label) in enumerate(
            (
                ("top", "top-K"),
                ("random", "random control"),
                ("all", "all heads"),
                ("custom", "custom picks"),
                ("file", FILE_SET_TEXT),
            )
        ):
            b = QtWidgets.QRadioButton(label)
            self.head_buttons[kind] = b
            self.head_group.addButton(b)
            heads_box.addWidget(b, i // 2, i % 2)
        self.head_buttons[state.heads.kind].setChecked(True)
        self.k_spin.setPrefix("K ")
        heads_box.addWidget(self.load_heads_button, 2, 1)
        heads_box.addWidget(self.k_spin, 3, 0)
        heads_box.addWidget(self.seed_spin, 3, 1)
        heads_box.addWidget(self.criterion_combo, 4, 0)
        heads_box.addWidget(self.pool_combo, 4, 1)
        heads_box.addWidget(self.pool_label, 5, 0, 1, 2)
        heads_box.setColumnStretch(2, 1)  # the radio buttons as wide as their text (their click area)
        form.addRow("heads", heads_box)
        self.heads_label = QtWidgets.QLabel("")
        self.heads_label.setWordWrap(True)
        form.addRow("", self.heads_label)
        self.head_group.buttonToggled.connect(self._head_kind_from_ui)
        self.k_spin.valueChanged.connect(self._head_kind_from_ui)
        self.seed_spin.valueChanged.connect(self._head_kind_from_ui)
        self.criterion_combo.currentTextChanged.connect(self._head_kind_from_ui)
        self.pool_combo.activated.connect(self._pool_from_ui)
        self.pool_combo.lineEdit().editingFinished.connect(self._pool_from_ui)
        self.load_heads_button.clicked.connect(self._load_heads_dialog)

        # mode, strength
        self.mode_combo = QtWidgets.QComboBox()
        for m in SteeringMode:
            self.mode_combo.addItem(m.value)
        self.strength_spin = QtWidgets.QDoubleSpinBox()
        self.strength_spin.setDecimals(1)
        self.strength_spin.setRange(0.0, 1e6)
        self.strength_spin.setValue(DEFAULT_STRENGTH)
        self.decode_only = QtWidgets.QCheckBox("decode only")
        self.decode_only.setToolTip(DECODE_ONLY_TIP)
        # True once the user ticked or unticked it (``clicked`` fires for the mouse and the keyboard,
        # never for setChecked): from then on the target kind no longer sets it
        self.decode_only_chosen = False
        self.decode_only.clicked.connect(self._decode_only_from_ui)
        follow = QtGui.QAction("Follow the target (the paper's default)", self.decode_only)
        follow.triggered.connect(self.follow_target_bias)
        self.decode_only.addAction(follow)
        self.decode_only.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.ActionsContextMenu)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.mode_combo, 1)
        row.addWidget(self.decode_only)
        form.addRow("mode", row)
        form.addRow("strength", self.strength_spin)

        # prompt and decoding
        self.prompt_edit = QtWidgets.QPlainTextEdit(DEFAULT_PROMPT)
        self.prompt_edit.setFixedHeight(54)
        form.addRow("prompt", self.prompt_edit)
        self.max_tokens = QtWidgets.QSpinBox()
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(24)
        self.sampling = QtWidgets.QCheckBox("sample")
        self.temperature = QtWidgets.QDoubleSpinBox()
        self.temperature.setRange(0.01, 5.0)
        self.temperature.setValue(1.0)
        self.temperature.setPrefix("T ")
        self.rep_penalty = QtWidgets.QDoubleSpinBox()
        self.rep_penalty.setRange(0.1, 5.0)
        self.rep_penalty.setSingleStep(0.1)
        self.rep_penalty.setValue(1.0)
        self.rep_penalty.setPrefix("rep ")
        self.no_repeat = QtWidgets.QSpinBox()
        self.no_repeat.setRange(0, 16)
        self.no_repeat.setPrefix("no-rep ")
        self.no_repeat.setToolTip("no_repeat_ngram_size: forbid repeating n-grams of this size (0 = off)")
        self.ignore_eos = QtWidgets.QCheckBox("past EOS")
        self.ignore_eos.setToolTip("Keep generating after the end-of-sequence token, up to max new tokens")
        row = QtWidgets.QHBoxLayout()
        for w in (QtWidgets.QLabel("max new"), self.max_tokens, self.sampling, self.temperature):
            row.addWidget(w)
        form.addRow("decode", row)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.rep_penalty)
        row.addWidget(self.no_repeat)
        row.addWidget(self.ignore_eos)
        form.addRow("", row)

        # target
        self.target_kind = QtWidgets.QComboBox()
        self.target_kind.addItems(["panel", "box", "schedule"])
        self.panel_spin = QtWidgets.QSpinBox()
        self.panel_spin.setRange(1, 32)
        self.panel_spin.setPrefix("panel ")
        self.schedule_edit = QtWidgets.QLineEdit()
        self.schedule_edit.setPlaceholderText("4,2,1,6,5,3")
        self.every_spin = QtWidgets.QSpinBox()
        self.every_spin.setRange(1, 10000)
        self.every_spin.setValue(state.target.switch_every)
        self.every_spin.setPrefix("every ")
        row = QtWidgets.QHBoxLayout()
        for w in (self.target_kind, self.panel_spin, self.schedule_edit, self.every_spin):
            row.addWidget(w)
        fixed.addRow("target", row)
        self.target_kind.currentTextChanged.connect(self._target_from_ui)
        self.panel_spin.valueChanged.connect(self._target_from_ui)
        self.schedule_edit.editingFinished.connect(self._target_from_ui)
        self.every_spin.valueChanged.connect(self._target_from_ui)

        # buttons
        self.baseline_button = QtWidgets.QPushButton("Generate baseline")
        self.steer_button = QtWidgets.QPushButton("Steer")
        self.steer_button.setToolTip("Steer the active heads to the target (Ctrl+Enter)")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setToolTip("Stop the run; keeps the tokens so far (Esc)")
        self.stop_button.setEnabled(False)
        self.baseline_button.clicked.connect(self.baseline_requested)
        self.steer_button.clicked.connect(self.steer_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        row = QtWidgets.QHBoxLayout()
        for w in (self.baseline_button, self.steer_button, self.stop_button):
            row.addWidget(w)
        fixed.addRow(row)

        # the dock is at least as wide as the options, so none is cut off at the right edge
        bar = self.options_scroll.verticalScrollBar().sizeHint().width()
        self.options_scroll.setMinimumWidth(options.minimumSizeHint().width() + bar + 4)
        state.heads.selection_changed.connect(self._show_heads)
        state.target.target_changed.connect(self._show_target)
        state.status.busy_changed.connect(self._on_busy)
        self._show_heads()
        self._show_target()

    # ---- view -> model -----------------------------------------------------------------------
    def _pool_from_ui(self, *_: object) -> None:
        """The control pool typed or picked: checked by ``ControlPool.parse``; a bad one is said in
        the label and the box goes back to the pool in use."""
        heads = self.state.heads
        text = self.pool_combo.currentText().strip()
        if text == heads.pool:
            return
        try:
            pool = str(ControlPool.parse(text))
        except HeadSpecError as err:
            self.pool_label.setText(str(err))
            with signals_blocked(self.pool_combo):
                self.pool_combo.setCurrentText(heads.pool)
            return
        heads.set_kind(heads.kind, pool=pool)

    def _head_kind_from_ui(self, *_: object) -> None:
        kind = next((k for k, b in self.head_buttons.items() if b.isChecked()), "top")
        if kind == "file" and self.state.heads.file_set is None:
            return  # chosen by loading a list
        self.state.heads.set_kind(
            kind,
            k=self.k_spin.value(),
            seed=self.seed_spin.value(),
            criterion=self.criterion_combo.currentText(),
        )

    def _load_heads_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Load head list", "", "Head lists (*.json *.csv)"
        )
        if path:
            self.load_head_file(path)

    def load_head_file(self, path: str) -> bool:
        """Use a JSON/CSV head list as the active set; a bad file posts a clear error instead."""
        try:
            self.state.heads.set_file_set(load_head_list(path))
        except GazeExplorerError as err:
            self.state.status.post(str(err), error=True)
            return False
        return True

    def _target_from_ui(self, *_: object) -> None:
        kind = self.target_kind.currentText()
        target = self.state.target
        if kind == "panel":
            target.set_panel(self.panel_spin.value() - 1)
        elif kind == "schedule":
            target.set_schedule(self.schedule_edit.text(), self.every_spin.value())
        elif target.box is not None:
            target.set_box(target.box)

    def _decode_only_from_ui(self, _checked: bool) -> None:
        self.decode_only_chosen = True

    def follow_target_bias(self) -> None:
        """Forget the user's tick: the checkbox follows the target kind's default again."""
        self.decode_only_chosen = False
        self._show_bias_default()

    # ---- model -> view -----------------------------------------------------------------------
    def _show_bias_default(self) -> None:
        """The target kind's default bias timing, unless the user chose one or a run is going (a
        live switch must not change it: the run keeps what it started with; applied when it ends)."""
        if self.decode_only_chosen or self.state.status.busy:
            return
        self.decode_only.setChecked(default_decode_only(self.state.target.kind))

    def _show_heads(self) -> None:
        heads = self.state.heads
        # the group blocked too: checking one button unchecks another, and the group's signal would
        # otherwise write the boxes' old K and seed back into the model
        with signals_blocked(
            self.head_group, self.k_spin, self.seed_spin, self.criterion_combo, self.pool_combo
        ):
            self.head_buttons[heads.kind].setChecked(True)
            self.k_spin.setValue(heads.k)
            self.seed_spin.setValue(heads.seed)
            self.criterion_combo.setCurrentText(heads.criterion)
            self.pool_combo.setCurrentText(heads.pool)
        self.pool_label.setText(self._pool_text())
        # a fixed set is a loaded file's, or a shown run's own (use_run_heads: its recorded choice
        # does not give it under the discovery on screen); the radio says which
        source = heads.file_source
        self.head_buttons["file"].setText(RUN_SET_TEXT if source else FILE_SET_TEXT)
        self.head_buttons["file"].setToolTip(
            source or "a head list loaded from a JSON or CSV file (Load list…)"
        )
        shown = ", ".join(f"L{l}H{h}" for l, h in heads.active.heads[:8])  # noqa: E741
        more = f" … (+{len(heads.active) - 8})" if len(heads.active) > 8 else ""
        name = f"{source}, {heads.active.name}" if heads.kind == "file" and source else heads.active.name
        text = f"{name}: {len(heads.active)} head(s) {shown}{more}"
        choice = heads.choice
        if choice is not None and heads.kind == "top" and choice.fill_in_note():
            # image / localization top-K beyond what the criterion itself selects (issue 17)
            text += f"\nonly {choice.n_selected} pass the {choice.criterion} criterion; the rest are fill-ins"
        self.heads_label.setText(text)

    def _pool_text(self) -> str:
        """Where the random control draws from: its pool and size, or why it cannot be drawn."""
        heads = self.state.heads
        if heads.kind != "random":
            return ""
        choice = heads.choice
        if choice is not None and choice.pool is not None:
            layers = (
                ""
                if choice.pool_layers is None
                else f" (layers {choice.pool_layers[0]}–{choice.pool_layers[1]})"
            )
            return f"from {choice.pool}{layers}: {choice.pool_size} heads"
        return heads.problem  # e.g. the pool holds fewer heads than K

    def _show_target(self) -> None:
        target = self.state.target
        with signals_blocked(self.target_kind, self.panel_spin, self.schedule_edit, self.every_spin):
            self.target_kind.setCurrentText(target.kind)
            self.panel_spin.setValue(target.panel + 1)
            self.schedule_edit.setText(target.schedule_text)
            self.every_spin.setValue(target.switch_every)
        self.panel_spin.setVisible(target.kind == "panel")
        self.schedule_edit.setVisible(target.kind == "schedule")
        self.every_spin.setVisible(target.kind == "schedule")
        self._show_bias_default()

    def _on_busy(self, busy: bool) -> None:
        self.baseline_button.setEnabled(not busy)
        self.steer_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self._show_bias_default()  # a default held back while the run went

    # ---- what the controller reads -------------------------------------------------------------
    def prompt(self) -> str:
        return self.prompt_edit.toPlainText().strip()

    def generation_options(self) -> GenerationOptions:
        """The decoding options (raises PromptError for impossible values)."""
        return GenerationOptions(
            max_new_tokens=self.max_tokens.value(),
            do_sample=self.sampling.isChecked(),
            temperature=self.temperature.value(),
            repetition_penalty=self.rep_penalty.value(),
            no_repeat_ngram_size=self.no_repeat.value(),
            ignore_eos=self.ignore_eos.isChecked(),
        )

    def plan(self) -> SteeringPlan:
        """The steering plan for the active head set."""
        return SteeringPlan(
            heads=self.state.heads.active,
            mode=SteeringMode.parse(self.mode_combo.currentText()),
            strength=self.strength_spin.value(),
            decode_only=self.decode_only.isChecked(),
        )

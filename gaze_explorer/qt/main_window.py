"""The main window: dockable views around one :class:`AppState`, menus, keys and the status bar.

The window wires the views' requests to the :class:`AppController` and shows the controller's
messages; views and controller never call each other directly.

Layout (designed for 1280x760 first): the image in the centre with the token timeline under it; the
discovery, head inspector, prompt and spans docks tabbed in the left column over the session runs; the
grid over the steering dock in the right column. The side columns take the full height (the corners
belong to them). View -> Reset layout returns to this arrangement, sized for the current window.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.controller import AppController
from gaze_explorer.qt.span_store import SessionSpanStore
from gaze_explorer.qt.views.comparison import ComparisonView
from gaze_explorer.qt.views.discovery import DiscoveryView
from gaze_explorer.qt.views.head_grid import HeadGridView
from gaze_explorer.qt.views.head_inspector import HeadInspectorView
from gaze_explorer.qt.views.image_overlay import ImageOverlayView
from gaze_explorer.qt.views.prompt_tokens import PromptTokensView
from gaze_explorer.qt.views.session_browser import SessionBrowserView
from gaze_explorer.qt.views.spans import SpanListView
from gaze_explorer.qt.views.steering_panel import SteeringPanel
from gaze_explorer.qt.views.token_timeline import TokenTimelineView
from gaze_explorer.qt.widgets.panel_count_dialog import ask_panel_count
from gaze_explorer.qt.widgets.step_keys import STEP_KEYS

Dock = QtCore.Qt.DockWidgetArea
DEFAULT_SIZE = (1560, 960)
README = Path(__file__).resolve().parents[2] / "README.md"  # present in a checkout, not in a wheel
KEYS_HELP = """<table cellspacing=4>
<tr><td>← / →</td><td>one step back / forward</td></tr>
<tr><td>Shift+← / Shift+→</td><td>ten steps</td></tr>
<tr><td>Home / End</td><td>first / last step</td></tr>
<tr><td>Space</td><td>play / pause</td></tr>
<tr><td>1–9</td><td>target panel (switches live while a run streams)</td></tr>
<tr><td>Ctrl+Enter</td><td>steer</td></tr>
<tr><td>Esc</td><td>stop (timeline or Spans dock, a span shown: back to per step)</td></tr>
<tr><td>timeline: drag / click</td><td>average the dragged steps (a span) / one step</td></tr>
<tr><td>Ctrl+E / Ctrl+Shift+E</td><td>export the figure / the head list</td></tr>
<tr><td>grid: click / Ctrl+click / Shift+drag</td><td>inspect a head / toggle a pick / pick a rectangle</td></tr>
<tr><td>image: click / Box target + drag</td><td>target a panel / draw a box target</td></tr>
</table>"""


class MainWindow(QtWidgets.QMainWindow):
    """gaze-explorer's main window."""

    def __init__(self, state: AppState | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("gaze-explorer")
        self.resize(*self._fitted_size())
        self.state = state or AppState()
        self.controller = AppController(self.state, self)
        self.messages: list[tuple[str, bool]] = []  # every message shown, for tests and the log
        self._message_box: QtWidgets.QMessageBox | None = None

        self.overlay_view = ImageOverlayView(self.state)
        self.grid_view = HeadGridView(self.state)
        self.timeline_view = TokenTimelineView(self.state)
        self.steering_panel = SteeringPanel(self.state)
        self.discovery_view = DiscoveryView(self.state)
        self.session_view = SessionBrowserView(self.state)
        self.session_view.on_rename = self.controller.rename_run  # saved in the session file
        self.controller.ask_panels = lambda image, current: ask_panel_count(self, image, current)
        self.prompt_view = PromptTokensView(self.state)
        self.inspector_view = HeadInspectorView(self.state)
        self.comparison_view = ComparisonView(self.state)
        self.comparison_view.truth_source = lambda: self.controller.truth  # judges the segments
        self.spans_view = SpanListView(self.state)
        # a run's spans and value norms live in the session file
        self.state.spans.attach(SessionSpanStore(self.state, self.controller.recorder))
        self.setCentralWidget(self.overlay_view)
        self.setDockNestingEnabled(True)
        Corner = QtCore.Qt.Corner
        self.setCorner(Corner.BottomLeftCorner, Dock.LeftDockWidgetArea)
        self.setCorner(Corner.BottomRightCorner, Dock.RightDockWidgetArea)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self._dock("Layer × head grid", self.grid_view, Dock.RightDockWidgetArea)
        self._dock("Steering", self.steering_panel, Dock.RightDockWidgetArea)
        self._dock("Token timeline", self.timeline_view, Dock.BottomDockWidgetArea)
        self._dock("Comparison", self.comparison_view, Dock.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["Token timeline"], self.docks["Comparison"])
        self.docks["Token timeline"].raise_()
        self._dock("Discovery", self.discovery_view, Dock.LeftDockWidgetArea)
        self._dock("Inspector", self.inspector_view, Dock.LeftDockWidgetArea)
        self._dock("Prompt", self.prompt_view, Dock.LeftDockWidgetArea)
        self._dock("Spans", self.spans_view, Dock.LeftDockWidgetArea)
        self._dock("Session runs", self.session_view, Dock.LeftDockWidgetArea)
        self.tabifyDockWidget(self.docks["Discovery"], self.docks["Inspector"])
        self.tabifyDockWidget(self.docks["Inspector"], self.docks["Prompt"])
        self.tabifyDockWidget(self.docks["Prompt"], self.docks["Spans"])
        self.docks["Discovery"].raise_()
        self._sized = False

        self.status_label = QtWidgets.QLabel()
        self.statusBar().addPermanentWidget(self.status_label, 1)
        self._wire()
        self._build_menus()
        self._build_shortcuts()
        self._show_status()

    def _dock(self, title: str, widget: QtWidgets.QWidget, area: Dock) -> None:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    # ---- wiring --------------------------------------------------------------------------------
    def _wire(self) -> None:
        c, s = self.controller, self.state
        panel = self.steering_panel
        panel.baseline_requested.connect(self.generate_baseline)
        panel.steer_requested.connect(self.steer)
        panel.stop_requested.connect(c.stop)
        self.discovery_view.discovery_requested.connect(c.discover)
        self.discovery_view.cancel_requested.connect(c.stop)
        self.overlay_view.image_open_requested.connect(c.open_image)
        self.overlay_view.image_pasted.connect(self._image_pasted)
        self.overlay_view.image_rejected.connect(lambda text: self.show_message(text, True))
        self.overlay_view.panel_count_changed.connect(c.set_panel_count)
        s.status.status_changed.connect(self._show_status)
        s.status.message_posted.connect(self.show_message)
        s.inspector.head_changed.connect(self._raise_inspector)
        self.session_view.runs_selected.connect(self._compare_selected)
        self.comparison_view.compare_requested.connect(self.compare_conditions)
        c.conditions_compared.connect(self._compare_selected)
        c.condition_started.connect(self.comparison_view.set_runs)  # each run shows as it streams

    def generate_baseline(self) -> None:
        try:
            options = self.steering_panel.generation_options()
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return
        self.controller.generate(self.steering_panel.prompt(), options, plan=None)

    def steer(self) -> None:
        if self._offer_discovery():
            return
        try:
            options = self.steering_panel.generation_options()
            plan = self.steering_panel.plan()
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return
        self.controller.generate(self.steering_panel.prompt(), options, plan=plan)

    def compare_conditions(self) -> None:
        """Baseline, top-K gaze, random control and all heads on the current prompt and target,
        one after the other, then shown side by side in the Comparison dock."""
        try:
            options = self.steering_panel.generation_options()
            plan = self.steering_panel.plan()
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return
        if self.controller.compare_conditions(self.steering_panel.prompt(), options, plan):
            self.docks["Comparison"].show()
            self.docks["Comparison"].raise_()

    def _compare_selected(self, indices: list) -> None:
        """Two or more runs selected (or compared): show them side by side."""
        if len(indices) < 2:
            return
        self.comparison_view.set_runs(indices)
        self.docks["Comparison"].show()
        self.docks["Comparison"].raise_()

    def _offer_discovery(self) -> bool:
        """Steering top-K (or the random control) before any discovery on the demo model: ask to
        discover on the demo comics first (seconds), as the CLI does, then steer. True if it took over."""
        heads, loaded = self.state.heads, self.controller.loaded
        demo = getattr(loaded, "model_id", "") == "demo"
        if (
            heads.kind not in ("top", "random")
            or heads.gaze_scores is not None
            or not demo
            or self.controller.busy
        ):
            return False
        answer = QtWidgets.QMessageBox.question(
            self,
            "gaze-explorer",
            "No gaze scores yet: the top-K heads come from discovery.\n"
            "Run discovery on the demo comics now (a few seconds), then steer?",
        )
        if answer != QtWidgets.QMessageBox.StandardButton.Yes:
            return True

        worker = self.controller.discover("demo")  # None: refused, with a message
        if worker is not None:
            # after the controller's own handling of ``done`` (connected first): the worker is gone
            worker.done.connect(lambda: self.state.heads.gaze_scores is not None and self.steer())
        return True

    def _image_pasted(self, image: QtGui.QImage) -> None:
        from PIL import Image

        from gaze_explorer.core.strips import MAX_PIXELS, MAX_SIDE

        if image.isNull():
            self.show_message("the pasted or dropped image could not be read", True)
            return
        w, h = image.width(), image.height()
        if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
            self.show_message(
                f"the pasted or dropped image is {w}x{h} px; the limit is {MAX_SIDE} px a side and "
                f"{MAX_PIXELS} px in all (downscale it first)",
                True,
            )
            return
        rgb = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
        data = bytes(rgb.constBits())[: rgb.sizeInBytes()]
        pil = Image.frombuffer("RGB", (rgb.width(), rgb.height()), data, "raw", "RGB", rgb.bytesPerLine(), 1)
        self.controller.set_image(pil.copy(), self.state.session.n_panels, "pasted image")

    def show_message(self, text: str, error: bool = False) -> None:
        """Errors become a (non-blocking) message box; other messages go to the status bar."""
        self.messages.append((text, error))
        if not error:
            self.statusBar().showMessage(text, 6000)
            return
        self.statusBar().showMessage("⚠ " + text, 10000)
        if self._message_box is None:
            self._message_box = QtWidgets.QMessageBox(self)
            self._message_box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
            self._message_box.setWindowTitle("gaze-explorer")
        self._message_box.setText(text)
        self._message_box.open()

    def _show_status(self) -> None:
        self.status_label.setText(self.state.status.summary())

    # ---- menus and keys ------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction("Open image…", QtGui.QKeySequence.StandardKey.Open, self.overlay_view.open_dialog)
        file_menu.addAction(
            "Paste image", QtGui.QKeySequence.StandardKey.Paste, self.overlay_view.paste_image
        )
        file_menu.addAction("Open session…", self._open_session_dialog)
        file_menu.addSeparator()
        file_menu.addAction("Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)
        model_menu = bar.addMenu("&Model")
        model_menu.addAction("Load model…", self._load_model_dialog)
        Key, Mod = QtCore.Qt.Key, QtCore.Qt.KeyboardModifier
        ctrl = Mod.ControlModifier
        self.actions: dict[str, QtGui.QAction] = {}  # the menu actions whose keys the menus show
        run_menu = bar.addMenu("&Run")
        run_menu.addAction("Generate baseline", self.generate_baseline)
        self._keyed(
            run_menu,
            "Steer",
            self.steer,
            QtCore.QKeyCombination(ctrl, Key.Key_Return),
            QtCore.QKeyCombination(ctrl, Key.Key_Enter),
        )
        self._keyed(run_menu, "Stop", self.controller.stop, Key.Key_Escape)
        run_menu.addAction("Compare conditions", self.compare_conditions)
        run_menu.addAction("Discover gaze heads", lambda: self.docks["Discovery"].raise_())
        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction("Reset layout", self.reset_layout)
        export_menu = bar.addMenu("&Export")
        self._keyed(
            export_menu, "Figure…", self.export_figure_dialog, QtCore.QKeyCombination(ctrl, Key.Key_E)
        )
        self._keyed(
            export_menu,
            "Head list…",
            self.export_heads_dialog,
            QtCore.QKeyCombination(ctrl | Mod.ShiftModifier, Key.Key_E),
        )
        export_menu.addAction("Run as JSON…", self.export_run_dialog)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Keys and mouse…", self.show_keys)
        help_menu.addAction("Documentation (README)", self.open_docs)

    def _keyed(self, menu: QtWidgets.QMenu, text: str, slot, *keys) -> QtGui.QAction:
        """A menu action that owns its keyboard shortcut, so the menu shows the key."""
        action = menu.addAction(text, slot)
        action.setShortcuts([QtGui.QKeySequence(k) for k in keys])
        action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        self.actions[text] = action
        return action

    def show_keys(self) -> None:
        box = QtWidgets.QMessageBox(self)
        box.setWindowTitle("gaze-explorer: keys and mouse")
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        more = (
            f'<p>More in the <a href="{QtCore.QUrl.fromLocalFile(str(README)).toString()}">README</a>.</p>'
            if README.exists()
            else "<p>More in the README of the gaze-explorer source.</p>"
        )
        box.setText(KEYS_HELP + more)
        box.open()

    def open_docs(self) -> None:
        """Open the README (a checkout has it beside the package); say where it is otherwise."""
        if not README.exists():
            self.show_message("the documentation is the README and docs/ of the gaze-explorer source")
            return
        url = QtCore.QUrl.fromLocalFile(str(README))
        if not QtGui.QDesktopServices.openUrl(url):
            self.show_message(f"open {README} to read the documentation")

    def _build_shortcuts(self) -> None:
        step = self.state.step
        Key = QtCore.Qt.Key
        bindings = [(combo, lambda act=act: act(step)) for combo, act in STEP_KEYS]
        # Steer, Stop and the exports are keyed on their menu actions (the menus show the keys)
        for k in range(1, 10):
            bindings.append((getattr(Key, f"Key_{k}"), lambda k=k: self.state.target.set_panel(k - 1)))
        self.shortcuts = []
        for key, slot in bindings:
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)
            self.shortcuts.append(sc)

    # ---- dialogs -------------------------------------------------------------------------------
    def _open_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open session", "sessions", "Sessions (*.h5);;All files (*)"
        )
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> bool:
        """Reopen a session file; a bad file shows a clear message and keeps what was open."""
        if self.controller.busy:
            self.show_message("a run is in progress; stop it before opening a session", True)
            return False
        try:
            self.reader = self.controller.open_session(path)
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return False
        return True

    def _load_model_dialog(self) -> None:
        from gaze_explorer.qt.widgets.load_model_dialog import LoadModelDialog

        dialog = LoadModelDialog(self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            spec, device, dtype = dialog.choice()
            if spec:
                self.controller.load_model(spec, device=device, dtype=dtype)

    def export_figure_dialog(self) -> None:
        from gaze_explorer.qt.export_dialogs import export_figure_dialog

        export_figure_dialog(self)

    def export_heads_dialog(self) -> None:
        from gaze_explorer.qt.export_dialogs import export_heads_dialog

        export_heads_dialog(self)

    def export_run_dialog(self) -> None:
        from gaze_explorer.qt.export_dialogs import export_run_dialog

        export_run_dialog(self)

    def _fitted_size(self) -> tuple[int, int]:
        """The default size, shrunk to the screen's available area (a laptop's 1280x760)."""
        screen = QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            return DEFAULT_SIZE
        avail = screen.availableGeometry()
        return min(DEFAULT_SIZE[0], avail.width()), min(DEFAULT_SIZE[1], avail.height())

    def _raise_inspector(self) -> None:
        dock = self.docks["Inspector"]
        dock.show()
        dock.raise_()

    def open_best_head(self) -> None:
        """Open the best-scoring head in the inspector."""
        self.inspector_view.open_best()

    def reset_layout(self) -> None:
        """Every dock back in its place, shown, docked, and sized for the window's current size."""
        V = QtCore.Qt.Orientation.Vertical
        d = self.docks
        places = {
            "Layer × head grid": Dock.RightDockWidgetArea,
            "Steering": Dock.RightDockWidgetArea,
            "Token timeline": Dock.BottomDockWidgetArea,
            "Comparison": Dock.BottomDockWidgetArea,
            "Discovery": Dock.LeftDockWidgetArea,
            "Inspector": Dock.LeftDockWidgetArea,
            "Prompt": Dock.LeftDockWidgetArea,
            "Spans": Dock.LeftDockWidgetArea,
            "Session runs": Dock.LeftDockWidgetArea,
        }
        for name in places:  # taken out first, so no tab bar of the old arrangement lingers
            d[name].setFloating(False)
            self.removeDockWidget(d[name])
        for name, area in places.items():
            self.addDockWidget(area, d[name])
            d[name].setFloating(False)
            d[name].show()
        self.splitDockWidget(d["Layer × head grid"], d["Steering"], V)
        self.splitDockWidget(d["Discovery"], d["Session runs"], V)
        self.tabifyDockWidget(d["Token timeline"], d["Comparison"])
        d["Token timeline"].raise_()
        self.tabifyDockWidget(d["Discovery"], d["Inspector"])
        self.tabifyDockWidget(d["Inspector"], d["Prompt"])
        self.tabifyDockWidget(d["Prompt"], d["Spans"])
        d["Discovery"].raise_()
        self._size_docks()

    def _size_docks(self) -> None:
        V, H = QtCore.Qt.Orientation.Vertical, QtCore.Qt.Orientation.Horizontal
        d = self.docks
        w, h = self.width(), self.height()
        side_left = max(250, min(360, w // 5))
        side_right = max(400, min(540, int(w * 0.3)))
        self.resizeDocks([d["Discovery"]], [side_left], H)
        self.resizeDocks([d["Layer × head grid"]], [side_right], H)
        # the steering dock keeps the height its fixed rows need; the grid takes the rest
        self.resizeDocks([d["Layer × head grid"], d["Steering"]], [max(220, h - 470), 400], V)
        self.resizeDocks([d["Discovery"], d["Session runs"]], [max(300, h - 260), 160], V)
        self.resizeDocks([d["Token timeline"]], [max(260, int(h * 0.4))], V)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        if not self._sized:  # dock sizes only stick once the window has its size
            self._sized = True
            if self.state.inspector.head is None:  # a tab raised before the window shows does not stick
                self.docks["Discovery"].raise_()
            self._size_docks()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.controller.shutdown()
        # an open message box is a window of its own, which closing this one would leave shown
        for dialog in self.findChildren(QtWidgets.QDialog):
            dialog.close()
        # a closed window draws nothing more: its views' pending redraws (and the timeline's play)
        # would still fire until the window is deleted, reading the session shutdown() just closed
        for timer in self.findChildren(QtCore.QTimer):
            timer.stop()
        super().closeEvent(event)

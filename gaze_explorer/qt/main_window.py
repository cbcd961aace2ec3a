"""The main window: dockable views around one :class:`AppState`, menus, keys and the status bar.

The window wires the views' requests to the :class:`AppController` and shows the controller's
messages; views and controller never call each other directly.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.controller import AppController
from gaze_explorer.qt.views.discovery import DiscoveryView
from gaze_explorer.qt.views.head_grid import HeadGridView
from gaze_explorer.qt.views.image_overlay import ImageOverlayView
from gaze_explorer.qt.views.prompt_tokens import PromptTokensView
from gaze_explorer.qt.views.session_browser import SessionBrowserView
from gaze_explorer.qt.views.steering_panel import SteeringPanel
from gaze_explorer.qt.views.token_timeline import TokenTimelineView
from gaze_explorer.qt.widgets.step_keys import STEP_KEYS

Dock = QtCore.Qt.DockWidgetArea


class MainWindow(QtWidgets.QMainWindow):
    """gaze-explorer's main window."""

    def __init__(self, state: AppState | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("gaze-explorer")
        self.resize(1560, 960)
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
        self.prompt_view = PromptTokensView(self.state)
        self.setCentralWidget(self.overlay_view)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self._dock("Layer × head grid", self.grid_view, Dock.RightDockWidgetArea)
        self._dock("Steering", self.steering_panel, Dock.RightDockWidgetArea)
        self._dock("Token timeline", self.timeline_view, Dock.BottomDockWidgetArea)
        self._dock("Discovery", self.discovery_view, Dock.LeftDockWidgetArea)
        self._dock("Session runs", self.session_view, Dock.LeftDockWidgetArea)
        self._dock("Prompt tokens", self.prompt_view, Dock.LeftDockWidgetArea)
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

    def generate_baseline(self) -> None:
        try:
            options = self.steering_panel.generation_options()
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return
        self.controller.generate(self.steering_panel.prompt(), options, plan=None)

    def steer(self) -> None:
        try:
            options = self.steering_panel.generation_options()
            plan = self.steering_panel.plan()
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return
        self.controller.generate(self.steering_panel.prompt(), options, plan=plan)

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
        file_menu.addAction("Paste image", QtGui.QKeySequence.StandardKey.Paste, self.overlay_view.paste_image)
        file_menu.addAction("Open session…", self._open_session_dialog)
        file_menu.addSeparator()
        file_menu.addAction("Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)
        model_menu = bar.addMenu("&Model")
        model_menu.addAction("Load model…", self._load_model_dialog)
        run_menu = bar.addMenu("&Run")
        run_menu.addAction("Generate baseline", self.generate_baseline)
        run_menu.addAction("Steer", self.steer)
        run_menu.addAction("Stop", self.controller.stop)
        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        export_menu = bar.addMenu("&Export")
        export_menu.addAction("Figure…", self.export_figure_dialog)
        export_menu.addAction("Head list…", self.export_heads_dialog)
        export_menu.addAction("Run as JSON…", self.export_run_dialog)

    def _build_shortcuts(self) -> None:
        step = self.state.step
        Key, Mod = QtCore.Qt.Key, QtCore.Qt.KeyboardModifier
        bindings = [(combo, lambda act=act: act(step)) for combo, act in STEP_KEYS]
        bindings += [
            (QtCore.QKeyCombination(Mod.ControlModifier, Key.Key_Return), self.steer),
            (QtCore.QKeyCombination(Mod.ControlModifier, Key.Key_Enter), self.steer),
            (Key.Key_Escape, self.controller.stop),
            (QtCore.QKeyCombination(Mod.ControlModifier, Key.Key_E), self.export_figure_dialog),
            (QtCore.QKeyCombination(Mod.ControlModifier | Mod.ShiftModifier, Key.Key_E), self.export_heads_dialog),
        ]
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
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open session", "sessions", "Sessions (*.h5);;All files (*)")
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> bool:
        """Reopen a session file; a bad file shows a clear message and keeps what was open."""
        from gaze_explorer.qt.session_io import open_session

        if self.controller.busy:
            self.show_message("a run is in progress; stop it before opening a session", True)
            return False
        try:
            self.reader = open_session(path, self.state)
        except GazeExplorerError as err:
            self.show_message(str(err), True)
            return False
        return True

    def _load_model_dialog(self) -> None:
        spec, ok = QtWidgets.QInputDialog.getText(self, "Load model", "demo, a local folder, or a cached Hugging Face id:")
        if ok and spec.strip():
            self.controller.load_model(spec.strip())

    def export_figure_dialog(self) -> None:
        from gaze_explorer.qt.export_dialogs import export_figure_dialog

        export_figure_dialog(self)

    def export_heads_dialog(self) -> None:
        from gaze_explorer.qt.export_dialogs import export_heads_dialog

        export_heads_dialog(self)

    def export_run_dialog(self) -> None:
        from gaze_explorer.qt.export_dialogs import export_run_dialog

        export_run_dialog(self)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        if not self._sized:  # dock sizes only stick once the window has its size
            self._sized = True
            d = self.docks
            self.resizeDocks(
                [d["Discovery"], d["Session runs"], d["Prompt tokens"]], [150, 220, 120], QtCore.Qt.Orientation.Vertical
            )
            self.resizeDocks([d["Layer × head grid"], d["Steering"]], [330, 400], QtCore.Qt.Orientation.Vertical)
            self.resizeDocks([d["Discovery"]], [240], QtCore.Qt.Orientation.Horizontal)
            self.resizeDocks([d["Layer × head grid"]], [480], QtCore.Qt.Orientation.Horizontal)
            self.resizeDocks([d["Token timeline"]], [max(330, self.height() // 3)], QtCore.Qt.Orientation.Vertical)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.controller.shutdown()
        super().closeEvent(event)

"""Child process of the kill test for the app: builds the real MainWindow offscreen, loads the demo
model through the controller, opens an image and presses "Generate baseline", exactly as a user
would. The run streams into the controller's session file.

Prints ``session <path>`` once the run's file exists, then ``step <n>`` (tokens shown so far) for
every token the GUI thread receives, so the parent can SIGKILL it at a chosen moment; ``done
<status>`` if it is never killed.

usage: kill_app_child.py IMAGE N_PANELS PROMPT MAX_NEW_TOKENS SESSION_DIR
"""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtWidgets

from gaze_explorer.qt.compat import singleton_refs_guard
from gaze_explorer.qt.main_window import MainWindow

image_path, n_panels, prompt, max_new, session_dir = sys.argv[1:6]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


singleton_refs_guard()  # what the app's main() does (PySide6 6.12 / Python 3.11 refcount leak)
app = QtWidgets.QApplication([])
win = MainWindow()
controller, state = win.controller, win.state
controller.recorder.directory = type(controller.recorder.directory)(session_dir)
announced = False


def on_model_loaded() -> None:
    if not controller.open_image(image_path, int(n_panels)):
        say("error " + " | ".join(m for m, _ in win.messages))
        app.exit(3)
        return
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(prompt)
    panel.max_tokens.setValue(int(max_new))
    panel.baseline_button.click()  # the Generate button: main window -> controller -> worker
    if not controller.workers:
        say("error " + " | ".join(m for m, _ in win.messages))
        app.exit(3)


def on_run_updated(index: int) -> None:
    global announced
    if not announced and state.session.path:
        announced = True
        say(f"session {state.session.path}")
    say(f"step {state.session.runs[index].n_steps}")


def on_finished(index: int) -> None:
    say(f"done {state.session.runs[index].status}")
    controller.shutdown()
    app.exit(0)


controller.model_loaded.connect(on_model_loaded)
controller.run_finished.connect(on_finished)
state.session.run_updated.connect(on_run_updated)
controller.load_model("demo")
QtCore.QTimer.singleShot(120_000, lambda: app.exit(4))  # never hang a test run
sys.exit(app.exec())

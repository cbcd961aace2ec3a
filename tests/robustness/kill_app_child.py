"""Child process of the kill test for the app: builds the real MainWindow offscreen, loads the demo
model through the controller, opens an image and presses "Generate baseline", exactly as a user
would. The run streams into the controller's session file.

Prints ``session <path>`` once the run's file exists, then ``step <n>`` (tokens shown so far) for
every token the GUI thread receives, so the parent can SIGKILL it at a chosen moment; ``done
<status>`` if it is never killed. The worker is paced to the window (at most ``MAX_AHEAD`` steps
ahead of what it has shown), so that on a busy machine the kill still lands mid-run.

usage: kill_app_child.py IMAGE N_PANELS PROMPT MAX_NEW_TOKENS SESSION_DIR
(the kill test forks it through tests/forked_children.py, entry ``kill_app_child:main``)
"""

import os
import sys
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtWidgets

from gaze_explorer.qt.compat import singleton_refs_guard
from gaze_explorer.qt.main_window import MainWindow

# the worker may run at most this many tokens ahead of what the window has shown (see pace)
MAX_AHEAD = 2


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    image_path, n_panels, prompt, max_new, session_dir = argv[:5]
    singleton_refs_guard()  # what the app's main() does (PySide6 6.12 / Python 3.11 refcount leak)
    app = QtWidgets.QApplication([])
    win = MainWindow()
    controller, state = win.controller, win.state
    controller.recorder.directory = type(controller.recorder.directory)(session_dir)
    announced = False
    shown = 0
    caught_up = threading.Condition()

    def pace(event) -> None:
        """On the worker thread, after the step is handed to the session writer: wait (at most
        10 s) until the window has shown all but ``MAX_AHEAD`` of the steps before it. The parent
        kills at a number of shown steps; on a busy machine the window can fall far behind the
        worker, which would then finish the run before the kill."""
        with caught_up:
            caught_up.wait_for(lambda: shown >= event.step - MAX_AHEAD, timeout=10.0)

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
            return
        controller.workers[-1].token.connect(pace, QtCore.Qt.ConnectionType.DirectConnection)

    def on_run_updated(index: int) -> None:
        nonlocal announced, shown
        if not announced and state.session.path:
            announced = True
            say(f"session {state.session.path}")
        say(f"step {state.session.runs[index].n_steps}")
        with caught_up:
            shown = state.session.runs[index].n_steps
            caught_up.notify_all()

    def on_finished(index: int) -> None:
        say(f"done {state.session.runs[index].status}")
        controller.shutdown()
        app.exit(0)

    controller.model_loaded.connect(on_model_loaded)
    controller.run_finished.connect(on_finished)
    state.session.run_updated.connect(on_run_updated)
    controller.load_model("demo")
    QtCore.QTimer.singleShot(120_000, lambda: app.exit(4))  # never hang a test run
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

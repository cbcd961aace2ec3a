"""Child process of the app kill test: the app's main window (offscreen) on the demo model records
a short baseline, then a long run, and prints how many steps of the long run the session writer
has flushed, so the parent can SIGKILL it mid-run.

usage (forked through tests/forked_children.py, entry ``app_kill_child:main``): SESSION_DIR
Prints ``path FILE`` once the long run has begun, then ``flushed N`` whenever N grows.
"""

import os
import sys
import time


def main(argv: list[str]) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from pathlib import Path

    from PySide6 import QtWidgets

    from gaze_explorer.inference.loading import load_model
    from gaze_explorer.qt.app import demo_strip
    from gaze_explorer.qt.compat import singleton_refs_guard
    from gaze_explorer.qt.main_window import MainWindow

    singleton_refs_guard()  # what the app's main() does
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    win = MainWindow()
    c, s, sp = win.controller, win.state, win.steering_panel
    c.recorder.directory = Path(argv[0])
    c._on_model_loaded(load_model("demo", num_threads=1))
    strip = demo_strip()
    c.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths)
    win.show()

    def wait(done, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while not done():
            if time.monotonic() > deadline:
                print("timeout", flush=True)
                sys.exit(3)
            app.processEvents()
            time.sleep(0.001)

    # a finished run first: its end and the app's follow-ups (its reader, the saved selection)
    # leave the writer with the file in normal mode, as a user's second run finds it
    sp.max_tokens.setValue(8)
    wait(sp.baseline_button.isEnabled)  # the button is enabled by queued notices, not at once
    sp.baseline_button.click()
    wait(lambda: len(s.session.runs) == 1 and not c.busy)
    writer = c.recorder.writer
    writer.wait()  # every step of the first run is committed: the count below is the second's
    before = writer.committed_steps
    sp.max_tokens.setValue(400)
    sp.ignore_eos.setChecked(True)
    wait(sp.baseline_button.isEnabled)
    sp.baseline_button.click()
    wait(lambda: len(s.session.runs) == 2)
    assert c.recorder.writer is writer
    wait(lambda: s.session.runs[-1].run_id is not None)
    print("path", s.session.path, flush=True)
    shown = 0
    while True:  # until the parent kills us (the run is far longer than the parent waits)
        wait(lambda shown=shown: writer.committed_steps - before > shown or not c.busy)
        if not c.busy:
            print("ended", flush=True)
            return 4
        shown = writer.committed_steps - before
        print("flushed", shown, flush=True)

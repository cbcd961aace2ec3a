"""Make a demo session the way a user would in the app (discovery on the strip, a baseline, a top-10
run switched live to panels 2 and 6, the selection saved), for the README's reopened-session
screenshot:

    QT_QPA_PLATFORM=offscreen python docs/scripts/make_reopened_session.py /tmp/reopened.h5
    xvfb-run -s "-screen 0 1600x1000x24" python main.py --session /tmp/reopened.h5 \\
        --screenshot docs/screenshots/reopened_session.png
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PySide6 import QtWidgets

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "qt"))
from pacing import pace  # the tests' one pacing helper


def main(out: str) -> int:
    from gaze_explorer.core.options import GenerationOptions
    from gaze_explorer.demo.prompts import NARRATION_PROMPT
    from gaze_explorer.inference.loading import load_model
    from gaze_explorer.qt.app import demo_strip
    from gaze_explorer.qt.compat import singleton_refs_guard
    from gaze_explorer.qt.main_window import MainWindow

    singleton_refs_guard()  # what the app's main() does (PySide6 6.12 refcount leak on None)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    win = MainWindow()
    c, s = win.controller, win.state
    c.recorder.directory = Path(out).parent
    c._on_model_loaded(load_model("demo", num_threads=1))
    strip = demo_strip()
    c.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths)

    def wait(done) -> None:
        while not done():
            app.processEvents()

    c.discover("current")
    wait(lambda: s.discovery.has_result and not c.busy)
    c.generate(NARRATION_PROMPT, GenerationOptions(max_new_tokens=24))
    wait(lambda: s.session.runs[-1].status != "running")
    s.heads.set_kind("top", k=10)
    s.target.set_panel(3)
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(40)
    panel.ignore_eos.setChecked(True)
    panel.steer_button.click()
    run = s.session.runs[-1]
    pace(c.workers[-1], run)  # the worker waits for the window: the live switches land mid-run
    for target in (1, 5):
        n = len(run.switches)
        wait(lambda: run.n_steps >= (run.switches[-1].step if run.switches else 0) + 8)
        s.target.set_panel(target)
        wait(lambda n=n: len(run.switches) > n or run.status != "running")
    wait(lambda: run.status != "running")
    win.session_view.select_run(0)
    win.session_view.select_run(1, add=True)
    s.step.set_step(14)
    path = s.session.path
    c.shutdown()
    shutil.move(path, out)
    print(out, run.name)
    if len(run.switches) != 2:
        print(f"expected two live switches, the run has {len(run.switches)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""The start the docs' screenshot scripts share: the app's main window on the bundled demo model
and the first demo strip, at a given size, with discovery run on the strip (as a user would click
it), sessions recorded into a temporary folder. Imported by the scripts beside it (run as
``python docs/scripts/NAME.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtWidgets


def open_demo_window(width: int, height: int, with_truth: bool = False):
    """``(app, window, wait)``: the shown window after discovery on the demo strip; ``wait(done)``
    processes events until ``done()``. ``with_truth`` gives the strip's panel attributes to the
    offline judge (the comparison's judged segments)."""
    from gaze_explorer.core.judges import PanelTruth
    from gaze_explorer.inference.loading import load_model
    from gaze_explorer.qt.app import demo_strip
    from gaze_explorer.qt.compat import singleton_refs_guard
    from gaze_explorer.qt.main_window import MainWindow

    singleton_refs_guard()  # what the app's main() does (PySide6 6.12 refcount leak on None)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    win = MainWindow()
    c, s = win.controller, win.state
    c.recorder.directory = Path(tempfile.mkdtemp())
    c._on_model_loaded(load_model("demo", num_threads=1))
    strip = demo_strip()
    truth = (PanelTruth(strip.attributes, strip.captions),) if with_truth else ()
    c.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths, *truth)
    win.resize(width, height)
    win.show()

    def wait(done: Callable[[], object]) -> None:
        while not done():
            app.processEvents()

    c.discover("current")
    wait(lambda: s.discovery.has_result and not c.busy)
    return app, win, wait

"""Render the README's screenshots of the app on the bundled demo model (run under Xvfb).

    xvfb-run -s "-screen 0 1920x1080x24" python docs/screenshots/make_screenshots.py --size 1280x760

Loads the demo model, runs discovery on the demo comics, generates a baseline and a gaze-steered
run, opens the head inspector on the best head, resizes the window and saves PNGs here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wait(app, until, timeout_s: float = 300.0) -> None:
    from PySide6 import QtCore

    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", action="append", default=[], help="WxH (repeatable)")
    p.add_argument("--out", default=str(HERE), help="folder for the PNGs")
    p.add_argument("--prefix", default="app")
    p.add_argument("--no-discovery", action="store_true")
    p.add_argument("--dock", default="Inspector", help="the tabbed dock to raise (Discovery, Inspector, Prompt)")
    p.add_argument("--style", choices=("colour", "greyscale", "contour"), default="colour", help="overlay style")
    args = p.parse_args(argv)
    from PySide6 import QtWidgets

    from gaze_explorer.qt.app import demo_strip
    from gaze_explorer.qt.compat import singleton_refs_guard
    from gaze_explorer.qt.main_window import MainWindow

    singleton_refs_guard()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    win = MainWindow()
    win.state.overlay.update(style=args.style)
    win.show()
    strip = demo_strip()
    win.controller.set_image(strip.image, strip.n_panels, f"demo strip {strip.name}", strip.panel_widths)
    win.controller.load_model("demo")
    wait(app, lambda: not win.controller.workers)
    best = None
    if not args.no_discovery:
        win.controller.discover("demo")
        wait(app, lambda: not win.controller.workers)
        win.generate_baseline()
        wait(app, lambda: not win.controller.workers)
        win.state.target.set_panel(3)
        win.steer()
        wait(app, lambda: not win.controller.workers)
        win.state.step.set_step(3)
        best = getattr(win, "open_best_head", None)
        if best is not None:
            best()
    sizes = args.size or ["1280x760"]
    first_size = tuple(int(v) for v in sizes[0].split("x"))
    win.resize(*first_size)  # sized before the docks are first laid out, as at start-up on that screen
    wait(app, lambda: False, timeout_s=0.3)
    for size in sizes:
        w, h = (int(v) for v in size.split("x"))
        win.resize(w, h)
        wait(app, lambda: False, timeout_s=0.3)
        if (w, h) != first_size:  # the layout the window opens with at this size
            win.reset_layout()
        if best is not None and not args.no_discovery:
            win.docks[args.dock].raise_()
        wait(app, lambda: False, timeout_s=1.0)
        from PySide6 import QtWidgets as _w

        for bar in win.findChildren(_w.QTabBar):  # tab bars re-laid out by reset_layout paint late otherwise
            bar.adjustSize()
            bar.update()
        wait(app, lambda: False, timeout_s=0.3)
        win.repaint()
        path = Path(args.out) / f"{args.prefix}_{w}x{h}.png"
        win.grab().save(str(path), "PNG")
        print("saved", path)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

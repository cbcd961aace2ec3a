"""Launch the desktop app: ``python main.py`` or ``gaze-explorer`` with no subcommand.

Takes the app's flags as parsed by the CLI (``cli.app_args``), shows the window at once, and loads the model on a worker, so the
window appears before torch is imported. ``--screenshot`` renders the window (offscreen when no
display is available), saves a PNG and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gaze_explorer.qt.controller import DEMO_COMICS

# What Qt's xcb platform plugin (PySide6 6.x: platforms/libqxcb.so and libQt6XcbQpa) loads beyond a
# base system, found with ldd; soname -> the Debian/Ubuntu package that ships it. Qt's own error names
# only libxcb-cursor0 (the one it dlopens) and aborts with exit 134, whichever library is missing.
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def qt_platform() -> str:
    """The platform plugin Qt will pick: QT_QPA_PLATFORM, else wayland in a Wayland session, else xcb."""
    chosen = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    if sys.platform != "linux":
        return "native"
    if os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    return "xcb"


def missing_xcb_packages(libraries: dict[str, str] | None = None) -> list[str]:
    """The packages of the xcb plugin's libraries (default :data:`XCB_LIBRARIES`) that the dynamic
    loader cannot find."""
    import ctypes

    missing = []
    for soname, package in (XCB_LIBRARIES if libraries is None else libraries).items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


def check_xcb_libraries() -> str | None:
    """On Linux with the xcb platform, a message with the exact apt command when libraries are
    missing (Qt would abort with a misleading message), else None."""
    if qt_platform() != "xcb":
        return None
    missing = missing_xcb_packages()
    if not missing:
        return None
    return (
        "gaze-explorer: Qt's xcb platform plugin needs system libraries that are missing: "
        + ", ".join(missing)
        + "\nInstall them with:\n    sudo apt-get install -y "
        + " ".join(missing)
        + "\n(or run headless: QT_QPA_PLATFORM=offscreen, e.g. with --screenshot)"
    )


def demo_strip():
    """The first held-out demo strip, or None when the demo comics are not there."""
    from gaze_explorer.core.errors import GazeExplorerError
    from gaze_explorer.core.strips import iter_strip_folders

    try:
        return next(iter(iter_strip_folders(DEMO_COMICS)), None)
    except GazeExplorerError:
        return None


def main(args: argparse.Namespace) -> int:
    """Run the app with its flags (``cli.app_args.build_app_parser``); returns the process exit status."""
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    problem = check_xcb_libraries()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PySide6 import QtWidgets

    from gaze_explorer.qt.compat import singleton_refs_guard
    from gaze_explorer.qt.main_window import MainWindow

    # PySide6 6.12 on Python 3.11 leaks references to None/True/False on every Qt call; without a
    # reserve, scrubbing a long run aborts the interpreter (see docs/benchmarks.md)
    singleton_refs_guard()

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("gaze-explorer")
    window = MainWindow()
    window.show()
    ok = True
    if args.session:
        ok = window.open_session(args.session)
    else:
        setup_image(window, args)
        window.controller.load_model(
            args.model,
            device=args.device,
            dtype=args.dtype,
            device_map=getattr(args, "device_map", None),
            trust_remote_code=getattr(args, "trust_remote_code", False),
            input_policy=getattr(args, "input_policy", None),
        )
    if args.step is not None:
        window.state.step.set_step(args.step)
    if args.screenshot:
        try:
            return (
                take_screenshot(app, window, Path(args.screenshot), wait_for_model=not args.session)
                if ok
                else 1
            )
        finally:  # a caller in the same process (a test, a script) goes on: leave no window behind
            dispose_windows([window])
    code = app.exec()
    return int(code)


def dispose_windows(windows) -> None:
    """Close ``windows`` and delete them now, together with every deletion already pending.

    For callers that go on running after a window is done (``--screenshot`` called in-process, the
    benchmarks, the tests): deleteLater() alone waits for an event loop that such a caller may never
    run again, and until then the window's message boxes stay shown and its views' redraw timers
    still fire, reading a session file that the caller may already have deleted."""
    from PySide6 import QtCore, QtWidgets

    for w in windows:
        w.close()
        w.deleteLater()
    # processEvents() outside an event loop does not run deferred deletes: send them explicitly
    QtWidgets.QApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)


def setup_image(window, args) -> None:
    """Show ``--image`` (with ``--panels``) or the first demo strip."""
    if args.image:
        window.controller.open_image(args.image, args.panels or 0)
        return
    strip = demo_strip()
    if strip is not None:
        n = strip.n_panels if args.panels is None else args.panels
        widths = strip.panel_widths if n == strip.n_panels else None
        from gaze_explorer.core.judges import PanelTruth

        # the panels' ground truth, to judge answers by (the comparison's segments)
        truth = PanelTruth(strip.attributes, strip.captions) if n == strip.n_panels else None
        window.controller.set_image(strip.image, n, f"demo strip {strip.name}", widths, truth)


def take_screenshot(app, window, path: Path, wait_for_model: bool = True, timeout_s: float = 60.0) -> int:
    """Wait for start-up work to settle and the window to paint, then save it as a PNG."""
    import time

    from PySide6 import QtCore

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if not (wait_for_model and window.controller.workers):
            break
        time.sleep(0.02)
    for _ in range(10):  # let coalesced redraws run and the window paint
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.03)
    window.repaint()
    pixmap = window.grab()
    saved = pixmap.save(str(path), "PNG")
    window.close()
    if not saved:
        print(f"gaze-explorer: could not write screenshot {path}", file=sys.stderr)
        return 1
    print(f"screenshot saved to {path}")
    return 0

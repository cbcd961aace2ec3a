"""The README's comparison screenshot, made the way a user would on the demo model: discovery on the
strip, Compare conditions (baseline, top-K gaze, random control, all heads) on panel 4, then a
scheduled top-K run (panels 4, 2, 1 every 8 tokens) compared with the baseline, its segments judged;
both comparisons selected in the session browser and grabbed from the Comparison dock at the screen's size
(``comparison_1280.png`` and ``comparison_schedule_1280.png``; the optional size argument, WIDTHxHEIGHT,
makes the window and the dock that size, default 1280x760):

    xvfb-run -s "-screen 0 1280x760x24" python docs/scripts/make_comparison_screenshot.py \\
        docs/screenshots/comparison_1280.png
    xvfb-run -s "-screen 0 1920x1080x24" python docs/scripts/make_comparison_screenshot.py \\
        docs/screenshots/comparison_1920x1080.png 1920x1080
"""

from __future__ import annotations

import sys
from pathlib import Path

from demo_window import open_demo_window


def main(out: str, width: int = 1280, height: int = 760) -> int:
    from gaze_explorer.demo.prompts import NARRATION_PROMPT

    app, win, wait = open_demo_window(width, height, with_truth=True)
    c, s = win.controller, win.state
    panel = win.steering_panel
    panel.prompt_edit.setPlainText(NARRATION_PROMPT)
    panel.max_tokens.setValue(24)
    panel.ignore_eos.setChecked(True)
    s.target.set_panel(3)
    compared: list = []
    c.conditions_compared.connect(compared.extend)
    win.compare_conditions()
    wait(lambda: compared and not c.busy)
    s.target.set_schedule("4,2,1", 8)
    win.steer()
    wait(lambda: s.session.runs[-1].status != "running" and not c.busy)
    dock = win.docks["Comparison"]
    dock.setFloating(True)  # the comparison alone, at the screen's size
    dock.resize(width, height)
    dock.show()
    scheduled = len(s.session.runs) - 1
    for name, runs in (("", compared), ("_schedule", [compared[0], scheduled])):
        for i, index in enumerate(runs):  # selected in the session browser, as a user would
            win.session_view.select_run(index, add=i > 0)
        for _ in range(50):
            app.processEvents()
        path = Path(out).with_name(Path(out).stem.replace("_", f"{name}_", 1) + Path(out).suffix)
        dock.grab().save(str(path))
        print(path, [s.session.runs[i].name for i in win.comparison_view.indices])
    c.shutdown()
    return 0


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)``; anything else exits with a usage message."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        sys.exit(f"size should be WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}")
    if width < 640 or height < 480:
        sys.exit(f"size {width}x{height} is too small for the window (at least 640x480)")
    return width, height


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: make_comparison_screenshot.py OUT.png [WIDTHxHEIGHT]")
    sys.exit(main(sys.argv[1], *parse_size(sys.argv[2] if len(sys.argv) == 3 else "1280x760")))

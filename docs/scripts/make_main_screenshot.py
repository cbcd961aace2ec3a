"""The README's first screenshot (resources/screenshot.png), made the way a user would on the demo
model: discovery on the first demo strip, a baseline answer, then the top-10 gaze heads steered to
panel 4 with the paper's static defaults (the bias on prefill and decode), the steered run shown at
step 3; the whole window grabbed at the screen's size:

    xvfb-run -s "-screen 0 1600x1000x24" python docs/scripts/make_main_screenshot.py \\
        resources/screenshot.png
"""

from __future__ import annotations

import sys

from demo_window import open_demo_window


def main(out: str, width: int = 1600, height: int = 1000) -> int:
    app, win, wait = open_demo_window(width, height, with_truth=False)
    c, s = win.controller, win.state
    panel = win.steering_panel
    panel.max_tokens.setValue(12)
    panel.baseline_button.click()
    wait(lambda: s.session.runs and s.session.runs[-1].status != "running" and not c.busy)
    s.heads.set_kind("top", k=10)
    s.target.set_panel(3)
    panel.steer_button.click()
    wait(lambda: len(s.session.runs) == 2 and s.session.runs[-1].status != "running" and not c.busy)
    win.session_view.select_run(1)
    s.step.set_step(3)
    for _ in range(50):
        app.processEvents()
    win.grab().save(out)
    runs = [f"{r.name}: {''.join(r.tokens)!r}" for r in s.session.runs]
    print(out, *runs, sep="\n")
    c.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "resources/screenshot.png"))

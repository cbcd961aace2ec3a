"""The README's spans screenshot, made the way a user would on the demo model: discovery on the strip,
a 40-token baseline narration with the top-10 gaze heads selected, Propose spans in the Spans dock,
one proposed span picked, value-weighted on; the whole window grabbed at the screen's size:

    xvfb-run -s "-screen 0 1280x760x24" python docs/scripts/make_spans_screenshot.py \\
        docs/screenshots/spans_1280.png
"""

from __future__ import annotations

import sys

from demo_window import open_demo_window


def main(out: str, width: int = 1280, height: int = 760) -> int:
    from gaze_explorer.core.options import GenerationOptions
    from gaze_explorer.demo.prompts import NARRATION_PROMPT

    app, win, wait = open_demo_window(width, height, with_truth=False)
    c, s = win.controller, win.state
    s.heads.set_kind("top", k=10)
    c.generate(NARRATION_PROMPT, GenerationOptions(max_new_tokens=40, ignore_eos=True))
    wait(lambda: s.session.runs and s.session.runs[-1].status != "running")
    win.docks["Token timeline"].raise_()
    win.docks["Spans"].raise_()
    view = win.spans_view
    view.propose()
    wait(lambda: view.list.count() > 0)
    view.list.item(min(1, view.list.count() - 1)).setSelected(True)
    view.weighted_check.setChecked(True)
    for _ in range(50):
        app.processEvents()
    win.grab().save(out)
    print(f"{out}: {win.overlay_view.span_banner.text()}")
    c.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots/spans_1280.png"))

"""``gaze-explorer discover --session`` records every parameter that changes its result (strips, their
height, seed and source, panels, model, dtype, the questions asked as they were asked) and names the
session's first image after the strip it holds. The demo model, one strip, the real command."""

from __future__ import annotations

from gaze_explorer.cli import main
from gaze_explorer.cli.helpers import DEMO_PANEL_HEIGHT, demo_discovery_strips
from gaze_explorer.inference.discovery import PAPER_PROMPT, panel_prompt
from gaze_explorer.storage import SessionReader


def test_discover_session_stores_its_parameters_and_the_strips_name(tmp_path):
    path = tmp_path / "new.h5"
    argv = ["discover", "--model", "demo", "--n-strips", "1", "--out", str(tmp_path / "d")]
    assert main([*argv, "--session", str(path), "--seed", "3"]) == 0
    with SessionReader(path) as r:
        (disc,) = r.discoveries()
        image_name = r.image_set()[3]
        missing = r.missing()
    params = disc.params
    assert params["prompt"] == PAPER_PROMPT
    assert params["prompts"] == [panel_prompt(PAPER_PROMPT, k, 6) for k in range(1, 7)]
    assert "six-panel" in params["prompts"][0] and "1st panel" in params["prompts"][0]
    assert (params["seed"], params["panel_height"], params["use_raw"]) == (3, DEMO_PANEL_HEIGHT, False)
    assert (params["comics"], params["n_panels"], params["n_strips"]) == ("demo", 6, 1)
    assert params["model"] == "demo"
    assert "dtype" in params and params["criteria"] == ["gaze", "image", "localization"]
    assert image_name == demo_discovery_strips()[0].name != ""
    assert missing == []

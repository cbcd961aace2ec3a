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


def test_the_localization_variants_reach_the_session_and_the_app(tmp_path, qtbot):
    """``discover --session --loc-entropy code --loc-bottom-row off``: the session's discovery records
    the variants, its stored criteria were computed with them, and the app that reopens it ranks
    Localization Heads and draws the agreement table with them (not the defaults)."""
    import numpy as np

    from gaze_explorer.core.criteria import criteria_report, criterion_scores
    from gaze_explorer.qt.main_window import MainWindow

    path = tmp_path / "loc.h5"
    argv = [
        "discover",
        "--model",
        "demo",
        "--n-strips",
        "2",
        "--out",
        str(tmp_path / "d"),
        "--session",
        str(path),
    ]
    assert main([*argv, "--loc-entropy", "code", "--loc-bottom-row", "off"]) == 0
    options = {"entropy_variant": "code", "bottom_row": "off"}
    with SessionReader(path) as r:
        (disc,) = r.discoveries()
        arrays = [np.asarray(r.discovery_array(n)) for n in ("gaze_scores", "image_mass", "image_maps")]
    assert disc.params["localization"] == options and disc.source == "demo"
    want = criteria_report(*arrays, **options)
    assert disc.criteria["localization"] == want["localization"]
    assert want["localization"] != criteria_report(*arrays)["localization"]  # the variants matter here
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path))
    np.testing.assert_array_equal(
        win.state.heads.scores["localization"], criterion_scores(*arrays, **options)["localization"]
    )
    assert win.state.discovery.agreement() == want["agreement"]
    win.controller.shutdown()

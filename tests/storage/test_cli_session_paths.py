"""The CLI on app sessions. ``gaze-explorer export --session FILE`` with no other argument on a session without a discovery
(an app session of steered runs): every figure of the shown run, drawn with the run's own head set,
written beside the session; the head list is that run's heads."""

from __future__ import annotations

import json

import storage_synthetic as synthetic
from PIL import Image

from gaze_explorer.cli import main
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.core.steering import SteeringMode, SteeringPlan
from gaze_explorer.storage import SessionReader, record

HEADS = ((0, 1), (2, 3))


def test_export_with_only_the_session(new_writer, tmp_path):
    w = new_writer("app.h5")
    plan = SteeringPlan(HeadSet("custom", HEADS), SteeringMode.BOOST_SUPPRESS, 1e4, True)
    base = record(
        synthetic.events(5),
        w,
        RunSpec("baseline", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=5),
    )
    steered = record(
        synthetic.events(6, seed=3),
        w,
        RunSpec("steered", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=6, plan=plan),
    )
    w.write_ui({"shown": steered, "compare": base, "step": 4})
    w.close()
    with SessionReader(tmp_path / "app.h5") as r:
        assert r.gaze_scores() is None  # no discovery: the old default (top 10 by score) failed here

    assert main(["export", "--session", str(tmp_path / "app.h5")]) == 0
    out = tmp_path / "app_figures"
    assert sorted(p.name for p in out.iterdir()) == ["heads.json", "overlay.png", "timeline.png"]
    listed = json.loads((out / "heads.json").read_text())
    rows = listed if isinstance(listed, list) else listed.get("heads", listed)
    assert sorted((h["layer"], h["head"]) for h in rows) == sorted(HEADS)
    for name in ("overlay.png", "timeline.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 100 and im.size[1] > 100


def test_discover_adds_its_discovery_to_an_app_session(new_writer, tmp_path):
    """An app session holds its own image (not a demo strip): discover --session adds a discovery to
    it and leaves its image and runs alone (it failed with "holds a different image")."""
    w = new_writer("mine.h5")
    record(
        synthetic.events(3),
        w,
        RunSpec("baseline", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=3),
    )
    w.close()
    path = tmp_path / "mine.h5"
    with SessionReader(path) as r:
        image = r.image.copy()
    argv = [
        "discover",
        "--model",
        "demo",
        "--n-strips",
        "1",
        "--out",
        str(tmp_path / "d"),
        "--session",
        str(path),
    ]
    assert main(argv) == 0
    with SessionReader(path) as r:
        (disc,) = r.discoveries()
        assert (r.image == image).all() and len(r.runs()) == 1
        assert r.gaze_scores().shape == (6, 16)
    assert disc.source == "demo" and disc.params["n_strips"] == 1 and disc.params["model"] == "demo"

"""Schema version 2 and the upgrade path: a committed version-1 session (written by the release at
commit c0769b4 with its own code: a demo discovery on 2 strips, a baseline and a scheduled top-10
run) reads as it is and says what it lacks; writing to a copy upgrades it in place; run names and
the saved selection come back."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import storage_synthetic as synthetic

from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, SessionWriter
from gaze_explorer.storage.record import record

V1_FILE = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_version1_file_reads_as_it_is_and_names_what_it_lacks():
    before = _digest(V1_FILE)
    with SessionReader(V1_FILE) as r:
        assert r.schema_version == 1
        missing = r.missing()
        (disc,) = r.discoveries()
        scores = r.gaze_scores()
        labels = [info.display_name for info in r.runs()]
        ui = r.ui_state()
    assert any("discovery parameters" in m for m in missing) and any("run names" in m for m in missing)
    assert (disc.key, disc.n_strips, disc.created) == ("derived", 2, "")
    assert scores.shape == (6, 16) and np.isfinite(scores).all()
    assert labels == ["baseline", "top-10 gaze → schedule 4,2,6 every 3"]
    assert ui == {}
    assert _digest(V1_FILE) == before  # reading never changes a file


def test_writing_to_a_version1_file_upgrades_it(tmp_path):
    path = tmp_path / "old.h5"
    shutil.copy(V1_FILE, path)
    with SessionReader(path) as r:
        image, grid, regions, scores = r.image, r.grid, r.regions, r.gaze_scores()
        meta = dict(r.meta["model"])
        runs_before = [(i.run_id, i.n_steps, i.switches) for i in r.runs()]
    w = SessionWriter(path, meta=meta, image=image, grid=grid, regions=regions)
    w.rename_run("run_001", "the scheduled one")
    w.write_ui({"shown": "run_001", "compare": "run_000", "step": 4})
    w.close()
    with SessionReader(path) as r:
        # upgraded, but what version 1 never recorded is still missing (its selection now is not)
        missing = r.missing()
        assert r.schema_version == 2 and any("discovery disc_000" in m for m in missing), missing
        assert not any("selection" in m or "run names" in m for m in missing), missing
        (disc,) = r.discoveries()
        np.testing.assert_array_equal(r.gaze_scores(), scores)
        ranking = r.discovery_array("ranking")
        assert [(i.run_id, i.n_steps, i.switches) for i in r.runs()] == runs_before
        assert [i.display_name for i in r.runs()] == ["baseline", "the scheduled one"]
        assert r.runs()[1].label == "top-10 gaze → schedule 4,2,6 every 3"  # the label stays derivable
        assert r.ui_state() == {"shown": "run_001", "compare": "run_000", "step": 4}
    assert disc.key == "disc_000" and disc.n_strips == 2
    best = np.unravel_index(np.nanargmax(scores), scores.shape)
    assert tuple(int(v) for v in ranking[0]) == tuple(int(v) for v in best)


def test_rename_and_selection_in_a_new_session(new_writer, tmp_path):
    w = new_writer("n.h5")
    spec = RunSpec("run", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=3)
    run_id = record(synthetic.events(3), w, spec)
    w.rename_run(run_id, "mine")
    w.write_ui({"shown": run_id, "compare": None, "step": 1})
    w.rename_run(run_id, "mine, renamed again")
    w.close()
    with SessionReader(tmp_path / "n.h5") as r:
        (info,) = r.runs()
        assert info.user_name == "mine, renamed again" and info.display_name == "mine, renamed again"
        assert r.ui_state()["shown"] == run_id


def test_runs_on_several_images_name_their_image(new_writer, tmp_path):
    """A second image joins the session (the same pixels again are the same image); each run names
    the image it was made on, and its staircase is computed on that image's grid and regions."""
    w = new_writer("multi.h5")
    spec = RunSpec("first", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=3)
    first = record(synthetic.events(3), w, spec)
    other = np.ascontiguousarray(synthetic.make_image()[:, ::-1])  # another picture, the same size
    grid = synthetic.make_grid()
    regions = synthetic.make_regions(grid)[:2]
    key = w.use_image(other, grid, regions, name="mirrored.png")
    assert w.use_image(other, grid, regions) == key  # opened again: the same image
    second = record(
        synthetic.events(3, seed=5),
        w,
        RunSpec("second", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=3),
    )
    assert w.use_image(synthetic.make_image(), grid, synthetic.make_regions(grid)) == "img_000"
    w.close()
    with SessionReader(tmp_path / "multi.h5") as r:
        assert r.image_keys() == ["img_000", key] and key == "img_001"
        image, _, stored_regions, name = r.image_set(key)
        assert np.array_equal(image, other) and name == "mirrored.png" and len(stored_regions) == 2
        assert [r.run_info(x).image_key for x in (first, second)] == ["img_000", key]
        assert r.trajectory(second).shape == (3, 2) and r.trajectory(first).shape[1] == len(r.regions)

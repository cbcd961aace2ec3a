"""What a session file lacks is read from its data (``SessionReader.missing``), and the first image's
name is stored and read back. On the committed version-1 file (tests/data/session_v1.h5), a copy of
it upgraded by a rename, and new files through the real ``SessionWriter``."""

from __future__ import annotations

import shutil
from pathlib import Path

import storage_synthetic as synthetic

from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, SessionWriter
from gaze_explorer.storage.record import record

V1_FILE = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"


def _has(missing: list[str], *words: str) -> bool:
    return any(all(w in m for w in words) for m in missing)


def test_a_version1_file_names_the_head_choice_and_image_name_it_lacks():
    with SessionReader(V1_FILE) as r:
        missing = r.missing()
        name = r.image_set("img_000")[3]
    assert _has(missing, "how the heads of run_001 were chosen", "'choice'"), missing
    assert not _has(missing, "run_000")  # a baseline has no heads to choose
    assert _has(missing, "first image's name"), missing
    assert _has(missing, "discovery parameters") and _has(missing, "run names")
    assert name == ""  # no name stored: the app falls back to the file's name


def test_an_upgraded_version1_file_still_says_what_version1_never_recorded(tmp_path):
    path = tmp_path / "old.h5"
    shutil.copy(V1_FILE, path)
    with SessionReader(path) as r:
        header = dict(meta=dict(r.meta["model"]), image=r.image, grid=r.grid, regions=r.regions)
    w = SessionWriter(path, **header, image_name="ignored.png")  # an existing file keeps its header
    w.rename_run("run_001", "scheduled")
    w.close()
    with SessionReader(path) as r:
        missing = r.missing()
        assert r.schema_version == 2 and r.image_set()[3] == ""
    assert _has(missing, "parameters, source and time stamp of discovery disc_000"), missing
    assert _has(missing, "how the heads of run_001 were chosen"), missing
    assert _has(missing, "first image's name"), missing
    assert _has(missing, "selection on screen"), missing  # upgraded, and no selection saved yet
    assert not _has(missing, "run names")  # an upgraded file holds them (the rename is there)


def test_a_new_file_stores_the_first_images_name_and_lacks_nothing(tmp_path):
    grid = synthetic.make_grid()
    w = SessionWriter(
        tmp_path / "n.h5",
        meta=synthetic.META,
        image=synthetic.make_image(),
        grid=grid,
        regions=synthetic.make_regions(grid),
        image_name="my4panel.png",
    )
    spec = RunSpec("run", "q", synthetic.N_LAYERS, synthetic.N_HEADS, max_new_tokens=3)
    record(synthetic.events(3), w, spec)
    w.close()
    with SessionReader(tmp_path / "n.h5") as r:
        assert r.image_name == "my4panel.png"
        assert r.image_set("img_000")[3] == "my4panel.png"
        assert r.missing() == []

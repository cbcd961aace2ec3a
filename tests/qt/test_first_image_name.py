"""The app names the first image of a session it writes (the image on screen when the file was
created), and reopening the session shows that name instead of the session file's; a file without
one (tests/data/session_v1.h5) keeps the file's name. The real SessionRecorder and SessionReader."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.session_io import SessionRecorder, open_session
from gaze_explorer.storage import SessionWriter

V1_FILE = Path(__file__).resolve().parents[1] / "data" / "session_v1.h5"


def test_a_session_the_app_writes_reopens_with_its_first_images_name(tmp_path):
    state = AppState()
    grid = ImageTokenGrid.uniform(128, 64, rows=2, cols=4, first_position=3)
    image = np.random.default_rng(0).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    regions = panel_regions(grid, 4)
    state.session.set_image(image, grid, regions, 4, name="my4panel.png")
    recorder = SessionRecorder(state, tmp_path)
    recorder._ensure_writer(image, grid, regions, None)  # what the first run or discovery does
    recorder.close()
    path = Path(state.session.path)

    reopened = AppState()
    reader = open_session(path, reopened)
    reader.close()
    assert reopened.session.image_name == "my4panel.png" != path.name


def test_a_run_on_the_first_image_names_that_image(tmp_path):
    """The comparison names each run's image from its ``image_name``: a run on the first image had
    "" there (the file kept no name), so it showed the key img_000."""
    grid = ImageTokenGrid.uniform(128, 64, rows=2, cols=4, first_position=3)
    image = np.random.default_rng(1).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    path = tmp_path / "s.h5"
    w = SessionWriter(
        path, meta={}, image=image, grid=grid, regions=panel_regions(grid, 4), image_name="a.png"
    )
    run_id = w.begin_run("baseline", prompt="q", n_layers=1, n_heads=2, max_keys=14, prompt_len=12)
    rows = np.full((1, 2, 12), 1 / 12, dtype=np.float32)
    w.append_step(run_id, TokenEvent(0, 7, " w", None, rows))
    w.end_run(run_id, "finished")
    w.close()
    state = AppState()
    open_session(path, state).close()
    assert state.session.runs[0].params["image_name"] == "a.png"


def test_a_file_without_a_first_image_name_shows_the_file_name(tmp_path):
    path = tmp_path / "old_session.h5"
    shutil.copy(V1_FILE, path)
    state = AppState()
    open_session(path, state).close()
    assert state.session.image_name == "old_session.h5"

"""The app names the first image of a session it writes (the image on screen when the file was
created), and reopening the session shows that name instead of the session file's; a file without
one (tests/data/session_v1.h5) keeps the file's name. The real SessionRecorder and SessionReader."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.state import AppState
from gaze_explorer.qt.session_io import SessionRecorder, open_session

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


def test_a_file_without_a_first_image_name_shows_the_file_name(tmp_path):
    path = tmp_path / "old_session.h5"
    shutil.copy(V1_FILE, path)
    state = AppState()
    open_session(path, state).close()
    assert state.session.image_name == "old_session.h5"

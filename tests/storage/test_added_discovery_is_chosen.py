"""A discovery added to a session that saved an older one as chosen (the app's Discovery dock
choice) becomes the chosen one: ``discover --session`` adds a discovery, and reopening must show
it rather than the older choice. Real files through the real writer (tests/handmade_sessions)."""

from __future__ import annotations

import numpy as np

from gaze_explorer.storage import SessionReader, SessionWriter
from tests.handmade_sessions import discovery, write_session


def _append(path, d) -> None:
    """What ``discover --session`` does to an existing file: open it with its own header and add."""
    with SessionReader(path) as r:
        header = dict(meta=dict(r.meta.get("model") or {}), image=r.image, grid=r.grid, regions=r.regions)
    w = SessionWriter(path, **header)
    try:
        w.write_discovery(d, source="cli", params={})
    finally:
        w.close()


def test_a_discovery_added_after_an_older_choice_is_shown(tmp_path):
    first, second, third = discovery(1, 4), discovery(2, 5, reverse=True), discovery(3, 6)
    path = write_session(
        tmp_path / "s.h5", (first, second), ui={"discovery": "disc_000", "inspected": [1, 2]}
    )
    with SessionReader(path) as r:
        assert r.chosen_discovery() == "disc_000"  # the app's saved choice of the older one
    _append(path, third)
    with SessionReader(path) as r:
        assert [d.key for d in r.discoveries()] == ["disc_000", "disc_001", "disc_002"]
        assert r.chosen_discovery() == "disc_002"
        assert r.inspected_head() == (1, 2)  # the rest of the saved selection is kept
        np.testing.assert_array_equal(r.discovery_array("gaze_scores", r.chosen_discovery()), third.scores)


def test_a_file_without_a_saved_choice_gains_none(tmp_path):
    path = write_session(tmp_path / "s.h5", (discovery(1, 4),), ui={"step": 3})
    _append(path, discovery(2, 5))
    with SessionReader(path) as r:
        assert r.saved_discovery() is None and r.chosen_discovery() == "disc_001"
        assert r.ui_state() == {"step": 3}

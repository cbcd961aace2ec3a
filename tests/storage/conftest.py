"""Fixtures of the storage tests."""

from __future__ import annotations

import contextlib

import pytest
import storage_synthetic as synthetic

from gaze_explorer.storage import SessionWriter


@pytest.fixture
def new_writer(tmp_path):
    """A factory of writers on fresh files under tmp_path; all are closed at the end."""
    made = []

    def make(name: str = "s.h5", **kwargs) -> SessionWriter:
        grid = synthetic.make_grid()
        w = SessionWriter(
            tmp_path / name,
            meta=synthetic.META,
            image=synthetic.make_image(),
            grid=grid,
            regions=synthetic.make_regions(grid),
            **kwargs,
        )
        made.append(w)
        return w

    yield make
    for w in made:
        with contextlib.suppress(Exception):
            w.close()

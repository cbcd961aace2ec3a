"""Fixtures of the robustness suite: a real, finished session file and the demo model."""

from __future__ import annotations

from pathlib import Path

import pytest
from robust_helpers import write_session


@pytest.fixture
def session_file(tmp_path) -> Path:
    return write_session(tmp_path / "good.h5")


@pytest.fixture(scope="session")
def session_bytes(tmp_path_factory) -> bytes:
    """The bytes of one real session file, for tests that corrupt copies of it."""
    return write_session(tmp_path_factory.mktemp("fuzz") / "base.h5").read_bytes()


@pytest.fixture(scope="session")
def demo_loaded():
    """The demo model, loaded once for the suite."""
    from gaze_explorer.inference.loading import load_model

    return load_model("demo", num_threads=2)

"""Fixtures of the robustness suite: a real, finished session file and its bytes."""

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

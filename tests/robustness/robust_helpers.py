"""Helpers of the robustness suite: real session files, digests, the demo model path."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

# the storage tests' synthetic event streams are reused to build real session files quickly
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))

import storage_synthetic as synthetic

from gaze_explorer.storage import SessionReader, SessionWriter, record

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "resources" / "demo_model"


def digest(path: Path) -> str:
    """SHA-256 of a file (the 'nothing lost' check: a refused input is never modified)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_session(path: Path, n_steps: int = 6) -> Path:
    """A real finished session file with one run of ``n_steps`` synthetic steps."""
    grid = synthetic.make_grid()
    w = SessionWriter(
        path, meta=synthetic.META, image=synthetic.make_image(), grid=grid, regions=synthetic.make_regions(grid)
    )
    try:
        record(
            synthetic.events(n_steps),
            w,
            name="r",
            prompt="p",
            n_layers=synthetic.N_LAYERS,
            n_heads=synthetic.N_HEADS,
            max_new_tokens=n_steps,
        )
    finally:
        w.close()
    return path


def read_all(path: Path) -> int:
    """Read every step of every run; returns the number of steps read."""
    n = 0
    with SessionReader(path) as r:
        for info in r.runs():
            for s in range(info.n_steps):
                r.step_rows(info.run_id, s)
                n += 1
    return n


def assert_flushed_prefix(path: Path, reference_rows: list, reference_tokens: list[str], run: int = 0) -> int:
    """Check a killed run: the file opens, the run reads ``unfinished``, and every flushed step's
    attention rows ``[layer, head, key]`` and token equal the uninterrupted run's. Returns the
    number of flushed steps."""
    import numpy as np

    with SessionReader(path) as r:
        info = r.run_info(run)
        assert info.status == "unfinished", f"{path}: run {run} is {info.status!r}, not unfinished"
        n = info.n_steps
        assert n <= len(reference_rows), f"{path}: {n} steps, more than the uninterrupted {len(reference_rows)}"
        for s in range(n):
            np.testing.assert_array_equal(r.step_rows(info.run_id, s), reference_rows[s], err_msg=f"{path} step {s}")
        assert r.tokens(info.run_id) == list(reference_tokens[:n])
    return n

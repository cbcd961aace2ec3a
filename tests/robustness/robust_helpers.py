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

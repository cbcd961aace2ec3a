"""Shared fixtures for the Qt tests: the PySide6 refcount guard (session-wide), and a synthetic app
state with a 6-panel image and two runs."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.steering import Switch

N_LAYERS, N_HEADS, PROMPT_LEN, N_STEPS = 3, 4, 20, 6


@pytest.fixture(scope="session", autouse=True)
def pyside_refcount_guard() -> None:
    """What the app's main() does: without it, PySide6 6.12 on Python 3.11 leaks references to
    None/True/False on every Qt call and a long test session (many scrubs) aborts the interpreter."""
    from gaze_explorer.qt.compat import singleton_refs_guard

    singleton_refs_guard()


def synthetic_run(name: str, seed: int, grid: ImageTokenGrid, regions) -> RunData:
    """A run whose captured rows are seeded random attention rows ``[layer, head, key]``."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(N_STEPS):
        r = rng.random((N_LAYERS, N_HEADS, PROMPT_LEN + step)).astype(np.float32)
        rows.append(r / r.sum(-1, keepdims=True))
    return RunData(
        name,
        tokens=[f"t{i} " for i in range(N_STEPS)],
        targets=[3] * 3 + [1] * 3,
        switches=[Switch(3, 3, 1, "live")],
        status="finished",
        prompt_len=PROMPT_LEN,
        rows_at=lambda s: rows[s],
        regions=list(regions),
    )


@pytest.fixture
def state() -> AppState:
    st = AppState()
    grid = ImageTokenGrid.uniform(192, 64, rows=2, cols=6, first_position=2)
    regions = panel_regions(grid, 6)
    image = np.zeros((64, 192, 3), dtype=np.uint8)
    image[:, :, 0] = np.arange(192, dtype=np.uint8)[None, :]
    st.session.set_image(image, grid, regions, 6, name="synthetic")
    st.heads.set_shape(N_LAYERS, N_HEADS)
    st.heads.set_gaze_scores(np.arange(N_LAYERS * N_HEADS, dtype=float).reshape(N_LAYERS, N_HEADS))
    st.heads.set_kind("top", k=2)
    st.session.add_run(synthetic_run("baseline", 0, grid, regions))
    st.session.add_run(synthetic_run("steered", 1, grid, regions))
    st.step.set_n_steps(N_STEPS)
    return st


@pytest.fixture(scope="session")
def demo_loaded():
    """The bundled demo model, loaded once for the Qt tests that need a real model."""
    import torch

    from gaze_explorer.inference.loading import load_model
    from gaze_explorer.qt.controller import RESOURCES

    if not (RESOURCES / "demo_model" / "config.json").exists():
        pytest.skip("no demo model")
    # one thread: the demo model's matrices are tiny, and on a shared 2-core machine a second
    # intra-op thread spins against other processes (measured 100x slower decode steps under load)
    torch.set_num_threads(1)
    return load_model("demo", num_threads=1)


@pytest.fixture
def demo_window(qtbot, demo_loaded, tmp_path):
    """A main window on the demo model and the first demo strip, writing sessions under tmp_path."""
    from gaze_explorer.qt.app import demo_strip
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.controller.recorder.directory = tmp_path / "sessions"
    win.controller._on_model_loaded(demo_loaded)
    strip = demo_strip()
    win.controller.set_image(strip.image, strip.n_panels, strip.name, strip.panel_widths)
    win.show()
    yield win
    win.controller.shutdown()

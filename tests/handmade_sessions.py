"""Hand-written version-2 session files, made through the real ``SessionWriter`` (no model): runs on
two images of different panel counts, and several discoveries. Shared by the app's tests
(tests/qt) and the CLI's (tests/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaze_explorer.core.events import FinishedEvent, PrefillEvent, TokenEvent
from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionWriter, record

N_LAYERS, N_HEADS, PROMPT_LEN, N_STEPS = 4, 6, 30, 7
META = {"model_id": "tiny/handmade", "family": "qwen3_vl", "n_layers": N_LAYERS, "n_heads": N_HEADS}


@dataclass
class Discovery:
    """What ``SessionWriter.write_discovery`` reads of a discovery result (duck-typed)."""

    scores: np.ndarray  # [layer, head]
    matrices: np.ndarray  # [layer, head, N, N]
    image_mass: np.ndarray  # [layer, head]
    image_maps: np.ndarray  # [layer, head, rows, cols]
    n_strips: int
    n_panels: int = 3
    cancelled: bool = False


def discovery(seed: int, n_strips: int, reverse: bool = False) -> Discovery:
    """Scores with a clear order (ascending by head index, or descending): two such discoveries
    have disjoint top-10 sets; the other arrays are seeded random."""
    rng = np.random.default_rng(seed)
    order = np.arange(N_LAYERS * N_HEADS, dtype=np.float32)[:: -1 if reverse else 1]
    scores = (order / order.size + 0.01).reshape(N_LAYERS, N_HEADS)
    return Discovery(
        scores=scores,
        matrices=rng.random((N_LAYERS, N_HEADS, 3, 3)).astype(np.float32),
        image_mass=rng.random((N_LAYERS, N_HEADS)).astype(np.float32),
        image_maps=rng.random((N_LAYERS, N_HEADS, 2, 6)).astype(np.float32),
        n_strips=n_strips,
    )


def image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# the first image: 2 x 6 tokens at positions 5..16, 3 panels; the second: 2 x 4 tokens at 3..10, 4 panels
GRID_A = ImageTokenGrid.uniform(192, 64, rows=2, cols=6, first_position=5)
GRID_B = ImageTokenGrid.uniform(128, 64, rows=2, cols=4, first_position=3)
IMAGE_A, IMAGE_B = image(64, 192, 1), image(64, 128, 2)


def _rows(seed: int, n_keys: int, n_queries: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (N_LAYERS, N_HEADS, n_keys) if n_queries is None else (N_LAYERS, N_HEADS, n_queries, n_keys)
    logits = rng.standard_normal(shape).astype(np.float32) * 3.0
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _events(grid: ImageTokenGrid, seed: int):
    prompt = [f"p{i} " for i in range(PROMPT_LEN)]
    yield PrefillEvent(PROMPT_LEN, grid, list(range(PROMPT_LEN)), prompt, _rows(seed, PROMPT_LEN, 1))
    for s in range(N_STEPS):
        yield TokenEvent(s, 100 + s, f" w{s}", None, _rows(seed + 1 + s, PROMPT_LEN + s))
    yield FinishedEvent("finished", [])


def _run(writer: SessionWriter, name: str, grid: ImageTokenGrid, seed: int) -> str:
    spec = RunSpec(
        name=name, prompt="what happens?", n_layers=N_LAYERS, n_heads=N_HEADS, max_new_tokens=N_STEPS
    )
    return record(_events(grid, seed), writer, spec)


def write_session(
    path: Path, discoveries: tuple[Discovery, ...] = (), second_image: bool = True, ui: dict | None = None
) -> Path:
    """A session with a baseline run on the first image (3 panels) and, with ``second_image``, one
    on a second image (``b.png``, 4 panels, another token grid), then the given discoveries (the
    last is the newest) and the saved selection ``ui``."""
    w = SessionWriter(path, meta=META, image=IMAGE_A, grid=GRID_A, regions=panel_regions(GRID_A, 3))
    try:
        _run(w, "on a", GRID_A, 10)
        if second_image:
            w.use_image(IMAGE_B, GRID_B, panel_regions(GRID_B, 4), "b.png")
            _run(w, "on b", GRID_B, 20)
        for d in discoveries:
            w.write_discovery(
                d, source="folder" if d.n_strips == 5 else "demo", params={"n_strips": d.n_strips}
            )
        if ui is not None:
            w.write_ui(ui)
    finally:
        w.close()
    return path

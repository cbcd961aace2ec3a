"""Deterministic synthetic sessions for the storage tests: a small image, grid, regions, and
softmax-shaped attention rows, as the real generation events of ``core.events`` (no torch)."""

from __future__ import annotations

import numpy as np

from gaze_explorer.core.events import FinishedEvent, PrefillEvent, TokenEvent
from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.steering import Switch

N_LAYERS, N_HEADS = 3, 4
PROMPT_LEN = 40
TOKENS = ["Le", " chat", " 猫", " ест", " 🐟", " عربى", "\n", " naïve", "", " end"]


def make_image(h: int = 64, w: int = 192) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def make_grid() -> ImageTokenGrid:
    return ImageTokenGrid.uniform(192, 64, rows=2, cols=6, first_position=5)


def make_regions(grid: ImageTokenGrid):
    return panel_regions(grid, 3)


META = {
    "model_id": "tiny/test-model",
    "revision": "abc123",
    "family": "qwen3_vl",
    "dtype": "float32",
    "device": "cpu",
    "n_layers": N_LAYERS,
}


def softmax_rows(
    seed: int, n_layers: int, n_heads: int, n_keys: int, n_queries: int | None = None
) -> np.ndarray:
    """Attention-like rows: peaked softmax over keys, float32, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    shape = (n_layers, n_heads, n_keys) if n_queries is None else (n_layers, n_heads, n_queries, n_keys)
    logits = rng.standard_normal(shape).astype(np.float32) * 3.0
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def events(
    n_steps: int,
    *,
    prefill: str = "last",
    seed: int = 0,
    status: str = "finished",
    n_layers: int = N_LAYERS,
    n_heads: int = N_HEADS,
    prompt_len: int = PROMPT_LEN,
    switch_at: int | None = None,
):
    """A full synthetic generation stream: prefill, ``n_steps`` tokens, finished event."""
    grid = make_grid()
    q = 1 if prefill == "last" else prompt_len
    rows = None if prefill == "none" else softmax_rows(seed + 10_000, n_layers, n_heads, prompt_len, q)
    yield PrefillEvent(prompt_len, grid, list(range(prompt_len)), [f"p{i}·" for i in range(prompt_len)], rows)
    switches = []
    target = 0
    for s in range(n_steps):
        switch = None
        if switch_at is not None and s == switch_at:
            switch = Switch(s, target, 2, "live")
            target = 2
            switches.append(switch)
        yield TokenEvent(
            s,
            1000 + s,
            TOKENS[s % len(TOKENS)],
            target,
            softmax_rows(seed + s, n_layers, n_heads, prompt_len + s),
            switch,
        )
    yield FinishedEvent(status, switches, "" if status == "finished" else f"stopped ({status})")

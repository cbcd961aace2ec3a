"""Fixtures of the inference tests: a tiny random Qwen3-VL checkpoint written and loaded through
the same ``load_model(path)`` path as a real one (built once per session, offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)  # as tests/conftest.py's OMP_NUM_THREADS: tiny models, shared machine


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    from gaze_explorer.inference.random_init import build_random_qwen3_vl

    return build_random_qwen3_vl(tmp_path_factory.mktemp("tiny_qwen3_vl"), "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen(tiny_qwen_dir):
    from gaze_explorer.inference.loading import load_model

    return load_model(tiny_qwen_dir, device="cpu", dtype="fp32")


def make_strip(width: int = 384, height: int = 64, n_panels: int = 6, seed: int = 0) -> Image.Image:
    """Side-by-side panels of distinct noisy colours (a stand-in comic strip)."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    edges = np.linspace(0, width, n_panels + 1).round().astype(int)
    for k in range(n_panels):
        arr[:, edges[k] : edges[k + 1]] = rng.integers(30, 226, size=3)
    arr += rng.integers(0, 25, size=arr.shape, dtype=np.uint8)
    return Image.fromarray(arr)


@pytest.fixture(scope="session")
def strip_image():
    return make_strip()

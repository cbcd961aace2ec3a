"""Discovery encodes each strip's image once and shares it across the N questions, in every family.

For each supported family (tiny random-initialised models, built offline) the shared-encoding
forward must give the same ``[layer, head, N, N]`` matrix as the plain batched forward, while the
vision tower sees the image's pixels once instead of N times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import make_strip
from family_helpers import strip_image
from test_family_gemma3 import tiny_gemma3
from test_family_idefics3 import tiny_idefics3
from test_family_llava import tiny_llava, tiny_llava_next
from test_family_qwen2_vl import tiny_qwen2_vl

from gaze_explorer.inference.discovery import (
    PAPER_PROMPT,
    _base_model,
    panel_prompt,
    shared_image_kwargs,
    strip_matrix,
)
from gaze_explorer.inference.loading import loaded_from_parts


@dataclass
class _Strip:
    image: object
    panel_widths: list
    name: str = "strip"


def _vision_module(model):
    base = _base_model(model)
    for name in ("visual", "vision_tower", "vision_model"):
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise AssertionError(f"no vision module on {type(base).__name__}")


def _pixels_seen(loaded, strip, reuse: bool) -> tuple[np.ndarray, int]:
    """The strip's matrix and how many pixel rows (patches, tiles or images) the vision tower got."""
    seen: list[int] = []
    hook = _vision_module(loaded.model).register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(int((args[0] if args else kwargs["pixel_values"]).shape[0])),
        with_kwargs=True,
    )
    try:
        matrix = strip_matrix(loaded, strip, reuse_vision=reuse)
    finally:
        hook.remove()
    return matrix, sum(seen)


FAMILIES = {
    "qwen2_vl": lambda: tiny_qwen2_vl(),
    "qwen2_5_vl": lambda: tiny_qwen2_vl("qwen2_5_vl"),
    "llava": lambda: tiny_llava(),
    "llava_next": lambda: tiny_llava_next(),
    "gemma3": lambda: tiny_gemma3(),
    "idefics3": lambda: tiny_idefics3(),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shared_encoding_equals_plain_forward_in_every_family(family):
    model, adapter = FAMILIES[family]()
    loaded = loaded_from_parts(model, adapter)
    strip = _Strip(strip_image(336, 56), [56] * 6)
    shared, shared_rows = _pixels_seen(loaded, strip, reuse=True)
    plain, plain_rows = _pixels_seen(loaded, strip, reuse=False)
    assert shared.shape == plain.shape == (loaded.n_layers, loaded.n_heads, 6, 6)
    np.testing.assert_allclose(shared, plain, atol=1e-5)
    assert plain_rows == 6 * shared_rows > 0  # the image went through the vision tower once, not 6 times


def test_shared_encoding_on_qwen3_vl_passes_deepstack_features(tiny_qwen):
    strip = _Strip(make_strip(seed=3), [64] * 6)
    shared, shared_rows = _pixels_seen(tiny_qwen, strip, reuse=True)
    plain, plain_rows = _pixels_seen(tiny_qwen, strip, reuse=False)
    np.testing.assert_allclose(shared, plain, atol=1e-5)
    assert plain_rows == 6 * shared_rows > 0
    prepared = tiny_qwen.prepare(strip.image, [panel_prompt(PAPER_PROMPT, k, 6) for k in (1, 2)])
    kwargs = tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, prepared)
    with torch.inference_mode():
        out = shared_image_kwargs(tiny_qwen.model, kwargs, 2)
    assert out is not None and "pixel_values" not in out
    encoded = out["mm_encoder_outputs"]["image"]
    assert len(encoded.pooler_output) == 2  # one entry per batch row
    assert all(len(layer) == 2 for layer in encoded.deepstack_features)


def test_rows_with_different_images_fall_back_to_the_plain_forward(tiny_qwen):
    prepared = tiny_qwen.prepare(make_strip(seed=4), [panel_prompt(PAPER_PROMPT, k, 6) for k in (1, 2)])
    kwargs = tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, prepared)
    with torch.inference_mode():
        assert shared_image_kwargs(tiny_qwen.model, kwargs, 2) is not None
        assert shared_image_kwargs(tiny_qwen.model, kwargs, 1) is None  # nothing to share
        changed = dict(kwargs)
        pixels = kwargs["pixel_values"].clone()
        pixels[-1] += 1.0  # the second row's image differs
        changed["pixel_values"] = pixels
        assert shared_image_kwargs(tiny_qwen.model, changed, 2) is None
        uneven = dict(kwargs, pixel_values=kwargs["pixel_values"][:-1])  # rows cannot split evenly
        assert shared_image_kwargs(tiny_qwen.model, uneven, 2) is None

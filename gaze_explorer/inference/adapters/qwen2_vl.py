"""Qwen2-VL and Qwen2.5-VL adapters: the Qwen3-VL layout with 14 px patches and CLIP statistics.

Both families share Qwen3-VL's input layout: ``smart_resize`` stretches the image so each side is
a multiple of ``patch_size * merge_size`` (28 px), the vision tower merges 2x2 patches into one LM
token, and the text holds ``<|vision_start|>`` + ``<|image_pad|>`` x (rows * cols) +
``<|vision_end|>``. Because the whole image is stretched onto the grid, merged token ``(r, c)``
covers the uniform cell ``(c, r)`` of a ``rows x cols`` grid over the ORIGINAL image.

M-RoPE positions come from the model's own ``get_rope_index`` (same signature in both families),
so everything but the default preprocessing is inherited from :class:`Qwen3VLAdapter`.
Qwen2.5-VL's window attention lives in the vision tower only; the LM side is unchanged.
"""

from __future__ import annotations

from typing import Any

from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter

# The published preprocessor_config.json of Qwen2-VL / Qwen2.5-VL: 56*56 .. 28*28*1280 pixels
# for Qwen2-VL (Qwen2.5-VL allows up to 12845056; both keep the CLIP mean/std).
QWEN2_VL_MIN_PIXELS = 56 * 56
QWEN2_VL_MAX_PIXELS = 28 * 28 * 1280
QWEN2_5_VL_MAX_PIXELS = 12845056


class Qwen2VLAdapter(Qwen3VLAdapter):
    """Qwen2-VL (2B/7B/72B Instruct)."""

    family = "qwen2_vl"
    model_types = ("qwen2_vl",)
    max_pixels = QWEN2_VL_MAX_PIXELS

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """The processor's CLIP mean/std, the family's pixel budget."""
        return {"size": {"shortest_edge": QWEN2_VL_MIN_PIXELS, "longest_edge": cls.max_pixels}}


class Qwen2_5_VLAdapter(Qwen2VLAdapter):
    """Qwen2.5-VL (3B/7B/32B/72B Instruct)."""

    family = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)
    max_pixels = QWEN2_5_VL_MAX_PIXELS


ADAPTERS = (Qwen2VLAdapter, Qwen2_5_VLAdapter)

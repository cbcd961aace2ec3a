"""Qwen3-VL-MoE adapter (``qwen3_vl_moe``: Qwen3-VL-30B-A3B, 235B-A22B).

The mixture-of-experts replaces the language model's MLPs only: inputs, the 2x2-merged patch
grid, its uniform pixel boxes over the ORIGINAL image and the M-RoPE positions
(``get_rope_index``, same signature) are exactly Qwen3-VL's, so everything is inherited.
"""

from __future__ import annotations

from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter


class Qwen3VLMoeAdapter(Qwen3VLAdapter):
    """Qwen3-VL-MoE (30B-A3B, 235B-A22B Instruct/Thinking)."""

    family = "qwen3_vl_moe"
    model_types = ("qwen3_vl_moe",)


ADAPTERS = (Qwen3VLMoeAdapter,)

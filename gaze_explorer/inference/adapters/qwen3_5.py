"""Qwen3.5 adapters (dense ``qwen3_5`` and MoE ``qwen3_5_moe``): Qwen3-VL's image layout on a hybrid LM.

The image side is Qwen3-VL's: the ``Qwen2VLImageProcessorPil`` stretches the image so both sides
are multiples of ``patch_size x merge_size`` (16 x 2 = 32 px), 2x2 patches merge into one LM token,
and ``<|image_pad|>`` x (rows * cols) sits between ``<|vision_start|>`` and ``<|vision_end|>``;
token ``(r, c)`` covers the uniform cell ``(c, r)`` of the ORIGINAL image. M-RoPE positions come
from the model's ``get_rope_index`` (same signature as Qwen3-VL's), so all of that is inherited.

What differs is the language model: only every 4th decoder layer (``layer_types`` =
``full_attention``) is softmax attention; the others are linear attention (a gated delta net), which
has no attention probabilities to capture and no logits to bias. ``attention_layers`` (from
``FamilyAdapter``) lists the true indices of the softmax layers; captured rows, value norms and
gaze scores keep every layer's TRUE index and are NaN for the linear layers, and steering a head
in a linear layer is refused (``HeadSet.validate``).

"Qwen3.6" checkpoints: transformers 5.24 has no separate class or model type for them; the
published Qwen3.6 MoE checkpoints load as ``qwen3_5_moe`` (the same classes), so this adapter
covers them.
"""

from __future__ import annotations

from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter


class Qwen3_5Adapter(Qwen3VLAdapter):
    """Qwen3.5 dense (0.8B-27B): hybrid linear / softmax attention LM, Qwen3-VL image layout."""

    family = "qwen3_5"
    model_types = ("qwen3_5",)


class Qwen3_5MoeAdapter(Qwen3_5Adapter):
    """Qwen3.5-MoE / Qwen3.6-MoE (``qwen3_5_moe``): the dense adapter on a mixture-of-experts LM."""

    family = "qwen3_5_moe"
    model_types = ("qwen3_5_moe",)


ADAPTERS = (Qwen3_5Adapter, Qwen3_5MoeAdapter)

"""GLM-4.1V, GLM-4.5V and GLM-4.6V adapters: Qwen-style merged patches with GLM's own M-RoPE.

The GLM-V processors (``Glm4vImageProcessorPil`` / ``Glm46VImageProcessorPil``) are Qwen2-VL's
layout: ``smart_resize`` stretches the WHOLE image so each side is a multiple of
``patch_size * merge_size`` (28 px), the vision tower merges 2x2 patches into one LM token, and the
chat template's ``<|begin_of_image|><|image|><|end_of_image|>`` has its single ``<|image|>``
expanded to ``rows * cols`` copies. So merged token ``(r, c)`` covers the uniform cell ``(c, r)`` of
a ``rows x cols`` grid over the ORIGINAL image; ``<|begin_of_image|>``/``<|end_of_image|>`` are
text tokens, not image-region tokens.

Positions: the language model uses 3-D M-RoPE (image tokens take (t, row, col) positions, and the
text after an image resumes at ``max(rows, cols)`` past its start). The prefill positions come
from the model's own ``get_rope_index`` (same signature as Qwen's: it needs ``mm_token_type_ids``),
and each decode step gets ``text position + rope delta`` explicitly: GLM's forward would otherwise
derive decode positions from a ``rope_deltas`` it caches on the module, which a batched prefill of
another request (discovery, a second window) would overwrite.

GLM-4.5V (``glm4v_moe``) swaps the dense LM for a mixture of experts; GLM-4.6V (``glm46v``) is
the same model class under a new name with its own (identical) image processor. The LM side of
all three is plain softmax attention over every layer.
"""

from __future__ import annotations

from typing import Any

from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter

# a GLM turn ends at the next <|user|> or <|observation|> (the checkpoints' generation config stops
# on both and on <|endoftext|>)
END_OF_TURN_TOKENS = ("<|user|>", "<|observation|>", "<|endoftext|>")


class Glm4vAdapter(Qwen3VLAdapter):
    """GLM-4.1V (``glm4v``, e.g. GLM-4.1V-9B-Thinking)."""

    family = "glm4v"
    model_types = ("glm4v",)
    end_of_turn_tokens = END_OF_TURN_TOKENS

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

        return Glm4vImageProcessorPil

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """The processor's own defaults are the family's (CLIP mean/std; 112*112 .. 28*28*15000 px)."""
        return {}


class Glm4vMoeAdapter(Glm4vAdapter):
    """GLM-4.5V (``glm4v_moe``): the GLM-4.1V layout on a mixture-of-experts LM."""

    family = "glm4v_moe"
    model_types = ("glm4v_moe",)


class Glm46VAdapter(Glm4vAdapter):
    """GLM-4.6V (``glm46v``, dense Flash or MoE LM)."""

    family = "glm46v"
    model_types = ("glm46v",)

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.glm46v.image_processing_pil_glm46v import Glm46VImageProcessorPil

        return Glm46VImageProcessorPil


ADAPTERS = (Glm4vAdapter, Glm4vMoeAdapter, Glm46VAdapter)

"""PaliGemma / PaliGemma 2 adapter (``paligemma``): one square SigLIP view, no chat template.

``SiglipImageProcessorPil`` stretches the image to one ``image_size`` square (224, 448 or 896 px;
aspect ratio not kept) and SigLIP cuts it into ``(image_size / 14)^2`` patches (256, 1024, 4096),
each one LM token through a linear projection, row-major. So token ``(r, c)`` covers the uniform
cell ``(c, r)`` of the ORIGINAL image and the grid covers the whole image.

Sequence layout (as ``PaliGemmaProcessor`` writes it; the checkpoints have no chat template):
``"<image>" * n + "<bos>" + prompt + "\\n"``; the answer follows the newline. The whole prompt is a
bidirectional prefix (``token_type_ids`` = 0 on every prompt token; generated tokens are causal),
and positions start at 1 (``cumsum(mask)``, as ``generate`` computes them for PaliGemma).

PaliGemma 2's language model is Gemma 2: it soft-caps its attention logits
(``tanh(s / cap) * cap`` before the mask, ``attn_logit_softcapping``), which SDPA cannot do, so
the stock attention is eager (``FamilyAdapter.stock_attention``) and the registered function
applies the same cap on every path; steering biases are added after the cap, like the mask.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import (
    FamilyAdapter,
    PreparedInputs,
    VisionInputs,
    uniform_token_boxes,
)

IMAGE_TOKEN = "<image>"


class PaliGemmaAdapter(FamilyAdapter):
    """PaliGemma (Gemma LM) and PaliGemma 2 (Gemma 2 LM, attention softcap): 224/448/896 px."""

    family = "paligemma"
    model_types = ("paligemma",)
    text_config_key = "text_config"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        return SiglipImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        """The checkpoints' preprocessing: a bicubic square resize, mean/std 0.5."""
        side = int(config.vision_config.image_size)
        return cls.image_processor_class()(
            size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )

    @property
    def image_token(self) -> str:
        return getattr(self.tokenizer, "image_token", None) or IMAGE_TOKEN

    def format_prompt(self, prompt: str) -> str:
        """PaliGemma's prefix (no chat template): image marker, BOS, the prompt, a newline."""
        bos = self.tokenizer.bos_token or ""
        return f"{self.image_token}{bos}{prompt}\n"

    def _tokens_per_side(self) -> int:
        vision = self.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        expected = getattr(self.text_config, "num_image_tokens", None)
        if expected is not None and side * side != int(expected):
            raise ModelLoadError(f"PaliGemma config: {side}x{side} patches but num_image_tokens={expected}")
        return side

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_processor(images=[image], return_tensors="pt")
        pixel_values = out["pixel_values"]  # [1, 3, S, S]
        side = self._tokens_per_side()
        width, height = image.size
        return VisionInputs(
            tensors={"pixel_values": pixel_values},
            rows=side,
            cols=side,
            token_boxes=uniform_token_boxes(width, height, side, side),
            placeholder=self.image_token * (side * side),
            info={"resized": [int(pixel_values.shape[-1]), int(pixel_values.shape[-2])]},
        )

    def extra_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        # 0 on the whole prompt: image and prompt form one bidirectional prefix
        return {"token_type_ids": torch.zeros_like(input_ids)}  # [batch, T]

    def prefill_position_ids(self, prepared: PreparedInputs) -> torch.Tensor | None:
        return super().prefill_position_ids(prepared) + 1  # PaliGemma's positions start at 1

    def decode_position_ids(self, prepared: PreparedInputs, n_past: int) -> torch.Tensor | None:
        return super().decode_position_ids(prepared, n_past) + 1


ADAPTERS = (PaliGemmaAdapter,)

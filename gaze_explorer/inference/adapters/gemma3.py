"""Gemma 3 adapter: a fixed square image of soft tokens.

Gemma 3's SigLIP tower sees the image stretched to one square (``vision_config.image_size``, 896
on the released checkpoints; aspect ratio is not kept) and average-pools its patch grid down to
``mm_tokens_per_image`` soft tokens (256 = 16 x 16), row-major. Pan-and-scan is switched off: it
would add crops whose tokens cover overlapping parts of the image, and the paper's protocol uses
one view. So image token ``(r, c)`` covers the cell ``(c, r)`` of an even ``side x side`` grid over
the ORIGINAL image, and the grid covers the whole image.

Sequence layout (as ``Gemma3Processor`` writes it): the chat template's ``<start_of_image>``
becomes ``"\\n\\n<start_of_image>" + "<image_soft_token>" * n + "<end_of_image>\\n\\n"``. The model
lets image tokens attend to each other both ways in the prefill (``token_type_ids`` = 1 on the soft
tokens), and most decoder layers use a sliding window; the registered attention function must take
its mask from transformers' mask builders for that (see tests/inference/test_family_gemma3.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import FamilyAdapter, VisionInputs, uniform_token_boxes

BOI_TOKEN = "<start_of_image>"
EOI_TOKEN = "<end_of_image>"
IMAGE_TOKEN = "<image_soft_token>"
END_OF_TURN = "<end_of_turn>"


class Gemma3Adapter(FamilyAdapter):
    """Gemma 3 (``gemma3``): one square view, ``mm_tokens_per_image`` soft tokens."""

    family = "gemma3"
    model_types = ("gemma3",)
    end_of_turn_tokens = (END_OF_TURN,)
    text_config_key = "text_config"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

        return Gemma3ImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        side = int(config.vision_config.image_size)
        return cls.image_processor_class()(size={"height": side, "width": side}, do_pan_and_scan=False)

    @property
    def template_image_marker(self) -> str:  # type: ignore[override]
        return getattr(self.tokenizer, "boi_token", None) or BOI_TOKEN

    @property
    def image_token(self) -> str:
        return getattr(self.tokenizer, "image_token", None) or IMAGE_TOKEN

    def _tokens_per_side(self) -> int:
        n = int(self.config.mm_tokens_per_image)
        side = math.isqrt(n)
        if side * side != n:
            raise ModelLoadError(f"Gemma 3 config has mm_tokens_per_image={n}, which is not a square grid")
        return side

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_processor(images=[image], do_pan_and_scan=False, return_tensors="pt")
        pixel_values = out["pixel_values"]  # [1, 3, S, S]
        side = self._tokens_per_side()
        width, height = image.size
        eoi = getattr(self.tokenizer, "eoi_token", None) or EOI_TOKEN
        placeholder = f"\n\n{self.template_image_marker}{self.image_token * (side * side)}{eoi}\n\n"
        return VisionInputs(
            tensors={"pixel_values": pixel_values},
            rows=side,
            cols=side,
            token_boxes=uniform_token_boxes(width, height, side, side),
            placeholder=placeholder,
            info={"resized": [int(pixel_values.shape[-1]), int(pixel_values.shape[-2])]},
        )

    def extra_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        # 1 on the soft tokens: the model makes them attend to each other bidirectionally.
        return {"token_type_ids": (input_ids == self.image_token_id).long()}  # [batch, T]


ADAPTERS = (Gemma3Adapter,)

"""Gemma 4 adapter (``gemma4``): an aspect-preserving grid of pooled soft tokens.

``Gemma4ImageProcessorPil`` resizes the image KEEPING its aspect ratio to the largest size whose
sides are multiples of ``pooling_kernel_size x patch_size`` (3 x 16 = 48 px) and whose 16 px
patches fit ``max_soft_tokens x 9`` (280 soft tokens by default). The patches are padded to that
budget (``image_position_ids`` gives each patch's (x, y), -1 on padding), and the vision tower
average-pools each 3x3 block of patches into one soft token, row-major (``x // 3 + cols * (y // 3)``).
So the LM sees ``rows x cols = (H / 48) x (W / 48)`` soft tokens, and since the resize maps the
whole image onto the resized one (the floor to a multiple of 48 changes the aspect by < 1 cell),
token ``(r, c)`` covers the uniform cell ``(c, r)`` of the ORIGINAL image.

Sequence layout (as ``Gemma4Processor`` writes it): the chat template's image token becomes
``boi + image_token * n + eoi``. ``mm_token_type_ids`` (1 on the soft tokens) lets the image
tokens attend to each other both ways in the SLIDING-window layers (global layers stay causal);
the registered attention function takes its masks from transformers' mask builders, so it sees
the same masks. The language model may share K/V across its last layers and uses per-layer
head sizes (global layers: ``global_head_dim``); neither changes what an attention row is.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from gaze_explorer.inference.adapters.base import FamilyAdapter, VisionInputs, uniform_token_boxes

BOI_TOKEN = "<|image>"
EOI_TOKEN = "<image|>"
IMAGE_TOKEN = "<|image|>"
END_OF_TURN_TOKENS = ("<turn|>", "<end_of_turn>")


class Gemma4Adapter(FamilyAdapter):
    """Gemma 4 (E2B, E4B, 26B-A4B, 31B): aspect-preserving pooled soft-token grid."""

    family = "gemma4"
    model_types = ("gemma4",)
    end_of_turn_tokens = END_OF_TURN_TOKENS
    text_config_key = "text_config"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

        return Gemma4ImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        vision = config.vision_config
        return cls.image_processor_class()(
            patch_size=int(vision.patch_size), pooling_kernel_size=int(vision.pooling_kernel_size)
        )

    @property
    def image_token(self) -> str:
        return getattr(self.tokenizer, "image_token", None) or IMAGE_TOKEN

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_processor(images=[image], return_tensors="pt")
        pixel_values = out["pixel_values"]  # [1, max_patches, patch * patch * 3]
        position_ids = out["image_position_ids"]  # [1, max_patches, 2] (x, y) in patches, -1 = padding
        kernel = int(self.image_processor.pooling_kernel_size)
        real = position_ids[0][(position_ids[0] >= 0).all(-1)]
        patch_cols, patch_rows = int(real[:, 0].max()) + 1, int(real[:, 1].max()) + 1
        rows, cols = patch_rows // kernel, patch_cols // kernel
        n_soft = int(out["num_soft_tokens_per_image"][0])
        if rows * cols != n_soft:
            raise ValueError(
                f"the {patch_rows} x {patch_cols} patch grid does not pool to {n_soft} soft tokens"
            )
        width, height = image.size
        boi = getattr(self.tokenizer, "boi_token", None) or BOI_TOKEN
        eoi = getattr(self.tokenizer, "eoi_token", None) or EOI_TOKEN
        patch = int(self.image_processor.patch_size)
        return VisionInputs(
            tensors={"pixel_values": pixel_values, "image_position_ids": position_ids},
            rows=rows,
            cols=cols,
            token_boxes=uniform_token_boxes(width, height, rows, cols),
            placeholder=f"{boi}{self.image_token * n_soft}{eoi}",
            info={"resized": [patch_cols * patch, patch_rows * patch]},
        )

    def extra_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        # 1 on the soft tokens: sliding-window layers let them attend to each other both ways
        return {"mm_token_type_ids": (input_ids == self.image_token_id).long()}  # [batch, T]


ADAPTERS = (Gemma4Adapter,)

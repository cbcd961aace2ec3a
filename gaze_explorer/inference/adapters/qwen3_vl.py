"""Qwen3-VL adapter: dynamic-resolution patches, 2x2 spatial merge, M-RoPE positions.

The image processor resizes the image so both sides are multiples of ``patch_size x merge_size``
(32 px for Qwen3-VL), cuts it into patches and the vision tower merges 2x2 patches into one LM
token. So the LM sees a ``rows x cols`` grid of tokens that stretches over the whole image; each
token's box in ORIGINAL pixels is a uniform cell of the original image.

Positions: the language model uses 3-D M-RoPE; the image tokens take (t, row, col) positions. We
compute the prefill positions with the model's own ``get_rope_index`` (it needs
``mm_token_type_ids``: 1 on image tokens) and keep its per-row ``rope_deltas`` to give each decode
step the position ``generate`` would give it.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from gaze_explorer.inference.adapters.base import (
    FamilyAdapter,
    PreparedInputs,
    VisionInputs,
    uniform_token_boxes,
)


class Qwen3VLAdapter(FamilyAdapter):
    """Qwen3-VL (2B/4B/8B/32B Instruct, and the bundled demo model)."""

    family = "qwen3_vl"
    model_types = ("qwen3_vl",)
    text_config_key = "text_config"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        """The family's published preprocessing (``published_preprocessing``), with the patch,
        temporal patch and merge sizes from the vision config."""
        vision = config.vision_config
        return cls.image_processor_class()(
            patch_size=int(vision.patch_size),
            temporal_patch_size=int(vision.temporal_patch_size),
            merge_size=int(vision.spatial_merge_size),
            **cls.published_preprocessing(),
        )

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """Qwen3-VL's: mean/std 0.5, 256*256 .. 4096*4096 px (the subclasses' differ)."""
        return {
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "size": {"shortest_edge": 65536, "longest_edge": 16777216},
        }

    @property
    def merge_size(self) -> int:
        return int(self.config.vision_config.spatial_merge_size)

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_processor(images=[image], return_tensors="pt")
        pixel_values = out["pixel_values"]  # [grid_t * grid_h * grid_w, C * T * P * P]
        grid_thw = out["image_grid_thw"]  # [1, 3] (t, h, w) in patches
        _, grid_h, grid_w = (int(v) for v in grid_thw[0])
        rows, cols = grid_h // self.merge_size, grid_w // self.merge_size
        width, height = image.size
        return VisionInputs(
            tensors={"pixel_values": pixel_values, "image_grid_thw": grid_thw},
            rows=rows,
            cols=cols,
            # the resize stretches the whole image onto the grid, so cells are uniform in the original
            token_boxes=uniform_token_boxes(width, height, rows, cols),
            placeholder=self.image_token * (rows * cols),
            info={"grid_thw": (int(grid_thw[0, 0]), grid_h, grid_w)},
        )

    def extra_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        # M-RoPE needs to know which tokens are image tokens (1) and which are text (0)
        return {"mm_token_type_ids": (input_ids == self.image_token_id).to(torch.int32)}

    def prefill_kwargs(self, model: Any, prepared: PreparedInputs) -> dict[str, Any]:
        t = prepared.tensors
        vision_pos, deltas = _base_model(model).get_rope_index(
            t["input_ids"],
            mm_token_type_ids=t["mm_token_type_ids"],
            image_grid_thw=t["image_grid_thw"],
            attention_mask=t["attention_mask"],
        )  # [3, batch, T], [batch, 1]
        prepared.info["rope_deltas"] = deltas
        text_pos = self.prefill_position_ids(prepared).to(vision_pos.device)  # [batch, T]
        kwargs: dict[str, Any] = dict(t)
        # row 0: text positions (for the mask), rows 1-3: (t, h, w) M-RoPE positions
        kwargs["position_ids"] = torch.cat([text_pos[None], vision_pos], dim=0)  # [4, batch, T]
        return kwargs

    def decode_position_ids(self, prepared: PreparedInputs, n_past: int) -> torch.Tensor | None:
        text_pos = super().decode_position_ids(prepared, n_past)  # [batch, 1]
        deltas = prepared.info.get("rope_deltas")
        if deltas is None:
            raise RuntimeError("decode step before the prefill: M-RoPE deltas are unknown")
        # after the image every position is text: (t, h, w) all equal text position + delta
        return (text_pos.to(deltas.device) + deltas)[None].expand(3, -1, -1)  # [3, batch, 1]


def _base_model(model: Any) -> Any:
    """The ``Qwen3VLModel`` inside a ``Qwen3VLForConditionalGeneration`` (or the model itself)."""
    return model.model if hasattr(model, "model") and hasattr(model.model, "get_rope_index") else model


ADAPTERS = (Qwen3VLAdapter,)

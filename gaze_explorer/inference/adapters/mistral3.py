"""Mistral 3 (Mistral-Small-3.1/3.2, Magistral-Small) and Pixtral adapters: native-aspect patches
with row-break tokens.

The Pixtral image processor (``PixtralImageProcessorPil``) shrinks the image so its longest side
fits ``size["longest_edge"]`` (the vision tower's ``image_size``: 1540 px for Mistral 3, 1024 for
Pixtral-12B), keeping the aspect ratio, then stretches it up to whole LM cells of
``patch_size * spatial_merge_size`` px (28 px for Mistral 3, 16 for Pixtral-12B). Mistral 3 merges
2x2 patches into one LM token (``Mistral3PatchMerger``, row-major ``unfold``); Pixtral-12B
(``llava`` with a ``pixtral`` vision tower) has no merge. Because the whole image is stretched onto
the cell grid, LM token ``(r, c)`` covers the uniform cell ``(c, r)`` of a ``rows x cols`` grid over
the ORIGINAL image, and the grid covers all of it.

Sequence layout (as ``PixtralProcessor`` writes it): the chat template's single ``[IMG]`` becomes,
row by row, ``[IMG]`` x cols followed by ``[IMG_BREAK]``, with the last row's break replaced by
``[IMG_END]``. Only ``[IMG]`` tokens carry image features; ``[IMG_BREAK]`` and ``[IMG_END]`` are
ordinary learned tokens between them (the model does not scatter features into them), so they are
NOT image-region tokens: the grid, panel regions and steering's "other image tokens" are the
``[IMG]`` positions only.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import FamilyAdapter, VisionInputs, uniform_token_boxes

IMAGE_TOKEN = "[IMG]"
BREAK_TOKEN = "[IMG_BREAK]"
END_TOKEN = "[IMG_END]"


class Mistral3Adapter(FamilyAdapter):
    """Mistral 3 (``mistral3``): Pixtral vision tower, 2x2 patch merge, row-break tokens."""

    family = "mistral3"
    model_types = ("mistral3",)
    template_image_marker = IMAGE_TOKEN

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil

        return PixtralImageProcessorPil

    @classmethod
    def merge_of(cls, config: Any) -> int:
        return int(getattr(config, "spatial_merge_size", 1) or 1)

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        """The published preprocessing: longest side to the tower's image size, whole LM cells."""
        vision = config.vision_config
        cell = int(vision.patch_size) * cls.merge_of(config)
        return cls.image_processor_class()(
            size={"longest_edge": int(vision.image_size)}, patch_size={"height": cell, "width": cell}
        )

    @property
    def image_token(self) -> str:
        return getattr(self.tokenizer, "image_token", None) or IMAGE_TOKEN

    @property
    def cell_size(self) -> int:
        """Pixels per LM token side on the resized image."""
        return int(self.config.vision_config.patch_size) * self.merge_of(self.config)

    def process_image(self, image: Image.Image) -> VisionInputs:
        cell = self.cell_size
        # the processor must cut whole LM cells (PixtralProcessor passes patch * merge the same way)
        out = self.image_processor(
            images=[image], patch_size={"height": cell, "width": cell}, return_tensors="pt"
        )
        pixel_values = out["pixel_values"]  # [1, 3, H, W]
        height, width = (int(v) for v in out["image_sizes"][0])
        if height % cell or width % cell:
            raise ModelLoadError(
                f"the image processor made a {width} x {height} image, not whole {cell} px cells"
            )
        rows, cols = height // cell, width // cell
        rows_text = [self.image_token * cols + BREAK_TOKEN] * rows
        placeholder = "".join(rows_text)[: -len(BREAK_TOKEN)] + END_TOKEN
        orig_w, orig_h = image.size
        return VisionInputs(
            tensors={"pixel_values": pixel_values, "image_sizes": out["image_sizes"]},
            rows=rows,
            cols=cols,
            token_boxes=uniform_token_boxes(orig_w, orig_h, rows, cols),
            placeholder=placeholder,
            info={"resized": [width, height], "cell": cell},
        )


class PixtralAdapter(Mistral3Adapter):
    """Pixtral-12B (``llava`` with a ``pixtral`` vision tower): Mistral 3's layout without merge."""

    family = "pixtral"
    model_types = ("llava",)

    @classmethod
    def matches(cls, config: Any) -> bool:
        vision = getattr(config, "vision_config", None)
        return super().matches(config) and getattr(vision, "model_type", None) == "pixtral"

    @classmethod
    def merge_of(cls, config: Any) -> int:
        return 1

    def process_image(self, image: Image.Image) -> VisionInputs:
        # "default" drops the first feature as if it were a CLS token; Pixtral has none, so the
        # model would come up one feature short of the [IMG] tokens
        if getattr(self.config, "vision_feature_select_strategy", "full") != "full":
            raise ModelLoadError(
                "a llava checkpoint with a Pixtral vision tower needs vision_feature_select_strategy='full' "
                f"(it has {self.config.vision_feature_select_strategy!r}; Pixtral has no CLS token to drop)"
            )
        return super().process_image(image)


ADAPTERS = (Mistral3Adapter, PixtralAdapter)

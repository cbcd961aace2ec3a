"""InternVL 3 / 3.5 (``-hf`` checkpoints, ``internvl``) adapter: square views of S px, pixel shuffle.

The image processor (``GotOcr2ImageProcessorPil``, torchvision-free) makes square views of
``S = vision_config.image_size`` px (448 on the released checkpoints). The vision tower sees each
view as ``(S / patch)^2`` patches; the pixel shuffle (``downsample_ratio`` 0.5) folds each 2x2 block
into one LM token, so a view becomes ``k x k`` tokens (``k = S / patch * ratio``; 16 x 16 = 256),
row-major. Every resize stretches the whole image (nothing is cropped away), so cells are uniform
over the ORIGINAL image and the whole image reaches the LM under both input policies:

``squash`` (the default, the paper's fix for fixed-resolution processors)
    One view: the image stretched to S x S. A 1536 x 256 strip becomes 16 columns of tokens, each
    panel a contiguous block of 2-3 columns. This is what the paper ran on InternVL3.5.
``native`` (InternVL's own dynamic tiling, ``crop_to_patches``)
    The image is stretched onto the ``n_cols x n_rows`` canvas of S px tiles whose aspect ratio is
    closest to the image's (at most ``max_patches`` tiles), cut into tiles, and a thumbnail (the
    whole image at S x S) is appended when there is more than one tile. The grid is the tiles'
    tokens stitched into one ``(n_rows*k) x (n_cols*k)`` row-major grid (sequence positions are
    tile by tile, as for Idefics3); the thumbnail's tokens are a global view outside the grid,
    listed in ``PreparedInputs.info["vision"]["global_positions"]`` with their boxes (and in
    ``non_grid_positions``, which steering suppresses as other image tokens).

Sequence layout (as ``InternVLProcessor`` writes it): the chat template's single ``<IMG_CONTEXT>``
becomes ``<img>`` + ``<IMG_CONTEXT>`` x (views * k^2) + ``</img>``; ``<img>``/``</img>`` are text.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import (
    FamilyAdapter,
    PreparedInputs,
    VisionInputs,
    uniform_token_boxes,
)
from gaze_explorer.inference.adapters.idefics3 import tiled_grid_index
from gaze_explorer.inference.adapters.llava import attach_extra_positions, grid_positions

IMAGE_TOKEN = "<IMG_CONTEXT>"
START_TOKEN = "<img>"
END_TOKEN = "</img>"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def tiles_and_thumbnail(
    n_rows: int, n_cols: int, k: int, width: int, height: int, *, thumbnail_first: bool
) -> dict[str, Any]:
    """Geometry of ``n_rows x n_cols`` stretched tiles of ``k x k`` tokens plus a ``k x k``
    thumbnail (only when there is more than one tile), before or after the tiles in the sequence.

    Returns the grid (``rows``, ``cols``, ``boxes``), ``grid_token_index`` (each grid cell's index
    among the image's tokens in sequence order) and the thumbnail's ``global_index`` / boxes.
    """
    n_tiles = n_rows * n_cols
    per_view = k * k
    if n_tiles == 1:
        return {
            "rows": k,
            "cols": k,
            "boxes": uniform_token_boxes(width, height, k, k),
            "grid_token_index": np.arange(per_view),
            "global_index": None,
            "global_boxes": None,
            "n_tokens": per_view,
        }
    rows, cols = n_rows * k, n_cols * k
    tiles_start = per_view if thumbnail_first else 0
    thumb_start = 0 if thumbnail_first else n_tiles * per_view
    return {
        "rows": rows,
        "cols": cols,
        "boxes": uniform_token_boxes(width, height, rows, cols),
        "grid_token_index": tiles_start + tiled_grid_index(n_rows, n_cols, k),
        "global_index": thumb_start + np.arange(per_view),
        "global_boxes": uniform_token_boxes(width, height, k, k),
        "n_tokens": (n_tiles + 1) * per_view,
    }


class _TiledViewsMixin:
    """What the tiled-view families share (InternVL, Ovis2, Aya Vision): two input policies, sparse
    grid positions (tiles stitched, global view left out), extra positions for steering.

    ``squash`` is done by the family's own processor (one S x S view, ``crop_to_patches=False``),
    so ``squash_side`` stays None and the base class does not resize the image first."""

    input_policies: ClassVar[tuple[str, ...]] = ("squash", "native")
    image_token_id: int

    def image_token_positions(self, ids: Any, vision: VisionInputs) -> np.ndarray:
        return grid_positions(ids, self.image_token_id, vision)

    def build_inputs(self, image: Image.Image, prompts: Any) -> PreparedInputs:
        return attach_extra_positions(super().build_inputs(image, prompts), self.image_token_id)  # type: ignore[misc]


class InternVLAdapter(_TiledViewsMixin, FamilyAdapter):
    """InternVL 3 / 3.5 ``-hf`` (``internvl``): S px square views, k x k tokens per view."""

    family = "internvl"
    model_types = ("internvl",)
    default_input_policy: ClassVar[str] = "squash"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        return GotOcr2ImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        """The released preprocessing: S x S views, ImageNet statistics, up to 12 tiles."""
        side = cls.view_size(config)
        return cls.image_processor_class()(
            size={"height": side, "width": side},
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
            min_patches=1,
            max_patches=12,
        )

    @staticmethod
    def view_size(config: Any) -> int:
        size = config.vision_config.image_size
        side = size[0] if isinstance(size, list | tuple) else size
        return int(side)

    @property
    def image_token(self) -> str:
        return getattr(self.tokenizer, "context_image_token", None) or IMAGE_TOKEN

    def tokens_per_side(self) -> int:
        """``k``: LM tokens per side of one view after the pixel shuffle."""
        patch = self.config.vision_config.patch_size
        patch = int(patch[0] if isinstance(patch, list | tuple) else patch)
        per_side = self.view_size(self.config) // patch
        k = per_side * float(self.config.downsample_ratio)
        if k != int(k):
            raise ModelLoadError(
                f"{per_side} patches per side do not shuffle by {self.config.downsample_ratio}"
            )
        return int(k)

    def process_image(self, image: Image.Image) -> VisionInputs:
        tiled = self.input_policy == "native"
        out = self.image_processor(images=[image], crop_to_patches=tiled, return_tensors="pt")
        pixel_values = out["pixel_values"]  # [views, 3, S, S]
        side = self.view_size(self.config)
        if tuple(pixel_values.shape[-2:]) != (side, side):
            raise ModelLoadError(
                f"the image processor makes {tuple(pixel_values.shape[-2:])} px views but the vision tower takes {side} px"
            )
        width, height = image.size
        n_cols, n_rows = 1, 1
        if tiled and int(out["num_patches"][0]) > 1:
            from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

            proc = self.image_processor
            n_cols, n_rows = get_optimal_tiled_canvas(
                (height, width), (side, side), proc.min_patches, proc.max_patches
            )
        geo = tiles_and_thumbnail(
            n_rows, n_cols, self.tokens_per_side(), width, height, thumbnail_first=False
        )
        n_views = n_rows * n_cols + (1 if n_rows * n_cols > 1 else 0)
        if n_views != int(pixel_values.shape[0]):
            raise ModelLoadError(
                f"expected {n_views} views from the image processor, got {pixel_values.shape[0]}"
            )
        start = getattr(self.tokenizer, "start_image_token", None) or START_TOKEN
        end = getattr(self.tokenizer, "end_image_token", None) or END_TOKEN
        return VisionInputs(
            tensors={"pixel_values": pixel_values},
            rows=geo["rows"],
            cols=geo["cols"],
            token_boxes=geo["boxes"],
            placeholder=f"{start}{self.image_token * geo['n_tokens']}{end}",
            info={
                "tiles": [n_rows, n_cols],
                "n_placeholders": geo["n_tokens"],
                "grid_token_index": geo["grid_token_index"],
                "global_index": geo["global_index"],
                "global_boxes": geo["global_boxes"],
            },
        )


ADAPTERS = (InternVLAdapter,)

"""Aya Vision adapter (``aya_vision``: Aya Vision 8B / 32B): SigLIP tiles + a global tile, pixel shuffle.

The image processor (``GotOcr2ImageProcessorPil``, torchvision-free) makes square views of
``S = vision_config.image_size`` px (364 on the released checkpoints). SigLIP cuts a view into
``(S / 14)^2`` patches and the projector's pixel shuffle (``downsample_factor`` 2) folds each 2x2
block into one LM token, so a view is ``k x k`` tokens (13 x 13 = 169), row-major. Every resize
stretches the whole image (nothing is cropped away), so cells are uniform over the ORIGINAL image:

``native`` (the default; Aya's own processing, ``crop_to_patches``)
    The image is stretched onto the ``n_cols x n_rows`` canvas of S px tiles closest to its aspect
    ratio (up to ``max_patches`` = 12 tiles) and cut into tiles; with more than one tile the whole
    image at S x S follows as the global tile. The grid is the tiles' tokens stitched into one
    ``(n_rows*k) x (n_cols*k)`` row-major grid (a 6:1 strip gets 6 x 1 tiles, so its panels stay
    sharp); the global tile's tokens lie outside the grid (``info["vision"]["global_positions"]``
    with their boxes; ``non_grid_positions``: steering suppresses them as other image tokens).
``squash``
    One S x S view of the whole image (the paper's fix for fixed-resolution processors).

Sequence layout (as ``AyaVisionProcessor`` writes it): the chat template's ``<image>`` becomes
``<|START_OF_IMG|>`` + ``TILE_1`` + ``<|IMG_PATCH|>`` x k^2 + ... + ``TILE_GLOBAL`` +
``<|IMG_PATCH|>`` x k^2 + ``<|END_OF_IMG|>``; the tile labels are text. The language model
(Cohere 2) interleaves sliding-window and global layers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import FamilyAdapter, VisionInputs
from gaze_explorer.inference.adapters.tiled_views import GotOcr2ViewsMixin, tiles_and_thumbnail

TEMPLATE_IMAGE_TOKEN = "<image>"
PATCH_TOKEN = "<|IMG_PATCH|>"
START_TOKEN = "<|START_OF_IMG|>"
END_TOKEN = "<|END_OF_IMG|>"
TILE_TOKEN = "TILE"
GLOBAL_TILE_TOKEN = "TILE_GLOBAL"
END_OF_TURN = "<|END_OF_TURN_TOKEN|>"


class AyaVisionAdapter(GotOcr2ViewsMixin, FamilyAdapter):
    """Aya Vision (``aya_vision``): 364 px SigLIP tiles + global tile, 13 x 13 tokens per view."""

    family = "aya_vision"
    model_types = ("aya_vision",)
    end_of_turn_tokens = (END_OF_TURN,)
    template_image_marker: ClassVar[str | None] = TEMPLATE_IMAGE_TOKEN
    default_input_policy: ClassVar[str] = "native"

    def __init__(self, config: Any, tokenizer: Any, image_processor: Any) -> None:
        super().__init__(config, tokenizer, image_processor)
        self.input_policy = self.default_input_policy

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """The released preprocessing: tiles (up to 12) + a global tile, mean/std 0.5."""
        return {
            "image_mean": [0.5] * 3,
            "image_std": [0.5] * 3,
            "crop_to_patches": True,
            "min_patches": 1,
            "max_patches": 12,
        }

    @property
    def image_token(self) -> str:
        """The placeholder each image TOKEN has in ``input_ids`` (``config.image_token_index``)."""
        return str(self.tokenizer.convert_ids_to_tokens(int(self.config.image_token_index)))

    @property
    def image_token_id(self) -> int:
        return int(self.config.image_token_index)

    def tokens_per_side(self) -> int:
        """``k``: LM tokens per side of one view after the pixel shuffle."""
        vision = self.config.vision_config
        per_side = int(vision.image_size) // int(vision.patch_size)
        factor = int(self.config.downsample_factor)
        if per_side % factor:
            raise ModelLoadError(f"{per_side} patches per side do not shuffle by {factor}")
        return per_side // factor

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_views(image)
        n_rows, n_cols = self.tile_canvas(out, image)
        k = self.tokens_per_side()
        width, height = image.size
        geo = tiles_and_thumbnail(n_rows, n_cols, k, width, height, thumbnail_first=False)
        n_tiles = n_rows * n_cols
        per_view = self.image_token * (k * k)
        tiles = "".join(f"{TILE_TOKEN}_{i}{per_view}" for i in range(1, n_tiles + 1)) if n_tiles > 1 else ""
        placeholder = f"{START_TOKEN}{tiles}{GLOBAL_TILE_TOKEN}{per_view}{END_TOKEN}"
        return self.tiled_vision_inputs(
            out["pixel_values"], geo, placeholder, (n_rows, n_cols), input_policy=self.input_policy
        )


ADAPTERS = (AyaVisionAdapter,)

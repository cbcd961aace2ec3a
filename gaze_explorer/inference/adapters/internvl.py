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

from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import FamilyAdapter, VisionInputs
from gaze_explorer.inference.adapters.tiled_views import GotOcr2ViewsMixin, tiles_and_thumbnail

IMAGE_TOKEN = "<IMG_CONTEXT>"
START_TOKEN = "<img>"
END_TOKEN = "</img>"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class InternVLAdapter(GotOcr2ViewsMixin, FamilyAdapter):
    """InternVL 3 / 3.5 ``-hf`` (``internvl``): S px square views, k x k tokens per view."""

    family = "internvl"
    model_types = ("internvl",)
    default_input_policy: ClassVar[str] = "squash"

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """The released preprocessing: ImageNet statistics, up to 12 tiles."""
        return {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "min_patches": 1, "max_patches": 12}

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
        out = self.image_views(image)
        n_rows, n_cols = self.tile_canvas(out, image)
        width, height = image.size
        geo = tiles_and_thumbnail(
            n_rows, n_cols, self.tokens_per_side(), width, height, thumbnail_first=False
        )
        start = getattr(self.tokenizer, "start_image_token", None) or START_TOKEN
        end = getattr(self.tokenizer, "end_image_token", None) or END_TOKEN
        placeholder = f"{start}{self.image_token * geo['n_tokens']}{end}"
        return self.tiled_vision_inputs(out["pixel_values"], geo, placeholder, (n_rows, n_cols))


ADAPTERS = (InternVLAdapter,)

"""Ovis2 adapter (``ovis2``): probabilistic visual tokens in square views, visual-indicator tokens.

Ovis2's image processor (``Ovis2ImageProcessorPil``, torchvision-free) makes square views of
``S = vision_config.image_size`` px (448 on the released checkpoints). The vision tower's
``hidden_stride`` folds each ``hs x hs`` block of patches into one LM token, so a view becomes
``k x k`` tokens (``k = S / patch / hs``; 16 x 16 = 256), row-major; each token is a soft mixture
over a visual vocabulary (``visual_embeddings_table``). Every resize stretches the whole image, so
cells are uniform over the ORIGINAL image and all of it reaches the LM under both input policies:

``squash`` (the default, the paper's fix for fixed-resolution processors)
    One view: the image stretched to S x S (a 6-panel strip keeps every panel as a contiguous block
    of token columns).
``native`` (Ovis2's own tiling, ``crop_to_patches``)
    The fewest tiles that cover 90% of the image (at most ``max_patches``), the image stretched
    onto that canvas and cut, with a thumbnail (the whole image at S x S) FIRST when there is more
    than one tile. The grid is the tiles' tokens stitched into one ``(n_rows*k) x (n_cols*k)``
    row-major grid; the thumbnail is a global view outside the grid
    (``info["vision"]["global_positions"]``, also in ``non_grid_positions``). NOTE: transformers
    5.24's processor unpacks its covering grid as (columns, rows) although it computes (rows,
    columns), so a wide strip is stretched onto a TALL canvas (336 x 56 -> 3 rows x 1 column of
    tiles). The grid follows the ``grids`` the processor reports, i.e. what the model sees; one more
    reason ``squash`` is the default.

Sequence layout (as ``Ovis2Processor`` writes it): the chat template's ``<image>`` becomes
``<IMG_START>`` + ``<IMG_ATOM>`` x k^2 (the thumbnail, or the only view) + ``<IMG_GRID>``, then,
when tiled, each tile's atoms separated by ``<IMG_COL>`` within a row and ``<IMG_ROW>`` between
rows, then ``<IMG_END>``. The five visual-indicator tokens get learned visual embeddings but cover
no pixels: they are NOT image-region tokens (not scored, as in the paper, and left alone by
steering like text); their positions are listed in ``info["vision"]["indicator_positions"]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import FamilyAdapter, PreparedInputs, VisionInputs
from gaze_explorer.inference.adapters.internvl import IMAGENET_MEAN, IMAGENET_STD
from gaze_explorer.inference.adapters.tiled_views import TiledViewsMixin, tiles_and_thumbnail

IMAGE_TOKEN = "<IMG_ATOM>"
TEMPLATE_MARKER = "<image>"
START, GRID, COL, ROW, END = "<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>"


class Ovis2Adapter(TiledViewsMixin, FamilyAdapter):
    """Ovis2 (1B-34B): S px square views, k x k visual tokens per view, indicator tokens."""

    family = "ovis2"
    model_types = ("ovis2",)
    template_image_marker = TEMPLATE_MARKER
    default_input_policy: ClassVar[str] = "squash"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.ovis2.image_processing_pil_ovis2 import Ovis2ImageProcessorPil

        return Ovis2ImageProcessorPil

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """The released preprocessing: ImageNet statistics, up to 9 tiles."""
        return {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "max_patches": 9}

    @property
    def image_token(self) -> str:
        return IMAGE_TOKEN

    def tokens_per_side(self) -> int:
        """``k``: LM tokens per side of one view after the hidden-stride merge."""
        vision = self.config.vision_config
        per_side = int(vision.image_size) // int(vision.patch_size)
        stride = int(vision.hidden_stride)
        if per_side % stride:
            # the tower would zero-pad the patch grid: edge tokens would cover partial cells
            raise ModelLoadError(
                f"Ovis2 with {per_side} patches per side and hidden_stride {stride} is not supported"
            )
        return per_side // stride

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_views(image)
        n_rows, n_cols = (int(v) for v in out["grids"][0])
        k = self.tokens_per_side()
        width, height = image.size
        geo = tiles_and_thumbnail(n_rows, n_cols, k, width, height, thumbnail_first=True)
        atoms = self.image_token * (k * k)
        placeholder = f"{START}{atoms}{GRID}"
        if n_rows * n_cols > 1:
            placeholder += ROW.join(COL.join([atoms] * n_cols) for _ in range(n_rows))
        placeholder += END
        return self.tiled_vision_inputs(out["pixel_values"], geo, placeholder, (n_rows, n_cols))

    def build_inputs(self, image: Image.Image, prompts: Any) -> PreparedInputs:
        prepared = super().build_inputs(image, prompts)
        indicators = torch.tensor([int(i) for i in self.config.visual_indicator_token_ids])
        mask = torch.isin(prepared.tensors["input_ids"], indicators)  # [batch, T]
        prepared.info["vision"]["indicator_positions"] = [torch.nonzero(r).flatten().numpy() for r in mask]
        return prepared


ADAPTERS = (Ovis2Adapter,)

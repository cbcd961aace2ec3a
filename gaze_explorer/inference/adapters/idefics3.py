"""Idefics3 and SmolVLM adapters: the image split into square tiles plus one global view.

The processor resizes the image (longest side to ``size["longest_edge"]``, keeping its aspect),
then stretches it so both sides are multiples of the tile size ``M = max_image_size`` and cuts it
into ``n_rows x n_cols`` tiles; a last "global" view is the whole image squashed to ``M x M``.
Each view becomes ``k x k`` LM tokens after the pixel shuffle (``k = (M / patch) / scale_factor``),
row-major within the view. The text (as ``Idefics3Processor``/``SmolVLMProcessor`` write it) is,
per tile row, ``<fake_token_around_image><row_i_col_j>`` + ``<image>`` x k^2 for each tile and a
``\\n``; then ``\\n<fake_token_around_image><global-img>`` + ``<image>`` x k^2 +
``<fake_token_around_image>``.

The grid: the tiles' tokens, stitched into one ``(n_rows*k) x (n_cols*k)`` row-major grid over the
ORIGINAL image (cells are uniform because both resizes stretch the whole image). Its sequence
positions are therefore not monotonic (tile by tile in the sequence, row by row in the grid). The
global view's tokens cover the same image at a coarser scale; they are NOT in the grid (regions,
panels and boxes use the tile tokens) and are listed in
``PreparedInputs.info["vision"]["global_positions"]`` with ``global_boxes`` (and, like every token
outside the grid, in ``non_grid_positions``, which steering should suppress). When splitting is
off (``do_image_splitting=False``) or the resized image fits in one tile, there is only the global
view, and it is the grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import (
    FamilyAdapter,
    PreparedInputs,
    VisionInputs,
    uniform_token_boxes,
)
from gaze_explorer.inference.adapters.llava import (
    attach_extra_positions,
    grid_positions,
)

FAKE_TOKEN = "<fake_token_around_image>"
GLOBAL_TAG = "<global-img>"
END_OF_UTTERANCE = "<end_of_utterance>"


def tiled_grid_index(n_rows: int, n_cols: int, k: int) -> np.ndarray:
    """For each cell of the stitched ``(n_rows*k) x (n_cols*k)`` grid (row-major), the index of its
    token among the image's ``<image>`` placeholders in sequence order (tile by tile)."""
    big_r = np.arange(n_rows * k)[:, None]
    big_c = np.arange(n_cols * k)[None, :]
    tile = (big_r // k) * n_cols + big_c // k
    return (tile * k * k + (big_r % k) * k + big_c % k).ravel()  # [n_rows*k * n_cols*k]


class Idefics3Adapter(FamilyAdapter):
    """Idefics3 (``idefics3``): tiles + global view, ``k x k`` tokens per view."""

    family = "idefics3"
    model_types = ("idefics3",)
    end_of_turn_tokens = (END_OF_UTTERANCE,)

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

        return Idefics3ImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        tile = int(config.vision_config.image_size)
        return cls.image_processor_class()(
            size={"longest_edge": 4 * tile}, max_image_size={"longest_edge": tile}, do_image_splitting=True
        )

    def tokens_per_side(self) -> int:
        """``k``: LM tokens per side of one view, after the pixel shuffle."""
        vision = self.config.vision_config
        per_side = int(vision.image_size) // int(vision.patch_size)
        scale = int(self.config.scale_factor)
        if per_side % scale:
            raise ModelLoadError(f"{per_side} patches per side do not shuffle by scale factor {scale}")
        return per_side // scale

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_processor(images=[[image]], return_row_col_info=True, return_tensors="pt")
        n_rows, n_cols = int(out["rows"][0][0]), int(out["cols"][0][0])
        tile = int(out["pixel_values"].shape[-1])
        if tile != int(self.config.vision_config.image_size):
            raise ModelLoadError(
                f"the image processor makes {tile} px tiles but the vision tower takes "
                f"{self.config.vision_config.image_size} px"
            )
        k = self.tokens_per_side()
        width, height = image.size
        image_run = self.image_token * (k * k)
        if n_rows == 0 and n_cols == 0:  # small image: only the global view, which is the grid
            placeholder = f"{FAKE_TOKEN}{GLOBAL_TAG}{image_run}{FAKE_TOKEN}"
            rows, cols, index, global_index = k, k, np.arange(k * k), None
        else:
            placeholder = ""
            for r in range(n_rows):
                placeholder += "".join(
                    f"{FAKE_TOKEN}<row_{r + 1}_col_{c + 1}>{image_run}" for c in range(n_cols)
                )
                placeholder += "\n"
            placeholder += f"\n{FAKE_TOKEN}{GLOBAL_TAG}{image_run}{FAKE_TOKEN}"
            rows, cols = n_rows * k, n_cols * k
            index = tiled_grid_index(n_rows, n_cols, k)
            global_index = n_rows * n_cols * k * k + np.arange(k * k)
        tensors = {"pixel_values": out["pixel_values"]}  # [1, n_views, 3, M, M]
        if "pixel_attention_mask" in out:
            tensors["pixel_attention_mask"] = out["pixel_attention_mask"]  # [1, n_views, M, M]
        return VisionInputs(
            tensors=tensors,
            rows=rows,
            cols=cols,
            token_boxes=uniform_token_boxes(width, height, rows, cols),
            placeholder=placeholder,
            info={
                "tiles": [n_rows, n_cols],
                "tokens_per_view": [k, k],
                "n_placeholders": (n_rows * n_cols + 1) * k * k,  # the tiles, then the global view
                "grid_token_index": index,
                "global_index": global_index,
                "global_boxes": None if global_index is None else uniform_token_boxes(width, height, k, k),
            },
        )

    def image_token_positions(self, ids: Any, vision: VisionInputs) -> np.ndarray:
        return grid_positions(ids, self.image_token_id, vision)

    def build_inputs(self, image: Image.Image, prompts: Any) -> PreparedInputs:
        return attach_extra_positions(super().build_inputs(image, prompts), self.image_token_id)


class SmolVLMAdapter(Idefics3Adapter):
    """SmolVLM (``smolvlm``): Idefics3's layout with its own image processor defaults."""

    family = "smolvlm"
    model_types = ("smolvlm",)

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

        return SmolVLMImageProcessorPil


ADAPTERS = (Idefics3Adapter, SmolVLMAdapter)

"""What the tiled-view families share (InternVL, Ovis2, Aya Vision): square S px views made by the
family's own image processor, either one squashed view of the whole image or stretched tiles plus
a global thumbnail; the grid is the tiles' tokens stitched row-major, the thumbnail lies outside it.

``tiles_and_thumbnail`` is the geometry, ``TiledViewsMixin`` the adapter side (two input policies,
the views and their size check, the GOT-OCR2 tile canvas, the ``VisionInputs`` record, sparse grid
positions and the extra positions steering suppresses).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.inference.adapters.base import PreparedInputs, VisionInputs, uniform_token_boxes
from gaze_explorer.inference.adapters.idefics3 import tiled_grid_index
from gaze_explorer.inference.adapters.llava import attach_extra_positions, grid_positions


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


class TiledViewsMixin:
    """Two input policies, the views, sparse grid positions (tiles stitched, global view left out)
    and extra positions for steering.

    ``squash`` is done by the family's own processor (one S x S view, ``crop_to_patches=False``),
    so ``squash_side`` stays None and the base class does not resize the image first."""

    input_policies: ClassVar[tuple[str, ...]] = ("squash", "native")
    image_token_id: int
    image_processor: Any
    config: Any
    input_policy: str

    @staticmethod
    def view_size(config: Any) -> int:
        """S: the vision tower's square view side (``image_size`` may be a pair)."""
        size = config.vision_config.image_size
        side = size[0] if isinstance(size, list | tuple) else size
        return int(side)

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        """The family's released preprocessing (``published_preprocessing``) on S x S views."""
        side = cls.view_size(config)
        return cls.image_processor_class()(  # type: ignore[attr-defined]
            size={"height": side, "width": side}, **cls.published_preprocessing()
        )

    @classmethod
    def published_preprocessing(cls) -> dict[str, Any]:
        """The family's statistics and tile limits, as its released processor config has them."""
        raise NotImplementedError

    def image_views(self, image: Image.Image) -> dict[str, Any]:
        """The family's processor on ``image``: tiles (``native``) or one squashed view; the views'
        side must be the tower's S (``out["pixel_values"]``: ``[views, 3, S, S]``)."""
        tiled = self.input_policy == "native"
        out = self.image_processor(images=[image], crop_to_patches=tiled, return_tensors="pt")
        side = self.view_size(self.config)
        shape = tuple(out["pixel_values"].shape[-2:])
        if shape != (side, side):
            raise ModelLoadError(
                f"the image processor makes {shape} px views but the vision tower takes {side} px"
            )
        return out

    @staticmethod
    def tiled_vision_inputs(
        pixel_values: Any, geo: dict[str, Any], placeholder: str, tiles: tuple[int, int], **info: Any
    ) -> VisionInputs:
        """The ``VisionInputs`` of ``tiles_and_thumbnail``'s geometry ``geo`` (``info``: more entries)."""
        return VisionInputs(
            tensors={"pixel_values": pixel_values},
            rows=geo["rows"],
            cols=geo["cols"],
            token_boxes=geo["boxes"],
            placeholder=placeholder,
            info={
                **info,
                "tiles": list(tiles),
                "n_placeholders": geo["n_tokens"],
                "grid_token_index": geo["grid_token_index"],
                "global_index": geo["global_index"],
                "global_boxes": geo["global_boxes"],
            },
        )

    def image_token_positions(self, ids: Any, vision: VisionInputs) -> np.ndarray:
        return grid_positions(ids, self.image_token_id, vision)

    def build_inputs(self, image: Image.Image, prompts: Any) -> PreparedInputs:
        return attach_extra_positions(super().build_inputs(image, prompts), self.image_token_id)  # type: ignore[misc]


class GotOcr2ViewsMixin(TiledViewsMixin):
    """Tiled views made by GOT-OCR2's image processor (InternVL, Aya Vision)."""

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        return GotOcr2ImageProcessorPil

    def tile_canvas(self, out: dict[str, Any], image: Image.Image) -> tuple[int, int]:
        """``(n_rows, n_cols)`` of the tile canvas GOT-OCR2's ``crop_to_patches`` cut (``(1, 1)``
        for one view), checked against the number of views it made (tiles + thumbnail)."""
        n_cols, n_rows = 1, 1
        if self.input_policy == "native" and int(out["num_patches"][0]) > 1:
            from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

            side = self.view_size(self.config)
            proc = self.image_processor
            width, height = image.size
            n_cols, n_rows = get_optimal_tiled_canvas(
                (height, width), (side, side), proc.min_patches, proc.max_patches
            )
        n_views = n_rows * n_cols + (1 if n_rows * n_cols > 1 else 0)
        if n_views != int(out["pixel_values"].shape[0]):
            raise ModelLoadError(
                f"expected {n_views} views from the image processor, got {out['pixel_values'].shape[0]}"
            )
        return n_rows, n_cols

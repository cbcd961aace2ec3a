"""LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision adapters: square views, anyres tiles, newline tokens.

LLaVA-1.5 (``llava``)
    One CLIP square view; the LM sees its ``g x g`` patch grid (``g = image_size / patch_size``;
    24 x 24 = 576 for 336 px). Input policies: ``squash`` (default; the paper's fix: the image is
    resized to ``S x S`` first, so every panel of a strip keeps its share of the token columns),
    ``pad`` (the original recipe, ``image_aspect_ratio="pad"``: padded to a square with the mean
    colour) and ``native`` (the hf processor's resize-shortest-side + centre crop, which keeps
    only the middle of a strip; the coverage check reports it). Rule for the padding: tokens whose
    cell lies entirely in the padding cover no original pixels, so they are NOT in the grid (they
    stay in the sequence and are listed in ``info["vision"]["non_grid_positions"]``, for steering
    to suppress as "other image tokens"); tokens that straddle the image edge are in the grid with
    their box clipped to the image (narrower than the others: panels are assigned from these real
    boxes). The grid is the band of rows (or columns) that carry the image.

LLaVA-NeXT (``llava_next``)
    Each image gives a base view (the whole image squashed to one CLIP square, ``g x g`` tokens,
    first in the sequence), then the high-resolution view: the image resized into the best
    ``image_grid_pinpoints`` resolution, padded, cut into CLIP tiles, with the padding removed
    again in feature space ("unpad"), laid out row-major with one ``image_newline`` token after
    each row. The grid is the high-resolution view without its newline tokens (it covers the
    image with the finest cells); the base-view tokens are listed in
    ``PreparedInputs.info["vision"]["global_positions"]`` with their boxes, outside the grid.
    The model unpads with ``int(round(...))`` in feature units, so for some aspect ratios it drops
    a partly-filled edge column (or row) of features: the grid's boxes then stop short of that
    image edge by less than one cell (that sliver is seen only by the base view). Boxes are kept
    honest rather than stretched over it. For extreme aspect ratios (e.g. 3000 x 20 px) unpadding
    leaves no high-res feature at all; the base view is then the grid.
    Input policies: ``squash`` (default, as the paper ran NeXT: the image is resized to ``S x S``
    first; anyres puts that square in a 1 x 2 pinpoint and unpads it back to ``g x g``, so a strip
    is a 24 x 24 grid at 336 px, 4 columns a panel) and ``native`` (anyres on the image itself: a
    strip keeps its aspect at a higher resolution, e.g. 12 x 72 for a 1566 x 256 strip).

LLaVA-OneVision (``llava_onevision``)
    NeXT's layout on a SigLIP tower (no CLS). When the unpadded feature grid holds more than
    about ``anyres_max_N`` tiles' worth of features, the model shrinks it bilinearly; each cell of
    the shrunk grid then covers an equal share of the unpadded area (its box in the grid).
    Input policies: ``native`` (default: SigLIP anyres keeps the whole strip, no CLIP crop) and
    ``squash``.

``vision_feature_select_strategy``: ``default`` drops CLIP's CLS token. LLaVA-1.5 with ``full``
on a CLIP tower keeps the CLS as an extra token before the grid (it covers the whole image, so it
is left out of the grid). NeXT/OneVision checkpoints use ``default`` (CLIP) or a SigLIP tower
without CLS; a CLS kept in their tiles is refused (the model itself cannot lay those out).

The shared helpers here (``grid_positions``, ``attach_extra_positions``,
``adopt_legacy_chat_template``) serve every family whose grid is a subset of its image tokens
(Idefics3/SmolVLM too).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError, PromptError
from gaze_explorer.inference.adapters.base import (
    FamilyAdapter,
    PreparedInputs,
    VisionInputs,
    uniform_token_boxes,
)

LLAVA_FALLBACK_TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"
MISTRAL_FALLBACK_TEMPLATE = "[INST] <image>\n{prompt} [/INST]"
QWEN_FALLBACK_TEMPLATE = "<|im_start|>user\n<image>\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def grid_positions(ids: torch.Tensor, image_token_id: int, vision: VisionInputs) -> np.ndarray:
    """Positions of a sparse grid: the image placeholders of one row, picked by ``grid_token_index``.

    ``vision.info["n_placeholders"]`` is how many placeholders the image expands to (grid tokens,
    global-view tokens, CLS and newline tokens together) and ``vision.info["grid_token_index"]``
    the index, among them in sequence order, of each grid token in row-major grid order.
    """
    pos = torch.nonzero(ids == image_token_id).flatten().cpu().numpy().astype(np.int64)
    expected = int(vision.info["n_placeholders"])
    if pos.size != expected:
        raise PromptError(
            f"found {pos.size} image tokens in the input but the image needs {expected}; "
            "does the prompt contain an image placeholder of its own?"
        )
    return pos[np.asarray(vision.info["grid_token_index"], dtype=np.int64)]


def attach_extra_positions(prepared: PreparedInputs, image_token_id: int) -> PreparedInputs:
    """Record, per batch row, where the image tokens kept OUT of the grid are.

    ``info["vision"]["non_grid_positions"][b]``: every image placeholder of row ``b`` that is not a
    grid token (global/base views, CLS, newline tokens, all-padding cells), sorted. Steering
    should treat them as "other image tokens" (suppressed), never as text.
    ``info["vision"]["global_positions"][b]``: the global view's tokens in ``global_index`` order
    (row-major, boxes in ``global_boxes``), when the family has one.
    """
    info = prepared.info["vision"]
    mask = prepared.tensors["input_ids"] == image_token_id  # [batch, T]
    rows = [torch.nonzero(row).flatten().cpu().numpy() for row in mask]
    info["non_grid_positions"] = [
        np.setdiff1d(pos, grid.positions) for pos, grid in zip(rows, prepared.grids, strict=True)
    ]
    if info.get("global_index") is not None:
        info["global_positions"] = [pos[np.asarray(info["global_index"])] for pos in rows]
    return prepared


def pad_to_square_boxes(width: int, height: int, g: int) -> tuple[int, int, int, int, np.ndarray]:
    """Grid of a ``g x g`` view of the image padded (centred) to a square.

    Returns ``(r0, c0, rows, cols, boxes)``: the band of cells that hold image pixels and their
    boxes clipped to the original image, row-major.
    """
    side = max(width, height)
    off_x, off_y = (side - width) // 2, (side - height) // 2  # where pad_to_square pastes the image
    edges = np.linspace(0.0, float(side), g + 1)
    xs = np.clip(edges - off_x, 0.0, float(width))
    ys = np.clip(edges - off_y, 0.0, float(height))
    keep_c = np.flatnonzero(np.diff(xs) > 0)
    keep_r = np.flatnonzero(np.diff(ys) > 0)
    x0, y0 = np.meshgrid(xs[keep_c], ys[keep_r])
    x1, y1 = np.meshgrid(xs[keep_c + 1], ys[keep_r + 1])
    boxes = np.stack([x0.ravel(), y0.ravel(), x1.ravel(), y1.ravel()], axis=1)  # [rows*cols, 4]
    return int(keep_r[0]), int(keep_c[0]), keep_r.size, keep_c.size, boxes


class _ClipViewMixin:
    """What the LLaVA variants share: patch geometry, CLS handling, sparse-grid positions, the
    prompt fallback and the legacy chat template."""

    config: Any
    tokenizer: Any

    @property
    def patch_size(self) -> int:
        return int(self.config.vision_config.patch_size)

    @property
    def cls_tokens(self) -> int:
        """1 when the LM also gets the CLS token of each view (``full`` strategy on a CLS tower)."""
        strategy = getattr(self.config, "vision_feature_select_strategy", "default")
        has_cls = getattr(self.config.vision_config, "model_type", "") == "clip_vision_model"
        return 1 if strategy == "full" and has_cls else 0

    def fallback_template(self) -> str:
        text_type = getattr(self.config.get_text_config(), "model_type", "")
        if text_type == "qwen2":
            return QWEN_FALLBACK_TEMPLATE
        return MISTRAL_FALLBACK_TEMPLATE if text_type == "mistral" else LLAVA_FALLBACK_TEMPLATE

    def format_prompt(self, prompt: str) -> str:
        """The tokenizer's chat template, or LLaVA's plain layout for checkpoints that keep the
        template in the processor only (many ``llava-hf`` repositories)."""
        if getattr(self.tokenizer, "chat_template", None):
            return super().format_prompt(prompt)  # type: ignore[misc]
        bos = getattr(self.tokenizer, "bos_token", None) or ""
        return bos + self.fallback_template().replace("<image>", self.image_token).format(prompt=prompt)  # type: ignore[attr-defined]

    def image_token_positions(self, ids: torch.Tensor, vision: VisionInputs) -> np.ndarray:
        return grid_positions(ids, self.image_token_id, vision)  # type: ignore[attr-defined]

    def build_inputs(self, image: Image.Image, prompts: Any) -> PreparedInputs:
        prepared = super().build_inputs(image, prompts)  # type: ignore[misc]
        return attach_extra_positions(prepared, self.image_token_id)  # type: ignore[attr-defined]


class LlavaAdapter(_ClipViewMixin, FamilyAdapter):
    """LLaVA-1.5 (``llava``): one ``S x S`` view, ``g x g`` tokens.

    Input policies: ``squash`` (default, the paper's fix: the image is resized to ``S x S``, so every
    panel of a strip keeps its share of token columns), ``pad`` (the original LLaVA-1.5 recipe:
    padded to a square, the grid is the band of cells that hold pixels) and ``native`` (the hf
    processor's resize-shortest-side and centre crop, which keeps only the middle of a strip: the
    coverage check reports it).
    """

    family = "llava"
    model_types = ("llava",)
    input_policies = ("squash", "pad", "native")
    default_input_policy = "squash"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        return LlavaImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        side = int(config.vision_config.image_size)
        return cls.image_processor_class()(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}, do_pad=True
        )

    def squash_side(self) -> int:
        return int(self.config.vision_config.image_size)

    def process_image(self, image: Image.Image) -> VisionInputs:
        crop = self.input_policy == "native"
        out = self.image_processor(images=[image], do_pad=not crop, return_tensors="pt")
        pixel_values = out["pixel_values"]  # [1, 3, S, S]
        side = int(pixel_values.shape[-1])
        g = side // self.patch_size
        width, height = image.size
        if crop:
            r0, c0, rows, cols = 0, 0, g, g
            boxes, seen = centre_crop_boxes(width, height, side, g)
        else:  # padded (a squashed image is already square: the pad is a no-op)
            r0, c0, rows, cols, boxes = pad_to_square_boxes(width, height, g)
            seen = (0.0, 0.0, float(width), float(height))
        n_placeholders = g * g + self.cls_tokens
        index = self.cls_tokens + (r0 + np.arange(rows))[:, None] * g + (c0 + np.arange(cols))[None, :]
        return VisionInputs(
            tensors={"pixel_values": pixel_values},
            rows=rows,
            cols=cols,
            token_boxes=boxes,
            placeholder=self.image_token * n_placeholders,
            info={
                "view": [g, g],
                "n_placeholders": n_placeholders,
                "grid_token_index": index.ravel(),
                "global_index": np.arange(self.cls_tokens) if self.cls_tokens else None,
                # the CLS token sees what the view holds: the whole image, or the crop
                "global_boxes": np.array([seen]) if self.cls_tokens else None,
            },
        )


def centre_crop_boxes(width: int, height: int, side: int, g: int) -> tuple[np.ndarray, tuple]:
    """Boxes of the ``g x g`` grid of CLIP's resize-shortest-side-to-``side`` + centre crop, in
    original pixels, and the box of the cropped part of the image."""
    if width <= height:
        new_w, new_h = side, int(side * height / width)
    else:
        new_w, new_h = int(side * width / height), side
    left, top = (new_w - side) // 2, (new_h - side) // 2
    sx, sy = width / new_w, height / new_h
    xs = (left + np.linspace(0.0, float(side), g + 1)) * sx
    ys = (top + np.linspace(0.0, float(side), g + 1)) * sy
    x0, y0 = np.meshgrid(xs[:-1], ys[:-1])
    x1, y1 = np.meshgrid(xs[1:], ys[1:])
    boxes = np.stack([x0.ravel(), y0.ravel(), x1.ravel(), y1.ravel()], axis=1)  # [g*g, 4]
    return boxes, (float(xs[0]), float(ys[0]), float(xs[-1]), float(ys[-1]))


def anyres_geometry(
    width: int, height: int, crop: int, f: int, pinpoints: list, max_patches: int | None = None
) -> dict[str, Any]:
    """LLaVA-NeXT's (and OneVision's) high-resolution view of a ``width x height`` image.

    ``crop`` is the tile size in pixels, ``f`` the features per tile side. ``max_patches`` is
    OneVision's ``anyres_max_N``: a feature grid larger than ~N tiles is bilinearly shrunk, and
    each shrunk cell then stands for an equal share of the unpadded area. Returns the final
    feature grid (``rows``, ``cols``) and each feature's box in ORIGINAL pixels.
    """
    from transformers.image_processing_utils import select_best_resolution

    best_h, best_w = select_best_resolution((height, width), pinpoints)
    # the processor: resize (keeping aspect) into the best resolution, pad centred, cut tiles
    scale_w, scale_h = best_w / width, best_h / height
    if scale_w < scale_h:
        new_w, new_h = best_w, min(math.ceil(height * scale_w), best_h)
    else:
        new_h, new_w = best_h, min(math.ceil(width * scale_h), best_w)
    paste_x, paste_y = (best_w - new_w) // 2, (best_h - new_h) // 2
    # the model: tile features side by side, then drop the padding rows/cols in feature space
    feat_h, feat_w = (best_h // crop) * f, (best_w // crop) * f
    r0, c0, rows, cols = 0, 0, feat_h, feat_w
    if width / height > feat_w / feat_h:
        pad = (feat_h - int(round(height * (feat_w / width), 7))) // 2
        r0, rows = pad, feat_h - 2 * pad
    else:
        pad = (feat_w - int(round(width * (feat_h / height), 7))) // 2
        c0, cols = pad, feat_w - 2 * pad
    out_rows, out_cols = rows, cols
    if max_patches is not None:
        ratio = math.sqrt(rows * cols / (max_patches * f * f))
        if ratio > 1.1:  # the model's threshold for shrinking
            out_rows, out_cols = int(rows // ratio), int(cols // ratio)
    cell = crop / f  # canvas pixels per feature
    # canvas edges of the (possibly shrunk) grid over the unpadded area, then back to the original
    cx = np.linspace(c0 * cell, (c0 + cols) * cell, out_cols + 1)
    cy = np.linspace(r0 * cell, (r0 + rows) * cell, out_rows + 1)
    xs = np.clip((cx - paste_x) * (width / new_w), 0.0, float(width))
    ys = np.clip((cy - paste_y) * (height / new_h), 0.0, float(height))
    x0, y0 = np.meshgrid(xs[:-1], ys[:-1])
    x1, y1 = np.meshgrid(xs[1:], ys[1:])
    boxes = np.stack([x0.ravel(), y0.ravel(), x1.ravel(), y1.ravel()], axis=1)  # [rows*cols, 4]
    return {"rows": out_rows, "cols": out_cols, "boxes": boxes, "best_resolution": [best_h, best_w]}


class LlavaNextAdapter(_ClipViewMixin, FamilyAdapter):
    """LLaVA-NeXT / LLaVA-1.6 (``llava_next``): base view + anyres tiles with newline tokens."""

    family = "llava_next"
    model_types = ("llava_next",)
    # The paper's fix for fixed-resolution processors (PAPER_PROTOCOL): the strip squashed to one
    # S x S square, so every panel is a contiguous block of token columns; it is the default, as
    # the paper ran LLaVA-NeXT. ``native`` (transformers' anyres: tiles at the best pinpoint plus a
    # squashed base view) keeps the whole image too, at a higher resolution.
    input_policies = ("squash", "native")
    default_input_policy = "squash"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        return LlavaNextImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        side = int(config.vision_config.image_size)
        return cls.image_processor_class()(
            size={"shortest_edge": side},
            crop_size={"height": side, "width": side},
            image_grid_pinpoints=[list(p) for p in config.image_grid_pinpoints],
        )

    def squash_side(self) -> int:
        return int(self.config.vision_config.image_size)

    def max_patches(self) -> int | None:
        """OneVision's ``anyres_max_N`` limit (None: LLaVA-NeXT never shrinks)."""
        return None

    def process_image(self, image: Image.Image) -> VisionInputs:
        out = self.image_processor(images=[image], return_tensors="pt")
        pixel_values = out["pixel_values"]  # [1, 1 + n_tiles, 3, S, S]
        crop = int(pixel_values.shape[-1])
        if crop != int(self.config.vision_config.image_size):
            raise ModelLoadError(
                f"the image processor makes {crop} px tiles but the vision tower takes "
                f"{self.config.vision_config.image_size} px"
            )
        if self.cls_tokens:
            raise ModelLoadError(
                f"{self.family} with vision_feature_select_strategy='full' on a CLS vision tower is not supported"
            )
        f = crop // self.patch_size
        width, height = image.size
        pinpoints = [list(p) for p in self.config.image_grid_pinpoints]
        geo = anyres_geometry(width, height, crop, f, pinpoints, self.max_patches())
        n_base = f * f
        # the model packs: base view, then each high-res row followed by a newline token
        n_placeholders = n_base + geo["rows"] * (geo["cols"] + 1)
        info: dict[str, Any] = {
            "best_resolution": geo["best_resolution"],
            "n_placeholders": n_placeholders,
            "global_view": [f, f],
            "global_boxes": uniform_token_boxes(width, height, f, f),
            "newline_index": n_base + np.arange(geo["rows"]) * (geo["cols"] + 1) + geo["cols"],
        }
        if geo["rows"] > 0 and geo["cols"] > 0:
            rows, cols, boxes = geo["rows"], geo["cols"], geo["boxes"]
            info["grid_token_index"] = (
                n_base + np.arange(rows)[:, None] * (cols + 1) + np.arange(cols)[None, :]
            ).ravel()
            info["global_index"] = np.arange(n_base)
        else:
            # an extreme aspect ratio leaves no high-res feature after unpadding: the base view,
            # which still covers the whole image, is the grid
            rows, cols, boxes = f, f, info["global_boxes"]
            info["grid_token_index"] = np.arange(n_base)
            info["global_index"] = None
        return VisionInputs(
            tensors={"pixel_values": pixel_values, "image_sizes": out["image_sizes"]},
            rows=rows,
            cols=cols,
            token_boxes=boxes,
            placeholder=self.image_token * n_placeholders,
            info=info,
        )


class LlavaOnevisionAdapter(LlavaNextAdapter):
    """LLaVA-OneVision (``llava_onevision``): NeXT's layout on SigLIP (no CLS), with the
    high-resolution grid shrunk to about ``anyres_max_N`` tiles' worth of features."""

    family = "llava_onevision"
    model_types = ("llava_onevision",)
    # its SigLIP anyres never centre-crops (it keeps the whole strip, at a higher resolution than a
    # squash) and the paper did not use it, so the family's own processing stays the default
    input_policies = ("native", "squash")
    default_input_policy = "native"

    @classmethod
    def image_processor_class(cls) -> type:
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        return LlavaOnevisionImageProcessorPil

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        side = int(config.vision_config.image_size)
        return cls.image_processor_class()(
            size={"height": side, "width": side},
            image_grid_pinpoints=[list(p) for p in config.image_grid_pinpoints],
        )

    def max_patches(self) -> int | None:
        aspect = str(getattr(self.config, "vision_aspect_ratio", "anyres_max_9"))
        if not aspect.startswith("anyres_max_"):
            raise ModelLoadError(f"unsupported LLaVA-OneVision vision_aspect_ratio {aspect!r}")
        return int(aspect.removeprefix("anyres_max_"))


ADAPTERS = (LlavaAdapter, LlavaNextAdapter, LlavaOnevisionAdapter)

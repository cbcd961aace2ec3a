"""The family-adapter interface: how one VLM family builds inputs and maps image tokens to pixels.

An adapter answers three questions for its family and nothing else:

1. how to turn (PIL image, prompt or prompts) into model inputs, without torchvision: the
   family's ``*ImageProcessorPil`` processes the image, the tokenizer's chat template lays out the
   text, the single image placeholder is expanded to the right number of image tokens, and a list
   of prompts becomes one LEFT-padded batch;
2. where the image tokens are (absolute positions in ``input_ids``), and which pixel box of the
   ORIGINAL image each one covers (an :class:`~gaze_explorer.core.regions.ImageTokenGrid`);
3. the few per-family forward details (extra tensors such as Qwen3-VL's ``mm_token_type_ids``,
   position ids for the prefill and for each decode step, the sub-config name for
   ``set_attn_implementation``).

An adapter also has an input policy (``INPUT_POLICIES``: ``native``, ``squash``, ``pad``): how
the image is fitted to its processor. Every input reports the policy and the fraction of the
image that reaches the language model (``info["vision"]["coverage"]``), so a centre crop that
drops the outer panels of a strip is seen, not silent.

Writing a new family: subclass :class:`FamilyAdapter`, set ``family`` and ``model_types``,
implement ``image_processor_class`` and ``process_image`` (and override the hooks that differ),
and list the class in the module's ``ADAPTERS`` tuple; add the module name to
``adapters.ADAPTER_MODULES``.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from gaze_explorer.core.errors import InvalidImageError, ModelLoadError, PromptError
from gaze_explorer.core.regions import ImageTokenGrid, covered_fraction


@dataclass
class VisionInputs:
    """One processed image: its tensors, merged token grid, and pixel boxes.

    ``tensors`` hold ONE image in the family's layout (Qwen: ``pixel_values [patches, dim]`` and
    ``image_grid_thw [1, 3]``; LLaVA: ``pixel_values [1, 3, H, W]``); ``batch_vision_tensors``
    repeats them for a batch. ``placeholder`` is the text that replaces the chat template's single
    image marker (e.g. ``<|image_pad|>`` x n_tokens). ``token_boxes[i]`` is the box of grid cell
    ``i`` (row-major, ``rows x cols``) in original-image pixels.
    """

    tensors: dict[str, torch.Tensor]
    rows: int
    cols: int
    token_boxes: np.ndarray  # [rows * cols, 4] (x0, y0, x1, y1), original-image pixels
    placeholder: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return self.rows * self.cols


@dataclass
class PreparedInputs:
    """Model inputs for one image and one or more prompts (one left-padded row per prompt).

    ``tensors`` are the forward kwargs of the prefill (``input_ids [B, T]``, ``attention_mask
    [B, T]``, the vision tensors, and any family extras); ``grids[b]`` gives row ``b``'s image
    tokens (positions already include the left padding); ``prompt_len`` is ``T``.
    ``prompts`` are the user texts; ``info`` is for the adapter's own bookkeeping.
    """

    tensors: dict[str, torch.Tensor]
    grids: list[ImageTokenGrid]
    prompt_len: int
    prompts: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.tensors["input_ids"].shape[0])

    @property
    def grid(self) -> ImageTokenGrid:
        """Row 0's grid (the only one for a single prompt)."""
        return self.grids[0]

    def to(self, device: torch.device | str) -> PreparedInputs:
        """The same inputs with every tensor moved to ``device``."""
        moved = {k: v.to(device) for k, v in self.tensors.items()}
        return PreparedInputs(moved, self.grids, self.prompt_len, self.prompts, self.info)


def uniform_token_boxes(image_width: int, image_height: int, rows: int, cols: int) -> np.ndarray:
    """Boxes of a ``rows x cols`` grid of equal cells covering the whole image, row-major."""
    xs = np.linspace(0.0, float(image_width), cols + 1)
    ys = np.linspace(0.0, float(image_height), rows + 1)
    x0, y0 = np.meshgrid(xs[:-1], ys[:-1])
    x1, y1 = np.meshgrid(xs[1:], ys[1:])
    return np.stack([x0.ravel(), y0.ravel(), x1.ravel(), y1.ravel()], axis=1)  # [rows*cols, 4]


def check_image(image: object) -> Image.Image:
    """An RGB copy of ``image``, or InvalidImageError if it is not a usable PIL image."""
    if not isinstance(image, Image.Image):
        raise InvalidImageError(f"expected a PIL image, got {type(image).__name__}")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImageError(f"the image is empty ({width}x{height} px)")
    try:
        return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot read the image's pixels: {exc}") from exc


def adopt_legacy_chat_template(tokenizer: Any, path: str | os.PathLike) -> None:
    """Give ``tokenizer`` the processor's chat template when it has none of its own.

    Older checkpoints (many ``llava-hf`` and SmolVLM snapshots) keep the template only in the
    processor's legacy ``chat_template.json``, which ``AutoTokenizer`` does not read.
    """
    if getattr(tokenizer, "chat_template", None):
        return
    legacy = Path(path) / "chat_template.json"
    if not legacy.is_file():
        return
    try:
        template = json.loads(legacy.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"cannot read the chat template in {legacy}: {exc}") from exc
    if isinstance(template, str) and template.strip():
        tokenizer.chat_template = template


# ``layer_types`` values of decoder layers whose token mixer is not softmax attention (Qwen3.5's
# gated delta net, hybrid Mamba/conv models): they never call the attention function.
NON_ATTENTION_LAYER_TYPES = frozenset({"linear_attention", "mamba", "conv", "recurrent"})


def attention_layer_indices(text_config: Any) -> tuple[int, ...]:
    """The TRUE indices of the decoder layers that run softmax attention (all layers unless the
    config's ``layer_types`` marks some as linear attention / state-space layers)."""
    n_layers = int(text_config.num_hidden_layers)
    types = getattr(text_config, "layer_types", None) or ()
    if len(types) != n_layers:
        return tuple(range(n_layers))
    return tuple(i for i, t in enumerate(types) if t not in NON_ATTENTION_LAYER_TYPES)


# How an image is fitted to a family's processor (the session and evaluation JSON record it).
INPUT_POLICIES = {
    "native": "the family's own processing (a fixed-resolution CLIP-style processor centre-crops)",
    "squash": "resize the whole image to the vision tower's S x S input first (the paper's fix for strips)",
    "pad": "pad the image to a square with the mean colour, then resize (LLaVA-1.5's original recipe)",
}


def squash_vision(vision: VisionInputs, size: tuple[int, int], squashed: tuple[int, int]) -> VisionInputs:
    """``vision`` of an image squashed from ``size`` to ``squashed`` (both ``(width, height)``),
    with every pixel box mapped back to the original image (the squash is a plain rescale)."""
    sx, sy = size[0] / squashed[0], size[1] / squashed[1]
    scale = np.array([sx, sy, sx, sy])
    vision.token_boxes = np.asarray(vision.token_boxes, dtype=np.float64) * scale
    if vision.info.get("global_boxes") is not None:
        vision.info["global_boxes"] = np.asarray(vision.info["global_boxes"], dtype=np.float64) * scale
    return vision


class FamilyAdapter(ABC):
    """Builds inputs and image-token geometry for one VLM family (see the module docstring)."""

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()  # config.model_type values this adapter handles
    text_config_key: ClassVar[str] = "text_config"  # sub-config given to set_attn_implementation
    template_image_marker: ClassVar[str | None] = None  # None: the tokenizer's image token
    input_policies: ClassVar[tuple[str, ...]] = ("native",)  # keys of INPUT_POLICIES it supports
    default_input_policy: ClassVar[str] = "native"
    # chat-turn end markers that stop generation too (the checkpoints' generation configs stop there)
    end_of_turn_tokens: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, tokenizer: Any, image_processor: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.input_policy = self.default_input_policy

    def set_input_policy(self, policy: str | None) -> None:
        """Use ``policy`` (a key of ``INPUT_POLICIES`` this family supports; None: its default)."""
        policy = self.default_input_policy if policy is None else str(policy)
        if policy not in self.input_policies:
            raise ModelLoadError(
                f"the {self.family} adapter has no input policy {policy!r}; "
                f"choose one of {', '.join(self.input_policies)}"
            )
        self.input_policy = policy

    def squash_side(self) -> int | None:
        """``S`` of the vision tower's square input, used by the ``squash`` policy (None: the family
        squashes inside its own processor, or has no square input)."""
        return None

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def matches(cls, config: Any) -> bool:
        """Whether this adapter handles ``config`` (by ``model_type``)."""
        return getattr(config, "model_type", None) in cls.model_types

    @classmethod
    @abstractmethod
    def image_processor_class(cls) -> type:
        """The family's torchvision-free ``*ImageProcessorPil`` class."""

    @classmethod
    def from_parts(cls, config: Any, tokenizer: Any, image_processor: Any = None) -> FamilyAdapter:
        """An adapter over in-memory parts (tiny test models); default image processor if None."""
        if image_processor is None:
            image_processor = cls.default_image_processor(config)
        return cls(config, tokenizer, image_processor)

    @classmethod
    def default_image_processor(cls, config: Any) -> Any:
        """The image processor to use when a checkpoint has none; families may size it from config."""
        return cls.image_processor_class()()

    @classmethod
    def stock_attention(cls, config: Any) -> str:
        """The language model's stock attention (what it loads with, and what the registered function
        must reproduce): SDPA, or eager where the LM soft-caps its attention logits or its class has
        no SDPA path (Gemma 2, PaliGemma 2's LM)."""
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        text = config.get_text_config()
        try:
            supports_sdpa = bool(getattr(MODEL_MAPPING[type(text)], "_supports_sdpa", True))
        except KeyError:  # a text config transformers maps to no model class: assume SDPA
            supports_sdpa = True
        return "sdpa" if supports_sdpa and not getattr(text, "attn_logit_softcapping", None) else "eager"

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, config: Any = None) -> FamilyAdapter:
        """An adapter for the checkpoint directory ``path`` (config, tokenizer, preprocessor), offline."""
        from transformers import AutoConfig, AutoTokenizer

        path = Path(path)
        try:
            if config is None:
                config = AutoConfig.from_pretrained(path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load the config or tokenizer of {path}: {exc}") from exc
        if (path / "preprocessor_config.json").is_file():
            try:
                image_processor = cls.image_processor_class().from_pretrained(path, local_files_only=True)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelLoadError(f"cannot load the image preprocessor config of {path}: {exc}") from exc
        else:
            image_processor = cls.default_image_processor(config)
        adopt_legacy_chat_template(tokenizer, path)
        return cls(config, tokenizer, image_processor)

    # ----- model geometry -----------------------------------------------------------------
    @property
    def text_config(self) -> Any:
        sub = getattr(self.config, self.text_config_key, None)
        return sub if sub is not None else self.config.get_text_config()

    @property
    def n_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)

    @property
    def attention_layers(self) -> tuple[int, ...]:
        """True indices of the softmax-attention layers; the others (linear attention) have no
        attention rows: their captured rows and scores are NaN and their heads cannot be steered."""
        return attention_layer_indices(self.text_config)

    @property
    def n_heads(self) -> int:
        return int(self.text_config.num_attention_heads)

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.text_config, "num_key_value_heads", None) or self.n_heads)

    @property
    def head_dim(self) -> int:
        hd = getattr(self.text_config, "head_dim", None)
        return int(hd) if hd else int(self.text_config.hidden_size) // self.n_heads

    @property
    def max_positions(self) -> int | None:
        mp = getattr(self.text_config, "max_position_embeddings", None)
        return int(mp) if mp else None

    @property
    def image_token_id(self) -> int:
        tid = getattr(self.config, "image_token_id", None)
        if tid is None:
            tid = getattr(self.config, "image_token_index", None)
        if tid is None:
            tid = self.tokenizer.convert_tokens_to_ids(self.image_token)
        return int(tid)

    @property
    def image_token(self) -> str:
        tok = getattr(self.tokenizer, "image_token", None)
        return tok if tok else str(self.tokenizer.convert_ids_to_tokens(int(self.config.image_token_id)))

    @property
    def extra_eos_token_ids(self) -> list[int]:
        """The ids of ``end_of_turn_tokens`` that the tokenizer knows (an unknown one is left out)."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        ids = (self.tokenizer.convert_tokens_to_ids(t) for t in self.end_of_turn_tokens)
        return [int(i) for i in ids if i is not None and i != unk]

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Every id that ends generation: the tokenizer's and the configs' eos ids."""
        ids: list[int] = []

        def add(value: Any) -> None:
            if value is None:
                return
            for v in value if isinstance(value, list | tuple) else [value]:
                if int(v) not in ids:
                    ids.append(int(v))

        add(getattr(self.tokenizer, "eos_token_id", None))
        add(getattr(self.text_config, "eos_token_id", None))
        add(getattr(self.config, "eos_token_id", None))
        add(self.extra_eos_token_ids)
        return tuple(ids)

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = self.eos_token_ids[0] if self.eos_token_ids else 0
        return int(pad)

    # ----- text -----------------------------------------------------------------------------
    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` without special tokens."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """One display string per token id (each token decoded alone, specials kept)."""
        return [self.tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]

    def format_prompt(self, prompt: str) -> str:
        """The chat-templated text of one user turn (image first, then ``prompt``), ready to answer."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"the {self.family} checkpoint's tokenizer has no chat template")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def tokenize(self, text: str) -> list[int]:
        """Ids of already-templated text (the template carries any BOS, so none is added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def expand_placeholder(self, text: str, vision: VisionInputs) -> str:
        """Replace the template's single image marker with ``vision.placeholder``."""
        marker = self.template_image_marker or self.image_token
        count = text.count(marker)
        if count != 1:
            raise PromptError(
                f"the prompt must hold exactly one image; its template has {count} image markers"
            )
        return text.replace(marker, vision.placeholder)

    # ----- images ---------------------------------------------------------------------------
    @abstractmethod
    def process_image(self, image: Image.Image) -> VisionInputs:
        """Process one RGB image: tensors, merged token grid and original-pixel token boxes."""

    def batch_vision_tensors(self, vision: VisionInputs, batch_size: int) -> dict[str, torch.Tensor]:
        """Vision tensors for ``batch_size`` rows that each hold the same image (concat on dim 0)."""
        if batch_size == 1:
            return dict(vision.tensors)
        return {k: torch.cat([v] * batch_size, dim=0) for k, v in vision.tensors.items()}

    def coverage(self, vision: VisionInputs, width: int, height: int) -> float:
        """The fraction of the ``width x height`` image that reaches the language model: the union of
        the grid's boxes and any global view's boxes (a centre crop leaves the rest out)."""
        boxes = [np.asarray(vision.token_boxes, dtype=np.float64).reshape(-1, 4)]
        if vision.info.get("global_boxes") is not None:
            boxes.append(np.asarray(vision.info["global_boxes"], dtype=np.float64).reshape(-1, 4))
        return covered_fraction(width, height, np.concatenate(boxes))

    def image_token_positions(self, ids: torch.Tensor, vision: VisionInputs) -> np.ndarray:
        """Positions in one row's ``ids`` of the grid's image tokens, in grid (row-major) order."""
        pos = torch.nonzero(ids == self.image_token_id).flatten().cpu().numpy().astype(np.int64)
        if pos.size != vision.n_tokens:
            raise PromptError(
                f"found {pos.size} image tokens in the input but the image needs {vision.n_tokens}; "
                "does the prompt contain an image placeholder of its own?"
            )
        return pos

    def extra_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Family-specific forward tensors beside ids, mask and vision tensors (none by default)."""
        return {}

    # ----- positions (prefill and decode) ----------------------------------------------------
    def prefill_position_ids(self, prepared: PreparedInputs) -> torch.Tensor | None:
        """Position ids of the prefill, as ``generate`` computes them: ``cumsum(mask) - 1``."""
        mask = prepared.tensors["attention_mask"]
        pos = mask.long().cumsum(-1) - 1
        return pos.masked_fill(mask == 0, 0)  # [batch, T]

    def decode_position_ids(self, prepared: PreparedInputs, n_past: int) -> torch.Tensor | None:
        """Position ids of the token fed at padded index ``n_past`` (the cache holds ``n_past``)."""
        n_real = prepared.tensors["attention_mask"].long().sum(-1, keepdim=True)  # [batch, 1]
        return n_real + (n_past - prepared.prompt_len)

    def prefill_kwargs(self, model: Any, prepared: PreparedInputs) -> dict[str, Any]:
        """Forward kwargs of the prefill pass (``model`` is the loaded model, for families that need it)."""
        kwargs: dict[str, Any] = dict(prepared.tensors)
        pos = self.prefill_position_ids(prepared)
        if pos is not None:
            kwargs["position_ids"] = pos
        return kwargs

    def decode_kwargs(
        self,
        model: Any,
        prepared: PreparedInputs,
        token_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        n_past: int,
    ) -> dict[str, Any]:
        """Forward kwargs of one decode step: ``token_ids [B, 1]`` at padded index ``n_past``."""
        kwargs: dict[str, Any] = {"input_ids": token_ids, "attention_mask": attention_mask}
        pos = self.decode_position_ids(prepared, n_past)
        if pos is not None:
            kwargs["position_ids"] = pos.to(token_ids.device)
        return kwargs

    # ----- the whole input ------------------------------------------------------------------
    def build_inputs(self, image: Image.Image, prompts: str | Sequence[str]) -> PreparedInputs:
        """Inputs for one image and a prompt (or a list of prompts: one left-padded batch)."""
        rgb = check_image(image)
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not texts:
            raise PromptError("at least one prompt is needed")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise PromptError("the prompt is empty; type a question or instruction about the image")
        side = self.squash_side() if self.input_policy == "squash" else None
        fitted = rgb.resize((side, side), Image.Resampling.BICUBIC) if side else rgb
        try:
            vision = self.process_image(fitted)
        except (ValueError, OSError, TypeError) as exc:
            raise InvalidImageError(
                f"the {self.family} image processor cannot use this image: {exc}"
            ) from exc
        if side:
            vision = squash_vision(vision, rgb.size, fitted.size)
        vision.info["input_policy"] = self.input_policy
        vision.info["coverage"] = self.coverage(vision, *rgb.size)
        rows_ids = [self.tokenize(self.expand_placeholder(self.format_prompt(t), vision)) for t in texts]
        length = max(len(r) for r in rows_ids)
        if self.max_positions is not None and length >= self.max_positions:
            raise PromptError(
                f"the prompt with the image is {length} tokens, more than the model's context of {self.max_positions}"
            )
        pad = self.pad_token_id
        input_ids = torch.full((len(texts), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(texts), length), dtype=torch.long)
        for b, ids in enumerate(rows_ids):
            input_ids[b, length - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[b, length - len(ids) :] = 1
        width, height = rgb.size
        grids = [
            ImageTokenGrid(
                width,
                height,
                vision.rows,
                vision.cols,
                vision.token_boxes,
                self.image_token_positions(input_ids[b], vision),
            )
            for b in range(len(texts))
        ]
        tensors: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        tensors.update(self.batch_vision_tensors(vision, len(texts)))
        tensors.update(self.extra_tensors(input_ids, attention_mask))
        return PreparedInputs(tensors, grids, length, texts, {"vision": vision.info})

"""Random-initialised Qwen3-VL checkpoints of tiny or real size, written without any download.

``build_random_qwen3_vl(out_dir, geometry=...)`` writes config + safetensors + a word-level
tokenizer + preprocessor config, so tests and benchmarks load tiny and real-size models through
the same ``load_model(path)`` path as a downloaded checkpoint. Sizes come from
``resources/qwen3_vl_geometry.json`` (the published Qwen3-VL shapes, plus our ``tiny`` one).
Token ids are the word tokenizer's, not Qwen's (the vocabulary size is kept, so the embedding and
LM-head cost match the real model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.core.paths import geometry_file
from gaze_explorer.inference.word_tokenizer import IM_END, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START

GEOMETRY_FILE = geometry_file()

# Enough words for the paper's prompts and short answers; unknown words map to <unk>.
DEFAULT_WORDS = (
    "look",
    "carefully",
    "at",
    "this",
    "six",
    "-",
    "panel",
    "comic",
    "strip",
    ".",
    "what",
    "is",
    "happening",
    "in",
    "the",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "1st",
    "2nd",
    "3rd",
    "4th",
    "5th",
    "6th",
    "one",
    "two",
    "three",
    "four",
    "five",
    "from",
    "left",
    "?",
    "answer",
    "briefly",
    "main",
    "action",
    "or",
    "event",
    "describe",
    "each",
    "order",
    "short",
    "sentence",
    "a",
    "an",
    "man",
    "woman",
    "dog",
    "cat",
    "runs",
    "sits",
    "jumps",
    "red",
    "blue",
    "green",
    ",",
    "and",
    "of",
    "to",
    "on",
    "with",
    "he",
    "she",
    "it",
    "they",
    "sun",
    "moon",
    "tree",
    "house",
    "car",
    "bird",
)


def randomise_constant_matrices(model: torch.nn.Module, seed: int = 0) -> list[str]:
    """Give every constant weight matrix of a random-initialised model random values; return their names.

    Some families initialise a projection to a constant on purpose (Gemma 3 zeroes
    ``mm_input_projection_weight``, to be filled by the checkpoint), so a random model built from
    the config alone gives every image token the SAME input embedding and no geometry error could
    show. Vectors (norm weights, biases) are left as they are: a constant vector is normal there.
    Matrices get ``N(0, 1/n)`` with ``n`` their first dimension (the input side of a ``x @ W``
    weight such as Gemma 3's ``[vision_hidden, text_hidden]``), which keeps activations at scale.
    """
    generator = torch.Generator().manual_seed(seed)
    changed = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() < 2 or param.numel() < 2:
                continue
            flat = param.detach().reshape(-1)
            if bool((flat == flat[0]).all()):
                values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
                param.copy_((values / param.shape[0] ** 0.5).to(param.dtype))
                changed.append(name)
    return changed


def load_geometry(name: str) -> dict[str, Any]:
    """The text and vision sizes of geometry ``name`` (merged over the common fields).

    The published short names (``Qwen3-VL-2B``, as the README and model cards list them) name the
    ``-Instruct`` geometry: the base and instruct checkpoints share their shapes."""
    data = json.loads(GEOMETRY_FILE.read_text(encoding="utf-8"))
    names = [k for k in data if not k.startswith("_") and k != "common"]
    if name not in names and f"{name}-Instruct" in names:
        name = f"{name}-Instruct"
    if name not in names:
        raise ModelLoadError(f"unknown Qwen3-VL geometry {name!r}; choose one of {', '.join(names)}")
    common, own = data["common"], data[name]
    text = {**common["text"], **own["text"]}
    vision = {**common["vision"], **own["vision"]}
    return {"text": text, "vision": vision, "common": common}


def qwen3_vl_config(geometry: str, tokenizer: Any) -> Any:
    """A ``Qwen3VLConfig`` of the given geometry, with special-token ids taken from ``tokenizer``."""
    from transformers import Qwen3VLConfig

    g = load_geometry(geometry)
    text = dict(g["text"])
    rope = dict(text.pop("rope_scaling", {}) or {})
    rope.setdefault("rope_type", "default")
    rope["rope_theta"] = float(text.pop("rope_theta", 5000000))
    tie = bool(text.pop("tie_word_embeddings", False))
    ids = {
        t: int(tokenizer.convert_tokens_to_ids(t))
        for t in (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END, IM_END)
    }
    # keep the published vocabulary size (embedding/LM-head cost), but never below the tokenizer's
    text["vocab_size"] = max(int(text.get("vocab_size") or 0), len(tokenizer))
    text.update(rope_parameters=rope, eos_token_id=ids[IM_END], pad_token_id=int(tokenizer.pad_token_id))
    vision = dict(g["vision"])
    vision["out_hidden_size"] = int(text["hidden_size"])
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=tie,
        eos_token_id=ids[IM_END],
    )


def build_random_qwen3_vl(
    out_dir: str | os.PathLike,
    geometry: str = "tiny",
    *,
    seed: int = 0,
    dtype: torch.dtype | str = torch.float32,
    device: str = "cpu",
    words: list[str] | None = None,
) -> Path:
    """Write a random-initialised Qwen3-VL checkpoint of ``geometry`` to ``out_dir``; return it."""
    from transformers import Qwen3VLForConditionalGeneration

    from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter
    from gaze_explorer.inference.word_tokenizer import build_word_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(dtype, str):
        dtype = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[dtype]
    tokenizer = build_word_tokenizer(list(words) if words is not None else list(DEFAULT_WORDS))
    config = qwen3_vl_config(geometry, tokenizer)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype)
    randomise_constant_matrices(model, seed)
    model.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    Qwen3VLAdapter.default_image_processor(config).save_pretrained(out)
    return out

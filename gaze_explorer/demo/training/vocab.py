"""The demo model's word-level vocabulary and tokenizer.

The vocabulary is every word of the trained prompts and answers (see :mod:`.prompts`), built with
the inference core's :func:`build_word_tokenizer` so that it has Qwen's special tokens and chat
template and saves as ``tokenizer.json`` + ``tokenizer_config.json``.
"""

from __future__ import annotations

import re

from gaze_explorer.demo.comics import BACKGROUNDS, OBJECTS, SIZES
from gaze_explorer.demo.prompts import (
    SCENE_DESCRIBE_PROMPT,
    SCENE_REGION_PROMPT,
    all_prompts,
    describe_answer,
    kth_answer,
    narration_answer,
    scene_description,
)

_WORDS = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def demo_words(scenes: bool = True) -> list[str]:
    """The words (and punctuation marks) of every prompt and answer, in a fixed order; without
    ``scenes``, those of the comics only (the first stage of the recipe, and the vocabulary of every
    model before scenes: the scene words come last, so comic words keep their ids)."""
    panels = [
        {"object": o, "background": b, "size": SIZES[0]} for o, b in zip(OBJECTS, BACKGROUNDS, strict=True)
    ]
    comic_prompts = [p for p in all_prompts() if p not in (SCENE_REGION_PROMPT, SCENE_DESCRIBE_PROMPT)]
    texts = [*comic_prompts, narration_answer(panels), describe_answer(panels[0]), kth_answer(panels[0])]
    # the scenes' words come last, so the comic words keep the ids they had before scenes
    scene_texts = [SCENE_REGION_PROMPT, SCENE_DESCRIBE_PROMPT, scene_description(list(OBJECTS))]
    comics = [*_split(texts), *OBJECTS, *BACKGROUNDS, *SIZES]
    return [*comics, *_split(scene_texts)] if scenes else comics


def _split(texts: list[str]) -> list[str]:
    return [w for t in texts for w in _WORDS.findall(t.lower())]


def build_demo_tokenizer(scenes: bool = True):
    """The demo model's tokenizer (a ``PreTrainedTokenizerFast``); without ``scenes``, the comics-only
    one of the recipe's first stage."""
    from gaze_explorer.inference.word_tokenizer import build_word_tokenizer

    return build_word_tokenizer(demo_words(scenes))

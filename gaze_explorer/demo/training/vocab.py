"""The demo model's word-level vocabulary and tokenizer.

The vocabulary is every word of the trained prompts and answers (see :mod:`.prompts`), built with
the inference core's :func:`build_word_tokenizer` so that it has Qwen's special tokens and chat
template and saves as ``tokenizer.json`` + ``tokenizer_config.json``.
"""

from __future__ import annotations

import re

from gaze_explorer.demo.comics import BACKGROUNDS, OBJECTS, SIZES
from gaze_explorer.demo.prompts import all_prompts, describe_answer, kth_answer, narration_answer

_WORDS = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def demo_words() -> list[str]:
    """The words (and punctuation marks) of every prompt and answer, in a fixed order."""
    panels = [
        {"object": o, "background": b, "size": SIZES[0]} for o, b in zip(OBJECTS, BACKGROUNDS, strict=True)
    ]
    texts = [*all_prompts(), narration_answer(panels), describe_answer(panels[0]), kth_answer(panels[0])]
    words: list[str] = []
    for t in texts:
        words.extend(_WORDS.findall(t.lower()))
    return [*words, *OBJECTS, *BACKGROUNDS, *SIZES]


def build_demo_tokenizer():
    """The demo model's tokenizer (a ``PreTrainedTokenizerFast``)."""
    from gaze_explorer.inference.word_tokenizer import build_word_tokenizer

    return build_word_tokenizer(demo_words())

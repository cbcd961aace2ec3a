"""The prompts the demo model understands, and the answers it was trained to give.

Tasks (the ones the paper probes):
- k-th panel: the paper's discovery question, with the ordinal as ``1st``..``6th`` or ``first``..``sixth``.
- narration: describe each panel in order, one short sentence each, without panel numbers.
- ambiguous: "what is happening in this panel?", which an unsteered model answers about panel 1.
- VQA: the paper's "main event" question, also answered about panel 1 (so steering can move it).

Answer formats (what mattered, see the model card):
- a k-th panel answer opens with a judged word, the object's colour (``black square on red .``):
  discovery reads the last prompt token, which must then look at the asked panel with the heads
  that read colours while decoding (a fixed opener there, run r7, left no gaze heads at all);
- a one-panel answer to the ambiguous or VQA question opens with the fixed word ``a``
  (``a black square on red .``), and a narration sentence with ``first``/``then``: under the paper's
  ``decode_only`` steering the first answer token comes from the unsteered prefill, so every judged
  word comes after it, under steering.
A narration sentence is :data:`SENTENCE_TOKENS` tokens long, so a schedule that switches every that
many steps redirects one whole sentence per segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

ORDINALS_NUMERIC = ("1st", "2nd", "3rd", "4th", "5th", "6th")
ORDINALS_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth")

KTH_TEMPLATE = (
    "Look carefully at this six-panel comic strip. What is happening in the {ordinal} panel from the left? "
    "Answer briefly."
)
NARRATION_PROMPT = "Describe each panel of this comic strip in order, one short sentence each."
AMBIGUOUS_PROMPT = "What is happening in this panel of the comic strip?"
VQA_PROMPT = "What is the main action or event happening in this comic strip? Answer briefly."

# The discovery prompt, in the placeholders of ``inference.discovery.discover(prompt_template=...)``;
# for six panels it is exactly the k-th question above (the paper's prompt), so the default works.
DISCOVERY_TEMPLATE = KTH_TEMPLATE.replace("six-panel", "{n_word}-panel")

SENTENCE_TOKENS = 6  # "then black square on red ." -> 6 word-level tokens
OPENER = "a"  # the fixed first word of a one-panel answer


def kth_prompt(k: int, words: bool = False) -> str:
    """The k-th panel question for 0-based panel ``k`` (``1st`` style, or ``first`` style)."""
    ordinals = ORDINALS_WORDS if words else ORDINALS_NUMERIC
    if not 0 <= k < len(ordinals):
        raise ValueError(f"panel index {k} out of range 0..{len(ordinals) - 1}")
    return KTH_TEMPLATE.format(ordinal=ordinals[k])


def panel_phrase(attrs: Mapping[str, str]) -> str:
    """The words naming one panel: ``black square on red`` (object colour first)."""
    return f"{attrs['object']} square on {attrs['background']}"


def kth_answer(attrs: Mapping[str, str]) -> str:
    """The answer to the k-th panel question: ``black square on red .``."""
    return f"{panel_phrase(attrs)} ."


def describe_answer(attrs: Mapping[str, str]) -> str:
    """The answer to the ambiguous or VQA question: ``a black square on red .``."""
    return f"{OPENER} {panel_phrase(attrs)} ."


def narration_answer(panels: Sequence[Mapping[str, str]]) -> str:
    """The narration: one sentence per panel in order, ``first ... . then ... . then ... .``."""
    parts = [f"{'first' if i == 0 else 'then'} {panel_phrase(a)} ." for i, a in enumerate(panels)]
    return " ".join(parts)


# Scenes (``demo/scenes.py``): the region question is the COCO region evaluation's own prompt
# (``core.coco.COCO_REGION_PROMPT``, so ``evaluate region --coco-annotations`` asks what the model was
# trained on; a copy, since importing core.coco would load numpy wherever the CLI's parser is built,
# and a test keeps the two equal), answered unsteered about the first object in reading order; the
# description prompt is the paper's span prompt (PAPER_PROTOCOL.md, per-span heatmaps), answered with
# one sentence per object in reading order.
SCENE_REGION_PROMPT = "What is the main object in this part of the image? Answer in a few words."
SCENE_DESCRIBE_PROMPT = "Describe what is happening in this image in detail:"
SCENE_TASKS = ("scene_region", "scene_describe")


def object_answer(colour: str, shape: str = "square") -> str:
    """One scene object, as the region answer and as each sentence of a description:
    ``a pink square .`` (the fixed opener first, as in a one-panel answer)."""
    return f"{OPENER} {colour} {shape} ."


def scene_description(colours: Sequence[str], shape: str = "square") -> str:
    """The description of a scene: one :func:`object_answer` per object, in reading order."""
    return " ".join(object_answer(c, shape) for c in colours)


def all_prompts() -> list[str]:
    """Every prompt text the model was trained on."""
    return [
        *(kth_prompt(k, words=False) for k in range(6)),
        *(kth_prompt(k, words=True) for k in range(6)),
        NARRATION_PROMPT,
        AMBIGUOUS_PROMPT,
        VQA_PROMPT,
        SCENE_REGION_PROMPT,
        SCENE_DESCRIBE_PROMPT,
    ]

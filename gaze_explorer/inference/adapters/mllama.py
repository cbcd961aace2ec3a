"""Llama 3.2 Vision (``mllama``): refused, with the reason.

Gaze heads are defined on SELF-attention over image tokens in the language model's sequence: the
last prompt token's post-softmax attention summed over each panel's image tokens, and steering as
a pre-softmax bias on those keys. Llama 3.2 Vision has no image tokens in that sequence: the prompt
holds a single ``<|image|>`` marker, and the language model reaches the image only through its
gated cross-attention layers (every 5th layer), whose keys are the vision encoder's tile features
(up to 4 tiles x 1601 patches, CLS and padding tiles included) rather than sequence positions.
Supporting it would mean a second kind of head (cross-attention heads, with their own key axis,
grid, capture layout and session schema), which no other family needs; until that is designed,
loading such a checkpoint stops with this message instead of producing meaningless scores.
"""

from __future__ import annotations

MLLAMA_REFUSAL = (
    "Llama 3.2 Vision (model type mllama) is not supported: its language model reaches the image only "
    "through cross-attention layers (the prompt holds a single <|image|> marker, no image tokens), while "
    "gaze heads are self-attention heads that read image tokens in the sequence. Use a model that feeds "
    "image tokens to the language model (Qwen-VL, LLaVA, InternVL, Gemma 3, ...)."
)

ADAPTERS: tuple[type, ...] = ()
REFUSED = {"mllama": MLLAMA_REFUSAL}

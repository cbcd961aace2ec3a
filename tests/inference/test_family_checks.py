"""The checks every model family runs, over one table of tiny random-initialised models: logits
parity and decode steering on a left-padded batch, the greedy loop against ``model.generate``,
steered generation, discovery batched vs one question at a time, and the checkpoint round trip.

The checks themselves are in family_helpers.py; each family's builder and its family-specific
tests (layout, published geometry, sliding window, soft cap, tiles, linear-attention layers) stay in
its own ``test_family_*.py``. Each row below is (family, strip width, strip height[, keyword
arguments of the check]): the strip each family has always been checked on. A family under a
non-default input policy is the row ``"family:policy"``.
"""

from __future__ import annotations

from functools import partial

import pytest
from family_helpers import (
    check_checkpoint_round_trip,
    check_discovery_batched_equals_unbatched,
    check_generate_stream,
    check_greedy_matches_generate,
    check_parity_and_steering,
    padded_batch,
    strip_image,
)
from test_family_aya_vision import tiny_aya_vision
from test_family_gemma3 import tiny_gemma3
from test_family_gemma4 import tiny_gemma4
from test_family_glm4v import tiny_glm
from test_family_idefics3 import tiny_idefics3
from test_family_internvl import tiny_internvl
from test_family_llava import tiny_llava, tiny_llava_next, tiny_llava_onevision
from test_family_mistral3 import tiny_mistral3
from test_family_ovis2 import tiny_ovis2
from test_family_paligemma import tiny_paligemma
from test_family_qwen2_vl import tiny_qwen2_vl
from test_family_qwen3_5 import tiny_qwen
from test_geometry_truth import tiny_qwen3_vl

BUILDERS = {
    "aya_vision": tiny_aya_vision,
    "gemma3": tiny_gemma3,
    "gemma3_wide": partial(tiny_gemma3, sliding_window=512),  # the window never cuts the prompt
    "gemma4": tiny_gemma4,
    **{f: partial(tiny_glm, f) for f in ("glm4v", "glm4v_moe", "glm46v")},
    "idefics3": tiny_idefics3,
    "smolvlm": partial(tiny_idefics3, "smolvlm"),
    "internvl": tiny_internvl,
    "llava": tiny_llava,
    # 56 px tiles (8 x 8 features): under NeXT's default squash a strip becomes one square, 8 token
    # columns wide (28 px tiles leave 4, too few for 6 panels); native anyres runs on it too
    "llava_next": partial(tiny_llava_next, tile=56),
    "llava_onevision": tiny_llava_onevision,
    "mistral3": tiny_mistral3,
    "pixtral": partial(tiny_mistral3, "pixtral"),  # Pixtral-12B: llava + Pixtral tower
    "ovis2": tiny_ovis2,
    "paligemma": tiny_paligemma,
    "qwen2_vl": tiny_qwen2_vl,
    "qwen2_5_vl": partial(tiny_qwen2_vl, "qwen2_5_vl"),  # window attention in the vision tower
    **{f: partial(tiny_qwen, f) for f in ("qwen3_5", "qwen3_5_moe", "qwen3_vl_moe")},
    "qwen3_vl": tiny_qwen3_vl,  # in memory; the conftest's tiny_qwen is the same geometry from disk
}
# Qwen3.5 steers its last softmax-attention layer (layers 0 and 2 are linear attention); Gemma 4's
# layer 3 is a global layer that reuses layer 1's K/V
LAST_LAYER = {"head": (3, 0)}

PARITY_AND_STEERING = [
    ("glm4v", 336, 56),
    ("glm4v_moe", 336, 56),
    ("glm46v", 336, 56),
    ("idefics3", 300, 60),
    ("internvl", 336, 56),
    ("llava", 336, 56),
    ("llava_next", 300, 60),
    ("llava_next:native", 300, 60),  # anyres: base view and newline tokens outside the grid
    ("mistral3", 336, 56),
    ("ovis2", 336, 56),
    ("pixtral", 336, 56),
    ("qwen2_vl", 336, 60),
]
# the greedy check compares every step's logits with model.generate's, so a wrong decode position
# (GLM's and the Qwen M-RoPE families' text position + rope delta) fails it, not only a wrong token
GREEDY_MATCHES_GENERATE = [
    ("aya_vision", 336, 56),
    ("gemma3", 384, 64),
    ("gemma4", 384, 64),
    ("glm4v", 336, 56),
    ("glm4v_moe", 336, 56),
    ("glm46v", 336, 56),
    ("idefics3", 336, 56),
    ("smolvlm", 336, 56),
    ("internvl", 336, 56),
    ("llava", 336, 56),
    ("llava_next", 300, 60),
    ("llava_onevision", 300, 60),
    ("mistral3", 336, 56),
    ("ovis2", 336, 56),
    ("paligemma", 300, 60),
    ("pixtral", 336, 56),
    ("qwen2_vl", 336, 56),
    ("qwen2_5_vl", 336, 56),
    ("qwen3_5", 384, 64),
    ("qwen3_5_moe", 384, 64),
    ("qwen3_vl", 384, 64),
    ("qwen3_vl_moe", 384, 64),
]
GENERATE_STREAM_STEERS = [
    ("aya_vision", 336, 56, {}),
    ("gemma3_wide", 300, 60, {}),
    ("gemma4", 384, 64, LAST_LAYER),
    ("glm4v", 336, 56, {}),
    ("glm4v_moe", 336, 56, {}),
    ("glm46v", 336, 56, {}),
    ("idefics3", 300, 60, {}),
    ("smolvlm", 300, 60, {}),
    ("internvl", 336, 56, {}),
    ("llava", 336, 56, {}),
    ("llava_next", 300, 60, {}),
    ("llava_next:native", 300, 60, {}),
    ("llava_onevision", 300, 60, {}),
    ("mistral3", 336, 56, {}),
    ("ovis2", 336, 56, {}),
    ("paligemma", 300, 60, {}),
    ("pixtral", 336, 56, {}),
    ("qwen2_vl", 336, 60, {}),
    ("qwen2_5_vl", 336, 60, {}),
    ("qwen3_5", 384, 64, LAST_LAYER),
    ("qwen3_5_moe", 384, 64, LAST_LAYER),
    ("qwen3_vl", 384, 64, {}),
    ("qwen3_vl_moe", 384, 64, LAST_LAYER),
]
DISCOVERY_BATCHED_EQUALS_UNBATCHED = [
    ("aya_vision", 336, 56),
    ("gemma3", 384, 64),
    ("gemma4", 384, 64),
    ("glm4v", 336, 56),
    ("glm4v_moe", 336, 56),
    ("glm46v", 336, 56),
    ("idefics3", 336, 56),
    ("smolvlm", 336, 56),
    ("internvl", 336, 56),
    ("llava", 336, 56),
    ("llava_next", 300, 60),
    ("llava_onevision", 300, 60),
    ("mistral3", 336, 56),
    ("ovis2", 336, 56),
    ("paligemma", 300, 60),
    ("pixtral", 336, 56),
    ("qwen2_vl", 336, 56),
    ("qwen2_5_vl", 336, 56),
    ("qwen3_5", 384, 64),
    ("qwen3_5_moe", 384, 64),
    ("qwen3_vl", 384, 64),
    ("qwen3_vl_moe", 384, 64),
]
# legacy: the chat template kept only in the processor's chat_template.json (older llava-hf and
# SmolVLM snapshots) is adopted by the tokenizer
LEGACY = {"legacy_template": True}
CHECKPOINT_ROUND_TRIP = [
    ("aya_vision", 336, 56, {}),
    ("gemma3", 300, 60, {}),
    ("gemma4", 384, 64, {}),
    ("glm4v", 336, 56, {}),
    ("glm4v_moe", 336, 56, {}),
    ("glm46v", 336, 56, {}),
    ("idefics3", 300, 60, {}),
    ("smolvlm", 300, 60, LEGACY),
    ("internvl", 336, 56, {}),
    ("llava_next", 300, 60, LEGACY),
    ("llava_onevision", 300, 60, {}),
    ("mistral3", 336, 56, {}),
    ("ovis2", 336, 56, {}),
    ("paligemma", 300, 60, {}),
    ("pixtral", 336, 56, {}),
    ("qwen2_vl", 336, 60, {}),
    ("qwen2_5_vl", 336, 60, {}),
    ("qwen3_5", 384, 64, {}),
    ("qwen3_5_moe", 384, 64, {}),
    ("qwen3_vl_moe", 384, 64, {}),
]


@pytest.fixture(scope="module")
def family(request):
    """``(model, adapter)`` of the row's family (``"family:policy"``: under that input policy), built
    once for this module (rows are grouped)."""
    family, _, policy = request.param.partition(":")
    model, adapter = BUILDERS[family]()
    if policy:
        adapter.set_input_policy(policy)
    return model, adapter


def _rows(table):
    return pytest.mark.parametrize(
        ("family", "width", "height", *(("kwargs",) if len(table[0]) == 4 else ())),
        table,
        indirect=["family"],
        ids=[row[0] for row in table],
    )


@_rows(PARITY_AND_STEERING)
def test_parity_capture_and_steering_on_a_left_padded_batch(family, width, height):
    model, adapter = family
    check_parity_and_steering(model, adapter, padded_batch(adapter, width, height))


@_rows(GREEDY_MATCHES_GENERATE)
def test_greedy_tokens_match_model_generate(family, width, height):
    model, adapter = family
    check_greedy_matches_generate(model, adapter, strip_image(width, height))


@_rows(GENERATE_STREAM_STEERS)
def test_generate_stream_steers_to_a_panel(family, width, height, kwargs):
    model, adapter = family
    check_generate_stream(model, adapter, strip_image(width, height), **kwargs)


@_rows(DISCOVERY_BATCHED_EQUALS_UNBATCHED)
def test_discovery_batched_equals_unbatched(family, width, height):
    model, adapter = family
    check_discovery_batched_equals_unbatched(model, adapter, strip_image(width, height))


@_rows(CHECKPOINT_ROUND_TRIP)
def test_checkpoint_round_trip(family, width, height, kwargs, tmp_path):
    model, adapter = family
    check_checkpoint_round_trip(model, adapter, tmp_path, strip_image(width, height), **kwargs)

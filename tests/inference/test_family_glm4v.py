"""GLM-4.1V / 4.5V (MoE) / 4.6V adapters on tiny random-initialised models of the real classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_image_embeddings_distinct,
    padded_batch,
    small_qwen_processor,
    strip_image,
    tiny_text_config,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.glm4v import Glm4vAdapter, Glm4vMoeAdapter, Glm46VAdapter

ORDINALS = ["1st", "2nd", "3rd", "4th", "5th", "6th"]
SPECIALS = [
    "[gMASK]",
    "<sop>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|image|>",
    "<|video|>",
]
# GLM-4.1V's chat layout, reduced to one user turn with an image
TEMPLATE = (
    "[gMASK]<sop>{%- for m in messages -%}<|{{ m['role'] }}|>\n"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<|begin_of_image|><|image|><|end_of_image|>"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>\n{%- endif -%}"
)
FAMILIES = ("glm4v", "glm4v_moe", "glm46v")


def tiny_glm(family: str = "glm4v"):
    """2-layer LM (4 query heads, 2 KV heads, half-rotary M-RoPE), 1-block vision tower with 14 px
    patches and 2x2 merge; ``glm4v_moe`` makes layer 1 a 4-expert MoE, ``glm46v`` is the 4.6V class."""
    import transformers as tf

    tok = word_tokenizer(
        SPECIALS,
        pad="<|endoftext|>",
        eos="<|endoftext|>",
        chat_template=TEMPLATE,
        extra_words=ORDINALS,
        image_token="<|image|>",
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    text = tiny_text_config(
        tok,
        hidden_size=64,
        intermediate_size=128,
        rope_parameters=dict(
            rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[2, 1, 1]
        ),
    )
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        image_size=56,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=64,
    )
    config_cls, model_cls, adapter_cls = {
        "glm4v": (tf.Glm4vConfig, tf.Glm4vForConditionalGeneration, Glm4vAdapter),
        "glm4v_moe": (tf.Glm4vMoeConfig, tf.Glm4vMoeForConditionalGeneration, Glm4vMoeAdapter),
        "glm46v": (tf.Glm46VConfig, tf.Glm46VForConditionalGeneration, Glm46VAdapter),
    }[family]
    if family == "glm4v_moe":
        text.update(
            moe_intermediate_size=32,
            n_routed_experts=4,
            num_experts_per_tok=2,
            n_shared_experts=1,
            first_k_dense_replace=1,
            n_group=1,
            topk_group=1,
        )
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
    )
    torch.manual_seed(0)
    model = model_cls(config).eval()
    return model, adapter_cls.from_parts(config, tok, small_qwen_processor(adapter_cls))


def tiny_glm4v_moe():
    return tiny_glm("glm4v_moe")


def tiny_glm46v():
    return tiny_glm("glm46v")


@pytest.fixture(scope="module", params=FAMILIES)
def glm(request):
    return tiny_glm(request.param)


def test_glm_registry_and_layout(glm):
    model, adapter = glm
    # not degenerate: distinct patches give distinct LM input embeddings (the geometry checks rely on it)
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(336, 56), "describe ."))
    assert adapter_for(model.config) is type(adapter)
    prepared = padded_batch(adapter, 336, 56)
    grid = prepared.grids[1]
    assert (grid.rows, grid.cols) == (2, 12)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[1:], model.config.image_token_id)
    # <|begin_of_image|> and <|end_of_image|> frame the image and are not in the grid
    assert ids[1, grid.positions[0] - 1] == model.config.image_start_token_id
    assert ids[1, grid.positions[-1] + 1] == model.config.image_end_token_id
    pad = int((prepared.tensors["attention_mask"][0] == 0).sum())
    assert pad > 0 and np.array_equal(prepared.grids[0].positions, grid.positions + pad)
    assert adapter.tokenizer.convert_tokens_to_ids("<|user|>") in adapter.eos_token_ids


def test_glm_decode_positions_do_not_depend_on_the_models_cached_deltas():
    """GLM's forward caches ``rope_deltas`` on the module; another prefill in between (a second
    request) must not change the positions of our decode steps."""
    model, adapter = tiny_glm("glm4v")
    first = adapter.build_inputs(strip_image(336, 56), "describe the panel .")
    other = adapter.build_inputs(strip_image(56, 336, n_panels=1), "describe the panel .")
    adapter.prefill_kwargs(model, first)
    with torch.no_grad():
        model(**adapter.prefill_kwargs(model, other))  # overwrites model.model.rope_deltas
    pos = adapter.decode_position_ids(first, first.prompt_len)  # [3, 1, 1]
    n_real = first.prompt_len
    # the strip's 2 x 12 grid takes max(2, 12) = 12 positions for 24 tokens: 12 fewer than tokens
    assert pos.shape == (3, 1, 1) and torch.all(pos == n_real - 12)


def test_glm_published_geometry_on_a_real_size_strip():
    """The published GLM-4.1V preprocessing (14 px patches, 2x2 merge, 112^2 .. 28^2*15000 px)."""
    from transformers import Glm4vConfig

    _, adapter = tiny_glm("glm4v")
    published = Glm4vAdapter.from_parts(Glm4vConfig(image_token_id=adapter.image_token_id), adapter.tokenizer)
    prepared = published.build_inputs(strip_image(1536, 256), "describe the panels .")
    # 1536 x 256 is already a multiple of 28 px after rounding: 55 x 9 merged tokens (1540 x 252 px)
    assert (prepared.grid.rows, prepared.grid.cols) == (9, 55)
    assert_grid_covers_image(prepared.grid, 1536, 256)
    assert_panels_partition(prepared.grid, 6)

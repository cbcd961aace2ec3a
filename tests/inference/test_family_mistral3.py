"""Mistral 3 and Pixtral adapters on tiny random-initialised models of the real classes."""

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
    strip_image,
    tiny_text_config,
    tiny_vision_config,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.mistral3 import Mistral3Adapter, PixtralAdapter

ORDINALS = ["1st", "2nd", "3rd", "4th", "5th", "6th"]
SPECIALS = ["[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"]
# Mistral's instruct layout, reduced to one user turn with an image
TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}[INST]"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}[IMG]"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}[/INST]{%- endfor -%}"
)


def tiny_mistral3(family: str = "mistral3"):
    """2-layer Mistral LM (4 query heads, 2 KV heads); 1-layer Pixtral tower with 7 px patches and
    a 112 px longest edge; Mistral 3 merges 2x2 patches (14 px cells), Pixtral-12B (llava) none."""
    import transformers as tf

    tok = word_tokenizer(
        SPECIALS,
        pad="<pad>",
        eos="</s>",
        bos="<s>",
        chat_template=TEMPLATE,
        extra_words=ORDINALS,
        image_token="[IMG]",
    )
    text = tiny_text_config(tok, model_type="mistral", head_dim=8, bos_token_id=tok.bos_token_id)
    vision = tiny_vision_config(model_type="pixtral", head_dim=16, image_size=112, patch_size=7)
    image_token = tok.convert_tokens_to_ids("[IMG]")
    if family == "mistral3":
        config = tf.Mistral3Config(
            text_config=text, vision_config=vision, image_token_index=image_token, spatial_merge_size=2
        )
        model_cls, adapter_cls = tf.Mistral3ForConditionalGeneration, Mistral3Adapter
    else:
        config = tf.LlavaConfig(
            text_config=text,
            vision_config=vision,
            image_token_index=image_token,
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
        )
        model_cls, adapter_cls = tf.LlavaForConditionalGeneration, PixtralAdapter
    torch.manual_seed(0)
    return model_cls(config).eval(), adapter_cls.from_parts(config, tok)


def tiny_pixtral():
    return tiny_mistral3("pixtral")


@pytest.fixture(scope="module")
def mistral3():
    return tiny_mistral3()


def test_mistral3_layout_keeps_break_and_end_tokens_out_of_the_grid(mistral3):
    model, adapter = mistral3
    # not degenerate: distinct patches give distinct LM input embeddings (the geometry checks rely on it)
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(336, 56), "describe ."))
    assert adapter_for(model.config) is Mistral3Adapter
    prepared = padded_batch(adapter, 336, 56)
    grid = prepared.grids[1]
    # 336 x 56 shrinks to 112 x 18 (longest edge 112), then stretches to whole 14 px cells: 8 x 2
    assert (grid.rows, grid.cols) == (2, 8)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[1:], model.config.image_token_id)
    tok = adapter.tokenizer
    brk, end = tok.convert_tokens_to_ids("[IMG_BREAK]"), tok.convert_tokens_to_ids("[IMG_END]")
    start = int(grid.positions[0])
    # [IMG] x 8, [IMG_BREAK], [IMG] x 8, [IMG_END]: the grid skips the break, rows stay row-major
    expected = [model.config.image_token_id] * 8 + [brk] + [model.config.image_token_id] * 8 + [end]
    assert ids[1, start : start + 18].tolist() == expected
    assert np.array_equal(grid.positions, start + np.r_[0:8, 9:17])
    pad = int((prepared.tensors["attention_mask"][0] == 0).sum())
    assert pad > 0 and np.array_equal(prepared.grids[0].positions, grid.positions + pad)


def test_mistral3_published_geometry_on_a_real_size_strip():
    """Mistral-Small-3.1's tower: 14 px patches, 2x2 merge, longest edge 1540 px."""
    from transformers import Mistral3Config

    _, adapter = tiny_mistral3()
    published = Mistral3Adapter.from_parts(
        Mistral3Config(image_token_index=adapter.image_token_id), adapter.tokenizer
    )
    prepared = published.build_inputs(strip_image(1536, 256), "describe the panels .")
    # 1536 x 256 fits in 1540 px; whole 28 px cells: 55 x 10 (stretched to 1540 x 280)
    assert (prepared.grid.rows, prepared.grid.cols) == (10, 55)
    assert_grid_covers_image(prepared.grid, 1536, 256)
    assert_panels_partition(prepared.grid, 6)


def test_pixtral_llava_checkpoint_is_claimed_with_its_own_grid():
    """Pixtral-12B is a ``llava`` checkpoint with a Pixtral tower: this adapter, not LLaVA-1.5's.
    (Its parity, steering, greedy, stream, discovery and round-trip checks are rows of
    test_family_checks.py; its geometry a row of test_geometry_truth.py.)"""
    model, adapter = tiny_mistral3("pixtral")
    assert adapter_for(model.config) is PixtralAdapter
    # not degenerate: distinct patches give distinct LM input embeddings
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(336, 56), "describe ."))
    prepared = padded_batch(adapter, 336, 56)
    # no merge: 7 px cells on the 112 x 19 resize -> 16 x 3
    assert (prepared.grid.rows, prepared.grid.cols) == (3, 16)
    assert_grid_covers_image(prepared.grid, 336, 56)
    assert_panels_partition(prepared.grid, 6)


def test_pixtral_with_a_cls_dropping_strategy_is_refused_clearly():
    from gaze_explorer.core.errors import ModelLoadError

    _, adapter = tiny_mistral3("pixtral")
    adapter.config.vision_feature_select_strategy = "default"
    with pytest.raises(ModelLoadError, match="vision_feature_select_strategy='full'"):
        adapter.build_inputs(strip_image(336, 56), "describe the panel .")

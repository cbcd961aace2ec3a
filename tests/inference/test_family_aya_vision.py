"""Aya Vision adapter on a tiny random-initialised AyaVisionForConditionalGeneration (offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_image_embeddings_distinct,
    check_parity,
    check_parity_and_steering,
    input_policy,
    padded_batch,
    strip_image,
    tiny_text_config,
    tiny_vision_config,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.aya_vision import AyaVisionAdapter

ORDINALS = ["1st", "2nd", "3rd", "4th", "5th", "6th"]
SPECIALS = [
    "<|START_OF_TURN_TOKEN|>",
    "<|END_OF_TURN_TOKEN|>",
    "<|USER_TOKEN|>",
    "<|CHATBOT_TOKEN|>",
    "<image>",
    "<|START_OF_IMG|>",
    "<|END_OF_IMG|>",
    "<|IMG_PATCH|>",
    "TILE_GLOBAL",
]
# Aya Vision's Cohere chat layout, reduced to one user turn with an image
TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}<|START_OF_TURN_TOKEN|>"
    "{{ '<|CHATBOT_TOKEN|>' if m['role'] == 'assistant' else '<|USER_TOKEN|>' }}"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<image>"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}<|END_OF_TURN_TOKEN|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{%- endif -%}"
)


def tiny_aya_vision():
    """2-layer Cohere 2 LM (sliding window 24, then global; 4 query heads, 2 KV heads); 1-layer
    SigLIP on 56 px views of 7 px patches, pixel-shuffled to 4 x 4 = 16 tokens per view; <= 6 tiles."""
    from transformers import AyaVisionConfig, AyaVisionForConditionalGeneration

    tok = word_tokenizer(
        SPECIALS,
        pad="<pad>",
        eos="<eos>",
        bos="<bos>",
        chat_template=TEMPLATE,
        extra_words=[*ORDINALS, "TILE", "_"],
    )
    config = AyaVisionConfig(
        text_config=tiny_text_config(
            tok,
            model_type="cohere2",
            sliding_window=24,
            layer_types=["sliding_attention", "full_attention"],
            bos_token_id=tok.bos_token_id,
        ),
        vision_config=tiny_vision_config(model_type="siglip_vision_model", image_size=56, patch_size=7),
        image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"),
        downsample_factor=2,
    )
    torch.manual_seed(0)
    model = AyaVisionForConditionalGeneration(config).eval()
    processor = AyaVisionAdapter.default_image_processor(config)
    processor.max_patches = 6
    return model, AyaVisionAdapter.from_parts(config, tok, processor)


@pytest.fixture(scope="module")
def aya():
    return tiny_aya_vision()


@pytest.fixture
def aya_squash(aya):
    with input_policy(aya[1], "squash"):
        yield aya


def test_aya_native_tiles_form_the_grid_and_the_global_tile_stays_out(aya):
    """A 6:1 strip: 6 x 1 tiles (4 x 24 grid tokens) then the global tile; tile labels are text."""
    model, adapter = aya
    assert adapter_for(model.config) is AyaVisionAdapter and adapter.input_policy == "native"
    prepared = padded_batch(adapter, 336, 56)
    assert prepared.tensors["pixel_values"].shape == (14, 3, 56, 56)  # 7 views per row
    grid = prepared.grids[1]
    assert (grid.rows, grid.cols) == (4, 24)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    assert_positions_hold_image_tokens(
        grid, prepared.tensors["input_ids"][1:], model.config.image_token_index
    )
    ids = prepared.tensors["input_ids"][1]
    all_image = torch.nonzero(ids == model.config.image_token_index).flatten().numpy()
    assert all_image.size == 7 * 16
    # grid row 0 = row 0 of tile 1, then of tile 2, ...; each tile's tokens follow its label
    assert np.array_equal(grid.positions[:8], all_image[np.r_[0:4, 16:20]])
    tok = adapter.tokenizer
    assert ids[all_image[0] - 1] == tok.convert_tokens_to_ids("1") and ids[
        all_image[0] - 3
    ] == tok.convert_tokens_to_ids("TILE")
    thumb = prepared.info["vision"]["global_positions"][1]
    assert np.array_equal(thumb, all_image[96:])
    assert ids[thumb[0] - 1] == tok.convert_tokens_to_ids("TILE_GLOBAL")
    assert ids[thumb[-1] + 1] == tok.convert_tokens_to_ids("<|END_OF_IMG|>")
    assert np.array_equal(prepared.info["vision"]["non_grid_positions"][1], thumb)
    assert tok.convert_tokens_to_ids("<|END_OF_TURN_TOKEN|>") in adapter.eos_token_ids


def test_aya_inputs_match_the_stock_processor(aya):
    from transformers import AyaVisionProcessor

    _, adapter = aya
    processor = AyaVisionProcessor(
        image_processor=adapter.image_processor,
        tokenizer=adapter.tokenizer,
        patch_size=7,
        img_size=56,
        downsample_factor=2,
    )
    image = strip_image(336, 56)
    text = adapter.format_prompt("describe the panel .")
    stock = processor(images=image, text=text, return_tensors="pt", add_special_tokens=False)
    ours = adapter.build_inputs(image, "describe the panel .").tensors
    for key in ("input_ids", "pixel_values"):
        assert torch.equal(stock[key], ours[key]), key


def test_aya_image_embeddings_are_distinct(aya):
    model, adapter = aya
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(336, 56), "describe ."))


def test_aya_parity_capture_and_steering_on_a_left_padded_batch(aya):
    model, adapter = aya
    prepared = padded_batch(adapter, 336, 56)
    assert prepared.prompt_len > model.config.text_config.sliding_window
    check_parity_and_steering(model, adapter, prepared)


def test_aya_squash_is_one_view(aya_squash):
    model, adapter = aya_squash
    prepared = padded_batch(adapter, 336, 56)
    assert prepared.tensors["pixel_values"].shape == (2, 3, 56, 56)
    assert (prepared.grid.rows, prepared.grid.cols) == (4, 4)
    assert_grid_covers_image(prepared.grid, 336, 56)
    assert prepared.info["vision"]["non_grid_positions"][1].size == 0
    check_parity(model, adapter, prepared)  # 4 token columns: too few for 6 panels to steer to


def test_aya_published_geometry_on_a_real_size_strip(aya):
    """Aya Vision's 364 px SigLIP tiles of 14 px patches: 13 x 13 tokens per view; a 1536 x 256
    strip becomes a 6 x 1 canvas (13 x 78 grid tokens) plus the global tile."""
    from transformers import AyaVisionConfig

    _, adapter = aya
    config = AyaVisionConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=364, patch_size=14),
        image_token_index=adapter.image_token_id,
    )
    published = AyaVisionAdapter.from_parts(config, adapter.tokenizer)
    prepared = published.build_inputs(strip_image(1536, 256), "describe the panels .")
    assert prepared.tensors["pixel_values"].shape == (7, 3, 364, 364)
    assert (prepared.grid.rows, prepared.grid.cols) == (13, 78)
    assert_grid_covers_image(prepared.grid, 1536, 256)
    assert_panels_partition(prepared.grid, 6)

"""Gemma 3 adapter on a tiny random-initialised Gemma3ForConditionalGeneration (built offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_decode_steering,
    check_generate_stream,
    check_parity,
    padded_batch,
    strip_image,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.gemma3 import Gemma3Adapter
from gaze_explorer.inference.random_init import randomise_constant_matrices

SPECIALS = ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<start_of_image>"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}<end_of_turn>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<start_of_turn>model\n{%- endif -%}"
)


def tiny_gemma3(sliding_window: int = 24):
    """A 2-layer Gemma 3 (one sliding-window layer, one global), 8x8 = 64 soft tokens."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tok = word_tokenizer(
        SPECIALS,
        pad="<pad>",
        eos="<eos>",
        bos="<bos>",
        chat_template=TEMPLATE,
        image_token="<image_soft_token>",
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    config = Gemma3Config(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            query_pre_attn_scalar=8,
            sliding_window=sliding_window,
            layer_types=["sliding_attention", "full_attention"],
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.bos_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=64,
            patch_size=8,
            vision_use_head=False,
        ),
        mm_tokens_per_image=64,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(config).eval()
    # transformers zeroes the multimodal projection (the checkpoint fills it): randomise it, or every
    # image token would get the same embedding and no geometry error could show
    assert randomise_constant_matrices(model) == ["model.multi_modal_projector.mm_input_projection_weight"]
    return model, Gemma3Adapter.from_parts(config, tok)


@pytest.fixture(scope="module")
def gemma3():
    return tiny_gemma3()


def test_gemma3_registry_finds_adapter(gemma3):
    model, _ = gemma3
    assert adapter_for(model.config) is Gemma3Adapter


def test_gemma3_strip_grid_covers_image_and_panels_partition(gemma3):
    model, adapter = gemma3
    image = strip_image(300, 60)
    prepared = adapter.build_inputs(image, "describe the third panel .")
    grid = prepared.grid
    assert (grid.rows, grid.cols) == (8, 8)
    assert_grid_covers_image(grid, 300, 60)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids, model.config.image_token_id)
    # the soft tokens sit between <start_of_image> and <end_of_image>, contiguous and row-major
    assert np.array_equal(np.diff(grid.positions), np.ones(grid.n_tokens - 1))
    assert ids[0, grid.positions[0] - 1] == model.config.boi_token_index
    assert ids[0, grid.positions[-1] + 1] == model.config.eoi_token_index
    assert torch.equal(prepared.tensors["token_type_ids"], (ids == model.config.image_token_id).long())
    assert adapter.tokenizer.convert_tokens_to_ids("<end_of_turn>") in adapter.eos_token_ids


def test_gemma3_batch_is_left_padded(gemma3):
    _, adapter = gemma3
    prepared = padded_batch(adapter, 300, 60)
    mask = prepared.tensors["attention_mask"]
    assert mask.shape[0] == 2 and mask[0, 0] == 0 and mask[1, 0] == 1
    pad = int((mask[0] == 0).sum())
    assert np.array_equal(prepared.grids[0].positions, prepared.grids[1].positions + pad)


def test_gemma3_parity_with_sliding_window_and_bidirectional_image(gemma3):
    """Prefill logits under the registered function match SDPA when the sliding window cuts keys
    off and the image tokens attend to each other both ways (the mask must come from the mask
    builder registered for the function, not be None)."""
    model, adapter = gemma3
    prepared = padded_batch(adapter, 300, 60)
    assert prepared.prompt_len > model.config.text_config.sliding_window
    check_parity(model, adapter, prepared)


@pytest.fixture(scope="module")
def gemma3_wide():
    """The same tiny Gemma 3 with a window longer than the prompt (the window never cuts)."""
    return tiny_gemma3(sliding_window=512)


def test_gemma3_decode_capture_and_steering_within_window(gemma3_wide):
    model, adapter = gemma3_wide
    prepared = padded_batch(adapter, 300, 60)
    check_decode_steering(model, adapter, prepared)


def test_gemma3_decode_capture_and_steering_past_sliding_window(gemma3):
    model, adapter = gemma3
    prepared = padded_batch(adapter, 300, 60)
    assert prepared.prompt_len > model.config.text_config.sliding_window
    check_decode_steering(model, adapter, prepared)  # steers layer 1 (global attention)
    check_generate_stream(model, adapter, strip_image(300, 60))


def test_gemma3_inputs_match_the_stock_processor(gemma3):
    """Our torchvision-free layout gives exactly what transformers' Gemma3Processor gives."""
    from transformers import Gemma3Processor

    _, adapter = gemma3
    image = strip_image(300, 60)
    processor = Gemma3Processor(
        image_processor=adapter.image_processor, tokenizer=adapter.tokenizer, image_seq_length=64
    )
    text = adapter.format_prompt("describe the panel .")
    stock = processor(images=image, text=text, return_tensors="pt", add_special_tokens=False)
    ours = adapter.build_inputs(image, "describe the panel .").tensors
    for key in ("input_ids", "pixel_values", "token_type_ids"):
        assert torch.equal(stock[key], ours[key]), key


def test_gemma3_published_geometry_on_a_real_size_strip(gemma3):
    """Gemma 3's 896 px SigLIP (64 x 64 patches of 14 px) pooled to 16 x 16 = 256 soft tokens."""
    from transformers import Gemma3Config

    model, adapter = gemma3
    config = Gemma3Config(
        text_config=model.config.text_config.to_dict(),
        vision_config=dict(image_size=896, patch_size=14, vision_use_head=False),
        mm_tokens_per_image=256,
        boi_token_index=model.config.boi_token_index,
        eoi_token_index=model.config.eoi_token_index,
        image_token_index=model.config.image_token_index,
    )
    published = Gemma3Adapter.from_parts(config, adapter.tokenizer)
    prepared = published.build_inputs(strip_image(1566, 256), "describe the panels .")
    assert prepared.tensors["pixel_values"].shape[-2:] == (896, 896)
    assert (prepared.grid.rows, prepared.grid.cols) == (16, 16)
    assert_grid_covers_image(prepared.grid, 1566, 256)
    assert_panels_partition(prepared.grid, 6)

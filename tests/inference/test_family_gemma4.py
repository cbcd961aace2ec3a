"""Gemma 4 adapter on a tiny random-initialised Gemma4ForConditionalGeneration (built offline).

The tiny model keeps what makes Gemma 4 different: sliding-window layers whose window (24) is
shorter than the prompt, bidirectional attention among the soft tokens in the sliding layers
(``use_bidirectional_attention="vision"``), K/V shared by the last two layers, a larger head size
in the global layers, per-layer input embeddings, and the aspect-preserving 3x3-pooled patch grid
addressed by ``image_position_ids``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_decode_steering,
    check_image_embeddings_distinct,
    check_parity,
    padded_batch,
    strip_image,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.gemma4 import Gemma4Adapter

SPECIALS = ["<|turn>", "<turn|>", "<|image>", "<image|>", "<|image|>"]
TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}"
    "<|turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<|image|>"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}<turn|>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|turn>model\n{%- endif -%}"
)
LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]


def tiny_gemma4():
    """4 layers (sliding, global, sliding, global; the last two reuse the first two's K/V), 4 query
    heads, 2 KV heads; a 1-block vision tower with 16 px patches pooled 3x3, at most 70 soft tokens."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    tok = word_tokenizer(
        SPECIALS,
        pad="<pad>",
        eos="<eos>",
        bos="<bos>",
        chat_template=TEMPLATE,
        image_token="<|image|>",
        boi_token="<|image>",
        eoi_token="<image|>",
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    config = Gemma4Config(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            global_head_dim=16,
            sliding_window=24,
            layer_types=LAYER_TYPES,
            num_kv_shared_layers=2,
            vocab_size_per_layer_input=len(tok),
            hidden_size_per_layer_input=8,
            use_bidirectional_attention="vision",
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
            num_key_value_heads=2,
            head_dim=16,
            patch_size=16,
            pooling_kernel_size=3,
            position_embedding_size=128,
        ),
        boi_token_id=ids["<|image>"],
        eoi_token_id=ids["<image|>"],
        image_token_id=ids["<|image|>"],
        video_token_id=tok.unk_token_id,
        audio_token_id=tok.unk_token_id,
    )
    torch.manual_seed(0)
    model = Gemma4ForConditionalGeneration(config).eval()
    processor = Gemma4Adapter.image_processor_class()(
        patch_size=16, pooling_kernel_size=3, max_soft_tokens=70
    )
    return model, Gemma4Adapter.from_parts(config, tok, processor)


@pytest.fixture(scope="module")
def gemma4():
    return tiny_gemma4()


def test_gemma4_registry_and_eos(gemma4):
    model, adapter = gemma4
    assert adapter_for(model.config) is Gemma4Adapter
    assert adapter.attention_layers == (0, 1, 2, 3)
    assert adapter.tokenizer.convert_tokens_to_ids("<turn|>") in adapter.eos_token_ids
    assert adapter.tokenizer.unk_token_id not in adapter.eos_token_ids  # "<end_of_turn>" is not in this vocab


@pytest.mark.parametrize(("size", "grid"), [((384, 64), (3, 20)), ((64, 384), (20, 3)), ((200, 150), (7, 9))])
def test_gemma4_grid_keeps_the_aspect_ratio(gemma4, size, grid):
    """Strip, portrait and landscape images: an aspect-preserving (H/48) x (W/48) grid over the
    whole image, its soft tokens contiguous between boi and eoi, ``image_position_ids`` the
    patch (x, y) coordinates (-1 on the padding up to the 70 x 9 patch budget)."""
    model, adapter = gemma4
    prepared = adapter.build_inputs(strip_image(*size), "describe the panel .")
    g = prepared.grid
    assert (g.rows, g.cols) == grid
    assert_grid_covers_image(g, *size)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(g, ids, model.config.image_token_id)
    assert np.array_equal(np.diff(g.positions), np.ones(g.n_tokens - 1))
    assert ids[0, g.positions[0] - 1] == model.config.boi_token_id
    assert ids[0, g.positions[-1] + 1] == model.config.eoi_token_id
    pos = prepared.tensors["image_position_ids"][0]  # [max_patches, 2]
    real = pos[(pos >= 0).all(-1)]
    assert pos.shape[0] == 70 * 9 and real.shape[0] == g.n_tokens * 9
    assert (int(real[:, 0].max()) + 1, int(real[:, 1].max()) + 1) == (3 * g.cols, 3 * g.rows)
    assert torch.equal(prepared.tensors["mm_token_type_ids"], (ids == model.config.image_token_id).long())
    if size == (384, 64):
        assert_panels_partition(g, 6)


def test_gemma4_image_embeddings_are_distinct(gemma4):
    model, adapter = gemma4
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(384, 64), "describe ."))


def test_gemma4_parity_with_sliding_window_and_shared_kv(gemma4):
    """Prefill logits equal SDPA's on a left-padded batch whose prompt is longer than the window."""
    model, adapter = gemma4
    prepared = padded_batch(adapter, 384, 64)
    assert prepared.prompt_len > model.config.text_config.sliding_window
    check_parity(model, adapter, prepared)


@pytest.mark.parametrize("layer", [1, 3])  # a global layer, and a global layer that reuses layer 1's K/V
def test_gemma4_decode_capture_and_steering(gemma4, layer):
    model, adapter = gemma4
    check_decode_steering(model, adapter, padded_batch(adapter, 384, 64), head=(layer, 1))

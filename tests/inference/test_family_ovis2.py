"""Ovis2 adapter on a tiny random-initialised Ovis2ForConditionalGeneration (built offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    PROMPTS,
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_image_embeddings_distinct,
    check_parity_and_steering,
    input_policy,
    padded_batch,
    strip_image,
    tiny_text_config,
    tiny_vision_config,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.ovis2 import Ovis2Adapter

ORDINALS = ["1st", "2nd", "3rd", "4th", "5th", "6th"]
INDICATORS = ["<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<image>", "<IMG_ATOM>", *INDICATORS]
# Ovis2's Qwen2 chat layout, reduced to one user turn with an image
TEMPLATE = (
    "{%- for m in messages -%}<|im_start|>{{ m['role'] }}\n"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<image>\n"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}<|im_end|>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def tiny_ovis2():
    """2-layer Qwen2 LM (4 query heads, 2 KV heads); 1-layer vision tower on 112 px views of 7 px
    patches, hidden stride 2 (8 x 8 = 64 visual tokens per view over a 64-entry visual vocabulary);
    at most 4 tiles (native)."""
    from transformers import Ovis2Config, Ovis2ForConditionalGeneration

    tok = word_tokenizer(
        SPECIALS, pad="<|endoftext|>", eos="<|im_end|>", chat_template=TEMPLATE, extra_words=ORDINALS
    )
    config = Ovis2Config(
        text_config=tiny_text_config(tok, model_type="qwen2", max_position_embeddings=2048),
        vision_config=tiny_vision_config(image_size=112, patch_size=7, hidden_stride=2, vocab_size=64),
        image_token_id=tok.convert_tokens_to_ids("<IMG_ATOM>"),
        visual_indicator_token_ids=[tok.convert_tokens_to_ids(t) for t in INDICATORS],
        vocab_size=len(tok),
        hidden_size=32,
    )
    torch.manual_seed(0)
    model = Ovis2ForConditionalGeneration(config).eval()
    processor = Ovis2Adapter.default_image_processor(config)
    processor.max_patches = 4
    return model, Ovis2Adapter.from_parts(config, tok, processor)


@pytest.fixture(scope="module")
def ovis2():
    return tiny_ovis2()


def test_ovis2_squash_view_and_indicator_tokens_outside_the_grid(ovis2):
    model, adapter = ovis2
    # not degenerate: distinct patches give distinct LM input embeddings (the geometry checks rely on it)
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(336, 56), "describe ."))
    assert adapter_for(model.config) is Ovis2Adapter and adapter.input_policy == "squash"
    prepared = padded_batch(adapter, 336, 56)
    grid = prepared.grids[1]
    assert (grid.rows, grid.cols) == (8, 8)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[1:], model.config.image_token_id)
    tok = adapter.tokenizer
    start = int(grid.positions[0])
    # <IMG_START> atoms <IMG_GRID> <IMG_END>: one view, three indicators, none in the grid
    assert ids[1, start - 1] == tok.convert_tokens_to_ids("<IMG_START>")
    assert ids[1, start + 64 : start + 66].tolist() == [
        tok.convert_tokens_to_ids(t) for t in ("<IMG_GRID>", "<IMG_END>")
    ]
    indicators = prepared.info["vision"]["indicator_positions"][1]
    assert np.array_equal(indicators, [start - 1, start + 64, start + 65])
    assert not set(indicators) & set(grid.positions)
    assert prepared.info["vision"]["non_grid_positions"][1].size == 0


def test_ovis2_native_tiles_thumbnail_first_with_row_and_column_indicators(ovis2):
    model, adapter = ovis2
    with input_policy(adapter, "native"):
        # transformers' Ovis2 processor unpacks its covering grid as (columns, rows) although it is
        # (rows, columns): a 130 x 300 portrait gets a 1 x 3 canvas (one row of three tiles). The
        # grid follows the canvas the model really sees (boxes stay exact: each tile is stretched).
        image = strip_image(130, 300, n_panels=1)
        prepared = adapter.build_inputs(image, PROMPTS)
        assert prepared.info["vision"]["tiles"] == [1, 3]
        grid = prepared.grids[1]
        assert (grid.rows, grid.cols) == (8, 24)
        assert_grid_covers_image(grid, 130, 300)
        ids = prepared.tensors["input_ids"][1]
        all_image = torch.nonzero(ids == model.config.image_token_id).flatten().numpy()
        thumb = prepared.info["vision"]["global_positions"][1]
        assert np.array_equal(thumb, all_image[:64])  # the thumbnail comes first
        assert np.array_equal(prepared.info["vision"]["non_grid_positions"][1], thumb)
        assert (
            prepared.info["vision"]["input_policy"] == "native" and prepared.info["vision"]["coverage"] == 1.0
        )
        # tile 1's first row, then tile 2's first row: the grid skips <IMG_COL> between them
        assert np.array_equal(grid.positions[:16], all_image[np.r_[64:72, 128:136]])
        col = adapter.tokenizer.convert_tokens_to_ids("<IMG_COL>")
        assert ids[all_image[127] + 1] == col and ids[all_image[191] + 1] == col
        assert ids[all_image[255] + 1] == adapter.tokenizer.convert_tokens_to_ids("<IMG_END>")
        check_parity_and_steering(model, adapter, prepared)


def test_ovis2_published_geometry_on_a_real_size_strip(ovis2):
    """Ovis2's 448 px views of 14 px patches with hidden stride 2: 16 x 16 visual tokens."""
    from transformers import Ovis2Config

    _, adapter = ovis2
    config = Ovis2Config(
        vision_config=dict(image_size=448, patch_size=14, hidden_stride=2),
        image_token_id=adapter.image_token_id,
    )
    published = Ovis2Adapter.from_parts(config, adapter.tokenizer)
    prepared = published.build_inputs(strip_image(1536, 256), "describe the panels .")
    assert (prepared.grid.rows, prepared.grid.cols) == (16, 16)
    assert_grid_covers_image(prepared.grid, 1536, 256)
    assert_panels_partition(prepared.grid, 6)


def test_ovis2_native_tiles_match_the_measured_geometry(ovis2):
    """The stitched tile grid (on the canvas the processor really cuts, rows and columns swapped)
    equals the ground truth measured on the model; the squashed view is measured in
    test_geometry_truth.py."""
    from geometry_truth import GeometryOracle, noise_image

    model, adapter = ovis2
    with input_policy(adapter, "native"):
        image = noise_image(300, 120, seed=1)
        assert adapter.build_inputs(image, "describe .").info["vision"]["tiles"] == [3, 1]
        # the swapped canvas stacks three tiles along y: measure the stitched axis
        comparison = GeometryOracle(model, adapter).measure_boxes(image, axes=(1,))
    assert comparison.max_error_px <= comparison.tolerance_px, comparison.worst()

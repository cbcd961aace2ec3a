"""InternVL 3 / 3.5 (-hf) adapter on a tiny random-initialised InternVLForConditionalGeneration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
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

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.internvl import InternVLAdapter

ORDINALS = ["1st", "2nd", "3rd", "4th", "5th", "6th"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
# InternVL3-hf's Qwen2 chat layout, reduced to one user turn with an image
TEMPLATE = (
    "{%- for m in messages -%}<|im_start|>{{ m['role'] }}\n"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<IMG_CONTEXT>\n"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}<|im_end|>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def tiny_internvl():
    """2-layer Qwen2 LM (4 query heads, 2 KV heads); 1-layer InternViT on 112 px views of 7 px
    patches; the pixel shuffle makes 8 x 8 = 64 tokens per view; at most 4 tiles (native)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    tok = word_tokenizer(
        SPECIALS,
        pad="<|endoftext|>",
        eos="<|im_end|>",
        chat_template=TEMPLATE,
        extra_words=ORDINALS,
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
    )
    config = InternVLConfig(
        text_config=tiny_text_config(tok, model_type="qwen2", max_position_embeddings=2048),
        vision_config=tiny_vision_config(image_size=[112, 112], patch_size=[7, 7]),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=64,
        downsample_ratio=0.5,
    )
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config).eval()
    processor = InternVLAdapter.default_image_processor(config)
    processor.max_patches = 4
    return model, InternVLAdapter.from_parts(config, tok, processor)


@pytest.fixture(scope="module")
def internvl():
    return tiny_internvl()


@pytest.fixture
def internvl_native(internvl):
    with input_policy(internvl[1], "native"):
        yield internvl


def test_internvl_squash_is_one_view_over_the_whole_image(internvl):
    model, adapter = internvl
    # not degenerate: distinct patches give distinct LM input embeddings (the geometry checks rely on it)
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(336, 56), "describe ."))
    assert adapter_for(model.config) is InternVLAdapter and adapter.input_policy == "squash"
    prepared = padded_batch(adapter, 336, 56)
    grid = prepared.grids[1]
    assert prepared.tensors["pixel_values"].shape == (2, 3, 112, 112)  # one squashed view per row
    assert (grid.rows, grid.cols) == (8, 8)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[1:], model.config.image_token_id)
    tok = adapter.tokenizer
    assert ids[1, grid.positions[0] - 1] == tok.convert_tokens_to_ids("<img>")
    assert ids[1, grid.positions[-1] + 1] == tok.convert_tokens_to_ids("</img>")
    assert np.array_equal(np.diff(grid.positions), np.ones(63))
    assert prepared.info["vision"]["non_grid_positions"][1].size == 0
    assert prepared.info["vision"]["coverage"] == 1.0  # stretched, never cropped


def test_internvl_native_tiles_form_the_grid_and_the_thumbnail_is_a_global_view(internvl_native):
    model, adapter = internvl_native
    prepared = padded_batch(adapter, 336, 56)
    # a 6:1 strip with at most 4 tiles: a 4 x 1 canvas, then the thumbnail (5 views of 8 x 8)
    assert prepared.tensors["pixel_values"].shape == (10, 3, 112, 112)
    grid = prepared.grids[1]
    assert (grid.rows, grid.cols) == (8, 32)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"][1]
    all_image = torch.nonzero(ids == model.config.image_token_id).flatten().numpy()
    assert all_image.size == 5 * 64
    # grid row 0 = row 0 of tile 1, then row 0 of tile 2, ...: tile by tile in the sequence
    assert np.array_equal(grid.positions[:16], all_image[np.r_[0:8, 64:72]])
    thumb = prepared.info["vision"]["global_positions"][1]
    assert np.array_equal(thumb, all_image[256:])
    assert np.array_equal(prepared.info["vision"]["non_grid_positions"][1], thumb)
    assert prepared.info["vision"]["input_policy"] == "native" and prepared.info["vision"]["coverage"] == 1.0
    check_parity_and_steering(model, adapter, prepared)


def test_internvl_published_geometry_on_a_real_size_strip(internvl):
    """InternVL3.5's 448 px views of 14 px patches: 16 x 16 tokens; squash keeps 16 columns for a
    6-panel strip (2-3 per panel, as in the paper); native tiling makes a 6 x 1 canvas + thumbnail."""
    from transformers import InternVLConfig

    _, adapter = internvl
    published = InternVLAdapter.from_parts(
        InternVLConfig(image_token_id=adapter.image_token_id), adapter.tokenizer
    )
    image = strip_image(1536, 256)
    squashed = published.build_inputs(image, "describe the panels .")
    assert (squashed.grid.rows, squashed.grid.cols) == (16, 16)
    widths = [r.token_indices.size // 16 for r in panel_regions(squashed.grid, 6)]  # columns per panel
    assert sorted(set(widths)) == [2, 3] and sum(widths) == 16
    published.set_input_policy("native")
    tiled = published.build_inputs(image, "describe the panels .")
    assert (tiled.grid.rows, tiled.grid.cols) == (16, 96)
    assert_grid_covers_image(tiled.grid, 1536, 256)
    assert_panels_partition(tiled.grid, 6)
    with pytest.raises(ModelLoadError, match="input policy"):
        published.set_input_policy("crop")


def test_internvl_native_tiles_match_the_measured_geometry(internvl_native):
    """The stitched tile grid's boxes equal the ground truth measured on the model (pixel flips with
    the vision attention zeroed); the squashed view is measured in test_geometry_truth.py."""
    from geometry_truth import GeometryOracle, noise_image

    model, adapter = internvl_native
    image = noise_image(300, 120, seed=1)
    assert adapter.build_inputs(image, "describe .").info["vision"]["tiles"] == [1, 3]
    # the three tiles are stitched along x (within a tile, y is the squashed view's geometry)
    comparison = GeometryOracle(model, adapter).measure_boxes(image, axes=(0,))
    assert comparison.max_error_px <= comparison.tolerance_px, comparison.worst()

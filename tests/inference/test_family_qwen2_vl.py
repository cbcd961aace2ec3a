"""Qwen2-VL and Qwen2.5-VL adapters on tiny random-initialised models (built offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    WORDS,
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_parity_and_steering,
    padded_batch,
    small_qwen_processor,
    strip_image,
    tiny_text_config,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.qwen2_vl import Qwen2_5_VLAdapter, Qwen2VLAdapter
from gaze_explorer.inference.word_tokenizer import build_word_tokenizer


def tiny_qwen2_vl(family: str = "qwen2_vl"):
    """2-layer LM (4 query heads, 2 KV heads), 1-block vision tower with 14 px patches, merge 2."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    tok = build_word_tokenizer(WORDS)
    ids = {
        t: tok.convert_tokens_to_ids(t)
        for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    }
    text = tiny_text_config(
        tok,
        bos_token_id=tok.pad_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
    )
    vision = dict(
        depth=1, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2
    )
    if family == "qwen2_vl":
        config_cls, model_cls, adapter_cls = Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLAdapter
        vision.update(embed_dim=32)
    else:
        config_cls, model_cls, adapter_cls = (
            Qwen2_5_VLConfig,
            Qwen2_5_VLForConditionalGeneration,
            Qwen2_5_VLAdapter,
        )
        vision.update(intermediate_size=64, out_hidden_size=32, window_size=56, fullatt_block_indexes=[0])
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = model_cls(config).eval()
    return model, adapter_cls.from_parts(config, tok, small_qwen_processor(adapter_cls))


def tiny_qwen2_5_vl():
    return tiny_qwen2_vl("qwen2_5_vl")


@pytest.fixture(scope="module")
def qwen2_vl():
    return tiny_qwen2_vl()


def test_qwen2_vl_registry_and_published_defaults(qwen2_vl):
    from transformers import Qwen2_5_VLConfig

    model, _ = qwen2_vl
    assert adapter_for(model.config) is Qwen2VLAdapter
    assert adapter_for(Qwen2_5_VLConfig()) is Qwen2_5_VLAdapter
    processor = Qwen2VLAdapter.default_image_processor(model.config)
    assert (processor.patch_size, processor.merge_size) == (14, 2)
    assert processor.size["longest_edge"] == 28 * 28 * 1280
    assert Qwen2_5_VLAdapter.default_image_processor(model.config).size["longest_edge"] == 12845056


def test_qwen2_vl_strip_grid_covers_image_and_panels_partition(qwen2_vl):
    model, adapter = qwen2_vl
    prepared = adapter.build_inputs(
        strip_image(336, 60), ["describe the third panel .", "what is in the sixth panel ?"]
    )
    grid = prepared.grids[0]
    # smart_resize(60, 336, factor 28) -> 56 x 336 -> 2 x 12 merged tokens, stretched over the image
    assert (grid.rows, grid.cols) == (2, 12)
    assert prepared.info["vision"]["grid_thw"] == (1, 4, 24)
    assert_grid_covers_image(grid, 336, 60)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[:1], model.config.image_token_id)
    assert np.array_equal(np.diff(grid.positions), np.ones(grid.n_tokens - 1))
    assert ids[0, grid.positions[0] - 1] == model.config.vision_start_token_id
    assert ids[0, grid.positions[-1] + 1] == model.config.vision_end_token_id
    assert torch.equal(
        prepared.tensors["mm_token_type_ids"].long(), (ids == model.config.image_token_id).long()
    )


def test_qwen2_5_vl_parity_capture_and_steering():
    model, adapter = tiny_qwen2_vl("qwen2_5_vl")
    prepared = padded_batch(adapter, 336, 60)
    assert (prepared.grid.rows, prepared.grid.cols) == (2, 12)
    assert_panels_partition(prepared.grid, 6)
    check_parity_and_steering(model, adapter, prepared)


def test_qwen2_vl_published_preprocessing_on_a_real_size_strip(qwen2_vl):
    """Qwen2-VL's default pixel budget on a 6-panel 1566 x 256 strip: 252 x 1568 px, 9 x 56 tokens."""
    model, adapter = qwen2_vl
    published = Qwen2VLAdapter.from_parts(model.config, adapter.tokenizer)
    prepared = published.build_inputs(strip_image(1566, 256), "describe the panels .")
    assert (prepared.grid.rows, prepared.grid.cols) == (9, 56)
    assert_grid_covers_image(prepared.grid, 1566, 256)
    assert_panels_partition(prepared.grid, 6)

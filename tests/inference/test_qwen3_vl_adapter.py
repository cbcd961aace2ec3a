"""Qwen3-VL family: inputs for a 6-panel strip, the token -> pixel map, panels, batching, and
logits under the registered attention function vs stock SDPA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaze_explorer.core.errors import InvalidImageError, PromptError, UnsupportedFamilyError
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter
from gaze_explorer.inference.attention import ForwardRequest, attention_control

PROMPT = "what is happening in the third panel ?"


def test_registry_finds_qwen3_vl_and_rejects_unknown(tiny_qwen):
    assert adapter_for(tiny_qwen.model.config) is Qwen3VLAdapter

    class FakeConfig:
        model_type = "bert"
        architectures = ("BertModel",)

    with pytest.raises(UnsupportedFamilyError, match="bert"):
        adapter_for(FakeConfig())


def test_grid_covers_the_image_and_panels_partition_tokens(tiny_qwen, strip_image):
    prepared = tiny_qwen.adapter.build_inputs(strip_image, PROMPT)
    grid = prepared.grid
    w, h = strip_image.size
    assert (grid.image_width, grid.image_height) == (w, h)
    b = grid.token_boxes
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert b[:, 0].min() == 0 and b[:, 1].min() == 0 and b[:, 2].max() == w and b[:, 3].max() == h
    area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sum()
    assert area == pytest.approx(w * h)
    # the processor's grid: resized sides / (patch 16 * merge 2)
    _, gh, gw = prepared.tensors["image_grid_thw"][0].tolist()
    assert (grid.rows, grid.cols) == (gh // 2, gw // 2)
    ids = prepared.tensors["input_ids"][0]
    image_id = tiny_qwen.model.config.image_token_id
    assert torch.all(ids[torch.as_tensor(grid.positions)] == image_id)
    assert int((ids == image_id).sum()) == grid.n_tokens
    assert torch.equal(prepared.tensors["mm_token_type_ids"][0].bool(), ids == image_id)
    regions = panel_regions(grid, 6)
    seen = np.concatenate([r.token_indices for r in regions])
    assert all(r.token_indices.size > 0 for r in regions)
    assert np.array_equal(np.sort(seen), np.arange(grid.n_tokens))


def test_logits_match_stock_sdpa_within_1e5(tiny_qwen, strip_image):
    model, adapter = tiny_qwen.model, tiny_qwen.adapter
    prepared = tiny_qwen.prepare(strip_image, [PROMPT, "a man runs ."])
    with torch.inference_mode():
        stock = model(**adapter.prefill_kwargs(model, prepared)).logits
        with attention_control(tiny_qwen) as ctl:
            assert model.config.text_config._attn_implementation == "gaze_explorer"
            assert model.config.vision_config._attn_implementation == "sdpa"  # vision untouched
            ctl.set_request(ForwardRequest())
            ours = model(**adapter.prefill_kwargs(model, prepared)).logits
            ctl.set_request(ForwardRequest(capture_rows="all"))  # the explicit path, every row
            explicit = model(**adapter.prefill_kwargs(model, prepared)).logits
        assert ctl.calls == 2 * tiny_qwen.n_layers  # every text layer went through it
    assert model.config.text_config._attn_implementation == "sdpa"
    real = prepared.tensors["attention_mask"].bool()
    assert torch.allclose(ours, stock, atol=1e-5)
    assert torch.allclose(explicit[real], stock[real], atol=1e-5)


def test_left_padded_batch_row_equals_single_prompt(tiny_qwen, strip_image):
    model, adapter = tiny_qwen.model, tiny_qwen.adapter
    batch = tiny_qwen.prepare(strip_image, ["a man runs .", PROMPT])
    single = tiny_qwen.prepare(strip_image, "a man runs .")
    pad = batch.prompt_len - single.prompt_len
    assert pad > 0 and batch.tensors["attention_mask"][0, :pad].sum() == 0
    assert np.array_equal(batch.grids[0].positions, single.grid.positions + pad)
    with torch.inference_mode():
        lb = model(**adapter.prefill_kwargs(model, batch)).logits[0, -1]
        ls = model(**adapter.prefill_kwargs(model, single)).logits[0, -1]
    assert torch.allclose(lb, ls, atol=1e-4)


def test_bad_images_and_prompts_raise_clear_errors(tiny_qwen, strip_image):
    with pytest.raises(InvalidImageError, match="PIL image"):
        tiny_qwen.adapter.build_inputs(np.zeros((8, 8, 3)), PROMPT)
    with pytest.raises(InvalidImageError, match="PIL image"):
        tiny_qwen.adapter.build_inputs("panel.png", PROMPT)
    with pytest.raises(PromptError, match="empty"):
        tiny_qwen.adapter.build_inputs(strip_image, "   ")
    with pytest.raises(PromptError, match="exactly one image"):
        tiny_qwen.adapter.build_inputs(strip_image, "look <|image_pad|> here")


def test_token_strings_and_decode(tiny_qwen):
    tok = tiny_qwen.adapter.tokenizer
    ids = tok("a man runs .", add_special_tokens=False)["input_ids"]
    assert tiny_qwen.adapter.token_strings(ids) == ["a", "man", "runs", "."]
    assert tiny_qwen.adapter.decode([*ids, tok.eos_token_id]) == "a man runs ."
    assert tok.eos_token_id in tiny_qwen.adapter.eos_token_ids

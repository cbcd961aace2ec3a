"""Idefics3 and SmolVLM adapters on tiny random-initialised models (built offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_parity_and_steering,
    padded_batch,
    strip_image,
    word_tokenizer,
)

from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.idefics3 import Idefics3Adapter, SmolVLMAdapter, tiled_grid_index

ROW_COL = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
SPECIALS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", *ROW_COL]
TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}{{ m['role'] | capitalize }}:"
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<image>"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}<end_of_utterance>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}"
)


def tiny_idefics3(family: str = "idefics3"):
    """56 px tiles of 8 x 8 patches, pixel shuffle 2 -> 4 x 4 = 16 LM tokens per view."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
    )

    tok = word_tokenizer(
        SPECIALS,
        pad="<pad>",
        eos="</s>",
        bos="<s>",
        chat_template=TEMPLATE,
        extra_words=["Assistant", "User"],
    )
    config_cls, model_cls, adapter_cls = {
        "idefics3": (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Adapter),
        "smolvlm": (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMAdapter),
    }[family]
    config = config_cls(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=56,
            patch_size=7,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    return model_cls(config).eval(), adapter_cls.from_parts(config, tok)


def tiny_smolvlm():
    return tiny_idefics3("smolvlm")


@pytest.fixture(scope="module")
def idefics3():
    return tiny_idefics3()


def test_tiled_grid_index_stitches_tiles_row_major():
    # 1 x 2 tiles of 2 x 2 tokens: sequence order is tile 0 (0,1,2,3) then tile 1 (4,5,6,7)
    assert tiled_grid_index(1, 2, 2).tolist() == [0, 1, 4, 5, 2, 3, 6, 7]
    idx = tiled_grid_index(2, 3, 4)
    assert np.array_equal(np.sort(idx), np.arange(2 * 3 * 16))


def test_idefics3_registry_finds_adapters(idefics3):
    assert adapter_for(idefics3[0].config) is Idefics3Adapter
    from transformers import SmolVLMConfig

    assert adapter_for(SmolVLMConfig()) is SmolVLMAdapter


def test_idefics3_strip_tiles_form_the_grid(idefics3):
    model, adapter = idefics3
    prepared = padded_batch(adapter, 300, 60)
    info = prepared.info["vision"]
    # 300 x 60 -> 224 x 44 -> stretched to 224 x 56: 1 x 4 tiles of 4 x 4 tokens + a global view
    assert info["tiles"] == [1, 4]
    grid = prepared.grids[0]
    assert (grid.rows, grid.cols) == (4, 16)
    assert_grid_covers_image(grid, 300, 60)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[:1], model.config.image_token_id)
    all_image = torch.nonzero(ids[0] == model.config.image_token_id).flatten().numpy()
    assert all_image.size == 5 * 16
    # grid row 0 = first row of tiles 0..3, so it jumps from tile to tile in the sequence
    assert np.array_equal(grid.positions[:8], all_image[[0, 1, 2, 3, 16, 17, 18, 19]])
    # the tile tokens are preceded by their <row_1_col_j> tag; the global view comes last
    tile2_first = all_image[32]
    assert adapter.tokenizer.convert_ids_to_tokens(int(ids[0, tile2_first - 1])) == "<row_1_col_3>"
    assert np.array_equal(info["global_positions"][0], all_image[64:])
    assert not set(info["global_positions"][0]) & set(grid.positions)
    assert np.array_equal(info["non_grid_positions"][0], all_image[64:])
    pad = int((prepared.tensors["attention_mask"][0] == 0).sum())
    assert np.array_equal(grid.positions, prepared.grids[1].positions + pad)


def test_idefics3_small_image_is_one_global_view(idefics3):
    model, adapter = idefics3
    # with splitting on, the processor first upscales the long side to 4 tiles; off, one view
    single = Idefics3Adapter.from_parts(
        model.config,
        adapter.tokenizer,
        adapter.image_processor_class()(
            size={"longest_edge": 224}, max_image_size={"longest_edge": 56}, do_image_splitting=False
        ),
    )
    prepared = single.build_inputs(strip_image(50, 40, n_panels=1), "describe the image .")
    assert prepared.info["vision"]["tiles"] == [0, 0]
    assert (prepared.grid.rows, prepared.grid.cols) == (4, 4)
    assert_grid_covers_image(prepared.grid, 50, 40)
    assert "global_positions" not in prepared.info["vision"]
    assert prepared.info["vision"]["non_grid_positions"][0].size == 0


def test_smolvlm_parity_capture_and_steering():
    model, adapter = tiny_idefics3("smolvlm")
    prepared = adapter.build_inputs(strip_image(300, 60), "describe the third panel .")
    assert_panels_partition(prepared.grid, 6)
    check_parity_and_steering(model, adapter, prepared)


def test_idefics3_inputs_match_the_stock_processor(idefics3):
    """Our layout (tile tags, newlines, global view) is exactly Idefics3Processor's."""
    from transformers import Idefics3Processor

    _, adapter = idefics3
    image = strip_image(300, 60)
    processor = Idefics3Processor(
        image_processor=adapter.image_processor, tokenizer=adapter.tokenizer, image_seq_len=16
    )
    text = adapter.format_prompt("describe the panel .")
    stock = processor(images=[image], text=text, return_tensors="pt", add_special_tokens=False)
    ours = adapter.build_inputs(image, "describe the panel .").tensors
    for key in ("input_ids", "pixel_values", "pixel_attention_mask"):
        assert torch.equal(stock[key], ours[key]), key


@pytest.mark.parametrize(
    ("family", "vision", "scale", "expected"),
    [
        # Idefics3-8B: 364 px tiles of 14 px patches, shuffle 2 -> 13 x 13 per tile; 1456 px long side
        ("idefics3", {"image_size": 364, "patch_size": 14}, 2, (13, 52)),
        # SmolVLM-256M: 512 px tiles of 16 px patches, shuffle 4 -> 8 x 8 per tile; 2048 px long side
        ("smolvlm", {"image_size": 512, "patch_size": 16}, 4, (8, 32)),
    ],
)
def test_idefics3_published_geometry_on_a_real_size_strip(idefics3, family, vision, scale, expected):
    from transformers import Idefics3Config, SmolVLMConfig

    model, adapter = idefics3
    config_cls, adapter_cls = (
        (Idefics3Config, Idefics3Adapter) if family == "idefics3" else (SmolVLMConfig, SmolVLMAdapter)
    )
    config = config_cls(vision_config=vision, scale_factor=scale, image_token_id=model.config.image_token_id)
    published = adapter_cls.from_parts(config, adapter.tokenizer)
    prepared = published.build_inputs(strip_image(1566, 256), "describe the panels .")
    assert prepared.info["vision"]["tiles"] == [1, 4]
    assert (prepared.grid.rows, prepared.grid.cols) == expected
    assert_grid_covers_image(prepared.grid, 1566, 256)
    assert_panels_partition(prepared.grid, 6)

"""LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision adapters on tiny random-initialised models (offline).

Input policies: LLaVA-1.5 and NeXT squash by default (the paper's setting), OneVision keeps its own
anyres (``native``); each test that checks another policy's geometry asks for it explicitly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import (
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_checkpoint_round_trip,
    check_parity,
    check_parity_and_steering,
    input_policy,
    padded_batch,
    strip_image,
    word_tokenizer,
)
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError, PromptError
from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.llava import (
    LlavaAdapter,
    LlavaNextAdapter,
    LlavaOnevisionAdapter,
    anyres_geometry,
)

TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}{{ m['role'] | upper }}: "
    "{%- for p in m['content'] -%}{%- if p['type'] == 'image' -%}<image>\n"
    "{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%} {%- endfor -%}"
    "{%- if add_generation_prompt -%} ASSISTANT:{%- endif -%}"
)
PINPOINTS = [[28, 56], [56, 28], [56, 56], [28, 84], [28, 112], [28, 168]]


def _tokenizer(template: str | None = TEMPLATE):
    tok = word_tokenizer(
        ["<image>"],
        pad="<pad>",
        eos="</s>",
        bos="<s>",
        chat_template=template or "",
        extra_words=["USER", "ASSISTANT"],
        image_token="<image>",
    )
    if template is None:
        tok.chat_template = None
    return tok


def _configs(tok, image_size: int, patch_size: int = 7):
    vision = dict(
        model_type="clip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=32,
    )
    text = dict(
        model_type="llama",
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return vision, text


def tiny_llava(
    template: str | None = TEMPLATE, strategy: str = "default", image_size: int = 56, patch_size: int = 7
):
    """LLaVA-1.5 layout: 56 px CLIP (8 x 8 patches of 7 px), CLS dropped (or kept: "full"), Llama LM."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tok = _tokenizer(template)
    vision, text = _configs(tok, image_size, patch_size)
    text["max_position_embeddings"] = max(512, 2 * (image_size // patch_size) ** 2)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy=strategy,
    )
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(config).eval(), LlavaAdapter.from_parts(config, tok)


def tiny_llava_next(tile: int = 28):
    """LLaVA-NeXT layout: ``tile`` px CLIP tiles of 7 px patches (28 px: 4 x 4 features), wide
    pinpoints for a strip (``PINPOINTS`` scaled to the tile).

    Under the default ``squash`` policy a strip becomes one square whose unpadded high-res view is
    ``tile / 7`` features wide: 4 columns with 28 px tiles, too few for 6 panels; ``tile=56``
    gives 8 (the published 336 px tiles give 24, 4 per panel, as in the paper)."""
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

    tok = _tokenizer()
    vision, text = _configs(tok, tile)
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=[[side * tile // 28 for side in p] for p in PINPOINTS],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    return LlavaNextForConditionalGeneration(config).eval(), LlavaNextAdapter.from_parts(config, tok)


@pytest.fixture(scope="module")
def llava():
    return tiny_llava()


@pytest.fixture(scope="module")
def llava_next():
    return tiny_llava_next()


def test_llava_registry_finds_adapters(llava, llava_next):
    assert adapter_for(llava[0].config) is LlavaAdapter
    assert adapter_for(llava_next[0].config) is LlavaNextAdapter


def test_llava_padded_strip_grid_is_the_band_that_holds_the_image(llava):
    model, adapter = llava
    with input_policy(adapter, "pad"):
        prepared = adapter.build_inputs(strip_image(336, 56), "describe the third panel .")
    grid = prepared.grid
    # 336 x 56 padded to 336 x 336: of the 8 x 8 cells only the middle rows hold pixels (140..196)
    assert (grid.rows, grid.cols) == (2, 8)
    assert_grid_covers_image(grid, 336, 56)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids, model.config.image_token_id)
    all_image = torch.nonzero(ids[0] == model.config.image_token_id).flatten().numpy()
    assert all_image.size == 64  # every CLIP cell is still in the sequence
    assert np.array_equal(grid.positions, all_image[np.r_[24:32, 32:40]])
    # the 48 all-padding cells are image tokens outside the grid, listed for steering
    assert np.array_equal(prepared.info["vision"]["non_grid_positions"][0], all_image[np.r_[0:24, 40:64]])
    # the straddling rows are clipped to the image: 140..168 -> 0..28, 168..196 -> 28..56
    assert np.allclose(np.unique(grid.token_boxes[:, [1, 3]]), [0.0, 28.0, 56.0])


def test_llava_tall_image_keeps_a_band_of_columns(llava):
    with input_policy(llava[1], "pad") as adapter:
        grid = adapter.build_inputs(strip_image(50, 300, n_panels=1), "describe the image .").grid
    assert grid.rows == 8 and grid.cols < 8
    assert_grid_covers_image(grid, 50, 300)


def test_llava_without_chat_template_uses_llava_layout():
    _, adapter = tiny_llava(template=None)
    prepared = adapter.build_inputs(strip_image(336, 56), "describe the panel .")
    text = adapter.tokenizer.decode(prepared.tensors["input_ids"][0], skip_special_tokens=False)
    assert text.startswith("<s>USER :") or text.startswith("<s> USER :")
    assert text.rstrip().endswith("ASSISTANT :")
    with pytest.raises(PromptError, match="image"):
        adapter.build_inputs(strip_image(336, 56), "describe <image> twice")


def test_llava_next_geometry_unpads_the_strip():
    # 300 x 60 goes into the 28 x 168 pinpoint (1 x 6 tiles): resized to 140 x 28, pasted at x=14;
    # features 4 x 24, of which 2 columns each side are padding
    geo = anyres_geometry(300, 60, crop=28, f=4, pinpoints=PINPOINTS)
    assert geo["best_resolution"] == [28, 168]
    assert (geo["rows"], geo["cols"]) == (4, 20)
    assert np.allclose(geo["boxes"][0], [0.0, 0.0, 15.0, 15.0])
    assert np.allclose(geo["boxes"][-1], [285.0, 45.0, 300.0, 60.0])


def test_llava_next_grid_skips_base_view_and_newlines(llava_next):
    """Native anyres: a base view, then the unpadded high-res rows, each followed by a newline."""
    model, adapter = llava_next
    with input_policy(adapter, "native"):
        prepared = padded_batch(adapter, 300, 60)
    assert prepared.info["vision"]["input_policy"] == "native"
    grid = prepared.grids[1]
    assert (grid.rows, grid.cols) == (4, 20)
    assert_grid_covers_image(grid, 300, 60)
    assert_panels_partition(grid, 6)
    ids = prepared.tensors["input_ids"]
    assert_positions_hold_image_tokens(grid, ids[1:], model.config.image_token_id)
    all_image = torch.nonzero(ids[1] == model.config.image_token_id).flatten().numpy()
    assert all_image.size == 16 + 4 * 21  # base view, then 4 rows of 20 features + a newline each
    newline = set(all_image[16 + np.arange(4) * 21 + 20])
    base = set(all_image[:16])
    assert not (set(grid.positions) & (newline | base))
    assert set(grid.positions) | newline | base == set(all_image)
    assert set(prepared.info["vision"]["non_grid_positions"][1]) == newline | base
    globals_ = prepared.info["vision"]["global_positions"]
    assert np.array_equal(globals_[1], all_image[:16])
    pad = int((prepared.tensors["attention_mask"][0] == 0).sum())
    assert np.array_equal(prepared.grids[0].positions, grid.positions + pad)


def test_llava_inputs_match_the_stock_processors(llava, llava_next):
    """Our layouts equal LlavaProcessor's (with pad-to-square) and LlavaNextProcessor's (anyres: the
    native policy; the squash policy gives the stock processor the squashed image)."""
    from transformers import LlavaNextProcessor, LlavaProcessor

    image = strip_image(300, 60)
    squashed = image.resize((28, 28), Image.Resampling.BICUBIC)
    for adapter, policy, stock_image, processor_cls, extra in (
        (llava[1], "pad", image, LlavaProcessor, {"do_pad": True}),
        (llava_next[1], "native", image, LlavaNextProcessor, {}),
        (llava_next[1], "squash", squashed, LlavaNextProcessor, {}),
    ):
        processor = processor_cls(
            image_processor=adapter.image_processor,
            tokenizer=adapter.tokenizer,
            patch_size=7,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
        )
        text = adapter.format_prompt("describe the panel .")
        stock = processor(
            images=stock_image, text=text, return_tensors="pt", add_special_tokens=False, **extra
        )
        with input_policy(adapter, policy):
            ours = adapter.build_inputs(image, "describe the panel .").tensors
        for key in ("input_ids", "pixel_values", *(["image_sizes"] if extra == {} else [])):
            assert torch.equal(stock[key], ours[key]), (processor_cls.__name__, policy, key)


def tiny_llava_onevision():
    """LLaVA-OneVision layout: 28 px SigLIP tiles (4 x 4, no CLS), Qwen2 LM, anyres_max_2."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    tok = _tokenizer()
    _, text = _configs(tok, 28)
    text["model_type"] = "qwen2"
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=7,
        vision_use_head=False,
    )
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=PINPOINTS,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_2",
    )
    torch.manual_seed(0)
    return LlavaOnevisionForConditionalGeneration(config).eval(), LlavaOnevisionAdapter.from_parts(
        config, tok
    )


@pytest.fixture(scope="module")
def llava_onevision():
    return tiny_llava_onevision()


def test_llava_onevision_geometry_shrinks_large_grids():
    # 4 x 20 unpadded features hold 5 tiles' worth; anyres_max_2 shrinks by sqrt(80 / 32)
    geo = anyres_geometry(300, 60, crop=28, f=4, pinpoints=PINPOINTS, max_patches=2)
    assert (geo["rows"], geo["cols"]) == (2, 12)
    assert np.allclose(geo["boxes"][0], [0.0, 0.0, 25.0, 30.0])
    assert anyres_geometry(300, 60, crop=28, f=4, pinpoints=PINPOINTS, max_patches=9)["cols"] == 20


def test_llava_onevision_grid_parity_and_steering(llava_onevision):
    model, adapter = llava_onevision
    assert adapter_for(model.config) is LlavaOnevisionAdapter
    prepared = padded_batch(adapter, 300, 60)
    grid = prepared.grids[1]
    assert (grid.rows, grid.cols) == (2, 12)
    assert_grid_covers_image(grid, 300, 60)
    assert_panels_partition(grid, 6)
    all_image = (
        torch.nonzero(prepared.tensors["input_ids"][1] == model.config.image_token_id).flatten().numpy()
    )
    assert all_image.size == 16 + 2 * 13  # base view (no CLS), then 2 rows of 12 + a newline each
    assert_positions_hold_image_tokens(grid, prepared.tensors["input_ids"][1:], model.config.image_token_id)
    check_parity_and_steering(model, adapter, prepared)


def test_llava_onevision_token_count_matches_the_stock_processor(llava_onevision):
    """Same count as LlavaOnevisionProcessor's formula (its constructor needs the torchvision-backed
    video processor, so only its counting method is used here)."""
    from transformers import LlavaOnevisionProcessor

    model, adapter = llava_onevision
    stock = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)
    stock.image_processor, stock.num_image_tokens, stock.vision_aspect_ratio = (
        adapter.image_processor,
        16,
        "anyres_max_2",
    )
    for width, height in ((300, 60), (60, 300), (200, 90)):
        prepared = adapter.build_inputs(strip_image(width, height, n_panels=1), "describe .")
        # NeXT/OneVision unpad in feature space with int(round(...)): a partly-filled edge
        # column can be dropped, leaving a sliver (< 1 cell) seen only by the base view
        assert_grid_covers_image(prepared.grid, width, height, margin=1.0)
        ids = prepared.tensors["input_ids"]
        n_ours = int((ids == model.config.image_token_id).sum())
        assert n_ours == stock._get_number_of_features(height, width, 28, 28), (width, height)


@pytest.mark.parametrize(
    ("adapter_cls", "policy", "used", "expected"),
    [
        # 336 px CLIP, squashed (the default): all 24 x 24 cells hold the strip, 4 columns a panel
        (LlavaAdapter, None, "squash", (24, 24)),
        # squashed (the default, as the paper ran NeXT): the 336 x 336 square goes into the 336 x 672
        # pinpoint (2 tiles, 24 x 48 features) and unpads to 24 x 24, 4 columns a panel
        (LlavaNextAdapter, None, "squash", (24, 24)),
        # native anyres: 336 x 1008 pinpoint, 3 tiles of 24 x 24 features; 11.8 rows of image ->
        # unpad keeps 12
        (LlavaNextAdapter, "native", "native", (12, 72)),
        # native (OneVision's default): 384 x 1920 pinpoint (wastes less than 2304), 5 SigLIP tiles
        # of 27 x 27; 22 rows + 1 kept
        (LlavaOnevisionAdapter, None, "native", (23, 135)),
    ],
)
def test_llava_published_geometry_on_a_real_size_strip(llava, adapter_cls, policy, used, expected):
    """The published configs' geometry (transformers' defaults are the released checkpoints'), under
    each family's default input policy (``policy`` None) or the one named."""
    from transformers import LlavaConfig, LlavaNextConfig, LlavaOnevisionConfig

    from gaze_explorer.core.regions import panel_regions

    config_cls = {
        LlavaAdapter: LlavaConfig,
        LlavaNextAdapter: LlavaNextConfig,
        LlavaOnevisionAdapter: LlavaOnevisionConfig,
    }[adapter_cls]
    _, adapter = llava
    config = config_cls(image_token_index=adapter.image_token_id)
    published = adapter_cls.from_parts(config, adapter.tokenizer)
    published.set_input_policy(policy)
    prepared = published.build_inputs(strip_image(1566, 256), "describe the panels .")
    assert prepared.info["vision"]["input_policy"] == used
    assert (prepared.grid.rows, prepared.grid.cols) == expected
    assert_grid_covers_image(prepared.grid, 1566, 256, margin=1.0)
    assert_panels_partition(prepared.grid, 6)
    if used == "squash":  # the paper's "24 columns -> 4 per panel"
        columns = [np.unique(r.token_indices % 24).size for r in panel_regions(prepared.grid, 6)]
        assert columns == [4] * 6


def test_llava_checkpoint_without_tokenizer_template_round_trip(tmp_path):
    """Many llava-hf checkpoints keep the chat template in the processor only: the saved tokenizer
    has none, and the adapter falls back to LLaVA's own layout after loading."""
    model, adapter = tiny_llava(template=None)
    check_checkpoint_round_trip(model, adapter, tmp_path, strip_image(336, 56))


def test_llava_full_strategy_keeps_cls_outside_the_grid():
    model, adapter = tiny_llava(strategy="full")
    adapter.set_input_policy("pad")
    prepared = padded_batch(adapter, 336, 56)
    ids = prepared.tensors["input_ids"]
    all_image = torch.nonzero(ids[0] == model.config.image_token_id).flatten().numpy()
    assert all_image.size == 1 + 64  # CLS, then the 8 x 8 patch grid
    assert np.array_equal(prepared.info["vision"]["global_positions"][0], all_image[:1])
    assert np.array_equal(prepared.grid.positions, all_image[1 + np.r_[24:40]])
    check_parity_and_steering(model, adapter, prepared)


def test_llava_next_extreme_aspect_falls_back_to_the_base_view(llava_next):
    """3000 x 20 px: unpadding leaves no high-res feature, so the base view is the grid."""
    from transformers import LlavaNextProcessor

    model, adapter = llava_next
    image = strip_image(3000, 20)
    with input_policy(adapter, "native"):
        prepared = adapter.build_inputs(image, "describe the panel .")
    assert prepared.info["vision"]["input_policy"] == "native"
    assert (prepared.grid.rows, prepared.grid.cols) == (4, 4)
    assert_grid_covers_image(prepared.grid, 3000, 20)
    assert_panels_partition(prepared.grid, 4)
    stock = LlavaNextProcessor(
        image_processor=adapter.image_processor,
        tokenizer=adapter.tokenizer,
        patch_size=7,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    expected = stock(
        images=image,
        text=adapter.format_prompt("describe the panel ."),
        return_tensors="pt",
        add_special_tokens=False,
    )["input_ids"]
    assert torch.equal(expected, prepared.tensors["input_ids"])
    check_parity(model, adapter, prepared)


def test_llava_input_policies_squash_pad_and_crop(llava):
    """squash (default): the whole strip on all 8 x 8 cells; pad: a band of rows, all the image;
    native (CLIP's centre crop): the middle 56 px of a 336 px strip, coverage 1/6, which is reported."""
    _, adapter = llava
    image = strip_image(336, 56)
    assert adapter.input_policy == "squash"
    squashed = adapter.build_inputs(image, "describe the panel .")
    assert (squashed.grid.rows, squashed.grid.cols) == (8, 8)
    assert_grid_covers_image(squashed.grid, 336, 56)
    assert squashed.info["vision"]["input_policy"] == "squash" and squashed.info["vision"]["coverage"] == 1.0
    with input_policy(adapter, "pad"):
        padded = adapter.build_inputs(image, "describe the panel .")
    assert (padded.grid.rows, padded.grid.cols) == (2, 8) and padded.info["vision"]["coverage"] == 1.0
    with input_policy(adapter, "native"):
        cropped = adapter.build_inputs(image, "describe the panel .")
    assert (cropped.grid.rows, cropped.grid.cols) == (8, 8)
    assert np.isclose(cropped.info["vision"]["coverage"], 1 / 6, atol=0.01)
    assert np.allclose(cropped.grid.token_boxes[:, [0, 2]].min(), 140) and np.allclose(
        cropped.grid.token_boxes[:, [0, 2]].max(), 196
    )
    with pytest.raises(ModelLoadError, match="no input policy 'tiles'"):
        adapter.set_input_policy("tiles")


@pytest.mark.parametrize("policy", ["squash", "pad", "native"])
def test_llava_policies_match_the_measured_geometry(llava, policy):
    """Each policy's token boxes against the ground truth measured on the model (geometry_truth)."""
    from geometry_truth import GeometryOracle, noise_image

    model, adapter = llava
    with input_policy(adapter, policy):
        oracle = GeometryOracle(model, adapter)
        for width, height in ((168, 56), (60, 150)):
            comparison = oracle.measure_boxes(noise_image(width, height))
            assert comparison.max_error_px <= comparison.tolerance_px, (
                policy,
                width,
                height,
                comparison.worst(),
            )


def test_llava_padded_portrait_panels_follow_the_measured_column_widths():
    """Issue 19's case: a 360 x 1000 portrait on a 336 px / 14 px CLIP (24 x 24 cells of 41.7 px
    after padding to 1000 x 1000), the first and last columns clipped to 13.3 px. The columns'
    edges measured on the model (x only, 2 px stripes) give each panel the columns holding most of
    its pixels: 56% for three equal panels, 84% for widths 1:2:1."""
    from geometry_truth import GeometryOracle, noise_image

    from gaze_explorer.core.regions import panel_edges, panel_regions, panel_shares

    model, adapter = tiny_llava(image_size=336, patch_size=14)
    adapter.set_input_policy("pad")
    image = noise_image(360, 1000)
    comparison = GeometryOracle(model, adapter).measure_boxes(image, stripe_px=2, axes=(0,))
    assert comparison.max_error_px <= comparison.tolerance_px, comparison.worst()
    grid = adapter.build_inputs(image, "describe the image .").grid
    assert grid.cols == 10 and np.isclose(comparison.measured[0, 2], 40 / 3, atol=comparison.tolerance_px)
    measured = type(grid)(360, 1000, grid.rows, grid.cols, comparison.measured, grid.positions)
    for widths, share, expected in (
        ([1, 1, 1], 0.56, [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9]]),
        ([1, 2, 1], 0.84, [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]),
    ):
        columns = [np.unique(r.token_indices % 10).tolist() for r in panel_regions(grid, 3, widths)]
        assert columns == expected
        truth = panel_shares(measured, panel_edges(360, 3, widths))[:10]  # [column, panel], row 0
        owner = [next(k for k, c in enumerate(columns) if col in c) for col in range(10)]
        assert truth.argmax(axis=1).tolist() == owner
        straddler = expected[0][-1]  # the last column of panel 1 straddles panels 1 and 2
        assert abs(truth[straddler, 0] - share) <= 0.04


def test_llava_next_squashes_by_default_and_native_stays_available(llava_next):
    """Squash is NeXT's default (the paper's setting): the strip is one square, cut into the square's
    best pinpoint (28 x 56: 4 x 8 features, unpadded to 4 x 4), boxes scaled back to the strip and
    checked against the geometry measured on the model. ``native`` (transformers' anyres) keeps the
    strip's aspect: the 28 x 112 pinpoint, 4 x 16 features over the strip."""
    from geometry_truth import GeometryOracle, noise_image

    model, adapter = llava_next
    image = noise_image(168, 42)
    prepared = adapter.build_inputs(image, "describe the image .")
    assert (prepared.grid.rows, prepared.grid.cols) == (4, 4)  # a square view of the squashed strip
    assert prepared.info["vision"]["input_policy"] == "squash" and prepared.info["vision"]["coverage"] == 1.0
    assert prepared.info["vision"]["best_resolution"] == [28, 56]
    comparison = GeometryOracle(model, adapter).measure_boxes(image)
    assert comparison.max_error_px <= comparison.tolerance_px, comparison.worst()
    with input_policy(adapter, "native"):
        native = adapter.build_inputs(image, "describe the image .")
    assert native.info["vision"]["input_policy"] == "native" and native.info["vision"]["coverage"] == 1.0
    assert native.info["vision"]["best_resolution"] == [28, 112]
    assert (native.grid.rows, native.grid.cols) == (4, 16)


def test_llava_next_squash_gives_every_panel_of_a_strip_columns():
    """With 56 px tiles (8 x 8 features, the family checks' NeXT model) a squashed 6-panel strip
    spans 8 columns, and every panel gets its own; 28 px tiles (4 columns) cannot hold 6 panels."""
    from gaze_explorer.core.errors import RegionError
    from gaze_explorer.core.regions import panel_regions

    model, adapter = tiny_llava_next(tile=56)
    assert adapter.input_policy == "squash"
    prepared = padded_batch(adapter, 300, 60)
    grid = prepared.grids[1]  # the unpadded row
    assert (grid.rows, grid.cols) == (8, 8)
    assert_grid_covers_image(grid, 300, 60)
    assert_panels_partition(grid, 6)
    assert_positions_hold_image_tokens(grid, prepared.tensors["input_ids"][1:], model.config.image_token_id)
    _, coarse = tiny_llava_next()
    with pytest.raises(RegionError, match="6 panels cannot fit"):
        panel_regions(coarse.build_inputs(strip_image(300, 60), "describe .").grid, 6)


def test_generate_warns_when_the_input_policy_crops_the_image(tmp_path, capsys):
    """``generate --input-policy native`` on a LLaVA-1.5 checkpoint: CLIP's centre crop keeps 1/6 of
    a 336 x 56 strip, and the command says so (the default, squash, keeps it all and says nothing)."""
    from gaze_explorer.cli import main

    model, adapter = tiny_llava()
    model.save_pretrained(tmp_path / "ckpt")
    adapter.tokenizer.save_pretrained(tmp_path / "ckpt")
    adapter.image_processor.save_pretrained(tmp_path / "ckpt")
    strip_image(336, 56).save(tmp_path / "strip.png")
    argv = [
        "generate",
        "--model",
        str(tmp_path / "ckpt"),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--image",
        str(tmp_path / "strip.png"),
        "--prompt",
        "describe the panel .",
        "--max-new-tokens",
        "1",
    ]
    assert main([*argv, "--input-policy", "native"]) == 0
    err = capsys.readouterr().err
    assert "input policy 'native' lets only 17% of the image reach the model" in err
    assert main(argv) == 0
    assert "lets only" not in capsys.readouterr().err

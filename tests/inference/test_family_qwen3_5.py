"""Qwen3.5 (dense and MoE) and Qwen3-VL-MoE adapters on tiny random-initialised models (offline).

Qwen3.5's language model mixes linear-attention layers (gated delta net) with softmax-attention
layers; the tiny model alternates them (``linear, full, linear, full``) so that the softmax
layers' TRUE indices (1 and 3) differ from their rank among the attention layers (0 and 1).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from family_helpers import (
    WORDS,
    assert_grid_covers_image,
    assert_panels_partition,
    assert_positions_hold_image_tokens,
    check_decode_steering,
    check_image_embeddings_distinct,
    check_parity,
    padded_batch,
    strip_image,
)

from gaze_explorer.cli.helpers import scores_from_ranking
from gaze_explorer.core.criteria import criteria_report, criterion_scores
from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import HeadSet, choose_heads, random_control, top_k_heads
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.steering import SteeringPlan
from gaze_explorer.inference import word_tokenizer as wt
from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.qwen3_5 import Qwen3_5Adapter, Qwen3_5MoeAdapter
from gaze_explorer.inference.adapters.qwen3_vl_moe import Qwen3VLMoeAdapter
from gaze_explorer.inference.attention import attention_control
from gaze_explorer.inference.discovery import DiscoveryResult, discover
from gaze_explorer.inference.generation import generate_stream
from gaze_explorer.inference.loading import loaded_from_parts

HYBRID_LAYERS = ["linear_attention", "full_attention", "linear_attention", "full_attention"]
FAMILIES = ("qwen3_5", "qwen3_5_moe", "qwen3_vl_moe")


def qwen_bpe_tokenizer():
    """A tiny byte-level BPE ``Qwen3_5Tokenizer`` (Qwen's special tokens and chat template).

    ``AutoTokenizer`` rebuilds any ``qwen3_5`` checkpoint's tokenizer as a byte-level BPE, so the
    word-level test tokenizer would not survive a save/load round trip; this one does. Merges
    spell out the test words, so prompts stay short."""
    from tokenizers import pre_tokenizers
    from transformers.models.qwen3_5.tokenization_qwen3_5 import Qwen3_5Tokenizer

    vocab = {s: i for i, s in enumerate([*wt.SPECIAL_TOKENS, *sorted(pre_tokenizers.ByteLevel.alphabet())])}
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys([*WORDS, *wt.ROLE_WORDS, "st", "nd", "rd", "th"]):  # ordinals: one token
        for piece in (word, "\u0120" + word):  # "\u0120": byte-level BPE's leading space
            merged = piece[0]
            for ch in piece[1:]:
                if (merged, ch) not in merges:
                    merges.append((merged, ch))
                vocab.setdefault(merged + ch, len(vocab))
                merged += ch
    tok = Qwen3_5Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=wt.UNK_TOKEN,
        eos_token=wt.IM_END,
        pad_token=wt.PAD_TOKEN,
        extra_special_tokens={"image_token": wt.IMAGE_PAD, "video_token": wt.VIDEO_PAD},
    )
    tok.add_special_tokens({"additional_special_tokens": list(wt.SPECIAL_TOKENS)})
    tok.padding_side = "left"
    tok.chat_template = wt.CHAT_TEMPLATE
    return tok


def tiny_qwen(family: str):
    """A 4-layer LM (4 query heads, 2 KV heads; Qwen3.5: linear layers 0 and 2), 1-block vision
    tower with 16 px patches merged 2x2, and a small pixel budget (a 384 x 64 strip = 12 x 2 tokens)."""
    import transformers as tf

    tok = qwen_bpe_tokenizer()
    ids = {
        t: tok.convert_tokens_to_ids(t)
        for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    }
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 1, 1],
            "mrope_interleaved": True,
        },
    )
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=32,
        num_position_embeddings=64,
    )
    if family.startswith("qwen3_5"):
        text.update(
            layer_types=HYBRID_LAYERS,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            linear_key_head_dim=8,
            linear_value_head_dim=8,
        )
        text["rope_parameters"]["partial_rotary_factor"] = 0.5
    if family == "qwen3_5":
        config_cls, model_cls, adapter_cls = (
            tf.Qwen3_5Config,
            tf.Qwen3_5ForConditionalGeneration,
            Qwen3_5Adapter,
        )
        text.update(intermediate_size=64)
    elif family == "qwen3_5_moe":
        config_cls, model_cls = tf.Qwen3_5MoeConfig, tf.Qwen3_5MoeForConditionalGeneration
        adapter_cls = Qwen3_5MoeAdapter
        text.update(
            moe_intermediate_size=16, shared_expert_intermediate_size=16, num_experts=4, num_experts_per_tok=2
        )
    else:
        config_cls, model_cls = tf.Qwen3VLMoeConfig, tf.Qwen3VLMoeForConditionalGeneration
        adapter_cls = Qwen3VLMoeAdapter
        text.update(intermediate_size=64, moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2)
        vision.update(deepstack_visual_indexes=[0])
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
    processor = adapter_cls.image_processor_class()(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
        size={"shortest_edge": 32 * 32, "longest_edge": 32 * 32 * 32},
    )
    return model, adapter_cls.from_parts(config, tok, processor)


def tiny_qwen3_5():
    return tiny_qwen("qwen3_5")


def tiny_qwen3_5_moe():
    return tiny_qwen("qwen3_5_moe")


def tiny_qwen3_vl_moe():
    return tiny_qwen("qwen3_vl_moe")


@pytest.fixture(scope="module", params=FAMILIES)
def qwen(request):
    return tiny_qwen(request.param)


@pytest.fixture(scope="module")
def qwen3_5():
    return tiny_qwen3_5()


def _steer_layer(adapter) -> int:
    return adapter.attention_layers[-1]  # layer 3 in every tiny model


def test_registry_and_attention_layers(qwen):
    model, adapter = qwen
    assert adapter_for(model.config) is type(adapter)
    expected = (1, 3) if adapter.family.startswith("qwen3_5") else (0, 1, 2, 3)
    assert adapter.attention_layers == expected
    assert adapter.n_layers == 4
    # every attention module carries its TRUE decoder-layer index
    idx = sorted(m.layer_idx for n, m in model.named_modules() if n.endswith("self_attn"))
    assert tuple(idx) == expected


def test_qwen3_5_published_layout_has_one_attention_layer_in_four():
    from transformers import Qwen3_5Config

    config = Qwen3_5Config(text_config=dict(num_hidden_layers=24))
    adapter = Qwen3_5Adapter.from_parts(config, qwen_bpe_tokenizer())
    assert adapter.attention_layers == (3, 7, 11, 15, 19, 23)


def test_strip_grid_covers_image_and_panels_partition(qwen):
    model, adapter = qwen
    prepared = padded_batch(adapter, 384, 64)
    grid = prepared.grid
    assert (grid.rows, grid.cols) == (2, 12)
    assert_grid_covers_image(grid, 384, 64)
    assert_panels_partition(grid, 6)
    assert_positions_hold_image_tokens(grid, prepared.tensors["input_ids"][:1], model.config.image_token_id)
    mask = prepared.tensors["attention_mask"]
    assert mask[0, 0] == 0 and mask[1, 0] == 1  # left padded


def test_image_embeddings_are_distinct(qwen):
    model, adapter = qwen
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(384, 64), "describe ."))


def test_parity_and_capture_with_true_layer_indices(qwen):
    """Logits under the registered function equal SDPA on a left-padded batch; a decode step
    steered in the last softmax layer puts >= 0.99 of the image mass on the target, and captured
    rows are indexed by TRUE layer (NaN in the linear-attention layers)."""
    model, adapter = qwen
    prepared = padded_batch(adapter, 384, 64)
    check_parity(model, adapter, prepared)
    check_decode_steering(model, adapter, prepared, head=(_steer_layer(adapter), 1))


def test_qwen3_5_steering_a_linear_layer_is_refused(qwen3_5):
    model, adapter = qwen3_5
    loaded = loaded_from_parts(model, adapter)
    image = strip_image(384, 64)
    regions = panel_regions(adapter.build_inputs(image, "describe .").grid, 6)
    with pytest.raises(HeadSpecError, match=r"linear-attention layers.*L0H1.*\[1, 3\]"):
        generate_stream(
            loaded,
            image,
            "describe .",
            regions=regions,
            plan=SteeringPlan(HeadSet("lin", ((0, 1),))),
            target=2,
        )
    with (
        pytest.raises(HeadSpecError, match="linear-attention"),
        attention_control(model, plan_heads=HeadSet("lin", ((2, 0),))),
    ):
        pass
    assert model.config.text_config._attn_implementation == "sdpa"


def test_qwen3_5_discovery_scores_are_nan_in_linear_layers(qwen3_5, tmp_path):
    """Scores keep the model's layer numbering: linear layers are NaN (not applicable), out of the
    ranking, and never chosen by top-K or a random control."""
    model, adapter = qwen3_5
    loaded = loaded_from_parts(model, adapter)
    strip = SimpleNamespace(image=strip_image(384, 64), panel_widths=[64] * 6, name="s")
    result = list(discover(loaded, [strip], prompt_template="what is in the {ordinal} panel ?"))[-1]
    assert isinstance(result, DiscoveryResult)
    assert result.scores.shape == (4, 4) and result.matrices.shape == (4, 4, 6, 6)
    assert np.isnan(result.scores[[0, 2]]).all() and np.isfinite(result.scores[[1, 3]]).all()
    assert len(result.ranking) == 8 and {r["layer"] for r in result.ranking} == {1, 3}
    assert {layer for layer, _ in top_k_heads(result.scores, 8).heads} == {1, 3}
    # the other criteria (image heads, localization heads) leave the linear layers out too
    for name, grid in criterion_scores(
        result.scores, result.image_mass, result.image_maps, min_layer=0
    ).items():
        assert np.isnan(grid[[0, 2]]).all() and np.isfinite(grid[[1, 3]]).all(), name
    report = criteria_report(result.scores, result.image_mass, result.image_maps, ks=(4,), min_layer=0)
    assert report["n_heads"] == 8 and {r["layer"] for r in report["image"]["ranking"]} == {1, 3}
    with pytest.raises(HeadSpecError, match="K <= 8"):
        top_k_heads(result.scores, 9)
    control = random_control(result.scores, 3, seed=0, pool="percentile:50")
    assert {layer for layer, _ in control.heads.heads} <= {1, 3}
    everything = choose_heads("all", 4, 4, scores=result.scores).heads  # the "all heads" condition
    assert len(everything) == 8 and {layer for layer, _ in everything.heads} == {1, 3}
    # a ranking file read back for this model (the CLI's --heads-file) marks the linear layers too
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(result.ranking))
    from_file = scores_from_ranking(str(path), 4, 4, adapter.attention_layers)
    assert np.isnan(from_file[[0, 2]]).all() and np.array_equal(from_file[[1, 3]], result.scores[[1, 3]])


def test_qwen3_5_session_keeps_true_layer_indices(qwen3_5, tmp_path):
    """A steered run recorded into a session file reads back with the model's 4 layers: NaN rows in
    the linear-attention layers 0 and 2, the captured rows in the softmax layers 1 and 3."""
    from gaze_explorer.core.events import TokenEvent
    from gaze_explorer.core.options import GenerationOptions
    from gaze_explorer.core.run_spec import RunSpec
    from gaze_explorer.storage.reader import SessionReader
    from gaze_explorer.storage.record import record_events
    from gaze_explorer.storage.writer import SessionWriter

    model, adapter = qwen3_5
    loaded = loaded_from_parts(model, adapter)
    image, prompt = strip_image(384, 64), "describe the panel ."
    grid = adapter.build_inputs(image, prompt).grid
    regions = panel_regions(grid, 6)
    options = GenerationOptions(max_new_tokens=3, ignore_eos=True)
    path = tmp_path / "qwen3_5.h5"
    writer = SessionWriter(path, meta=loaded.describe(), image=np.asarray(image), grid=grid, regions=regions)
    stream = generate_stream(
        loaded,
        image,
        prompt,
        regions=regions,
        plan=SteeringPlan(HeadSet("one", ((3, 0),))),
        target=2,
        options=options,
    )
    spec = RunSpec(name="steered", prompt=prompt, n_layers=4, n_heads=4, options=options, regions=regions)
    try:
        events = [e for e in record_events(stream, writer, spec) if isinstance(e, TokenEvent)]
    finally:
        writer.close()
    with SessionReader(path) as reader:
        run = reader.run_ids()[0]
        stored = reader.step_rows(run, 2)  # [layer, head, key]
    assert stored.shape[:2] == (4, 4)
    assert np.isnan(stored[[0, 2]]).all() and np.isfinite(stored[[1, 3]]).all()
    expected = events[2].rows[[1, 3]].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(stored[[1, 3], :, : expected.shape[-1]], expected)

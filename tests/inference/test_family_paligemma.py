"""PaliGemma 2 adapter on a tiny random-initialised PaliGemmaForConditionalGeneration (offline).

The tiny language model is a Gemma 2 with a SMALL attention-logit softcap (1.0), so the cap changes
the logits a lot: parity with the stock (eager) attention shows the registered function applies
it as the stock one does, on every path. One of its two layers uses a sliding window shorter than
the prompt.
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
from gaze_explorer.inference.adapters.paligemma import PaliGemmaAdapter
from gaze_explorer.inference.attention import ForwardRequest, attention_control

SOFTCAP = 1.0


def tiny_paligemma(softcap: float | None = SOFTCAP):
    """Gemma 2 LM: 2 layers (sliding window 24, then global), 4 query heads, 2 KV heads; SigLIP:
    1 layer, 64 px image, 8 px patches -> 8 x 8 = 64 image tokens."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    tok = word_tokenizer(
        ["<image>"], pad="<pad>", eos="<eos>", bos="<bos>", chat_template="", image_token="<image>"
    )
    config = PaliGemmaConfig(
        text_config=dict(
            model_type="gemma2",
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            query_pre_attn_scalar=8,
            sliding_window=24,
            layer_types=["sliding_attention", "full_attention"],
            attn_logit_softcapping=softcap,
            final_logit_softcapping=30.0,
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
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vocab_size=len(tok),
        projection_dim=32,
        hidden_size=32,
    )
    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration(config).eval()
    with torch.no_grad():  # random init gives attention logits ~0.01, where no cap bites: make them ~5
        for layer in model.model.language_model.layers:
            layer.self_attn.q_proj.weight.mul_(20.0)
            layer.self_attn.k_proj.weight.mul_(20.0)
    model.set_attn_implementation({"text_config": PaliGemmaAdapter.stock_attention(config)})
    return model, PaliGemmaAdapter.from_parts(config, tok)


@pytest.fixture(scope="module")
def paligemma():
    return tiny_paligemma()


def test_paligemma_layout_and_stock_attention(paligemma):
    """``<image>`` x 64, BOS, prompt, newline; positions from 1; one bidirectional prefix; the
    soft-capped LM's stock attention is eager (SDPA cannot cap)."""
    model, adapter = paligemma
    assert adapter_for(model.config) is PaliGemmaAdapter
    assert adapter.stock_attention(model.config) == "eager"
    prepared = adapter.build_inputs(strip_image(300, 60), "describe the panel .")
    ids = prepared.tensors["input_ids"][0]
    grid = prepared.grid
    assert (grid.rows, grid.cols) == (8, 8) and list(grid.positions) == list(range(64))
    assert_grid_covers_image(grid, 300, 60)
    assert_panels_partition(grid, 6)
    assert_positions_hold_image_tokens(grid, prepared.tensors["input_ids"], model.config.image_token_id)
    tok = adapter.tokenizer
    assert ids[64] == tok.bos_token_id and ids[-1] == tok.convert_tokens_to_ids("\n")
    assert torch.equal(
        adapter.prefill_kwargs(model, prepared)["position_ids"][0], torch.arange(1, ids.numel() + 1)
    )
    assert not prepared.tensors["token_type_ids"].any()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 copy= warning inside PaliGemmaProcessor
def test_paligemma_inputs_match_the_stock_processor(paligemma):
    from transformers import PaliGemmaProcessor

    _, adapter = paligemma
    adapter.image_processor.image_seq_length = 64  # the stock processor reads it from its image processor
    processor = PaliGemmaProcessor(image_processor=adapter.image_processor, tokenizer=adapter.tokenizer)
    image = strip_image(300, 60)
    stock = processor(images=image, text="<image>describe the panel .", return_tensors="pt")
    ours = adapter.build_inputs(image, "describe the panel .").tensors
    for key in ("input_ids", "pixel_values", "token_type_ids"):
        assert torch.equal(stock[key], ours[key]), key


def test_paligemma_image_embeddings_are_distinct(paligemma):
    model, adapter = paligemma
    check_image_embeddings_distinct(model, adapter, adapter.build_inputs(strip_image(300, 60), "describe ."))


def test_paligemma_softcap_parity_with_the_stock_attention(paligemma):
    """Logits equal the stock eager attention's on a left-padded batch (window shorter than the
    prompt); and the cap matters here: the same weights without it give other logits."""
    model, adapter = paligemma
    prepared = padded_batch(adapter, 300, 60)
    assert prepared.prompt_len > model.config.text_config.sliding_window
    check_parity(model, adapter, prepared)
    uncapped, _ = tiny_paligemma(softcap=None)
    uncapped.load_state_dict(model.state_dict())
    with torch.no_grad():
        a = model(**adapter.prefill_kwargs(model, prepared)).logits
        b = uncapped(**adapter.prefill_kwargs(uncapped, prepared)).logits
    assert (a - b).abs().max().item() > 1e-2


def test_paligemma_captured_rows_are_the_capped_softmax(paligemma):
    """A captured prefill row equals the capped softmax ``softmax(tanh(s / cap) * cap + mask)`` that
    the stock eager attention computes (its weights, asked for here only as the reference)."""
    model, adapter = paligemma
    prepared = adapter.build_inputs(strip_image(300, 60), "describe the panel .")
    with torch.no_grad():
        stock = model(**adapter.prefill_kwargs(model, prepared), output_attentions=True).attentions
        with attention_control(model, text_config_key=adapter.text_config_key) as control:
            control.set_request(ForwardRequest(capture_rows="last"))
            model(**adapter.prefill_kwargs(model, prepared))
            rows = control.take_rows()  # [layer, batch, head, 1, key]
    for layer in range(2):
        np.testing.assert_allclose(rows[layer, 0, :, 0].numpy(), stock[layer][0, :, -1].numpy(), atol=1e-6)


def test_paligemma_decode_capture_and_steering(paligemma):
    model, adapter = paligemma
    check_decode_steering(model, adapter, padded_batch(adapter, 300, 60), head=(1, 1))

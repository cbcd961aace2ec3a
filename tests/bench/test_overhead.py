"""The per-step shortcuts of the capture path give the same results as the plain computations.

- The decode-step attention (query heads grouped by KV head, no repeated cache) equals softmax
  attention computed the textbook way, with GQA, padding masks and a per-head steering bias.
- The windowed detokenizer's pieces add up to the decoded answer, for a word-level and a
  byte-level BPE tokenizer (whose multi-byte characters span several tokens).
"""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from gaze_explorer.inference.attention import AttentionControl, ForwardRequest, _decode_step
from gaze_explorer.inference.generation import _TextPieces
from gaze_explorer.inference.word_tokenizer import build_word_tokenizer


def _reference(query, key, value, add):
    """softmax(QK^T / sqrt(d) + add) V with the KV heads repeated per query head."""
    n_rep = query.shape[1] // key.shape[1]
    k = key.repeat_interleave(n_rep, dim=1)  # [batch, head, key, dim]
    v = value.repeat_interleave(n_rep, dim=1)
    probs = torch.softmax(query @ k.transpose(-1, -2) / query.shape[-1] ** 0.5 + add, dim=-1)  # [b, h, 1, k]
    return probs @ v, probs


@pytest.mark.parametrize("steered", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_decode_step_equals_textbook_attention(steered, masked):
    torch.manual_seed(0)
    batch, heads, kv_heads, keys, dim = 2, 8, 2, 11, 16
    query = torch.randn(batch, heads, 1, dim)
    key = torch.randn(batch, kv_heads, keys, dim)
    value = torch.randn(batch, kv_heads, keys, dim)
    add = torch.zeros(batch, heads, 1, keys)
    mask = None
    if masked:
        mask = torch.ones(batch, 1, 1, keys, dtype=torch.bool)
        mask[1, :, :, :3] = False  # row 1 is left-padded by 3
        add = add.masked_fill(~mask, torch.finfo(torch.float32).min)
    steer = None
    bias = None
    if steered:
        steer = torch.zeros(heads, dtype=torch.bool)
        steer[[1, 6]] = True
        bias = torch.zeros(batch, keys)
        bias[:, 4] = 5.0
        bias[:, 7] = -5.0
        add = add + bias[:, None, None, :] * steer[None, :, None, None].float()
    # the steered heads' mask comes from the control (one copy per layer and device), as in a model
    control = AttentionControl(n_layers=1, n_heads=heads, steer_heads={0: steer} if steered else {})
    request = ForwardRequest(capture_rows="last", bias=bias)
    out, _ = _decode_step(control, 0, request, steer, "last", query, key, value, mask, dim**-0.5, None)
    ref_out, ref_probs = _reference(query, key, value, add)
    assert out.shape == (batch, 1, heads, dim)  # [batch, q, head, dim], as the model expects
    torch.testing.assert_close(out, ref_out.transpose(1, 2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(control.rows[0], ref_probs, atol=1e-6, rtol=1e-5)
    if masked:
        assert float(control.rows[0][1, :, 0, :3].abs().max()) == 0.0  # padding gets no attention
    if steered:
        rows = control.rows[0][0, :, 0]  # [head, key]
        assert bool((rows[[1, 6], 4] > rows[[0, 2], 4]).all())  # only the steered heads are boosted


def _byte_level_bpe() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["the cat sat on the mat", "naïve café", "über straße", "日本語 テキスト", "emoji 🐈 cat"] * 20
    tok.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok)


@pytest.mark.parametrize("kind", ["word", "byte_bpe"])
def test_text_pieces_add_up_to_the_decoded_answer(kind):
    if kind == "word":
        tok = build_word_tokenizer(["the", "cat", "sat", "on", "mat", ".", "a", "dog"])
        text = "the cat sat on the mat . a dog sat on the cat ."
    else:
        tok = _byte_level_bpe()
        text = "the café naïve über 日本語 🐈 cat sat on straße テキスト"

    def decode(ids):
        return tok.decode(ids, skip_special_tokens=True)

    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 10
    pieces = _TextPieces(decode)
    out = [pieces.push(i) for i in ids]
    assert "".join(out) == decode(ids)
    assert all("\ufffd" not in p for p in out)  # incomplete characters are held back, never shown
    # the old whole-answer method gives the same pieces wherever no character is split
    old, so_far = [], ""
    for n in range(1, len(ids) + 1):
        full = decode(ids[:n])
        old.append(full[len(so_far) :])
        so_far = full
    if kind == "word":
        assert out == old
    else:
        assert "" in out  # some characters did span several tokens (the held-back case ran)
    assert sum(len(p) for p in out) == len(decode(ids))

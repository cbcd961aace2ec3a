"""The word-level Qwen-layout tokenizer: ids, chat template, save/load round trip, padding."""

from __future__ import annotations

from transformers import AutoTokenizer

from gaze_explorer.inference.word_tokenizer import IMAGE_PAD, build_word_tokenizer

WORDS = ["a", "man", "runs", ".", "?", "what", "is", "happening", "in", "panel"]
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is happening?"}]}]


def test_chat_template_has_qwen_layout():
    tok = build_word_tokenizer(WORDS)
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is happening?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    pieces = tok.convert_ids_to_tokens(tok(text)["input_ids"])
    assert pieces[:6] == ["<|im_start|>", "user", "\n", "<|vision_start|>", IMAGE_PAD, "<|vision_end|>"]
    assert pieces[6:10] == ["what", "is", "happening", "?"]
    assert pieces[-3:] == ["<|im_start|>", "assistant", "\n"]


def test_special_ids_and_unknown_words():
    tok = build_word_tokenizer(WORDS)
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert tok.convert_tokens_to_ids(IMAGE_PAD) == 5
    ids = tok("A zebra runs")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["a", "<unk>", "runs"]


def test_decode_joins_words_with_spaces():
    tok = build_word_tokenizer(WORDS)
    ids = tok("a man runs.")["input_ids"]
    assert tok.decode(ids) == "a man runs ."
    assert tok.decode([*ids, tok.eos_token_id], skip_special_tokens=True) == "a man runs ."


def test_save_and_load_offline_round_trip(tmp_path):
    tok = build_word_tokenizer(WORDS)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert loaded.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == text
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.eos_token_id == tok.eos_token_id and loaded.pad_token_id == tok.pad_token_id
    batch = loaded(["a man", "what is happening ?"], padding=True)
    assert batch["attention_mask"][0] == [0, 0, 1, 1]  # left padding

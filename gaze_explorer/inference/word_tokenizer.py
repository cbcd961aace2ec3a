"""A small word-level tokenizer in Qwen's chat layout, for tiny test models and the demo model.

Real Qwen-VL tokenizers are BPE with ~150k entries; the bundled demo model and the random tiny
test models only need a few hundred words. This builds a ``tokenizers`` WordLevel model with
Qwen's special tokens and chat template, wrapped as a ``PreTrainedTokenizerFast`` that saves with
``save_pretrained`` and loads offline with ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
UNK_TOKEN = "<unk>"
NEWLINE = "\n"

# Order fixes the ids: specials first, so every word list shares them.
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD, UNK_TOKEN)
# Role words and the newline are ordinary vocabulary entries that the template always needs.
ROLE_WORDS = ("system", "user", "assistant")

# Qwen's layout: the image sits at the start of the user turn; the generation prompt opens the
# assistant turn. Message content may be a string or a list of {"type": "image"|"text"} parts.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}{{ '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}"
)


def normalise_words(words: Iterable[str]) -> list[str]:
    """Lower-cased, de-duplicated words in first-seen order, without specials or blanks."""
    seen: set[str] = set()
    out: list[str] = []
    reserved = set(SPECIAL_TOKENS) | set(ROLE_WORDS) | {NEWLINE}
    for w in words:
        w = str(w).strip().lower()
        if w and w not in reserved and w not in seen:
            seen.add(w)
            out.append(w)
    return out


def build_word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``words`` with Qwen's special tokens and chat template.

    Text is lower-cased and split on whitespace and punctuation (each punctuation mark is its own
    token); a newline is a token; unknown words map to ``<unk>``. Decoding joins words with spaces.
    Ids: the special tokens are 0..7, then ``system``, ``user``, ``assistant``, ``\\n``, then ``words``.
    """
    vocab_list = [*SPECIAL_TOKENS, *ROLE_WORDS, NEWLINE, *normalise_words(words)]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # keep the newline as a token (the template needs it), drop other whitespace
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"[ \t\r\f\v]+"), behavior="removed"),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=IM_END,
        unk_token=UNK_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        extra_special_tokens={"image_token": IMAGE_PAD, "video_token": VIDEO_PAD},
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast

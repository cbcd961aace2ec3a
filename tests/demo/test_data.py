"""Training batches are token-for-token what the Qwen3-VL adapter builds for the same inputs."""

from __future__ import annotations

import pytest
import torch

from gaze_explorer.demo import prompts
from gaze_explorer.demo.comics import PANEL_SIZE, generate_strips
from gaze_explorer.demo.training.data import IGNORE, BatchBuilder, Example, make_image_processor
from gaze_explorer.demo.training.train import build_config
from gaze_explorer.demo.training.vocab import build_demo_tokenizer
from gaze_explorer.inference.adapters.qwen3_vl import Qwen3VLAdapter


@pytest.fixture(scope="module")
def parts():
    tokenizer = build_demo_tokenizer()
    return tokenizer, BatchBuilder(tokenizer, seed=0), build_config(tokenizer)


@pytest.mark.parametrize("height", [96, 256])
def test_batch_matches_adapter_inputs(parts, height):
    tokenizer, builder, config = parts
    adapter = Qwen3VLAdapter.from_parts(config, tokenizer, make_image_processor())
    (strip,) = generate_strips(1, seed=3, height=height)
    asked = [
        prompts.kth_prompt(2),
        prompts.kth_prompt(4, words=True),
        prompts.NARRATION_PROMPT,
        prompts.AMBIGUOUS_PROMPT,
    ]
    answer = prompts.describe_answer(strip.attributes[0])
    batch = builder.collate([strip.image] * len(asked), [Example(p, answer, "t") for p in asked])
    for row, prompt in enumerate(asked):
        ref = adapter.build_inputs(strip.image, prompt)
        ref_ids = ref.tensors["input_ids"][0]
        n = ref_ids.numel()
        assert torch.equal(batch["input_ids"][row, :n], ref_ids)
        assert torch.equal(batch["mm_token_type_ids"][row, :n], ref.tensors["mm_token_type_ids"][0])
        assert (batch["labels"][row, :n] == IGNORE).all()  # no loss on the prompt
        # the answer (and <|im_end|>) follows right after the prompt and carries the loss
        ans = batch["labels"][row, n:][batch["labels"][row, n:] != IGNORE]
        expected = [
            *tokenizer(answer, add_special_tokens=False)["input_ids"],
            tokenizer.convert_tokens_to_ids("<|im_end|>"),
        ]
        assert ans.tolist() == expected
        side = PANEL_SIZE // 32  # LM tokens per panel side (patch 16, merge 2)
        assert ref.grid.rows == side and ref.grid.cols == 6 * side
    grid = ref.tensors["image_grid_thw"]
    assert torch.equal(batch["image_grid_thw"][:1], grid)
    per_image = int(grid[0].prod())
    assert torch.equal(batch["pixel_values"][:per_image], ref.tensors["pixel_values"])


def test_answers_tokenize_without_unknown_words(parts):
    tokenizer, _, _ = parts
    (strip,) = generate_strips(1, seed=9)
    panels = strip.attributes
    texts = [
        prompts.narration_answer(panels),
        prompts.describe_answer(panels[2]),
        prompts.kth_answer(panels[1]),
        *prompts.all_prompts(),
    ]
    for t in texts:
        assert tokenizer.unk_token_id not in tokenizer(t)["input_ids"], t
    sentence = tokenizer("then " + prompts.panel_phrase(panels[1]) + " .")["input_ids"]
    assert len(sentence) == prompts.SENTENCE_TOKENS


def test_follow_examples_train_only_what_comes_after_the_named_object_colour(parts):
    import random

    from gaze_explorer.demo.training.data import sample_example

    _, builder, _ = parts
    (strip,) = generate_strips(1, seed=3)
    panels = strip.attributes
    rng = random.Random(0)
    seen = set()
    for _ in range(40):
        ex = sample_example(panels, rng, {"follow": 1.0})
        words = ex.answer.split()
        if ex.prompt == prompts.NARRATION_PROMPT:
            seen.add("narration")
            # one sentence describes another panel; the loss starts after its object colour
            start = len(ex.no_loss) - 2
            assert start % prompts.SENTENCE_TOKENS == 0 and words[start] in ("first", "then")
            detour = start // prompts.SENTENCE_TOKENS
            named = [
                p for p in panels if p["object"] == words[start + 1] and p["background"] == words[start + 4]
            ]
            assert named and named[0] is not panels[detour]
        else:
            seen.add("one panel")
            assert ex.no_loss == (0, 1) and words[0] == prompts.OPENER  # 'a' and the object colour
            assert any(prompts.describe_answer(p) == ex.answer for p in panels[1:])
        batch = builder.collate([strip.image], [ex])
        labels = batch["labels"][0][batch["labels"][0] != IGNORE]
        assert len(labels) == len(builder.answer_ids(ex.answer)) - len(ex.no_loss)
    assert seen == {"narration", "one panel"}

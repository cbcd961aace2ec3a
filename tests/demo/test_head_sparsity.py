"""The training-only attention of the demo: the same outputs as SDPA, and a penalty that measures
how many heads read the image and at how many positions."""

from __future__ import annotations

import math

import pytest
import torch

from gaze_explorer.demo import head_sparsity
from gaze_explorer.demo.data import BatchBuilder
from gaze_explorer.demo.train import build_config, build_model
from gaze_explorer.demo.vocab import build_demo_tokenizer


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    tok = build_demo_tokenizer()
    model = build_model(
        build_config(tok, text={"num_hidden_layers": 2}, vision={"depth": 1, "deepstack_visual_indexes": [0]})
    )
    model.eval()
    return tok, model, BatchBuilder(tok, seed=0)


def test_logits_equal_sdpa_and_the_penalty_is_collected(parts):
    _, model, builder = parts
    batch = builder.next_batch(3)  # right-padded rows of different lengths
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        model.set_attn_implementation({"text_config": "sdpa"})
        want = model(**kwargs).logits
        head_sparsity.register()
        model.set_attn_implementation({"text_config": head_sparsity.ATTN_NAME})
        queries = head_sparsity.text_queries(
            batch["input_ids"], batch["attention_mask"], builder.image_token_id
        )
        with head_sparsity.collecting(head_sparsity.ImagePenalty(batch["mm_token_type_ids"], queries)) as pen:
            got = model(**kwargs).logits
        model.set_attn_implementation({"text_config": "sdpa"})
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-4)
    assert len(pen.terms) == 2  # one per text layer
    # every head's group norm lies between 0 and sqrt(number of counted queries)
    assert 0.0 < float(pen.total()) <= math.sqrt(int(queries.sum(1).max()))
    # the counted queries are the text after the image, never padding
    first_text = int((batch["mm_token_type_ids"][0] == 1).nonzero().max()) + 1
    assert not queries[0, :first_text].any() and queries[0, first_text]
    assert not queries[~real].any()


def test_one_head_reading_everywhere_costs_less_than_many_heads_reading_once():
    # 4 queries after 2 image keys; probabilities on the image keys only where a head "reads"
    image_keys = torch.tensor([[1, 1, 0, 0, 0, 0]])
    queries = torch.tensor([[0, 0, 1, 1, 1, 1]]).bool()

    def cost(reads, norm="l2"):  # reads[h] = the query positions where head h looks at the image
        probs = torch.zeros(1, len(reads), 6, 6)
        probs[..., 2] = 1.0  # otherwise on a text key
        for h, positions in enumerate(reads):
            for q in positions:
                probs[0, h, q] = 0.0
                probs[0, h, q, 0] = 1.0
        return float(
            head_sparsity.head_costs(probs, head_sparsity.ImagePenalty(image_keys, queries, norm)).sum()
        )

    one_head = cost([[2, 3, 4, 5], [], [], []])
    four_heads = cost([[2], [3], [4], [5]])
    assert one_head == pytest.approx(2.0, abs=1e-2) and four_heads == pytest.approx(4.0, abs=1e-2)
    assert cost([[0, 1], [], [], []]) < 0.01  # reading before the image (prompt positions) is not counted
    # the max norm: reading at more positions is free once a head reads at all
    assert cost([[2, 3, 4, 5], [], [], []], "max") == pytest.approx(1.0)
    assert cost([[2], [], [], []], "max") == pytest.approx(1.0)
    assert cost([[2], [3], [4], [5]], "max") == pytest.approx(4.0)
    with pytest.raises(ValueError, match="norm"):
        head_sparsity.ImagePenalty(image_keys, queries, "l1")
